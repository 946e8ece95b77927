"""How the ``<when>`` part of scheduling commands is read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.interval import IntervalTrigger

from confab.bot.scheduling.when import (
    ONCE_FORMS,
    RECURRING_FORMS,
    BadWhen,
    parse_once,
    parse_recurring,
    zone_named,
)

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 11, 29, 8, 0, tzinfo=PARIS)  # a Sunday


def paris(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=PARIS)


@pytest.mark.parametrize(
    ("text", "first_fire", "description", "rest"),
    [
        ("daily 09:00 stand-up", paris(2026, 11, 29, 9, 0), "daily at 09:00", "stand-up"),
        ("DAILY 7:30", paris(2026, 11, 30, 7, 30), "daily at 07:30", ""),
        ("weekly mon 09:00 plan", paris(2026, 11, 30, 9, 0), "every Monday at 09:00", "plan"),
        ("weekly Friday 17:45  beer ", paris(2026, 12, 4, 17, 45), "every Friday at 17:45", "beer"),
        (
            '"0 9 * * 1-5" standup',
            paris(2026, 11, 30, 9, 0),
            "every weekday at 09:00 (cron 0 9 * * 1-5)",
            "standup",
        ),
        ("'30 8 * * 0' brunch", paris(2026, 11, 29, 8, 30), None, "brunch"),
        (
            "'0 10 * * 7'",
            paris(2026, 11, 29, 10, 0),
            "every Sunday at 10:00 (cron 0 10 * * 7)",
            "",
        ),
        ("'*/15 * 1 * *' tick", paris(2026, 12, 1, 0, 0), "cron */15 * 1 * *", "tick"),
    ],
)
def test_recurring_schedules_fire_at_the_wall_time_in_the_zone(
    text: str, first_fire: datetime, description: str | None, rest: str
) -> None:
    when, remainder = parse_recurring(text, PARIS)
    assert when.trigger.get_next_fire_time(None, NOW) == first_fire
    if description is not None:
        assert when.description == description
    assert remainder == rest


def test_crontab_weekday_numbers_count_from_sunday_as_in_crontab() -> None:
    when, _ = parse_recurring('"0 9 * * 1-5"', PARIS)
    friday = paris(2026, 12, 4, 9, 0)
    # From Friday 09:00 the next weekday is Monday, not Saturday.
    assert when.trigger.get_next_fire_time(friday, friday) == paris(2026, 12, 7, 9, 0)


@pytest.mark.parametrize(
    ("text", "interval", "description"),
    [
        ("every 30m water", timedelta(minutes=30), "every 30 minutes"),
        ("every 90 minutes water", timedelta(minutes=90), "every 90 minutes"),
        ("every 2h water", timedelta(hours=2), "every 2 hours"),
        ("every 1d water", timedelta(days=1), "every day"),
        ("every 366 days water", timedelta(days=366), "every 366 days"),
    ],
)
def test_every_repeats_at_the_interval(text: str, interval: timedelta, description: str) -> None:
    before = datetime.now(PARIS)
    when, rest = parse_recurring(text, PARIS)
    assert isinstance(when.trigger, IntervalTrigger)
    assert when.trigger.interval == interval
    assert when.description == description
    assert rest == "water"
    first = when.trigger.get_next_fire_time(None, before)
    assert before + interval <= first <= datetime.now(PARIS) + interval


@pytest.mark.parametrize(
    ("text", "run_date", "description"),
    [
        ("in 2h stretch", paris(2026, 11, 29, 10, 0), "once, at 2026-11-29 10:00 Europe/Paris"),
        ("in 90 minutes stretch", paris(2026, 11, 29, 9, 30), None),
        ("in 3 days stretch", paris(2026, 12, 2, 8, 0), None),
        ("at 14:00 stretch", paris(2026, 11, 29, 14, 0), "once, at 2026-11-29 14:00 Europe/Paris"),
        ("at 7:15 stretch", paris(2026, 11, 30, 7, 15), "once, at 2026-11-30 07:15 Europe/Paris"),
        ("at 08:00 stretch", paris(2026, 11, 30, 8, 0), None),  # now is not "still ahead"
    ],
)
def test_once_runs_at_the_next_matching_instant(
    text: str, run_date: datetime, description: str | None
) -> None:
    when, rest = parse_once(text, PARIS, NOW)
    assert when.trigger.get_next_fire_time(None, NOW) == run_date
    if description is not None:
        assert when.description == description
    assert rest == "stretch"


def test_in_counts_elapsed_time_across_a_dst_change() -> None:
    before_change = paris(2026, 3, 29, 1, 30)  # clocks jump 02:00 -> 03:00
    when, _ = parse_once("in 1h", PARIS, before_change)
    assert when.trigger.run_date == paris(2026, 3, 29, 3, 30)


def test_at_a_time_skipped_by_dst_lands_just_after_the_gap() -> None:
    when, _ = parse_once("at 02:30 ping", PARIS, paris(2026, 3, 29, 0, 0))
    assert when.trigger.run_date == paris(2026, 3, 29, 3, 30)
    assert when.trigger.run_date.astimezone(UTC) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "can't read"),
        ('"', "matching quotes"),
        ("''", "5 fields"),
        ('"0 9 * * 1-5', "matching quotes"),
        ('"0 9 * *"', "5 fields, not 4"),
        ('"60 9 * * *"', "bad crontab"),
        ('"0 9 * * 8"', "day of week"),
        ('"0 0 31 2 *"', "never fires"),
        ('"0 ٩ * * *"', "ASCII"),
        ("daily 25:00", "25:00 is not a time of day"),
        ("daily 9:60", "9:60 is not a time of day"),
        ("weekly funday 09:00", "unknown day 'funday'"),
        ("every 0m", "at least 1 minute"),
        ("every 367d", "longer than 366 days"),
        ("every 99999999999m", "longer than 366 days"),
        ("every " + "9" * 5000 + "m", "longer than 366 days"),
        ("every ٣m", "can't read"),
        ("every 5 fortnights", "can't read"),
        ("daily\x0009:00", "can't read"),
    ],
)
def test_bad_recurring_schedules_say_what_is_wrong_and_what_works(text: str, problem: str) -> None:
    with pytest.raises(BadWhen) as caught:
        parse_recurring(text, PARIS)
    assert problem in str(caught.value)
    assert RECURRING_FORMS in str(caught.value)
    assert caught.value.user_message == str(caught.value)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "can't read"),
        ("at 25:00", "25:00 is not a time of day"),
        ("at 9:60", "9:60 is not a time of day"),
        ("at 9", "can't read"),
        ("in 367d", "longer than 366 days"),
        ("in 99999999999999999999h", "longer than 366 days"),
        ("in ٣m", "can't read"),
        ("tomorrow", "can't read a time in 'tomorrow'"),
        ("\x00", "can't read"),
    ],
)
def test_bad_one_off_times_say_what_is_wrong_and_what_works(text: str, problem: str) -> None:
    with pytest.raises(BadWhen) as caught:
        parse_once(text, PARIS, NOW)
    assert problem in str(caught.value)
    assert ONCE_FORMS in str(caught.value)


def test_zone_named_accepts_iana_names_and_rejects_others() -> None:
    assert zone_named("Europe/Paris") == PARIS
    for name in ["Mars/Olympus", "", "../etc/passwd", "Europe", "a\x00b"]:
        with pytest.raises(BadWhen, match="use an IANA name such as Europe/Paris"):
            zone_named(name)
    with pytest.raises(BadWhen, match="unknown timezone 'Mars/Olympus'"):
        zone_named("Mars/Olympus")


@pytest.mark.parametrize(
    "text",
    [
        "'",
        "\"'",
        "'\"",
        "every",
        "in",
        "at",
        "weekly",
        "weekly mon",
        "'* * * * */0'",
        "'* * * * 5-1'",
        "'* * * * mon-'",
        "'1-0 * * * *'",
        "every -5m",
        "in 1e9m",
        "\u00a0",
    ],
)
def test_nothing_but_bad_when_escapes_for_odd_input(text: str) -> None:
    with pytest.raises(BadWhen):
        parse_recurring(text, PARIS)
    with pytest.raises(BadWhen):
        parse_once(text, PARIS, NOW)
