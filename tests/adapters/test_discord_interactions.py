"""Discord slash commands end to end: the real adapter, router, skills and SQLite store.

discord.py parses a realistic INTERACTION_CREATE payload and runs the command
tree as it would on the gateway; only Discord's network edge is faked, at its
two doors: ``AsyncWebhookAdapter.request`` (interaction callbacks, webhook and
follow-up routes) and ``client.http.request`` (REST). The fake answers like
Discord, down to refusing an interaction's callback after 3 seconds and its
token after 15 minutes.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import discord
import pytest
from discord.webhook.async_ import AsyncWebhookAdapter

from confab.adapters.discord import DiscordAdapter, DiscordConfig
from confab.adapters.discord.adapter import CONTINUED
from confab.adapters.discord.commands import option_of
from confab.bot.adapter import AdapterContext
from confab.bot.testing import ChatHarness, EmptyChannelLog, ScriptedBackend
from confab.skills.forget import ForgetSkill
from confab.skills.ping import PingSkill
from confab.skills.qa import AskSkill
from confab.storage.conversations import ConversationKey

APP_ID = 111111111111111111  # the bot user's id too
GUILD_ID = 222222222222222222
CHANNEL_ID = 333333333333333333
USER_ID = 444444444444444444
DM_CHANNEL_ID = 777777777777777777
ADMIN_ROLE_ID = 666666666666666666
CALLBACK = "/interactions/{webhook_id}/{webhook_token}/callback"
ORIGINAL = "/webhooks/{webhook_id}/{webhook_token}/messages/@original"
FOLLOWUP = "/webhooks/{webhook_id}/{webhook_token}"
FOLLOWUP_EDIT = "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"
CHANNEL_SEND = "/channels/{channel_id}/messages"
CHANNEL_EDIT = "/channels/{channel_id}/messages/{message_id}"


def interaction_id(age: timedelta = timedelta(0)) -> int:
    """A snowflake created ``age`` ago (an interaction's token dies 15 minutes after)."""
    return discord.utils.time_snowflake(discord.utils.utcnow() - age) + 4242


def age_of(snowflake: int | str) -> timedelta:
    return discord.utils.utcnow() - discord.utils.snowflake_time(int(snowflake))


def slash(command: str, text: str | None, *, ident: int, user_id: int = USER_ID, roles=()) -> dict:
    """The gateway's INTERACTION_CREATE ``d`` for ``/<command> text:<text>`` in a guild."""
    # The option is named as the skill's usage names it ("question" for ask), or as
    # its declared argument is ("what" for forget).
    declared = {skill.name: skill.arguments for skill in (AskSkill, ForgetSkill, PingSkill)}
    usages = {skill.name: skill.usage for skill in (AskSkill, ForgetSkill, PingSkill)}
    option = option_of(usages.get(command, "<text>"), command)
    name = option.name if option is not None else "text"
    if declared.get(command):
        name = declared[command][0].name
    options = [] if text is None else [{"name": name, "type": 3, "value": text}]
    return {
        "id": str(ident),
        "application_id": str(APP_ID),
        "type": 2,
        "token": f"token-{ident}",
        "version": 1,
        "guild_id": str(GUILD_ID),
        "guild": {"id": str(GUILD_ID), "locale": "en-US", "features": []},
        "channel_id": str(CHANNEL_ID),
        "channel": channel_payload(),
        "member": {
            "user": {"id": str(user_id), "username": "alice", "discriminator": "0",
                     "global_name": "Alice", "avatar": None, "public_flags": 0},
            "roles": [str(role) for role in roles], "joined_at": "2024-01-01T00:00:00+00:00",
            "nick": None, "deaf": False, "mute": False, "flags": 0, "pending": False,
            "permissions": "2248473465835073",
        },
        "data": {"id": "555555555555555555", "name": command, "type": 1, "options": options},
        "locale": "en-US",
        "guild_locale": "en-US",
        "app_permissions": "2248473465835073",
        "entitlements": [],
        "authorizing_integration_owners": {"0": str(GUILD_ID)},
        "context": 0,
        "attachment_size_limit": 26214400,
    }  # fmt: skip


def in_a_dm(payload: dict) -> dict:
    """The same interaction in the user's DM with the bot: no guild, no member."""
    user = payload["member"]["user"]
    dm = {"id": str(DM_CHANNEL_ID), "type": 1, "last_message_id": None, "flags": 0,
          "recipients": [user]}  # fmt: skip
    guildless = {k: v for k, v in payload.items() if k not in ("guild_id", "guild", "member")}
    return {**guildless, "user": user, "channel_id": str(DM_CHANNEL_ID), "channel": dm,
            "context": 1}  # fmt: skip


def channel_payload() -> dict:
    return {"id": str(CHANNEL_ID), "type": 0, "guild_id": str(GUILD_ID), "name": "general",
            "position": 0, "permission_overwrites": [], "nsfw": False, "parent_id": None,
            "last_message_id": None, "rate_limit_per_user": 0, "topic": None,
            "flags": 0}  # fmt: skip


def message_payload(ident: str, content: str, *, webhook: bool) -> dict:
    author = {"id": str(APP_ID), "username": "confab", "discriminator": "0", "bot": True}
    sender = {"webhook_id": str(APP_ID)} if webhook else {}
    return {"id": ident, "channel_id": str(CHANNEL_ID), "type": 0, "content": content,
            "author": author, "attachments": [], "embeds": [], "mentions": [],
            "mention_roles": [], "mention_everyone": False, "pinned": False, "tts": False,
            "timestamp": discord.utils.utcnow().isoformat(), "edited_timestamp": None,
            "flags": 0, "components": [], **sender}  # fmt: skip


def unknown(what: str, code: int) -> discord.NotFound:
    response = SimpleNamespace(status=404, reason="Not Found")
    return discord.NotFound(response, {"code": code, "message": f"Unknown {what}"})  # type: ignore[arg-type]


@dataclass
class Request:
    edge: str  # "webhook" or "rest"
    method: str
    path: str  # the route's template, e.g. CHANNEL_SEND
    url: str
    json: Any


@dataclass
class FakeDiscord:
    """Discord's HTTP side: records every request and keeps what each message shows."""

    requests: list[Request] = field(default_factory=list)
    shown: dict[str, str] = field(default_factory=dict)  # message id -> latest text
    acknowledged: set[str] = field(default_factory=set)  # interaction ids
    _ids: itertools.count = field(default_factory=lambda: itertools.count(900000000000000001))

    def bodies(self) -> list[dict]:
        return [r.json for r in self.requests if r.json and "content" in r.json]

    def routes(self) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.requests]

    def _show(self, key: str | None, body: dict, *, webhook: bool) -> dict:
        ident = key if key and key.isdigit() else str(next(self._ids))
        self.shown[key or ident] = body["content"]
        return message_payload(ident, body["content"], webhook=webhook)

    async def webhook(self, route: Any, session: Any = None, *, payload=None, **_: Any) -> Any:
        self.requests.append(Request("webhook", route.method, route.path, route.url, payload))
        if route.path == CALLBACK:
            if age_of(route.webhook_id) > timedelta(seconds=3):
                raise unknown("interaction", 10062)
            self.acknowledged.add(str(route.webhook_id))
            return {
                "interaction": {"id": str(route.webhook_id), "type": 2},
                "resource": {"type": 5},
            }
        interaction = route.webhook_token.removeprefix("token-")  # named for its interaction
        if interaction not in self.acknowledged or age_of(interaction) > timedelta(minutes=15):
            raise unknown("webhook", 10015)  # a token works once acknowledged, for 15 minutes
        if route.path == ORIGINAL:
            return self._show("@original", payload, webhook=True)
        if route.path == FOLLOWUP_EDIT:
            return self._show(route.url.rsplit("/", 1)[-1], payload, webhook=True)
        return self._show(None, payload, webhook=True)  # a follow-up

    async def rest(self, route: Any, **kwargs: Any) -> Any:
        body = kwargs.get("json")
        self.requests.append(Request("rest", route.method, route.path, route.url, body))
        if (route.method, route.path) == ("GET", "/channels/{channel_id}"):
            return channel_payload()
        if (route.method, route.path) == ("POST", CHANNEL_SEND):
            return self._show(None, body, webhook=False)
        if (route.method, route.path) == ("PATCH", CHANNEL_EDIT):
            return self._show(route.url.rsplit("/", 1)[-1], body, webhook=False)
        if route.method == "PUT" and route.path.startswith("/applications/"):
            return [dict(c, id=str(next(self._ids)), application_id=str(APP_ID), version="1")
                    for c in body]  # fmt: skip
        raise AssertionError(f"unexpected REST call {route.method} {route.path}")


