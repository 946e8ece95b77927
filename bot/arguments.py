"""Declared arguments: a skill says once what it takes, and the same declaration gives
the parsing (by the router), the usage line, ``!help NAME`` and typed slash options.

    class Dice(Skill):
        name = "dice"
        help = "Roll dice."
        arguments = (
            Arg("count", int, help="how many dice", default=1, min=1, max=100),
            Arg("sides", int, help="sides of each", default=6, min=2, max=1000),
        )

``!dice 3 20`` runs with ``ctx.options == {"count": 3, "sides": 20}``; ``!dice`` with
the defaults; ``!dice three`` is answered with the usage and what is wrong, and the
skill does not run. Words are separated by spaces; a word with spaces in it is
quoted (``"New York"``). The last argument may take the rest of the text
(``rest=True``, a ``str``): ``!translate french how are you``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from confab.bot.errors import ConfabError


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Final[Any] = _Required()
"""The default of an argument that must be given."""

TYPES: Final = (str, int, float, bool)
YES: Final = frozenset({"yes", "y", "true", "on", "1"})
NO: Final = frozenset({"no", "n", "false", "off", "0"})
QUOTES: Final = "\"“'"  # what a quoted phrase may start with
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_TYPE_WORDS: Final = {int: "a whole number", float: "a number", bool: "yes or no"}


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument a skill takes: ``Arg("count", int, help="how many", default=1)``."""

    name: str
    type: type = str
    help: str = ""
    default: Any = REQUIRED
    choices: tuple[Any, ...] = ()
    min: float | None = None  # int and float only
    max: float | None = None
    rest: bool = False  # a str that takes the rest of the text; only the last one

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def usage(self) -> str:
        """``<count>``, ``[sides]``, ``<text…>``, ``<me|channel>``."""
        said = self.name + ("…" if self.rest else "")
        if self.choices:
            said = "|".join(shown(choice) for choice in self.choices)
        return f"<{said}>" if self.required else f"[{said}]"

    def problems(self) -> list[str]:
        """What is wrong with this declaration (empty when it is usable)."""
        problems = []
        if not _NAME.match(self.name):
            problems.append(f"argument {self.name!r} must be a lowercase identifier")
        if self.type not in TYPES:
            problems.append(
                f"argument {self.name!r} has type {self.type!r}; use str, int, float or bool"
            )
        if self.rest and self.type is not str:
            problems.append(f"argument {self.name!r} takes the rest of the text, so it is a str")
        if (self.min is not None or self.max is not None) and self.type not in (int, float):
            problems.append(f"argument {self.name!r} has min/max but is not a number")
        for choice in self.choices:
            if type(choice) is not self.type:
                problems.append(f"argument {self.name!r} has choice {choice!r} not of its type")
        if not self.required and self.default is not None:
            try:
                self.convert(shown(self.default))
            except ArgumentError as error:
                problems.append(f"argument {self.name!r} has a default it refuses: {error}")
        return problems

    def convert(self, word: str) -> Any:
        """The value of ``word`` for this argument, or :class:`ArgumentError` saying why not."""
        value: Any
        if self.type is bool:
            if word.lower() not in YES | NO:
                raise ArgumentError(f"`{self.name}` must be yes or no, not `{_quoted(word)}`")
            value = word.lower() in YES
        elif self.type in (int, float):
            try:
                value = self.type(word)
            except ValueError:
                raise ArgumentError(
                    f"`{self.name}` must be {_TYPE_WORDS[self.type]}, not `{_quoted(word)}`"
                ) from None
            if self.min is not None and value < self.min:
                raise ArgumentError(f"`{self.name}` must be at least {shown(self.min)}")
            if self.max is not None and value > self.max:
                raise ArgumentError(f"`{self.name}` must be at most {shown(self.max)}")
        else:
            value = word
        if self.choices:
            for choice in self.choices:
                if choice == value or (
                    isinstance(choice, str) and choice.lower() == str(value).lower()
                ):
                    return choice
            said = ", ".join(f"`{shown(c)}`" for c in self.choices)
            raise ArgumentError(f"`{self.name}` must be one of {said}")
        return value


