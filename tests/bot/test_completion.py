"""`confab --version` and `confab completion bash|zsh`: the completion script is
made from the command's own tree, so it offers every subcommand and option."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from confab.bot.cli import _parser
from confab.bot.completion import command_levels, completion_script
from confab.bot.plugins import discover_adapters


def confab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "confab", *args], capture_output=True, text=True, timeout=60
    )


def test_version_prints_the_distribution_version() -> None:
    shown = confab("--version")
    assert shown.returncode == 0
    assert shown.stdout == f"confab {version('confab-bot')}\n"


def test_the_bash_script_names_every_subcommand() -> None:
    shown = confab("completion", "bash")
    assert shown.returncode == 0, shown.stderr
    script = shown.stdout
    assert "complete -o default -F _confab confab" in script
    for command in ("run", "console", "config", "db", "init", "completion", "kb", "model"):
        assert command in script
    assert '"config") echo "check" ;;' in script
    assert '"db") echo "upgrade downgrade current export" ;;' in script
    assert '"slack") echo "manifest" ;;' in script  # an adapter's own tools


def complete(script: Path, line: str) -> list[str]:
    """What bash offers after ``line`` (the last word being completed)."""
    words = line.split(" ")
    probe = (
        f"source {script}\n"
        f"COMP_WORDS=({' '.join(repr(word) for word in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        "_confab\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True)
    return done.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_commands_options_and_choices(tmp_path: Path) -> None:
    script = tmp_path / "confab.bash"
    script.write_text(completion_script(_parser(discover_adapters()), "bash"))
    assert complete(script, "confab co") == ["console", "config", "completion"]
    assert complete(script, "confab config ") == ["check"]
    assert complete(script, "confab db export --") == [
        "--help", "--config", "--user", "--platform", "--out",
    ]  # fmt: skip
    assert complete(script, "confab init --model ") == ["bundled", "openai"]
    assert complete(script, "confab completion ") == ["bash", "zsh"]
    assert complete(script, "confab run --config ") == []  # bash completes file names
    # An option's value is not taken for a subcommand.
    assert complete(script, "confab db export --user db ") == []


def test_the_zsh_script_uses_the_same_tree() -> None:
    shown = confab("completion", "zsh")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("#compdef confab\n")
    assert "compdef _confab confab" in shown.stdout
    assert '"db") echo "upgrade downgrade current export" ;;' in shown.stdout


def test_the_tree_lists_options_that_take_values() -> None:
    levels = {level.path: level for level in command_levels(_parser(discover_adapters()))}
    assert levels[("init",)].valued["--model"] == ("bundled", "openai")
    assert levels[("init",)].valued["--path"] == ()
    assert "--force" not in levels[("init",)].valued
    assert "--version" in levels[()].options
