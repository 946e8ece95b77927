"""Slack mrkdwn rendering: what a Slack user sees of the Markdown Confab writes."""

from __future__ import annotations

import random
import re
import time

import pytest

from confab.adapters.slack.mrkdwn import to_mrkdwn

CASES = [
    # Plain text only has Slack's three reserved characters escaped.
    ("plain", "Hello, world. It's 5 > 3 & 2 < 4!", "Hello, world. It's 5 &gt; 3 &amp; 2 &lt; 4!"),
    ("empty", "", ""),
    ("whitespace", "  \n\t", "  \n\t"),
    ("crlf", "a\r\nb\rc", "a\nb\nc"),
    # Emphasis: Markdown's single * is italics, Slack's is bold.
    ("bold", "**bold** and __bold__", "*bold* and *bold*"),
    ("italic", "*it* and _it_", "_it_ and _it_"),
    ("bold italic", "***both***", "*_both_*"),
    ("strike", "~~gone~~", "~gone~"),
    ("nested", "**a *b* c** and *a **b** c*", "*a _b_ c* and _a *b* c_"),
    ("arithmetic", "2 * 3 * 4 = 24", "2 * 3 * 4 = 24"),
    ("snake case", "call snake_case_name or __init__", "call snake_case_name or *init*"),
    ("unbalanced", "**open and *half", "**open and *half"),
    ("escaped", r"\*not\* \<b\>", "*not* &lt;b&gt;"),
    # Headings become a bold line; bold inside is dropped, Slack cannot nest it.
    ("heading", "# Title\n### Sub **bold** ##", "*Title*\n*Sub bold*"),
    ("hashtag", "#general is #1", "#general is #1"),
    # Links: only web and mail targets become Slack links.
    ("link", "[docs](https://x.io/a?b=1&c=2)", "<https://x.io/a?b=1&amp;c=2|docs>"),
    ("mailto", "[mail me](mailto:a@b.c)", "<mailto:a@b.c|mail me>"),
    ("pipe in url", "[x](https://x.io/a|b)", "<https://x.io/a%7Cb|x>"),
    ("parens in url", "[P](https://w.org/P_(x))", "<https://w.org/P_(x)|P>"),
    ("formatted label", "[**big** `x`](https://x.io)", "<https://x.io|*big* `x`>"),
    ("relative link", "[readme](./README.md)", "readme (./README.md)"),
    ("script link", "[x](javascript:alert(1))", "x (javascript:alert(1))"),
    ("autolink", "see <https://x.io/?a&b>", "see <https://x.io/?a&amp;b>"),
    ("bare url", "https://x.io/a_b_c?d=1&e", "https://x.io/a_b_c?d=1&amp;e"),
    # Blocks.
    ("bullets", "- a\n  * b\n    + c\n1. one", "• a\n  • b\n    • c\n1. one"),
    ("quote", "> **said** <x>\n> > nested\n>", "> *said* &lt;x&gt;\n> &gt; nested\n>"),
    ("rules", "---\n* * *\n___", "———\n———\n———"),
    (
        "table",
        "| a | b |\n|---|:-:|\n| *1* | <2> |\nafter",
        "```\n| a | b |\n|---|:-:|\n| *1* | &lt;2&gt; |\n```\nafter",
    ),
    # Code: verbatim apart from escaping; the language tag is dropped.
    (
        "inline code",
        "run `a **b** <c> [d](https://e)` now",
        "run `a **b** &lt;c&gt; [d](https://e)` now",
    ),
    ("double ticks", "``a ` b``", "`a ` b`"),
    ("lone tick", "it`s", "it`s"),
    (
        "fence",
        "```python\nif a < b && c:\n    **x** [y](https://z)\n```\n*after*",
        "```\nif a &lt; b &amp;&amp; c:\n    **x** [y](https://z)\n```\n_after_",
    ),
    ("tilde fence", "~~~\n<!here>\n~~~", "```\n&lt;!here&gt;\n```"),
    ("indented fence", "- x\n  ```\n  code\n    more\n  ```", "• x\n```\ncode\n  more\n```"),
    ("unclosed fence", "```\n# not a heading", "```\n# not a heading\n```"),
]