class ArgumentError(ConfabError):
    """Input that does not fit a skill's declared arguments; the message says why."""


def declaration_problems(arguments: Sequence[Arg]) -> list[str]:
    """What is wrong with a skill's ``arguments`` as a whole."""
    problems = [problem for argument in arguments for problem in argument.problems()]
    names = [argument.name for argument in arguments]
    problems += [
        f"argument {name!r} is declared twice"
        for name in sorted(set(names))
        if names.count(name) > 1
    ]
    if any(argument.rest for argument in arguments[:-1]):
        problems.append("only the last argument may take the rest of the text")
    seen_optional = False
    for argument in arguments:
        if argument.required and seen_optional:
            problems.append(f"required argument {argument.name!r} follows an optional one")
        seen_optional = seen_optional or not argument.required
    return problems


def usage_of(arguments: Sequence[Arg]) -> str:
    """The usage line the declaration gives: ``<count> [sides]``."""
    return " ".join(argument.usage for argument in arguments)


def parse_arguments(arguments: Sequence[Arg], text: str) -> dict[str, Any]:
    """The values of ``text`` by the declaration, defaults filled in; raises
    :class:`ArgumentError` for a missing, extra or ill-typed value."""
    values: dict[str, Any] = {}
    rest = text.strip()
    for argument in arguments:
        if argument.rest:
            word, rest = rest, ""
        else:
            word, rest = _next_word(rest)
        if not word:
            if argument.required:
                raise ArgumentError(f"`{argument.name}` is missing")
            values[argument.name] = argument.default
            continue
        values[argument.name] = argument.convert(word)
    if rest and arguments:  # a skill that takes nothing is not put off by "please"
        raise ArgumentError(f"`{_quoted(_next_word(rest)[0])}` is one word too many")
    return values


def join_arguments(arguments: Sequence[Arg], values: Mapping[str, Any]) -> str:
    """The command text that :func:`parse_arguments` reads back as ``values`` (a slash
    command's typed options become the words a typed command would have)."""
    words: list[str] = []
    skipped: list[str] = []  # the defaults of optional ones left out, said if a later one is not
    for argument in arguments:
        value = values.get(argument.name)
        if value is None or value == "":
            default = _word(argument.default, argument)
            if argument.required or not default:
                break  # what follows could not be told apart from this one
            skipped.append(default)
            continue
        words += skipped
        skipped = []
        words.append(str(value).strip() if argument.rest else _word(value, argument))
    return " ".join(words)


def _next_word(text: str) -> tuple[str, str]:
    """The first word of ``text`` (a quoted phrase counts as one) and what follows."""
    text = text.lstrip()
    if not text:
        return "", ""
    quote = text[0]
    if quote in QUOTES:
        closing = "”" if quote == "“" else quote
        end = text.find(closing, 1)
        if end > 0:
            return text[1:end], text[end + 1 :].lstrip()
    word, _, rest = text.partition(" ")
    head, newline, tail = word.partition("\n")  # a line break ends a word too
    if newline:
        return head, (tail + " " + rest).strip() if rest else tail.strip()
    return word, rest.lstrip()


def _word(value: Any, argument: Arg) -> str:
    if value is None or value is REQUIRED:
        return ""
    if argument.type is bool:
        return "yes" if value else "no"
    said = shown(value)
    if said and " " not in said and "\n" not in said and said[0] not in QUOTES:
        return said
    for opening, closing in (('"', '"'), ("'", "'"), ("“", "”")):
        if closing not in said:
            return f"{opening}{said}{closing}"
    return said  # every kind of quote inside: read back as its first word


def shown(value: Any) -> str:
    """A value as a person would type it: yes or no for booleans, 3 for 3.0."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _quoted(word: str) -> str:
    """A user's word as it may be shown inside inline code: one line, no backticks."""
    word = " ".join(word.split()).replace("`", "'")
    return word if len(word) <= 40 else word[:39] + "…"
