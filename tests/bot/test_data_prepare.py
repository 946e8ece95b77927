"""`confab data prepare`: a user's chat JSONL or Q&A CSV, checked, cleaned and split."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from confab.bot import cli
from confab.bot.lab import commands as lab_commands
from confab.bot.lab.dataset import (
    EXAMPLES,
    Chat,
    DatasetError,
    Parsed,
    deduplicate,
    parse_jsonl,
    parse_qa_csv,
    prepare,
    read_dataset,
    split,
    within_tokens,
)
from confab.bot.llm.backend import ChatMessage
from confab.bot.llm.transformers_backend import TransformersBackend

EXAMPLE = EXAMPLES / "tarnwick_qa.csv"
HELD_OUT = EXAMPLES / "tarnwick_heldout.csv"


def words(messages: Sequence[ChatMessage]) -> int:
    """A stand-in tokenizer: one token per word."""
    return sum(len(m.content.split()) for m in messages)


def record(*turns: tuple[str, str]) -> str:
    return json.dumps({"messages": [{"role": r, "content": c} for r, c in turns]})


def qa(question: str, answer: str, where: str = "row 2") -> Chat:
    return Chat((ChatMessage("user", question), ChatMessage("assistant", answer)), where)


def problems(parsed: Parsed) -> list[str]:
    return [str(problem) for problem in parsed.problems]


# Reading and checking


def test_valid_jsonl_keeps_roles_and_content_and_skips_blank_lines() -> None:
    text = "\n".join(
        [
            record(("system", "Be brief."), ("user", "Port?"), ("assistant", "7419.")),
            "",
            json.dumps(
                {
                    "id": 7,
                    "messages": [
                        {"role": "user", "content": "Hi", "name": "ana"},
                        {"role": "assistant", "content": "Hello"},
                        {"role": "user", "content": "Logo colour?"},
                        {"role": "assistant", "content": "Teal."},
                    ],
                }
            ),
        ]
    )
    parsed = parse_jsonl(text)
    assert parsed.problems == ()
    assert parsed.read == 2
    assert [chat.where for chat in parsed.chats] == ["line 1", "line 3"]
    assert parsed.chats[0].messages[0] == ChatMessage("system", "Be brief.")
    assert json.loads(parsed.chats[1].to_json()) == {
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Logo colour?"},
            {"role": "assistant", "content": "Teal."},
        ]
    }


def test_every_bad_jsonl_line_is_reported_with_its_number() -> None:
    lines = [
        record(("user", "fine"), ("assistant", "fine")),
        '{"messages": [',
        "[1, 2]",
        json.dumps({"turns": []}),
        json.dumps({"messages": "hello"}),
        json.dumps({"messages": []}),
        record(("user", "Port?")),
        record(("user", "a"), ("bot", "b")),
        json.dumps({"messages": [{"role": "user", "content": 3}, "text"]}),
        record(("user", "a"), ("assistant", "  ")),
        record(("assistant", "Hi"), ("user", "a"), ("assistant", "b")),
        record(("user", "a"), ("user", "b"), ("assistant", "c")),
        record(("user", "a"), ("system", "b"), ("assistant", "c")),
        record(("system", "only")),
    ]
    parsed = parse_jsonl("\n".join(lines))
    assert [chat.where for chat in parsed.chats] == ["line 1"]
    assert parsed.read == len(lines)
    assert problems(parsed) == [
        "line 2: not valid JSON (Expecting value at column 15)",
        'line 3: must be a JSON object with a "messages" list',
        "line 4: 'messages' is missing",
        "line 5: 'messages' must be a list",
        "line 6: 'messages' is empty",
        "line 7: the last message must be from the assistant",
        "line 8: message 2: role 'bot' is not one of system, user, assistant",
        "line 9: message 1: 'content' must be a string",
        "line 9: message 2 must be an object with 'role' and 'content'",
        "line 10: message 2: empty assistant message",
        "line 11: the conversation must start with a user message (after any system one)",
        "line 12: message 2: two user messages in a row; "
        "merge them, or put the other side's turn between",
        "line 13: message 2: a system message may only come first",
        "line 14: a system message alone is not a conversation",
    ]


def test_csv_rows_become_question_and_answer_chats() -> None:
    text = 'Question , Answer,source\nWhat port?,7419,docs\n,,\n"Multi\nline?","Yes, it is.",faq\n'
    parsed = parse_qa_csv(text)
    assert parsed.problems == ()
    assert parsed.read == 2
    assert [chat.messages for chat in parsed.chats] == [
        (ChatMessage("user", "What port?"), ChatMessage("assistant", "7419")),
        (ChatMessage("user", "Multi\nline?"), ChatMessage("assistant", "Yes, it is.")),
    ]
    # Numbered as a spreadsheet shows them: the header is row 1, blank rows count.
    assert [chat.where for chat in parsed.chats] == ["row 2", "row 4"]


def test_every_bad_csv_row_is_reported_with_its_number() -> None:
    text = "question,answer\nok?,yes\nno answer?,\n  ,no question\n,\na,b,c\nlast?,fine\n"
    parsed = parse_qa_csv(text)
    assert [chat.where for chat in parsed.chats] == ["row 2", "row 7"]
    assert parsed.read == 5  # row 5, empty in every cell, is a blank row
    assert problems(parsed) == [
        "row 3: empty answer",
        "row 4: empty question",
        "row 6: 3 columns where the header has 2",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("q,a\nhi,there\n", "row 1: the header must name the columns question and answer"),
    ],
)
def test_a_csv_without_the_right_header_is_refused(text: str, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        parse_qa_csv(text)


def test_only_jsonl_and_csv_files_are_read(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("hello")
    with pytest.raises(DatasetError, match=r"expected a \.jsonl chat file or a \.csv"):
        read_dataset(tmp_path / "data.txt")
    (tmp_path / "latin1.csv").write_bytes("question,answer\ncaf\xe9?,oui\n".encode("latin-1"))
    with pytest.raises(DatasetError, match="not UTF-8 text"):
        read_dataset(tmp_path / "latin1.csv")


# Cleaning and splitting


def test_duplicates_differing_only_in_case_and_spacing_are_dropped() -> None:
    chats = [
        qa("What port?", "7419.", "row 2"),
        qa("what  PORT?", " 7419. ", "row 3"),
        qa("What port?", "7420.", "row 4"),
        qa("WHAT PORT?\n", "7419.", "row 5"),
    ]
    kept, dropped = deduplicate(chats)
    assert [chat.where for chat in kept] == ["row 2", "row 4"]
    assert [str(problem) for problem in dropped] == [
        "row 3: duplicate of row 2",
        "row 5: duplicate of row 2",
    ]


def test_conversations_over_the_token_limit_are_dropped() -> None:
    chats = [qa("one two", "three", "row 2"), qa("one two three", "four five", "row 3")]
    kept, dropped = within_tokens(chats, words, max_tokens=3)
    assert [chat.where for chat in kept] == ["row 2"]
    assert [str(problem) for problem in dropped] == ["row 3: 5 tokens, over the limit of 3"]


def test_the_split_is_seeded_disjoint_and_complete() -> None:
    chats = [qa(f"question {n}?", f"answer {n}", f"row {n}") for n in range(2, 42)]
    train, evaluation = split(chats, 0.1, seed=0)
    assert len(evaluation) == 4 and len(train) == 36
    assert not {c.where for c in train} & {c.where for c in evaluation}
    assert sorted(c.where for c in train + evaluation) == sorted(c.where for c in chats)
    assert split(chats, 0.1, seed=0) == (train, evaluation)
    assert split(chats, 0.1, seed=1)[1] != evaluation
    # Both keep the input's order.
    assert train == [chat for chat in chats if chat in train]


@pytest.mark.parametrize(
    ("total", "fraction", "held_out"),
    [(1, 0.5, 0), (2, 0.01, 1), (3, 0.9, 2), (10, 0.0, 0), (10, 0.25, 3)],
)
def test_some_records_are_held_out_but_never_all(
    total: int, fraction: float, held_out: int
) -> None:
    chats = [qa(f"q{n}", f"a{n}", f"row {n}") for n in range(total)]
    assert len(split(chats, fraction, seed=0)[1]) == held_out


def test_invalid_records_stop_the_preparation_unless_skipped() -> None:
    parsed = parse_qa_csv("question,answer\nok?,yes\nbad?,\nfine?,good\nOK?,yes\n")
    with pytest.raises(DatasetError) as caught:
        prepare(parsed, words, 100, source="faq.csv")
    assert str(caught.value).splitlines() == [
        "faq.csv: 1 problem, nothing written "
        "(fix them, or leave those records out with --skip-invalid):",
        "  row 3: empty answer",
    ]
    prepared = prepare(parsed, words, 100, skip_invalid=True)
    assert prepared.summary() == (
        "4 records read: 1 invalid, 1 duplicates, 0 too long; train 1, eval 1"
    )


def test_nothing_left_to_train_on_is_an_error() -> None:
    parsed = parse_qa_csv("question,answer\na long question?,and a long answer\n")
    with pytest.raises(DatasetError, match="no record left to train on"):
        prepare(parsed, words, max_tokens=2)


# The shipped example


def test_the_example_dataset_is_clean_and_its_held_out_questions_are_new() -> None:
    example, held_out = read_dataset(EXAMPLE), read_dataset(HELD_OUT)
    assert example.problems == () and held_out.problems == ()
    assert 35 <= len(example.chats) <= 50 and 10 <= len(held_out.chats) <= 15
    assert len(deduplicate(example.chats)[0]) == len(example.chats)
    questions = {chat.messages[0].content for chat in example.chats}
    answers = {chat.messages[1].content for chat in example.chats}
    for chat in held_out.chats:
        assert chat.messages[0].content not in questions  # paraphrased, not copied
    # The answers are the taught ones, except where a paraphrase needs other words.
    same = sum(chat.messages[1].content in answers for chat in held_out.chats)
    assert same >= len(held_out.chats) - 1


# The command


@pytest.fixture
def word_counting_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """`confab` run in an empty folder, counting words instead of loading the tokenizer."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(lab_commands, "_chat_token_counter", lambda config, terminal: (words, 8192))
    return tmp_path


