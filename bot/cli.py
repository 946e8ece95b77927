"""The ``confab`` command line: run, console, config check, db, data, model."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from bot.config import Config, build_config_model, check_plugins, load_config
from bot.errors import ConfabError
from bot.logs import configure_logging
from bot.plugins import AdapterCatalog, SkillCatalog, discover_adapters, discover_skills
from bot.redaction import SecretRedactor, configured_secrets, redact_logging
from storage.errors import StorageError

log = logging.getLogger("confab")
T = TypeVar("T")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", help="TOML file (default: ./config.toml)")
    parser = argparse.ArgumentParser(prog="confab", description="Confab chat bot service.")
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
    data = commands.add_parser("data", help="datasets for fine-tuning")
    data_commands = data.add_subparsers(dest="action", required=True, metavar="ACTION")
    prepare = data_commands.add_parser(
        "prepare",
        parents=[common],
        help="check a chat JSONL or question,answer CSV and split it into train and eval sets",
    )
    prepare.add_argument("file", metavar="FILE", help="a .jsonl chat file or a .csv")
    prepare.add_argument("--out", metavar="DIR", help="output folder (default: ./NAME-prepared)")
    prepare.add_argument(
        "--eval-fraction",
        type=_fraction,
        default=0.1,
        metavar="F",
        help="share held out for evaluation (default: 0.1)",
    )
    prepare.add_argument("--seed", type=int, default=0, metavar="N", help="of the split")
    prepare.add_argument(
        "--max-tokens",
        type=_positive,
        metavar="N",
        help="leave out longer conversations (default: the model's context window)",
    )
    prepare.add_argument(
        "--skip-invalid", action="store_true", help="leave invalid records out instead of stopping"
    )
    _add_model_commands(commands, common)
    return parser


def _add_model_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    model = commands.add_parser("model", help="fine-tune and evaluate models")
    model_commands = model.add_subparsers(dest="action", required=True, metavar="ACTION")
    tune = model_commands.add_parser(
        "finetune",
        parents=[common],
        help="train a LoRA adapter on a chat dataset (resumes from OUT's last checkpoint)",
    )
    tune.add_argument(
        "--base",
        default="bundled",
        metavar="NAME|PATH",
        help="'bundled' (default), a model folder or a .gguf file",
    )
    tune.add_argument("--data", required=True, metavar="FILE", help="chat JSONL (or Q&A CSV)")
    tune.add_argument("--out", required=True, metavar="DIR", help="the adapter folder")
    tune.add_argument("--steps", type=_positive, default=200, metavar="N", help="(default: 200)")
    tune.add_argument(
        "--time-budget", type=_seconds, metavar="S", help="stop (and save) after S seconds"
    )
    tune.add_argument("--lr", type=float, default=2e-4, metavar="X", help="(default: 2e-4)")
    tune.add_argument("--rank", type=_positive, default=8, metavar="R", help="LoRA rank (8)")
    tune.add_argument("--batch-size", type=_positive, default=4, metavar="N", help="(default: 4)")
    tune.add_argument(
        "--max-tokens", type=_positive, default=512, metavar="N", help="cut longer chats (512)"
    )
    tune.add_argument("--seed", type=int, default=0, metavar="N", help="(default: 0)")
    score = model_commands.add_parser(
        "eval",
        parents=[common],
        help="held-out loss, perplexity and task score of a model, or two side by side",
    )
    score.add_argument("name", metavar="NAME", help="'bundled', a model folder, or an adapter")
    score.add_argument("--against", metavar="NAME2", help="a second model, compared with NAME")
    score.add_argument("--data", required=True, metavar="FILE", help="chat JSONL or Q&A CSV")
    score.add_argument(
        "--max-new-tokens", type=_positive, default=48, metavar="N", help="per answer (48)"
    )


def _number(text: str, convert: Callable[[str], T], fits: Callable[[T], bool], what: str) -> T:
    """An option's value, or argparse's clear error naming what it must be."""
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if not fits(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
    return value


def _seconds(text: str) -> float:
    return _number(text, float, lambda value: value > 0, "a number of seconds above 0")


def _fraction(text: str) -> float:
    return _number(
        text, float, lambda value: 0 <= value < 1, "a number from 0 up to (not including) 1"
    )


def _positive(text: str) -> int:
    return _number(text, int, lambda value: value >= 1, "a whole number above 0")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    redactor: SecretRedactor | None = None
    try:
        skills = discover_skills()
        adapters = discover_adapters()
        schema = build_config_model(
            {name: cls.config_model for name, cls in adapters.adapters.items()},
            {name: cls.config_model for name, cls in skills.skills.items()},
        )
        config = load_config(args.config, schema=schema)
        terminal = _terminal()
        configure_logging(config.bot.log_level, terminal)
        redactor = redact_logging(configured_secrets(config))
        if args.command == "config":
            check_plugins(config, skills.skills, adapters.adapters)
            print(render_config(config))
            return 0
        if args.command == "db" and args.action == "export":
            data = asyncio.run(_db_export(config, args.platform, args.user))
            return _write_export(data, args.out)
        if args.command == "db":
            return asyncio.run(_db(config, args.action, getattr(args, "revision", None)))
        if args.command == "data":
            return _data_prepare(config, args, terminal)
        if args.command == "model" and args.action == "eval":
            return _model_eval(config, args)
        if args.command == "model":
            return _model_finetune(config, args, terminal)
        enabled = ["console"] if args.command == "console" else None
        return asyncio.run(_run(config, skills, adapters, enabled, terminal))
    except (ConfabError, StorageError) as error:
        message = redactor.redact(str(error)) if redactor else str(error)
        print(f"confab: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception:
        if redactor is None:
            raise  # no secrets known yet, and no log set up to report it
        # Through the log, so the traceback is redacted like any other record.
        log.exception("confab stopped on an unexpected error")
        return 1


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
    from bot.app import App
    from bot.llm.weights import conversion_folder, is_converted, resolve_model_path

    app = App(config, skills=skills, adapters=adapters, enabled=enabled)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, app.request_stop)
    model_path = resolve_model_path(config.model.path)
    first_use = model_path.is_file() and not is_converted(
        conversion_folder(model_path, config.model.cache_dir)
    )
    status = (
        f"Preparing {model_path.name} for its first use (about 30 s, once)..."
        if first_use
        else "Loading the model..."
    )
    try:
        with _status(status, terminal):
            await app.start()
        await app.serve()
    finally:
        await app.stop()
    return 1 if app.all_adapters_failed else 0  # a service manager sees the failure


@contextlib.contextmanager
def _status(text: str, terminal: Any) -> Iterator[None]:
    """A spinner on a terminal, one line otherwise."""
    if terminal is not None:
        with terminal.status(text):
            yield
    else:
        print(text, file=sys.stderr, flush=True)
        yield


async def _db(config: Config, action: str, revision: str | None) -> int:
    from storage import migrate
    from storage.database import Database, masked_url

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
    from storage.database import Database
    from storage.export import export_user

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


def _data_prepare(config: Config, args: argparse.Namespace, terminal: Any) -> int:
    from bot.llm.dataset import listing, prepare, read_dataset, reject_invalid, write_prepared

    source = Path(args.file)
    parsed = read_dataset(source)
    if not args.skip_invalid:
        reject_invalid(parsed, str(source))  # at once, not after reading the tokenizer
    count_tokens, window = _chat_token_counter(config, terminal)
    prepared = prepare(
        parsed,
        count_tokens,
        args.max_tokens or window,
        eval_fraction=args.eval_fraction,
        seed=args.seed,
        skip_invalid=args.skip_invalid,
        source=str(source),
    )
    out = Path(args.out) if args.out else Path(f"{source.stem}-prepared")
    train, evaluation = write_prepared(prepared, out)
    left_out = [*prepared.invalid, *prepared.duplicates, *prepared.too_long]
    if left_out:
        print("left out:\n  " + "\n  ".join(listing(left_out)))
    print(prepared.summary())
    print(f"wrote {train} and {evaluation}")
    return 0


def _chat_token_counter(config: Config, terminal: Any) -> tuple[Callable[..., int], int]:
    """Counts a whole conversation in the configured model's chat format, and the
    context window those counts must fit."""
    from bot.llm.backend import ChatMessage
    from bot.llm.weights import load_tokenizer, resolve_model_path

    model_path = resolve_model_path(config.model.path)
    with _status(f"Reading the tokenizer of {model_path.name}...", terminal):
        tokenizer, native = load_tokenizer(model_path, config.model.cache_dir)

    def count(messages: Sequence[ChatMessage]) -> int:
        chat = [{"role": m.role, "content": m.content} for m in messages]
        return len(tokenizer.apply_chat_template(chat, tokenize=True, return_dict=False))

    return count, min(config.model.context_window or native, native)


def _model_eval(config: Config, args: argparse.Namespace) -> int:
    from bot.llm.adapter_folder import is_adapter, load_model
    from bot.llm.eval_store import record
    from bot.llm.evaluate import compare, evaluate, read_chats
    from bot.llm.finetune import FinetuneError

    data = Path(args.data)
    chats = read_chats(data)  # every problem at once, before any model loads
    results = []
    # The reference first: the table's difference is then NAME's gain over it.
    for name in [*([args.against] if args.against else []), args.name]:
        print(f"evaluating {name} on {len(chats)} conversations of {data} …", flush=True)
        try:
            model, tokenizer = load_model(name, config.model.cache_dir, config.model.threads)
        except FinetuneError as error:
            raise ConfabError(error.user_message) from None
        evaluation = evaluate(model, tokenizer, chats, name, max_new_tokens=args.max_new_tokens)
        if is_adapter(Path(name).expanduser()):
            record(Path(name).expanduser(), evaluation, data)  # kept beside the adapter
        results.append(evaluation)
    print(compare(*results))
    return 0


def _model_finetune(config: Config, args: argparse.Namespace, terminal: Any) -> int:
    from bot.finetune_display import progress_display
    from bot.llm.finetune import FinetuneError, FinetuneOptions, finetune

    options = FinetuneOptions(
        base=args.base,
        train=Path(args.data),
        out=Path(args.out),
        max_steps=args.steps,
        time_budget_s=args.time_budget,
        learning_rate=args.lr,
        rank=args.rank,
        alpha=2 * args.rank,
        batch_size=args.batch_size,
        max_tokens=args.max_tokens,
        seed=args.seed,
        threads=config.model.threads,
        cache_dir=config.model.cache_dir,
    )
    try:
        with progress_display(terminal) as show:
            result = finetune(options, show)
    except FinetuneError as error:
        log.debug("fine-tuning stopped: %s", error)
        raise ConfabError(error.user_message) from None  # the sentence, not the detail
    rate = f", {result.steps_per_s:.2f} steps/s" if result.steps_per_s else ""
    loss = f", loss {result.last_loss:.3f}" if result.last_loss is not None else ""
    print(
        f"wrote the adapter to {result.out}: step {result.steps_done} "
        f"(from {result.started_from_step}){loss}{rate}"
    )
    return 0


def render_config(config: Config) -> str:
    """The effective settings as TOML, secrets masked, env-named secrets marked set or unset."""
    from storage.database import masked_url

    data = config.model_dump(mode="json")
    data["bot"]["database_url"] = masked_url(config.bot.database_url)
    lines: list[str] = []
    _render_tables(data, [], lines)
    # Any other secret a setting holds (a password in another URL, say) is hidden too.
    return SecretRedactor(configured_secrets(config)).redact("\n".join(lines).strip() + "\n")


def _render_tables(table: dict[str, Any], path: list[str], lines: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    if path and (scalars or not table):
        lines.append(f"\n[{'.'.join(path)}]")
    for key, value in scalars.items():
        line = f"{key} = {_toml_value(value)}"
        if key.endswith("_env") and isinstance(value, str) and value:
            line += f"  # {'set' if os.environ.get(value) else 'NOT SET'}"
        lines.append(line)
    for key, value in table.items():
        if isinstance(value, dict):
            _render_tables(value, [*path, key], lines)


def _toml_value(value: Any) -> str:
    if value is None:
        return '""  # unset'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False)
