"""The models one process serves: the default and those chosen for channels.

``confab model use NAME [--channel C]`` stores a choice in the database; the
router asks :meth:`ModelPool.for_channel` for every answer. A model is loaded
the first time a choice names it and is kept (each has its own batching engine
and worker thread); two names of the same model share one copy. A choice that
cannot be served (a deleted adapter, a model that fails to load, too many
loaded) is logged and answered by the default model, so a channel is never
left without answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from bot.errors import ConfabError
from bot.llm.backend import ModelBackend

log = logging.getLogger(__name__)

Resolve = Callable[[str | None], tuple[str, Callable[[], ModelBackend]]]
"""A choice (a registry name or path; None: the config's model) → the model's key
(the same for every name of one model) and how to build its backend."""
Choice = Callable[[str, str], Awaitable[str | None]]
"""(platform, channel) → the choice stored for it."""

RETRY_AFTER_S = 60.0  # a model that failed to load is tried again after this long


class ModelPool:
    """Loads models on first use and hands out the one each channel should use."""

    def __init__(
        self,
        resolve: Resolve,
        choice: Choice | None = None,
        *,
        max_loaded: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._resolve = resolve
        self._choice = choice
        self._max_loaded = max_loaded
        self._clock = clock
        self._loaded: dict[str, ModelBackend] = {}
        self._loading: dict[str, asyncio.Task[ModelBackend]] = {}
        self._failed: dict[str, float] = {}
        self._default: ModelBackend | None = None

    @property
    def default(self) -> ModelBackend:
        """The model loaded at start: it answers wherever a choice cannot be served."""
        if self._default is None:
            raise RuntimeError("ModelPool.start() has not run")
        return self._default

    @property
    def loaded(self) -> dict[str, ModelBackend]:
        """The loaded models by key."""
        return dict(self._loaded)

    async def start(
        self, choice: str | None, preloaded: ModelBackend | None = None
    ) -> ModelBackend:
        """Load the default model: ``choice``, or the config's model if that fails.

        ``preloaded`` (already started elsewhere) is taken as the config's model.
        """
        if preloaded is not None:
            self._loaded[self._resolve(None)[0]] = preloaded
        if choice is not None:
            try:
                self._default = await self._load(*self._resolve(choice))
                return self._default
            except Exception as error:
                log.error(
                    "the default model %s could not be loaded (%s); serving the config's model",
                    choice,
                    _reason(error),
                    exc_info=not isinstance(error, ConfabError),
                )
        key, build = self._resolve(None)
        self._default = self._loaded.get(key) or await self._load(key, build)
        return self._default

    async def for_channel(self, platform: str, channel: str) -> ModelBackend:
        """The model that should answer in a channel; the default whenever its choice fails."""
        if self._choice is None:
            return self.default
        try:
            choice = await self._choice(platform, channel)
        except Exception:
            log.warning(
                "could not read the model chosen for %s/%s; using the default",
                platform,
                channel,
                exc_info=True,
            )
            return self.default
        return await self.get(choice)

    async def get(self, choice: str | None) -> ModelBackend:
        """The model ``choice`` names, loading it the first time; the default if it cannot be."""
        try:
            key, build = self._resolve(choice)
        except ConfabError as error:
            return self._instead(choice, error)
        if key in self._loaded:
            return self._loaded[key]
        failed_at = self._failed.get(key)
        if failed_at is not None and self._clock() - failed_at < RETRY_AFTER_S:
            return self.default  # logged when it failed
        task = self._loading.get(key)
        if task is None:
            if len(self._loaded) + len(self._loading) >= self._max_loaded:
                return self._instead(
                    choice,
                    ConfabError(
                        f"{len(self._loaded)} models are loaded already "
                        f"(model.max_loaded = {self._max_loaded})"
                    ),
                )
            task = asyncio.create_task(self._load(key, build), name=f"load model {key}")
            self._loading[key] = task
        try:
            # Shielded: one message giving up (a cancelled answer) does not stop the load.
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            return self._instead(choice, error)

    async def _load(self, key: str, build: Callable[[], ModelBackend]) -> ModelBackend:
        started = self._clock()
        try:
            backend = build()
            await backend.start()
        except BaseException:
            self._failed[key] = self._clock()
            raise
        finally:
            self._loading.pop(key, None)
        self._failed.pop(key, None)
        self._loaded[key] = backend
        log.info("loaded model %s in %.1f s", backend.name, self._clock() - started)
        return backend

    def _instead(self, choice: str | None, error: BaseException) -> ModelBackend:
        log.error(
            "the model %s cannot serve (%s); the default model %s answers instead",
            choice,
            _reason(error),
            self.default.name,
            exc_info=not isinstance(error, ConfabError),
        )
        return self.default

    async def close(self) -> None:
        """Stop loading and close every loaded model."""
        for task in list(self._loading.values()):
            task.cancel()
        await asyncio.gather(*self._loading.values(), return_exceptions=True)
        for backend in self._loaded.values():
            try:
                await backend.close()
            except Exception:
                log.exception("closing the model %s failed", backend.name)
        self._loaded.clear()


def _reason(error: BaseException) -> str:
    return str(error) or type(error).__name__
