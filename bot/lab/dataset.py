"""Chat datasets for fine-tuning: what ``confab data prepare`` reads, checks, splits and writes.

Input is chat-format JSONL (one ``{"messages": [{"role": ..., "content": ...}]}``
per line, the format most fine-tuning tools read) or a CSV with a
``question,answer`` header, each row becoming a one-question chat. Every problem
is reported at once with where it is: ``line N`` in JSONL, ``row N`` in a CSV
(the header being row 1, as a spreadsheet numbers them), so one pass over the
file fixes it.

Output is two JSONL files in the same chat format, ``train.jsonl`` and
``eval.jsonl``, written whole or not at all.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, cast

from confab.bot.errors import ConfabError
from confab.bot.llm.backend import ChatMessage, Role

TokenCounter = Callable[[Sequence[ChatMessage]], int]
"""Tokens one whole conversation takes in the model's chat format."""

ROLES: tuple[Role, ...] = ("system", "user", "assistant")
EXAMPLES = Path(__file__).parent / "examples"
"""The shipped example datasets (questions and answers about a fictitious project)."""
TRAIN_FILE = "train.jsonl"
EVAL_FILE = "eval.jsonl"
LISTED_AT_MOST = 20  # problems shown in one error; a broken file can have thousands
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with (or dropped from) one record, and where it is."""

    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


@dataclass(frozen=True, slots=True)
class Chat:
    """One training example: a conversation that ends with the assistant's answer."""

    messages: tuple[ChatMessage, ...]
    where: str

    def to_json(self) -> str:
        """One line of chat-format JSONL."""
        messages = [{"role": m.role, "content": m.content} for m in self.messages]
        return json.dumps({"messages": messages}, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Parsed:
    """The records of a file that passed every check, and the problems of the rest."""

    chats: tuple[Chat, ...]
    problems: tuple[Problem, ...]
    read: int


class DatasetError(ConfabError):
    """A dataset cannot be prepared; ``problems`` says what is wrong and where."""

    def __init__(self, summary: str, problems: Sequence[Problem] = ()) -> None:
        self.problems = tuple(problems)
        super().__init__("\n  ".join([summary, *listing(self.problems)]))


def listing(problems: Sequence[Problem], at_most: int = LISTED_AT_MOST) -> list[str]:
    """The first ``at_most`` problems as lines, and how many more there are."""
    lines = [str(problem) for problem in problems[:at_most]]
    if len(problems) > at_most:
        lines.append(f"... and {len(problems) - at_most} more")
    return lines


def read_dataset(path: Path) -> Parsed:
    """Parse a ``.jsonl`` chat file or a ``.csv`` question-and-answer file."""
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".csv"):
        raise DatasetError(f"{path}: expected a .jsonl chat file or a .csv with question,answer")
    try:
        # utf-8-sig: spreadsheets often save a CSV with a byte-order mark.
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise DatasetError(f"{path}: cannot be read: {error.strerror}") from None
    return parse_jsonl(text) if suffix == ".jsonl" else parse_qa_csv(text)


def parse_jsonl(text: str) -> Parsed:
    """Chat records, one JSON object per line; blank lines are skipped."""
    chats: list[Chat] = []
    problems: list[Problem] = []
    read = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        read += 1
        where = f"line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            problems.append(Problem(where, f"not valid JSON ({error.msg} at column {error.colno})"))
            continue
        messages, faults = check_record(record)
        problems.extend(Problem(where, fault) for fault in faults)
        if not faults:
            chats.append(Chat(messages, where))
    return Parsed(tuple(chats), tuple(problems), read)


def check_record(record: Any) -> tuple[tuple[ChatMessage, ...], list[str]]:
    """The messages of one ``{"messages": [...]}`` record, or everything wrong with it.

    After an optional leading system message, turns alternate user, assistant, ...
    and the last one is the assistant's: that answer is what the model learns.
    Keys other than ``role`` and ``content`` (``name``, ``weight``, ids) are ignored.
    """
    if not isinstance(record, dict):
        return (), ['must be a JSON object with a "messages" list']
    if "messages" not in record:
        return (), ["'messages' is missing"]
    raw = record["messages"]
    if not isinstance(raw, list):
        return (), ["'messages' must be a list"]
    if not raw:
        return (), ["'messages' is empty"]
    faults: list[str] = []
    messages: list[ChatMessage] = []
    for index, item in enumerate(raw, start=1):
        message, fault = _check_message(index, item)
        if fault:
            faults.append(fault)
        elif message is not None:
            messages.append(message)
    if faults:
        return (), faults
    return tuple(messages), _check_order(messages)


