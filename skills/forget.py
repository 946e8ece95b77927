"""``forget``: delete what the bot stored of you (``me``) or of this channel (``channel``).

``forget me`` deletes every turn you wrote on this platform, in every channel,
and the bot's replies to them; ``forget channel`` deletes this channel's whole
history, its threads included, and only an admin (``router.admins``) may ask.
"""

from __future__ import annotations

from confab.bot.arguments import Arg
from confab.bot.skill import Skill, SkillContext


def _messages(number: int) -> str:
    return "1 message" if number == 1 else f"{number} messages"


def _replies(number: int) -> str:
    return "1 reply" if number == 1 else f"{number} replies"


class ForgetSkill(Skill):
    name = "forget"
    uses_model = False
    help = "Delete what you said to me (`me`), or this channel's history (`channel`, admins)."
    arguments = (Arg("what", choices=("me", "channel"), help="you, or this channel (admins)"),)
    admin_commands = ("channel",)

    async def run(self, ctx: SkillContext) -> None:
        if ctx.options["what"] == "me":
            forgotten = await ctx.privacy.forget_author()
            replies = f" and my {_replies(forgotten.replies)} to them" if forgotten.replies else ""
            await ctx.reply(
                f"Done: I deleted {_messages(forgotten.messages)} of yours (this one too), "
                f"everywhere on this platform{replies}."
            )
        else:
            forgotten = await ctx.privacy.forget_channel()
            replies = f" and my {_replies(forgotten.replies)}" if forgotten.replies else ""
            await ctx.reply(
                f"Done: I deleted this channel's history: {_messages(forgotten.messages)} "
                f"(this one too){replies}."
            )
