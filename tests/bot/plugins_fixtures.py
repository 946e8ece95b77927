"""Skills with broken declarations, for discovery tests."""

from confab.bot.skill import Skill, SkillContext


class BadName(Skill):
    name = "Bad Name"
    help = "Has a space in its name."

    async def run(self, ctx: SkillContext) -> None:
        await ctx.reply("never")


class NoHelp(Skill):
    name = "nohelp"
    help = "  "

    async def run(self, ctx: SkillContext) -> None:
        await ctx.reply("never")
