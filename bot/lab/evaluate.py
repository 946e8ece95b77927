"""How well a model answers a held-out chat dataset: what ``confab model eval`` measures.

Two figures, computed on any loaded transformers causal LM and its tokenizer
(the bundled model, a local folder, or a model with a LoRA applied), so
this module never decides how a model is loaded:

- the held-out loss: the mean cross-entropy per token of the assistant's turns,
  given everything before them in the model's chat format (system and user
  turns are context, never scored), and its perplexity ``exp(loss)``. The
  tokens and the loss are those fine-tuning uses (:mod:`confab.bot.lab.assistant_tokens`),
  so a fine-tune's training loss and its held-out loss are comparable;
- the task score: how many expected answers the model states when it answers
  the preceding turns greedily, by the rule in :mod:`confab.bot.llm.answer_check`.

Both can be measured on the conversations as they are shown to the model with
more context in them (retrieved passages before the question, say:
:mod:`confab.bot.lab.passage_prompt`), and are then still scored against the originals.

Both are deterministic: no sampling, dropout off, the same batches every run.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confab.bot.errors import ConfabError
from confab.bot.lab.assistant_tokens import (
    Encoded,
    TemplateMismatch,
    assistant_loss,
    collate,
    encode_chat,
    pad_id,
)
from confab.bot.lab.dataset import Chat, DatasetError, read_dataset
from confab.bot.llm.answer_check import states_expected
from confab.bot.llm.backend import ChatMessage

BATCH_TOKENS = 2048  # padded tokens per forward pass
BATCH_CHATS = 8
EXAMPLES_KEPT = 5


class EvaluationError(ConfabError):
    """A model cannot be evaluated on the data given, or a stored result cannot be read."""


@dataclass(frozen=True, slots=True)
class LossScore:
    """Mean cross-entropy (nats per token) over ``tokens`` assistant tokens; lower is better."""

    mean_loss: float
    perplexity: float
    tokens: int


@dataclass(frozen=True, slots=True)
class TaskExample:
    """One scored question: what was asked, what the data expects, what the model said."""

    question: str
    expected: str
    got: str
    correct: bool


@dataclass(frozen=True, slots=True)
class TaskScore:
    """``correct`` of ``total`` expected answers stated; ``examples`` are the first few."""

    correct: int
    total: int
    examples: tuple[TaskExample, ...]

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Both scores of one model (``model`` names it for people) on one dataset."""

    model: str
    loss: LossScore
    task: TaskScore


def read_chats(path: Path) -> list[Chat]:
    """The conversations of a chat JSONL (or question,answer CSV) file, all valid.

    Raises :class:`~confab.bot.lab.dataset.DatasetError` listing every invalid record,
    since scores over part of a file would silently mean something else.
    """
    parsed = read_dataset(path)
    if parsed.problems:
        count = len(parsed.problems)
        raise DatasetError(
            f"{path}: {count} invalid record{'s' if count != 1 else ''}, nothing evaluated:",
            parsed.problems,
        )
    if not parsed.chats:
        raise DatasetError(f"{path}: no conversation to evaluate on")
    return list(parsed.chats)


def _encoded(tokenizer: Any, chats: Sequence[Chat], max_tokens: int) -> list[Encoded]:
    try:
        return [encode_chat(tokenizer, chat.messages, max_tokens) for chat in chats]
    except TemplateMismatch as error:
        raise EvaluationError(
            "This model's chat template cannot be evaluated.", str(error)
        ) from None


@contextlib.contextmanager
def _inference(model: Any) -> Iterator[None]:
    """No gradients and no dropout; a model that was training is left training."""
    import torch

    training = bool(model.training)
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(training)


def _batches(lengths: Sequence[int], max_chats: int, max_tokens: int) -> Iterator[list[int]]:
    """Indices grouped shortest first, each group within both limits (one long one alone)."""
    group: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: (lengths[i], i)):
        # Sorted, so this length is the group's widest.
        if group and (len(group) == max_chats or (len(group) + 1) * lengths[index] > max_tokens):
            yield group
            group = []
        group.append(index)
    if group:
        yield group


