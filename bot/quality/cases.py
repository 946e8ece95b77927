"""The suite's cases: TOML files in ``bench/quality_cases/``, one per group."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CASES_DIR = Path(__file__).resolve().parents[2] / "bench" / "quality_cases"

# Each group, with the skill it measures.
SKILL_OF = {
    "qa": "ask",
    "arithmetic": "ask",
    "memory": "ask",
    "knowledge": "ask",
    "unknown": "ask",
    "summary": "summarise",
    "code_write": "code",
    "code_fix": "code",
    "code_explain": "code",
    "creative": "write",
}
GROUPS = tuple(SKILL_OF)


class CaseError(ValueError):
    """A case file that cannot be read, with the file and case named."""


@dataclass(frozen=True, slots=True)
class Case:
    """One request (or conversation) and what makes its answer right."""

    group: str
    id: str
    spec: Mapping[str, Any]

    @property
    def skill(self) -> str:
        return SKILL_OF[self.group]


_REQUIRED = {
    "qa": ("ask",),
    "arithmetic": ("ask", "number"),
    "memory": ("turns",),
    "knowledge": ("ask", "expect", "source"),
    "unknown": ("ask",),
    "summary": ("messages", "facts"),
    "code_write": ("request", "tests"),
    "code_fix": ("code", "tests"),
    "code_explain": ("code", "terms"),
    "creative": ("request", "form"),
}


def load_cases(folder: Path = CASES_DIR, groups: Iterable[str] | None = None) -> list[Case]:
    """Every case of the chosen groups (all by default), in file order."""
    chosen = list(groups) if groups is not None else list(GROUPS)
    unknown = [group for group in chosen if group not in SKILL_OF]
    if unknown:
        raise CaseError(f"unknown group(s) {', '.join(unknown)}; known: {', '.join(GROUPS)}")
    cases: list[Case] = []
    seen: set[str] = set()
    for group in chosen:
        path = folder / f"{group}.toml"
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise CaseError(f"{path}: {error}") from None
        for index, spec in enumerate(data.get("case", []), 1):
            case_id = spec.get("id")
            if not isinstance(case_id, str) or not case_id:
                raise CaseError(f"{path}: case {index} has no id")
            missing = [key for key in _REQUIRED[group] if key not in spec]
            if missing:
                raise CaseError(f"{path}: {case_id} lacks {', '.join(missing)}")
            if case_id in seen:
                raise CaseError(f"{path}: the id {case_id} is used twice")
            seen.add(case_id)
            cases.append(Case(group, case_id, spec))
    return cases
