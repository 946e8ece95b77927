"""The application: builds everything from config, runs the adapters, shuts down cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from confab.bot.adapter import Adapter, AdapterContext
from confab.bot.audit import Audit
from confab.bot.channel_log import StoredChannelLog
from confab.bot.config import Config, check_plugins
from confab.bot.errors import ConfabError, ConfigError
from confab.bot.extras import MissingExtra, local_model_missing, needs_extra
from confab.bot.health import Health, check_health
from confab.bot.knowledge.base import KnowledgeBase
from confab.bot.knowledge.embedding import Embedder, EmbeddingUnavailable, model_folder, verified
from confab.bot.llm.backend import ModelBackend
from confab.bot.llm.config import ModelConfig
from confab.bot.llm.packaged import PACKAGED, installed
from confab.bot.llm.pending import PendingModel
from confab.bot.llm.pool import ModelPool, Resolve
from confab.bot.llm.registry import ModelRegistry
from confab.bot.llm.weights import Progress
from confab.bot.metrics import PrometheusMetrics
from confab.bot.plugins import AdapterCatalog, SkillCatalog
from confab.bot.retention import RetentionJob
from confab.bot.router import Router
from confab.bot.scheduling.runner import JobScheduler
from confab.bot.shutdown import InFlight
from confab.bot.skill_lifecycle import SkillLifecycle, skill_lifecycle
from confab.bot.skillset import SkillSet
from confab.storage.channels import ChannelSettingsStore
from confab.storage.conversations import ConversationStore
from confab.storage.database import Database
from confab.storage.events import EventLog
from confab.storage.served_models import ServedModels

if TYPE_CHECKING:  # aiohttp is imported only where [web] is on: 0.13 s of a console start
    from aiohttp import web

    from confab.bot.web import WebServer

log = logging.getLogger(__name__)

AdapterFactory = Callable[[AdapterContext], Adapter]


def build_backend(config: Config, progress: Progress | None = None) -> ModelBackend:
    """The model backend named by ``model.backend``."""
    if config.model.backend == "openai":
        from confab.bot.llm.openai_backend import OpenAIBackend

        return OpenAIBackend(config.model)
    return _local_backend(config.model, progress)


def _local_backend(settings: ModelConfig, progress: Progress | None) -> ModelBackend:
    with needs_extra("The model is not installed on this server."):
        from confab.bot.llm.transformers_backend import TransformersBackend

    return TransformersBackend(settings, progress)


def model_resolver(config: Config, progress: Progress | None = None) -> Resolve:
    """How the model pool finds a choice: None is the config's model (``build_backend``),
    anything else a name or path in the registry, served locally."""
    registry = ModelRegistry.from_config(config)

    def resolve(choice: str | None) -> tuple[str, Callable[[], ModelBackend]]:
        if choice is None:
            return _configured_key(config, registry), lambda: build_backend(config, progress)
        entry = registry.find(choice)
        settings = config.model.model_copy(
            update={"backend": "transformers", "path": str(entry.path)}
        )
        return entry.key, lambda: _local_backend(settings, progress)

    return resolve


def _configured_key(config: Config, registry: ModelRegistry) -> str:
    """The pool's key for the config's model: a name of the same model shares it."""
    model = config.model
    if model.backend == "openai":
        return f"openai {model.openai.base_url} {model.openai.model}"
    entry = registry.configured(model)
    return entry.key if entry is not None else "the configured model"  # loading says why


class App:
    """One Confab process: storage, model, skills, router and the enabled adapters.

    A stop (:meth:`request_stop`, a SIGTERM or Ctrl-C in ``confab run``) drains
    first: answers under way get ``shutdown_grace_s`` to finish and are then cut
    short with a notice, new messages are asked to come back (see
    :mod:`confab.bot.shutdown`); only then are the adapters, the model and the database
    closed.
    """

    def __init__(
        self,
        config: Config,
        *,
        skills: SkillCatalog,
        adapters: AdapterCatalog,
        enabled: list[str] | None = None,
        model: ModelBackend | None = None,
        adapter_factories: Mapping[str, AdapterFactory] | None = None,
        progress: Progress | None = None,
        shutdown_grace_s: float | None = None,
    ) -> None:
        self.config = config
        self._skills = skills
        self._catalog = adapters
        self._enabled = enabled if enabled is not None else list(config.bot.adapters)
        self._factories = dict(adapter_factories or {})
        self._progress = progress
        self.model = model
        self.models: ModelPool | None = None
        self.database: Database | None = None
        self.router: Router | None = None
        self.retention: RetentionJob | None = None
        self.knowledge: KnowledgeBase | None = None
        self.scheduler: JobScheduler | None = None
        self.lifecycle: SkillLifecycle | None = None
        self.loading: asyncio.Task[ModelBackend] | None = None  # the model, loading at start
        self.adapters: list[Adapter] = []
        self._serving: dict[asyncio.Task[None], Adapter] = {}  # every adapter's run, from serve()
        self.in_flight: InFlight | None = None
        self.metrics = PrometheusMetrics()
        self.metrics.observe(
            lambda: self.database, lambda: self.models.backends if self.models else []
        )
        self.web: WebServer | None = None  # /healthz, /metrics and the pages, while serving
        self.audit = Audit()  # changes made from chat and the admin page
        self.settings: ChannelSettingsStore | None = None
        self.served: ServedModels | None = None
        self.shutdown_grace_s = (
            shutdown_grace_s if shutdown_grace_s is not None else config.bot.shutdown_grace_s
        )
        self.all_adapters_failed = False  # set when serve() ended because none could run
        self._stopping = asyncio.Event()
        self._check()

    def _check(self) -> None:
        if not self._enabled:
            raise ConfigError("no adapter is enabled: set bot.adapters")
        check_plugins(
            self.config,
            self._skills.skills,
            [*self._catalog.adapters, *self._factories],
            self._enabled,
            self._catalog.failed,
        )
        from confab.bot.admin.auth import Credential

        # Read once; a token too short stops the start here.
        self._admin_credential = Credential.from_config(self.config.web)
        if self.config.model.backend == "transformers" and (missing := local_model_missing()):
            raise MissingExtra(
                "The model is not installed on this server.",
                f'model.backend = "transformers" runs the model in this process, and {missing} '
                '(or set model.backend = "openai" to use a model server)',
            )

    async def start(self) -> None:
        """Open the database (migrating it), start the retention job, start loading the
        model, build router and adapters. Loading goes on while the bot serves: skills
        that do not use the model answer at once (see :meth:`serve`)."""
        self.database = Database(self.config.bot.database_url)
        await self.database.upgrade()
        store = ConversationStore(self.database)
        self.retention = RetentionJob(
            store, EventLog(self.database), self.config.storage.retention_days
        )
        self.retention.start()
        self.knowledge = await self._start_knowledge(self.database)
        settings = self.settings = ChannelSettingsStore(self.database)
        served = self.served = ServedModels(self.database, settings)
        self.models = ModelPool(
            model_resolver(self.config, self._progress),
            served.own_choice,
            served.default,
            max_loaded=self.config.model.max_loaded,
            # By then every answer begun on an unloaded model has ended or timed out.
            retire_after_s=self.config.model.request_timeout_s,
        )
        if self.knowledge is not None:
            self.knowledge.warm()
        skill_set = SkillSet(
            cls(self.config.skill_config(name)) for name, cls in self._skills.skills.items()
        )
        own_models = self._skill_models(skill_set)
        # The default chosen with `confab model use` is loaded instead of the config's.
        self.loading = asyncio.create_task(
            self._load_models(await served.default(), own_models), name="load the model"
        )
        pending = PendingModel(self.loading)
        pool = self.models

        async def for_channel(platform: str, channel: str) -> ModelBackend:
            await pending.ready()
            return await pool.for_channel(platform, channel)

        async def named(choice: str) -> ModelBackend:
            await pending.ready()
            return await pool.ready(choice)

        self.scheduler = JobScheduler(
            self.config.scheduler,
            self.config.bot.database_url,
            EventLog(self.database),
            command_prefix=self.config.router.prefixes[0],
            metrics=self.metrics,
        )
        self.router = Router(
            skills=skill_set,
            model=pending,
            models=for_channel,
            named_models=named,
            store=store,
            settings=settings,
            config=self.config.router,
            bot_name=self.config.bot.name,
            scheduler=self.scheduler,
            timezone=self.config.bot.timezone,
            knowledge=self.knowledge,
            metrics=self.metrics,
            audit=self.audit,
        )
        self.in_flight = InFlight(
            self.router.handle,
            grace_s=self.shutdown_grace_s,
            expects_answer=self.router.expects_answer,
        )
        if self._stopping.is_set():  # asked to stop while starting
            self.in_flight.close()
        channel_log = StoredChannelLog(store)
        for name in self._enabled:
            section = self.config.section(name)
            context = AdapterContext(section, self.config.bot.name, channel_log, skill_set.infos)
            factory = self._factories.get(name) or self._catalog.adapters[name]
            self.adapters.append(factory(context))
        self.scheduler.attach(self.in_flight.handle, {a.platform: a for a in self.adapters})
        self.lifecycle = skill_lifecycle(
            skill_set.skills, self.config.bot.name, self.router.state, self.adapters
        )
        await self.lifecycle.start()
        self.scheduler.start()

    async def _start_knowledge(self, database: Database) -> KnowledgeBase | None:
        """The knowledge base, its index loaded and its indexer running; None when it is
        switched off or its sentence model is missing (said once, and the bot answers
        without it)."""
        if not self.config.knowledge.enabled:
            return None
        try:
            folder = await asyncio.to_thread(lambda: verified(model_folder()))
        except EmbeddingUnavailable as error:
            log.warning("knowledge base off: %s", error)
            return None
        knowledge = KnowledgeBase(database, self.config.knowledge, Embedder(folder))
        await knowledge.start()
        return knowledge

    async def _load_models(self, choice: str | None, own_models: list[str]) -> ModelBackend:
        """Load the model that answers by default, then start loading the skills' own."""
        assert self.models is not None
        if self.model is not None:
            await self.model.start()
        self.model = await self.models.start(choice, preloaded=self.model)
        for own in own_models:
            await self.models.ready(own)  # a name that resolves to nothing is logged there
        return self.model

    def _skill_models(self, skills: SkillSet) -> list[str]:
        """The skills' own models. A packaged model that is not installed is said once,
        and the channel's model answers that skill."""
        own_models = []
        for skill in skills.skills:
            own = getattr(skill.config, "model", None)
            if not own or skill.config is None:
                continue
            packaged = PACKAGED.get(own)
            if packaged is not None and own not in self.config.models:
                missing = packaged.install if not installed(packaged) else local_model_missing()
            else:
                missing = None
            if missing:
                log.warning(
                    "%s would answer with %s, which is not installed (%s); "
                    "the channel's model answers it instead",
                    skill.name, own, missing,
                )  # fmt: skip
                skill.config = skill.config.model_copy(update={"model": None})
                continue
            own_models.append(own)
        return own_models

    async def run(self) -> None:
        """Start, serve until an adapter's session ends or :meth:`request_stop`, then stop."""
        try:
            if self.router is None:
                await self.start()
            await self.serve()
        finally:
            await self.stop()

    def request_stop(self) -> None:
        """Stop serving: new messages are asked to come back, answers under way get
        the grace. A second request cuts them short at once. Safe from a signal handler."""
        if self.scheduler is not None:
            self.scheduler.pause()
        if self.in_flight is not None:
            if self._stopping.is_set():
                self.in_flight.hurry()
            else:
                self.in_flight.close()
        self._stopping.set()

    async def serve(self) -> None:
        """Run every adapter until one's session ends, all have failed, or a stop request;
        then drain the answers under way while the adapters are still connected."""
        assert self.in_flight is not None
        handle = self.in_flight.handle
        if self.web is None:
            await self._start_web()
        tasks = {
            asyncio.create_task(adapter.run(handle), name=adapter.platform): adapter
            for adapter in self.adapters
        }
        self._serving = dict(tasks)
        stopper = asyncio.create_task(self._wait_for_stop_request())
        loading = self.loading
        if self.scheduler is not None:
            self.scheduler.resume()  # jobs run once the adapters are serving
        try:
            while tasks:
                watched: set[asyncio.Future[Any]] = {*tasks, stopper}
                if loading is not None:
                    watched.add(loading)
                done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
                if stopper in done:
                    return
                if loading is not None and loading in done:
                    # A model that cannot load stops the bot, as it did before serving.
                    loading.result()
                    loading = None
                for task in done & tasks.keys():
                    adapter = tasks.pop(task)  # type: ignore[call-overload]
                    if task.cancelled() or task.exception() is None:
                        log.info("%s session ended; stopping", adapter.platform)
                        return
                    failure = task.exception()
                    log.error(
                        "%s adapter failed%s; the others keep serving",
                        adapter.platform,
                        f": {failure}" if isinstance(failure, ConfabError) else "",
                        # Our own errors say what is wrong; anything else needs its trace.
                        exc_info=None if isinstance(failure, ConfabError) else failure,
                    )
            log.error("no adapter is running any more; stopping")
            self.all_adapters_failed = True
        finally:
            # The adapters stay connected while answers under way finish or are
            # cut short, so every one of them can still be told.
            await self.in_flight.drain()
            stopper.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, stopper, return_exceptions=True)

    async def _start_web(self) -> None:
        """Serve ``[web]`` when it is on, or when an enabled adapter has pages (the web
        chat); the admin page joins them when its credential is set."""
        pages = dict(
            mounted for adapter in self.adapters if (mounted := adapter.http_application())
        )
        if not (self.config.web.enabled or pages):
            return
        admin = self._admin_pages()
        if admin is not None:
            pages["/admin"] = admin
        from confab.bot.web import WebServer

        self.web = WebServer(self.config.web, self.health, self.metrics, pages)
        await self.web.start()

    def _admin_pages(self) -> web.Application | None:
        credential = self._admin_credential
        if credential is None:
            return None
        from confab.bot.admin.desk import AdminDesk
        from confab.bot.admin.figures import LiveFigures
        from confab.bot.admin.pages import AdminPages
        from confab.storage.browse import ConversationBrowser

        assert self.database and self.settings and self.served and self.router
        desk = AdminDesk(
            config=self.config,
            browser=ConversationBrowser(self.database),
            settings=self.settings,
            served=self.served,
            skills=self.router.skills.infos,
            scheduler=self.scheduler,
            knowledge=self.knowledge,
            audit=self.audit,
        )
        figures = LiveFigures(self.metrics)
        return AdminPages(
            desk, credential, self.config.web, figures, self.config.bot.name
        ).application()

    async def _wait_for_stop_request(self) -> None:
        await self._stopping.wait()

    async def health(self) -> Health:
        """Each adapter (down once its ``run`` ended), the database and the model, as
        ``/healthz`` reports them (see :mod:`confab.bot.health`)."""
        running = {adapter for task, adapter in self._serving.items() if not task.done()}
        return await check_health(
            [(adapter, adapter in running) for adapter in self.adapters],
            self.database,
            self.loading,
        )

    async def stop(self) -> None:
        """Drain the answers under way, stop jobs and adapters, join the model worker,
        dispose of the database (after the last write). Safe to repeat."""
        if self.in_flight is not None:
            await self.in_flight.drain()
        if self.web is not None:
            await self.web.stop()
            self.web = None
        if self.lifecycle is not None:
            await self.lifecycle.stop()
        if self.loading is not None and not self.loading.done():
            self.loading.cancel()  # stopped while the model was still loading
            with contextlib.suppress(BaseException):
                await self.loading
        if self.scheduler is not None:
            await self.scheduler.stop()
            self.scheduler = None
        for adapter in self.adapters:
            try:
                await adapter.stop()
            except Exception:
                log.exception("stopping the %s adapter failed", adapter.platform)
        self.adapters = []
        if self.retention is not None:
            await self.retention.stop()
            self.retention = None
        if self.knowledge is not None:
            await self.knowledge.close()
            await self.knowledge.embedder.close()
            self.knowledge = None
        if self.models is not None:
            await self.models.close()
            self.models = None
        elif self.model is not None:
            await self.model.close()
        if self.database is not None:
            await self.database.close()
            self.database = None
