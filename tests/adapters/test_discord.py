"""The Discord adapter driven in-process by dpytest: real discord.py objects and Confab's
real router and storage; only Discord's network is simulated."""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import discord
import discord.ext.test as dpytest
import pytest
from discord.ext.test import backend, callbacks, factories

from confab.adapters.discord import INTENT_HELP, DiscordAdapter, DiscordConfig
from confab.bot.adapter import AdapterContext
from confab.bot.config import RouterConfig, build_config_model, load_config
from confab.bot.errors import AdapterError
from confab.bot.llm.backend import ChatMessage
from confab.bot.messages import SentMessage
from confab.bot.skill import Skill
from confab.bot.testing import ChatHarness, EmptyChannelLog, ScriptedBackend
from confab.contract import AdapterContract
from confab.skills.forget import ForgetSkill
from confab.skills.help import HelpSkill
from confab.skills.ping import PingSkill
from confab.skills.qa import AskSkill
from confab.skills.summarise import SummariseSkill
from confab.storage.conversations import ConversationKey

SKILLS = [AskSkill, PingSkill, HelpSkill, SummariseSkill]


@dataclass
class Discord:
    """A bot on a simulated Discord: one guild, one text channel, one member."""

    adapter: DiscordAdapter
    chat: ChatHarness
    sends: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (id, JSON body)
    edits: list[tuple[float, int, dict[str, Any]]] = field(default_factory=list)
    channels: dict[int, int] = field(default_factory=dict)  # message id -> channel id

    @property
    def channel(self) -> discord.TextChannel:
        return dpytest.get_config().channels[0]  # type: ignore[no-any-return]

    @property
    def member(self) -> discord.Member:
        return dpytest.get_config().members[0]  # type: ignore[no-any-return]

    async def say(self, text: str, **where: Any) -> discord.Message:
        options = {"channel": self.channel, "member": self.member, **where}
        return await dpytest.message(text, **options)  # type: ignore[no-any-return]

    def content(self, message_id: str) -> str:
        """What the channel shows of one message the bot posted, edits applied."""
        return dict(zip(self.ids(), self.shown(), strict=True))[int(message_id)]

    def ids(self) -> list[int]:
        return [ident for ident, _ in self.sends]

    def shown(self) -> list[str]:
        """What the channel shows of each message the bot posted, edits applied."""
        latest = {ident: body["content"] for ident, body in self.sends}
        for _, ident, body in self.edits:
            latest[ident] = body.get("content", latest[ident])
        return list(latest.values())

    def bodies(self) -> list[dict[str, Any]]:
        """Every JSON body the bot sent, posts and edits."""
        return [body for _, body in self.sends] + [body for _, _, body in self.edits]


@asynccontextmanager
async def discord_bot(
    tmp_path: Path,
    replies: Sequence[str] = ("Paris.",),
    delay_s: float = 0.0,
    router: RouterConfig | None = None,
    skills: Sequence[type[Skill]] = SKILLS,
    members: Sequence[str] = ("ada",),
    **config: Any,
) -> AsyncIterator[Discord]:
    model = ScriptedBackend(replies, delay_s=delay_s)
    async with ChatHarness(skills, tmp_path, model=model, router_config=router) as chat:
        context = AdapterContext(
            DiscordConfig(**config), "confab", EmptyChannelLog(), chat.router.skills.infos
        )
        adapter = DiscordAdapter(context)
        adapter.bind(chat.router.handle)
        # dpytest resolves mentions through the member cache, which in production
        # needs no privileged members intent; the simulated guild needs it.
        state = adapter.client._connection
        state._intents.members = True
        state.member_cache_flags = discord.MemberCacheFlags.from_intents(state._intents)
        await adapter.client._async_setup_hook()
        dpytest.configure(adapter.client, members=list(members))
        world = Discord(adapter, chat)
        capture(world)
        try:
            yield world
        finally:
            await dpytest.empty_queue()
            callbacks.remove_callback("edit_message")


