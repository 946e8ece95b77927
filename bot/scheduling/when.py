"""Reading the ``<when>`` part of chat commands into APScheduler 3 triggers.

Skills that schedule things (``remind``, recurring posts) call ``parse_recurring`` or
``parse_once`` on the text after the command name and get back a :class:`When` (the
trigger plus a description in words) and the rest of the text. Every bad input raises
:class:`BadWhen`, whose message is meant for the person chatting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from confab.bot.errors import ConfabError

RECURRING_FORMS = (
    'a quoted crontab such as "0 9 * * 1-5", "daily 09:00", "weekly mon 09:00" '
    'or "every 30m" (also 2h, 1d)'
)
ONCE_FORMS = '"in 30m" (also 2h, 1d, 90 minutes) or "at 14:30"'

MAX_AHEAD = timedelta(days=366)
MAX_NUMBER_DIGITS = 9  # far beyond MAX_AHEAD in any unit, and cheap to convert to int

DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
CRON_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab numbering
UNIT_MINUTES = {"m": 1, "h": 60, "d": 24 * 60}

# re.ASCII keeps \s and friends ASCII; digits are spelt [0-9] so "٣" never counts.
_FLAGS = re.IGNORECASE | re.ASCII
_END = r"(?=\s|$)"
_TIME = r"(?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{2})"
_AMOUNT = (
    r"(?P<number>[0-9]+)\s*"
    r"(?P<unit>m|mins?|minutes?|h|hrs?|hours?|d|days?)" + _END
)
QUOTED = re.compile(r"(?P<quote>[\"'])(?P<expr>[^\"']*)(?P=quote)" + _END, _FLAGS)
DAILY = re.compile(r"daily\s+" + _TIME + _END, _FLAGS)
WEEKLY = re.compile(r"weekly\s+(?P<day>[a-z]+)\s+" + _TIME + _END, _FLAGS)
# "every hour" (no number) too: that is how a schedule is described back.
EVERY = re.compile(r"every\s+(?:" + _AMOUNT + r"|(?P<word>minute|hour|day)" + _END + ")", _FLAGS)
IN = re.compile(r"in\s+" + _AMOUNT, _FLAGS)
AT = re.compile(r"at\s+" + _TIME + _END, _FLAGS)
CRON_DAYS = re.compile(
    r"(?P<first>[0-7]|[a-z]{3}|\*)(?:-(?P<last>[0-7]|[a-z]{3}))?(?:/(?P<step>[0-9]{1,2}))?",
    _FLAGS,
)


class BadWhen(ConfabError, ValueError):
    """The schedule in a command could not be read; the message says why and what works."""

    def __init__(self, problem: str, forms: str) -> None:
        super().__init__(f"{problem}; use {forms}.")


@dataclass(frozen=True)
class When:
    """A parsed schedule: the APScheduler trigger and a description for the user."""

    trigger: BaseTrigger
    description: str


def zone_named(name: str) -> ZoneInfo:
    """The IANA time zone called ``name``, for a user's ``timezone`` setting."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise BadWhen(
            f"unknown timezone {_quoted(name)}", "an IANA name such as Europe/Paris"
        ) from None


