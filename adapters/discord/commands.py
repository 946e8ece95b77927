"""Discord slash commands made from the skills' declarations: one per skill, typed
options from declared arguments (one string option where a skill takes free text,
none where it takes nothing), and descriptions that read whole."""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import discord
from discord import app_commands

from confab.bot.arguments import Arg, join_arguments
from confab.bot.skill import SkillInfo
from confab.bot.textsplit import shorten

DESCRIPTION_CHARS = 100  # Discord's limit for a command's or an option's description
OPTION = "text"  # the callback's parameter; shown under the name the usage gives it
_ONE_WORD = re.compile(r"^[<\[]([a-z][a-z0-9_-]{0,31})[>\]]$")  # "<question>", "[command]"

OnCommand = Callable[[discord.Interaction, str, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Option:
    """The one string option of a skill that takes words."""

    name: str
    description: str
    required: bool


def option_of(usage: str, command: str) -> Option | None:
    """The option for a skill's ``usage``: none when it takes nothing, required unless
    the whole usage is optional (``[...]``), named for the word when there is one."""
    usage = " ".join(usage.split())
    if not usage:
        return None
    one_word = _ONE_WORD.match(usage)
    name = one_word[1] if one_word else OPTION
    fits = len(usage) <= DESCRIPTION_CHARS
    description = usage if fits else _alternatives(usage, command)
    return Option(name, description, required=not usage.startswith("["))


def _alternatives(usage: str, command: str) -> str:
    """A usage too long to show, said as the words it starts with: ``add, list, remove
    or timezone; /help schedule shows how``."""
    words: list[str] = []
    for part in usage.split(" | "):
        first = re.split(r"[\s|]", part.strip(), maxsplit=1)[0].strip("[]<>\"'")
        if first and first not in words:
            words.append(first)
    tail = f"; /help {command} shows how"
    said = ", ".join(words[:-1]) + f" or {words[-1]}" if len(words) > 1 else "".join(words)
    return shorten(said, DESCRIPTION_CHARS - len(tail)) + tail


MAX_CHOICES = 25  # Discord's limit; past it the router checks the value alone


def typed_options(arguments: tuple[Arg, ...]) -> list[inspect.Parameter]:
    """The callback parameters discord.py makes typed options of, one per declared
    argument: integers, numbers, booleans, strings; choices and ranges where declared."""
    parameters = []
    for argument in arguments:
        annotation: Any = argument.type
        if argument.choices and len(argument.choices) <= MAX_CHOICES and argument.type is not bool:
            annotation = Literal.__getitem__(argument.choices)
        elif argument.type in (int, float) and (argument.min, argument.max) != (None, None):
            annotation = app_commands.Range[argument.type, argument.min, argument.max]
        default = inspect.Parameter.empty if argument.required else None
        parameters.append(
            inspect.Parameter(
                argument.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=default,
                annotation=annotation,
            )
        )
    return parameters


def _typed_command(
    info: SkillInfo, arguments: tuple[Arg, ...], on_command: OnCommand
) -> app_commands.Command[Any, ..., None]:
    name = info.name

    async def callback(interaction: discord.Interaction, **values: Any) -> None:
        # Back into the words a typed command has: the router parses both alike.
        await on_command(interaction, name, join_arguments(arguments, values))

    first = inspect.Parameter(
        "interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=discord.Interaction
    )
    callback.__signature__ = inspect.Signature([first, *typed_options(arguments)])  # type: ignore[attr-defined]
    described = {
        argument.name: shorten(argument.help or argument.usage, DESCRIPTION_CHARS)
        for argument in arguments
    }
    if described:
        callback = app_commands.describe(**described)(callback)
    return app_commands.Command(
        name=name, description=shorten(info.help, DESCRIPTION_CHARS) or name, callback=callback
    )


def slash_command(info: SkillInfo, on_command: OnCommand) -> app_commands.Command[Any, ..., None]:
    """The slash command for one skill; ``on_command(interaction, name, words)`` runs it.
    Declared arguments become typed options; a free-text usage one string option."""
    name = info.name
    if info.arguments is not None:
        return _typed_command(info, info.arguments, on_command)
    option = option_of(info.usage, name)
    callback: Callable[..., Awaitable[None]]
    if option is None:

        async def callback(interaction: discord.Interaction) -> None:
            await on_command(interaction, name, "")

    elif option.required:

        async def callback(interaction: discord.Interaction, text: str) -> None:
            await on_command(interaction, name, text)

    else:

        async def callback(interaction: discord.Interaction, text: str = "") -> None:
            await on_command(interaction, name, text)

    if option is not None:
        callback = app_commands.describe(text=option.description)(callback)
        if option.name != OPTION:
            callback = app_commands.rename(text=option.name)(callback)
    return app_commands.Command(
        name=name, description=shorten(info.help, DESCRIPTION_CHARS) or name, callback=callback
    )
