"""What only a whole ``confab run`` process shows, over the wire: it keeps trying a
platform that cannot be reached at start and then answers, and a SIGTERM while an
answer streams ends the process cleanly within 9 s (Docker kills at 10 s)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import aiohttp
import yaml  # type: ignore[import-untyped]

from confab.bot.shutdown import RESTARTING
from tests.adapters.discord_wire import CHANNEL_ID, TOKEN, free_port, running_fake_discord
from tests.adapters.processes import confab_process, config_text, streaming_model, until
from tests.adapters.slack_fake import BOT_USER_ID, FakeSlack, running_fake_slack
from tests.adapters.slack_payloads import app_mention, event_callback, json_body, sign

MESSAGES = "/channels/{channel_id}/messages"
SECRET = "process-signing-secret"


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


async def test_discord_unreachable_at_start_is_retried_then_answered(tmp_path: Path) -> None:
    """Also what an orchestrator sees of it, over HTTP: /healthz is 503 naming Discord
    until it connects, then 200; /metrics counts the one answer."""
    port, web_port = free_port(), free_port()
    web = f"http://127.0.0.1:{web_port}"
    config = tmp_path / "config.toml"
    async with streaming_model(["Up", "and", "running."], 0.01) as model:
        config.write_text(
            config_text(
                tmp_path,
                model,
                "discord",
                {
                    "api_base_url": f"http://127.0.0.1:{port}/api/v10",
                    "gateway_url": f"ws://127.0.0.1:{port}/gateway",
                },
            )
            + f"[web]\nenabled = true\nport = {web_port}\n"
        )
        async with confab_process(config, {"CONFAB_DISCORD_TOKEN": TOKEN}) as bot:
            await bot.wait_for_line("cannot reach Discord (attempt 1")
            await bot.wait_for_line(f"serving /healthz and /metrics at {web}")
            status, body = await _get(f"{web}/healthz")
            assert status == 503
            assert json.loads(body)["down"] == ["adapter discord"]
            await bot.wait_for_line("cannot reach Discord (attempt 2", within_s=15)
            async with running_fake_discord(port) as discord:
                await discord.wait_connected(within_s=30)
                await bot.wait_for_line("Discord: connected as")
                await discord.dispatch_message(CHANNEL_ID, "are you up?", mentions_bot=True)
                await discord.wait_for(lambda: discord.shown() == ["Up and running."], 15)
                status, body = await _get(f"{web}/healthz")
                assert (status, json.loads(body)["adapters"]) == (200, {"discord": "ok"})
                status, metrics = await _get(f"{web}/metrics")
                assert status == 200
                answered = 'confab_messages_answered_total{platform="discord",skill="ask"} 1.0'
                assert answered in metrics.splitlines()
                code, _ = await bot.stop()
    assert code == 0, bot.log_text
    attempts = [line for line in bot.log if "cannot reach Discord" in line]
    assert len(attempts) >= 2  # one line per attempt
    assert "Traceback" not in bot.log_text and "Session is closed" not in bot.log_text


async def test_sigterm_while_streaming_ends_within_9_s_with_the_notice(tmp_path: Path) -> None:
    """The default grace and cut: an answer that would stream for 60 s is cut short,
    the channel is told, and the process exits 0 well before Docker's 10 s kill."""
    config = tmp_path / "config.toml"
    words = [f"word{n}" for n in range(300)]
    async with (
        streaming_model(words, 0.2) as model,
        running_fake_discord() as discord,
    ):
        config.write_text(config_text(tmp_path, model, "discord", discord.config()))
        async with confab_process(config, {"CONFAB_DISCORD_TOKEN": TOKEN}) as bot:
            await discord.wait_connected(within_s=60)
            await discord.dispatch_message(CHANNEL_ID, "tell me a long story", mentions_bot=True)
            await discord.wait_for(lambda: bool(discord.writes_to(MESSAGES, "POST")), 30)
            code, took = await bot.stop()
    assert code == 0, bot.log_text
    assert took < 9.0, f"{took:.1f} s from SIGTERM to exit"
    shown = discord.shown()  # the notice appended to the cut answer, or just after it
    assert shown[0].startswith("word0 word1") and shown[-1].endswith(RESTARTING)
    assert len(shown) <= 2


async def test_slack_unreachable_at_start_is_retried_then_answered(tmp_path: Path) -> None:
    api_port, events_port = free_port(), free_port()
    config = tmp_path / "config.toml"
    async with streaming_model(["Here", "now."], 0.01) as model:
        config.write_text(
            config_text(
                tmp_path,
                model,
                "slack",
                {
                    "mode": "http",
                    "port": events_port,
                    "api_base_url": f"http://127.0.0.1:{api_port}/api/",
                    "edit_interval_s": 0.2,
                },
            )
        )
        env = {"CONFAB_SLACK_BOT_TOKEN": "xoxb-process", "CONFAB_SLACK_SIGNING_SECRET": SECRET}
        async with confab_process(config, env) as bot:
            await bot.wait_for_line("cannot reach Slack (attempt 1")
            await bot.wait_for_line("cannot reach Slack (attempt 2", within_s=15)
            async with running_fake_slack(api_port) as slack:
                await bot.wait_for_line("Slack: serving team", within_s=30)
                body = json_body(
                    event_callback(
                        app_mention(f"<@{BOT_USER_ID}> there?", "U1", "C1", "1700000001.000100"),
                        "Ev1",
                    )
                )
                await _post(f"http://127.0.0.1:{events_port}/slack/events", body)
                await until(lambda: _shown(slack, "C1") == ["Here now."])
                code, _ = await bot.stop()
    assert code == 0, bot.log_text
    assert len([line for line in bot.log if "cannot reach Slack" in line]) >= 2
    assert "Traceback" not in bot.log_text


def test_confab_slack_manifest_prints_a_command_per_skill(tmp_path: Path) -> None:
    """``confab slack manifest`` from the installed skills; YAML and JSON say the same."""
    config = tmp_path / "config.toml"
    config.write_text('[slack]\nmode = "http"\n')

    def manifest(*options: str) -> str:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "confab",
                "slack",
                "manifest",
                "--config",
                str(config),
                *options,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    as_json = json.loads(manifest("--format", "json", "--url", "https://bot.example.com"))
    as_yaml = yaml.safe_load(manifest("--url", "https://bot.example.com"))
    assert as_json == as_yaml
    commands = {c["command"] for c in as_json["features"]["slash_commands"]}
    assert {"/ask", "/summarise", "/code", "/help", "/ping"} <= commands
    assert "/remind" not in commands  # Slack keeps it for its own command
    events = as_json["settings"]["event_subscriptions"]
    assert events["request_url"] == "https://bot.example.com/slack/events"
    assert as_json["settings"]["socket_mode_enabled"] is False


async def _post(url: str, body: bytes) -> None:
    headers = {"Content-Type": "application/json", **sign(body, SECRET)}
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers):
        pass


def _shown(slack: FakeSlack, channel: str) -> list[str]:
    return [m.text for m in slack.messages.get(channel, []) if m.user == BOT_USER_ID]
