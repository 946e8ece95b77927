"""Many people at once: every message gets one reply, every turn is stored once, in order.

A smaller run of ``bench/load.py`` (same driver, :mod:`tests.bot.load_driver`) on
SQLite and on PostgreSQL, and the driver's checks shown to catch each defect.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from confab.bot.messages import SentMessage
from confab.bot.testing import Posted
from confab.storage.conversations import StoredTurn
from tests.bot.load_driver import (
    Delivery,
    LoadPlan,
    LoadReport,
    answer_text,
    check_conversation,
    check_replies,
    load_router_config,
    run_load,
)

PLAN = LoadPlan(users=40, channels=10, messages=3, time_limit_s=30.0, grace_s=15.0)


async def test_forty_people_in_ten_channels_each_get_every_answer_once_and_in_order(
    any_db_url: str, tmp_path: Path
) -> None:
    report = await run_load(PLAN, any_db_url, tmp_path)

    summary = "\n".join(report.lines())
    assert report.sent == 120, summary
    assert (report.lost, report.duplicated, report.out_of_order) == (0, 0, 0), summary
    assert (report.failed, report.unfinished, report.stray_turns) == (0, 0, 0), summary
    # Four people with three messages each fit a channel's slots and queue, and
    # three fit a person's burst: no one is told to wait.
    assert (report.answers, report.busy_notices, report.replies) == (120, 0, 120), summary
    assert report.turns_stored == 240, summary
    assert report.ok


# Everyone sends at once, into channels that run one message and queue one: of
# each channel's twelve, the first runs, the second waits, ten are told it is busy.
AT_ONCE = replace(PLAN, think_s=0.0)
TIGHT = {"channel_concurrency": 1, "channel_queue": 1}


async def test_past_a_full_channel_queue_each_message_is_told_busy_once(
    any_db_url: str, tmp_path: Path
) -> None:
    config = load_router_config(AT_ONCE, **TIGHT)

    report = await run_load(AT_ONCE, any_db_url, tmp_path, router_config=config)

    summary = "\n".join(report.lines())
    assert (report.answers, report.busy_notices, report.replies) == (20, 100, 120), summary
    assert (report.lost, report.duplicated, report.failed, report.stray_turns) == (0, 0, 0, 0)


async def test_past_a_full_channel_queue_each_persons_messages_stay_in_order(
    any_db_url: str, tmp_path: Path
) -> None:
    config = load_router_config(AT_ONCE, **TIGHT)

    report = await run_load(AT_ONCE, any_db_url, tmp_path, router_config=config)

    assert report.out_of_order == 0, "\n".join(report.lines())


# -- the checks catch what they are for --------------------------------------

SMALL = LoadPlan(users=2, channels=1, messages=2)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _sent() -> list[Delivery]:
    """User 0 sends two messages, then user 1 two, in one channel."""
    return [Delivery.of(SMALL, "test", "t", user, index) for user in (0, 1) for index in (0, 1)]


def _reply(to: Delivery, text: str) -> Posted:
    return Posted(SentMessage(f"bot-{to.id}", to.message.channel), [text], to.id)


def _answer(to: Delivery) -> Posted:
    return _reply(to, answer_text(to.tag, SMALL.answer_chunks))


def _report() -> LoadReport:
    return LoadReport(SMALL, "test", load_router_config(SMALL))


def test_replies_missing_doubled_or_wrong_are_counted_and_busy_notices_accepted() -> None:
    a, b, c, d = _sent()
    posted = [
        _answer(a),
        _answer(b),
        _reply(b, "I'm busy with other questions in this channel; please ask again in a moment."),
        _reply(c, "Sorry, something went wrong. The error has been logged."),
    ]
    report = _report()

    answered = check_replies([a, b, c, d], posted, SMALL, report)

    assert answered == {a.id, b.id}
    assert (report.answers, report.busy_notices, report.other_replies) == (2, 1, 1)
    assert report.unanswered == {d.id}
    assert report.duplicated_ids == {b.id}
    assert report.failed_ids == {c.id}
    assert not report.ok


def _turn(
    number: int, to: Delivery, *, answer_of: StoredTurn | None = None, text: str | None = None
) -> StoredTurn:
    """Stored turn ``number``: ``to``'s question, or with ``answer_of`` the bot's answer."""
    if answer_of is None:
        author, said = to.message.author.id, to.message.text
    else:
        author, said = "confab", answer_text(to.tag, SMALL.answer_chunks)
    return StoredTurn(
        id=number,
        role="user" if answer_of is None else "assistant",
        author_id=author,
        author_name=author,
        text=said if text is None else text,
        addressed=True,
        skill="ask",
        command=None,
        token_count=1,
        created_at=NOW,
        platform_message_id=to.id if answer_of is None else None,
        reply_to_id=answer_of.id if answer_of else None,
    )


def _check(turns: list[StoredTurn], sent: list[Delivery]) -> LoadReport:
    report = _report()
    check_conversation("load-0", sent, turns, {d.id for d in sent}, SMALL, report)
    return report


def test_a_conversation_stored_as_sent_passes() -> None:
    a0, a1, b0, b1 = _sent()
    q = [_turn(1, a0), _turn(3, b0), _turn(5, a1), _turn(7, b1)]
    turns = [q[0], _turn(2, a0, answer_of=q[0]), q[1], _turn(4, b0, answer_of=q[1])]
    turns += [q[2], _turn(6, a1, answer_of=q[2]), q[3], _turn(8, b1, answer_of=q[3])]

    assert _check(turns, [a0, a1, b0, b1]).ok


def test_a_persons_later_message_stored_first_is_out_of_order() -> None:
    a0, a1, _, _ = _sent()
    later, earlier = _turn(1, a1), _turn(3, a0)
    turns = [later, _turn(2, a1, answer_of=later), earlier, _turn(4, a0, answer_of=earlier)]

    report = _check(turns, [a0, a1])

    assert report.out_of_order_ids == {a1.id}
    assert (report.lost, report.duplicated) == (0, 0)


def test_an_answer_stored_before_its_question_is_out_of_order() -> None:
    a0, _, _, _ = _sent()
    question = _turn(2, a0)

    report = _check([_turn(1, a0, answer_of=question), question], [a0])

    assert report.out_of_order_ids == {a0.id}


def test_turns_stored_twice_or_not_at_all_are_counted() -> None:
    a0, a1, b0, b1 = _sent()
    q = [_turn(1, a0), _turn(3, a1), _turn(6, b0)]
    turns = [q[0], _turn(2, a0, answer_of=q[0]), q[1], _turn(4, a1, answer_of=q[1])]
    turns += [_turn(5, a1, answer_of=q[1]), q[2], _turn(7, b0)]  # b1 never stored

    report = _check(turns, [a0, a1, b0, b1])

    assert report.duplicated_ids == {a1.id, b0.id}
    assert report.unstored == {b0.id, b1.id}  # b0's answer, b1's question
    assert report.lost == 2


@pytest.mark.parametrize("stray", ["question", "answer"])
def test_turns_of_no_sent_message_and_wrong_stored_answers_fail_the_run(stray: str) -> None:
    a0, _, b0, _ = _sent()
    question = _turn(1, a0)
    turns = [question, _turn(2, a0, answer_of=question, text="someone else's answer")]
    turns.append(_turn(3, b0) if stray == "question" else _turn(3, b0, answer_of=_turn(99, b0)))

    report = _check(turns, [a0])

    assert report.failed_ids == {a0.id}
    assert report.stray_turns == 1
    assert not report.ok
