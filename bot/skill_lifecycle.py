"""Skills' optional ``start(app)`` and ``stop()`` hooks: background tasks and clients a
skill keeps for as long as the bot runs.

``start`` runs once, in the skills' order (by name), after the adapters are built and before
the first message; a skill whose ``start`` fails is logged and still answers.
``stop`` runs at shutdown in the reverse order, once the answers under way have
ended, each bounded by :data:`STOP_S`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from confab.bot.adapter import Adapter
from confab.bot.skill import Skill
from confab.bot.skill_state import StateScope
from confab.bot.streaming import ReplyStream
from confab.storage.records import GLOBAL_SCOPE

if TYPE_CHECKING:  # the public face imports SkillApp and loads no database code
    from confab.storage.skill_state import SkillStateStore

log = logging.getLogger(__name__)

STOP_S = 3.0  # the longest one skill's stop() may take at shutdown

Post = Callable[[str, str, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SkillApp:
    """What a skill's ``start(app)`` hook is given: the bot's name, the skill's own
    state (``everywhere``), and a way to post into a channel of a running platform."""

    bot_name: str
    state: StateScope
    platforms: tuple[str, ...]
    _post: Post = field(repr=False)

    async def post(self, platform: str, channel: str, text: str) -> None:
        """Post ``text`` in ``channel`` on ``platform`` (split to the platform's limit).
        Raises ``KeyError`` for a platform this process does not serve."""
        if platform not in self.platforms:
            raise KeyError(f"no {platform} adapter is running (running: {self.platforms})")
        await self._post(platform, channel, text)


class SkillLifecycle:
    """Starts the skills that have a ``start`` hook, and stops them in reverse."""

    def __init__(self, skills: Sequence[Skill], app_for: Callable[[Skill], SkillApp]) -> None:
        self._skills = [skill for skill in skills if _has_hooks(skill)]
        self._app_for = app_for
        self._started: list[Skill] = []

    async def start(self) -> None:
        for skill in self._skills:
            try:
                await skill.start(self._app_for(skill))
            except Exception:
                log.exception("skill %s failed to start; it answers all the same", skill.name)
                continue
            self._started.append(skill)

    async def stop(self) -> None:
        """Safe to repeat: each started skill is stopped once."""
        while self._started:
            skill = self._started.pop()
            try:
                await asyncio.wait_for(skill.stop(), STOP_S)
            except TimeoutError:
                log.warning("skill %s did not stop within %.0f s; left behind", skill.name, STOP_S)
            except Exception:
                log.exception("skill %s failed to stop", skill.name)


def skill_lifecycle(
    skills: Sequence[Skill],
    bot_name: str,
    state: SkillStateStore,
    adapters: Sequence[Adapter],
) -> SkillLifecycle:
    """The lifecycle of ``skills`` in a process serving ``adapters``."""
    by_platform = {adapter.platform: adapter for adapter in adapters}

    async def post(platform: str, channel: str, text: str) -> None:
        await ReplyStream(by_platform[platform], channel).send_text(text)

    def app_for(skill: Skill) -> SkillApp:
        scope = StateScope(state, skill.name, GLOBAL_SCOPE)
        return SkillApp(bot_name, scope, tuple(by_platform), post)

    return SkillLifecycle(skills, app_for)


def _has_hooks(skill: Skill) -> bool:
    kind = type(skill)
    return kind.start is not Skill.start or kind.stop is not Skill.stop