def _check_message(index: int, item: Any) -> tuple[ChatMessage | None, str]:
    if not isinstance(item, dict):
        return None, f"message {index} must be an object with 'role' and 'content'"
    role, content = item.get("role"), item.get("content")
    if role not in ROLES:
        return None, f"message {index}: role {role!r} is not one of {', '.join(ROLES)}"
    if not isinstance(content, str):
        return None, f"message {index}: 'content' must be a string"
    if not content.strip():
        return None, f"message {index}: empty {role} message"
    return ChatMessage(cast(Role, role), content), ""


def _check_order(messages: Sequence[ChatMessage]) -> list[str]:
    faults = []
    turns = messages[1:] if messages[0].role == "system" else messages
    for index, message in enumerate(messages[1:], start=2):
        if message.role == "system":
            faults.append(f"message {index}: a system message may only come first")
    if not turns:
        faults.append("a system message alone is not a conversation")
        return faults
    if turns[0].role != "user":
        faults.append("the conversation must start with a user message (after any system one)")
    offset = len(messages) - len(turns) + 1
    for index, (before, message) in enumerate(pairwise(turns), start=1):
        if message.role == before.role and message.role != "system":
            faults.append(
                f"message {index + offset}: two {message.role} messages in a row; "
                "merge them, or put the other side's turn between"
            )
    if messages[-1].role != "assistant":
        faults.append("the last message must be from the assistant")
    return faults


def parse_qa_csv(text: str) -> Parsed:
    """Question-and-answer rows under a header naming ``question`` and ``answer``.

    Each row becomes a chat of one user question and the assistant's answer;
    other columns are ignored, blank rows skipped.
    """
    rows = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(rows, None)
    except csv.Error as error:
        raise DatasetError(f"row 1: not a readable CSV header ({error})") from None
    if header is None:
        raise DatasetError("the file is empty")
    names = [name.strip().lower() for name in header]
    if "question" not in names or "answer" not in names:
        found = ", ".join(name for name in names if name) or "nothing"
        raise DatasetError(
            f"row 1: the header must name the columns question and answer (found: {found})"
        )
    question_at, answer_at = names.index("question"), names.index("answer")
    chats: list[Chat] = []
    problems: list[Problem] = []
    read = 0
    number = 1
    while True:
        number += 1
        try:
            row = next(rows, None)
        except csv.Error as error:
            # The reader cannot go on past a malformed row (a stray quote, say).
            problems.append(Problem(f"row {number}", f"not readable as CSV ({error})"))
            break
        if row is None:
            break
        if not any(cell.strip() for cell in row):
            continue
        read += 1
        where = f"row {number}"
        if len(row) != len(header):
            columns = f"{len(row)} columns where the header has {len(header)}"
            problems.append(Problem(where, columns))
            continue
        faults = [
            f"empty {name}"
            for name, at in (("question", question_at), ("answer", answer_at))
            if not row[at].strip()
        ]
        problems.extend(Problem(where, fault) for fault in faults)
        if not faults:
            pair = (ChatMessage("user", row[question_at]), ChatMessage("assistant", row[answer_at]))
            chats.append(Chat(pair, where))
    return Parsed(tuple(chats), tuple(problems), read)


def _normalised(chat: Chat) -> tuple[tuple[str, str], ...]:
    return tuple((m.role, _SPACE.sub(" ", m.content).strip().casefold()) for m in chat.messages)


def deduplicate(chats: Iterable[Chat]) -> tuple[list[Chat], list[Problem]]:
    """The first of each set of conversations equal up to case and whitespace."""
    first: dict[tuple[tuple[str, str], ...], Chat] = {}
    dropped: list[Problem] = []
    for chat in chats:
        key = _normalised(chat)
        if key in first:
            dropped.append(Problem(chat.where, f"duplicate of {first[key].where}"))
        else:
            first[key] = chat
    return list(first.values()), dropped


def within_tokens(
    chats: Iterable[Chat], count_tokens: TokenCounter, max_tokens: int
) -> tuple[list[Chat], list[Problem]]:
    """The conversations that take at most ``max_tokens`` tokens; the rest are dropped."""
    kept: list[Chat] = []
    dropped: list[Problem] = []
    for chat in chats:
        tokens = count_tokens(chat.messages)
        if tokens > max_tokens:
            dropped.append(Problem(chat.where, f"{tokens} tokens, over the limit of {max_tokens}"))
        else:
            kept.append(chat)
    return kept, dropped