@dataclass
class Bot:
    harness: ChatHarness
    adapter: DiscordAdapter
    discord: FakeDiscord
    errors: list[Exception]
    last: int = 0  # the latest interaction's id

    async def slash(
        self, command: str, text: str | None = None, *, dm: bool = False, **options: Any
    ) -> None:
        """Let discord.py parse the interaction, then wait until the command is answered."""
        before = asyncio.all_tasks()
        ident = self.last = options.pop("ident", None) or interaction_id()
        payload = slash(command, text, ident=ident, **options)
        self.adapter.client._connection.parse_interaction_create(
            in_a_dm(payload) if dm else payload
        )
        invoked = [t for t in asyncio.all_tasks() - before if t.get_name() == "CommandTree-invoker"]
        assert invoked, "the command tree did not run the command"
        await asyncio.gather(*invoked)
        if self.errors:
            raise self.errors[0]

    async def stored(self) -> list[tuple[str, str]]:
        turns = await self.harness.store.recent(ConversationKey("discord", str(CHANNEL_ID)))
        return [(turn.role, turn.text) for turn in turns]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeDiscord:
    fake = FakeDiscord()

    async def webhook(_adapter: AsyncWebhookAdapter, route: Any, *args: Any, **kwargs: Any) -> Any:
        return await fake.webhook(route, *args, **kwargs)

    monkeypatch.setattr(AsyncWebhookAdapter, "request", webhook)
    return fake


