"""``train``: whether this channel's conversations may be used to fine-tune the model.

Nothing is exported from a channel that did not opt in; ``confab data export``
reads only the channels where an admin said ``!train optin``.
"""

from __future__ import annotations

from confab.bot.arguments import Arg
from confab.bot.skill import Skill, SkillContext


class TrainSkill(Skill):
    name = "train"
    uses_model = False
    help = "Show whether this channel's conversations may train the model; admins opt in or out."
    arguments = (
        Arg("action", choices=("optin", "optout"), default=None, help="admins: opt in or out"),
    )
    admin_commands = ("optin", "optout")

    async def run(self, ctx: SkillContext) -> None:
        action = ctx.options["action"]
        if action is not None:
            await ctx.channel.set_training_optin(action == "optin")
            if action == "optin":
                await ctx.reply(
                    "Done: this channel's questions and my answers may now be exported to "
                    "fine-tune the model (`confab data export`). Mentions are replaced by "
                    f"names. `{ctx.prefix}train optout` stops it."
                )
            else:
                await ctx.reply("Done: nothing from this channel will be exported for training.")
        else:
            settings = await ctx.channel.settings()
            state = "may" if settings.training_optin else "may not"
            await ctx.reply(
                f"This channel's conversations {state} be used to fine-tune the model. "
                f"An admin changes it with `{ctx.prefix}train optin` or `{ctx.prefix}train optout`."
            )
