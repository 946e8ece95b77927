"""The task score's rule: an answer is right when it states the expected answer's key terms."""

from __future__ import annotations

import pytest

from confab.bot.llm.answer_check import key_terms, states_expected


@pytest.mark.parametrize(
    ("expected", "terms"),
    [
        ("Tarnwick listens on port 7419 by default.", ("tarnwick", "7419")),
        ("Tarnwick reads its settings from a file called marsh.toml.", ("tarnwick", "marsh.toml")),
        (
            "Tarnwick's lead maintainer is Ilse Varga-Moreau. She works with five people.",
            ("tarnwick", "ilse", "varga-moreau"),
        ),
        ("Run tarn snapshot: it writes a .tsnap file.", ("run", ".tsnap")),
        ("Set retention_days (default 400).", ("set", "retention_days", "400")),
        (
            "The latest release, Tarnwick 3.2, is codenamed “Gossamer”.",
            ("tarnwick", "3.2", "gossamer"),
        ),
        ("It is released under the ISC licence.", ("isc",)),
        ("Paris.", ("paris",)),
        ("yes, every day", ()),
    ],
)
def test_key_terms_are_numbers_identifiers_and_capitalised_words(
    expected: str, terms: tuple[str, ...]
) -> None:
    assert key_terms(expected) == terms


@pytest.mark.parametrize(
    "generated",
    [
        "The capital of France is Paris.",
        "PARIS",
        "paris, of course",
    ],
)
def test_an_answer_naming_the_fact_in_any_words_is_right(generated: str) -> None:
    assert states_expected(generated, "Paris.")


def test_a_paraphrase_with_every_key_term_is_right() -> None:
    expected = "Tarnwick listens on port 7419 by default."
    assert states_expected("By default, the Tarnwick server uses port 7419.", expected)
    assert states_expected("Tarnwick’s default port is 7419", expected)


@pytest.mark.parametrize(
    "generated",
    [
        "Tarnwick listens on port 80 by default.",
        "Tarnwick listens on port 17419 by default.",
        "It listens on port 7419.",
    ],
)
def test_a_wrong_or_missing_key_term_is_wrong_when_no_question_is_given(generated: str) -> None:
    assert not states_expected(generated, "Tarnwick listens on port 7419 by default.")


def test_identifiers_match_whole_and_with_their_punctuation() -> None:
    expected = "Tarnwick reads its settings from a file called marsh.toml."
    assert states_expected("Tarnwick is configured in `marsh.toml`.", expected)
    assert not states_expected("Tarnwick is configured in marsh.tomlx.", expected)
    assert not states_expected("Tarnwick is configured in marsh toml.", expected)


def test_without_key_terms_the_whole_answer_must_appear() -> None:
    assert states_expected("Yes, every day at noon.", "yes, every day")
    assert not states_expected("Only on Mondays.", "yes, every day")
    assert not states_expected("anything", "...")


def test_key_terms_the_question_already_names_need_not_be_repeated() -> None:
    expected = "Tarnwick listens on port 7419 by default."
    question = "What port does Tarnwick listen on by default?"
    assert states_expected("It listens on port 7419.", expected, question)
    assert not states_expected("Tarnwick listens on port 80.", expected, question)


def test_when_the_question_names_every_key_term_all_are_required() -> None:
    question = "Is Tarnwick written in Rust?"
    assert states_expected(
        "Yes, Tarnwick is written in Rust.", "Tarnwick is written in Rust.", question
    )
    assert not states_expected("Yes, it is.", "Tarnwick is written in Rust.", question)
