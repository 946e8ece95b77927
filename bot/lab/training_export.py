"""Opted-in conversations as a chat JSONL dataset, with mentions made readable.

``confab data export`` writes what :func:`confab.storage.training.opted_in_exchanges`
finds: each conversation (a channel, or a thread) becomes one chat of the
questions asked there and the bot's answers, in order. Platform mentions
(``<@123>``, ``<@U123>``, ``<#C1|general>``, ``<!here>``) become ``@name`` —
the display name recorded for that person, or ``@someone`` — so no user id
reaches a training file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from itertools import groupby
from pathlib import Path

from confab.bot.lab.dataset import Chat, DatasetError
from confab.bot.llm.backend import ChatMessage
from confab.bot.messages import args_after_command
from confab.storage.training import Exchange

# Discord <@123>, <@!123>; Slack <@U123> or <@U123|name>.
PERSON = re.compile(r"<@!?([A-Za-z0-9]+)(?:\|([^>]*))?>")
ROLE = re.compile(r"<@&\d+>")  # Discord role
CHANNEL = re.compile(r"<#[A-Za-z0-9]+(?:\|([^>]*))?>")  # Discord <#1>, Slack <#C1|general>
SPECIAL = re.compile(
    r"<!(here|channel|everyone)(?:\|[^>]*)?>|<!subteam\^[A-Za-z0-9]+(?:\|([^>]*))?>"
)


def readable(text: str, names: Mapping[str, str]) -> str:
    """``text`` with every mention replaced by a name or a placeholder."""

    def person(match: re.Match[str]) -> str:
        name = names.get(match.group(1)) or match.group(2)
        return f"@{name}" if name else "@someone"

    def channel(match: re.Match[str]) -> str:
        return f"#{match.group(1)}" if match.group(1) else "#channel"

    def special(match: re.Match[str]) -> str:
        return f"@{match.group(1)}" if match.group(1) else f"@{match.group(2) or 'group'}"

    text = PERSON.sub(person, text)
    text = ROLE.sub("@role", text)
    text = CHANNEL.sub(channel, text)
    return SPECIAL.sub(special, text)


def chats_of(exchanges: Sequence[Exchange], names: Mapping[str, Mapping[str, str]]) -> list[Chat]:
    """One chat per conversation; ``names`` are display names by platform, then user id."""
    chats = []
    for key, group in groupby(exchanges, key=lambda exchange: exchange.key):
        known = names.get(key.platform, {})
        messages: list[ChatMessage] = []
        for exchange in group:
            question = exchange.question
            text = args_after_command(question.text) if question.command else question.text
            asked, answered = readable(text, known).strip(), readable(exchange.answer.text, known)
            if asked and answered.strip():
                messages += [ChatMessage("user", asked), ChatMessage("assistant", answered.strip())]
        if messages:
            where = f"{key.platform}/{key.channel}" + (f"/{key.thread}" if key.thread else "")
            chats.append(Chat(tuple(messages), where))
    return chats


def write_chats(chats: Sequence[Chat], out: Path) -> Path:
    """Write ``chats`` as chat JSONL to ``out``, whole or not at all."""
    staging = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with staging.open("w", encoding="utf-8") as handle:
            handle.writelines(chat.to_json() + "\n" for chat in chats)
        os.replace(staging, out)
    except OSError as error:
        staging.unlink(missing_ok=True)
        raise DatasetError(f"cannot write {out}: {error.strerror}") from None
    return out