@asynccontextmanager
async def confab(
    tmp_path: Path,
    fake: FakeDiscord,
    replies: Sequence[str] = ("This is a scripted answer.",),
    skills: Sequence[type] = (AskSkill, PingSkill),
    delay_s: float = 0.0,
    **config: Any,
) -> AsyncIterator[Bot]:
    """Confab's core over SQLite, behind the real Discord adapter, its HTTP faked."""
    model = ScriptedBackend(list(replies), delay_s=delay_s)
    async with ChatHarness(skills, tmp_path, model=model) as harness:
        settings = DiscordConfig(**{"edit_interval_s": 0.2, **config})
        context = AdapterContext(settings, "confab", EmptyChannelLog(), harness.router.skills.infos)
        adapter = DiscordAdapter(context)
        adapter.bind(harness.router.handle)
        client = adapter.client
        client._connection.application_id = APP_ID  # the adapter leaves it to login()
        await client._async_setup_hook()  # what `async with client` does: binds the loop
        client._connection.user = discord.ClientUser(
            state=client._connection,
            data={"id": str(APP_ID), "username": "confab", "discriminator": "0", "avatar": None,
                  "bot": True},
        )  # fmt: skip
        client.http.request = fake.rest  # type: ignore[method-assign]
        errors: list[Exception] = []

        async def on_error(_interaction: discord.Interaction, error: Exception) -> None:
            errors.append(error)

        client.tree.on_error = on_error  # type: ignore[method-assign]
        try:
            yield Bot(harness, adapter, fake, errors)
        finally:
            await client.close()


def pings_nobody(body: dict) -> bool:
    """Discord pings nobody for this message: no @everyone, users, roles or replied-to."""
    mentions = body["allowed_mentions"]
    return (
        mentions["parse"] == []
        and not {"users", "roles"} & mentions.keys()
        and (mentions.get("replied_user", False) is False)
    )


def fence_lines(text: str) -> int:
    return sum(line.lstrip().startswith("```") for line in text.split("\n"))


def rejoin(parts: list[str]) -> str:
    """The messages as one text, without the fence lines added where a code block was cut."""
    text = parts[0]
    for part in parts[1:]:
        if part.startswith("```python\n") and text.endswith("\n```"):
            text, part = text.removesuffix("```"), part.removeprefix("```python\n")
        text += part
    return text


async def test_ask_is_deferred_then_answered_in_the_original_response(tmp_path, fake):
    answer = "Paris is the capital of France, and has been for a long while."
    async with confab(tmp_path, fake, [answer]) as bot:
        await bot.slash("ask", "hello")

        assert fake.requests[0].path == CALLBACK and fake.requests[0].json == {"type": 5}
        assert fake.requests[0].url.endswith(f"/interactions/{bot.last}/token-{bot.last}/callback")
        assert set(fake.routes()[1:]) == {("PATCH", ORIGINAL)}
        assert fake.bodies()[0]["content"] == "Paris"  # streamed in, word by word
        assert fake.bodies()[-1]["content"] == answer
        assert all(pings_nobody(body) for body in fake.bodies())
        assert await bot.stored() == [("user", "/ask hello"), ("assistant", answer)]


