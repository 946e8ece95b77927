"""Whether an answer says what the record says: the check ``ask`` (and ``confab model
eval --rag``) make before an answer drawn from passages is shown.

An answer agrees with a line of the record when it repeats that line's numbers
(where the line has numbers the question does not), else at least one of its
telling words (five letters or more); words the question already says do not
count, so an answer cannot agree by restating the question.
"""

from __future__ import annotations

import re
from collections.abc import Sequence


def telling_words(text: str, question: str = "") -> set[str]:
    """The words of ``text`` that carry a fact, except those the question says."""

    def words(of: str) -> set[str]:
        return {w for w in re.findall(r"[^\W_]+", of.lower()) if w.isdigit() or len(w) >= 5}

    return words(text) - words(question)


def agrees(answer: str, line: str, question: str) -> bool:
    numbers = {w for w in telling_words(line, question) if w.isdigit()}
    said = telling_words(answer, question)
    if numbers:
        return bool(numbers & said)
    return bool(said & telling_words(line, question))


def agrees_with_any(answer: str, lines: Sequence[str], question: str) -> bool:
    return any(agrees(answer, line, question) for line in lines)
