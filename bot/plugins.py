"""Finding skills and adapters through Python entry points.

Built-ins register exactly like third-party packages, so the core never imports
a plugin by name. A plugin that fails to import or declares itself badly is
logged and left out; the bot starts without it.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points

from confab.bot.adapter import Adapter
from confab.bot.extras import missing_extra
from confab.bot.skill import Skill

log = logging.getLogger(__name__)

SKILL_GROUP = "confab.skills"
ADAPTER_GROUP = "confab.adapters"
NOT_LOADED = "not loaded by this command"


@dataclass
class SkillCatalog:
    """Installed skill classes by name, plus the ones left out and why."""

    skills: dict[str, type[Skill]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


@dataclass
class AdapterCatalog:
    adapters: dict[str, type[Adapter]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


class _ImportFailed:
    """Why an entry point could not be imported."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _load(point: EntryPoint) -> object:
    try:
        return point.load()
    except Exception as error:
        if sentence := missing_extra(error):  # an install choice, not a fault
            log.debug("plugin %r left out: %s", point.name, sentence)
            return _ImportFailed(sentence)
        log.exception("plugin %r (%s) failed to import; it is left out", point.name, point.value)
        return _ImportFailed(f"import failed: {error}")


def discover_skills(points: Iterable[EntryPoint] | None = None) -> SkillCatalog:
    """Load every ``confab.skills`` entry point (or the ones given, for tests)."""
    catalog = SkillCatalog()
    for point in entry_points(group=SKILL_GROUP) if points is None else points:
        loaded = _load(point)
        if isinstance(loaded, _ImportFailed):
            catalog.failed[point.name] = loaded.reason
            continue
        if not (isinstance(loaded, type) and issubclass(loaded, Skill)):
            reason = f"{point.value} is not a Skill subclass"
        elif problems := loaded.declaration_problems():
            reason = "; ".join(problems)
        elif loaded.name in catalog.skills:
            reason = f"the name {loaded.name!r} is taken by {catalog.skills[loaded.name]!r}"
        else:
            catalog.skills[loaded.name] = loaded
            continue
        log.error("skill %r left out: %s", point.name, reason)
        catalog.failed[point.name] = reason
    return catalog


def discover_adapters(
    points: Iterable[EntryPoint] | None = None, *, only: Collection[str] | None = None
) -> AdapterCatalog:
    """Load every ``confab.adapters`` entry point (or the ones given, for tests).

    With ``only``, the others are listed as left out without being imported: a
    console session does not import discord.py and slack-bolt (0.15 to 0.3 s of its
    start), and their config sections are taken as they are.
    """
    catalog = AdapterCatalog()
    for point in entry_points(group=ADAPTER_GROUP) if points is None else points:
        if only is not None and point.name not in only:
            catalog.failed[point.name] = NOT_LOADED
            continue
        loaded = _load(point)
        if isinstance(loaded, _ImportFailed):
            catalog.failed[point.name] = loaded.reason
        elif isinstance(loaded, type) and issubclass(loaded, Adapter):
            catalog.adapters[point.name] = loaded
        else:
            log.error("adapter %r left out: %s is not an Adapter", point.name, point.value)
            catalog.failed[point.name] = "not an Adapter subclass"
    return catalog