async def test_a_long_answer_continues_in_follow_ups_with_code_fences_balanced(tmp_path, fake):
    prose = " ".join(f"Sentence {n} says a little about the loop below." for n in range(18))
    code = "\n".join(f"    total += compute_item({n}, scale=2)  # step {n}" for n in range(36))
    rest = "\n\n".join(" ".join(f"Word{p}x{n}" for n in range(120)) for p in range(2))
    answer = f"{prose}\n\n```python\ndef run():\n{code}\n```\n\n{rest}"
    assert 4000 < len(answer) < 5000 and answer.index("```python") < 2000 < answer.index("\n```\n")
    async with confab(tmp_path, fake, [answer]) as bot:
        await bot.slash("ask", "show me the loop")

        messages = list(fake.shown.values())
        assert next(iter(fake.shown)) == "@original" and len(messages) == 3
        assert fake.routes().count(("POST", FOLLOWUP)) == 2
        assert all(r.url.endswith(f"/webhooks/{APP_ID}/token-{bot.last}")
                   for r in fake.requests if r.path == FOLLOWUP)  # fmt: skip
        assert all(len(body["content"]) <= 2000 for body in fake.bodies())
        assert all(fence_lines(text) % 2 == 0 for text in messages)
        assert messages[0].endswith("\n```") and messages[1].startswith("```python\n")
        assert rejoin(messages) == answer
        assert all(pings_nobody(body) for body in fake.bodies())


async def test_mentions_in_model_output_ping_nobody(tmp_path, fake):
    answer = "Sure: @everyone <@123> <@&456> look at this."
    async with confab(tmp_path, fake, [answer]) as bot:
        await bot.slash("ask", "ping them all")

        assert fake.bodies()[-1]["content"] == answer
        assert all(pings_nobody(body) for body in fake.bodies())


async def test_an_expired_interaction_is_answered_in_the_channel(tmp_path, fake):
    answer = "Late, but here: @everyone <@123>."
    async with confab(tmp_path, fake, [answer]) as bot:
        await bot.slash("ask", "still there?", ident=interaction_id(timedelta(minutes=16)))

        webhook = [(r.method, r.path) for r in fake.requests if r.edge == "webhook"]
        assert webhook == [("POST", CALLBACK)]  # the defer, refused; nothing after it
        sends = [r for r in fake.requests if (r.method, r.path) == ("POST", CHANNEL_SEND)]
        assert len(sends) == 1 and sends[0].url.endswith(f"/channels/{CHANNEL_ID}/messages")
        assert list(fake.shown.values()) == [answer]
        assert all(pings_nobody(body) for body in fake.bodies())
        assert await bot.stored() == [("user", "/ask still there?"), ("assistant", answer)]


async def test_a_command_acknowledged_too_late_is_answered_in_the_channel(tmp_path, fake):
    async with confab(tmp_path, fake, ["Here you are."]) as bot:
        await bot.slash("ask", "slow gateway", ident=interaction_id(timedelta(seconds=5)))

        assert [r.path for r in fake.requests if r.edge == "webhook"] == [CALLBACK]
        assert list(fake.shown.values()) == ["Here you are."]
        assert await bot.stored() == [("user", "/ask slow gateway"), ("assistant", "Here you are.")]


@pytest.mark.parametrize(
    ("guilds", "route"),
    [
        ([GUILD_ID], f"/applications/{APP_ID}/guilds/{GUILD_ID}/commands"),
        ([], f"/applications/{APP_ID}/commands"),  # global
    ],
)
async def test_slash_commands_are_synced_at_start(tmp_path, fake, guilds, route):
    async with confab(tmp_path, fake, command_guild_ids=guilds) as bot:
        await bot.adapter.client.setup_hook()

        (put,) = fake.requests
        assert put.method == "PUT" and put.url.endswith(route)
        commands = {command["name"]: command for command in put.json}
        assert sorted(commands) == ["ask", "ping"]
        (question,) = commands["ask"]["options"]  # what ask takes, and it needs it
        assert (question["name"], question["type"], question["required"]) == ("question", 3, True)
        assert commands["ping"]["options"] == []  # ping takes nothing


