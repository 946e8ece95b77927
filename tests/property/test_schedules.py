"""The ``<when>`` of ``!schedule`` and ``!remind``: any text is a schedule or a clear
``BadWhen``, and a schedule that is read fires when the text said."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import assume, example, given
from hypothesis import strategies as st

from confab.bot.scheduling.when import BadWhen, When, parse_once, parse_recurring, zone_named
from tests.property.strategies import any_text, whens

ZONES = [
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "America/St_Johns",  # a half-hour offset
    "Asia/Kathmandu",  # a quarter-hour offset
    "Australia/Lord_Howe",  # a half-hour DST change
    "Pacific/Apia",  # skipped a whole day in 2011
    "Pacific/Kiritimati",  # UTC+14
]
zones = st.sampled_from(ZONES).map(ZoneInfo)
# Naive instants, made aware in the zone (or UTC) by each test.
instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1))

texts = st.one_of(
    any_text,
    st.builds(
        lambda when, rest: when + rest,
        whens,
        st.one_of(st.just(""), any_text, any_text.map(" ".__add__)),
    ),
)


def read(parse: Callable[..., tuple[When, str]], *args: object) -> tuple[When, str] | None:
    """The parse's result, or None when it said (with a BadWhen) what was wrong."""
    try:
        return parse(*args)
    except BadWhen as problem:
        assert problem.user_message.endswith(".") and "; use " in problem.user_message
        return None


@given(text=texts, zone=zones, now=instants)
def test_any_text_is_a_recurring_schedule_that_fires_or_bad_when(
    text: str, zone: ZoneInfo, now: datetime
) -> None:
    read_back = read(parse_recurring, text, zone)
    if read_back is None:
        return
    when, rest = read_back
    assert text.strip().endswith(rest) and rest == rest.strip()
    start = now.replace(tzinfo=UTC)
    assert when.trigger.get_next_fire_time(None, start) is not None, "it fires some day"
    assert when.description


@given(text=texts, zone=zones, now=instants, aware=st.booleans())
def test_any_text_is_a_one_off_time_ahead_or_bad_when(
    text: str, zone: ZoneInfo, now: datetime, aware: bool
) -> None:
    if aware:
        now = now.replace(tzinfo=UTC)
    read_back = read(parse_once, text, zone, now)
    if read_back is None:
        return
    when, rest = read_back
    assert text.strip().endswith(rest) and rest == rest.strip()
    start = now if aware else now.replace(tzinfo=zone)
    run = when.trigger.get_next_fire_time(None, start)
    assert run is not None
    assert start < run <= start + timedelta(days=366)


@given(name=any_text | st.sampled_from(["", "..", "/etc/passwd", "Europe/../UTC", "a" * 300]))
def test_any_timezone_name_is_a_zone_or_bad_when(name: str) -> None:
    try:
        zone = zone_named(name)
    except BadWhen:
        return
    assert zone.key == name


def wall_time_exists(day: date, hour: int, minute: int, zone: ZoneInfo) -> bool:
    wall = datetime.combine(day, time(hour, minute), tzinfo=zone)
    return wall.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall.replace(tzinfo=None)


@given(hour=st.integers(0, 23), minute=st.integers(0, 59), zone=zones, now=instants)
def test_daily_fires_next_at_that_wall_time(
    hour: int, minute: int, zone: ZoneInfo, now: datetime
) -> None:
    when, rest = parse_recurring(f"daily {hour}:{minute:02} summarise 1d", zone)
    assert (when.description, rest) == (f"daily at {hour:02}:{minute:02}", "summarise 1d")
    start = now.replace(tzinfo=zone)
    fire = when.trigger.get_next_fire_time(None, start)
    assert fire is not None and fire >= start
    local = fire.astimezone(zone)
    if (local.hour, local.minute) != (hour, minute):
        assert not wall_time_exists(local.date(), hour, minute, zone), "only a DST gap moves it"
    day = start.astimezone(zone).date()
    while day < local.date():  # no day before had that time ahead of the start
        wall = datetime.combine(day, time(hour, minute), tzinfo=zone)
        assert not wall_time_exists(day, hour, minute, zone) or wall < start
        day += timedelta(days=1)


