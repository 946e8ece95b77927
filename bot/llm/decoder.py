"""A Llama-family decoder (Llama, SmolLM2, Qwen2) in plain torch, for serving.

Importing transformers and building its model costs about 2 s of a 2-core
machine's start (torch._dynamo, torch.distributed and the lazy modules it
pulls in), longer than reading the packed model itself. This module computes
exactly what transformers' ``LlamaForCausalLM`` and ``Qwen2ForCausalLM``
compute, operation for operation, so that the same weights give the same
logits bit for bit (``tests/e2e/test_decoder.py`` holds it to that, for every
dtype and attention kernel the engine uses), and its state dict has the same
names. Models of other architectures, or with features this one does not
reproduce (scaled rotary positions, sliding windows, other activations), are
served by transformers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from confab.bot.llm.kv_cache import LayerCache

ATTENTION_KERNELS = ("sdpa", "eager")
# Architectures this module reproduces, and whether their q, k and v have a bias.
_ARCHITECTURES = {"LlamaForCausalLM": None, "Qwen2ForCausalLM": True}


@dataclass(slots=True)
class DecoderConfig:
    """The parts of a model folder's ``config.json`` the decoder needs."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    max_position_embeddings: int
    qkv_bias: bool
    tie_word_embeddings: bool
    eos_token_id: tuple[int, ...] = ()
    _attn_implementation: str = field(default="sdpa", compare=False)  # transformers' name

    @classmethod
    def read(cls, folder: Path) -> DecoderConfig | None:
        """The folder's config, or ``None`` when this decoder does not reproduce the model."""
        try:
            raw = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError):
            return None
        return cls.parse(raw) if isinstance(raw, dict) else None

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> DecoderConfig | None:
        architectures = raw.get("architectures") or []
        if len(architectures) != 1 or architectures[0] not in _ARCHITECTURES:
            return None
        rope = raw.get("rope_parameters") or {}
        if raw.get("rope_scaling") or rope.get("rope_type", "default") != "default":
            return None
        if raw.get("hidden_act", "silu") != "silu" or raw.get("mlp_bias"):
            return None
        if set(raw.get("layer_types") or ["full_attention"]) != {"full_attention"}:
            return None
        if raw.get("use_sliding_window") or raw.get("pretraining_tp", 1) != 1:
            return None
        try:
            heads = int(raw["num_attention_heads"])
            hidden = int(raw["hidden_size"])
            bias = _ARCHITECTURES[architectures[0]]
            return cls(
                vocab_size=int(raw["vocab_size"]),
                hidden_size=hidden,
                intermediate_size=int(raw["intermediate_size"]),
                num_hidden_layers=int(raw["num_hidden_layers"]),
                num_attention_heads=heads,
                num_key_value_heads=int(raw.get("num_key_value_heads") or heads),
                head_dim=int(raw.get("head_dim") or hidden // heads),
                rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
                rope_theta=float(rope.get("rope_theta", raw.get("rope_theta", 10000.0))),
                max_position_embeddings=int(raw.get("max_position_embeddings", 2048)),
                qkv_bias=bool(raw.get("attention_bias", False)) if bias is None else bias,
                tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
                eos_token_id=_token_ids(raw.get("eos_token_id")),
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True, slots=True)
class GenerationSettings:
    """``generation_config.json``'s end-of-answer tokens (what the engine reads of it)."""

    eos_token_id: tuple[int, ...] = ()

    @classmethod
    def read(cls, folder: Path, config: DecoderConfig) -> GenerationSettings:
        try:
            raw = json.loads((folder / "generation_config.json").read_text())
            eos = raw.get("eos_token_id") if isinstance(raw, dict) else None
        except (OSError, ValueError):
            eos = None
        return cls(config.eos_token_id if eos is None else _token_ids(eos))


@dataclass(frozen=True, slots=True)
class DecoderOutput:
    logits: torch.Tensor


class Linear(nn.Linear):
    """``nn.Linear`` left uninitialised: its weights come from a saved state."""

    def reset_parameters(self) -> None:
        pass


class Embedding(nn.Embedding):
    """``nn.Embedding`` left uninitialised. Initialising even an empty (meta) one
    imports torch._dynamo, 0.8 s of a start."""

    def reset_parameters(self) -> None:
        pass


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        dtype = hidden.dtype
        hidden = hidden.to(torch.float32)
        variance = hidden.pow(2).mean(-1, keepdim=True)
        hidden = hidden * torch.rsqrt(variance + self.eps)
        return self.weight * hidden.to(dtype)


class Attention(nn.Module):
    def __init__(self, config: DecoderConfig, index: int) -> None:
        super().__init__()
        self.index = index
        self.head_dim = config.head_dim
        self.groups = config.num_attention_heads // config.num_key_value_heads
        self.scaling = config.head_dim**-0.5
        hidden, heads, kv_heads = (
            config.hidden_size,
            config.num_attention_heads,
            config.num_key_value_heads,
        )
        self.q_proj = Linear(hidden, heads * self.head_dim, bias=config.qkv_bias)
        self.k_proj = Linear(hidden, kv_heads * self.head_dim, bias=config.qkv_bias)
        self.v_proj = Linear(hidden, kv_heads * self.head_dim, bias=config.qkv_bias)
        self.o_proj = Linear(heads * self.head_dim, hidden, bias=False)
        self.kernel = "sdpa"

    def forward(
        self,
        hidden: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor | None,
        cache: LayerCache,
    ) -> torch.Tensor:
        shape = hidden.shape[:-1]
        heads_shape = (*shape, -1, self.head_dim)
        query = self.q_proj(hidden).view(heads_shape).transpose(1, 2)
        key = self.k_proj(hidden).view(heads_shape).transpose(1, 2)
        value = self.v_proj(hidden).view(heads_shape).transpose(1, 2)
        cos, sin = rotary[0].unsqueeze(1), rotary[1].unsqueeze(1)
        query = (query * cos) + (_rotate_half(query) * sin)
        key = (key * cos) + (_rotate_half(key) * sin)
        key, value = cache.layers[self.index].update(key, value)
        if self.kernel == "eager":
            out = self._eager(query, key, value, mask)
        else:
            out = self._sdpa(query, key, value, mask)
        projected: torch.Tensor = self.o_proj(out.reshape(*shape, -1).contiguous())
        return projected

    def _sdpa(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        # transformers.integrations.sdpa_attention.sdpa_attention_forward, CPU branch.
        extra = {}
        q_length = query.shape[2]
        if self.groups > 1:
            if mask is None and key.shape[-1] == value.shape[-1] <= 256:
                extra["enable_gqa"] = True
            elif q_length == 1:  # one query: attend on the key/value heads directly
                # (the mask, shared by all heads, broadcasts as it is)
                query = query.reshape(
                    query.shape[0], query.shape[1] // self.groups, self.groups, -1
                )
            else:
                key, value = _repeat_kv(key, self.groups), _repeat_kv(value, self.groups)
        causal = q_length > 1 and mask is None
        if causal and key.shape[2] > q_length:
            key, value = key[:, :, :q_length, :], value[:, :, :q_length, :]
        out = functional.scaled_dot_product_attention(
            query,
            key,
            value,
            attn_mask=mask,
            dropout_p=0.0,
            scale=self.scaling,
            is_causal=causal,
            **extra,
        )
        out = out.reshape(out.shape[0], -1, q_length, value.shape[-1])
        return out.transpose(1, 2).contiguous()

    def _eager(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        key, value = _repeat_kv(key, self.groups), _repeat_kv(value, self.groups)
        weights = torch.matmul(query, key.transpose(2, 3)) * self.scaling
        if mask is not None:
            weights = weights + mask
        weights = functional.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
        return torch.matmul(weights, value).transpose(1, 2).contiguous()


class MLP(nn.Module):
    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.gate_proj = Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.down_proj(
            functional.silu(self.gate_proj(hidden)) * self.up_proj(hidden)
        )
        return out


class Layer(nn.Module):
    def __init__(self, config: DecoderConfig, index: int) -> None:
        super().__init__()
        self.self_attn = Attention(config, index)
        self.mlp = MLP(config)
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(
        self,
        hidden: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor | None,
        cache: LayerCache,
    ) -> torch.Tensor:
        hidden = hidden + self.self_attn(self.input_layernorm(hidden), rotary, mask, cache)
        out: torch.Tensor = hidden + self.mlp(self.post_attention_layernorm(hidden))
        return out


class Body(nn.Module):
    """What transformers calls ``model.model``: embedding, layers, final norm."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.embed_tokens = Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(Layer(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)


class Decoder(nn.Module):
    """A causal language model with the call the batching engine makes:
    ``model(input_ids=, attention_mask=, position_ids=, cache=, logits_to_keep=)``."""

    inv_freq: torch.Tensor

    def __init__(self, config: DecoderConfig, generation: GenerationSettings | None = None) -> None:
        super().__init__()
        self.config = config
        self.generation_config = generation or GenerationSettings(config.eos_token_id)
        self.name_or_path = ""
        with torch.device("meta"):  # weights come from a saved state (load_state_dict assign)
            self.model = Body(config)
            self.lm_head = Linear(config.hidden_size, config.vocab_size, bias=False)
        arange = torch.arange(0, config.head_dim, 2, dtype=torch.float)
        inv_freq = 1.0 / (config.rope_theta ** (arange / config.head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    @classmethod
    def for_folder(cls, folder: Path) -> Decoder | None:
        """An empty decoder shaped for the model in ``folder``; ``None`` when this module
        does not reproduce that model."""
        config = DecoderConfig.read(folder)
        if config is None:
            return None
        decoder = cls(config, GenerationSettings.read(folder, config))
        decoder.name_or_path = str(folder)
        return decoder

    @property
    def dtype(self) -> torch.dtype:
        return self.model.embed_tokens.weight.dtype

    def set_attn_implementation(self, kernel: str) -> None:
        if kernel not in ATTENTION_KERNELS:
            raise ValueError(f"attention kernel {kernel!r}: one of {', '.join(ATTENTION_KERNELS)}")
        self.config._attn_implementation = kernel
        for layer in self.model.layers:
            assert isinstance(layer, Layer)
            layer.self_attn.kernel = kernel

    def new_cache(self) -> LayerCache:
        return LayerCache(self.config.num_hidden_layers)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache: LayerCache,
        use_cache: bool = True,
        logits_to_keep: int = 0,
    ) -> DecoderOutput:
        hidden = self.model.embed_tokens(input_ids)
        past = cache.length
        mask = self._mask(attention_mask, hidden.shape[1], past, hidden.dtype)
        freqs = position_ids[..., None].float() * self.inv_freq.float()
        angles = torch.cat((freqs, freqs), dim=-1)
        rotary = (angles.cos().to(hidden.dtype), angles.sin().to(hidden.dtype))
        for layer in self.model.layers:
            hidden = layer(hidden, rotary, mask, cache)
        hidden = self.model.norm(hidden)
        return DecoderOutput(self.lm_head(hidden[:, -logits_to_keep:, :]))

    def _mask(
        self, attention_mask: torch.Tensor, q_length: int, past: int, dtype: torch.dtype
    ) -> torch.Tensor | None:
        """transformers.masking_utils.create_causal_mask for a 2D padding mask and a cache
        holding ``past`` columns: ``None`` where sdpa's own causal rule suffices, else a
        boolean mask for sdpa or an additive one for eager attention."""
        padding = attention_mask.to(torch.bool)
        kv_length = past + q_length
        if padding.shape[-1] < kv_length:
            padding = functional.pad(padding, (0, kv_length - padding.shape[-1]))
        elif padding.shape[-1] > kv_length:
            padding = padding[:, :kv_length]
        sdpa = self.config._attn_implementation == "sdpa"
        if sdpa and _causal_suffices(padding, q_length, kv_length, past):
            return None
        queries = torch.arange(q_length)[None, None, :, None] + past
        keys = torch.arange(kv_length)[None, None, None, :]
        mask = (keys <= queries) & padding[:, None, None, :]
        mask = mask.expand(padding.shape[0], -1, q_length, kv_length)
        if sdpa:
            return mask
        return torch.where(mask, torch.zeros((), dtype=dtype), torch.finfo(dtype).min)


def _causal_suffices(padding: torch.Tensor, q_length: int, kv_length: int, past: int) -> bool:
    """transformers.masking_utils._ignore_causal_mask_sdpa, for full attention."""
    if (q_length == 1 or kv_length == q_length) and bool(padding.all()):
        return True
    return past == 0 and bool(padding[:, :q_length].all()) and not padding[:, q_length:].any()


def _token_ids(value: Any) -> tuple[int, ...]:
    """A config's token id or list of them."""
    if value is None:
        return ()
    return tuple(int(v) for v in value) if isinstance(value, list) else (int(value),)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _repeat_kv(states: torch.Tensor, groups: int) -> torch.Tensor:
    if groups == 1:
        return states
    batch, heads, length, dim = states.shape
    states = states[:, :, None, :, :].expand(batch, heads, groups, length, dim)
    return states.reshape(batch, heads * groups, length, dim)
