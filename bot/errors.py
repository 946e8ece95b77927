"""Exceptions that carry a sentence meant for the person chatting with the bot."""

from __future__ import annotations


class ConfabError(Exception):
    """An error with a short, user-facing explanation.

    ``user_message`` is what a chat user sees; ``str(error)`` (the log message)
    may carry more detail for operators.
    """

    def __init__(self, user_message: str, log_message: str | None = None) -> None:
        super().__init__(log_message or user_message)
        self.user_message = user_message


class SkillError(ConfabError):
    """Raised by a skill to answer with a clear message instead of a result."""


class NotAllowed(ConfabError):
    """The person asked for something only an admin may do."""


class ConfigError(ConfabError):
    """The configuration file or environment is invalid; the bot cannot start."""


class ModelError(ConfabError):
    """The model backend failed to load or to generate."""


class FinetuneError(ConfabError):
    """Fine-tuning cannot start or go on: bad data, no base model, too little RAM."""


class PromptTooLong(ModelError):
    """Even the newest message alone does not fit the model's context window."""


class ModelBusy(ModelError):
    """Too many requests are waiting for the model; this one was refused at once."""

    def __init__(self, log_message: str) -> None:
        super().__init__("I'm busy answering others; please try again in a moment.", log_message)


class ModelTimeout(ModelError):
    """The model did not finish answering within the configured time."""

    def __init__(self, log_message: str) -> None:
        super().__init__("The model took too long to answer; please try again.", log_message)


class ModelUnavailable(ModelError):
    """The model cannot answer now: its worker failed or the remote server is down."""

    def __init__(self, log_message: str) -> None:
        super().__init__(
            "The model is unavailable right now; please try again shortly.", log_message
        )


class AdapterError(ConfabError):
    """A platform adapter was asked for something it cannot do."""


class CannotPost(AdapterError):
    """The platform will not take messages from the bot in that channel: it was never
    invited, was removed, or the channel is gone. Nothing more can be said there."""


class RateLimited(AdapterError):
    """The platform refused a write for its rate limit, after the SDK's own retries;
    ``retry_after_s`` is how long it asked to wait."""

    def __init__(self, retry_after_s: float, log_message: str) -> None:
        super().__init__("The platform is slowing me down; please try again shortly.", log_message)
        self.retry_after_s = retry_after_s

    @classmethod
    def after(cls, retry_after: object, log_message: str) -> RateLimited:
        """From a ``Retry-After`` header's value; 1 s when it is missing or not a number."""
        try:
            seconds = float(str(retry_after))
        except ValueError:
            seconds = 1.0
        return cls(seconds, log_message)


class MessageTooLong(AdapterError):
    """A text longer than the adapter's declared limit was sent directly."""


class Unsupported(AdapterError):
    """The adapter does not declare the capability that was used."""
