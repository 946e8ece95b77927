"""Discord, on discord.py 2.x: mentions, DMs, replies to the bot, prefix and slash commands.

Every Discord rule lives here: messages of at most 2,000 characters (the
reply stream splits), edits no faster than ``discord.edit_interval_s``
(discord.py itself waits out a 429), ``allowed_mentions`` none on everything
sent (model output never pings anyone), the typing indicator while the model
works, and slash commands deferred at once, answered through the interaction
while its 15-minute token lives and by plain channel messages after that.

A Discord thread is a conversation of its own: ``Message.channel`` is the
parent channel and ``Message.thread`` the thread.

Attachments are read from Discord's CDN; a link to a message is its jump link,
made from the channel cache without asking Discord.
"""

from confab.adapters.discord.adapter import INTENT_HELP, DiscordAdapter
from confab.adapters.discord.config import DiscordConfig

__all__ = ["INTENT_HELP", "DiscordAdapter", "DiscordConfig"]