def held_out_loss(
    model: Any, tokenizer: Any, chats: Sequence[Chat], max_tokens: int = 512
) -> LossScore:
    """The mean cross-entropy of the assistant's tokens over all ``chats``, and its perplexity.

    Every scored token weighs the same, whichever chat it is in. Conversations
    longer than ``max_tokens`` are cut there, keeping their start.
    """
    encoded = _encoded(tokenizer, chats, max_tokens)
    pad = pad_id(tokenizer)
    device = model.device
    total = 0.0
    tokens = 0
    with _inference(model):
        for group in _batches([len(e.input_ids) for e in encoded], BATCH_CHATS, BATCH_TOKENS):
            batch = [encoded[index] for index in group]
            scored = sum(example.scored for example in batch)
            if not scored:
                continue
            input_ids, mask, labels = collate(batch, pad)
            # The same loss fine-tuning minimises (a mean), back to a sum over tokens.
            loss = assistant_loss(model, input_ids.to(device), mask.to(device), labels.to(device))
            total += float(loss.item()) * scored
            tokens += scored
    if tokens == 0:
        raise EvaluationError(
            "There is nothing to evaluate.", "no assistant token to score in the data given"
        )
    mean = total / tokens
    return LossScore(mean, math.exp(mean), tokens)


def _question(messages: Sequence[ChatMessage]) -> str:
    return next((m.content for m in reversed(messages) if m.role == "user"), "")


def _shown(chats: Sequence[Chat], shown: Sequence[Chat] | None) -> Sequence[Chat]:
    """The chats as the model is shown them: ``shown``, each ending as its original does."""
    if shown is None:
        return chats
    if len(shown) != len(chats) or any(
        s.messages[-1] != c.messages[-1] for s, c in zip(shown, chats, strict=True)
    ):
        raise ValueError("each conversation shown must end as the one it stands for")
    return shown


def task_score(
    model: Any,
    tokenizer: Any,
    chats: Sequence[Chat],
    max_new_tokens: int = 48,
    *,
    shown: Sequence[Chat] | None = None,
) -> TaskScore:
    """How many of the chats' final answers the model states, answering greedily.

    Each chat that ends with an assistant turn is a question: the model answers
    the turns before it (as the bot would prompt it) in at most
    ``max_new_tokens`` tokens, and is right when its answer states the expected
    one (:func:`confab.bot.llm.answer_check.states_expected`). With ``shown`` (the same
    chats with more context, one for each) the model answers those, but the
    question is still the original's: a term the answer repeats from the added
    context is required all the same.
    """
    import torch
    from transformers import GenerationConfig

    # Each question as it is shown, and as it is scored.
    scored = [
        (seen, chat)
        for seen, chat in zip(_shown(chats, shown), chats, strict=True)
        if len(chat.messages) > 1 and chat.messages[-1].role == "assistant"
    ]
    prompts = [
        list(
            tokenizer.apply_chat_template(
                [{"role": m.role, "content": m.content} for m in seen.messages[:-1]],
                add_generation_prompt=True,
                tokenize=True,
                return_dict=False,
            )
        )
        for seen, _ in scored
    ]
    pad = pad_id(tokenizer)
    eos = model.generation_config.eos_token_id
    greedy = GenerationConfig(
        do_sample=False,
        max_new_tokens=max_new_tokens,
        pad_token_id=pad,
        eos_token_id=eos if eos is not None else tokenizer.eos_token_id,
    )
    answers: dict[int, str] = {}
    with _inference(model):
        budget = BATCH_TOKENS // 2  # a prompt's key/value cache grows while it answers
        for group in _batches([len(p) for p in prompts], BATCH_CHATS, budget):
            width = max(len(prompts[i]) for i in group)
            # Padded on the left, so every prompt ends where its answer begins.
            input_ids = torch.full((len(group), width), pad, dtype=torch.long)
            mask = torch.zeros((len(group), width), dtype=torch.long)
            for row, index in enumerate(group):
                input_ids[row, width - len(prompts[index]) :] = torch.tensor(prompts[index])
                mask[row, width - len(prompts[index]) :] = 1
            output = model.generate(
                input_ids=input_ids.to(model.device),
                attention_mask=mask.to(model.device),
                generation_config=greedy,
            )
            for row, index in enumerate(group):
                answers[index] = tokenizer.decode(output[row, width:], skip_special_tokens=True)
    results = [
        TaskExample(
            _question(chat.messages[:-1]),
            chat.messages[-1].content,
            answers[index].strip(),
            states_expected(
                answers[index],
                chat.messages[-1].content,
                "\n".join(m.content for m in chat.messages[:-1]),
            ),
        )
        for index, (_, chat) in enumerate(scored)
    ]
    return TaskScore(
        sum(result.correct for result in results), len(results), tuple(results[:EXAMPLES_KEPT])
    )


