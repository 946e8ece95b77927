"""Slack, on slack-bolt's ``AsyncApp``: mentions, DMs, threads and slash commands.

Both connection modes: Socket Mode (an app-level token, no public URL; the
default) and HTTP mode (an aiohttp server at ``/slack/events`` that checks
every request's size and signature on its raw bytes before bolt parses it:
``http_events``). ``confab slack manifest`` prints the app manifest (``tools``).

Every Slack rule lives here: the skills' Markdown becomes Slack mrkdwn with
``&``, ``<`` and ``>`` escaped (so model output never produces ``<!channel>``,
``<!here>`` or a user mention), answers are split at ``slack.max_message_chars``
and updated by ``chat.update`` no faster than ``slack.edit_interval_s``, every
answer in the workspace sharing Slack's rate limits, slash commands are acknowledged at once, and a
mention is answered in its thread, which is the conversation.

Files shared in a message are read with the bot token (the app needs the
``files:read`` scope); a link to a message comes from ``chat.getPermalink``, kept.
"""

from confab.adapters.slack.adapter import SlackAdapter
from confab.adapters.slack.config import SlackConfig

__all__ = ["SlackAdapter", "SlackConfig"]
