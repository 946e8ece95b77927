"""The Slack app manifest for this bot: its name, slash commands, scopes and events.

Built from the ``[slack]`` config and the installed skills, so what Slack is told
(one ``/ask``, ``/summarise`` ... per skill, or one umbrella ``/confab``) is what the
adapter listens for, and the scopes are the ones its Web API calls need. Paste the
rendered manifest at https://api.slack.com/apps (*Create New App → From an app
manifest*, or *App Manifest* of an existing app).

Limits are Slack's manifest reference (https://docs.slack.dev/reference/app-manifest);
a skill Slack would refuse as a command is left out with a warning, never silently.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import yaml  # type: ignore[import-untyped]

from confab.adapters.slack.config import EVENTS_PATH, PRIVATE_FLAG, SlackConfig
from confab.bot.errors import ConfigError
from confab.bot.skill import SkillInfo

APP_NAME_CHARS = 35  # display_information.name
BOT_DISPLAY_NAME_CHARS = 80  # features.bot_user.display_name
COMMAND_CHARS = 32  # features.slash_commands.command, its leading "/" included
MAX_SLASH_COMMANDS = 50
# Slack takes descriptions of 2,000 characters and usage hints of 1,000, but its
# command menu shows one line of each: past these, text is cut at a word.
DESCRIPTION_CHARS = 140
USAGE_HINT_CHARS = 140
ELLIPSIS = "…"

# Slack's own commands, which an app cannot register
# (https://slack.com/help/articles/201259356-Use-built-in-slash-commands).
SLACK_BUILT_IN_COMMANDS = frozenset(
    {
        "active", "apps", "archive", "away", "collapse", "dm", "dnd", "expand", "feed",
        "feedback", "invite", "join", "kick", "leave", "me", "msg", "mute", "open", "prefs",
        "pro", "remind", "remove", "rename", "search", "shortcuts", "shrug", "status",
        "topic", "who",
    }
)  # fmt: skip
_COMMAND_NAME = re.compile(r"[a-z0-9_-]+")
_CHOICE = re.compile(r"\s*\|\s*")

# What the adapter calls and hears. auth.test and chat.getPermalink need no scope.
_HISTORY_SCOPES = (
    "app_mentions:read",  # app_mention events
    # message.* events, and conversations.history / .replies for summaries, in
    # public channels, private channels, DMs and group DMs
    "channels:history",
    "groups:history",
    "im:history",
    "mpim:history",
    "chat:write",  # chat.postMessage, chat.update
)
_LOOKUP_SCOPES = (
    "users:read",  # users.info: people's names
    "files:read",  # files.info and downloading the files shared in a message
)
COMMANDS_SCOPE = "commands"  # slash commands
BOT_EVENTS = ("app_mention", "message.channels", "message.groups", "message.im", "message.mpim")


def slack_manifest(
    config: SlackConfig,
    skills: Sequence[SkillInfo],
    *,
    bot_name: str,
    public_url: str | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The app manifest for ``skills`` (installed ones, in menu order), and warnings for
    the person setting Slack up: skills left out of the commands, a name shortened.

    ``public_url`` is the HTTPS address Slack reaches the bot at (``https://bot.example.com``),
    required in HTTP mode; events, commands and interactivity all go to its
    ``/slack/events``. Raises :class:`ConfigError` when HTTP mode has no usable URL or
    the umbrella command is one of Slack's own.
    """
    warnings: list[str] = []
    request_url = _request_url(config, public_url, warnings)
    name = _fitted_name(bot_name, APP_NAME_CHARS, "app name", warnings)
    if config.command_style == "umbrella":
        commands = [_umbrella_command(config.command_name, skills, name)]
    else:
        commands = _skill_commands(skills, warnings)
    if request_url is not None:
        for command in commands:
            command["url"] = request_url

    features: dict[str, Any] = {
        "app_home": {
            "home_tab_enabled": False,
            "messages_tab_enabled": True,  # people DM the bot
            "messages_tab_read_only_enabled": False,
        },
        "bot_user": {
            "display_name": _fitted_name(
                bot_name, BOT_DISPLAY_NAME_CHARS, "bot display name", warnings
            ),
            "always_online": True,
        },
    }
    if commands:
        features["slash_commands"] = commands
    scopes = [*_HISTORY_SCOPES, *([COMMANDS_SCOPE] if commands else []), *_LOOKUP_SCOPES]
    url = {} if request_url is None else {"request_url": request_url}
    manifest: dict[str, Any] = {
        "_metadata": {"major_version": 1, "minor_version": 1},
        "display_information": {"name": name},
        "features": features,
        "oauth_config": {"scopes": {"bot": scopes}},
        "settings": {
            "event_subscriptions": {**url, "bot_events": list(BOT_EVENTS)},
            "interactivity": {"is_enabled": True, **url},
            "org_deploy_enabled": False,
            "socket_mode_enabled": config.mode == "socket",
            # The bot runs on one long-lived token (xoxb-...), which rotation would expire.
            "token_rotation_enabled": False,
        },
    }
    return manifest, warnings


def render_manifest(manifest: dict[str, Any], fmt: Literal["yaml", "json"]) -> str:
    """The manifest as Slack's manifest editor takes it, keys in their order."""
    if fmt == "json":
        return json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    if fmt == "yaml":
        text: str = yaml.safe_dump(
            manifest, sort_keys=False, allow_unicode=True, default_flow_style=False, width=10_000
        )
        return text
    raise ValueError(f"unknown manifest format {fmt!r}: use 'yaml' or 'json'")


