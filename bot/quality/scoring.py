"""How the suite decides whether an answer is right, one rule per group.

Every rule reads the reply as the person sees it. Matching is case-insensitive;
"terms" match as whole words, "groups" of alternatives (``any_of``, ``terms`` of
``code_explain``, ``topic`` of ``creative``) as substrings, so "multipl" finds
"multiplies". Code is scored by running what the reply shows against the
case's hidden tests in the sandbox.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# What an answer that does not invent says (questions about things that do not exist).
HEDGES = re.compile(
    r"\b(?:i(?:'m| am) not (?:sure|aware|familiar|certain)|not sure|i don'?t know|i do not know"
    r"|no (?:reliable |verified )?(?:information|record|knowledge|evidence|data)"
    r"|(?:can(?:'|no)?t|could ?n[o']t|unable to) (?:find|verify|confirm|say)|not (?:able|real)"
    r"|doesn'?t (?:seem to )?exist|does not (?:seem to )?exist|no such|fictional|made[- ]up"
    r"|not a (?:real|known|recogni[sz]ed)|never existed|isn'?t a real|unknown to me"
    r"|don'?t have (?:any )?(?:information|details|data|knowledge)|not familiar|no idea"
    r"|isn'?t something i (?:know|recogni[sz]e)|not (?:something|anything) i"
    r"|there (?:is|are|was|were) no\b|not a (?:standard|valid|git|real|known))",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"(?<![\w.])[-−]?\d{1,3}(?:,\d{3})+(?:\.\d+)?|(?<![\w.])[-−]?\d*\.?\d+")
_FENCE = re.compile(r"^(`{3,}|~{3,})([^\n`]*)\n(.*?)^\1[ \t]*$", re.MULTILINE | re.DOTALL)
_MIN_LINES = {"haiku": 3, "limerick": 5, "poem": 4, "lyrics": 6}
_EXACT_LINES = {"haiku": 3, "limerick": 5}
MIN_STORY_WORDS = 60


@dataclass(frozen=True, slots=True)
class Score:
    """How right one answer is: ``value`` from 0 to 1 (a share of facts for summaries),
    ``passed`` when it counts as right, and a short note on what was missing."""

    value: float
    passed: bool
    note: str = ""


def _pass(ok: bool, note: str = "") -> Score:
    return Score(1.0 if ok else 0.0, ok, "" if ok else note)


def whole_word(term: str, text: str) -> bool:
    """Whether ``term`` appears in ``text`` as a whole word (or phrase), in any case."""
    before = r"(?<!\w)" if term[:1].isalnum() else ""
    after = r"(?!\w)" if term[-1:].isalnum() else ""
    return re.search(before + re.escape(term) + after, text, re.IGNORECASE) is not None


def missing_terms(answer: str, terms: Sequence[str]) -> list[str]:
    """The terms that do not appear in ``answer`` as whole words."""
    return [term for term in terms if not whole_word(term, answer)]


def matches_group(answer: str, group: Sequence[str]) -> bool:
    """Whether any alternative of ``group`` appears in ``answer`` (substring, any case)."""
    lowered = answer.casefold()
    return any(alternative.casefold() in lowered for alternative in group)


def numbers_in(text: str) -> list[float]:
    """The numbers ``text`` states, in order (``1,234.5`` is one number)."""
    return [
        float(found.replace(",", "").replace("−", "-")) for found in _NUMBER.findall(text) if found
    ]


_RESULT = re.compile(r"(?:=|≈|\bis\b|\*\*)\s*\**\s*([-−]?[\d,]*\.?\d+)")


def states_number(answer: str, expected: float, tolerance: float, question: str = "") -> bool:
    """Whether the answer's result is ``expected`` (within ``tolerance``, relative): the
    last number after an ``=``, ``≈`` or "is" or in bold, else the first number that is
    not also in ``question``. A model that lists several numbers does not get to pick."""
    results = [numbers_in(found) for found in _RESULT.findall(answer)]
    if results and results[-1]:
        result = results[-1][0]
        return math.isclose(result, expected, rel_tol=tolerance, abs_tol=tolerance * 1e-3)
    asked = numbers_in(question)
    for number in numbers_in(answer):
        if any(math.isclose(number, seen, rel_tol=1e-12) for seen in asked):
            continue
        return math.isclose(number, expected, rel_tol=tolerance, abs_tol=tolerance * 1e-3)
    return False


def hedges(answer: str) -> bool:
    """Whether ``answer`` says it does not know, or that the thing does not exist."""
    return HEDGES.search(answer) is not None


def fact_recall(summary: str, facts: Sequence[Sequence[str]]) -> tuple[int, list[str]]:
    """How many facts (each a list of terms, all required) the summary keeps, and
    the facts it lost."""
    lost = [" + ".join(fact) for fact in facts if missing_terms(summary, fact)]
    return len(facts) - len(lost), lost


def code_blocks(answer: str) -> list[str]:
    """The code of every fenced block in ``answer``."""
    return [found[3].rstrip("\n") for found in _FENCE.finditer(answer)]


def form_problem(
    text: str, form: str, topic: Sequence[str] = (), max_words: int | None = None
) -> str:
    """What is wrong with a creative piece's form, or "" when it has the right shape."""
    lines = [line for line in text.splitlines() if line.strip()]
    words = len(text.split())
    if form in _EXACT_LINES and len(lines) != _EXACT_LINES[form]:
        return f"{len(lines)} lines, a {form} has {_EXACT_LINES[form]}"
    if len(lines) < _MIN_LINES.get(form, 1):
        return f"only {len(lines)} lines for a {form}"
    if form == "story" and words < MIN_STORY_WORDS:
        return f"a story of {words} words"
    if max_words is not None and words > max_words:
        return f"{words} words, more than {max_words}"
    if topic and not matches_group(text, topic):
        return "off topic"
    if form == "haiku" and lines and lines[-1].rstrip()[-1:] in {",", ";", "-"}:
        return "the last line breaks off"
    return ""


