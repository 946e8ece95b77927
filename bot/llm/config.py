"""The ``[model]`` section: which model serves, and how (``[model.openai]`` for a remote one).

The model package owns it; :mod:`confab.bot.config` puts it into the whole file's schema.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from confab.bot.llm.backend import GenerationParams
from confab.bot.paths import cache_dir as default_cache_dir
from confab.bot.paths import data_dir
from confab.bot.section import Section

_SAMPLING = GenerationParams()
# What `[models]` and `confab model finetune --out` accept as a model's name.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Keys that were renamed, old name first: still read, with one warning.
RENAMED = {"adapters_dir": "loras_dir"}


class OpenAIConfig(Section):
    """A model served elsewhere behind an OpenAI-compatible chat completions API."""

    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = ""
    # The environment variable holding the API key; unset or empty sends none.
    api_key_env: str = "CONFAB_OPENAI_API_KEY"
    connect_timeout_s: float = Field(5.0, gt=0)
    # Longest wait for the next piece of a streamed answer.
    read_timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class ModelConfig(Section):
    backend: Literal["transformers", "openai"] = "transformers"
    path: str = ""
    # $XDG_CACHE_HOME/confab when set, else ~/.cache/confab (likewise data_dir below).
    cache_dir: Path = Field(default_factory=default_cache_dir)
    # Where `confab model finetune --out NAME` writes LoRAs and the registry finds them
    # (the default folder keeps its older name, so LoRAs trained before stay found).
    loras_dir: Path = Field(default_factory=lambda: data_dir() / "adapters")
    context_window: int = Field(0, ge=0)
    # Sampling defaults live in one place: GenerationParams.
    max_new_tokens: int = Field(_SAMPLING.max_new_tokens, gt=0, le=8192)
    temperature: float = Field(_SAMPLING.temperature, ge=0.0, le=2.0)
    top_p: float = Field(_SAMPLING.top_p, gt=0.0, le=1.0)
    repetition_penalty: float = Field(_SAMPLING.repetition_penalty, ge=1.0, le=2.0)
    threads: int = Field(0, ge=0)
    dtype: Literal["auto", "float32", "bfloat16", "int4"] = "auto"
    attention: Literal["auto", "sdpa", "eager"] = "auto"
    max_batch_size: int = Field(16, ge=1, le=64)
    # Models loaded at once: the default and those chosen for channels.
    max_loaded: int = Field(3, ge=1, le=32)
    max_queue: int = Field(32, ge=0, le=10_000)
    request_timeout_s: float = Field(120.0, gt=0)
    openai: OpenAIConfig = Field(default_factory=OpenAIConfig)

    def sampling(self) -> GenerationParams:
        """The default generation parameters these settings describe."""
        return GenerationParams(
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            repetition_penalty=self.repetition_penalty,
        )

    @model_validator(mode="before")
    @classmethod
    def _renamed_keys(cls, data: Any) -> Any:
        """Read a key by its old name (``adapters_dir``), warning once that it was renamed."""
        if not isinstance(data, dict) or not RENAMED.keys() & data.keys():
            return data
        data = dict(data)
        for old, new in RENAMED.items():
            if old not in data:
                continue
            if new in data:
                raise ValueError(f"model.{old} is the old name of model.{new}: set only {new}")
            data[new] = data.pop(old)
            # Issued from this one line, so Python shows it once per process.
            warnings.warn(
                f"model.{old} is deprecated and will be removed: call it model.{new}",
                FutureWarning,
                stacklevel=1,
            )
        return data

    @field_validator("cache_dir", "loras_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @model_validator(mode="after")
    def _room_for_a_prompt(self) -> ModelConfig:
        if self.context_window and self.context_window <= self.max_new_tokens:
            raise ValueError(
                f"context_window ({self.context_window}) must be larger than "
                f"max_new_tokens ({self.max_new_tokens}), or 0 for the model's own"
            )
        return self
