"""The admin page in a real browser: the login and its limit, each view, and a skill
switched off there being refused in chat."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from confab.adapters.web import WebAdapter
from confab.bot.lab.eval_store import record
from confab.bot.lab.evaluate import Evaluation, LossScore, TaskScore
from confab.bot.llm.registry import ModelRegistry
from confab.bot.testing import ScriptedBackend
from tests.bot.web_helpers import Served, serving
from tests.web.conftest import ADMIN_TOKEN

WEB = {"web": (WebAdapter, WebAdapter)}
ADMIN = {"web": {"enabled": True, "port": 0, "login_attempts": 3, "login_window_s": 600}}


@pytest.fixture(autouse=True)
def _admin_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFAB_ADMIN_TOKEN", ADMIN_TOKEN)


async def _log_in(page: Page, served: Served, secret: str = ADMIN_TOKEN) -> None:
    await page.goto(f"{served.url}/admin/")
    await page.fill("#who", "grace")
    await page.fill("#secret", secret)
    await page.click("text=Log in")


async def _chat(browser: Browser, served: Served, channel: str = "general") -> Page:
    page = await browser.new_page()
    await page.goto(f"{served.url}/chat/?name=ada&channel={channel}")
    await expect(page.locator("#status")).to_have_text("connected")
    return page


async def test_a_skill_switched_off_for_a_channel_is_refused_there_in_chat(
    browser: Browser, db_url: str
) -> None:
    async with serving(db_url, ScriptedBackend(), extra=WEB, overrides=ADMIN) as served:
        chat = await _chat(browser, served)
        box = chat.locator(".channel textarea")
        await box.fill("!ping")
        await box.press("Enter")
        await expect(chat.locator("article.message.bot .body").last).to_have_text("pong")
        admin = await browser.new_page()
        await _log_in(admin, served)
        await expect(admin.locator("h2")).to_have_text("Activity")
        await admin.goto(f"{served.url}/admin/skills?channel=web:general")
        row = admin.locator("#skill-ping")
        await expect(row).to_contain_text("on")
        await row.locator("text=Switch off").click()
        await expect(admin.locator("[role=status]")).to_have_text("ping is off in web:general.")
        await expect(admin.locator("#skill-ping td").nth(2)).to_have_text("off")
        await box.fill("!ping")
        await box.press("Enter")
        await expect(chat.locator("article.message.bot .body").last).to_contain_text(
            "!ping is switched off in this channel"
        )
        # Elsewhere it still answers, and the change is on record with who made it.
        other = await _chat(browser, served, "random")
        await other.locator(".channel textarea").fill("!ping")
        await other.locator(".channel textarea").press("Enter")
        await expect(other.locator("article.message.bot .body").last).to_have_text("pong")
        await admin.goto(f"{served.url}/admin/changes")
        await expect(admin.locator("table")).to_contain_text("switched ping off in web:general")
        await expect(admin.locator("table")).to_contain_text("web-admin:grace")


async def test_a_wrong_password_is_refused_and_then_every_login_is_limited(
    browser: Browser, db_url: str
) -> None:
    async with serving(db_url, ScriptedBackend(), extra=WEB, overrides=ADMIN) as served:
        page = await browser.new_page()
        for _ in range(3):
            await _log_in(page, served, "not-the-token")
            await expect(page.locator("[role=alert]")).to_have_text(
                "That is not the admin password or token."
            )
        await _log_in(page, served)  # the right token, too late
        await expect(page.locator("[role=alert]")).to_contain_text("Too many failed attempts")
        await page.goto(f"{served.url}/admin/activity")
        await expect(page).to_have_url(f"{served.url}/admin/login")


async def test_the_admin_page_is_off_without_a_credential(
    browser: Browser, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CONFAB_ADMIN_TOKEN")
    async with serving(db_url, ScriptedBackend(), extra=WEB, overrides=ADMIN) as served:
        status, _ = await served.get("/admin/login")
        assert status == 404


async def test_a_change_without_the_session_token_is_refused(browser: Browser, db_url: str) -> None:
    async with serving(db_url, ScriptedBackend(), extra=WEB, overrides=ADMIN) as served:
        page = await browser.new_page()
        await _log_in(page, served)
        await page.goto(f"{served.url}/admin/skills?channel=web:general")
        response = await page.request.post(
            f"{served.url}/admin/skills",
            form={"channel": "web:general", "skill": "ping", "on": "0"},
            headers={"Origin": served.url},
        )
        assert response.status == 403
        settings = served.app.settings
        assert settings is not None
        assert (await settings.get("web", "general")).enabled_skills is None


async def test_every_admin_view(
    browser: Browser, db_url: str, screenshots: Path, tmp_path: Path
) -> None:
    overrides = {
        **ADMIN,
        "knowledge": {"enabled": True},
        "model": {"loras_dir": str(tmp_path / "loras")},
    }
    data = tmp_path / "eval.jsonl"
    data.write_text("{}\n")
    bundled = ModelRegistry(named={}, loras_dir=tmp_path / "loras").find("bundled")
    score = Evaluation("bundled", LossScore(2.4563, 11.66, 812), TaskScore(7, 12, ()))
    record(bundled.results_file, score, data)
    async with serving(
        db_url, ScriptedBackend(["Stand-ups are at 9:30."]), extra=WEB, overrides=overrides
    ) as served:
        served.keyboard.type("!schedule add every 30m summarise 1h")
        chat = await _chat(browser, served)
        await chat.locator(".channel textarea").fill("when is the stand-up?")
        await chat.locator(".channel textarea").press("Enter")
        await expect(chat.locator("article.message.bot")).to_contain_text("9:30")
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await _log_in(page, served)
        await expect(page.locator(".figure").first).to_be_visible()
        await page.screenshot(path=screenshots / "admin-activity.png", full_page=True)

        await page.goto(f"{served.url}/admin/conversations?q=stand-up")
        await expect(page.locator("h3").first).to_contain_text("turns with")
        await expect(page.locator("table").first).to_contain_text("when is the stand-up?")
        await page.screenshot(path=screenshots / "admin-conversations.png", full_page=True)

        await page.goto(f"{served.url}/admin/skills?channel=web:general")
        await page.screenshot(path=screenshots / "admin-skills.png", full_page=True)

        await page.goto(f"{served.url}/admin/jobs")
        row = page.locator("tr", has_text="summarise")
        await expect(row).to_contain_text("console:dm")
        await row.locator("text=Pause").click()
        await expect(page.locator("tr", has_text="summarise")).to_contain_text("paused")
        await page.screenshot(path=screenshots / "admin-jobs.png", full_page=True)
        await page.locator("tr", has_text="summarise").locator("text=Resume").click()
        await page.locator("tr", has_text="summarise").locator("text=Remove").click()
        await expect(page.locator("table")).to_contain_text("No jobs are scheduled.")

        await page.goto(f"{served.url}/admin/models")
        await expect(page.locator("table").first).to_contain_text("task 7/12, loss 2.456")
        await page.select_option("select[name=name]", "bundled")
        await page.fill("input[name=channel]", "web:general")
        await page.click("text=Use")
        await expect(page.locator("[role=status]")).to_have_text(
            "bundled now answers in web:general."
        )
        assert served.app.served is not None
        assert await served.app.served.own_choice("web", "general") == "bundled"
        choices = page.locator("h3:has-text('Per-channel choices') + table")
        await expect(choices).to_contain_text("web:general")
        evaluations = page.locator("h3:has-text('Evaluations') + table")
        await expect(evaluations).to_contain_text("2.4563")
        await expect(evaluations).to_contain_text("7/12")
        await page.screenshot(path=screenshots / "admin-models.png", full_page=True)

        handbook = tmp_path / "handbook.md"
        handbook.write_text("# Stand-ups\n\nThe team's stand-up is at 9:30 in the big room.\n")
        await page.goto(f"{served.url}/admin/knowledge")
        await page.set_input_files("input[type=file]", handbook)
        await page.click("text=Add")
        await expect(page.locator("[role=status]")).to_contain_text("handbook.md: added")
        await expect(page.locator("table")).to_contain_text("Stand-ups")
        await page.screenshot(path=screenshots / "admin-knowledge.png", full_page=True)
        await page.locator("tr", has_text="handbook.md").locator("text=Remove").click()
        await expect(page.locator("table")).to_contain_text("No documents yet.")

        await page.goto(f"{served.url}/admin/config")
        config = page.locator("pre.config")
        await expect(config).to_contain_text("[web]")
        await expect(config).to_contain_text('admin_token_env = "CONFAB_ADMIN_TOKEN"  # set')
        assert ADMIN_TOKEN not in await page.content()
        await page.screenshot(path=screenshots / "admin-config.png", full_page=True)

        await page.goto(f"{served.url}/admin/changes")
        for change in (
            "paused job",
            "removed job",
            "chose bundled in web:general",
            "added document handbook.md",
        ):
            await expect(page.locator("table")).to_contain_text(change)
        await expect(page.locator("table")).to_contain_text("console:you")  # the job, from chat
        await page.screenshot(path=screenshots / "admin-changes.png", full_page=True)