@pytest.mark.parametrize(
    ("markdown", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_converts(markdown: str, expected: str) -> None:
    assert to_mrkdwn(markdown) == expected


@pytest.mark.parametrize(
    "mention", ["<!channel>", "<!here>", "<!everyone>", "<@U123>", "<#C1|x>", "<!subteam^S1>"]
)
def test_mentions_are_inert(mention: str) -> None:
    inert = mention.replace("<", "&lt;").replace(">", "&gt;")
    assert to_mrkdwn(f"hi {mention} **there**") == f"hi {inert} *there*"
    assert to_mrkdwn(f"`{mention}`") == f"`{inert}`"
    assert to_mrkdwn(f"```\n{mention}\n```") == f"```\n{inert}\n```"


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("[everyone](!channel)", "everyone (!channel)"),
        ("[ada](@U1)", "ada (@U1)"),
        ("[x](<!channel>)", "x (&lt;!channel&gt;)"),
        ("[x](https://a.io/<!here>)", "x (https://a.io/&lt;!here&gt;)"),
        ("<https://a.io|<!here>>", "&lt;https://a.io|&lt;!here&gt;&gt;"),
        (
            "[<!here> <https://b.io>](https://a.io)",
            "<https://a.io|&lt;!here&gt; &lt;https://b.io&gt;>",
        ),
    ],
)
def test_links_cannot_carry_mentions(markdown: str, expected: str) -> None:
    assert to_mrkdwn(markdown) == expected


@pytest.mark.parametrize(
    "adversarial",
    [
        "*" * 100_000,
        "[" * 50_000,
        "`" * 100_000,
        "*a" * 50_000,
        "_a " * 50_000,
        "[a](" * 50_000,
        "<http" * 50_000,
        "` " * 50_000,
        "\\" * 100_000,
        "# " + " " * 100_000 + "x",
        "**a *b _c ~~d [e](" * 10_000,
        "| a |\n|-|\n" + "|x\n" * 50_000,
        "```\n" * 50_000,
        "x \ud800 \x00 **\udfff** y" * 10_000,
    ],
    ids=lambda s: repr(s[:12]),
)
def test_adversarial_input_is_fast(adversarial: str) -> None:
    started = time.perf_counter()
    to_mrkdwn(adversarial)
    assert time.perf_counter() - started < 2


def test_a_megabyte_of_chat_is_fast() -> None:
    text = "Hi **there** [x](https://a.io) `c` _d_ <!here> & 2 * 3\n- item\n" * 16_000
    started = time.perf_counter()
    to_mrkdwn(text)
    assert time.perf_counter() - started < 5


# A link this module produced: the only place a raw `<` may appear.
PRODUCED_LINK = re.compile(r"<(?:https?://|mailto:)[^\s<>|]*(?:\|[^<>\n]*)?>", re.IGNORECASE)
# Markdown punctuation, letters, and fragments the converter treats specially.
PIECES = [
    *"*_~`[]()<>&!@|#\\- :\nab",
    *["**", "~~", "```", "](", "> ", "- ", "# ", "https://x.io", "mailto:a@b", "<!channel>"],
    "[a](https://x.io/?a&b)",
]


def test_random_markdown_is_always_safe() -> None:
    rng = random.Random(20240601)
    for _ in range(500):
        markdown = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 60)))
        out = to_mrkdwn(markdown)
        # Every '&' we emit starts one of the three entities.
        assert "&" not in re.sub(r"&(?:amp|lt|gt);", "", out), (markdown, out)
        # Raw brackets: only our links, and '>' only as a quote marker.
        bare = PRODUCED_LINK.sub("", out)
        assert "<" not in bare, (markdown, out)
        assert all(">" not in line[1:] for line in bare.split("\n")), (markdown, out)
        if re.search(r"^[ \t]*(```|~~~)", markdown, re.MULTILINE):
            continue  # a fence's language tag is dropped, with whatever it holds
        # Every '&', '<' and '>' of the input is escaped or became our link or quote.
        assert out.count("&amp;") == markdown.count("&"), (markdown, out)
        for char, entity in (("<", "&lt;"), (">", "&gt;")):
            escaped, raw = out.count(entity), out.count(char)
            assert escaped <= markdown.count(char) <= escaped + raw, (markdown, out)
