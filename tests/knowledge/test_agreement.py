"""The check an answer from notes passes before it is shown."""

from __future__ import annotations

from confab.bot.knowledge.agreement import agrees, telling_words

QUESTION = "what is the API rate limit?"
LINE = "omar: for the docs: the public API rate limit is 600 requests per minute"


def test_an_answer_must_repeat_the_lines_numbers() -> None:
    assert agrees("The limit is 600 requests per minute.", LINE, QUESTION)
    assert not agrees("The rate limit is 328.95% of requests per minute.", LINE, QUESTION)


def test_without_numbers_a_telling_word_the_question_does_not_say_will_do() -> None:
    line = "bob: agreed. Decision: production deploys happen on Wednesday from now on."
    asked = "which day of the week do we do production deploys now?"
    assert agrees("Deploys happen on Wednesday.", line, asked)
    assert not agrees("Production deploys are on Friday.", line, asked)  # only echoes the question


def test_telling_words_leave_out_short_words_and_the_questions_own() -> None:
    assert telling_words("Bob owns the billing service", "who owns billing?") == {"service"}
