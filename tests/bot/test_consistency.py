"""Self-consistency: when samples of the same question agree with an answer, and when a
question is worth checking at all."""

from __future__ import annotations

import pytest

from confab.bot.checks.consistency import agreement, worth_checking

Q = "What is the atomic number of brenthium?"


def test_samples_that_state_the_same_name_agree() -> None:
    answer = "The capital of France is Paris."
    samples = ["Paris.", "It is Paris, of course.", "Lyon."]
    assert agreement(answer, samples, "What is the capital of France?") == pytest.approx(2 / 3)


def test_an_invented_number_that_changes_from_sample_to_sample_disagrees() -> None:
    answer = "The atomic number of brenthium (Bn) is 12."
    samples = ["Brenthium (Bn) has atomic number 56.", "Bn is number 7.", "It is 12."]
    assert agreement(answer, samples, Q) == pytest.approx(1 / 3)


def test_without_names_content_words_are_compared() -> None:
    answer = "CPU stands for central processing unit."
    samples = ["It means central processing unit.", "A chip that computes.", "processing unit"]
    assert agreement(answer, samples, "What does CPU stand for?") == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("question", "checked"),
    [
        ("Who wrote Dune?", True),
        ("Tell me about the Velmorian Empire.", True),
        ("what is my name?", False),
        ("thanks!", False),
        ("Team lunch came to 186 euros for 6 of us. How much is that each?", False),
        ("Write me a poem about Paris", False),
    ],
)
def test_only_questions_naming_something_are_checked(question: str, checked: bool) -> None:
    assert worth_checking(question) is checked


async def test_a_slow_model_streams_at_once_and_warns_after_the_answer() -> None:
    from confab.bot.checks.consistency import DOUBT, ConsistencySettings, checked_stream
    from confab.bot.llm.backend import ChatMessage, GenerationParams
    from confab.bot.testing import ScriptedBackend

    model = ScriptedBackend(
        ["Brenthium has atomic number 102.", "It is 13.", "Number 41.", "It is 12 or so."],
        delay_s=0.05,
    )
    settings = ConsistencySettings(hold_s=0.01)
    pieces = [
        piece
        async for piece in checked_stream(
            model, [ChatMessage("user", Q)], GenerationParams(), settings, Q
        )
    ]
    assert "".join(pieces) == "Brenthium has atomic number 102." + DOUBT
    assert pieces[0] == "Brenthium"  # the first word did not wait for the samples


async def test_a_fast_model_that_agrees_streams_without_a_warning() -> None:
    from confab.bot.checks.consistency import ConsistencySettings, checked_stream
    from confab.bot.llm.backend import ChatMessage, GenerationParams
    from confab.bot.testing import ScriptedBackend

    model = ScriptedBackend(["Dune was written by Frank Herbert.", "Frank Herbert."])
    question = "Who wrote Dune?"
    text = "".join(
        [
            piece
            async for piece in checked_stream(
                model,
                [ChatMessage("user", question)],
                GenerationParams(),
                ConsistencySettings(),
                question,
            )
        ]
    )
    assert text == "Dune was written by Frank Herbert."


async def test_samples_end_at_their_first_sentence_and_are_judged_the_same() -> None:
    """Only first sentences are compared, so the samples stop there and the answer
    waits for the longest first sentence, not for every sample's 32 tokens."""
    from confab.bot.checks.consistency import SENTENCE_ENDS, checked_stream
    from confab.bot.llm.backend import ChatMessage, GenerationParams
    from confab.bot.testing import ScriptedBackend

    model = ScriptedBackend(["Dune was written by Frank Herbert.", "Frank Herbert."])
    question = "Who wrote Dune?"
    async for _ in checked_stream(model, [ChatMessage("user", question)], GenerationParams()):
        pass
    answer, *samples = model.params
    assert answer.stop == () and len(samples) == 3
    assert all(set(SENTENCE_ENDS) <= set(p.stop) for p in samples)
    said = "Dune was written by Frank Herbert."
    for sample in (
        "Frank Herbert wrote it. In 1965 Isaac Asimov did!",
        "It was Brian Herbert? Maybe.\nOr not",
        "Herbert, Frank",
    ):
        ends = [i for i in (sample.find(end) for end in SENTENCE_ENDS) if i >= 0]
        cut = sample[: min(ends, default=len(sample))]  # what a stopped sample holds
        assert agreement(said, [cut], question) == agreement(said, [sample], question)
