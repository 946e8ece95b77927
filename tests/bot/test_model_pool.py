"""The model pool: each channel is answered by the model ``confab model use`` chose for
it, loaded once on first use; a choice that cannot be served falls back to the default."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from confab.bot.errors import ModelError
from confab.bot.llm.backend import ModelBackend
from confab.bot.llm.pool import RETRY_AFTER_S, ModelPool
from confab.bot.llm.registry import RegistryError
from confab.bot.testing import ChatHarness, ScriptedBackend
from confab.skills.qa import AskSkill
from confab.storage.served_models import ServedModels


class SlowToLoad(ScriptedBackend):
    """A model whose start takes a while, or fails, and counts how often it was started."""

    def __init__(self, answer: str, *, fail: bool = False) -> None:
        super().__init__([answer])
        self.name = answer
        self.starts = 0
        self.fail = fail

    async def start(self) -> None:
        self.starts += 1
        await asyncio.sleep(0.05)
        if self.fail:
            raise ModelError("The model could not be loaded.", "config.json is damaged")


class Models:
    """What the registry would resolve: a few named models and the config's."""

    def __init__(self, **named: SlowToLoad) -> None:
        self.named: dict[str | None, SlowToLoad] = {None: SlowToLoad("default"), **named}

    def __call__(self, choice: str | None) -> tuple[str, Callable[[], ModelBackend]]:
        if choice not in self.named:
            raise RegistryError(f"No model is called {choice}.")
        return f"key {choice}", lambda: self.named[choice]


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


async def harness_with_pool(
    harness: ChatHarness, models: Models, clock: Clock | None = None, max_loaded: int = 3
) -> tuple[ModelPool, ServedModels]:
    served = ServedModels(harness.database, harness.settings)
    pool = ModelPool(
        models,
        served.own_choice,
        served.default,
        max_loaded=max_loaded,
        retire_after_s=0.01,
        clock=clock or Clock(),
    )
    await pool.start(await served.default())
    harness.router.models = pool.for_channel
    return pool, served


async def test_each_channel_is_answered_by_its_model_loaded_once(tmp_path: Path) -> None:
    tarnwick = SlowToLoad("tarnwick")
    models = Models(tarnwick=tarnwick)
    async with ChatHarness([AskSkill], tmp_path) as harness:
        pool, served = await harness_with_pool(harness, models)
        await served.set_for_channel(harness.adapter.platform, "tarn", "tarnwick")

        assert await harness.ask("!ask hi", channel="general") == "default"
        first = [harness.ask("!ask hi", channel="tarn", author=f"p{i}") for i in range(3)]
        answers = await asyncio.gather(*first)  # each sees what was posted meanwhile
        assert {line for answer in answers for line in answer.splitlines()} == {"tarnwick"}
        assert len(tarnwick.prompts) == 3
        assert await harness.ask("!ask again", channel="tarn") == "tarnwick"
        assert tarnwick.starts == 1  # three at once waited for one load
        assert pool.loaded == ["key None", "key tarnwick"]

        await served.set_for_channel(harness.adapter.platform, "tarn", None)
        assert await harness.ask("!ask hi", channel="tarn") == "default"
        await served.set_default("tarnwick")  # every channel without its own choice
        assert await harness.ask("!ask hi", channel="general") == "tarnwick"
        await pool.close()
    assert tarnwick.closed and models.named[None].closed


