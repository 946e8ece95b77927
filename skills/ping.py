"""``ping``: answers ``pong``, to check that the bot is alive."""

from __future__ import annotations

from confab.bot.skill import Skill, SkillContext


class PingSkill(Skill):
    name = "ping"
    uses_model = False
    help = "Check that the bot is alive."
    arguments = ()

    async def run(self, ctx: SkillContext) -> None:
        await ctx.reply("pong")
