"""The web chat in a real browser: streamed answers, several people, threads, escaping."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from playwright.async_api import Browser, Page, expect

from confab.adapters.web import WebAdapter
from confab.bot.testing import ScriptedBackend
from tests.bot.web_helpers import Served, serving

WEB = {"web": (WebAdapter, WebAdapter)}
ANSWER = (
    "Here is **bold** advice and some code:\n\n```python\nprint('hi')\n```\n"
    "That is all for now, friend."
)


async def _join(
    browser: Browser, served: Served, name: str, channel: str = "general", **options: Any
) -> Page:
    page = await browser.new_page(**options)
    await page.goto(f"{served.url}/chat/")
    await page.fill("#name", name)
    await page.fill("#channel", channel)
    await page.click("text=Join")
    await expect(page.locator("#status")).to_have_text("connected")
    return page


async def _say(page: Page, text: str, *, ask: bool = True, where: str = ".channel") -> None:
    box = page.locator(f"{where} textarea")
    await box.fill(text)
    if not ask:
        await page.locator(f"{where} input[name=ask]").uncheck()
    await box.press("Enter")


async def test_an_answer_streams_in_and_renders_its_markdown(
    browser: Browser, db_url: str, screenshots: Path
) -> None:
    model = ScriptedBackend([ANSWER], delay_s=0.12)
    async with serving(db_url, model, extra=WEB) as served:
        page = await _join(browser, served, "ada")
        await _say(page, "how do I print?")
        await expect(page.locator("article.message:not(.bot)")).to_contain_text("how do I print?")
        answer = page.locator("article.message.bot .body")
        # Part of the answer shows while the rest is still being written ...
        await expect(answer).to_contain_text("Here is")
        partial = await answer.inner_text()
        assert "That is all for now" not in partial
        # ... and the whole of it, rendered, once it is done.
        await expect(answer).to_contain_text("That is all for now, friend.")
        await expect(answer.locator("strong")).to_have_text("bold")
        await expect(answer.locator("pre.code")).to_contain_text("print('hi')")
        await page.screenshot(path=screenshots / "chat.png", full_page=True)
        # The answer is stored once: a new tab shows the same conversation, and its
        # times in the tab's own timezone.
        again = await _join(browser, served, "ada", timezone_id="Asia/Kolkata")
        await expect(again.locator("article.message.bot .body strong")).to_have_text("bold")
        time = again.locator("article.message.bot time")
        sent = datetime.fromisoformat(await time.get_attribute("datetime") or "")
        await expect(time).to_have_text(f"{sent.astimezone(ZoneInfo('Asia/Kolkata')):%H:%M}")


async def test_two_tabs_in_a_channel_see_each_other_and_share_threads(
    browser: Browser, db_url: str, screenshots: Path
) -> None:
    async with serving(db_url, ScriptedBackend(["Noted."]), extra=WEB) as served:
        alice = await _join(browser, served, "alice")
        bob = await _join(browser, served, "bob")
        elsewhere = await _join(browser, served, "carol", "random")
        await _say(alice, "morning, bob", ask=False)
        await expect(bob.locator("#messages")).to_contain_text("morning, bob")
        await expect(bob.locator("#messages article b").first).to_have_text("alice")
        await _say(bob, "morning!", ask=False)
        await expect(alice.locator("#messages")).to_contain_text("morning!")
        # Chatter is not answered, and another channel sees none of it.
        assert await alice.locator("article.message.bot").count() == 0
        assert await elsewhere.locator("#messages article").count() == 0
        # Bob answers alice's message in a thread, asking the bot there too.
        await (
            bob.locator("article", has_text="morning, bob").locator("text=reply in thread").click()
        )
        await _say(bob, "@Confab note the stand-up", ask=False, where="#thread")
        await expect(bob.locator("#thread")).to_contain_text("Noted.")
        await expect(
            alice.locator("article", has_text="morning, bob").locator(".replies")
        ).to_have_text("2 replies")
        await (
            alice.locator("article", has_text="morning, bob")
            .locator("text=reply in thread")
            .click()
        )
        await expect(alice.locator("#thread")).to_contain_text("note the stand-up")
        await expect(alice.locator("#thread")).to_contain_text("Noted.")
        assert "Noted." not in await alice.locator("#messages").inner_text()
        await alice.screenshot(path=screenshots / "chat-thread.png", full_page=True)


async def test_a_message_of_html_and_script_shows_as_text(browser: Browser, db_url: str) -> None:
    attack = (
        '<img src=x onerror="window.hacked=1"><script>window.hacked=2</script> '
        "[x](javascript:window.hacked=3)"
    )
    async with serving(db_url, ScriptedBackend([attack]), extra=WEB) as served:
        page = await _join(browser, served, '<i onclick="hacked=4">m</i>')
        await _say(page, attack)
        bot = page.locator("article.message.bot .body")
        await expect(bot).to_contain_text("<script>window.hacked=2</script>")
        mine = page.locator("article.message:not(.bot)")
        await expect(mine.locator(".body")).to_contain_text('<img src=x onerror="window.hacked=1">')
        await expect(mine.locator(".meta b")).to_have_text('<i onclick="hacked=4">m</i>')
        assert (
            await page.locator(
                "#messages img, #messages script, #messages a[href^=javascript]"
            ).count()
            == 0
        )
        await page.click("article.message .meta b")
        assert await page.evaluate("window.hacked") is None


async def test_commands_work_as_elsewhere(browser: Browser, db_url: str) -> None:
    async with serving(db_url, ScriptedBackend(), extra=WEB) as served:
        page = await _join(browser, served, "ada")
        await _say(page, "!ping", ask=False)
        await expect(page.locator("article.message.bot").last).to_contain_text("pong")
        await _say(page, "/help")
        await expect(page.locator("article.message.bot").last).to_contain_text("ask")
