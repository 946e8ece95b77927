"""Properties of ``to_mrkdwn`` over any text a model may write.

Slack reads ``<@U123>``, ``<#C123>``, ``<!here>``, ``<!channel>``, ``<!everyone>``,
``<!subteam^S123>`` (and ``<!date^...>`` and the like) as markup, wherever ``<``
stands unescaped. So the rule checked here is strict: in what Confab posts, the
only unescaped ``<`` opens a web or mail link the converter built, the only
``>`` closes such a link or marks a quote at the start of a line, and every
``&`` starts one of Slack's three entities. Whatever the input, no ping-capable
token can be in the output at all, and the converter never raises.
"""

from __future__ import annotations

import html
import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from confab.adapters.slack.mrkdwn import to_mrkdwn

# A link the converter built: <https://...>, <mailto:...> or either with |label.
BUILT_LINK = re.compile(r"<(?:https?://|mailto:)[^\s<>|]*(?:\|[^<>\n]*)?>", re.IGNORECASE)
ENTITY = re.compile(r"&(?:amp|lt|gt);")
PINGS = [
    "<!everyone>",
    "<!here>",
    "<!channel>",
    "<!here|here>",
    "<!subteam^S123>",
    "<!subteam^S123|@team>",
    "<!date^1392734382^{date}|Feb 18>",
    "<@U123>",
    "<@U123|ada>",
    "<@W123>",
    "<#C123>",
    "<#C123|general>",
    "@everyone",
    "@here",
    "@channel",
]


def slack_markup(text: str) -> list[str]:
    """What in ``text`` Slack would read as markup other than a built link (so
    possibly a mention), or as a stray entity: empty for text that is safe to post."""
    problems: list[str] = []
    bare = BUILT_LINK.sub("", text)
    problems += [bare[i : i + 20] for i, char in enumerate(bare) if char == "<"]
    for line in bare.split("\n"):
        quote = 1 if line.startswith(">") else 0  # the marker of a quoted line
        problems += [line[i : i + 20] for i, char in enumerate(line) if char == ">" and i >= quote]
    problems += [m.group() for m in re.finditer(r"&.{0,5}", ENTITY.sub("", text))]
    return problems


# Pieces that Markdown or Slack treat specially, and pings in every context the
# converter handles differently: headings, bullets, quotes, tables, code, links.
FRAGMENTS = st.sampled_from(
    [
        *"*_~`[]()<>&!@#^|\\- :\n\tx",
        "**",
        "~~",
        "```",
        "~~~",
        "](",
        "> ",
        "- ",
        "# ",
        "| --- |",
        "https://x.io",
        "mailto:a@b.c",
        "<https://x.io/?a&b>",
        "<mailto:a@b.c>",
        "&lt;",
        "&gt;",
        "&amp;",
        "&#60;",
        "&lt;!here&gt;",
    ]
)
PING = st.sampled_from(PINGS)
IN_CONTEXT = st.tuples(
    st.sampled_from(
        [
            "{}",
            "# {}",
            "- {}",
            "> {}",
            "> > {}",
            "**{}**",
            "_{}_",
            "`{}`",
            "```\n{}\n```",
            "| {} | b |\n|---|---|\n| {} | c |",
            "[{}](https://x.io)",
            "[x]({})",
            "[x](https://x.io/{})",
            "[x](https://x.io|{})",
            "<https://x.io|{}>",
            "<https://x.io/{}>",
            "<{}>",
            "[**{}** `{}`](mailto:a@b.c)",
            "[<https://b.io> {}](https://a.io)",
        ]
    ),
    PING,
).map(lambda pair: pair[0].replace("{}", pair[1]))
MARKDOWN = st.lists(st.one_of(FRAGMENTS, PING, IN_CONTEXT), max_size=40).map("".join)
ANY_TEXT = st.one_of(st.text(), MARKDOWN)


@settings(max_examples=1000, deadline=None)
@given(ANY_TEXT)
@example("<!everyone> <!here> <!channel> <!subteam^S123> <@U123> <#C123>")
@example("&lt;!here&gt; & < > [x](<!channel>) [<@U1>](https://x.io)")
def test_no_text_makes_a_ping_or_an_error(markdown: str) -> None:
    out = to_mrkdwn(markdown)
    assert isinstance(out, str)
    assert slack_markup(out) == [], out


@settings(max_examples=300, deadline=None)
@given(st.lists(PING, min_size=1, max_size=5).map(" ".join), ANY_TEXT)
def test_every_ping_is_shown_as_text(pings: str, around: str) -> None:
    # In running text (no Markdown around it) a ping comes out escaped: visible, inert.
    plain = re.sub(r"[`\[\]()<>&~*_#|+\\\r\n-]", " ", around)
    text = f"{plain} {pings} {plain}"
    out = to_mrkdwn(text)
    assert out == html.escape(text, quote=False)
    assert slack_markup(out) == []


# A fenced code block's lines: anything but a line that would close the fence.
CODE_LINE = st.text(st.characters(exclude_characters="\r\n")).filter(
    lambda line: not re.fullmatch(r"`{3,}", line.strip())
)
# Text around it that cannot open a fence of its own.
OUTSIDE_LINE = st.text(st.characters(exclude_characters="\r\n")).filter(
    lambda line: not re.match(r"[ \t]*(`{3}|~{3})", line)
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(OUTSIDE_LINE, max_size=3),
    st.sampled_from(["", "python", "js", "text"]),
    st.lists(CODE_LINE, max_size=8),
    st.lists(OUTSIDE_LINE, max_size=3),
)
def test_a_code_block_keeps_every_character_of_its_code(
    before: list[str], language: str, code: list[str], after: list[str]
) -> None:
    markdown = "\n".join([*before, "```" + language, *code, "```", *after])
    out = to_mrkdwn(markdown)
    block = "\n".join(["```", *(html.escape(line, quote=False) for line in code), "```"])
    assert block in out
    assert html.unescape(block).split("\n")[1:-1] == code  # verbatim once unescaped
    assert slack_markup(out) == []


INLINE_CODE = st.text(st.characters(exclude_characters="`\r\n"), min_size=1).filter(
    lambda code: code.strip(" ") and not (code[0] == code[-1] == " ")
)
NO_CODE_TEXT = st.text(st.characters(exclude_characters="`[]\\\r\n"))


@settings(max_examples=300, deadline=None)
@given(NO_CODE_TEXT, INLINE_CODE, NO_CODE_TEXT)
def test_inline_code_keeps_every_character_of_its_code(before: str, code: str, after: str) -> None:
    out = to_mrkdwn(f"{before} `{code}` {after}")
    assert f"`{html.escape(code, quote=False)}`" in out
    assert slack_markup(out) == []


PLAIN = st.text(
    st.sampled_from("abcXYZ019 .,;:?!@'\"/=$%^{}"), max_size=80
)  # no Markdown, no Slack markup: @here and friends included


@settings(max_examples=200, deadline=None)
@given(PLAIN)
def test_text_without_markup_is_posted_unchanged(text: str) -> None:
    assert to_mrkdwn(text) == text
