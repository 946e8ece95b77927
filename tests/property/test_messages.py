"""Commands read from any text, and message text that every database and platform takes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from confab.bot.messages import (
    NAME_PATTERN,
    Author,
    Message,
    args_after_command,
    clean_text,
    parse_command,
)
from tests.property.strategies import any_text, storable_text

# What config validation lets through: non-empty, no whitespace at either end.
prefixes = st.lists(
    st.text(st.characters(exclude_categories=[]), min_size=1, max_size=3).filter(
        lambda prefix: prefix == prefix.strip()
    )
    | st.sampled_from(["!", "?", "!!", "/", ".", "$", "confab:", "<@U1>"]),
    min_size=1,
    max_size=4,
)
names = st.from_regex(NAME_PATTERN, fullmatch=True)
separators = st.sampled_from([" ", "  ", "\n", "\t", " \n ", "\u3000", "\u2028"])


@given(text=any_text, prefixes=prefixes)
def test_any_text_is_a_command_with_a_valid_name_or_none(text: str, prefixes: list[str]) -> None:
    parsed = parse_command(text, prefixes)
    if parsed is None:
        return
    name, args = parsed
    assert NAME_PATTERN.match(name)
    stripped = text.lstrip()
    used = [p for p in prefixes if stripped.startswith(p)]
    assert used, "a command starts with one of the prefixes"
    after = stripped[len(max(used, key=len)) :]
    assert after.split(maxsplit=1)[0].lower() == name
    assert args == args_after_command(after)
    assert text.rstrip().endswith(args), "the arguments are the end of the text, as typed"


@given(
    prefix=st.sampled_from(["!", "?", "!!", "confab:"]),
    name=names,
    separator=separators,
    args=any_text,
    before=st.sampled_from(["", " ", "\n  "]),
)
def test_a_typed_command_is_read_back(
    prefix: str, name: str, separator: str, args: str, before: str
) -> None:
    parsed = parse_command(f"{before}{prefix}{name.upper()}{separator}{args}", [prefix])
    assert parsed == (name, args.strip())


@given(prefixes=prefixes, separator=separators, text=any_text)
def test_a_prefix_followed_by_a_space_is_not_a_command(
    prefixes: list[str], separator: str, text: str
) -> None:
    assert parse_command(prefixes[0] + separator + text, prefixes[:1]) is None


@given(text=any_text)
def test_arguments_after_any_command_word_are_the_stripped_rest(text: str) -> None:
    args = args_after_command(text)
    assert args == args.strip()
    assert text.rstrip().endswith(args)
    assert len(args) < len(text) or not args


def storable(text: str) -> str:
    """What clean_text should make of ``text``, worked out one character at a time
    (NULs go first: a pair they split is still a pair)."""
    text = text.replace("\x00", "")
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        low = text[index + 1] if index + 1 < len(text) else ""
        if "\ud800" <= char <= "\udbff" and "\udc00" <= low <= "\udfff":
            out.append(chr(0x10000 + ((ord(char) - 0xD800) << 10) + ord(low) - 0xDC00))
            index += 2
            continue
        out.append("\ufffd" if "\ud800" <= char <= "\udfff" else char)
        index += 1
    return "".join(out)


@given(text=any_text)
def test_clean_text_drops_nul_and_mends_surrogates_and_nothing_else(text: str) -> None:
    cleaned = clean_text(text)
    assert cleaned == storable(text)
    cleaned.encode("utf-8")  # which any database driver and platform JSON does
    assert clean_text(cleaned) == cleaned


@given(text=storable_text)
def test_storable_text_is_left_as_it_is(text: str) -> None:
    assert clean_text(text) == text


def test_what_clean_text_does_to_nul_and_surrogates() -> None:
    assert clean_text("a\x00b") == "ab"
    assert clean_text("lone \ud800 and \udfff") == "lone \ufffd and \ufffd"
    assert clean_text("pair \ud83d\ude00") == clean_text("pair \ud83d\x00\ude00") == "pair 😀"
    assert clean_text("שלום \u200b\u200f x") == "שלום \u200b\u200f x"


@given(text=any_text, name=any_text, args=any_text)
def test_every_message_holds_storable_text(text: str, name: str, args: str) -> None:
    message = Message("test", "c\x00", Author("u\ud800", name), text, args=args)
    for value in (message.text, message.args, message.channel, message.author.id):
        value.encode("utf-8")
        assert "\x00" not in value
    assert message.text == clean_text(text)
    assert message.author.name == clean_text(name)
    assert message.with_command("ask", args).text == message.text
