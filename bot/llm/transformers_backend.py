"""A local model on torch, shared by every request through the batching engine.

transformers loads and converts the model; a start that reads the kept 4-bit model
serves it with confab's own decoder and tokenizer (:mod:`confab.bot.llm.decoder`,
:mod:`confab.bot.llm.chat_tokenizer`) and never imports transformers.

The event loop never waits for a forward pass: prompts are tokenised on a
helper thread and generation runs on the engine's worker thread, which hands
text back through an asyncio queue per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from confab.bot.errors import ModelError, ModelUnavailable
from confab.bot.llm.backend import ChatMessage, GenerationParams, ModelBackend
from confab.bot.llm.chat_tokenizer import ChatTokenizer
from confab.bot.llm.compute import pick_model
from confab.bot.llm.config import ModelConfig
from confab.bot.llm.context import fit_messages
from confab.bot.llm.engine import BatchEngine, EngineLoad, worker_thread
from confab.bot.llm.int4 import is_packed
from confab.bot.llm.loading import LOADING
from confab.bot.llm.lora_folder import base_folder, is_lora, lora_base, merged_model
from confab.bot.llm.packaged import ensure_assembled
from confab.bot.llm.packed_store import PackedStore
from confab.bot.llm.weights import Progress, loadable_folder, resolve_model_path

log = logging.getLogger(__name__)

# How long stopping waits for a load under way (a warm one takes about 0.5 s; a first
# start's conversion or compute probe, each about 9 s, cannot stop half-way).
STOP_LOADING_S = 10.0


def _quiet_transformers() -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def _tokenizer_for(folder: Path) -> Any:
    """The folder's tokenizer, through ``tokenizers`` where that gives transformers' result."""
    tokenizer = ChatTokenizer.from_folder(folder)
    if tokenizer is not None:
        return tokenizer
    _quiet_transformers()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def _lora_folder(setting: str) -> Path | None:
    """``model.path`` when it is a LoRA folder ``confab model finetune`` wrote."""
    path = Path(setting).expanduser() if setting else None
    return path if path is not None and is_lora(path) else None


class TransformersBackend(ModelBackend):
    """The bundled SmolLM2 (or any local folder, GGUF file or fine-tuned LoRA)
    through transformers."""

    def __init__(self, config: ModelConfig, progress: Progress | None = None) -> None:
        self._config = config
        self._progress = progress or (lambda text: log.info("%s", text))
        self._model: Any = None
        self._tokenizer: Any = None
        self._engine: BatchEngine | None = None
        self._worker = worker_thread()
        self._loading: Future[None] | None = None
        self._stopping = threading.Event()
        self._window = 0
        self.default_params = config.sampling()

    @property
    def context_window(self) -> int:
        return self._window

    @property
    def model(self) -> Any:
        """The loaded torch module (``None`` before :meth:`start`), for measurements and tests."""
        return self._model

    @property
    def tokenizer(self) -> Any:
        """The loaded tokenizer (``None`` before :meth:`start`)."""
        return self._tokenizer

    @property
    def dtype(self) -> str:
        """The compute dtype in use, e.g. ``"float32"``; ``"int4"`` for 4-bit decoder weights
        with bfloat16 activations."""
        if self._model is None:
            return ""
        if is_packed(self._model):
            return "int4"
        return str(self._model.dtype).removeprefix("torch.")

    async def start(self) -> None:
        # Loaded on the thread that will run every forward pass (see confab.bot.llm.engine).
        self._loading = self._worker.submit(self._load)
        await asyncio.wrap_future(self._loading)

    async def close(self) -> None:
        await self._stop_loading()
        if self._engine is not None:
            await asyncio.to_thread(self._engine.close)
        self._worker.shutdown(wait=False)
        self._engine = None
        self._model = self._tokenizer = None

    async def _stop_loading(self) -> None:
        """Let a load under way stop at its next step, and wait for it (up to
        :data:`STOP_LOADING_S`): the process must not exit while the loader thread is
        inside torch, whose teardown then aborts it ("terminate called without an
        active exception", seen when a bot was stopped half a second into a start)."""
        loading, self._loading = self._loading, None
        if loading is None or loading.done():
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(asyncio.wrap_future(loading), STOP_LOADING_S)
        except TimeoutError:
            log.warning("the model was still loading %g s after stopping began", STOP_LOADING_S)
        except Exception:  # a load that fails on its way out was said where it was awaited
            pass

    def _load(self) -> None:
        with LOADING:
            self._load_now()

    def _check_stopping(self) -> None:
        if self._stopping.is_set():
            raise ModelUnavailable("the bot stopped while the model was loading")

    def _load_now(self) -> None:
        import torch

        lora = _lora_folder(self._config.path)
        if lora is not None:  # a fine-tuned LoRA: its base with the LoRA merged in
            folder = base_folder(lora_base(lora), self._config.cache_dir, self._progress)
            name, model_key = lora.name, f"{folder}+{lora.resolve()}"
        else:
            if self._config.path:  # a model shipped in parts is joined at its first use
                ensure_assembled(Path(self._config.path).expanduser(), self._config.cache_dir)
            model_path = resolve_model_path(self._config.path)
            folder = loadable_folder(model_path, self._config.cache_dir, self._progress)
            name, model_key = model_path.name, str(folder)

        self._check_stopping()  # a conversion, the longest step, may have just ended
        if self._config.threads:
            torch.set_num_threads(self._config.threads)

        # transformers is imported only when its model is loaded: a start that reads the
        # kept 4-bit model serves it with confab.bot.llm.decoder instead.
        def load_model(dtype: torch.dtype) -> Any:
            _quiet_transformers()
            if lora is not None:
                return merged_model(lora, folder, dtype)
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained(
                str(folder), local_files_only=True, dtype=dtype
            )
            return model.eval()

        try:
            self._tokenizer = _tokenizer_for(folder)
            self._check_stopping()
            model = pick_model(
                load_model,
                self._tokenizer,
                self._config.dtype,
                self._config.attention,
                self._config.cache_dir,
                model_key,
                self._progress,
                PackedStore.for_model(
                    self._config.cache_dir, folder, [folder] + ([lora] if lora else [])
                ),
            )
        except (OSError, ValueError, RuntimeError) as error:  # e.g. a LoRA of another shape
            raise ModelError(
                "The model could not be loaded.", f"loading {folder} failed: {error}"
            ) from error
        self._model = model
        native = int(getattr(model.config, "max_position_embeddings", 2048))
        self._window = min(self._config.context_window or native, native)
        self._engine = BatchEngine(
            model,
            self._tokenizer,
            window=self._window,
            max_batch_size=self._config.max_batch_size,
            max_queue=self._config.max_queue,
            executor=self._worker,
            # One turn that long means every request in it has timed out already.
            stall_timeout_s=self._config.request_timeout_s,
        )
        self.name = name
        log.info(
            "model %s ready (%s, %s attention, context window %d tokens, batches of up to %d)",
            self.name,
            self.dtype,
            model.config._attn_implementation,
            self._window,
            self._config.max_batch_size,
        )

    @property
    def load(self) -> EngineLoad | None:
        """How busy the batching engine is; None before :meth:`start`."""
        return self._engine.load if self._engine is not None else None

    def _running_engine(self) -> BatchEngine:
        if self._engine is None:
            raise ModelUnavailable("the model is not loaded (stream() before start())")
        return self._engine

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

    def _prompt(self, messages: Sequence[ChatMessage], params: GenerationParams) -> list[int]:
        budget = self._window - min(params.max_new_tokens, self._window // 2)
        return self._encode(fit_messages(messages, self.count_tokens, budget))

    async def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams | None = None
    ) -> AsyncIterator[str]:
        engine = self._running_engine()
        params = params or self.default_params
        prompt = await asyncio.to_thread(self._prompt, list(messages), params)
        # Closed at once when our consumer stops, so the slot frees at the next step.
        async with contextlib.aclosing(
            engine.stream(prompt, params, self._config.request_timeout_s)
        ) as pieces:
            async for piece in pieces:
                yield piece
