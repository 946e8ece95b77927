"""Fitting a conversation into the model's context window."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from confab.bot.errors import PromptTooLong
from confab.bot.llm.backend import ChatMessage


def fit_messages(
    messages: Sequence[ChatMessage],
    count_tokens: Callable[[Sequence[ChatMessage]], int],
    budget: int,
) -> list[ChatMessage]:
    """Drop the oldest turns until the prompt takes at most ``budget`` tokens.

    Leading system messages and the newest message are always kept. Raises
    :class:`PromptTooLong` when those alone do not fit. Dropping more turns never
    makes a prompt longer, so a binary search needs only O(log n) token counts.
    """
    kept = list(messages)
    if not kept or count_tokens(kept) <= budget:
        return kept
    head = 0
    while head < len(kept) - 1 and kept[head].role == "system":
        head += 1
    system, middle, newest = kept[:head], kept[head:-1], kept[-1:]

    def candidate(dropped: int) -> list[ChatMessage]:
        return [*system, *middle[dropped:], *newest]

    minimal = candidate(len(middle))
    if count_tokens(minimal) > budget:
        raise PromptTooLong(
            "Your message is too long for the model's context window; please shorten it.",
            f"prompt of {count_tokens(minimal)} tokens exceeds the budget of {budget}",
        )
    low, high = 1, len(middle)  # the smallest number of dropped turns that fits
    while low < high:
        mid = (low + high) // 2
        if count_tokens(candidate(mid)) <= budget:
            high = mid
        else:
            low = mid + 1
    # A turn cut loose from its question confuses the model: start on a user turn.
    while low < len(middle) and middle[low].role == "assistant":
        low += 1
    return candidate(low)


def label_speakers(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """Prefix user turns with their author's name when more than one person speaks.

    In a shared channel the model must know that "and for me?" came from
    someone else than the question before; in a one-to-one chat names are noise.
    """
    names = {m.name for m in messages if m.role == "user" and m.name}
    if len(names) < 2:
        return list(messages)
    return [
        replace(m, content=f"{m.name}: {m.content}") if m.role == "user" and m.name else m
        for m in messages
    ]
