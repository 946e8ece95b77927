"""``help``: the list of commands, generated from the skills' own declarations."""

from __future__ import annotations

from confab.bot.skill import Skill, SkillContext, SkillInfo


def _usage_line(prefix: str, info: SkillInfo) -> str:
    usage = f" {info.usage}" if info.usage else ""
    return f"`{prefix}{info.name}{usage}`"


class HelpSkill(Skill):
    name = "help"
    help = "List the commands, or explain one."
    usage = "[command]"

    async def run(self, ctx: SkillContext) -> None:
        # The first word, as typed with or without the prefix ("!help !ask").
        words = ctx.args.split(maxsplit=1)
        wanted = words[0].removeprefix(ctx.prefix).lower() if words else ""
        # Only what the asker may run: admin-only skills are listed to admins.
        skills = [info for info in ctx.skills if ctx.admin or not info.admin_only]
        if wanted:
            for info in skills:
                if wanted == info.name or wanted in info.aliases:
                    aliases = ", ".join(f"`{ctx.prefix}{a}`" for a in info.aliases)
                    text = f"{_usage_line(ctx.prefix, info)}: {info.help}"
                    if aliases:
                        text += f"\nAliases: {aliases}"
                    if info.admin_commands:
                        admin = ", ".join(
                            f"`{ctx.prefix}{info.name} {c}`" for c in info.admin_commands
                        )
                        text += f"\nAdmins only: {admin}"
                    await ctx.reply(text)
                    return
            shown = wanted.replace("`", "")[:32]  # stays one line of inline code
            await ctx.reply(f"There is no command `{ctx.prefix}{shown}`.")
            return
        lines = ["**Commands**"]
        lines += [f"- {_usage_line(ctx.prefix, info)}: {info.help}" for info in skills]
        lines.append("")
        lines.append(
            f"Anything else addressed to me is a question. `{ctx.prefix}help COMMAND` "
            "explains one command."
        )
        await ctx.reply("\n".join(lines))