def evaluate(
    model: Any,
    tokenizer: Any,
    chats: Sequence[Chat],
    name: str,
    *,
    max_tokens: int = 512,
    max_new_tokens: int = 48,
    shown: Sequence[Chat] | None = None,
) -> Evaluation:
    """Both scores of one model on ``chats``; ``name`` is how tables and records call it.

    With ``shown`` (the same chats with more context, one for each) the model is
    measured on those, and its answers scored against ``chats``.
    """
    seen = _shown(chats, shown)
    # Added context does not count against a conversation's ``max_tokens``: cut, it
    # would cost answer tokens, and the loss would be over other tokens than without.
    room = 0
    if shown is not None:
        room = max(
            (
                _length(tokenizer, a) - _length(tokenizer, b)
                for a, b in zip(seen, chats, strict=True)
            ),
            default=0,
        )
    return Evaluation(
        name,
        held_out_loss(model, tokenizer, seen, max_tokens + max(room, 0)),
        task_score(model, tokenizer, chats, max_new_tokens, shown=shown),
    )


def _length(tokenizer: Any, chat: Chat) -> int:
    messages = [{"role": m.role, "content": m.content} for m in chat.messages]
    return len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False))


def _signed(value: float, digits: int) -> str:
    return f"{value:+.{digits}f}"


def _task(score: TaskScore) -> str:
    return f"{score.correct}/{score.total} ({score.accuracy:.0%})"


def compare(a: Evaluation, *others: Evaluation) -> str:
    """``a``'s scores as a table; with ``others``, side by side with how far each is
    from ``a`` (``other - a``): one column "difference", or one per other model."""
    rows: list[list[str]] = [
        ["", a.model],
        ["held-out loss", f"{a.loss.mean_loss:.4f}"],
        ["perplexity", f"{a.loss.perplexity:.2f}"],
        ["task score", _task(a.task)],
        ["answer tokens", str(a.loss.tokens)],
    ]
    for b in others:
        rows[0].append(b.model)
        rows[1].append(f"{b.loss.mean_loss:.4f}")
        rows[2].append(f"{b.loss.perplexity:.2f}")
        rows[3].append(_task(b.task))
        rows[4].append(str(b.loss.tokens))
    for b in others:
        rows[0].append("difference" if len(others) == 1 else f"{b.model} - {a.model}")
        rows[1].append(_signed(b.loss.mean_loss - a.loss.mean_loss, 4))
        rows[2].append(_signed(b.loss.perplexity - a.loss.perplexity, 2))
        rows[3].append(
            f"{b.task.correct - a.task.correct:+d} "
            f"({(b.task.accuracy - a.task.accuracy) * 100:+.0f} points)"
        )
        rows[4].append("")
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.ljust(width) if column == 0 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    lines.append("Lower loss and perplexity are better; a higher task score is better.")
    return "\n".join(lines)
