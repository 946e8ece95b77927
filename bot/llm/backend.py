"""The interface between skills and whatever model answers them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One turn in the chat format models are trained on.

    ``name`` says which person wrote a user turn; backends do not send it (few
    chat templates know it), see :func:`confab.bot.llm.context.label_speakers`.
    """

    role: Role
    content: str
    name: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """How to sample. ``temperature == 0`` means greedy decoding.

    ``repetition_penalty`` above 1 discourages repeating earlier tokens, which
    keeps small models from looping. ``seed`` makes sampling repeatable; the
    answer ends before the first of the ``stop`` strings, which is not included.
    """

    max_new_tokens: int = 256
    temperature: float = 0.2
    top_p: float = 0.9
    repetition_penalty: float = 1.1
    seed: int | None = None
    stop: tuple[str, ...] = ()


class ModelBackend(ABC):
    """A chat model that streams text.

    Implementations load in :meth:`start`, release everything in :meth:`close`,
    never block the event loop, and fit the prompt into :attr:`context_window`
    by dropping the oldest turns (see :func:`confab.bot.llm.context.fit_messages`).
    """

    name: str = "model"
    default_params: GenerationParams = GenerationParams()

    @property
    @abstractmethod
    def context_window(self) -> int:
        """Tokens the model can attend to: prompt and answer together."""

    @abstractmethod
    def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams | None = None
    ) -> AsyncIterator[str]:
        """Yield the answer's text in chunks as it is generated."""

    async def complete(
        self, messages: Sequence[ChatMessage], params: GenerationParams | None = None
    ) -> str:
        """The whole answer at once, for a skill that must see it before replying."""
        return "".join([piece async for piece in self.stream(messages, params)])

    @abstractmethod
    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """Tokens of ``messages`` rendered as a prompt, generation cue included."""

    @abstractmethod
    def count_text(self, text: str) -> int:
        """Tokens of a bare text, without any chat formatting."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Load whatever the backend needs before the first request."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Stop generating and free the model."""
