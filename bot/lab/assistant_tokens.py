"""Which tokens of a conversation are the assistant's: the labels of fine-tuning.

A model learns (and is scored) only on what it would have to generate: the
assistant's turns, each with the template's end-of-turn token so that stopping
is learnt too. Everything else, the system prompt, the user's turns and the
template's markup, is context and labelled :data:`IGNORED`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confab.bot.llm.backend import ChatMessage

IGNORED = -100
"""The label of a token the loss leaves out (PyTorch's ``ignore_index``)."""


class TemplateMismatch(ValueError):
    """The chat template renders a conversation's start differently from the whole."""


@dataclass(frozen=True, slots=True)
class Encoded:
    """One conversation as token ids, with a label per token (:data:`IGNORED` or the id)."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    truncated: bool

    @property
    def scored(self) -> int:
        """How many tokens the loss counts (assistant tokens after the first token)."""
        return sum(1 for label in self.labels[1:] if label != IGNORED)


def _render(tokenizer: Any, messages: Sequence[ChatMessage], generation_prompt: bool) -> str:
    chat = [{"role": m.role, "content": m.content} for m in messages]
    text = tokenizer.apply_chat_template(
        chat, tokenize=False, add_generation_prompt=generation_prompt
    )
    return str(text)


def encode_chat(tokenizer: Any, messages: Sequence[ChatMessage], max_tokens: int) -> Encoded:
    """Token ids of ``messages`` in the model's chat format, labelled on assistant turns.

    Each piece (context, answer, context, ...) is tokenised on its own, so an
    answer's tokens are exactly those the model generates after the prompt the
    bot gives it. The whitespace a template puts after an end-of-turn token is
    never generated, so it is context. Only the first ``max_tokens`` are kept.
    Raises :class:`TemplateMismatch` when a template renders the start of a
    conversation differently from the whole (the answers cannot be found).
    """
    text = _render(tokenizer, messages, generation_prompt=False)
    spans: list[tuple[int, int]] = []
    for index, message in enumerate(messages):
        if message.role != "assistant" or index == 0:
            continue
        prompt = _render(tokenizer, messages[:index], generation_prompt=True)
        upto = _render(tokenizer, messages[: index + 1], generation_prompt=False).rstrip()
        if not (text.startswith(prompt) and text.startswith(upto)):
            raise TemplateMismatch(
                "the chat template renders a conversation's start differently from the whole"
            )
        spans.append((len(prompt), len(upto)))
    ids: list[int] = []
    labels: list[int] = []
    start = 0
    for begin, end in [*spans, (len(text), len(text))]:
        for piece, scored in ((text[start:begin], False), (text[begin:end], True)):
            if piece:
                tokens = [int(t) for t in tokenizer.encode(piece, add_special_tokens=False)]
                ids.extend(tokens)
                labels.extend(tokens if scored else [IGNORED] * len(tokens))
        start = end
    return Encoded(tuple(ids[:max_tokens]), tuple(labels[:max_tokens]), len(ids) > max_tokens)


def pad_id(tokenizer: Any) -> int:
    """The token that fills short rows of a batch (masked out, never scored)."""
    pad = tokenizer.pad_token_id
    return int(pad if pad is not None else tokenizer.eos_token_id)


def collate(examples: Sequence[Encoded], pad: int) -> tuple[Any, Any, Any]:
    """``input_ids``, ``attention_mask`` and ``labels`` tensors, right-padded to the longest."""
    import torch

    width = max(len(example.input_ids) for example in examples)
    input_ids = torch.full((len(examples), width), pad, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORED, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        length = len(example.input_ids)
        input_ids[row, :length] = torch.tensor(example.input_ids)
        labels[row, :length] = torch.tensor(example.labels)
        mask[row, :length] = 1
    return input_ids, mask, labels


def assistant_loss(model: Any, input_ids: Any, attention_mask: Any, labels: Any) -> Any:
    """Mean cross-entropy over the labelled tokens of a batch (a scalar tensor).

    The output layer, a vocabulary-sized matrix product per position, runs only
    at positions that predict a labelled token in some row: on a chat of short
    answers that saves most of its time and RAM.
    """
    import torch
    import torch.nn.functional as F

    # The logits at position t predict token t + 1.
    targets = labels[:, 1:]
    positions = (targets != IGNORED).any(dim=0).nonzero().squeeze(1)
    if positions.numel() == 0:
        raise ValueError("no assistant token to score in this batch")
    logits = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        logits_to_keep=positions,
        use_cache=False,
    ).logits
    kept = targets.index_select(1, positions)
    loss: torch.Tensor = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), kept.reshape(-1), ignore_index=IGNORED
    )
    return loss
