"""``help``: the list of commands, generated from the skills' own declarations."""

from __future__ import annotations

from confab.bot.arguments import Arg, shown
from confab.bot.skill import Skill, SkillContext, SkillInfo


def _usage_line(prefix: str, info: SkillInfo) -> str:
    usage = f" {info.usage}" if info.usage else ""
    return f"`{prefix}{info.name}{usage}`"


def _argument_line(argument: Arg) -> str:
    """``- `count`: how many dice (a whole number, 1 to 100; 1 if left out)``."""
    kind = {int: "a whole number", float: "a number", bool: "yes or no"}.get(argument.type)
    facts = [kind] if kind and not argument.choices else []
    if argument.choices:
        facts.append("one of " + ", ".join(f"`{choice}`" for choice in argument.choices))
    if argument.min is not None or argument.max is not None:
        low = "" if argument.min is None else shown(argument.min)
        high = "" if argument.max is None else shown(argument.max)
        if low and high:
            facts.append(f"{low} to {high}")
        else:
            facts.append(f"at least {low}" if low else f"at most {high}")
    if argument.rest:
        facts.append("the rest of the text")
    if not argument.required and argument.default not in (None, ""):
        facts.append(f"{shown(argument.default)} if left out")
    elif not argument.required:
        facts.append("may be left out")
    said = f": {argument.help}" if argument.help else ""
    return f"- `{argument.name}`{said}" + (f" ({'; '.join(facts)})" if facts else "")


class HelpSkill(Skill):
    name = "help"
    uses_model = False
    help = "List the commands, or explain one."
    usage = "[command]"
    # The rest of the text, of which the first word counts: help is not refused.
    arguments = (Arg("command", help="the command to explain", default="", rest=True),)

    async def run(self, ctx: SkillContext) -> None:
        # As typed with or without the prefix ("!help !ask").
        words = ctx.options["command"].split(maxsplit=1)
        wanted = words[0].removeprefix(ctx.prefix).lower() if words else ""
        # Only what the asker may run here: admin-only skills are listed to admins, and
        # the skills switched off in this channel not at all.
        skills = [
            info
            for info in ctx.skills
            if (ctx.admin or not info.admin_only) and info.name not in ctx.switched_off
        ]
        if wanted:
            for info in skills:
                if wanted == info.name or wanted in info.aliases:
                    aliases = ", ".join(f"`{ctx.prefix}{a}`" for a in info.aliases)
                    text = f"{_usage_line(ctx.prefix, info)}: {info.help}"
                    if info.arguments:
                        text += "\n" + "\n".join(_argument_line(a) for a in info.arguments)
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
        if ctx.switched_off:
            lines.append(
                f"Switched off in this channel: {len(ctx.switched_off)} "
                f"(`{ctx.prefix}skills` lists them)."
            )
        lines.append("")
        lines.append(
            f"Anything else addressed to me is a question. `{ctx.prefix}help COMMAND` "
            "explains one command."
        )
        await ctx.reply("\n".join(lines))
