"""``confab data …`` and ``confab model …``: the model lab's commands.

Preparing a dataset, fine-tuning a LoRA on it, and scoring models; the
work itself is in the modules beside this one (``dataset``, ``finetune``, ``evaluate``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from confab.bot.config import Config
from confab.bot.errors import ConfabError
from confab.bot.extras import MissingExtra, local_model_missing
from confab.bot.llm.registry import ModelRegistry, RegistryError
from confab.bot.logs import status
from confab.bot.model_commands import add_registry_commands, find_model, run_registry_command

if TYPE_CHECKING:
    from confab.bot.lab.dataset import Chat

log = logging.getLogger("confab")
T = TypeVar("T")
LAB_COMMANDS = ("data", "model")


def add_lab_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``data`` and ``model`` to the ``confab`` command's sub-commands."""
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
    export = data_commands.add_parser(
        "export",
        parents=[common],
        help="write the conversations of channels that opted in (!train optin) as chat JSONL",
    )
    export.add_argument("--out", required=True, metavar="FILE", help="the chat JSONL to write")
    export.add_argument(
        "--skill",
        action="append",
        metavar="NAME",
        help="the skills whose answers to take (repeatable; default: router.default_skill)",
    )
    _add_model_commands(commands, common)


def _add_model_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    model = commands.add_parser("model", help="list, choose, fine-tune and evaluate models")
    model_commands = model.add_subparsers(dest="action", required=True, metavar="ACTION")
    add_registry_commands(model_commands, common)
    tune = model_commands.add_parser(
        "finetune",
        parents=[common],
        help="train a LoRA on a chat dataset (resumes from OUT's last checkpoint)",
    )
    tune.add_argument(
        "--base",
        default="bundled",
        metavar="NAME|PATH",
        help="'bundled' (default), a name from `confab model list`, a model folder or .gguf file",
    )
    tune.add_argument("--data", required=True, metavar="FILE", help="chat JSONL (or Q&A CSV)")
    tune.add_argument(
        "--out",
        required=True,
        metavar="NAME|DIR",
        help="a name (kept in model.loras_dir, listed by `confab model list`) or a folder",
    )
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
    score.add_argument("name", metavar="NAME", help="a name from `confab model list`, or a path")
    score.add_argument("--against", metavar="NAME2", help="a second model, compared with NAME")
    score.add_argument("--data", required=True, metavar="FILE", help="chat JSONL or Q&A CSV")
    score.add_argument(
        "--max-new-tokens", type=_positive, default=48, metavar="N", help="per answer (48)"
    )
    score.add_argument(
        "--rag",
        action="store_true",
        help="also NAME (with --against, NAME2) answering with the knowledge base's passages "
        "in its prompt, as `ask` does (add documents with `confab kb add`)",
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


def run_lab_command(config: Config, args: argparse.Namespace, terminal: Any) -> int:
    if args.command == "data" and args.action == "export":
        return asyncio.run(_data_export(config, Path(args.out), args.skill))
    if args.action in ("list", "show", "use"):
        return run_registry_command(config, args)
    if missing := local_model_missing():  # preparing, training and scoring run the model
        raise MissingExtra(missing)
    if args.command == "data":
        return _data_prepare(config, args, terminal)
    if args.action == "eval":
        return _model_eval(config, args, terminal)
    return _model_finetune(config, args, terminal)


async def _data_export(config: Config, out: Path, skills: list[str] | None) -> int:
    from confab.bot.lab.training_export import chats_of, write_chats
    from confab.storage.database import Database
    from confab.storage.training import display_names, opted_in_exchanges

    database = Database(config.bot.database_url)
    try:
        exchanges = await opted_in_exchanges(
            database, tuple(skills or [config.router.default_skill])
        )
        platforms = {exchange.key.platform for exchange in exchanges}
        names = {platform: await display_names(database, platform) for platform in platforms}
    finally:
        await database.close()
    if not exchanges:
        raise ConfabError(
            "Nothing to export: no channel has opted in (`!train optin`, admins), or none "
            "has answered questions yet. Nothing was written."
        )
    chats = chats_of(exchanges, names)
    write_chats(chats, out)
    channels = len({(e.key.platform, e.key.channel) for e in exchanges})
    print(
        f"exported {len(exchanges)} questions and answers in {len(chats)} conversations "
        f"from {channels} opted-in channel{'s' if channels != 1 else ''} to {out}"
    )
    return 0


def _data_prepare(config: Config, args: argparse.Namespace, terminal: Any) -> int:
    from confab.bot.lab.dataset import (
        listing,
        prepare,
        read_dataset,
        reject_invalid,
        write_prepared,
    )

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
    from confab.bot.llm.backend import ChatMessage
    from confab.bot.llm.lora_folder import base_source, is_lora, lora_base
    from confab.bot.llm.weights import load_tokenizer, resolve_model_path

    configured = Path(config.model.path).expanduser()
    if config.model.path and is_lora(configured):  # a fine-tuned model: its base's tokenizer
        model_path = base_source(lora_base(configured))
    else:
        model_path = resolve_model_path(config.model.path)
    with status(f"Reading the tokenizer of {model_path.name}...", terminal):
        tokenizer, native = load_tokenizer(model_path, config.model.cache_dir)

    def count(messages: Sequence[ChatMessage]) -> int:
        chat = [{"role": m.role, "content": m.content} for m in messages]
        return len(tokenizer.apply_chat_template(chat, tokenize=True, return_dict=False))

    return count, min(config.model.context_window or native, native)


def _model_eval(config: Config, args: argparse.Namespace, terminal: Any) -> int:
    from confab.bot.lab.eval_store import record
    from confab.bot.lab.evaluate import EvaluationError, compare, evaluate, read_chats
    from confab.bot.lab.finetune import FinetuneError
    from confab.bot.llm.lora_folder import load_model

    registry = ModelRegistry.from_config(config)
    data = Path(args.data)
    chats = read_chats(data)  # every problem at once, before any model loads
    # The reference first: the table's difference is then NAME's gain over it.
    names = [args.against, args.name] if args.against else [args.name]
    entries = [find_model(registry, name) for name in names]
    # Searched up front, so the sentence model is gone before a language model loads.
    shown = asyncio.run(_with_passages(config, chats, terminal)) if args.rag else None
    results = []
    with_passages = []
    for entry in entries:
        print(f"evaluating {entry.name} on {len(chats)} conversations of {data} …", flush=True)
        try:
            model, tokenizer = load_model(
                str(entry.path) if entry.kind != "bundled" else "bundled",
                config.model.cache_dir,
                config.model.threads,
            )
        except FinetuneError as error:
            raise ConfabError(error.user_message) from None
        evaluation = evaluate(
            model, tokenizer, chats, entry.name, max_new_tokens=args.max_new_tokens
        )
        results.append((entry, evaluation))
        if shown is not None and entry is entries[0]:
            print(f"evaluating {entry.name} with retrieved passages …", flush=True)
            with_passages.append(
                evaluate(
                    model,
                    tokenizer,
                    chats,
                    f"{entry.name}+rag",
                    max_new_tokens=args.max_new_tokens,
                    shown=shown,
                )
            )
    print(compare(*(evaluation for _, evaluation in results), *with_passages))
    # For `confab model show`; the table is out already. A model's record is of the
    # model alone, so the retrieval arm is not stored.
    for entry, evaluation in results:
        try:
            record(entry.results_file, evaluation, data)
        except EvaluationError as error:
            log.warning("the scores of %s were not stored: %s", entry.name, error.user_message)
    return 0


NO_DOCUMENTS = (
    "the knowledge base has no documents: add them with `confab kb add PATH…` "
    "(for the Tarnwick example: confab kb add bot/lab/examples/tarnwick)"
)


async def _with_passages(config: Config, chats: Sequence[Chat], terminal: Any) -> list[Chat]:
    """Each conversation with its last question asked as `ask` asks it: after the
    passages of the knowledge base's documents that match it well enough."""
    from confab.bot.knowledge.base import KnowledgeBase
    from confab.bot.lab.passage_prompt import with_passages
    from confab.storage.database import Database

    database = Database(config.bot.database_url)
    base = KnowledgeBase(database, config.knowledge)
    settings = config.knowledge
    try:
        await database.upgrade()
        if not await base.documents():
            raise ConfabError(NO_DOCUMENTS)
        found = []
        with status("Searching the knowledge base...", terminal):
            await base.load()
            for chat in chats:
                question = next(m.content for m in reversed(chat.messages) if m.role == "user")
                passages = await base.search_documents(question, limit=settings.max_passages)
                found.append([p for p in passages if p.similarity >= settings.min_similarity])
    finally:
        await base.close()
        await database.close()
    print(
        f"retrieved {sum(len(passages) for passages in found)} passages (at most "
        f"{settings.max_passages} a question, similarity ≥ {settings.min_similarity}) for "
        f"{sum(1 for passages in found if passages)} of {len(chats)} conversations",
        flush=True,
    )
    return [with_passages(chat, passages) for chat, passages in zip(chats, found, strict=True)]


def _model_finetune(config: Config, args: argparse.Namespace, terminal: Any) -> int:
    from confab.bot.lab.finetune import FinetuneError, FinetuneOptions, finetune
    from confab.bot.lab.finetune_display import progress_display

    registry = ModelRegistry.from_config(config)
    base = find_model(registry, args.base)
    if base.kind == "lora":
        raise ConfabError(
            f"{args.base} is a fine-tuned LoRA; train from its base ({base.path.name}'s "
            "`confab model show` names it) with the same --data instead."
        )
    try:
        out = registry.lora_folder(args.out)
    except RegistryError as error:
        raise ConfabError(error.user_message) from None
    options = FinetuneOptions(
        base="bundled" if base.kind == "bundled" else str(base.path),
        train=Path(args.data),
        out=out,
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
        f"wrote the LoRA to {result.out}: step {result.steps_done} "
        f"(from {result.started_from_step}){loss}{rate}"
    )
    return 0