async def test_one_guild_refusing_commands_does_not_stop_the_others(tmp_path, fake):
    other_guild = GUILD_ID + 1
    async with confab(tmp_path, fake, command_guild_ids=[GUILD_ID, other_guild]) as bot:

        async def rest(route: Any, **kwargs: Any) -> Any:
            if str(GUILD_ID) in route.url:  # the bot was removed from this one
                response = SimpleNamespace(status=403, reason="Forbidden")
                raise discord.Forbidden(response, {"code": 50001, "message": "Missing Access"})  # type: ignore[arg-type]
            return await fake.rest(route, **kwargs)

        bot.adapter.client.http.request = rest  # type: ignore[method-assign]
        await bot.adapter.client.setup_hook()

        (put,) = fake.requests
        assert put.url.endswith(f"/applications/{APP_ID}/guilds/{other_guild}/commands")


async def test_an_answer_outliving_the_token_continues_in_the_channel(tmp_path, fake, monkeypatch):
    # Tokens live 15 minutes; here the adapter's margin is made to run out mid-stream.
    monkeypatch.setattr(
        "confab.adapters.discord.adapter.INTERACTION_LIFETIME", timedelta(milliseconds=600)
    )
    answer = " ".join(f"word{n}" for n in range(60))
    async with confab(tmp_path, fake, [answer], delay_s=0.02) as bot:
        await bot.slash("ask", "take your time")

        channel_posts = [r for r in fake.requests if (r.method, r.path) == ("POST", CHANNEL_SEND)]
        assert len(channel_posts) == 1
        assert fake.shown["@original"] == CONTINUED
        (moved_id,) = [key for key in fake.shown if key != "@original"]
        assert fake.shown[moved_id] == answer  # later edits went to the channel message
        assert all(pings_nobody(body) for body in fake.bodies() if "allowed_mentions" in body)
        assert await bot.stored() == [("user", "/ask take your time"), ("assistant", answer)]


async def test_commands_are_not_synced_when_turned_off(tmp_path, fake):
    async with confab(tmp_path, fake, sync_commands=False) as bot:
        await bot.adapter.client.setup_hook()

        assert fake.requests == []


async def test_ping_answers_pong(tmp_path, fake):
    async with confab(tmp_path, fake) as bot:
        await bot.slash("ping")

        assert fake.routes() == [("POST", CALLBACK), ("PATCH", ORIGINAL)]
        assert fake.shown == {"@original": "pong"}


async def test_only_an_admin_can_forget_the_channel(tmp_path, fake):
    async with confab(tmp_path, fake, skills=[ForgetSkill], admin_user_ids=[1234]) as bot:
        await bot.slash("forget", "channel")
        assert fake.shown["@original"] == "Only an admin can run `/forget channel`."

        await bot.slash("forget", "channel", user_id=1234)
        assert fake.shown["@original"].startswith("Done: I deleted this channel's history")


async def test_an_admin_role_counts_in_a_cached_guild(tmp_path, fake):
    named = {GUILD_ID: "@everyone", ADMIN_ROLE_ID: "mods"}
    roles = [{"id": str(ident), "name": name, "position": position, "permissions": "0"}
             for position, (ident, name) in enumerate(named.items())]  # fmt: skip
    async with confab(tmp_path, fake, skills=[ForgetSkill], admin_role_ids=[ADMIN_ROLE_ID]) as bot:
        state = bot.adapter.client._connection
        state._add_guild(
            discord.Guild(data={"id": str(GUILD_ID), "name": "g", "roles": roles}, state=state)
        )

        await bot.slash("forget", "channel", roles=[ADMIN_ROLE_ID])

        assert fake.shown["@original"].startswith("Done: I deleted this channel's history")


async def test_a_slash_command_in_a_dm_is_direct_and_in_a_guild_is_not(tmp_path, fake):
    async with confab(tmp_path, fake) as bot:
        seen: list[Any] = []
        router = bot.harness.router.handle

        async def handler(message: Any, adapter: Any) -> None:
            seen.append(message)
            await router(message, adapter)

        bot.adapter.bind(handler)
        await bot.slash("ping")
        await bot.slash("ping", dm=True)
    assert [(m.channel, m.direct) for m in seen] == [
        (str(CHANNEL_ID), False),
        (str(DM_CHANNEL_ID), True),
    ]
    assert fake.routes().count(("PATCH", ORIGINAL)) == 2  # both answered