def capture(world: Discord) -> None:
    """Record the bodies dpytest's fake HTTP would send, allowed_mentions included."""
    http = world.adapter.client.http
    original = http.send_message

    async def send_message(channel_id: int, *, params: Any) -> Any:
        # dpytest reads its caller's local `channel`; keep it visible one frame up.
        channel = sys._getframe(1).f_locals.get("channel")  # noqa: F841
        data = await original(channel_id, params=params)
        world.sends.append((int(data["id"]), params.payload))
        world.channels[int(data["id"])] = int(channel_id)
        return data

    http.send_message = send_message  # type: ignore[method-assign]

    async def on_edit(channel: Any, message: Any, fields: dict[str, Any]) -> None:
        world.edits.append((time.monotonic(), message.id, fields["params"].payload))

    callbacks.set_callback(on_edit, "edit_message")


async def test_a_mention_is_answered_in_the_channel(tmp_path: Path) -> None:
    async with discord_bot(tmp_path, ["The capital is Paris."]) as world:
        bot_user = world.adapter.client.user
        assert bot_user is not None
        await world.say(f"{bot_user.mention} what is the capital of France?")
        assert world.shown() == ["The capital is Paris."]
        turns = await world.chat.store.recent(ConversationKey("discord", str(world.channel.id)))
    assert [(t.role, t.text) for t in turns] == [
        ("user", "what is the capital of France?"),
        ("assistant", "The capital is Paris."),
    ]


async def test_prefix_commands_are_answered_without_a_mention(tmp_path: Path) -> None:
    async with discord_bot(tmp_path, ["Two."]) as world:
        await world.say("!ping")
        await world.say("!ask one plus one?")
        await world.say("just chatting")  # not addressed: stored, not answered
        assert world.shown() == ["pong", "Two."]
        stored = await world.chat.store.channel_messages(
            ConversationKey("discord", str(world.channel.id))
        )
    assert [t.text for t in stored if t.role == "user"] == [
        "!ping",
        "!ask one plus one?",
        "just chatting",
    ]


async def test_a_direct_message_is_answered_in_the_dm(tmp_path: Path) -> None:
    async with discord_bot(tmp_path, ["Hello in private."]) as world:
        dm = await world.member.create_dm()
        await world.say("hi there", channel=dm)
        assert world.shown() == ["Hello in private."]
        assert isinstance(dpytest.get_message().channel, discord.DMChannel)
        turns = await world.chat.store.recent(ConversationKey("discord", str(dm.id)))
    assert [t.text for t in turns] == ["hi there", "Hello in private."]


async def test_a_long_answer_is_split_under_2000_characters_with_fences_balanced(
    tmp_path: Path,
) -> None:
    code = "\n".join(f"    total += {n}  # step {n}" for n in range(90))
    block = "```python\ndef add():\n" + code + "\n```\n"
    answer = "Here you go. " * 80 + "\n\n" + block + "Done. " * 200
    assert 4500 < len(answer) < 6000
    async with discord_bot(tmp_path, [answer], edit_interval_s=0.2) as world:
        await world.say("!ask write a long one")
        messages = world.shown()
    assert len(messages) == 3
    assert all(len(text) <= 2000 for text in messages)
    assert all(sum(line.startswith("```") for line in m.splitlines()) % 2 == 0 for m in messages)
    # The cut inside the code block closed it and reopened it; nothing else changed.
    first, second, third = messages
    assert second.endswith("\n```") and third.startswith("```python\n")
    assert first + second.removesuffix("```") + third.removeprefix("```python\n") == answer


async def test_model_output_never_pings_anyone(tmp_path: Path) -> None:
    async with discord_bot(tmp_path, ["@everyone @here <@&42> <@1234> look!"]) as world:
        await world.say("!ask make some noise")
        bodies = world.bodies()
    assert bodies
    for body in bodies:  # nobody, not even the asker through the reply reference
        assert body["allowed_mentions"]["parse"] == []
        assert not body["allowed_mentions"].get("replied_user")
        assert not {"users", "roles"} & set(body["allowed_mentions"])
    assert world.shown() == ["@everyone @here <@&42> <@1234> look!"]


