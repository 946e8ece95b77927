"""Q&A: ``ask`` answers from the model with this conversation's memory; ``reset``
starts the conversation afresh; ``prompt`` shows or sets the channel's system prompt.

``ask`` is the default skill: an addressed message without a command comes here.
"""

from __future__ import annotations

from pydantic import Field

from confab.bot.checks.arithmetic import calculation
from confab.bot.checks.consistency import ConsistencySettings, checked_stream, worth_checking
from confab.bot.checks.units import conversion
from confab.bot.skill import (
    ChatMessage,
    GenerationSettings,
    Passage,
    Skill,
    SkillContext,
    label_speakers,
)
from confab.skills.qa_notes import TEMPLATES, answered_from_notes, with_passages

MAX_PROMPT_CHARS = 2000


class AskConfig(GenerationSettings):
    # Empty means the built-in prompt (skills/qa.toml); a channel's own prompt
    # (`!prompt set ...`) wins over both.
    system_prompt: str = ""
    max_history_turns: int = Field(20, ge=0, le=500)
    # Arithmetic and unit conversions are computed, not left to the model.
    calculate: bool = True
    # Factual questions are asked again in the same batch; disagreement means "not sure".
    check_facts: bool = True
    check_samples: int = Field(3, ge=1, le=8)
    # What people said earlier is restated in the system prompt (a small model
    # overlooks it in the turns); this many of their latest statements.
    recap_statements: int = Field(8, ge=0, le=50)
    # Passages of the team's history and documents ([knowledge]) go into the
    # prompt, and the answer ends with their sources.
    use_knowledge: bool = True


class AskSkill(Skill):
    name = "ask"
    aliases = ("q",)
    help = "Ask a question; messages addressed to me without a command come here too."
    usage = "<question>"
    config_model = AskConfig

    async def run(self, ctx: SkillContext) -> None:
        config: AskConfig = ctx.config or AskConfig()
        question = ctx.args.strip()
        if not question:
            await ctx.reply(f"Ask me something, e.g. `{ctx.prefix}ask what is a monad?`")
            return
        computed = (calculation(question) or conversion(question)) if config.calculate else None
        if computed is not None:
            await ctx.reply(computed.answer)
            return
        system = ChatMessage("system", await _system_prompt(ctx, config))
        asked = ChatMessage("user", question, name=ctx.message.author.name)
        params = config.params(ctx.model.default_params)
        shown: list[Passage] = []
        if config.use_knowledge:
            asked, shown = await with_passages(ctx, system, asked, params.max_new_tokens)
        # Load no more history than could fit; the backend trims what is left over.
        room = ctx.model.context_window - params.max_new_tokens
        room -= ctx.model.count_tokens([system, asked])
        history = []
        if room > 0 and config.max_history_turns:
            history = await ctx.memory.recent(max_turns=config.max_history_turns, max_tokens=room)
        if recap := _recap(history, config.recap_statements):
            recapped = ChatMessage("system", f"{system.content}\n\n{recap}")
            budget = ctx.model.context_window - params.max_new_tokens
            if ctx.model.count_tokens([recapped, asked]) <= budget:  # else it would crowd out
                system = recapped
        messages = [system, *label_speakers([*history, asked])]
        if shown:  # the notes answer it: no need to ask again and compare
            await ctx.reply_stream(answered_from_notes(ctx, messages, params, shown, question))
        elif config.check_facts and worth_checking(question):
            settings = ConsistencySettings(samples=config.check_samples)
            await ctx.reply_stream(checked_stream(ctx.model, messages, params, settings, question))
        else:
            await ctx.reply_stream(ctx.model.stream(messages, params))


def _recap(history: list[ChatMessage], most: int) -> str:
    """What people told the bot earlier in this conversation (statements, not their
    questions), newest last, as a block for the system prompt; "" when nothing."""
    statements = [m for m in history if m.role == "user" and not m.content.rstrip().endswith("?")]
    said = statements[-most:] if most else []
    if not said:
        return ""
    lines = "\n".join(
        f"- {turn.name or 'someone'} said: {' '.join(turn.content.split())}" for turn in said
    )
    return TEMPLATES.render("recap", statements=lines)


async def _system_prompt(ctx: SkillContext, config: AskConfig) -> str:
    override = (await ctx.channel.settings()).system_prompt
    if override:
        return override
    return config.system_prompt or TEMPLATES.render("system", bot=_bot_name(ctx))


def _bot_name(ctx: SkillContext) -> str:
    return ctx.bot_name.capitalize()


class ResetSkill(Skill):
    name = "reset"
    help = "Start a fresh conversation here: I forget what we said so far in this thread/channel."
    arguments = ()

    async def run(self, ctx: SkillContext) -> None:
        await ctx.memory.reset()
        where = "thread" if ctx.message.thread else "channel"
        await ctx.reply(
            f"Fresh start: I've put our earlier conversation in this {where} out of mind. "
            "(It is still stored; `forget` deletes it.)"
        )


class PromptSkill(Skill):
    name = "prompt"
    help = "Show this channel's system prompt for `ask`; admins can set or clear it."
    usage = "[set <text> | clear]"
    admin_commands = ("set", "clear")

    async def run(self, ctx: SkillContext) -> None:
        words = ctx.args.split(maxsplit=1)  # the prompt may start on the next line
        action = words[0].lower() if words else ""
        text = words[1] if len(words) > 1 else ""
        if not action:
            current = (await ctx.channel.settings()).system_prompt
            if current:
                await ctx.reply(f"This channel's system prompt:\n> {_quoted(current)}")
            else:
                await ctx.reply(
                    "This channel uses the default system prompt. "
                    f"An admin can set one with `{ctx.prefix}prompt set <text>`."
                )
        elif action == "set" and text.strip():
            if len(text.strip()) > MAX_PROMPT_CHARS:
                await ctx.reply(
                    f"That prompt is {len(text.strip()):,} characters; "
                    f"the limit is {MAX_PROMPT_CHARS:,}."
                )
                return
            await ctx.channel.set_system_prompt(text.strip())
            await ctx.reply("Done: `ask` answers in this channel with that system prompt now.")
        elif action == "clear" and not text.strip():
            await ctx.channel.set_system_prompt(None)
            await ctx.reply("Done: this channel is back to the default system prompt.")
        else:
            await ctx.reply(
                f"Usage: `{ctx.prefix}prompt` shows this channel's system prompt; "
                f"`{ctx.prefix}prompt set <text>` and `{ctx.prefix}prompt clear` (admins) "
                "change it."
            )


def _quoted(text: str) -> str:
    return text.replace("\n", "\n> ")