async def test_a_choice_that_cannot_be_served_is_answered_by_the_default_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = SlowToLoad("broken", fail=True)
    tarnwick = SlowToLoad("tarnwick")
    clock = Clock()
    async with ChatHarness([AskSkill], tmp_path) as harness:
        pool, served = await harness_with_pool(
            harness, Models(broken=broken, tarnwick=tarnwick), clock
        )
        platform = harness.adapter.platform
        await served.set_for_channel(platform, "a", "deleted-lora")
        await served.set_for_channel(platform, "b", "broken")

        assert await harness.ask("!ask hi", channel="a") == "default"
        assert await harness.ask("!ask hi", channel="a") == "default"
        complaints = [r for r in caplog.records if "deleted-lora cannot serve" in r.message]
        assert len(complaints) == 1  # not once per message
        assert "No model is called deleted-lora" in complaints[0].message

        waiting = [harness.ask("!ask hi", channel="b", author=f"p{i}") for i in range(3)]
        answers = await asyncio.gather(*waiting)
        assert {line for answer in answers for line in answer.splitlines()} == {"default"}
        assert "config.json is damaged" in caplog.text
        assert broken.starts == 1 and broken.closed  # its worker is not left running

        # The default chosen at run time answers for a broken choice, not the start model.
        await served.set_default("tarnwick")
        assert await harness.ask("!ask hi", channel="b") == "tarnwick"
        assert broken.starts == 1  # not tried again on every message
        clock.now = RETRY_AFTER_S
        broken.fail = False
        assert await harness.ask("!ask hi", channel="b") == "broken"
        assert broken.starts == 2
        await pool.close()


async def test_past_max_loaded_the_least_recently_used_model_is_unloaded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="confab.bot.llm.pool")
    models = Models(**{name: SlowToLoad(name) for name in ("one", "two", "three")})
    async with ChatHarness([AskSkill], tmp_path) as harness:
        pool, served = await harness_with_pool(harness, models, max_loaded=3)
        for name in ("one", "two", "three"):
            await served.set_for_channel(harness.adapter.platform, name, name)
        assert await harness.ask("!ask hi", channel="one") == "one"
        assert await harness.ask("!ask hi", channel="two") == "two"
        assert await harness.ask("!ask hi", channel="one") == "one"  # "two" is now the oldest
        assert await harness.ask("!ask hi", channel="three") == "three"
        assert pool.loaded == ["key None", "key one", "key three"]
        assert "unloading the model two, used least recently" in caplog.text
        await asyncio.sleep(0.05)  # retire_after_s: answers under way on it may finish
        assert models.named["two"].closed and not models.named["one"].closed
        assert await harness.ask("!ask hi", channel="two") == "two"  # loaded again
        assert models.named["two"].starts == 2
        assert not models.named[None].closed  # the model loaded at start stays
        await pool.close()


async def test_a_load_cut_short_by_close_leaves_nothing_running(tmp_path: Path) -> None:
    slow = SlowToLoad("slow")
    async with ChatHarness([AskSkill], tmp_path) as harness:
        pool, served = await harness_with_pool(harness, Models(slow=slow))
        await served.set_for_channel(harness.adapter.platform, "s", "slow")
        waiting = asyncio.create_task(pool.for_channel(harness.adapter.platform, "s"))
        await asyncio.sleep(0.01)  # the load has begun
        await pool.close()
        assert await waiting is pool.default  # an answer (the error of a closed model), not a crash
        assert slow.closed and models_closed(pool)
        assert await pool.get("slow") is pool.default  # nothing is loaded after close
        assert slow.starts == 1


def models_closed(pool: ModelPool) -> bool:
    return pool.loaded == [] and getattr(pool.default, "closed", False)


async def test_a_default_that_fails_at_start_leaves_the_configs_model_serving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    models = Models(broken=SlowToLoad("broken", fail=True))
    async with ChatHarness([AskSkill], tmp_path) as harness:
        served = ServedModels(harness.database, harness.settings)
        await served.set_default("broken")
        pool = ModelPool(models, served.own_choice, served.default)
        assert await pool.start(await served.default()) is models.named[None]
        assert "the default model broken could not be loaded" in caplog.text
        await pool.close()


async def test_a_skills_model_loads_in_the_background_while_the_default_answers() -> None:
    models = Models(coder=SlowToLoad("coder"), broken=SlowToLoad("broken", fail=True))
    pool = ModelPool(models)
    default = await pool.start(None)
    try:
        assert await pool.ready("coder") is default  # nobody waits for its first load
        assert await pool.ready("coder") is default  # still loading: not loaded twice
        await asyncio.sleep(0.2)
        assert await pool.ready("coder") is models.named["coder"]
        assert models.named["coder"].starts == 1
        assert await pool.ready("broken") is default
        await asyncio.sleep(0.2)
        assert await pool.ready("broken") is default  # failed: the default goes on answering
        assert await pool.ready("nonexistent") is default
    finally:
        await pool.close()
