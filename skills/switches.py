"""``skills``: which skills answer in this channel; admins switch them on and off.

The choice is the channel's ``enabled_skills`` setting (None: every skill). ``help``
and ``skills`` itself are never switched off, so an admin can always undo it.
"""

from __future__ import annotations

from confab.bot.arguments import Arg
from confab.bot.skill import ALWAYS_ON, Skill, SkillContext, enabled_after


class SkillsSkill(Skill):
    name = "skills"
    uses_model = False
    help = "Show which skills answer in this channel; admins switch them on or off."
    arguments = (
        Arg("action", choices=("enable", "disable", "reset"), default=None, help="admins only"),
        Arg("names", rest=True, default="", help="the skills to switch, e.g. code write"),
    )
    admin_commands = ("enable", "disable", "reset")

    async def run(self, ctx: SkillContext) -> None:
        installed = [info.name for info in ctx.skills]
        action, names = ctx.options["action"], ctx.options["names"].lower().split()
        if action is None:
            await ctx.reply(_listing(ctx, installed))
            return
        if action == "reset":
            await ctx.channel.set_enabled_skills(None)
            await ctx.reply("Done: every skill answers in this channel again.")
            return
        names = [name.removeprefix(ctx.prefix) for name in names]
        if not names:
            await ctx.reply(f"Which? e.g. `{ctx.prefix}skills {action} code`.")
            return
        unknown = [name for name in names if name not in installed]
        if unknown:
            await ctx.reply(
                f"No skill called {_listed(unknown)} here; `{ctx.prefix}skills` lists them."
            )
            return
        if action == "disable" and (kept := [name for name in names if name in ALWAYS_ON]):
            await ctx.reply(f"{_listed(kept)} always stay on, so the switches can be undone.")
            return
        await ctx.channel.set_enabled_skills(
            enabled_after(installed, ctx.switched_off, names, on=action == "enable")
        )
        state = "on" if action == "enable" else "off"
        await ctx.reply(f"Done: {_listed(names)} switched {state} in this channel.")


def _listing(ctx: SkillContext, installed: list[str]) -> str:
    off = [name for name in installed if name in ctx.switched_off]
    on = [name for name in installed if name not in ctx.switched_off]
    text = f"On in this channel: {_listed(on)}."
    if off:
        text += f"\nSwitched off: {_listed(off)}."
    if ctx.admin:
        text += f"\n`{ctx.prefix}skills disable NAME`, `enable NAME` or `reset` changes it."
    return text


def _listed(names: list[str]) -> str:
    return ", ".join(f"`{name}`" for name in names)