def _request_url(config: SlackConfig, public_url: str | None, warnings: list[str]) -> str | None:
    """Where Slack posts in HTTP mode (``…/slack/events``); None in Socket Mode."""
    if config.mode == "socket":
        if public_url:
            warnings.append(
                f"Socket Mode needs no public URL: {public_url} is not used "
                '(set slack.mode = "http" for Slack to post to it)'
            )
        return None
    if not public_url or not public_url.strip():
        raise ConfigError(
            "Slack's HTTP mode needs the bot's public URL: pass the HTTPS address Slack "
            "reaches it at, such as https://bot.example.com."
        )
    parts = urlsplit(public_url.strip())
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(
            f"{public_url!r} is not a public HTTPS URL: Slack posts only to https:// "
            "addresses, such as https://bot.example.com."
        )
    path = parts.path.rstrip("/")
    if not path.endswith(EVENTS_PATH):  # a base URL, or one behind a proxy's path
        path += EVENTS_PATH
    return urlunsplit(("https", parts.netloc, path, "", ""))


def _fitted_name(bot_name: str, limit: int, field: str, warnings: list[str]) -> str:
    name = " ".join(bot_name.split())
    if not name:
        raise ConfigError("The bot needs a name for its Slack app (bot.name).")
    if len(name) <= limit:
        return name
    cut = name.rfind(" ", 0, limit + 1)
    short = name[:cut] if cut > 0 else name[:limit]
    warnings.append(
        f"the bot's name {name!r} is longer than Slack's {limit} characters "
        f"for the {field}: it is {short!r} there"
    )
    return short


def _skill_commands(skills: Sequence[SkillInfo], warnings: list[str]) -> list[dict[str, Any]]:
    commands: list[dict[str, Any]] = []
    taken: set[str] = set()
    for skill in skills:
        problem = _command_problem(skill.name)
        if problem is None and skill.name in taken:
            problem = "another skill has that name"
        if problem is None and len(commands) == MAX_SLASH_COMMANDS:
            problem = f"Slack allows {MAX_SLASH_COMMANDS} slash commands per app"
        if problem is not None:
            warnings.append(
                f"/{skill.name} left out: {problem}; the skill still answers text commands "
                'and mentions, and slack.command_style = "umbrella" runs it too'
            )
            continue
        taken.add(skill.name)
        suffix = " (admins only)" if skill.admin_only else ""
        commands.append(
            {
                "command": f"/{skill.name}",
                "description": _shorten(skill.help, DESCRIPTION_CHARS - len(suffix)) + suffix,
                "usage_hint": _usage_hint(skill.usage),
                # Text reaches the skill as typed, not as Slack's <@U123> markup.
                "should_escape": False,
            }
        )
    return commands


def _command_problem(name: str) -> str | None:
    """Why Slack would refuse ``/name`` as an app's command, or None."""
    if not _COMMAND_NAME.fullmatch(name):
        return "Slack commands are lowercase letters, digits, '-' and '_'"
    if len(name) + 1 > COMMAND_CHARS:
        return f"Slack commands are at most {COMMAND_CHARS - 1} characters after the '/'"
    if name in SLACK_BUILT_IN_COMMANDS:
        return f"Slack keeps /{name} for its own built-in command"
    return None


def _usage_hint(usage: str) -> str:
    """The skill's usage, with the ``--private`` switch every slash command takes."""
    usage = " ".join(usage.split())
    with_private = f"{usage} [{PRIVATE_FLAG}]".strip()
    if len(with_private) <= USAGE_HINT_CHARS:
        return with_private
    return _shorten(usage, USAGE_HINT_CHARS)


def _umbrella_command(
    command_name: str, skills: Sequence[SkillInfo], bot_name: str
) -> dict[str, Any]:
    if command_name in SLACK_BUILT_IN_COMMANDS:
        raise ConfigError(
            f"slack.command_name {command_name!r} is one of Slack's own commands "
            f"(/{command_name}); choose another, such as 'confab'."
        )
    names = [skill.name for skill in skills]
    description = (
        f"Run one of {bot_name}'s commands: {', '.join(names)}. "
        f"Add {PRIVATE_FLAG} for an answer only you see."
    )
    # " | " parts the skills; a skill's own choices close up ("forget me|channel").
    alternatives = [
        f"{skill.name} {_CHOICE.sub('|', ' '.join(skill.usage.split()))}".strip()
        for skill in skills
    ]
    return {
        "command": f"/{command_name}",
        "description": _shorten(description, DESCRIPTION_CHARS),
        "usage_hint": _alternatives(alternatives, USAGE_HINT_CHARS)
        or _alternatives(names, USAGE_HINT_CHARS),
        "should_escape": False,
    }


def _alternatives(parts: Sequence[str], limit: int) -> str:
    """``a | b | c`` within ``limit``, cut after a whole alternative (``a | b | …``);
    empty when not even the first fits."""
    joined = " | ".join(parts)
    if len(joined) <= limit:
        return joined
    kept: list[str] = []
    for part in parts:
        if len(" | ".join([*kept, part, ELLIPSIS])) > limit:
            break
        kept.append(part)
    return " | ".join([*kept, ELLIPSIS]) if kept else ""


def _shorten(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, still reading whole: up to the last
    sentence that fits (when that keeps half of it), else up to the last whole word
    and "…". Only a single word longer than ``limit`` is cut inside."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = text[: limit + 1]  # a space just past the limit still ends a word within it
    sentence = max(head.rfind(". "), head.rfind("! "), head.rfind("? "))
    if sentence + 1 >= limit // 2:
        return head[: sentence + 1]
    word = text.rfind(" ", 0, limit - len(ELLIPSIS) + 1)
    if word <= 0:
        return text[: limit - len(ELLIPSIS)] + ELLIPSIS
    return text[:word].rstrip(",;:-–—( ") + ELLIPSIS
