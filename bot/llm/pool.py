"""The models one process serves: the default and those chosen for channels.

``confab model use NAME [--channel C]`` stores a choice in the database; the
router asks :meth:`ModelPool.for_channel` for every answer. A model is loaded
the first time a choice names it and is kept (each has its own batching engine
and worker thread); two names of the same model share one copy. At most
``max_loaded`` are kept: past that the least recently used one (never the
model loaded at start) is unloaded, after ``retire_after_s`` so that answers
under way on it can finish. A choice that cannot be served (a deleted LoRA,
a model that fails to load) is logged and answered by the default choice, or
else the model loaded at start, so a channel is never left without answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from confab.bot.errors import ConfabError, ModelUnavailable
from confab.bot.llm.backend import ModelBackend

log = logging.getLogger(__name__)

Build = Callable[[], ModelBackend]
Resolve = Callable[[str | None], tuple[str, Build]]
"""A choice (a registry name or path; None: the config's model) → the model's key
(the same for every name of one model) and how to build its backend."""
ChannelChoice = Callable[[str, str], Awaitable[str | None]]
"""(platform, channel) → the model chosen for that channel alone, if any."""
DefaultChoice = Callable[[], Awaitable[str | None]]
"""→ the model chosen for every other channel (None: the config's)."""

RETRY_AFTER_S = 60.0  # a model that failed is tried (and complained about) again after this
FRESH_S = 5.0  # how long a choice's resolution (a look at the disk) is trusted


class ModelPool:
    """Loads models on first use and hands out the one each channel should use."""

    def __init__(
        self,
        resolve: Resolve,
        channel_choice: ChannelChoice | None = None,
        default_choice: DefaultChoice | None = None,
        *,
        max_loaded: int = 3,
        retire_after_s: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._resolve = resolve
        self._channel_choice = channel_choice
        self._default_choice = default_choice
        self._max_loaded = max_loaded
        self._retire_after_s = retire_after_s
        self._clock = clock
        self._loaded: OrderedDict[str, ModelBackend] = OrderedDict()  # least recently used first
        self._loading: dict[str, asyncio.Task[ModelBackend]] = {}
        self._retiring: dict[asyncio.Task[None], ModelBackend] = {}
        self._resolved: dict[str | None, tuple[float, tuple[str, Build] | ConfabError]] = {}
        self._failed: dict[str, float] = {}
        self._complained: dict[str | None, float] = {}
        self._start_key: str | None = None
        self._start_model: ModelBackend | None = None
        self._warming: set[asyncio.Task[ModelBackend | None]] = set()
        self._closed = False

    @property
    def default(self) -> ModelBackend:
        """The model loaded at start: it answers when no choice can be served."""
        if self._start_model is None:
            raise RuntimeError("ModelPool.start() has not run")
        return self._start_model

    @property
    def backends(self) -> list[ModelBackend]:
        """The loaded models, least recently used first."""
        return list(self._loaded.values())

    @property
    def loaded(self) -> list[str]:
        """The keys of the loaded models, least recently used first."""
        return list(self._loaded)

    async def start(
        self, choice: str | None, preloaded: ModelBackend | None = None
    ) -> ModelBackend:
        """Load the model that answers by default: ``choice``, or the config's model
        if that fails. ``preloaded`` (started elsewhere) is taken as the config's model."""
        if preloaded is not None:
            self._loaded[self._resolve(None)[0]] = preloaded
        for candidate in ([choice] if choice is not None else []) + [None]:
            try:
                key, build = self._resolve(candidate)
                backend = self._loaded.get(key) or await self._load(key, build)
            except Exception as error:
                if candidate is None:
                    raise
                log.error(
                    "the default model %s could not be loaded (%s); serving the config's model",
                    candidate,
                    _reason(error),
                    exc_info=not isinstance(error, ConfabError),
                )
                continue
            self._start_key, self._start_model = key, backend
            return backend
        raise AssertionError("unreachable: the config's model either loads or raises")

    async def for_channel(self, platform: str, channel: str) -> ModelBackend:
        """The model that should answer in a channel: its own choice, else the default
        choice, else the model loaded at start."""
        choices: list[str | None] = []
        try:
            if self._channel_choice is not None:
                own = await self._channel_choice(platform, channel)
                if own is not None:
                    choices.append(own)
            if self._default_choice is not None:
                choices.append(await self._default_choice())
        except Exception:
            log.warning(
                "could not read the model chosen for %s/%s; using the one loaded at start",
                platform,
                channel,
                exc_info=True,
            )
        for choice in choices:
            served = await self._serve(choice)
            if served is not None:
                return served
        return self.default

    async def get(self, choice: str | None) -> ModelBackend:
        """The model ``choice`` names, loading it the first time; the start model if it
        cannot be served."""
        return await self._serve(choice) or self.default

    async def ready(self, choice: str) -> ModelBackend:
        """The model ``choice`` names if it is loaded; else the start model, while
        ``choice`` loads in the background (a first load can take minutes: a model
        converted on its first start), so nobody waits for it."""
        found = self._lookup(choice)
        if not isinstance(found, ConfabError):
            key = found[0]
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
            if key not in self._loading and not self._closed:
                warming = asyncio.create_task(self._serve(choice), name=f"warm model {choice}")
                self._warming.add(warming)
                warming.add_done_callback(self._warming.discard)
        else:
            self._complain(choice, found)
        return self.default

    async def _serve(self, choice: str | None) -> ModelBackend | None:
        if self._closed:
            return None
        found = self._lookup(choice)
        if isinstance(found, ConfabError):
            self._complain(choice, found)
            return None
        key, build = found
        if key in self._loaded:
            self._loaded.move_to_end(key)
            return self._loaded[key]
        failed_at = self._failed.get(key)
        if failed_at is not None and self._clock() - failed_at < RETRY_AFTER_S:
            return None  # complained about when it failed
        task = self._loading.get(key)
        if task is None:
            if not self._make_room():
                self._complain(
                    choice,
                    ConfabError(
                        f"{len(self._loading)} models are loading and the rest are in use "
                        f"(model.max_loaded = {self._max_loaded})"
                    ),
                )
                return None
            task = asyncio.create_task(self._load(key, build), name=f"load model {key}")
            self._loading[key] = task
        try:
            # Shielded: one message giving up (a cancelled answer) does not stop the load.
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # this message was cancelled, not the load
            return None  # the load was cancelled by close()
        except Exception as error:
            self._complain(choice, error)
            return None

    def _lookup(self, choice: str | None) -> tuple[str, Build] | ConfabError:
        """:data:`Resolve`'s answer, kept for :data:`FRESH_S`: it looks at the disk."""
        kept = self._resolved.get(choice)
        if kept is not None and self._clock() - kept[0] < FRESH_S:
            return kept[1]
        try:
            found: tuple[str, Build] | ConfabError = self._resolve(choice)
        except ConfabError as error:
            found = error
        if len(self._resolved) > 1000:
            self._resolved.clear()
        self._resolved[choice] = (self._clock(), found)
        return found

    def _make_room(self) -> bool:
        """Unload the least recently used model if one more would pass ``max_loaded``."""
        if len(self._loaded) + len(self._loading) < self._max_loaded:
            return True
        idle = [key for key in self._loaded if key != self._start_key]
        if not idle:
            return False
        backend = self._loaded.pop(idle[0])
        log.info(
            "unloading the model %s, used least recently (model.max_loaded = %d)",
            backend.name,
            self._max_loaded,
        )
        retiring = asyncio.create_task(self._close_later(backend), name=f"unload {backend.name}")
        self._retiring[retiring] = backend
        retiring.add_done_callback(lambda task: self._retiring.pop(task, None))
        return True

    async def _close_later(self, backend: ModelBackend) -> None:
        await asyncio.sleep(self._retire_after_s)  # answers under way on it finish first
        await _close(backend)

    async def _load(self, key: str, build: Build) -> ModelBackend:
        started = self._clock()
        backend: ModelBackend | None = None
        try:
            backend = build()
            await backend.start()
            if self._closed:
                raise ModelUnavailable("the bot is stopping")
        except BaseException:
            self._failed[key] = self._clock()
            if backend is not None:
                await _close(backend)  # its worker thread, and whatever it loaded
            raise
        finally:
            self._loading.pop(key, None)
        self._failed.pop(key, None)
        self._loaded[key] = backend
        log.info("loaded model %s in %.1f s", backend.name, self._clock() - started)
        return backend

    def _complain(self, choice: str | None, error: BaseException) -> None:
        """Log why ``choice`` cannot serve, once per :data:`RETRY_AFTER_S`."""
        last = self._complained.get(choice)
        if last is not None and self._clock() - last < RETRY_AFTER_S:
            return
        self._complained[choice] = self._clock()
        log.error(
            "the model %s cannot serve (%s); another model answers instead",
            choice if choice is not None else "of the config",
            _reason(error),
            exc_info=not isinstance(error, ConfabError),
        )

    async def close(self) -> None:
        """Stop loading and close every model, those being unloaded included."""
        self._closed = True
        for warming in self._warming:
            warming.cancel()
        retiring, loading = dict(self._retiring), list(self._loading.values())
        for task in [*loading, *retiring]:
            task.cancel()
        await asyncio.gather(*loading, *retiring, return_exceptions=True)
        for backend in [*retiring.values(), *self._loaded.values()]:
            await _close(backend)  # closing twice is harmless: a retired one may be closed
        self._retiring.clear()
        self._loaded.clear()


async def _close(backend: ModelBackend) -> None:
    try:
        await backend.close()
    except Exception:
        log.exception("closing the model %s failed", backend.name)


def _reason(error: BaseException) -> str:
    return str(error) or type(error).__name__
