"""The key facts of a chat, so a summary can be checked for them before it is finished.

A small model's summary drops decisions, owners and dates. A *key message* is
one that states such a fact: a decision ("we agreed", "let's go with"), an
owner ("I'll take it", "Bob will"), or a date or deadline ("by Friday",
"March 3", "10:00", "EOD"). Its *key terms* are its author and the names,
numbers and dates it contains. :func:`missing_facts` lists the key messages
whose terms a summary does not mention, so the skill can add them as bullets
of their own rather than lose them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_DAYS = (
    r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|mon|tue|tues|wed|thu|thur"
    r"|thurs|fri|sat|sun"
)
_MONTHS = (
    r"january|february|march|april|may|june|july|august|september|october|november|december"
    r"|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)
_DATE = re.compile(
    rf"\b(?:{_DAYS}|{_MONTHS}|today|tonight|tomorrow|yesterday|eod|eow|noon|midnight"
    r"|next (?:week|month|sprint|quarter)|end of (?:the )?(?:day|week|month|sprint|quarter)"
    r"|q[1-4]|\d{1,2}(?::\d{2})?\s?(?:am|pm)|\d{1,2}:\d{2}|\d{4}-\d{2}-\d{2}"
    r"|\d{1,2}/\d{1,2}(?:/\d{2,4})?|\d{1,2}(?:st|nd|rd|th))\b",
    re.IGNORECASE,
)
_DECISION = re.compile(
    r"\b(?:decided|decision|agreed|agree|let'?s go with|let'?s do|going with|we'?ll go|approved"
    r"|settled|final(?:ly|ised|ized)?|the plan is|we will|we'?ll|ship(?:ping)?|go ahead"
    r"|sounds good|confirmed|deadline|due)\b",
    re.IGNORECASE,
)
_OWNER = re.compile(
    r"\b(?:i'?ll|i will|i can take|i'?m on it|i'?ve got|taking|owns?|owner|assigned?"
    r"|is on it|will (?:do|handle|take|write|fix|own|update|send|review|prepare|run|deploy))\b",
    re.IGNORECASE,
)
# A date is a plan when it follows one of these: "by Friday", "on March 3", "at 10:00".
_DUE = re.compile(
    r"\b(?:by|on|at|before|until|till|due|from|after|next|this|for|starting|around)\s+(?:the\s+)?$",
    re.IGNORECASE,
)
_NAME = re.compile(r"(?<![\w@#])@?([A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)?)\b")
_NUMBER = re.compile(r"(?<![\w.])v?\d+(?:\.\d+)*%?(?![\w])")
_COMMON = frozenset(
    [
        "I",
        "I'll",
        "I'm",
        "I've",
        "I'd",
        "OK",
        "Ok",
        "Yes",
        "No",
        "Sure",
        "Great",
        "Thanks",
        "Thank",
        "Let",
        "Let's",
        "We",
        "We'll",
        "Hi",
        "Hey",
        "The",
        "This",
        "That",
        "It",
        "It's",
        "So",
        "And",
        "But",
        "Or",
        "If",
        "Then",
        "Also",
        "Sounds",
        "Agreed",
        "Good",
        "Cool",
        "Nice",
        "Done",
        "Please",
        "Can",
        "Could",
        "Should",
        "Would",
        "Will",
        "What",
        "When",
        "Where",
        "Who",
        "Why",
        "How",
        "Yeah",
        "Yep",
        "Nope",
        "Okay",
        "Perfect",
    ]
)
MAX_FACT_WORDS = 24
_CALENDAR = frozenset(_DAYS.split("|")) | frozenset(_MONTHS.split("|"))  # not people's names


@dataclass(frozen=True, slots=True)
class KeyFact:
    """A message that states a decision, an owner or a date, with the terms a summary
    must mention to keep it."""

    author: str
    text: str
    terms: tuple[str, ...]

    @property
    def bullet(self) -> str:
        words = self.text.split()
        text = " ".join(words[:MAX_FACT_WORDS]) + ("…" if len(words) > MAX_FACT_WORDS else "")
        return f"- {self.author}: {text}"


def key_facts(said: Sequence[tuple[str, str]]) -> list[KeyFact]:
    """The key messages of a chat given as ``(author, text)`` pairs, in order."""
    facts = []
    for author, text in said:
        dates = [found.group(0) for found in _DATE.finditer(text)]
        committed = _DECISION.search(text) or _OWNER.search(text)
        if not (
            committed or any(_DUE.search(text[: found.start()]) for found in _DATE.finditer(text))
        ):
            continue  # "nice weather today" is chatter; "ship on Friday" is a plan
        names = [n for n in _NAME.findall(text) if n not in _COMMON and n.lower() not in _CALENDAR]
        numbers = _NUMBER.findall(text)
        terms = dict.fromkeys([author, *names, *dates, *numbers])
        facts.append(KeyFact(author, " ".join(text.split()), tuple(terms)))
    return facts


def mentions(summary: str, term: str) -> bool:
    """Whether ``summary`` mentions ``term`` as a whole word, in any case."""
    before = r"(?<!\w)" if term[:1].isalnum() else ""
    after = r"(?!\w)" if term[-1:].isalnum() else ""
    return re.search(before + re.escape(term) + after, summary, re.IGNORECASE) is not None


def missing_facts(summary: str, facts: Sequence[KeyFact]) -> list[KeyFact]:
    """The facts whose terms the summary does not all mention."""
    return [fact for fact in facts if not all(mentions(summary, term) for term in fact.terms)]
