"""The optional parts of the install, and the one sentence that names a missing one.

The base install runs the console, storage, scheduling and the OpenAI-compatible
backend. The in-process model, Discord and Slack are extras (pyproject.toml's
``[project.optional-dependencies]``); code that needs one imports it where it is
used, and a ``ModuleNotFoundError`` for one of the modules below reaches the
person as :func:`missing_extra`'s sentence instead of a traceback.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager

from confab.bot.errors import ConfigError

# The extra that provides each top-level module, what it is for, and its distribution.
EXTRAS: dict[str, tuple[str, str, str]] = {
    "torch": ("local", "the in-process model", "torch"),
    "transformers": ("local", "the in-process model", "transformers"),
    "peft": ("local", "the in-process model", "peft"),
    "gguf": ("local", "the in-process model", "gguf"),
    "accelerate": ("local", "the in-process model", "accelerate"),
    "safetensors": ("local", "the in-process model", "safetensors"),
    "discord": ("discord", "the Discord adapter", "discord.py"),
    "slack_bolt": ("slack", "the Slack adapter", "slack-bolt"),
    "slack_sdk": ("slack", "the Slack adapter", "slack-sdk"),
    "yaml": ("slack", "the Slack adapter", "PyYAML"),
}


LOCAL_MODEL = ("torch", "transformers")


class MissingExtra(ConfigError):
    """Something configured needs an extra that is not installed."""


def install_command(extra: str) -> str:
    return f"pip install 'confab-bot[{extra}]'"


def local_model_missing() -> str | None:
    """The sentence when the in-process model cannot run here, else None (found, not
    imported: importing torch costs seconds)."""
    for module in LOCAL_MODEL:
        if importlib.util.find_spec(module) is None:
            return missing_extra(ModuleNotFoundError(name=module))
    return None


def missing_extra(error: BaseException) -> str | None:
    """The sentence for an import that failed because an extra is not installed, or
    None when ``error`` is anything else (a real bug keeps its traceback)."""
    if not isinstance(error, ModuleNotFoundError) or not error.name:
        return None
    module = error.name.split(".")[0]
    if module not in EXTRAS:
        return None
    extra, needs, distribution = EXTRAS[module]
    return f"{needs} needs {distribution}, which is not installed: {install_command(extra)}"


@contextmanager
def needs_extra(user_message: str) -> Iterator[None]:
    """Turn the block's import of a missing extra into :class:`MissingExtra`, whose
    ``user_message`` a chat user may see and whose log message names the install."""
    try:
        yield
    except ModuleNotFoundError as error:
        if (sentence := missing_extra(error)) is None:
            raise
        raise MissingExtra(user_message, sentence) from None
