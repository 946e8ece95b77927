"""Retrieval over stored history, on SQLite and PostgreSQL, with the real sentence model:
what is found, what is never shown, and what forgetting leaves behind."""

from __future__ import annotations

from datetime import timedelta

import pytest

from confab.bot.config import KnowledgeConfig
from confab.bot.knowledge.embedding import Embedder
from confab.bot.knowledge.passage import Where
from confab.bot.knowledge.search import fuse
from confab.bot.retention import RetentionJob
from confab.storage.conversations import ConversationStore
from confab.storage.database import Database
from confab.storage.events import EventLog
from tests.knowledge.conftest import START, Planter, knowledge

BACKEND = Where("console", "backend")


def texts(found: list) -> str:
    return "\n".join(p.text for p in found)


async def test_the_planted_decision_is_found_among_5000_other_messages(
    database: Database, planter: Planter, sentence_model: Embedder
) -> None:
    await planter.chatter("backend", 2500, seed=1)
    await planter.say("backend", "Ana", "should we move the staging db off MySQL?", gap_minutes=60)
    await planter.say("backend", "Bob", "yes: staging goes to PostgreSQL 16 on Friday, decided")
    await planter.chatter("backend", 2500, seed=2)
    base = knowledge(database, sentence_model)
    assert await base.indexer.catch_up() == 5002
    found = await base.search("what did we decide about the staging database?", BACKEND)
    assert "PostgreSQL 16 on Friday" in texts(found[:5])
    # The decision's passage names its channel, who spoke and the message to link to.
    (hit,) = [p for p in found if "PostgreSQL 16" in p.text]
    assert (hit.channel, hit.authors) == ("backend", "Ana, Bob")
    threshold = KnowledgeConfig().min_similarity
    assert hit.message_id is not None and hit.similarity > threshold
    # Small talk is no answer to a question nobody discussed.
    nothing = await base.search("what is the wifi password in the Berlin office?", BACKEND)
    assert max(p.similarity for p in nothing) < threshold
    await base.close()


async def test_another_channels_secret_is_never_returned_and_a_dm_never_answers_elsewhere(
    database: Database, planter: Planter, sentence_model: Embedder
) -> None:
    await planter.say("design", "Maya", "the rebrand is called Halcyon, keep it secret")
    await planter.say("dm-ana", "Ana", "my door code is 4471", direct=True)
    await planter.say("backend", "Bob", "deploys go out on Tuesdays")
    base = knowledge(database, sentence_model)
    await base.indexer.catch_up()
    for question in ("what is the rebrand called?", "what is Ana's door code?"):
        found = await base.search(question, BACKEND)
        assert "Halcyon" not in texts(found) and "4471" not in texts(found)
    # Where it was said, it answers.
    assert "4471" in texts(await base.search("door code?", Where("console", "dm-ana")))
    # A shared channel answers everywhere; a DM, even listed, never does.
    shared = knowledge(
        database, sentence_model, shared_channels=["console:design", "console:dm-ana"]
    )
    await shared.load()
    assert "Halcyon" in texts(await shared.search("what is the rebrand called?", BACKEND))
    assert "4471" not in texts(await shared.search("what is Ana's door code?", BACKEND))
    await base.close()


async def test_threads_answer_in_their_channel(
    database: Database, planter: Planter, sentence_model: Embedder
) -> None:
    await planter.say("backend", "Gus", "starting a thread, replies below please")
    await planter.say("backend", "Gus", "we'll use NATS for the job queue", thread="t-queue")
    base = knowledge(database, sentence_model)
    await base.indexer.catch_up()
    found = await base.search("which message queue did we pick?", BACKEND)
    assert found[0].text == "Gus: we'll use NATS for the job queue"
    assert found[0].thread == "t-queue"
    assert "NATS" not in texts(await base.search("which queue?", Where("console", "frontend")))


