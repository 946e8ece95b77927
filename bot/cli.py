"""The ``confab`` command line: run, console, config check, db, data, model, kb, new."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from confab.bot.adapter import Adapter, AdapterContext, EmptyChannelLog
from confab.bot.admin.commands import ADMIN_COMMANDS, add_admin_commands, run_admin_command
from confab.bot.completion import (
    COMPLETION_COMMANDS,
    add_completion_commands,
    run_completion_command,
)
from confab.bot.config import Config, build_config_model, check_plugins, load_config
from confab.bot.config_view import render_config
from confab.bot.errors import ConfabError
from confab.bot.extras import missing_extra
from confab.bot.init_command import INIT_COMMANDS, add_init_commands, run_init_command
from confab.bot.knowledge.commands import KB_COMMANDS, add_kb_commands, run_kb_command
from confab.bot.lab.commands import LAB_COMMANDS, add_lab_commands, run_lab_command
from confab.bot.logs import configure_logging, status
from confab.bot.new_skill import NEW_COMMANDS, add_new_commands, run_new_command
from confab.bot.plugins import AdapterCatalog, SkillCatalog, discover_adapters, discover_skills
from confab.bot.redaction import SecretRedactor, configured_secrets, masked_url, redact_logging
from confab.bot.skill import SkillInfo
from confab.storage.errors import StorageError

log = logging.getLogger("confab")


def _parser(adapters: AdapterCatalog | None = None) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", help="TOML file (default: ./config.toml)")
    parser = argparse.ArgumentParser(prog="confab", description="Confab chat bot service.")
    parser.add_argument("--version", action="version", version=f"confab {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("run", parents=[common], help="start every adapter enabled in config")
    commands.add_parser("console", parents=[common], help="chat with the bot in this terminal")
    config = commands.add_parser("config", help="configuration tools")
    config_commands = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    config_commands.add_parser(
        "check", parents=[common], help="validate and print the effective settings"
    )
    db = commands.add_parser("db", help="database schema migrations and data export")
    db_commands = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    db_commands.add_parser("upgrade", parents=[common], help="migrate to the newest schema")
    down = db_commands.add_parser("downgrade", parents=[common], help="undo migrations")
    down.add_argument("revision", nargs="?", default="-1", help="target (default: one step)")
    db_commands.add_parser("current", parents=[common], help="print the schema revision")
    export = db_commands.add_parser(
        "export", parents=[common], help="write one person's stored data as JSON"
    )
    export.add_argument("--user", required=True, metavar="ID", help="their platform user id")
    export.add_argument("--platform", required=True, metavar="P", help="e.g. console, discord")
    export.add_argument("--out", metavar="FILE", help="write here instead of stdout")
    add_lab_commands(commands, common)
    add_kb_commands(commands, common)
    add_new_commands(commands)
    add_init_commands(commands)
    add_admin_commands(commands)
    add_completion_commands(commands)
    for platform, adapter in (adapters.adapters if adapters else {}).items():
        if not adapter.tools:
            continue
        group = commands.add_parser(platform, help=f"{platform} set-up tools")
        group.set_defaults(tool_of=platform)
        tools = group.add_subparsers(dest="action", required=True, metavar="ACTION")
        for tool in adapter.tools:
            tool().add_arguments(tools.add_parser(tool.name, parents=[common], help=tool.help))
    for platform, reason in (adapters.failed if adapters else {}).items():
        if platform not in commands.choices:  # `confab slack manifest` says what to install
            group = commands.add_parser(platform, help=f"{platform} (its extra is not installed)")
            group.set_defaults(tool_of=platform, left_out=reason)
            group.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The command word of ``argv`` (options such as ``--config`` follow it)."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    # Their tools are commands (`confab slack manifest`); a console session serves the
    # console alone and imports no other adapter.
    console = _command(sys.argv[1:] if argv is None else argv) == "console"
    adapters = discover_adapters(only=["console"] if console else None)
    parser = _parser(adapters)
    args = parser.parse_args(argv)
    if getattr(args, "left_out", None):
        print(f"confab: {args.command}: {args.left_out}", file=sys.stderr)
        return 2
    if args.command in NEW_COMMANDS:  # writes files; needs no config
        return run_new_command(args)
    if args.command in INIT_COMMANDS:  # writes config.toml; reads none
        return run_init_command(args, adapters.adapters, left_out=adapters.failed)
    if args.command in COMPLETION_COMMANDS:
        return run_completion_command(args, parser)
    if args.command in ADMIN_COMMANDS:  # needs no config
        try:
            return run_admin_command(args)
        except ConfabError as error:
            print(f"confab: {error}", file=sys.stderr)
            return 2
    redactor: SecretRedactor | None = None
    json_log = False
    try:
        skills = discover_skills()
        schema = build_config_model(
            {name: cls.config_model for name, cls in adapters.adapters.items()},
            {name: cls.config_model for name, cls in skills.skills.items()},
            left_out=adapters.failed,
        )
        config = load_config(args.config, schema=schema)
        json_log = config.bot.log_format == "json"
        terminal = None if json_log else _terminal()  # JSON lines only, not rich's
        configure_logging(config.bot.log_level, terminal, config.bot.log_format)
        redactor = redact_logging(configured_secrets(config))
        if args.command == "config":
            check_plugins(config, skills.skills, adapters.adapters, left_out=adapters.failed)
            print(render_config(config))
            return 0
        if args.command == "db" and args.action == "export":
            data = asyncio.run(_db_export(config, args.platform, args.user))
            return _write_export(data, args.out)
        if args.command == "db":
            return asyncio.run(_db(config, args.action, getattr(args, "revision", None)))
        if args.command in KB_COMMANDS:
            return run_kb_command(config, args, terminal)
        if args.command in LAB_COMMANDS:
            return run_lab_command(config, args, terminal)
        if getattr(args, "tool_of", None):  # `confab slack manifest`, not `confab console`
            return _run_tool(config, skills, adapters.adapters[args.tool_of], args)
        enabled = ["console"] if args.command == "console" else None
        return asyncio.run(_run(config, skills, adapters, enabled, terminal))
    except (ConfabError, StorageError) as error:
        message = redactor.redact(str(error)) if redactor else str(error)
        if json_log:  # stderr holds JSON lines only
            log.error("%s", message)
        else:
            print(f"confab: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except ModuleNotFoundError as error:  # `confab model finetune` without [local]
        if (sentence := missing_extra(error)) is None:
            raise
        print(f"confab: {sentence}", file=sys.stderr)
        return 2
    except Exception:
        if redactor is None:
            raise  # no secrets known yet, and no log set up to report it
        # Through the log, so the traceback is redacted like any other record.
        log.exception("confab stopped on an unexpected error")
        return 1


def _version() -> str:
    try:
        return version("confab-bot")
    except PackageNotFoundError:  # run from a checkout that is not installed
        return "(not installed)"


def _run_tool(
    config: Config, skills: SkillCatalog, adapter: type[Adapter], args: argparse.Namespace
) -> int:
    tool = next(tool for tool in adapter.tools if tool.name == args.action)
    infos = [SkillInfo.of(skill) for skill in skills.skills.values()]
    section = config.section(adapter.platform)
    return tool().run(args, AdapterContext(section, config.bot.name, EmptyChannelLog(), infos))


def _terminal() -> Any:
    """A rich console on stderr when it is a terminal, shared by logs and the spinner."""
    if not sys.stderr.isatty():
        return None
    from rich.console import Console

    return Console(stderr=True)


async def _run(
    config: Config,
    skills: SkillCatalog,
    adapters: AdapterCatalog,
    enabled: list[str] | None,
    terminal: Any,
) -> int:
    from confab.bot.app import App
    from confab.bot.llm.weights import conversion_folder, is_converted, resolve_model_path

    app = App(config, skills=skills, adapters=adapters, enabled=enabled)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, app.request_stop)
    loading = "Loading the model..."
    if config.model.backend == "transformers":
        model_path = resolve_model_path(config.model.path)
        if model_path.is_file() and not is_converted(
            conversion_folder(model_path, config.model.cache_dir)
        ):
            loading = f"Preparing {model_path.name} for its first use (about 30 s, once)..."
    try:
        with status(loading, terminal, config.bot.log_format):
            await app.start()
        await app.serve()
    finally:
        await app.stop()
    return 1 if app.all_adapters_failed else 0  # a service manager sees the failure


async def _db(config: Config, action: str, revision: str | None) -> int:
    from confab.storage import migrate
    from confab.storage.database import Database

    database = Database(config.bot.database_url)
    try:
        if action == "upgrade":
            await migrate.upgrade(database.engine)
        elif action == "downgrade":
            await migrate.downgrade(database.engine, revision or "-1")
        current = await migrate.current(database.engine)
        print(f"{masked_url(config.bot.database_url)}: revision {current or '(empty)'}")
    finally:
        await database.close()
    return 0


async def _db_export(config: Config, platform: str, user: str) -> dict[str, Any]:
    from confab.storage.database import Database
    from confab.storage.export import export_user

    database = Database(config.bot.database_url)
    try:
        return await export_user(database, platform, user)
    finally:
        await database.close()


def _write_export(data: dict[str, Any], out: str | None) -> int:
    text = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    if out is None:
        sys.stdout.write(text)
        return 0
    # Personal data: readable by its owner only, and never half-written: a private
    # file beside the target replaces it whole (an existing file's mode included).
    target = Path(out)
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with open(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(staging, target)
    except OSError as error:
        staging.unlink(missing_ok=True)
        raise ConfabError(f"cannot write {out}: {error.strerror}") from None
    who = f"{data['platform']}:{data['user_id']}"
    print(f"wrote {len(data['turns'])} turns of {who} to {out}", file=sys.stderr)
    return 0
