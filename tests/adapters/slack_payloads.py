"""Signing and real-format payloads for Slack HTTP-mode tests: what Slack posts to an
app (Events API envelopes, slash commands), signed as Slack signs them."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from tests.adapters.slack_fake import APP_ID, BOT_USER_ID, TEAM_ID, VERIFICATION_TOKEN, Json


def sign(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack adds to a request it posts to the app, signed with `secret`."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + ts.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def event_callback(event: Mapping[str, Any], event_id: str, team_id: str = TEAM_ID) -> Json:
    """The Events API envelope around `event`, as Slack posts it."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "api_app_id": APP_ID,
        "event": dict(event),
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": BOT_USER_ID,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
    }


def _message_event(kind: str, text: str, user: str, channel: str, ts: str) -> Json:
    return {
        "type": kind,
        "user": user,
        "text": text,
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
        "team": TEAM_ID,
    }


def app_mention(text: str, user: str, channel: str, ts: str, thread_ts: str | None = None) -> Json:
    """An `app_mention` event; `text` is sent as is, so include `<@UBOT>` yourself."""
    event = _message_event("app_mention", text, user, channel, ts)
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    return event


def im_message(text: str, user: str, channel: str, ts: str) -> Json:
    """A `message` event in a direct message with the bot."""
    return {**_message_event("message", text, user, channel, ts), "channel_type": "im"}


def thread_message(
    text: str,
    user: str,
    channel: str,
    ts: str,
    thread_ts: str,
    parent_user_id: str = BOT_USER_ID,
    channel_type: str = "channel",
) -> Json:
    """A `message` event replying in the thread started at `thread_ts`."""
    return {
        **_message_event("message", text, user, channel, ts),
        "channel_type": channel_type,
        "thread_ts": thread_ts,
        "parent_user_id": parent_user_id,
    }


def file_share(
    text: str,
    user: str,
    channel: str,
    ts: str,
    files: list[Json],
    channel_type: str = "channel",
) -> Json:
    """A `message` event of subtype `file_share`: files (Slack file objects) posted."""
    return {
        **_message_event("message", text, user, channel, ts),
        "subtype": "file_share",
        "channel_type": channel_type,
        "files": files,
        "upload": False,
        "display_as_bot": False,
    }


def url_verification(challenge: str) -> Json:
    return {"token": VERIFICATION_TOKEN, "challenge": challenge, "type": "url_verification"}


def slash_command(
    command: str,
    text: str,
    user_id: str,
    channel_id: str,
    response_url: str,
    trigger_id: str,
    channel_name: str = "general",
) -> bytes:
    """A slash command invocation, form-encoded as Slack posts it; in a DM with the bot
    its ``channel_name`` is ``"directmessage"``."""
    fields = {
        "token": VERIFICATION_TOKEN,
        "team_id": TEAM_ID,
        "team_domain": "test",
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_id.lower(),
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id,
    }
    return urlencode(fields).encode()


def json_body(payload: Mapping[str, Any]) -> bytes:
    """The raw JSON body for an Events API payload (sign these exact bytes)."""
    return json.dumps(payload).encode()
