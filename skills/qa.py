"""``ask``: questions answered by the model, with this conversation's memory.

The default skill: an addressed message without a command comes here.
"""

from __future__ import annotations

from dataclasses import replace

from pydantic import BaseModel, ConfigDict, Field

from bot.skill import ChatMessage, Skill, SkillContext

SYSTEM_PROMPT = (
    "You are Confab, a helpful assistant in a team chat. Answer clearly and briefly. "
    "Use Markdown, with code in fenced blocks."
)


class AskConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    system_prompt: str = SYSTEM_PROMPT
    max_history_turns: int = Field(20, ge=0, le=500)
    temperature: float | None = Field(None, ge=0.0, le=2.0)


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
        history = await ctx.memory.recent(max_turns=config.max_history_turns)
        messages = [
            ChatMessage("system", config.system_prompt),
            *history,
            ChatMessage("user", question),
        ]
        params = ctx.model.default_params
        if config.temperature is not None:
            params = replace(params, temperature=config.temperature)
        await ctx.reply_stream(ctx.model.stream(messages, params))
