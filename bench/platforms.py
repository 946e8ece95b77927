"""Platform limits as users meet them, over the wire against the loopback Discord and
Slack used by the tests:

- stop time: ``confab run`` on Discord, SIGTERM while an answer streams (one that
  would take a minute), seconds until the process has exited, with the defaults;
- pacing: six answers streaming at once in one Discord channel and in one Slack
  workspace; the most writes in any 5 s (Discord) and 60 s (Slack) span, and how long
  the six took, against the published limits (5 per 5 s per channel; chat.update
  Tier 3, 50 a minute per workspace).

    python bench/platforms.py [--runs 3] [--skip-stop] [--skip-pacing]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from tests.adapters.discord_wire import (
    CHANNEL_ID,
    TOKEN,
    free_port,
    running_fake_discord,
)
from tests.adapters.processes import confab_process, config_text, streaming_model, until
from tests.adapters.slack_fake import BOT_USER_ID, running_fake_slack
from tests.adapters.slack_payloads import app_mention, event_callback, json_body, sign

MESSAGES = "/channels/{channel_id}/messages"
WORDS = [f"word{n}" for n in range(120)]  # at 0.05 s apart: 6 s of streaming per answer


async def stop_time(folder: Path) -> float:
    config = folder / "config.toml"
    async with (
        streaming_model([f"word{n}" for n in range(300)], 0.2) as model,
        running_fake_discord() as discord,
    ):
        config.write_text(config_text(folder, model, "discord", discord.config()))
        async with confab_process(config, {"CONFAB_DISCORD_TOKEN": TOKEN}) as bot:
            await discord.wait_connected(within_s=60)
            await discord.dispatch_message(CHANNEL_ID, "a long story", mentions_bot=True)
            await discord.wait_for(lambda: bool(discord.writes_to(MESSAGES, "POST")), 30)
            await asyncio.sleep(1.0)  # well into the answer
            code, took = await bot.stop()
    if code != 0:
        raise SystemExit(f"confab exited {code}:\n{bot.log_text}")
    return took


def busiest(times: list[float], span_s: float) -> int:
    times = sorted(times)
    return max((sum(1 for t in times if start <= t < start + span_s) for start in times), default=0)


async def discord_pacing(folder: Path) -> tuple[int, float, int]:
    config = folder / "config.toml"
    async with streaming_model(WORDS, 0.05) as model, running_fake_discord() as discord:
        config.write_text(config_text(folder, model, "discord", discord.config()))
        async with confab_process(config, {"CONFAB_DISCORD_TOKEN": TOKEN}) as bot:
            await discord.wait_connected(within_s=60)
            started = time.monotonic()
            for n in range(6):
                await discord.dispatch_message(CHANNEL_ID, f"story {n}", mentions_bot=True)
            whole = " ".join(WORDS)
            await discord.wait_for(lambda: discord.shown().count(whole) == 6, 180)
            took = time.monotonic() - started
            await bot.stop()
    writes = [w.at for w in discord.writes if w.channel == CHANNEL_ID]
    return busiest(writes, 5.0), took, len(writes)


async def slack_pacing(folder: Path) -> tuple[int, float, int]:
    secret, port = "bench-secret", free_port()
    config = folder / "config.toml"
    async with streaming_model(WORDS, 0.05) as model, running_fake_slack() as slack:
        section = {"mode": "http", "port": port, "api_base_url": slack.base_url}
        config.write_text(config_text(folder, model, "slack", section))
        env = {"CONFAB_SLACK_BOT_TOKEN": "xoxb-bench", "CONFAB_SLACK_SIGNING_SECRET": secret}
        async with confab_process(config, env) as bot:
            await bot.wait_for_line("Slack: serving team", within_s=60)
            started = time.monotonic()
            async with aiohttp.ClientSession() as session:
                for n in range(6):
                    event = app_mention(
                        f"<@{BOT_USER_ID}> story {n}", "U1", f"C{n}", f"1700000001.{n:06d}"
                    )
                    body = json_body(event_callback(event, f"Ev{n}"))
                    headers = {"Content-Type": "application/json", **sign(body, secret)}
                    url = f"http://127.0.0.1:{port}/slack/events"
                    async with session.post(url, data=body, headers=headers):
                        pass
            whole = " ".join(WORDS)

            def done() -> bool:
                shown = [m.text for ms in slack.messages.values() for m in ms]
                return shown.count(whole) == 6

            await until(done, 240)
            took = time.monotonic() - started
            await bot.stop()
    updates = [call.at for call in slack.calls_to("chat.update")]
    return busiest(updates, 60.0), took, len(updates)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-stop", action="store_true")
    parser.add_argument("--skip-pacing", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        if not args.skip_stop:
            times = []
            for run in range(args.runs):
                folder = Path(scratch) / f"stop{run}"
                folder.mkdir()
                times.append(await stop_time(folder))
            shown = ", ".join(f"{t:.2f}" for t in times)
            print(f"stop time, SIGTERM to exit (s): {shown}; median {statistics.median(times):.2f}")
        if not args.skip_pacing:
            for name, measure, span, limit in (
                ("discord, 6 answers in one channel", discord_pacing, "5 s", 5),
                ("slack, 6 answers in one workspace", slack_pacing, "60 s", 50),
            ):
                folder = Path(scratch) / name.split(",")[0]
                folder.mkdir()
                most, took, total = await measure(folder)
                print(
                    f"{name}: {total} writes in {took:.1f} s, at most {most} in any {span} "
                    f"(limit {limit})"
                )


if __name__ == "__main__":
    asyncio.run(main())
