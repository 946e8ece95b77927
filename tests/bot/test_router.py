"""The router: what is answered, what is dropped, which skill runs, and how failures look."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from confab.bot.config import RouterConfig
from confab.bot.errors import ModelBusy, ModelError, ModelTimeout, ModelUnavailable, SkillError
from confab.bot.llm.backend import ChatMessage
from confab.bot.messages import Author, Message
from confab.bot.router import DB_DOWN, NO_ANSWER, parse_command
from confab.bot.skill import Skill, SkillContext
from confab.bot.testing import BrokenBackend, ChatHarness, ScriptedBackend
from confab.skills.help import HelpSkill
from confab.skills.ping import PingSkill
from confab.skills.qa import AskSkill
from confab.storage.conversations import ConversationKey, ConversationStore
from confab.storage.database import Database
from confab.storage.errors import StorageUnavailable

BUILTINS = [AskSkill, HelpSkill, PingSkill]


class ExplodingSkill(Skill):
    name = "explode"
    help = "Always fails."

    async def run(self, ctx: SkillContext) -> None:
        raise RuntimeError("kaboom")


class RefusingSkill(Skill):
    name = "refuse"
    help = "Fails politely."

    async def run(self, ctx: SkillContext) -> None:
        raise SkillError("I can't do that with these arguments.")


class SilentSkill(Skill):
    name = "silent"
    help = "Never answers."

    async def run(self, ctx: SkillContext) -> None:
        return None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("!ask what is up", ("ask", "what is up")),
        ("  !PING", ("ping", "")),
        ("!code fix\nprint(1)", ("code", "fix\nprint(1)")),
        ("!ask\nwhat?", ("ask", "what?")),
        ("!", None),
        ("! ask", None),
        ("!!!", None),
        ("hello !ask", None),
        ("?ask x", None),
    ],
)
def test_parse_command(text: str, expected: tuple[str, str] | None) -> None:
    assert parse_command(text, ["!"]) == expected


async def test_commands_and_aliases_pick_their_skill(tmp_path: Path) -> None:
    model = ScriptedBackend(["Paris."])
    async with ChatHarness(BUILTINS, tmp_path, model=model) as chat:
        assert await chat.ask("!ping") == "pong"
        assert "`!ask <question>`" in await chat.ask("!help")
        assert await chat.ask("!q capital of France?") == "Paris."
        assert model.prompts[-1][-1] == ChatMessage("user", "capital of France?")


async def test_addressed_message_without_command_goes_to_the_default_skill(tmp_path: Path) -> None:
    model = ScriptedBackend(["Hi!"])
    async with ChatHarness(BUILTINS, tmp_path, model=model) as chat:
        assert await chat.ask("hello there") == "Hi!"
        assert model.prompts[0][-1].content == "hello there"


async def test_default_skill_and_prefixes_come_from_config(tmp_path: Path) -> None:
    config = RouterConfig(prefixes=["?"], default_skill="ping")
    async with ChatHarness(BUILTINS, tmp_path, router_config=config) as chat:
        assert await chat.ask("anything") == "pong"
        assert "`?help [command]`" in await chat.ask("?help")


async def test_chatter_is_stored_but_not_answered(tmp_path: Path) -> None:
    async with ChatHarness(BUILTINS, tmp_path) as chat:
        assert await chat.send("lunch at noon?", channel="general", addressed=False) == []
        assert await chat.send("!unknowncmd", channel="general", addressed=False) == []
        history = await chat.store.channel_messages(ConversationKey("test", "general"))
        assert [(t.text, t.addressed) for t in history] == [
            ("lunch at noon?", False),
            ("!unknowncmd", False),
        ]


async def test_a_known_command_is_answered_without_a_mention(tmp_path: Path) -> None:
    async with ChatHarness(BUILTINS, tmp_path) as chat:
        assert await chat.ask("!ping", channel="general", addressed=False) == "pong"


async def test_bots_and_own_messages_are_ignored(tmp_path: Path) -> None:
    async with ChatHarness(BUILTINS, tmp_path) as chat:
        assert await chat.send("!ping", is_bot=True) == []
    config = RouterConfig(ignore_bots=False)
    async with ChatHarness(BUILTINS, tmp_path, router_config=config) as chat:
        assert await chat.ask("!ping", is_bot=True) == "pong"


async def test_empty_and_oversized_input_get_a_clear_reply(tmp_path: Path) -> None:
    model = ScriptedBackend()
    config = RouterConfig(max_input_chars=50)
    async with ChatHarness(BUILTINS, tmp_path, model=model, router_config=config) as chat:
        assert "empty" in await chat.ask("   ")
        assert "empty" in await chat.ask("\u200b\u2060 \ufeff")  # nothing visible either
        answer = await chat.ask("x" * 51)
        assert "too long (51 characters; the limit is 50)" in answer
        assert await chat.send("y" * 51, channel="c", addressed=False) == []
        assert model.prompts == []  # the model never saw any
        assert await chat.store.channel_messages(ConversationKey("test", "c")) == []  # nor kept


async def test_unknown_command_when_addressed_points_to_help(tmp_path: Path) -> None:
    async with ChatHarness(BUILTINS, tmp_path) as chat:
        assert "I don't know the command `frobnicate`. Try `!help`" in await chat.ask(
            "!frobnicate now"
        )
        stored = await chat.store.channel_messages(ConversationKey("test", "dm"))
        assert [t.text for t in stored] == ["!frobnicate now"]  # kept, like every message


async def test_a_failing_skill_gives_one_short_reply_and_a_logged_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with ChatHarness([*BUILTINS, ExplodingSkill], tmp_path) as chat:
        with caplog.at_level(logging.ERROR):
            posted = await chat.send("!explode")
        assert [p.text for p in posted] == [
            "Sorry, `explode` failed while answering. The error has been logged."
        ]
        assert "kaboom" not in posted[0].text
        failure = next(r for r in caplog.records if "skill explode failed" in r.getMessage())
        assert failure.exc_info is not None and "kaboom" in str(failure.exc_info[1])
        assert await chat.ask("!ping") == "pong"  # the bot carries on


async def test_skill_errors_and_silent_skills_still_answer_once(tmp_path: Path) -> None:
    async with ChatHarness([*BUILTINS, RefusingSkill, SilentSkill], tmp_path) as chat:
        assert await chat.ask("!refuse") == "I can't do that with these arguments."
        assert await chat.ask("!silent") == NO_ANSWER


async def test_model_failure_is_a_clear_reply(tmp_path: Path) -> None:
    async with ChatHarness(BUILTINS, tmp_path, model=BrokenBackend()) as chat:
        assert await chat.ask("hello?") == "The model failed while answering."


@pytest.mark.parametrize(
    ("error", "reply"),
    [
        (ModelBusy("queue full"), "I'm busy answering others; please try again in a moment."),
        (ModelTimeout("120 s passed"), "The model took too long to answer; please try again."),
        (
            ModelUnavailable("worker died"),
            "The model is unavailable right now; please try again shortly.",
        ),
    ],
)
async def test_an_overloaded_or_failed_model_is_one_short_sentence(
    tmp_path: Path, error: Exception, reply: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with ChatHarness(BUILTINS, tmp_path, model=ScriptedBackend(fail_with=error)) as chat:
        assert await chat.ask("hello?") == reply
    assert any(str(error) in record.getMessage() for record in caplog.records)


@pytest.mark.fact_checks
async def test_both_turns_are_stored_and_the_next_question_sees_them(tmp_path: Path) -> None:
    # A factual question is asked four times (three checks); the answers agree.
    model = ScriptedBackend(["Paris."] * 4 + ["About 2 million."])
    async with ChatHarness(BUILTINS, tmp_path, model=model) as chat:
        await chat.ask("What is the capital of France?")
        await chat.ask("!ping")  # another skill's turns stay out of the Q&A memory
        await chat.ask("How many people live there?")
        turns = await chat.store.recent(ConversationKey("test", "dm"), skill="ask")
        assert [(t.role, t.text) for t in turns] == [
            ("user", "What is the capital of France?"),
            ("assistant", "Paris."),
            ("user", "How many people live there?"),
            ("assistant", "About 2 million."),
        ]
        assert model.prompts[-1][1:] == [
            ChatMessage("user", "What is the capital of France?"),
            ChatMessage("assistant", "Paris."),
            ChatMessage("user", "How many people live there?"),
        ]


async def test_the_question_is_committed_before_the_model_is_asked(tmp_path: Path) -> None:
    seen_by_another_connection: list[list[str]] = []

    class Peeking(ScriptedBackend):
        async def stream(self, messages, params=None):  # type: ignore[no-untyped-def]
            other = Database(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
            turns = await ConversationStore(other).recent(ConversationKey("test", "dm"))
            seen_by_another_connection.append([t.text for t in turns])
            await other.close()
            async for chunk in super().stream(messages, params):
                yield chunk

    async with ChatHarness(BUILTINS, tmp_path, model=Peeking(["Hi."])) as chat:
        await chat.ask("hello?")
        assert seen_by_another_connection == [["hello?"]]
        question, reply = await chat.store.recent(ConversationKey("test", "dm"))
        assert (reply.text, reply.reply_to_id, reply.reply_to_author_id) == (
            "Hi.",
            question.id,
            question.author_id,
        )


@pytest.mark.fact_checks
async def test_the_model_remembers_questions_not_commands_or_empty_asks(tmp_path: Path) -> None:
    model = ScriptedBackend(["Paris."] * 4 + ["Yes."])  # three checks agree
    async with ChatHarness(BUILTINS, tmp_path, model=model) as chat:
        await chat.ask("!ask What is the capital of France?")
        assert "Ask me something" in await chat.ask("!ask")
        await chat.ask("Are you sure?")
        assert model.prompts[-1][1:] == [
            ChatMessage("user", "What is the capital of France?"),
            ChatMessage("assistant", "Paris."),
            ChatMessage("user", "Are you sure?"),
        ]
        stored = await chat.store.recent(ConversationKey("test", "dm"))
        assert stored[0].text == "!ask What is the capital of France?"
        assert stored[0].command == "ask"


async def test_memory_is_per_channel(tmp_path: Path) -> None:
    model = ScriptedBackend(["A.", "B."])
    async with ChatHarness(BUILTINS, tmp_path, model=model) as chat:
        await chat.ask("first", channel="one")
        await chat.ask("second", channel="two")
        assert [m.content for m in model.prompts[-1][1:]] == ["second"]


async def test_a_storage_failure_is_answered_and_logged_and_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with ChatHarness(BUILTINS, tmp_path) as chat:
        async with chat.database.engine.begin() as connection:
            await connection.execute(text("DROP TABLE turns"))
        with caplog.at_level(logging.ERROR):
            answer = await chat.ask("hello?")
        assert answer == "Sorry, something went wrong. The error has been logged."
        assert any(
            "no such table: turns" in str(r.exc_info[1]) for r in caplog.records if r.exc_info
        )
        # Chatter is logged, never answered.
        assert await chat.send("anyone?", channel="general", addressed=False) == []


async def test_an_answer_that_breaks_off_is_remembered_as_far_as_it_went(tmp_path: Path) -> None:
    class Faltering(ScriptedBackend):
        async def stream(self, messages, params=None):  # type: ignore[no-untyped-def]
            yield "The answer is"
            raise ModelError("The model failed while answering.", "worker died")

    async with ChatHarness(BUILTINS, tmp_path, model=Faltering()) as chat:
        posted = await chat.send("what is it?")
        assert [p.text for p in posted] == ["The answer is", "The model failed while answering."]
        turns = await chat.store.recent(ConversationKey("test", "dm"))
        assert [(t.role, t.text) for t in turns] == [
            ("user", "what is it?"),
            ("assistant", "The answer is"),
        ]


async def test_an_answer_cut_short_by_shutdown_is_remembered(tmp_path: Path) -> None:
    halfway = asyncio.Event()

    class Endless(ScriptedBackend):
        async def stream(self, messages, params=None):  # type: ignore[no-untyped-def]
            yield "one"
            yield " two"
            halfway.set()
            await asyncio.Event().wait()  # the rest never comes
            yield " three"

    async with ChatHarness(BUILTINS, tmp_path, model=Endless()) as chat:
        answering = asyncio.create_task(chat.send("count please"))
        await halfway.wait()
        await asyncio.sleep(0)  # let ReplyStream show " two"
        answering.cancel()
        with pytest.raises(asyncio.CancelledError):
            await answering
        turns = await chat.store.recent(ConversationKey("test", "dm"))
        assert [(t.role, t.text) for t in turns] == [
            ("user", "count please"),
            ("assistant", "one two"),
        ]
        assert chat.adapter.posted[0].text == "one two"


async def test_a_replayed_message_is_answered_once_even_by_two_bots(
    tmp_path: Path, any_db_url: str
) -> None:
    model = ScriptedBackend(["Hi there."], delay_s=0.01)
    first = ChatHarness(BUILTINS, tmp_path / "one", model=model, database_url=any_db_url)
    second = ChatHarness(BUILTINS, tmp_path / "two", model=model, database_url=any_db_url)
    async with first, second:
        message = Message(
            platform="test",
            channel="dm",
            author=Author("ada", "Ada"),
            text="hi",
            addressed=True,
            id="m-1",
        )
        # A reconnect replays it to this bot while another process receives it too.
        await asyncio.gather(
            first.router.handle(message, first.adapter),
            first.router.handle(message, first.adapter),
            second.router.handle(message, second.adapter),
        )
        chatter = Message(
            platform="test", channel="general", author=Author("bob", "Bob"), text="x", id="m-2"
        )
        await first.router.handle(chatter, first.adapter)
        await second.router.handle(chatter, second.adapter)
        stored = await first.store.recent(ConversationKey("test", "dm"))
        general = await first.store.channel_messages(ConversationKey("test", "general"))
    (answer,) = first.adapter.posted + second.adapter.posted
    assert answer.reply_to == "m-1"  # the adapter is told which message it answers
    assert [(t.role, t.text) for t in stored] == [("user", "hi"), ("assistant", "Hi there.")]
    assert [t.text for t in general] == ["x"]


async def test_a_prefixed_command_nobody_mentioned_still_hears_the_database_is_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ChatHarness(BUILTINS, tmp_path) as chat:

        async def unreachable(*_args: object, **_options: object) -> None:
            raise StorageUnavailable("connection refused")

        monkeypatch.setattr(chat.store, "append", unreachable)
        answer = await chat.ask("!ask hello", channel="general", addressed=False)
    assert answer == DB_DOWN


async def test_an_answer_cut_while_its_commit_is_awaited_is_stored_once(tmp_path: Path) -> None:
    async with ChatHarness(BUILTINS, tmp_path, model=ScriptedBackend(["Hello there."])) as chat:
        busy = threading.Event()

        def hold(_connection: object, _facts: object) -> None:
            busy.wait(5)

        original = chat.store.append_nowait

        def slow_commit(*args: object, **options: object):  # type: ignore[no-untyped-def]
            stored = original(*args, **options)  # type: ignore[arg-type]
            if options.get("role") == "assistant":
                chat.database.write_queue.submit(hold, writes=False)  # the commit now waits
            return stored

        chat.store.append_nowait = slow_commit  # type: ignore[method-assign]
        asking = asyncio.create_task(chat.send("question", channel="c"))
        await asyncio.sleep(0.3)
        asking.cancel()  # a stop cuts the answer while its commit is awaited
        await asyncio.gather(asking, return_exceptions=True)
        busy.set()
        await chat.database.write_queue.barrier()
        turns = await chat.store.channel_messages(ConversationKey("test", "c"))
    assert [(t.role, t.text) for t in turns] == [
        ("user", "question"),
        ("assistant", "Hello there."),
    ]


async def test_a_skill_with_a_model_of_its_own_is_answered_by_it(tmp_path: Path) -> None:
    from confab.skills.qa import AskConfig

    default, coder = ScriptedBackend(["from the default"]), ScriptedBackend(["from the coder"])
    asked: list[str] = []

    async def named(name: str) -> ScriptedBackend:
        asked.append(name)
        return coder

    skills = [AskSkill(AskConfig(model="coder", check_facts=False)), PingSkill]
    async with ChatHarness(skills, tmp_path, model=default) as chat:
        chat.router.named_models = named
        assert await chat.ask("hello") == "from the coder"
        assert await chat.ask("!ping") == "pong"
    assert asked == ["coder"]
    assert default.prompts == []