async def score(group: str, spec: Mapping[str, Any], answer: str, asked: str = "") -> Score:
    """The score of ``answer`` to a case of ``group`` described by ``spec``."""
    if group == "knowledge":
        said, _, sources = answer.partition("\n\nSources:\n")
        lost = missing_terms(said, spec["expect"])
        groups = spec.get("any_of", [])
        if groups and not any(not missing_terms(said, g) for g in groups):
            lost.append(" or ".join("+".join(g) for g in groups))
        unsourced = missing_terms(sources, spec["source"])
        notes = [f"missing {', '.join(lost)}"] if lost else []
        notes += [f"sources lack {', '.join(unsourced)}"] if unsourced else []
        return _pass(not notes, "; ".join(notes))
    if group in ("qa", "memory"):
        lost = missing_terms(answer, spec.get("expect", []))
        groups = spec.get("any_of", [])
        if groups and not any(not missing_terms(answer, g) for g in groups):
            lost.append(" or ".join("+".join(g) for g in groups))
        return _pass(not lost, "missing " + ", ".join(lost))
    if group == "arithmetic":
        expected = float(spec["number"])
        ok = states_number(answer, expected, float(spec.get("tolerance", 0.005)), asked)
        return _pass(ok, f"does not state {expected:g}")
    if group == "unknown":
        return _pass(hedges(answer), "answers as if it existed")
    if group == "summary":
        facts = spec["facts"]
        kept, lost = fact_recall(answer, facts)
        value = kept / len(facts) if facts else 1.0
        return Score(value, kept == len(facts), "lost " + "; ".join(lost) if lost else "")
    if group in ("code_write", "code_fix"):
        return await _code_score(answer, spec["tests"])
    if group == "code_explain":
        lost = [" / ".join(g) for g in spec["terms"] if not matches_group(answer, g)]
        return _pass(not lost, "missing " + ", ".join(lost))
    if group == "creative":
        problem = form_problem(answer, spec["form"], spec.get("topic", ()), spec.get("max_words"))
        return _pass(not problem, problem)
    raise ValueError(f"no scoring rule for the group {group!r}")


async def _code_score(answer: str, tests: Sequence[str]) -> Score:
    from confab.bot.checks.sandbox import SandboxLimits, run_checks

    blocks = code_blocks(answer)
    if not blocks:
        return _pass(False, "no code block")
    report = await run_checks("\n\n".join(blocks), list(tests), SandboxLimits(wall_s=6.0))
    note = f"{report.outcome}: {report.failure}" if report.failure else report.outcome
    return Score(report.passed / max(report.total, 1), report.outcome == "passed", note)
