"""Text that people (and models) really send, and text nobody should, for property tests."""

from __future__ import annotations

from hypothesis import strategies as st

# Characters that have broken chat bots: NUL (PostgreSQL text rejects it), lone
# surrogates (UTF-8 cannot encode them; JSON's "\ud800" decodes to one), bidi
# controls and right-to-left letters, zero-width characters, a BOM, line and
# paragraph separators, and the Markdown that matters here.
AWKWARD = [
    "\x00", "\ud800", "\udfff", "\ud83d", "\ude00",
    "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff",
    "\u200e", "\u200f", "\u202a", "\u202e", "\u2066", "\u2069",
    "שלום", "مرحبا", "\u0301", "👩‍💻", "🇫🇷",
    "\r", "\n", "\t", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u2029", "\u3000",
    "`", "```", "~~~", "*", "_", "<@U123>", "<@!42>", "@everyone",
]  # fmt: skip

any_char = st.one_of(st.characters(exclude_categories=[]), st.sampled_from(AWKWARD))
"""Any code point, surrogates included, or an awkward piece of text."""

any_text = st.lists(any_char, max_size=300).map("".join)
"""Text from everywhere in Unicode, weighted towards what breaks chat bots."""

storable_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))
"""Any text a database and a platform take as it is."""

_word = st.one_of(
    st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789"), min_size=1, max_size=12),
    st.sampled_from(
        ["é", "😀", "中文", "שלום", "\u200b", "`x`", "**b**", "a`b", "~", "``", "```", "~~~"]
    ),
)
_prose_line = st.lists(_word, max_size=60).map(" ".join)
_fence_line = st.builds(
    lambda indent, marker, info: indent + marker + info,
    st.sampled_from(["", " ", "   "]),
    st.sampled_from(["```", "````", "~~~", "~~~~~"]),
    st.sampled_from(["", "python", "py", " js ", "c++", "objective-c", "x`y", "~"]),
)
_code_line = st.builds(
    lambda indent, body: indent + body,
    st.sampled_from(["", "    ", "\t"]),
    st.text(st.sampled_from("xy=()[]:;.`~ #\"'"), max_size=60),
)
markdown_text = st.lists(
    st.one_of(_prose_line, _fence_line, _code_line, st.just("")), max_size=60
).map("\n".join)
"""Chat Markdown: prose, code fences of both kinds (some never closed), code lines."""


# The <when> of `!schedule add` and `!remind`: every form, with numbers, units, days
# and crontab fields that are right, wrong and absurd.
UNITS = [
    "m", "min", "mins", "minute", "minutes", "h", "hr", "hrs", "hour", "hours",
    "d", "day", "days", "M", "Hours", "s", "w", "mo", "minutess",
]  # fmt: skip
CRON_FIELDS = [
    "*", "*/5", "1-5", "mon-fri", "sun", "7", "0", "L", "?", "5#2", "*/0", "0-7/2", "2-1",
    "jan", "31", "30", "29", "1,15", "last", "last fri", "60", "24", "32", "-1", "a-b",
    "1-", "-", "/", "*/", "0/0", "1-7", "6-7", "sat-sun", "mon,wed,fri", "*/99", "é",
]  # fmt: skip
COMMON_WHENS = [
    "daily 09:00", "weekly fri 17:30", "every 30m", "every hour", "in 2h", "at 14:30",
    '"0 9 * * 1-5"', "'*/15 * * * *'", '"0 0 31 2 *"', "in 90 minutes", "at 24:00",
]  # fmt: skip
_numbers = st.one_of(
    st.integers(0, 99).map(str),
    st.integers(0, 10**30).map(str),
    st.sampled_from(["007", "0" * 40 + "5", "٣", "²", "-1", "1.5"]),
)
_units = st.sampled_from(UNITS)
_times = st.builds(lambda h, m: f"{h}:{m}", _numbers, _numbers)
_days = st.sampled_from(["mon", "monday", "Tue", "SUNDAY", "sun", "x", "mo", "weds", "7"])
_crontabs = st.builds(
    lambda fields, quote: f"{quote}{' '.join(fields)}{quote}",
    st.lists(st.one_of(st.sampled_from(CRON_FIELDS), _numbers), max_size=7),
    st.sampled_from(['"', "'", "“"]),
)
whens = st.one_of(
    st.sampled_from(COMMON_WHENS),
    st.builds("daily {}".format, _times),
    st.builds("weekly {} {}".format, _days, _times),
    st.builds("every {}{}{}".format, _numbers, st.sampled_from(["", " ", "\n"]), _units),
    st.builds("in {}{}{}".format, _numbers, st.sampled_from(["", " "]), _units),
    st.builds("at {}".format, _times),
    _crontabs,
)
"""The <when> of a scheduling command, right or wrong."""