def parse_recurring(text: str, zone: ZoneInfo) -> tuple[When, str]:
    """Read a repeating schedule at the start of ``text``; return it and the rest.

    Accepts a quoted 5-field crontab (weekday numbers as in crontab: 0 and 7 are
    Sunday), ``daily HH:MM``, ``weekly <day> HH:MM`` and ``every N(m|h|d)`` (or
    ``every hour``, as an interval is described back). Times are wall-clock times
    in ``zone``.
    """
    text = text.strip()
    if match := QUOTED.match(text):
        return _crontab(match["expr"], zone), _rest(text, match)
    if match := DAILY.match(text):
        hour, minute = _time_of_day(match, RECURRING_FORMS)
        trigger = CronTrigger(hour=hour, minute=minute, timezone=zone)
        return When(trigger, f"daily at {hour:02}:{minute:02}"), _rest(text, match)
    if match := WEEKLY.match(text):
        day = _weekday(match["day"])
        hour, minute = _time_of_day(match, RECURRING_FORMS)
        trigger = CronTrigger(day_of_week=day[:3], hour=hour, minute=minute, timezone=zone)
        description = f"every {day.capitalize()} at {hour:02}:{minute:02}"
        return When(trigger, description), _rest(text, match)
    if match := EVERY.match(text):
        delta = _amount(match, RECURRING_FORMS)
        trigger = IntervalTrigger(minutes=delta // timedelta(minutes=1), timezone=zone)
        return When(trigger, f"every {_span(delta)}"), _rest(text, match)
    if text[:1] in ("'", '"'):
        raise BadWhen("put the crontab in matching quotes, then a space", RECURRING_FORMS)
    raise BadWhen(f"I can't read a schedule in {_quoted(text)}", RECURRING_FORMS)


def parse_once(text: str, zone: ZoneInfo, now: datetime) -> tuple[When, str]:
    """Read a one-off time at the start of ``text``; return it and the rest.

    Accepts ``in N(m|h|d)`` (counted from ``now``) and ``at HH:MM``, the next time the
    clocks in ``zone`` show that time (today if still ahead, else tomorrow). ``now``
    should be aware; a naive one is taken as wall time in ``zone``.
    """
    text = text.strip()
    if now.tzinfo is None:
        now = now.replace(tzinfo=zone)
    if match := IN.match(text):
        # Added in UTC: "in 2h" means elapsed time, even across a DST change.
        run_date = now.astimezone(UTC) + _amount(match, ONCE_FORMS)
    elif match := AT.match(text):
        hour, minute = _time_of_day(match, ONCE_FORMS)
        run_date = _next_wall_time(time(hour, minute), zone, now)
    else:
        raise BadWhen(f"I can't read a time in {_quoted(text)}", ONCE_FORMS)
    run_date = run_date.astimezone(zone)
    trigger = DateTrigger(run_date=run_date, timezone=zone)
    description = f"once, at {run_date:%Y-%m-%d %H:%M} {zone.key}"
    return When(trigger, description), _rest(text, match)


def _crontab(expr: str, zone: ZoneInfo) -> When:
    if not expr.isascii():
        raise BadWhen("a crontab may hold only ASCII characters", RECURRING_FORMS)
    fields = expr.split()
    if len(fields) != 5:
        raise BadWhen(f"a crontab has 5 fields, not {len(fields)}", RECURRING_FORMS)
    if fields[2] != "*" and fields[4] != "*":
        # cron fires when either matches; APScheduler only when both do.
        raise BadWhen(
            "give a day of the month or a day of the week in a crontab, not both",
            RECURRING_FORMS,
        )
    # APScheduler 3 counts weekdays from Monday = 0; crontab from Sunday = 0 (and 7).
    fields[4] = _cron_weekdays(fields[4])
    try:
        trigger = CronTrigger.from_crontab(" ".join(fields), timezone=zone)
    except ValueError as error:
        raise BadWhen(f"bad crontab: {_shorten(str(error))}", RECURRING_FORMS) from None
    # No year field, so a crontab that fires after any date fires after this one.
    if trigger.get_next_fire_time(None, datetime(2000, 1, 1, tzinfo=zone)) is None:
        raise BadWhen(f"the crontab {_quoted(expr)} never fires", RECURRING_FORMS)
    return When(trigger, _describe_crontab(fields, expr))


def _cron_weekdays(field: str) -> str:
    """A crontab day-of-week field as APScheduler 3 day names (``*`` for every day)."""
    days: set[int] = set()
    for part in field.split(","):
        match = CRON_DAYS.fullmatch(part)
        if match is None:
            raise BadWhen(f"bad crontab day of week {_quoted(part)}", RECURRING_FORMS)
        if match["first"] == "*":
            if match["last"]:
                raise BadWhen(f"bad crontab day of week {_quoted(part)}", RECURRING_FORMS)
            first, last = 0, 6
        else:
            first = _cron_day(match["first"])
            last = _cron_day(match["last"]) if match["last"] else first
        step = int(match["step"] or 1)
        if step == 0 or last < first:
            raise BadWhen(f"bad crontab day of week {_quoted(part)}", RECURRING_FORMS)
        days.update(day % 7 for day in range(first, last + 1, step))
    if len(days) == 7:
        return "*"
    return ",".join(CRON_DAY_NAMES[day] for day in sorted(days, key=lambda d: (d - 1) % 7))


def _cron_day(token: str) -> int:
    if token.isdigit():
        return int(token)
    try:
        return CRON_DAY_NAMES.index(token.lower())
    except ValueError:
        raise BadWhen(f"unknown day {_quoted(token)}", RECURRING_FORMS) from None


def _describe_crontab(fields: list[str], expr: str) -> str:
    """Words for the common crontabs ("every weekday at 09:00"), else just the crontab."""
    minute, hour, day_of_month, month, day_of_week = fields
    plain = f"cron {' '.join(expr.split())}"
    if not (minute.isdigit() and hour.isdigit() and day_of_month == "*" and month == "*"):
        return plain
    days = {
        "*": "every day",
        "mon,tue,wed,thu,fri": "every weekday",
        "sat,sun": "every weekend day",
    }.get(day_of_week)
    if days is None and day_of_week in CRON_DAY_NAMES:
        days = f"every {DAY_NAMES[(CRON_DAY_NAMES.index(day_of_week) - 1) % 7].capitalize()}"
    if days is None:
        return plain
    return f"{days} at {int(hour):02}:{int(minute):02} ({plain})"


def _time_of_day(match: re.Match[str], forms: str) -> tuple[int, int]:
    hour, minute = int(match["hour"]), int(match["minute"])
    if hour > 23 or minute > 59:
        raise BadWhen(f"{match['hour']}:{match['minute']} is not a time of day", forms)
    return hour, minute


def _weekday(word: str) -> str:
    word = word.lower()
    for day in DAY_NAMES:
        if word in (day, day[:3]):
            return day
    raise BadWhen(f"unknown day {_quoted(word)}", RECURRING_FORMS)


def _amount(match: re.Match[str], forms: str) -> timedelta:
    if word := match.groupdict().get("word"):
        return timedelta(minutes=UNIT_MINUTES[word[0].lower()])
    number = match["number"].lstrip("0") or "0"
    minutes = UNIT_MINUTES[match["unit"][0].lower()]
    if len(number) > MAX_NUMBER_DIGITS or int(number) * minutes > MAX_AHEAD // timedelta(minutes=1):
        raise BadWhen("that is longer than 366 days", forms)
    if int(number) == 0:
        raise BadWhen("the time must be at least 1 minute", forms)
    return timedelta(minutes=int(number) * minutes)


def _span(delta: timedelta) -> str:
    """``every {span}``: "30 minutes", "2 hours", "day"."""
    minutes = delta // timedelta(minutes=1)
    for unit, size in (("day", 24 * 60), ("hour", 60), ("minute", 1)):
        if minutes % size == 0:
            count = minutes // size
            return unit if count == 1 else f"{count} {unit}s"
    raise AssertionError("every span is a whole number of minutes")


def _next_wall_time(wall: time, zone: ZoneInfo, now: datetime) -> datetime:
    """The first instant after ``now`` at which clocks in ``zone`` read ``wall``.

    A wall time skipped by a DST change (02:30 on a spring-forward night) resolves to
    the same instant as the offset before the change gives, i.e. just after the gap
    (03:30); a repeated one resolves to its first occurrence.
    """
    today: date = now.astimezone(zone).date()
    for day in (today, today + timedelta(days=1), today + timedelta(days=2)):
        candidate = datetime.combine(day, wall, tzinfo=zone).astimezone(UTC)
        if candidate > now:
            return candidate
    raise AssertionError("a wall time recurs within two days")


def _rest(text: str, match: re.Match[str]) -> str:
    return text[match.end() :].strip()


def _shorten(reason: str, limit: int = 100) -> str:
    """APScheduler's reason for rejecting a crontab, trimmed for a chat message."""
    reason = (reason.splitlines() or ["invalid"])[0].removeprefix("Error validating expression ")
    return reason if len(reason) <= limit else reason[: limit - 1] + "…"


def _quoted(text: str, limit: int = 30) -> str:
    """``text`` for an error message: first word only, cut short, control bytes escaped."""
    word = text.split(maxsplit=1)[0] if text.split() else text
    if len(word) > limit:
        word = word[: limit - 1] + "…"
    return repr(word) if word else "an empty message"
