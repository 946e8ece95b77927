"""The skills of one running bot, looked up by command name or alias."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from confab.bot.skill import Skill, SkillInfo

log = logging.getLogger(__name__)


class SkillSet:
    """Configured skill instances by command; names win over aliases, the first alias claim wins."""

    def __init__(self, skills: Iterable[Skill]) -> None:
        self._by_name: dict[str, Skill] = {}
        for skill in skills:
            self._by_name[skill.name] = skill
        self._by_alias: dict[str, Skill] = {}
        for skill in self._by_name.values():
            for alias in skill.aliases:
                if alias in self._by_name or alias in self._by_alias:
                    log.warning("alias %r of skill %r is taken; ignored", alias, skill.name)
                else:
                    self._by_alias[alias] = skill
        ordered = sorted(self._by_name.values(), key=_name)
        self._infos = [SkillInfo.of(type(skill)) for skill in ordered]

    def find(self, command: str) -> Skill | None:
        command = command.lower()
        return self._by_name.get(command) or self._by_alias.get(command)

    @property
    def skills(self) -> list[Skill]:
        """Every configured skill, by name."""
        return sorted(self._by_name.values(), key=_name)

    @property
    def infos(self) -> list[SkillInfo]:
        return list(self._infos)  # a copy: a skill may not change what the router sees


def _name(skill: Skill) -> str:
    return skill.name