async def test_other_bots_are_ignored_unless_configured(tmp_path: Path) -> None:
    for ignore, answered in ((True, []), (False, ["Beep."])):
        router = RouterConfig(ignore_bots=ignore)
        async with discord_bot(tmp_path / str(ignore), ["Beep."], router=router) as world:
            guild = dpytest.get_config().guilds[0]
            user = backend.get_state().store_user(
                factories.make_user_dict("OtherBot", "0042", None, bot=True)
            )
            other = backend.make_member(user, guild)
            await world.say("!ask hello bot", member=other)
            assert world.shown() == answered


async def test_edits_come_no_faster_than_the_configured_interval(tmp_path: Path) -> None:
    words = " ".join(f"word{n}" for n in range(60))
    async with discord_bot(tmp_path, [words], edit_interval_s=0.2, delay_s=0.01) as world:
        await world.say("!ask stream slowly")
        times = [at for at, _, _ in world.edits]
        assert world.shown() == [words]
    assert len(times) >= 2
    assert all(later - earlier >= 0.19 for earlier, later in itertools.pairwise(times))
    assert world.adapter.limits.min_edit_interval_s == 0.2


async def test_a_message_replayed_after_a_reconnect_is_answered_once(tmp_path: Path) -> None:
    async with discord_bot(tmp_path, ["Once."]) as world:
        message = await world.say("!ask are you there?")
        world.adapter.client.dispatch("message", message)  # the gateway replays it
        await dpytest.empty_queue()
        assert world.shown() == ["Once."]


async def test_a_thread_is_a_conversation_of_its_own(tmp_path: Path) -> None:
    async with discord_bot(tmp_path, ["In the channel.", "In the thread."]) as world:
        thread = open_thread(world.channel)
        await world.say("!ask out here")
        await world.say("!ask in here", channel=thread)
        assert list(world.channels.values()) == [world.channel.id, thread.id]
        key = ConversationKey("discord", str(world.channel.id), str(thread.id))
        in_thread = await world.chat.store.recent(key)
    assert [t.text for t in in_thread] == ["!ask in here", "In the thread."]
    assert world.chat.model.prompts[1][1:] == [ChatMessage("user", "in here")]  # type: ignore[attr-defined]


async def test_messages_in_a_thread_the_bot_opened_are_addressed_to_it(tmp_path: Path) -> None:
    async with discord_bot(tmp_path, ["Sure."]) as world:
        user = world.adapter.client.user
        assert user is not None
        thread = open_thread(world.channel)
        thread.owner_id = user.id
        await world.say("and one more thing", channel=thread)
        assert world.shown() == ["Sure."]


async def test_with_reply_in_thread_a_long_answer_continues_in_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[tuple[int, str]] = []

    async def create_thread(message: discord.Message, *, name: str, **_: Any) -> discord.Thread:
        opened.append((message.id, name))  # Discord's side of it: the thread exists
        return open_thread(message.channel, name)  # type: ignore[arg-type]

    monkeypatch.setattr(discord.Message, "create_thread", create_thread)
    answer = "A long story. " * 150  # 2,100 characters: two messages
    async with discord_bot(tmp_path, [answer], reply_in_thread=True) as world:
        await world.say("!ask tell me everything")
        first, second = world.ids()
        thread_id = world.channels[second]
    assert world.channels[first] == world.channel.id and thread_id != world.channel.id
    assert opened == [(first, "tell me everything")]


async def test_a_thread_that_cannot_be_opened_leaves_the_answer_in_the_channel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def create_thread(message: discord.Message, **_: Any) -> discord.Thread:
        response: Any = type("Response", (), {"status": 403, "reason": "Forbidden"})()
        raise discord.Forbidden(response, {"code": 50013, "message": "Missing Permissions"})

    monkeypatch.setattr(discord.Message, "create_thread", create_thread)
    answer = "A long story. " * 150
    async with discord_bot(tmp_path, [answer], reply_in_thread=True) as world:
        await world.say("!ask tell me everything")
        assert "".join(world.shown()) == answer
        assert set(world.channels.values()) == {world.channel.id}