async def test_forgetting_a_person_a_channel_or_old_turns_leaves_nothing_searchable(
    database: Database, planter: Planter, sentence_model: Embedder
) -> None:
    store = ConversationStore(database)
    await planter.say("backend", "Ana", "the billing API key rotates every 90 days")
    await planter.say("backend", "Bob", "and the staging password is kept in the vault")
    await planter.say("ops", "Gus", "the pager rota changes on Mondays")
    base = knowledge(database, sentence_model)
    await base.indexer.catch_up()
    assert "90 days" in texts(await base.search("how often does the API key rotate?", BACKEND))

    await store.forget_author("console", "ana")
    # At once: the chunk that held her words is gone before anything re-indexes.
    assert "90 days" not in texts(await base.search("how often does the key rotate?", BACKEND))
    # Bob's words come back, in a chunk of their own, once the indexer has run.
    await base.indexer.catch_up()
    after = await base.search("where is the staging password?", BACKEND)
    assert "vault" in texts(after) and "90 days" not in texts(after)

    await store.forget_channel("console", "backend")
    await base.indexer.catch_up()
    assert await base.search("where is the staging password?", BACKEND) == []

    retention = RetentionJob(store, EventLog(database), retention_days=1)
    await retention.run_once(now=START + timedelta(days=2))
    ops = Where("console", "ops")
    assert await base.search("when does the pager rota change?", ops) == []
    assert await base.store.count() == 0
    await base.close()


async def test_the_indexer_catches_up_after_a_restart(
    database: Database, planter: Planter, sentence_model: Embedder
) -> None:
    first = knowledge(database, sentence_model)
    await planter.say("backend", "Ana", "the API rate limit is 1000 requests per minute")
    await first.indexer.catch_up()
    await first.close()
    # Said while no indexer ran (the bot was down, or another process stored it).
    await planter.say("backend", "Bob", "frontend deploys go out on Thursdays", gap_minutes=120)
    second = knowledge(database, sentence_model, index_every_s=0.05)
    await second.start()
    await second.indexer.idle.wait()
    assert len(second.index) == 2  # the one stored before, and the one caught up
    assert "Thursdays" in texts(await second.search("when do frontend deploys happen?", BACKEND))
    assert "1000" in texts(await second.search("what is the API rate limit?", BACKEND))
    await second.close()


async def test_a_message_soon_after_extends_the_last_chunk(
    database: Database, planter: Planter, sentence_model: Embedder
) -> None:
    base = knowledge(database, sentence_model)
    await planter.say("backend", "Ana", "where should the staging db go?")
    await base.indexer.catch_up()
    await planter.say("backend", "Bob", "PostgreSQL 16, on Friday")
    await base.indexer.catch_up()
    (chunk,) = await base.search("staging db", BACKEND)
    assert chunk.text == "Ana: where should the staging db go?\nBob: PostgreSQL 16, on Friday"
    assert len(base.index) == 1 and await base.store.count() == 1
    await base.close()


async def test_the_index_follows_changes_made_by_another_process(
    database: Database, planter: Planter, sentence_model: Embedder
) -> None:
    ours = knowledge(database, sentence_model)
    theirs = knowledge(database, sentence_model)
    await ours.load()
    await planter.say("backend", "Ana", "the cache TTL is 300 seconds")
    await theirs.indexer.catch_up()
    assert len(ours.index) == 0
    # Words still find it at once; the vectors arrive with the next sync.
    assert "300 seconds" in texts(await ours.search("cache TTL", BACKEND))
    assert await ours.index.sync(ours.store) == (1, 0)
    await ConversationStore(database).forget_channel("console", "backend")
    assert await ours.index.sync(ours.store) == (0, 1)
    await ours.close()
    await theirs.close()


def test_fusion_ranks_what_both_lists_found_first_and_words_count_half() -> None:
    scores = fuse(dense=[1, 2, 3], lexical=[3, 4])
    assert max(scores, key=scores.__getitem__) == 3  # found by both
    assert scores[1] > scores[4]  # the best by meaning beats the best by words alone
    assert scores[4] == pytest.approx(0.5 / (60 + 2))


async def test_pgvector_is_looked_for_only_on_postgresql(
    database: Database, sentence_model: Embedder
) -> None:
    base = knowledge(database, sentence_model)
    # These machines' PostgreSQL has no pgvector; SQLite never has it.
    assert await base.store.pgvector_available() is False
