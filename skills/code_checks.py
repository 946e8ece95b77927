"""Checked code for ``!code fix`` and ``!code write``: several candidates, each run
against tests in the sandbox, the first that passes shown.

The candidates are generated together (the model engine batches them, so
three cost little more than one): the first at the skill's temperature, the
others more freely, each with its own seed. The tests are the person's own
(``assert`` lines, ``>>>`` examples, or "f(2) returns 4" in the request);
without any, the model writes a few from the request in the same batch. A
function the request names must exist. Python that does not parse is never
run and never shown as if it worked.
"""

from __future__ import annotations

import ast
import asyncio
import logging
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace

from confab.bot.checks.sandbox import CheckReport, SandboxLimits, run_checks
from confab.bot.skill import ChatMessage, GenerationParams, ModelBackend, PromptTemplates

log = logging.getLogger(__name__)

MAX_TESTS = 8
_ASSERT = re.compile(r"^[ \t]*(assert\s.+)$", re.MULTILINE)
_DOCTEST = re.compile(r"^[ \t]*>>>[ \t]*(.+)\n[ \t]*(?!>>>)(\S.*)$", re.MULTILINE)
_EXAMPLE = re.compile(
    r"(?<![\w.])([A-Za-z_]\w*\((?:[^()]|\([^()]*\))*\))\s*"
    r"(?:==|->|→|=>|returns?|should (?:return|give|be)|gives|is)\s+"
    r"(.+?)(?=,\s|;|\.\s|\.$|\s+and\s|\s+or\s|$)",
    re.MULTILINE,
)
_NAMED = re.compile(r"(?<![\w.])([A-Za-z_]\w*)\s*\(")
_NOT_NAMES = frozenset(("print", "len", "range", "e", "g", "i", "ie", "eg", "and", "or"))


@dataclass(frozen=True, slots=True)
class Candidate:
    """One generated answer: its tidied text, its code, and how it fared."""

    text: str
    code: str
    report: CheckReport

    @property
    def rank(self) -> tuple[bool, int, bool]:
        report = self.report
        return (report.outcome == "passed", report.passed, report.outcome != "error")


def _parses(code: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def given_tests(text: str) -> list[str]:
    """The tests a person wrote into a request: assert lines, ``>>>`` examples with
    their results, and "f(2) returns 4" phrases; only those that parse."""
    tests = [found[1].rstrip() for found in _ASSERT.finditer(text)]
    tests += [f"assert {call} == {result}" for call, result in _DOCTEST.findall(text)]
    for call, result in _EXAMPLE.findall(text):
        result = result.strip().strip("`").rstrip(".")
        tests.append(f"assert {call.strip('`')} == {result}")
    unique = dict.fromkeys(test for test in tests if _parses(test))
    return list(unique)[:MAX_TESTS]


def named_functions(description: str) -> list[str]:
    """Functions a ``write`` request names with parentheses: ``reverse_words(s)``."""
    names = (name for name in _NAMED.findall(description) if name.lower() not in _NOT_NAMES)
    return list(dict.fromkeys(names))


def written_tests(answer: str, names: Sequence[str]) -> list[str]:
    """The assert lines the model wrote for a request, keeping only those that call a
    function the request names (when it names any) and parse."""
    tests = [found[1].rstrip() for found in _ASSERT.finditer(answer) if _parses(found[1])]
    if names:
        tests = [test for test in tests if any(f"{name}(" in test for name in names)]
    return list(dict.fromkeys(tests))[:MAX_TESTS]


def verdict(report: CheckReport, own: bool) -> str:
    """The sentence under the code saying how it was checked."""
    whose = "" if own else " I wrote for it"
    if report.outcome == "passed" and report.total:
        noun = "check" if report.total == 1 else "checks"
        return f"✅ I ran it in a sandbox and it passed {report.total} {noun}{whose}."
    if report.outcome == "passed":
        return "✅ I ran it in a sandbox: it runs without errors (there was nothing to test)."
    return (
        f"⚠️ None of my attempts passed every check{whose}; this one came closest: "
        f"{report.summary} Check it before use."
    )


async def generate(
    model: ModelBackend,
    messages: list[ChatMessage],
    params: GenerationParams,
    count: int,
    temperature: float,
    test_prompt: list[ChatMessage] | None,
) -> tuple[list[str], str]:
    """``count`` candidate answers and, with ``test_prompt``, the model's own tests, all
    generated concurrently (so in one batch)."""
    jobs = [model.complete(messages, params)]
    jobs += [
        model.complete(messages, replace(params, temperature=temperature, seed=n))
        for n in range(1, count)
    ]
    if test_prompt is not None:
        jobs.append(model.complete(test_prompt, replace(params, max_new_tokens=160)))
    answers = await asyncio.gather(*jobs)
    return list(answers[:count]), answers[count] if test_prompt is not None else ""


async def best_candidate(
    candidates: Sequence[tuple[str, str]], tests: Sequence[str], limits: SandboxLimits
) -> Candidate | None:
    """Each ``(text, code)`` run against ``tests``, one after another (runs share the
    sandbox user's process limit): the first that passes, else the one that passed
    most; None when no candidate's code parses."""
    ran: list[Candidate] = []
    for text, code in candidates:
        if not code.strip() or not _parses(code):
            continue
        report = await run_checks(code, tests, limits)
        log.info("code candidate: %s, %d/%d checks", report.outcome, report.passed, report.total)
        ran.append(Candidate(text, code, report))
        if report.outcome == "passed":
            break
    return max(ran, key=lambda candidate: candidate.rank) if ran else None  # first of equals


def tests_prompt(prompts: PromptTemplates, description: str) -> list[ChatMessage]:
    """The request for the model's own tests of a ``write`` description."""
    return [
        ChatMessage("system", prompts.render("system")),
        ChatMessage("user", prompts.render("tests", description=description)),
    ]
