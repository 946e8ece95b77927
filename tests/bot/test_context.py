"""Fitting a conversation into the context window by dropping the oldest turns."""

from __future__ import annotations

import pytest

from confab.bot.errors import PromptTooLong
from confab.bot.llm.backend import ChatMessage
from confab.bot.llm.context import fit_messages
from confab.bot.testing import ScriptedBackend

count = ScriptedBackend().count_tokens


def conversation(turns: int) -> list[ChatMessage]:
    messages = [ChatMessage("system", "be brief")]
    for index in range(turns):
        messages.append(ChatMessage("user", f"question {index} " + "word " * 10))
        messages.append(ChatMessage("assistant", f"answer {index} " + "word " * 10))
    messages.append(ChatMessage("user", "the newest question"))
    return messages


def test_a_prompt_that_fits_is_unchanged() -> None:
    messages = conversation(3)
    assert fit_messages(messages, count, 10_000) == messages


@pytest.mark.parametrize("budget", [40, 60, 100, 150, 200, 333])
def test_oldest_turns_go_first_and_system_and_newest_stay(budget: int) -> None:
    messages = conversation(10)
    fitted = fit_messages(messages, count, budget)
    assert count(fitted) <= budget
    assert fitted[0] == messages[0]
    assert fitted[-1] == messages[-1]
    kept = fitted[1:-1]
    assert kept == messages[len(messages) - 1 - len(kept) : -1]  # a contiguous, newest block
    assert not kept or kept[0].role == "user"  # never opens on an orphaned answer
    # As many turns as fit: one more whole question-and-answer pair would not.
    bigger = messages[len(messages) - 1 - len(kept) - 2 :]
    assert len(kept) + 2 > len(messages) - 2 or count([messages[0], *bigger]) > budget


def test_when_even_the_newest_message_does_not_fit_the_error_is_for_users() -> None:
    messages = [ChatMessage("system", "s"), ChatMessage("user", "word " * 500)]
    with pytest.raises(PromptTooLong) as caught:
        fit_messages(messages, count, 100)
    assert "too long" in caught.value.user_message
