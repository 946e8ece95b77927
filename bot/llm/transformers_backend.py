"""A local model on transformers + torch, generating on one worker thread.

Requests are served one at a time in arrival order; the event loop only waits
on a queue, so no platform heartbeat waits for a forward pass.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bot.config import ModelConfig
from bot.errors import ConfabError, ModelError
from bot.llm.backend import ChatMessage, GenerationParams, ModelBackend
from bot.llm.context import fit_messages
from bot.llm.weights import Progress, loadable_folder, resolve_model_path

log = logging.getLogger(__name__)

_END = object()


class TransformersBackend(ModelBackend):
    """The bundled SmolLM2 (or any local folder or GGUF file) through transformers."""

    def __init__(self, config: ModelConfig, progress: Progress | None = None) -> None:
        self._config = config
        self._progress = progress or (lambda text: log.info("%s", text))
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="confab-model")
        self._model: Any = None
        self._tokenizer: Any = None
        self._window = 0
        self._cancels: set[threading.Event] = set()
        self.default_params = GenerationParams(
            max_new_tokens=config.max_new_tokens,
            temperature=config.temperature,
            top_p=config.top_p,
            repetition_penalty=config.repetition_penalty,
        )

    @property
    def context_window(self) -> int:
        return self._window

    async def start(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._load)

    async def close(self) -> None:
        for cancel in list(self._cancels):
            cancel.set()
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        self._model = self._tokenizer = None

    def _load(self) -> None:
        model_path = resolve_model_path(self._config.path)
        folder = loadable_folder(model_path, self._config.cache_dir, self._progress)
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        if self._config.threads:
            torch.set_num_threads(self._config.threads)
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(
                str(folder), local_files_only=True, dtype=torch.float32
            )
        except (OSError, ValueError) as error:
            raise ModelError(
                "The model could not be loaded.", f"loading {folder} failed: {error}"
            ) from error
        self._model = model.eval()
        native = int(getattr(model.config, "max_position_embeddings", 2048))
        self._window = min(self._config.context_window or native, native)
        self.name = model_path.name
        log.info("model %s ready (context window %d tokens)", self.name, self._window)

    def _encode(self, messages: Sequence[ChatMessage]) -> list[int]:
        ids = self._tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in messages],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=False,
        )
        return list(ids)

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return len(self._encode(messages))

    def count_text(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False))

    async def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams | None = None
    ) -> AsyncIterator[str]:
        if self._model is None:
            raise ModelError("The model is not loaded yet.", "stream() before start()")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        cancel = threading.Event()

        def push(item: object) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        self._cancels.add(cancel)
        loop.run_in_executor(
            self._executor,
            self._generate,
            list(messages),
            params or self.default_params,
            push,
            cancel,
        )
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, str)
                yield item
        finally:
            cancel.set()  # the consumer went away: free the worker at the next step
            self._cancels.discard(cancel)

    def _generate(
        self,
        messages: list[ChatMessage],
        params: GenerationParams,
        push: Callable[[object], None],
        cancel: threading.Event,
    ) -> None:
        try:
            if cancel.is_set():
                return
            import torch

            budget = self._window - params.max_new_tokens
            fitted = fit_messages(messages, self.count_tokens, budget)
            input_ids = torch.tensor([self._encode(fitted)])
            sampling: dict[str, Any] = (
                {"do_sample": True, "temperature": params.temperature, "top_p": params.top_p}
                if params.temperature > 0
                else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
            )
            with torch.inference_mode():
                self._model.generate(
                    input_ids=input_ids,
                    attention_mask=torch.ones_like(input_ids),
                    max_new_tokens=params.max_new_tokens,
                    streamer=_chunk_streamer(self._tokenizer, push),
                    stopping_criteria=_stop_when(cancel),
                    pad_token_id=self._tokenizer.eos_token_id,
                    repetition_penalty=params.repetition_penalty,
                    **sampling,
                )
        except ConfabError as error:
            push(error)
        except Exception as error:
            log.exception("generation failed")
            push(ModelError("The model failed while answering.", f"generation failed: {error}"))
        finally:
            push(_END)


def _chunk_streamer(tokenizer: Any, push: Callable[[object], None]) -> Any:
    """A transformers streamer that hands each finished piece of text to ``push``."""
    from transformers import TextStreamer

    class ChunkStreamer(TextStreamer):
        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            if text:
                push(text)

    return ChunkStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)


def _stop_when(cancel: threading.Event) -> Any:
    from transformers import StoppingCriteria, StoppingCriteriaList

    class Cancelled(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
            return cancel.is_set()

    return StoppingCriteriaList([Cancelled()])
