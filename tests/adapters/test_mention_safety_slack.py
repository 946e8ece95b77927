"""Whatever the model writes, Confab's Slack messages ping nobody.

Slack pings for ``<!everyone>``, ``<!here>``, ``<!channel>``, ``<!subteam^...>``
and ``<@U...>`` in a message's text, and for plain ``@here`` when the sender asks
Slack to link names. So every text Confab sends (``chat.postMessage``,
``chat.update``, a slash command's ``response_url``) must hold no unescaped
markup but the links it built, and no call may ask for ``link_names`` or
``parse=full``. The pings stay visible as text.

The real adapter runs in HTTP mode with Confab's router and store, against the
loopback Slack of ``slack_fake``; only Slack's network is faked.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Callable
from pathlib import Path

import pytest

from confab.bot.errors import SkillError
from confab.bot.skill import Skill, SkillContext
from tests.adapters import test_slack
from tests.adapters.slack_fake import BOT_USER_ID, SlackCall
from tests.adapters.slack_payloads import app_mention, slash_command
from tests.adapters.test_slack import slack
from tests.adapters.test_slack_mrkdwn_properties import slack_markup

# Every way a model could try to ping, Slack's markup and Markdown links included.
PINGS = (
    "<!everyone> <!here> <!channel> <!subteam^S123> <@U123> <#C123> <!here|here> "
    "@here @channel @everyone &lt;!channel&gt; 1 < 2 > 0 & more "
    "[everyone](<!channel>) [x](https://x.io|<!here>) [<@U123>](https://x.io) "
    "[y](https://x.io/<!everyone>) <https://x.io|<!here>>"
)
# What a person sees of PINGS: every ping as inert text, links as links.
SHOWN_PINGS = (
    "<!everyone> <!here> <!channel> <!subteam^S123> <@U123> <#C123> <!here|here> "
    "@here @channel @everyone &lt;!channel&gt; 1 < 2 > 0 & more "
    "everyone (<!channel>) x (https://x.io|<!here>) <https://x.io|<@U123>> "
    "y (https://x.io/<!everyone>) <https://x.io|<!here>>"
)
SENDS = ("chat.postMessage", "chat.update")


class QuoteSkill(Skill):
    """Refuses with an error that quotes what it was given, as many skills' errors do."""

    name = "quote"
    help = "Refuse to quote."

    async def run(self, ctx: SkillContext) -> None:
        raise SkillError(f"I can't quote {ctx.args}.")


def problems(call: SlackCall) -> list[str]:
    """Why Slack could ping someone for this call: markup in its text, or options
    that make Slack link names (``@here``) or parse the text as markup."""
    found = slack_markup(str(call.params.get("text", "")))
    if call.params.get("link_names") not in (None, False, "false", "0", 0):
        found.append(f"link_names={call.params['link_names']!r}")
    if call.params.get("parse") not in (None, "none"):
        found.append(f"parse={call.params['parse']!r}")
    return found


async def until(done: Callable[[], object], what: str) -> None:
    """Wait for what the person would see (stored turns may come before the last edit)."""
    for _ in range(500):
        if done():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never {what}")


def sent_texts(calls: list[SlackCall]) -> list[str]:
    return [str(call.params["text"]) for call in calls if call.method in SENDS]


async def test_a_streamed_split_answer_full_of_pings_pings_nobody(tmp_path, monkeypatch) -> None:
    answer = "\n\n".join(f"Part {n}: {PINGS} and some more words." for n in range(10))
    async with slack(tmp_path, monkeypatch, [answer], delay_s=0.002, max_message_chars=1000) as bot:
        await bot.event(app_mention(f"<@{BOT_USER_ID}> shout", "U1", "C1", "1700.1"), "Ev1")
        last = f"Part 9: {SHOWN_PINGS} and some more words."
        await until(
            lambda: bot.shown("C1") and html.unescape(bot.shown("C1")[-1]).endswith(last),
            "showed the whole answer",
        )
        calls = [call for call in bot.api.calls if call.method in SENDS]
        shown = [html.unescape(text) for text in bot.shown("C1")]
    assert {call.method for call in calls} == set(SENDS)  # posts and their updates
    assert len(shown) >= 3 and all(SHOWN_PINGS in text for text in shown)
    assert [problems(call) for call in calls] == [[] for _ in calls]
    assert all(call.params.get("parse") == "none" for call in calls)  # stated, not defaulted


async def test_a_private_answer_through_the_response_url_pings_nobody(
    tmp_path, monkeypatch
) -> None:
    async with slack(tmp_path, monkeypatch, [PINGS]) as bot:
        hook = bot.api.hooks_url + "1"
        await bot.post(slash_command("/ask", "shout --private", "U1", "C1", hook, "T-1"))
        await until(lambda: bot.api.calls_to("hook:1"), "answered through the response_url")
        (answer,) = bot.api.calls_to("hook:1")
    assert answer.params["response_type"] == "ephemeral"
    assert html.unescape(answer.params["text"]) == SHOWN_PINGS
    assert problems(answer) == []


async def test_an_answer_through_the_response_url_outside_the_channel_pings_nobody(
    tmp_path, monkeypatch
) -> None:
    async with slack(tmp_path, monkeypatch, [PINGS]) as bot:
        bot.api.fail_next("chat.postMessage", error="not_in_channel")
        hook = bot.api.hooks_url + "2"
        await bot.post(slash_command("/ask", "shout", "U1", "C7", hook, "T-2"))
        await until(lambda: bot.api.calls_to("hook:2"), "answered through the response_url")
        (answer,) = bot.api.calls_to("hook:2")
        (refused,) = bot.api.calls_to("chat.postMessage")
    assert answer.params["response_type"] == "in_channel"
    assert html.unescape(answer.params["text"]) == SHOWN_PINGS
    assert problems(answer) == [] and problems(refused) == []


@pytest.mark.parametrize("via", ["mention", "slash command"])
async def test_an_error_reply_quoting_pings_pings_nobody(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, via: str
) -> None:
    monkeypatch.setattr(test_slack, "SKILLS", [*test_slack.SKILLS, QuoteSkill])
    async with slack(tmp_path, monkeypatch) as bot:
        if via == "mention":
            text = f"<@{BOT_USER_ID}> !quote <!channel> <@U1> @here"
            await bot.event(app_mention(text, "U1", "C1", "1700.2"), "Ev2")
        else:
            hook = bot.api.hooks_url + "3"
            await bot.post(slash_command("/quote", "<!channel> @here", "U1", "C1", hook, "T-3"))
        await until(lambda: bot.api.calls_to("chat.postMessage"), "replied")
        calls = [call for call in bot.api.calls if call.method in SENDS]
    # A mention's Slack markup is read as names; a command's text comes as typed.
    expected = (
        "I can't quote @channel @Ada @here."
        if via == "mention"
        else "I can't quote <!channel> @here."
    )
    assert [html.unescape(text) for text in sent_texts(calls)] == [expected]
    assert [problems(call) for call in calls] == [[]]