def read_jsonl(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_command_prepares_the_example(
    word_counting_cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["data", "prepare", str(EXAMPLE)]) == 0
    out = word_counting_cli / "tarnwick_qa-prepared"
    stdout = capsys.readouterr().out
    assert "40 records read: 0 invalid, 0 duplicates, 0 too long; train 36, eval 4" in stdout
    train, evaluation = read_jsonl(out / "train.jsonl"), read_jsonl(out / "eval.jsonl")
    assert len(train) == 36 and len(evaluation) == 4
    assert all([m["role"] for m in r["messages"]] == ["user", "assistant"] for r in train)
    with EXAMPLE.open(encoding="utf-8") as handle:
        rows = [(row["question"], row["answer"]) for row in csv.DictReader(handle)]
    prepared = [(r["messages"][0]["content"], r["messages"][1]["content"]) for r in train]
    prepared += [(r["messages"][0]["content"], r["messages"][1]["content"]) for r in evaluation]
    assert sorted(prepared) == sorted(rows)
    assert sorted(p.name for p in out.iterdir()) == ["eval.jsonl", "train.jsonl"]


def test_the_command_repeats_its_split_and_follows_its_options(word_counting_cli: Path) -> None:
    def run(out: str, *options: str) -> tuple[str, str]:
        assert cli.main(["data", "prepare", str(EXAMPLE), "--out", out, *options]) == 0
        folder = word_counting_cli / out
        return (folder / "train.jsonl").read_text(), (folder / "eval.jsonl").read_text()

    first = run("a", "--seed", "3", "--eval-fraction", "0.25")
    assert run("b", "--seed", "3", "--eval-fraction", "0.25") == first
    assert len(first[1].splitlines()) == 10
    assert run("c", "--seed", "4", "--eval-fraction", "0.25")[1] != first[1]
    short_train, short_eval = run("d", "--max-tokens", "25")
    assert 0 < len(short_train.splitlines()) + len(short_eval.splitlines()) < 40


def test_bad_input_lists_every_problem_and_writes_nothing(
    word_counting_cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = word_counting_cli / "faq.jsonl"
    bad.write_text(
        record(("user", "ok"), ("assistant", "ok"))
        + "\n{oops\n"
        + json.dumps({"messages": "x"})
        + "\n"
    )
    assert cli.main(["data", "prepare", str(bad), "--out", "out"]) == 2
    stderr = capsys.readouterr().err
    assert "line 2: not valid JSON" in stderr
    assert "line 3: 'messages' must be a list" in stderr
    assert "Traceback" not in stderr
    assert not (word_counting_cli / "out").exists()

    assert cli.main(["data", "prepare", str(bad), "--out", "out", "--skip-invalid"]) == 0
    assert "3 records read: 2 invalid" in capsys.readouterr().out
    assert len(read_jsonl(word_counting_cli / "out" / "train.jsonl")) == 1


def test_a_failed_run_leaves_an_earlier_result_alone(word_counting_cli: Path) -> None:
    assert cli.main(["data", "prepare", str(EXAMPLE), "--out", "out"]) == 0
    before = {p.name: p.read_text() for p in (word_counting_cli / "out").iterdir()}
    assert cli.main(["data", "prepare", str(EXAMPLE), "--out", "out", "--max-tokens", "1"]) == 2
    after = {p.name: p.read_text() for p in (word_counting_cli / "out").iterdir()}
    assert after == before


def test_an_unwritable_output_is_one_clear_error(
    word_counting_cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (word_counting_cli / "taken").write_text("a file, not a folder")
    assert cli.main(["data", "prepare", str(EXAMPLE), "--out", "taken"]) == 2
    assert "confab: cannot create taken" in capsys.readouterr().err


@pytest.mark.parametrize("option", [["--eval-fraction", "1"], ["--max-tokens", "0"]])
def test_impossible_options_are_refused(word_counting_cli: Path, option: list[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli.main(["data", "prepare", str(EXAMPLE), *option])
    assert stopped.value.code == 2


@pytest.mark.model
def test_the_command_counts_with_the_bundled_models_tokenizer(
    bundled_model: TransformersBackend,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The fixture has converted the model, so the tokenizer loads from the cache at once.
    monkeypatch.chdir(tmp_path)
    assert cli.main(["data", "prepare", str(EXAMPLE), "--out", "out"]) == 0
    assert "train 36, eval 4" in capsys.readouterr().out
    # SmolLM2's template adds its default system prompt (about 30 tokens) to every chat.
    assert cli.main(["data", "prepare", str(EXAMPLE), "--out", "out", "--max-tokens", "60"]) == 0
    summary = capsys.readouterr().out
    too_long = int(summary.split(" too long")[0].rsplit(" ", 1)[-1])
    assert 0 < too_long < 40