async def test_a_replay_during_an_answer_leaves_that_answer_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []

    async def create_thread(message: discord.Message, *, name: str, **_: Any) -> discord.Thread:
        opened.append(name)
        return open_thread(message.channel, name)  # type: ignore[arg-type]

    monkeypatch.setattr(discord.Message, "create_thread", create_thread)
    answer = "A long story. " * 150
    async with discord_bot(tmp_path, [answer], delay_s=0.002, reply_in_thread=True) as world:
        asking = asyncio.create_task(world.say("!ask tell me everything"))
        while not world.sends:  # noqa: ASYNC110 - until the answer has started
            await asyncio.sleep(0.01)
        history = [m async for m in world.channel.history(limit=10)]
        (question,) = [m for m in history if m.author.id == world.member.id]
        world.adapter.client.dispatch("message", question)  # the gateway replays it
        await asking
        await dpytest.empty_queue()
        assert opened == ["tell me everything"]  # the answer still knew where it was going
        assert "".join(world.shown()) == answer


async def test_a_custom_prefix_works_with_aliases(tmp_path: Path) -> None:
    async with discord_bot(tmp_path, ["Yes."], command_prefix="?") as world:
        await world.say("?q is this on?")
        await world.say("? q spaced out")  # not a command, and not addressed: chatter
        assert world.shown() == ["Yes."]


