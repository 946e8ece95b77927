"""The loopback Slack behaves as the real slack_sdk client expects, so Slack adapter
tests can trust it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from tests.adapters.slack_fake import FakeSlack, SlackCall, running_fake_slack
from tests.adapters.slack_payloads import (
    app_mention,
    event_callback,
    json_body,
    sign,
    slash_command,
)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with running_fake_slack() as fake:
        yield fake


@pytest.fixture
def client(fake: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-test", base_url=fake.base_url)


async def test_auth_test_names_the_bot_and_records_the_token(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    response = await client.auth_test()

    assert response["user_id"] == "UBOT"
    assert response["bot_id"] == "BBOT"
    assert [(call.method, call.token) for call in fake.calls] == [("auth.test", "xoxb-test")]


async def test_an_edited_post_reads_back_edited_in_history(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="C1", text="thinking…")
    await client.chat_update(channel="C1", ts=posted["ts"], text="the answer")

    history = await client.conversations_history(channel="C1")

    assert [(m["ts"], m["text"], m["bot_id"]) for m in history["messages"]] == [
        (posted["ts"], "the answer", "BBOT")
    ]
    # slack_sdk sends chat.* as JSON; the fake reads JSON, form and query alike.
    assert fake.calls_to("chat.update")[0].params["text"] == "the answer"


async def test_history_pages_newest_first_through_cursors(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    for n in range(5):
        fake.seed("C1", "U1", f"message {n}")

    texts: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await client.conversations_history(channel="C1", limit=2, cursor=cursor)
        texts += [m["text"] for m in page["messages"]]
        pages += 1
        cursor = page["response_metadata"]["next_cursor"]
        if not cursor:
            break

    assert pages == 3
    assert texts == [f"message {n}" for n in reversed(range(5))]


async def test_replies_list_the_parent_then_the_thread_oldest_first(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    parent = fake.seed("C1", "U1", "question")
    await client.chat_postMessage(channel="C1", text="answer", thread_ts=parent.ts)
    fake.seed("C1", "U1", "thanks", thread_ts=parent.ts)

    replies = await client.conversations_replies(channel="C1", ts=parent.ts)
    history = await client.conversations_history(channel="C1")

    assert [m["text"] for m in replies["messages"]] == ["question", "answer", "thanks"]
    assert [(m["text"], m["reply_count"]) for m in history["messages"]] == [("question", 2)]


async def test_users_info_knows_seeded_people_only(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_user("U1", "ada", real_name="Ada Lovelace", display_name="ada")

    found = await client.users_info(user="U1")
    with pytest.raises(SlackApiError) as missing:
        await client.users_info(user="U404")

    assert found["user"]["profile"]["real_name"] == "Ada Lovelace"
    assert missing.value.response["error"] == "user_not_found"


async def test_rate_limit_raises_by_default(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.fail_next("chat.postMessage", status=429, retry_after=1)

    # slack_sdk's default retry handlers cover only connection errors, not 429.
    with pytest.raises(SlackApiError) as limited:
        await client.chat_postMessage(channel="C1", text="hi")

    assert limited.value.response.status_code == 429
    assert limited.value.response.headers["Retry-After"] == "1"
    assert limited.value.response["error"] == "ratelimited"
    assert fake.messages == {}


async def test_rate_limit_is_retried_when_the_handler_is_added(fake: FakeSlack) -> None:
    client = AsyncWebClient(
        token="xoxb-test",
        base_url=fake.base_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    fake.fail_next("chat.postMessage", status=429, retry_after=0)

    posted = await client.chat_postMessage(channel="C1", text="hi")

    assert posted["ok"]
    assert len(fake.calls_to("chat.postMessage")) == 2


async def test_injected_errors_and_unknown_methods_answer_ok_false(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    fake.fail_next("chat.postMessage", error="channel_not_found")

    with pytest.raises(SlackApiError) as failed:
        await client.chat_postMessage(channel="C404", text="hi")
    with pytest.raises(SlackApiError) as unknown:
        await client.api_call("pins.add", data={"channel": "C1"})
    with pytest.raises(SlackApiError) as incomplete:
        await client.api_call("chat.update", json={"channel": "C1"})

    assert failed.value.response["error"] == "channel_not_found"
    assert unknown.value.response["error"] == "unknown_method"
    assert incomplete.value.response["error"] == "invalid_arguments"
    assert fake.calls[-2] == SlackCall("pins.add", {"channel": "C1"}, "xoxb-test")


def test_signed_bodies_verify_with_slack_sdk() -> None:
    verifier = SignatureVerifier("s3cret")
    event = app_mention("<@UBOT> hello", user="U1", channel="C1", ts="1700000000.000100")
    for body in (
        json_body(event_callback(event, "Ev1")),
        slash_command("/ask", "why?", "U1", "C1", "https://hooks.slack.test/r", "t1"),
    ):
        assert verifier.is_valid_request(body, sign(body, "s3cret"))
        assert not verifier.is_valid_request(body, sign(body, "wrong"))

    stale = sign(b"{}", "s3cret", timestamp=int(time.time()) - 600)
    assert not verifier.is_valid_request(b"{}", stale)
