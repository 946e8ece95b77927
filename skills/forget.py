"""``forget``: delete what the bot stored of you (``me``) or of this channel (``channel``).

``forget me`` deletes every turn you wrote on this platform, in every channel,
and the bot's replies to them; ``forget channel`` deletes this channel's whole
history, its threads included, and only an admin (``router.admins``) may ask.
"""

from __future__ import annotations

from confab.bot.skill import Skill, SkillContext


def _messages(number: int) -> str:
    return "1 message" if number == 1 else f"{number} messages"


def _replies(number: int) -> str:
    return "1 reply" if number == 1 else f"{number} replies"


class ForgetSkill(Skill):
    name = "forget"
    help = "Delete what you said to me (`me`), or this channel's history (`channel`, admins)."
    usage = "me | channel"
    admin_commands = ("channel",)

    async def run(self, ctx: SkillContext) -> None:
        what = ctx.args.strip().lower()
        if what == "me":
            forgotten = await ctx.privacy.forget_author()
            replies = f" and my {_replies(forgotten.replies)} to them" if forgotten.replies else ""
            await ctx.reply(
                f"Done: I deleted {_messages(forgotten.messages)} of yours (this one too), "
                f"everywhere on this platform{replies}."
            )
        elif what == "channel":
            forgotten = await ctx.privacy.forget_channel()
            replies = f" and my {_replies(forgotten.replies)}" if forgotten.replies else ""
            await ctx.reply(
                f"Done: I deleted this channel's history: {_messages(forgotten.messages)} "
                f"(this one too){replies}."
            )
        else:
            await ctx.reply(
                f"Usage: `{ctx.prefix}forget me` deletes everything you said to me and my "
                f"replies; `{ctx.prefix}forget channel` (admins only) deletes this channel's "
                "history."
            )
