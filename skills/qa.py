"""Q&A: ``ask`` answers from the model with this conversation's memory; ``reset``
starts the conversation afresh; ``prompt`` shows or sets the channel's system prompt.

``ask`` is the default skill: an addressed message without a command comes here.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator

from pydantic import Field

from bot.checks.arithmetic import calculation
from bot.checks.consistency import ConsistencySettings, checked_stream, worth_checking
from bot.checks.units import conversion
from bot.skill import (
    ChatMessage,
    GenerationSettings,
    Passage,
    PromptTemplates,
    Skill,
    SkillContext,
    label_speakers,
)

TEMPLATES = PromptTemplates.load(__package__, "qa.toml")
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
            system, shown = await _with_passages(ctx, system, asked, params.max_new_tokens)
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
        if config.check_facts and worth_checking(question):
            settings = ConsistencySettings(samples=config.check_samples)
            answer = checked_stream(ctx.model, messages, params, settings, question)
        else:
            answer = ctx.model.stream(messages, params)
        await ctx.reply_stream(_with_sources(ctx, answer, shown) if shown else answer)


async def _with_passages(
    ctx: SkillContext, system: ChatMessage, asked: ChatMessage, max_new_tokens: int
) -> tuple[ChatMessage, list[Passage]]:
    """The system prompt with the relevant passages that fit in half the room left
    for the prompt (history gets the rest), and those passages."""
    found = await ctx.knowledge.relevant(asked.content)
    budget = (ctx.model.context_window - max_new_tokens) // 2
    shown: list[Passage] = []
    with_them = system
    for passage in found:
        lines = [_note(n, p) for n, p in enumerate([*shown, passage], start=1)]
        notes = TEMPLATES.render("knowledge", passages="\n".join(lines))
        candidate = ChatMessage("system", f"{system.content}\n\n{notes}")
        if ctx.model.count_tokens([candidate, asked]) > budget:
            break
        shown.append(passage)
        with_them = candidate
    return with_them, shown


def _note(number: int, passage: Passage) -> str:
    where = passage.document or f"#{passage.channel}"
    if passage.heading and passage.document:
        where = f"{where}, {passage.heading}"
    return f"[{number}] ({where}) {passage.text}"


async def _with_sources(
    ctx: SkillContext, answer: AsyncIterable[str], shown: list[Passage]
) -> AsyncIterator[str]:
    """The answer, then the sources of the passages it was shown that it draws on
    (all of them when it shares no word with any)."""
    said = []
    async for chunk in answer:
        said.append(chunk)
        yield chunk
    text = "".join(said)
    used = [p for p in shown if _shares_words(text, p.text)] or shown
    lines = [f"{n}. {await ctx.knowledge.source(p)}" for n, p in enumerate(used, start=1)]
    yield "\n\nSources:\n" + "\n".join(lines)


def _shares_words(answer: str, passage: str) -> bool:
    """Whether the answer repeats a telling word of the passage (a number, or a word of
    five letters or more)."""

    def telling(text: str) -> set[str]:
        return {w for w in re.findall(r"[^\W_]+", text.lower()) if w.isdigit() or len(w) >= 5}

    return bool(telling(answer) & telling(passage))


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