def eval_size(total: int, eval_fraction: float) -> int:
    """How many of ``total`` records to hold out: at least one when there are two or more,
    and never all of them."""
    if total < 2 or eval_fraction <= 0:
        return 0
    return min(max(1, int(total * eval_fraction + 0.5)), total - 1)


def split(chats: Sequence[Chat], eval_fraction: float, seed: int) -> tuple[list[Chat], list[Chat]]:
    """A train and an eval set drawn with ``seed``: the same input and seed give the same
    split. Both keep the file's order."""
    if not 0 <= eval_fraction < 1:
        raise ValueError(f"eval_fraction must be at least 0 and below 1, not {eval_fraction}")
    order = list(range(len(chats)))
    random.Random(seed).shuffle(order)
    held_out = set(order[: eval_size(len(chats), eval_fraction)])
    train = [chat for index, chat in enumerate(chats) if index not in held_out]
    evaluation = [chat for index, chat in enumerate(chats) if index in held_out]
    return train, evaluation


@dataclass(frozen=True, slots=True)
class Prepared:
    """The split of one input file, and what was left out of it and why."""

    train: tuple[Chat, ...]
    eval: tuple[Chat, ...]
    read: int
    invalid: tuple[Problem, ...]
    duplicates: tuple[Problem, ...]
    too_long: tuple[Problem, ...]

    def summary(self) -> str:
        return (
            f"{self.read} records read: {len(self.invalid)} invalid, "
            f"{len(self.duplicates)} duplicates, {len(self.too_long)} too long; "
            f"train {len(self.train)}, eval {len(self.eval)}"
        )


def reject_invalid(parsed: Parsed, source: str = "the dataset") -> None:
    """Raise :class:`DatasetError` listing the problems, if the file has any."""
    if parsed.problems:
        count = len(parsed.problems)
        raise DatasetError(
            f"{source}: {count} problem{'s' if count != 1 else ''}, nothing written "
            "(fix them, or leave those records out with --skip-invalid):",
            parsed.problems,
        )


def prepare(
    parsed: Parsed,
    count_tokens: TokenCounter,
    max_tokens: int,
    *,
    eval_fraction: float = 0.1,
    seed: int = 0,
    skip_invalid: bool = False,
    source: str = "the dataset",
) -> Prepared:
    """Check, de-duplicate, filter by length and split a parsed dataset.

    Raises :class:`DatasetError` listing every invalid record (unless
    ``skip_invalid``), or when no record is left to train on; ``source`` names
    the input in those messages.
    """
    if not skip_invalid:
        reject_invalid(parsed, source)
    unique, duplicates = deduplicate(parsed.chats)
    fitting, too_long = within_tokens(unique, count_tokens, max_tokens)
    if not fitting:
        raise DatasetError(
            f"{source}: no record left to train on ({parsed.read} read)",
            [*parsed.problems, *too_long],
        )
    train, evaluation = split(fitting, eval_fraction, seed)
    return Prepared(
        tuple(train),
        tuple(evaluation),
        parsed.read,
        parsed.problems,
        tuple(duplicates),
        tuple(too_long),
    )


def write_prepared(prepared: Prepared, out: Path) -> tuple[Path, Path]:
    """Write ``train.jsonl`` and ``eval.jsonl`` into ``out`` (created if missing).

    Both are written in full beside their targets before either replaces an
    older file, so a failure never leaves a half-written dataset behind.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DatasetError(f"cannot create {out}: {error.strerror}") from None
    targets = (out / TRAIN_FILE, out / EVAL_FILE)
    staged: list[Path] = []
    try:
        for target, chats in zip(targets, (prepared.train, prepared.eval), strict=True):
            staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            staged.append(staging)
            with staging.open("w", encoding="utf-8") as handle:
                handle.writelines(chat.to_json() + "\n" for chat in chats)
        for staging, target in zip(staged, targets, strict=True):
            os.replace(staging, target)
    except OSError as error:
        for staging in staged:
            staging.unlink(missing_ok=True)
        raise DatasetError(f"cannot write into {out}: {error.strerror}") from None
    return targets


def file_sha256(path: Path) -> str:
    """The file's SHA-256, which names the exact data a model was trained or scored on."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