@given(number=st.integers(1, 600), unit=st.sampled_from([("m", 1), ("h", 60), ("d", 1440)]))
def test_every_says_its_interval_in_words_that_read_back_the_same(
    number: int, unit: tuple[str, int]
) -> None:
    letter, minutes = unit
    assume(number * minutes <= 366 * 1440)
    zone = ZoneInfo("Europe/Paris")
    when, _ = parse_recurring(f"every {number}{letter}", zone)
    again, _ = parse_recurring(when.description, zone)
    assert again.description == when.description
    assert again.trigger.interval == when.trigger.interval == timedelta(minutes=number * minutes)


@given(
    number=st.integers(1, 10_000),
    unit=st.sampled_from([("m", 1), ("minutes", 1), ("h", 60), ("hours", 60), ("d", 1440)]),
    zone=zones,
    now=instants,
)
# Found by CI: the moment falls in the hour that St John's repeats in November.
@example(94, ("d", 1440), ZoneInfo("America/St_Johns"), datetime(2031, 7, 31, 4, 0))
def test_in_counts_elapsed_time_from_now(
    number: int, unit: tuple[str, int], zone: ZoneInfo, now: datetime
) -> None:
    word, minutes = unit
    aware = now.replace(tzinfo=UTC)
    try:
        when, rest = parse_once(f"in {number} {word} call Ada", zone, aware)
    except BadWhen:
        assert number * minutes > 366 * 1440
        return
    assert rest == "call Ada"
    # Timestamps: aware datetimes of two zones never compare equal in a repeated hour
    # (PEP 495), even when they are the same instant.
    fires = when.trigger.get_next_fire_time(None, aware)
    assert fires.timestamp() == (aware + timedelta(minutes=number * minutes)).timestamp()


CRON_DAY = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
day_tokens = st.one_of(st.integers(0, 7).map(str), st.sampled_from(sorted(CRON_DAY)))
day_parts = st.builds(
    lambda first, last, step: first + (f"-{last}" if last else "") + (f"/{step}" if step else ""),
    day_tokens,
    st.none() | day_tokens,
    st.none() | st.integers(1, 8),
)


def crontab_days(field: str) -> set[int] | None:
    """The days a crontab day-of-week field means (0 = Sunday), or None if it is invalid."""
    days: set[int] = set()
    for part in field.split(","):
        span, _, step = part.partition("/")
        first, _, last = span.partition("-")
        low = int(first) if first.isdigit() else CRON_DAY[first]
        high = (int(last) if last.isdigit() else CRON_DAY[last]) if last else low
        if high < low:
            return None
        days.update(day % 7 for day in range(low, high + 1, int(step or 1)))
    return days


@given(field=st.lists(day_parts, min_size=1, max_size=3).map(",".join), zone=zones)
def test_crontab_weekdays_fire_on_the_days_crontab_means(field: str, zone: ZoneInfo) -> None:
    expected = crontab_days(field)
    try:
        when, _ = parse_recurring(f'"0 12 * * {field}" ping', zone)
    except BadWhen:
        assert expected is None
        return
    assert expected is not None
    fire = datetime(2026, 1, 4, tzinfo=zone)  # a Sunday
    fired = set()
    for _ in range(7):
        next_fire = when.trigger.get_next_fire_time(None, fire + timedelta(minutes=1))
        assert next_fire is not None
        if next_fire > datetime(2026, 1, 11, tzinfo=zone):
            break
        fire = next_fire
        fired.add((fire.astimezone(zone).weekday() + 1) % 7)  # as crontab counts
    assert fired == expected
