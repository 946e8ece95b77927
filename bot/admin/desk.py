"""What the admin page reads and changes, over the running app's own parts.

Every change goes through the same stores and scheduler that chat and the
command line use (so a skill switched off here is refused in chat at once) and
is recorded in the :class:`~confab.bot.audit.Audit` with the admin's name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from confab.bot.audit import Audit
from confab.bot.config import Config
from confab.bot.errors import ConfabError
from confab.bot.knowledge.base import Added, KnowledgeBase
from confab.bot.knowledge.documents import kind_of, read_document_bytes
from confab.bot.lab.model_facts import ModelFacts, model_facts
from confab.bot.llm.registry import ModelRegistry, RegistryError
from confab.bot.model_commands import Serving, choose_model, listed_models, serving_of
from confab.bot.scheduling.jobs import ScheduledJob
from confab.bot.scheduling.runner import JobScheduler
from confab.bot.skill import ALWAYS_ON, SkillInfo, enabled_after, switched_off_of
from confab.storage.browse import ConversationBrowser
from confab.storage.channels import ChannelSettingsStore
from confab.storage.records import StoredDocument
from confab.storage.served_models import ServedModels

VIA = "admin page"


class AdminRefused(ConfabError):
    """A change the admin page cannot make; the sentence is shown on the page."""


@dataclass(frozen=True, slots=True)
class SkillSwitch:
    """One skill in one channel: whether it answers there, and whether it may be switched."""

    info: SkillInfo
    on: bool
    locked: bool  # ``help`` and ``skills`` always stay on


@dataclass(frozen=True, slots=True)
class Models:
    """The registry's models with their facts (evaluations included) and what serves where."""

    facts: list[ModelFacts]
    serving: Serving


def channel_named(text: str) -> tuple[str, str]:
    """``platform:channel`` as a pair, or :class:`AdminRefused`."""
    platform, _, channel = text.strip().partition(":")
    if not platform or not channel or len(platform) > 32 or len(channel) > 255:
        shown = text if len(text) <= 64 else text[:63] + "…"
        raise AdminRefused(f"{shown!r} is not a channel: write platform:channel, e.g. web:general.")
    return platform, channel


class AdminDesk:
    """The admin page's view of one running Confab process."""

    def __init__(
        self,
        *,
        config: Config,
        browser: ConversationBrowser,
        settings: ChannelSettingsStore,
        served: ServedModels,
        skills: Sequence[SkillInfo],
        scheduler: JobScheduler | None,
        knowledge: KnowledgeBase | None,
        audit: Audit,
    ) -> None:
        self.config = config
        self.browser = browser
        self.settings = settings
        self.served = served
        self.skills = list(skills)
        self.scheduler = scheduler
        self.knowledge = knowledge
        self.audit = audit

    def _changed(self, who: str, what: str) -> None:
        self.audit.changed(f"web-admin:{who}", VIA, what)

    # -- skills --------------------------------------------------------------------

    async def switches(self, platform: str, channel: str) -> list[SkillSwitch]:
        off = await self._switched_off(platform, channel)
        return [
            SkillSwitch(info, on=info.name not in off, locked=info.name in ALWAYS_ON)
            for info in self.skills
        ]

    async def switch(self, who: str, platform: str, channel: str, skill: str, on: bool) -> None:
        """Switch ``skill`` on or off in one channel, as ``!skills enable|disable`` does."""
        installed = [info.name for info in self.skills]
        if skill not in installed:
            raise AdminRefused(f"There is no skill called {skill!r}.")
        if not on and skill in ALWAYS_ON:
            raise AdminRefused(f"{skill} always stays on, so the switches can be undone.")
        off = await self._switched_off(platform, channel)
        enabled = enabled_after(installed, off, [skill], on=on)
        await self.settings.update(platform, channel, enabled_skills=enabled)
        self._changed(who, f"switched {skill} {'on' if on else 'off'} in {platform}:{channel}")

    async def _switched_off(self, platform: str, channel: str) -> frozenset[str]:
        enabled = (await self.settings.get(platform, channel)).enabled_skills
        return switched_off_of(enabled, (info.name for info in self.skills))

    # -- scheduled jobs --------------------------------------------------------------

    async def jobs(self) -> list[ScheduledJob]:
        """Every channel's jobs, read from APScheduler's (synchronous) store on a thread."""
        if self.scheduler is None:
            return []
        return await asyncio.to_thread(self.scheduler.jobs)

    async def pause_job(self, who: str, job_id: str, *, paused: bool) -> None:
        scheduler = self._scheduler()
        change = scheduler.pause_job if paused else scheduler.resume_job
        # APScheduler's job store is synchronous: a worker thread, as in chat.
        if await asyncio.to_thread(change, job_id) is None:
            raise AdminRefused(f"Job {job_id} has just run or was removed already.")
        self._changed(who, f"{'paused' if paused else 'resumed'} job {job_id}")

    async def remove_job(self, who: str, job_id: str) -> None:
        if not await asyncio.to_thread(self._scheduler().remove, job_id):
            raise AdminRefused(f"Job {job_id} has just run or was removed already.")
        self._changed(who, f"removed job {job_id}")

    def _scheduler(self) -> JobScheduler:
        if self.scheduler is None:
            raise AdminRefused("The scheduler is not running.")
        return self.scheduler

    # -- models --------------------------------------------------------------------

    async def models(self) -> Models:
        registry = ModelRegistry.from_config(self.config)
        serving = await serving_of(self.served, self.config, registry)
        entries = listed_models(registry, serving)
        facts = await asyncio.gather(*(asyncio.to_thread(model_facts, e) for e in entries))
        return Models(list(facts), serving)

    async def use_model(self, who: str, name: str | None, channel: str | None) -> None:
        """Serve ``name`` by default, or in ``channel`` (``platform:channel``); None resets."""
        choice = None
        if name:
            try:
                choice = ModelRegistry.from_config(self.config).find(name).name
            except RegistryError as error:
                raise AdminRefused(error.user_message) from None
        place = channel_named(channel) if channel else None
        self._changed(who, await choose_model(self.served, choice, place))

    # -- knowledge -------------------------------------------------------------------

    async def documents(self) -> list[StoredDocument]:
        return await self._knowledge().documents()

    async def add_document(
        self, who: str, name: str, data: bytes, channels: Sequence[str] = ()
    ) -> Added:
        base = self._knowledge()
        for channel in channels:
            channel_named(channel)
        limit = int(self.config.knowledge.max_file_mb * 1024 * 1024)
        kind_of(name)  # refused by its name first
        document = read_document_bytes(name, data, max_bytes=limit)
        added = await base.add(
            document,
            source=f"admin:{name}",
            channels=list(channels) or None,
            added_by=f"web-admin:{who}",
        )
        scope = ", ".join(channels) or "everywhere"
        self._changed(who, f"{added.outcome} document {added.document.name} ({scope})")
        return added

    async def remove_document(self, who: str, name: str) -> None:
        removed = await self._knowledge().remove(name)
        if not removed:
            raise AdminRefused(f"There is no document {name!r}.")
        self._changed(who, "removed document " + ", ".join(doc.name for doc in removed))

    def _knowledge(self) -> KnowledgeBase:
        if self.knowledge is None:
            raise AdminRefused("The knowledge base is off ([knowledge] enabled, or [local]).")
        return self.knowledge
