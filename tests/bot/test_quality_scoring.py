"""The quality suite's own rules: its cases load, and each group's scoring says right from
wrong (so the suite's figures mean what they say)."""

from __future__ import annotations

import pytest

from confab.bot.quality.cases import GROUPS, CaseError, load_cases
from confab.bot.quality.scoring import (
    code_blocks,
    fact_recall,
    form_problem,
    hedges,
    score,
    states_number,
)


def test_every_group_has_cases_and_ids_are_unique() -> None:
    cases = load_cases()
    assert len(cases) >= 80
    assert {case.group for case in cases} == set(GROUPS)
    assert len({case.id for case in cases}) == len(cases)


def test_an_unknown_group_is_refused() -> None:
    with pytest.raises(CaseError, match="unknown group"):
        load_cases(groups=["poetry"])


@pytest.mark.parametrize(
    ("answer", "right"),
    [
        ("17 + 25 = **42**", True),
        ("The answer is 42.", True),
        ("(72 - 32) × 5/9 = 22.2", False),  # judged against 42 here
        ("It is 32.", False),
        ("17 and 25 make 42", True),  # the question's numbers are skipped
        ("32, or maybe 42", False),  # the first new number counts, no picking
    ],
)
def test_a_calculation_must_state_the_expected_number(answer: str, right: bool) -> None:
    assert states_number(answer, 42, 0.005, "what is 17 + 25?") is right


def test_rounding_within_the_tolerance_counts() -> None:
    assert states_number("5 miles is about 8.05 km.", 8.04672, 0.005, "5 miles in km")
    assert not states_number("5 miles is about 8.2 km.", 8.04672, 0.005, "5 miles in km")


@pytest.mark.parametrize(
    ("answer", "hedged"),
    [
        ("I'm not sure about that: I don't have reliable information on it.", True),
        ("There is no record of a Velmorian Empire.", True),
        ("The Velmorian Empire appears to be fictional.", True),
        ("The Velmorian Empire was founded in 1204 by King Otto.", False),
    ],
)
def test_an_answer_about_something_made_up_must_not_invent(answer: str, hedged: bool) -> None:
    assert hedges(answer) is hedged


def test_summary_facts_need_every_term() -> None:
    summary = "- Bob writes the release notes by Friday.\n- Carol tells customers."
    kept, lost = fact_recall(summary, [["Bob", "Friday"], ["Carol", "customers"], ["2.0"]])
    assert kept == 2
    assert lost == ["2.0"]


@pytest.mark.parametrize(
    ("text", "form", "problem"),
    [
        ("one\ntwo\nthree", "haiku", ""),
        ("one\ntwo\nthree\nfour", "haiku", "4 lines, a haiku has 3"),
        ("a\nb\nc\nd", "limerick", "4 lines, a limerick has 5"),
        ("rain falls\non roofs\nsoftly", "haiku", ""),
        ("sun\nshines\nbright", "haiku", ""),
        ("word " * 20, "story", "a story of 20 words"),
    ],
)
def test_creative_forms_are_checked(text: str, form: str, problem: str) -> None:
    assert form_problem(text, form) == problem


def test_a_piece_off_topic_fails() -> None:
    assert form_problem("sun\nshines\nbright", "haiku", ["rain"]) == "off topic"


async def test_code_is_scored_by_running_it_against_the_hidden_tests() -> None:
    tests = ["assert add(1, 2) == 3", "assert add(0, 0) == 0"]
    right = await score(
        "code_write", {"tests": tests}, "```python\ndef add(a, b): return a + b\n```"
    )
    wrong = await score(
        "code_write", {"tests": tests}, "```python\ndef add(a, b): return a - b\n```"
    )
    prose = await score("code_write", {"tests": tests}, "def add(a, b): return a + b")
    assert right.passed and right.value == 1.0
    assert not wrong.passed and wrong.value == 0.5
    assert not prose.passed and prose.note == "no code block"
    assert code_blocks("x\n```py\nprint(1)\n```\ny") == ["print(1)"]
