"""``help``: the list of commands, generated from the skills' own declarations."""

from __future__ import annotations

from bot.skill import Skill, SkillContext, SkillInfo


def _usage_line(prefix: str, info: SkillInfo) -> str:
    usage = f" {info.usage}" if info.usage else ""
    return f"`{prefix}{info.name}{usage}`"


class HelpSkill(Skill):
    name = "help"
    help = "List the commands, or explain one."
    usage = "[command]"

    async def run(self, ctx: SkillContext) -> None:
        wanted = ctx.args.strip().lstrip(ctx.prefix).lower()
        if wanted:
            for info in ctx.skills:
                if wanted == info.name or wanted in info.aliases:
                    aliases = ", ".join(f"`{ctx.prefix}{a}`" for a in info.aliases)
                    text = f"{_usage_line(ctx.prefix, info)}: {info.help}"
                    await ctx.reply(text + (f"\nAliases: {aliases}" if aliases else ""))
                    return
            await ctx.reply(f"There is no command `{ctx.prefix}{wanted}`.")
            return
        lines = ["**Commands**"]
        lines += [f"- {_usage_line(ctx.prefix, info)}: {info.help}" for info in ctx.skills]
        lines.append("")
        lines.append(
            f"Anything else addressed to me is a question. `{ctx.prefix}help COMMAND` "
            "explains one command."
        )
        await ctx.reply("\n".join(lines))
