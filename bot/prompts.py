"""Prompt templates kept as data: a TOML file beside the skill that uses them.

Each key of the file is a template in :class:`string.Template` syntax
(``$topic`` or ``${topic}``; ``$$`` is a dollar sign), so braces in code and
JSON need no escaping, and text substituted in (a user's question, their code)
is never expanded again.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Mapping
from importlib import resources


class PromptTemplates:
    """The named templates of one skill."""

    def __init__(self, templates: Mapping[str, str], source: str = "templates") -> None:
        for name, text in templates.items():
            if not isinstance(text, str):
                raise ValueError(f"{source}: template {name!r} must be a string")
            if not string.Template(text).is_valid():
                raise ValueError(f"{source}: template {name!r} has a stray '$' (write '$$')")
        self._templates = dict(templates)
        self._source = source

    @classmethod
    def load(cls, package: str | None, filename: str) -> PromptTemplates:
        """Read ``filename`` from inside ``package`` (a skill's ``__package__``)."""
        if not package:
            raise ValueError(f"{filename}: templates load from inside a package")
        text = resources.files(package).joinpath(filename).read_text(encoding="utf-8")
        source = f"{package}/{filename}"
        try:
            return cls(tomllib.loads(text), source)
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"{source}: not valid TOML: {error}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._templates

    def render(self, name: str, **values: object) -> str:
        """The template ``name`` with every ``$placeholder`` filled in.

        Raises KeyError naming the template and the placeholder left unfilled.
        """
        try:
            template = self._templates[name]
        except KeyError:
            raise KeyError(f"{self._source} has no template {name!r}") from None
        try:
            return string.Template(template).substitute({k: str(v) for k, v in values.items()})
        except KeyError as missing:
            raise KeyError(f"{self._source}: template {name!r} needs ${missing.args[0]}") from None