async def test_starting_retries_while_discord_cannot_be_reached(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONFAB_DISCORD_TOKEN", "token")
    adapter = adapter_for()
    attempts: list[str] = []
    waits: list[float] = []

    async def start(token: str, *, reconnect: bool = True) -> None:
        attempts.append(token)
        if len(attempts) < 3:
            raise OSError("network is unreachable")

    async def pause(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(adapter.client, "start", start)
    monkeypatch.setattr(adapter, "_pause", pause)
    await adapter.run(noop_handler)
    assert attempts == ["token"] * 3
    assert len(waits) == 2 and 1 <= waits[0] <= 3 and 2 <= waits[1] <= 6  # backoff, jittered


async def test_history_is_oldest_first_with_commands_and_own_messages_marked(
    tmp_path: Path,
) -> None:
    async with discord_bot(tmp_path, ["- they chat."]) as world:
        await world.say("first thing")
        await world.say("!ping")
        await world.say("second thing")
        history = await world.adapter.history(str(world.channel.id), limit=10)
        await world.say("!summarise")
        summary = world.shown()[-1]
    assert [(m.text, m.command, m.from_self) for m in history] == [
        ("first thing", None, False),
        ("!ping", "ping", False),
        ("pong", None, True),
        ("second thing", None, False),
    ]
    assert summary.startswith("**Summary of the last 50 messages** (2 messages)")


async def test_a_member_with_an_admin_role_may_run_admin_commands(tmp_path: Path) -> None:
    async with discord_bot(tmp_path, skills=[*SKILLS, ForgetSkill]) as world:
        guild = dpytest.get_config().guilds[0]
        role = backend.make_role("Moderators", guild)
        world.adapter.config.admin_role_ids.append(role.id)
        await world.say("!forget channel")
        await dpytest.add_role(world.member, role)
        await world.say("!forget channel")
        refused, done = world.shown()
    assert refused == "Only an admin can run `!forget channel`."
    assert done.startswith("Done: I deleted this channel's history")


def adapter_for(**config: Any) -> DiscordAdapter:
    return DiscordAdapter(AdapterContext(DiscordConfig(**config), "confab", EmptyChannelLog()))


async def test_starting_without_a_token_says_which_variable_to_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MY_DISCORD_TOKEN", raising=False)
    with pytest.raises(AdapterError, match="set the environment variable MY_DISCORD_TOKEN"):
        await adapter_for(token_env="MY_DISCORD_TOKEN").run(noop_handler)


@pytest.mark.parametrize(
    ("refusal", "explained"),
    [
        (discord.PrivilegedIntentsRequired(None), INTENT_HELP),
        (discord.LoginFailure("Improper token"), "refused the bot token in CONFAB_DISCORD_TOKEN"),
    ],
)
async def test_discord_refusing_the_start_is_explained(
    monkeypatch: pytest.MonkeyPatch, refusal: Exception, explained: str
) -> None:
    monkeypatch.setenv("CONFAB_DISCORD_TOKEN", "not-a-real-token")
    adapter = adapter_for()

    async def start(token: str, *, reconnect: bool = True) -> None:
        raise refusal

    monkeypatch.setattr(adapter.client, "start", start)
    with pytest.raises(AdapterError) as caught:
        await adapter.run(noop_handler)
    assert explained in str(caught.value)
    assert "not-a-real-token" not in str(caught.value)


async def test_proxies_are_set_before_login(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFAB_DISCORD_TOKEN", "token")
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    gateway = discord.gateway.DiscordWebSocket
    monkeypatch.setattr(gateway, "DEFAULT_GATEWAY", gateway.DEFAULT_GATEWAY)
    adapter = adapter_for(
        api_base_url="http://127.0.0.1:9000/api/v10/", gateway_url="ws://127.0.0.1:9001"
    )
    seen: list[tuple[str, str, str]] = []

    async def start(token: str, *, reconnect: bool = True) -> None:
        seen.append((token, discord.http.Route.BASE, str(gateway.DEFAULT_GATEWAY)))

    monkeypatch.setattr(adapter.client, "start", start)
    await adapter.run(noop_handler)
    assert seen == [("token", "http://127.0.0.1:9000/api/v10", "ws://127.0.0.1:9001")]


async def noop_handler(message: Any, adapter: Any) -> None:
    return None


def open_thread(parent: discord.TextChannel, name: str = "a thread") -> discord.Thread:
    """A public thread under ``parent`` in the simulated guild (dpytest has none of its own)."""
    guild = parent.guild
    state = backend.get_state()
    data: Any = {
        "id": str(discord.utils.time_snowflake(discord.utils.utcnow()) + 7),
        "guild_id": str(guild.id),
        "parent_id": str(parent.id),
        "owner_id": str(dpytest.get_config().members[0].id),
        "name": name,
        "type": 11,
        "message_count": 0,
        "member_count": 1,
        "rate_limit_per_user": 0,
        "thread_metadata": {
            "archived": False,
            "auto_archive_duration": 60,
            "archive_timestamp": discord.utils.utcnow().isoformat(),
            "locked": False,
        },
    }
    thread = discord.Thread(guild=guild, state=state, data=data)
    guild._add_thread(thread)
    return thread


@dataclass
class DiscordUnderTest:
    world: Discord
    thread: str

    @property
    def adapter(self) -> DiscordAdapter:
        return self.world.adapter

    @property
    def channel(self) -> str:
        return str(self.world.channel.id)

    def shown(self, sent: SentMessage) -> str:
        return self.world.content(sent.id)

    async def seed_history(self, channel: str, entries: list[tuple[str, str]]) -> None:
        members = {m.name: m for m in dpytest.get_config().members}
        for author, text in entries:
            await self.world.say(text, member=members[author])


class TestDiscordContract(AdapterContract):
    @pytest.fixture
    async def under_test(self, tmp_path: Path) -> AsyncIterator[DiscordUnderTest]:
        async with discord_bot(tmp_path, members=("ada", "bob")) as world:
            for member in dpytest.get_config().members:
                member.nick = None  # dpytest invents nicknames; people are their names here
            yield DiscordUnderTest(world, str(open_thread(world.channel).id))


def test_every_discord_setting_can_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONFAB_BOT__ADAPTERS", '["discord"]')
    monkeypatch.setenv("CONFAB_DISCORD__COMMAND_GUILD_IDS", "[123, 456]")
    monkeypatch.setenv("CONFAB_DISCORD__ADMIN_ROLE_IDS", "[789]")
    monkeypatch.setenv("CONFAB_DISCORD__REPLY_IN_THREAD", "true")
    monkeypatch.setenv("CONFAB_DISCORD__API_BASE_URL", "http://127.0.0.1:8080/api/v10")
    config = load_config(schema=build_config_model({"discord": DiscordConfig}))
    section = config.section("discord")
    assert isinstance(section, DiscordConfig)
    assert (section.command_guild_ids, section.admin_role_ids) == ([123, 456], [789])
    assert section.reply_in_thread and section.api_base_url == "http://127.0.0.1:8080/api/v10"
    assert config.bot.adapters == ["discord"]
