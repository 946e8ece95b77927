"""The model while it loads at start: the bot serves at once, and only answers that
need the model wait for it (``!ping`` and ``!help`` do not)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from confab.bot.errors import ModelUnavailable
from confab.bot.llm.backend import ChatMessage, GenerationParams, ModelBackend


class PendingModel(ModelBackend):
    """A backend that is the model ``loading`` gives, once it has: streaming waits for
    the load; what needs the model now (counting tokens) says it is still loading."""

    def __init__(self, loading: asyncio.Future[ModelBackend]) -> None:
        self._loading = loading

    @property
    def name(self) -> str:  # type: ignore[override]
        return self._loaded().name if self._loading.done() else "model (loading)"

    @property
    def default_params(self) -> GenerationParams:  # type: ignore[override]
        return self._loaded().default_params

    @property
    def context_window(self) -> int:
        return self._loaded().context_window

    async def ready(self) -> ModelBackend:
        """The loaded model, once it is; its error if loading failed."""
        return await asyncio.shield(self._loading)

    async def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams | None = None
    ) -> AsyncIterator[str]:
        model = await self.ready()
        async for piece in model.stream(messages, params):
            yield piece

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return self._loaded().count_tokens(messages)

    def count_text(self, text: str) -> int:
        return self._loaded().count_text(text)

    def _loaded(self) -> ModelBackend:
        if not self._loading.done():
            raise ModelUnavailable("the model is still loading")
        if self._loading.cancelled() or self._loading.exception() is not None:
            raise ModelUnavailable("the model failed to load")
        return self._loading.result()
