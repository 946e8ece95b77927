"""``confab model list | show NAME | use NAME [--channel C]``: the model registry
on the command line, and which model answers where.

``use`` stores the choice in the database (``confab.storage.served_models``); a running
bot picks it up within seconds and loads the model at the first message that
needs it (see :mod:`confab.bot.llm.pool`).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from confab.bot.audit import changed_from_cli
from confab.bot.config import Config
from confab.bot.errors import ConfabError
from confab.bot.lab.model_facts import ModelFacts, model_facts
from confab.bot.llm.packaged import PACKAGED
from confab.bot.llm.registry import ModelEntry, ModelRegistry, RegistryError
from confab.storage.database import Database
from confab.storage.served_models import ServedModels

KIND_NAMES = {
    "bundled": "bundled GGUF",
    "packaged": "packaged GGUF",
    "gguf": "GGUF file",
    "folder": "model folder",
    "lora": "LoRA",
    "missing": "not found",
}


def add_registry_commands(model_commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``list``, ``show`` and ``use`` to ``confab model``."""
    model_commands.add_parser(
        "list",
        parents=[common],
        help="every model: bundled, named in [models], and fine-tuned LoRAs",
    )
    show = model_commands.add_parser(
        "show", parents=[common], help="a model's details, stored scores and where it serves"
    )
    show.add_argument("name", metavar="NAME", help="a name from `confab model list`, or a path")
    use = model_commands.add_parser(
        "use",
        parents=[common],
        help="serve a model by default or in one channel (a running bot follows within 5 s)",
    )
    use.add_argument("name", metavar="NAME", nargs="?", help="a name or path (not with --reset)")
    use.add_argument(
        "--channel",
        metavar="PLATFORM:CHANNEL",
        help="only in this channel, e.g. discord:1234567890 or slack:C0123ABCD",
    )
    use.add_argument(
        "--reset",
        action="store_true",
        help="go back to the config's model (or, with --channel, to the default)",
    )


def run_registry_command(config: Config, args: argparse.Namespace) -> int:
    registry = ModelRegistry.from_config(config)
    if args.action == "list":
        return asyncio.run(_list(config, registry))
    if args.action == "show":
        return asyncio.run(_show(config, registry, args.name))
    return asyncio.run(_use(config, registry, args))


@dataclass(frozen=True, slots=True)
class Serving:
    """What the database says is served, each choice looked up once: the default
    choice and per-channel ones (``None`` where a choice names no model any more)."""

    default: tuple[str, ModelEntry | None] | None
    configured: ModelEntry | None  # the config's model, which serves without a default
    overrides: list[tuple[str, str, ModelEntry | None]]  # place, choice, model

    def chosen(self) -> list[ModelEntry]:
        """Every model chosen in the database that still exists, the default first."""
        found = [self.default[1]] if self.default is not None else []
        return [entry for entry in found + [e for _, _, e in self.overrides] if entry]

    def lost(self) -> list[str]:
        """Choices that name no model any more."""
        lost = [f"{place} ({choice})" for place, choice, e in self.overrides if e is None]
        if self.default is not None and self.default[1] is None:
            lost.insert(0, f"the default ({self.default[0]})")
        return lost

    def where(self, entry: ModelEntry) -> list[str]:
        """Where ``entry`` answers: ``default`` and/or ``platform:channel`` names."""
        places = []
        if self.default is not None:
            if self.default[1] is not None and self.default[1].key == entry.key:
                places.append("default")
        elif self.configured is not None and self.configured.key == entry.key:
            places.append("default (config)")
        return places + [
            place for place, _, e in self.overrides if e is not None and e.key == entry.key
        ]


def _entry(registry: ModelRegistry, choice: str) -> ModelEntry | None:
    try:
        return registry.find(choice)
    except RegistryError:
        return None


async def _serving(config: Config, registry: ModelRegistry) -> Serving:
    database = Database(config.bot.database_url)
    try:
        await database.upgrade()
        return await serving_of(ServedModels(database), config, registry)
    finally:
        await database.close()


def listed_models(registry: ModelRegistry, serving: Serving) -> list[ModelEntry]:
    """The registry's models, and those known only by a path (the config's, or one
    chosen by path)."""
    entries = registry.entries()
    listed = {entry.key for entry in entries}
    for extra in [serving.configured, *serving.chosen()]:
        if extra is not None and extra.key not in listed:
            entries.append(extra)
            listed.add(extra.key)
    return entries


async def serving_of(served: ServedModels, config: Config, registry: ModelRegistry) -> Serving:
    """What ``served`` says is served, each choice looked up in ``registry``."""
    default, overrides = await served.default(), await served.overrides()
    return Serving(
        (default, _entry(registry, default)) if default is not None else None,
        registry.configured(config.model),
        [(f"{p}:{c}", model, _entry(registry, model)) for p, c, model in overrides],
    )


async def _list(config: Config, registry: ModelRegistry) -> int:
    serving = await _serving(config, registry)
    entries = listed_models(registry, serving)
    facts = await asyncio.gather(*(asyncio.to_thread(model_facts, entry) for entry in entries))
    rows = [
        (
            f.entry.name,
            kind_label(f.entry),
            parameters_label(f),
            f.dtype or "?",
            _when(f.created_at),
            last_scores(f),
            ", ".join(serving.where(f.entry)) or "-",
        )
        for f in facts
    ]
    header = ("NAME", "KIND", "PARAMETERS", "DTYPE", "CREATED (UTC)", "LAST EVALUATION", "SERVES")
    print(_table([header, *rows]))
    if config.model.backend == "openai" and serving.default is None:
        print(f"\nThe default is the OpenAI-compatible server at {config.model.openai.base_url}.")
    lost = serving.lost()
    if lost:
        print(
            "\nChosen but not found (the default model answers there): " + ", ".join(lost),
        )
    return 0


