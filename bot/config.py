"""Configuration: one TOML file, overridable by ``CONFAB_<SECTION>__<KEY>`` variables.

The core sections (``bot``, ``router`` ...) are declared here, ``model`` in the model
package (:mod:`confab.bot.llm.config`). Each
adapter adds a top-level section and each skill a ``[skills.NAME]`` table with
its own pydantic model; :func:`build_config_model` assembles the full schema
from whatever plugins are installed, so every key is validated at start.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    create_model,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from confab.bot.errors import ConfigError
from confab.bot.llm.config import MODEL_NAME, ModelConfig
from confab.bot.paths import default_database_url
from confab.bot.section import Section

DEFAULT_CONFIG_FILE = Path("config.toml")
ENV_PREFIX = "CONFAB_"
CORE_SECTIONS = (
    "bot",
    "router",
    "model",
    "models",
    "storage",
    "knowledge",
    "scheduler",
    "web",
    "skills",
)


class BotConfig(Section):
    name: str = Field("confab", min_length=1, max_length=64)
    # A SQLite file under $XDG_DATA_HOME/confab, else ~/.local/share/confab.
    database_url: str = Field(default_factory=default_database_url)
    adapters: list[str] = Field(default_factory=lambda: ["console"], min_length=1)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # "json": one JSON object per line on stderr, for a log collector.
    log_format: Literal["text", "json"] = "text"
    # Scheduled jobs run in a channel's own timezone (its settings) or this one.
    timezone: str = "UTC"
    # At a stop (SIGTERM, Ctrl-C), answers under way get this long to finish; the
    # rest are cut short with a "restarting" notice, at most 1.5 s later, and the
    # process is gone about 1 s after that.
    shutdown_grace_s: float = Field(6.0, ge=0, le=600)

    @field_validator("timezone")
    @classmethod
    def _iana(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be an IANA timezone name such as Europe/Paris") from None
        return value

    @field_validator("adapters")
    @classmethod
    def _each_once(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each adapter may be listed once")
        return value

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value


class RouterConfig(Section):
    prefixes: list[str] = Field(default_factory=lambda: ["!"], min_length=1)
    default_skill: str = "ask"
    max_input_chars: int = Field(4000, gt=0, le=1_000_000)
    ignore_bots: bool = True
    # "platform:user_id", or "platform:*" for everyone there (the console's
    # user is the person at the keyboard, who runs the bot anyway).
    admins: list[str] = Field(default_factory=lambda: ["console:*"])
    # Per person (admins exempt): a burst of messages, then user_rate_per_minute.
    user_rate_per_minute: float = Field(20.0, gt=0, le=1_000_000)
    user_burst: int = Field(8, ge=1, le=1_000_000)
    # Per channel: messages handled at once, and how many more may wait their turn;
    # past that a message gets a short busy notice.
    channel_concurrency: int = Field(4, ge=1, le=1000)
    channel_queue: int = Field(16, ge=0, le=100_000)

    @field_validator("admins")
    @classmethod
    def _platform_and_user(cls, value: list[str]) -> list[str]:
        for entry in value:
            platform, _, user = entry.partition(":")
            if not platform or not user or entry != entry.strip():
                raise ValueError(f"{entry!r} must be 'platform:user_id' or 'platform:*'")
        return value

    @field_validator("prefixes")
    @classmethod
    def _usable_prefixes(cls, value: list[str]) -> list[str]:
        for prefix in value:
            if not prefix or prefix != prefix.strip():
                raise ValueError("each prefix must be non-empty and contain no spaces")
        return value


class SchedulerConfig(Section):
    # Whether this process runs scheduled jobs. Several processes on one
    # PostgreSQL database may all run them: each run is claimed in the database
    # first, so a job never runs twice.
    enabled: bool = True
    # A run missed while the bot was down fires once at start if it is at most
    # this many seconds late; older misses are skipped and logged.
    misfire_grace_s: int = Field(300, ge=1, le=7 * 86_400)


class StorageConfig(Section):
    # Days a turn is kept; a daily job deletes older ones. 0 keeps them forever.
    retention_days: int = Field(0, ge=0, le=36_500)


class KnowledgeConfig(Section):
    # Retrieval over stored channel history and added documents (`confab kb`).
    enabled: bool = True
    # Channels (`platform:channel`) whose history may answer in every other
    # channel; a DM's history never does, listed or not.
    shared_channels: list[str] = Field(default_factory=list)
    # A passage goes into `ask`'s prompt when its similarity to the question
    # (cosine of the sentence vectors) is at least this.
    min_similarity: float = Field(0.35, ge=-1.0, le=1.0)
    # How many passages `ask` is shown at most, and how many `!search` lists.
    max_passages: int = Field(3, ge=1, le=20)
    search_results: int = Field(5, ge=1, le=20)
    # Files added with `confab kb add` or `!kb add`.
    max_file_mb: float = Field(20.0, gt=0, le=1024)
    # Messages of one channel or thread at most this many minutes apart form one chunk.
    chunk_gap_minutes: float = Field(15.0, gt=0, le=10_080)
    # How often the indexer looks for new messages, in seconds.
    index_every_s: float = Field(2.0, gt=0, le=3600)

    @field_validator("shared_channels")
    @classmethod
    def _channel_names(cls, value: list[str]) -> list[str]:
        for name in value:
            platform, _, channel = name.partition(":")
            if not platform or not channel:
                raise ValueError(f"{name!r} is not platform:channel (e.g. 'slack:C0123ABCD')")
        return value


class WebConfig(Section):
    # One HTTP server: GET /healthz and GET /metrics (Prometheus), the web chat
    # (when "web" is in bot.adapters) and the admin page (when its credential is set).
    enabled: bool = False
    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(8080, ge=0, le=65_535)  # 0: any free port (the log says which)
    # The admin page (/admin/) is off unless one of these is set: a token in the
    # environment variable named here, or a hash from `confab admin hash-password`.
    admin_token_env: str = "CONFAB_ADMIN_TOKEN"
    admin_password_hash: str = ""
    session_ttl_s: float = Field(8 * 3600, gt=0, le=30 * 24 * 3600)
    # Failed logins allowed per client address within login_window_s; then refused.
    login_attempts: int = Field(5, ge=1, le=1000)
    login_window_s: float = Field(300.0, gt=0, le=86_400)
    # Mark the admin cookie Secure: set it when the page is served over HTTPS (a proxy).
    secure_cookies: bool = False

    @field_validator("host")
    @classmethod
    def _bare_host(cls, value: str) -> str:
        if value != value.strip() or "://" in value or "/" in value:
            raise ValueError("must be a host name or IP address, such as 127.0.0.1 or 0.0.0.0")
        return value

    @field_validator("admin_password_hash")
    @classmethod
    def _password_hash(cls, value: str) -> str:
        if value and not value.startswith("scrypt$"):
            raise ValueError("must be a hash printed by `confab admin hash-password`")
        return value


class Config(BaseSettings):
    """The validated settings of one Confab process."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    bot: BotConfig = Field(default_factory=BotConfig)
    router: RouterConfig = Field(default_factory=RouterConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    # Other local models by name, for `confab model list|show|use|eval|finetune --base`.
    models: dict[str, str] = Field(default_factory=dict)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    knowledge: KnowledgeConfig = Field(default_factory=KnowledgeConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    web: WebConfig = Field(default_factory=WebConfig)

    @field_validator("models")
    @classmethod
    def _model_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, path in value.items():
            if not MODEL_NAME.fullmatch(name) or name == "bundled":
                raise ValueError(
                    f"{name!r} cannot name a model: use letters, digits, '.', '_' and '-' "
                    "(up to 64, not 'bundled')"
                )
            if not path.strip():
                raise ValueError(f"models.{name} is empty: give a model folder or .gguf file")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's contents arrive as init arguments; the environment wins over them.
        return (env_settings, init_settings)

    def section(self, name: str) -> BaseModel:
        """The validated section of an adapter (``[console]``, ``[discord]`` ...)."""
        value = getattr(self, name, None)
        if not isinstance(value, BaseModel):
            raise KeyError(name)
        return value

    def skill_config(self, name: str) -> BaseModel | None:
        """The validated ``[skills.NAME]`` table, or None for a skill without config."""
        skills = getattr(self, "skills", None)
        value = getattr(skills, name, None) if skills is not None else None
        return value if isinstance(value, BaseModel) else None


def _field_for(model: type[BaseModel]) -> tuple[Any, Any]:
    try:
        return (model, model())
    except ValidationError:
        return (model, ...)  # the section has required keys: it must be present


def build_config_model(
    adapters: Mapping[str, type[BaseModel]] | None = None,
    skills: Mapping[str, type[BaseModel] | None] | None = None,
    left_out: Iterable[str] = (),
) -> type[Config]:
    """The full schema: core sections plus one per installed adapter and skill. The
    section of an adapter in ``left_out`` (registered, but its extra is missing) is
    taken as it is, so that enabling it says what to install, not "unknown key"."""
    skill_fields: dict[str, Any] = {}
    for name, model in (skills or {}).items():
        skill_fields[name] = _field_for(model or Section)
    skills_model = create_model("SkillsConfig", __base__=Section, **skill_fields)
    adapter_fields: dict[str, Any] = {}
    for name, model in (adapters or {}).items():
        if name in CORE_SECTIONS and Config.model_fields[name].annotation is model:
            continue  # the web chat takes [web], the section of the server it is served by
        if name in CORE_SECTIONS:
            raise ConfigError(f"adapter name {name!r} clashes with a core config section")
        adapter_fields[name] = _field_for(model)
    for name in left_out:
        if name not in CORE_SECTIONS:  # the web chat's [web] is the server's, always there
            adapter_fields.setdefault(name, (dict[str, Any] | None, None))
    built: type[Config] = create_model(
        "Config",
        __base__=Config,
        skills=(skills_model, Field(default_factory=skills_model)),
        **adapter_fields,
    )
    return built


def resolve_config_path(path: str | Path | None) -> Path | None:
    """``--config PATH`` if given, else ``./config.toml`` if present, else None."""
    if path is not None:
        explicit = Path(path).expanduser()
        if not explicit.is_file():
            raise ConfigError(f"config file {explicit} does not exist")
        return explicit
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read: {error.strerror}") from None


def load_config(
    path: str | Path | None = None,
    *,
    schema: type[Config] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Read, merge with the environment and validate; raise ConfigError on any problem."""
    schema = schema or build_config_model()
    resolved = resolve_config_path(path)
    data = read_toml(resolved) if resolved else {}
    if overrides:
        data = _deep_merge(data, overrides)
    source = str(resolved) if resolved else "the built-in defaults"
    try:
        return schema(**data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, schema, source)) from None
    except SettingsError as error:
        raise ConfigError(_unparsable_environment(error)) from None


def env_name(location: Sequence[str]) -> str:
    """The environment variable that sets the key at ``location``."""
    return ENV_PREFIX + "__".join(location).upper()


def _unparsable_environment(error: SettingsError) -> str:
    # pydantic-settings names only the section; name the variables that feed it.
    section = str(error).split('field "', 1)[-1].split('"', 1)[0]
    prefix = env_name([section]) + "__"
    suspects = sorted(name for name in os.environ if name.upper().startswith(prefix))
    named = ", ".join(suspects) or f"{prefix}*"
    return (
        f"invalid configuration in the environment: {named} could not be read; "
        f'lists and tables must be JSON, e.g. {env_name([section, "KEY"])}=\'["a", "b"]\''
    )


def _deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def format_validation_error(error: ValidationError, schema: type[BaseModel], source: str) -> str:
    """One line per problem: the dotted key, the value given and what is allowed."""
    lines = [f"invalid configuration in {source}:"]
    for problem in error.errors():
        location = tuple(str(part) for part in problem["loc"])
        key = ".".join(location) or "(top level)"
        variable = env_name(location)
        if location and variable in os.environ:
            key = f"{key} (from {variable})"
        if problem["type"] == "extra_forbidden":
            allowed = _allowed_keys(schema, location[:-1])
            rule = (
                f"allowed here: {', '.join(allowed)}" if allowed else "this section takes no keys"
            )
            lines.append(f"  {key}: unknown key; {rule}")
        elif problem["type"] == "missing":
            lines.append(f"  {key}: required, but not set")
        else:
            value = problem.get("input")
            if location[-1:] and location[-1].endswith("url") and isinstance(value, str):
                value = _without_password(value)
            lines.append(f"  {key} = {value!r}: {problem['msg']}")
    lines.append(f"  (environment variables {ENV_PREFIX}<SECTION>__<KEY> override the file)")
    return "\n".join(lines)


def _without_password(url: str) -> str:
    """``scheme://user:***@host/...``: an invalid URL may still hold a real password."""
    scheme, found, rest = url.partition("://")
    credentials, at, place = rest.rpartition("@")
    if not found or not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{place}"


def _allowed_keys(schema: type[BaseModel], location: Sequence[str]) -> list[str]:
    model: Any = schema
    for part in location:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = field.annotation
    fields = getattr(model, "model_fields", None)
    return sorted(fields) if fields else []


def check_plugins(
    config: Config,
    skills: Iterable[str],
    adapters: Iterable[str],
    enabled: Sequence[str] | None = None,
    left_out: Mapping[str, str] | None = None,
) -> None:
    """Check the keys that name plugins against what is installed; ``left_out`` says
    why an adapter that is registered could not be loaded (a missing extra)."""
    installed_adapters = sorted(adapters)
    enabled = list(config.bot.adapters) if enabled is None else list(enabled)
    unknown = [name for name in enabled if name not in installed_adapters]
    left_out = left_out or {}
    if reasons := [left_out[name] for name in unknown if name in left_out]:
        raise ConfigError(f"bot.adapters = {enabled!r}: {'; '.join(reasons)}")
    if unknown:
        raise ConfigError(
            f"bot.adapters = {enabled!r}: {', '.join(unknown)} not installed "
            f"(installed adapters: {', '.join(installed_adapters) or 'none'})"
        )
    installed_skills = sorted(skills)
    default = config.router.default_skill
    if default not in installed_skills:
        raise ConfigError(
            f"router.default_skill = {default!r}: no such skill "
            f"(installed skills: {', '.join(installed_skills)})"
        )