async def _show(config: Config, registry: ModelRegistry, name: str) -> int:
    entry = find_model(registry, name)
    facts, serving = await asyncio.to_thread(model_facts, entry), await _serving(config, registry)
    lines = [
        entry.name,
        f"  kind: {kind_label(entry)}",
        f"  path: {entry.path}",
    ]
    if entry.name in PACKAGED:
        shipped = PACKAGED[entry.name]
        lines += [
            f"  licence: {shipped.licence}",
            f"  origin: {shipped.origin}",
            f"  installed with: {shipped.install}",
            f"  sha256: {shipped.sha256} (checked before it is first served)",
        ]
    if facts.base is not None:
        lines.append(f"  base: {facts.base}")
    lines += [
        f"  parameters: {_exact_parameters(facts)}",
        f"  dtype: {facts.dtype or '?'}",
        f"  created: {_when(facts.created_at)} UTC",
    ]
    if facts.training:
        lines.append(f"  trained: {_training(facts.training)}")
    lines.append(f"  serves: {', '.join(serving.where(entry)) or 'nowhere'}")
    if facts.problem:
        lines.append(f"  problem: {facts.problem}")
    if facts.evaluations:
        lines.append("  evaluations (oldest first):")
        for run in facts.evaluations:
            loss, task = run.evaluation.loss, run.evaluation.task
            lines.append(
                f"    {_when(run.evaluated_at)}  {run.data_path} (sha256 {run.data_sha256[:8]}): "
                f"loss {loss.mean_loss:.4f} (perplexity {loss.perplexity:.2f}), "
                f"task {task.correct}/{task.total}"
            )
    else:
        lines.append(f"  evaluations: none yet (confab model eval {entry.name} --data FILE)")
    print("\n".join(lines))
    return 0


async def _use(config: Config, registry: ModelRegistry, args: argparse.Namespace) -> int:
    if args.reset == (args.name is not None):
        raise ConfabError("Give a model NAME, or --reset (not both).")
    channel = _channel(args.channel) if args.channel else None
    choice = None if args.reset else find_model(registry, args.name).name
    database = Database(config.bot.database_url)
    try:
        await database.upgrade()
        changed_from_cli(await choose_model(ServedModels(database), choice, channel))
    finally:
        await database.close()
    where = f"in {args.channel}" if channel else "in every channel without a model of its own"
    if choice is None:
        what = "the default model" if channel else "the config's model"
        print(f"{what[0].upper()}{what[1:]} now answers {where}.")
    else:
        print(f"{choice} now answers {where}.")
    print("A running bot follows within 5 s and loads the model at the first message needing it.")
    return 0


async def choose_model(
    served: ServedModels, choice: str | None, place: tuple[str, str] | None
) -> str:
    """Serve ``choice`` (None: back to the default) everywhere, or in ``place``
    (platform, channel); what was done, in the words of the audit log."""
    if place is None:
        await served.set_default(choice)
        where = "by default"
    else:
        await served.set_for_channel(*place, choice)
        where = f"in {place[0]}:{place[1]}"
    return f"chose {choice or 'the default model'} {where}"


def find_model(registry: ModelRegistry, name: str) -> ModelEntry:
    """The registry's model by name or path, or the command's one-line error."""
    try:
        return registry.find(name)
    except RegistryError as error:
        raise ConfabError(error.user_message) from None


def _channel(text: str) -> tuple[str, str]:
    platform, _, channel = text.partition(":")
    if not platform or not channel:
        raise ConfabError(
            f"--channel {text!r} is not PLATFORM:CHANNEL, e.g. discord:1234567890, "
            "slack:C0123ABCD or console:general."
        )
    return platform, channel


def kind_label(entry: ModelEntry) -> str:
    """The kind column: for a packaged model, which model it is ("bundled GGUF" alone
    does not say)."""
    kind = KIND_NAMES[entry.kind]
    shipped = PACKAGED.get(entry.name)
    return f"{kind}: {shipped.model}" if shipped is not None else kind


def parameters_label(facts: ModelFacts) -> str:
    if facts.parameters is None:
        return "?"
    text = _count(facts.parameters)
    if facts.trainable:
        text += f" (+{_count(facts.trainable)} LoRA)"
    return text


def _count(number: int) -> str:
    """134515008 -> 134.5M, 921600 -> 921.6K."""
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if number >= size:
            return f"{number / size:.1f}{unit}"
    return str(number)


def _exact_parameters(facts: ModelFacts) -> str:
    if facts.parameters is None:
        return "?"
    text = f"{facts.parameters:,}"
    lora = facts.training.get("lora")
    if facts.trainable:
        shape = (
            f", LoRA rank {lora['rank']}, alpha {lora['alpha']}" if isinstance(lora, dict) else ""
        )
        text += f" ({facts.trainable:,} trained{shape})"
    return text


def _training(metadata: dict[str, Any]) -> str:
    parts = [f"{metadata.get('steps', '?')} steps on {metadata.get('train_file', '?')}"]
    if "train_examples" in metadata:
        parts[0] += f" ({metadata['train_examples']} conversations)"
    if isinstance(metadata.get("last_loss"), float):
        parts.append(f"last loss {metadata['last_loss']:.4f}")
    for key, label in (("learning_rate", "learning rate"), ("batch_size", "batch size")):
        if key in metadata:
            parts.append(f"{label} {metadata[key]}")
    return ", ".join(parts)


def last_scores(facts: ModelFacts) -> str:
    if not facts.evaluations:
        return "-"
    run = facts.evaluations[-1]
    task = run.evaluation.task
    return f"task {task.correct}/{task.total}, loss {run.evaluation.loss.mean_loss:.3f}"


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else "?"


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
