"""Which model answers where (``confab model use``): kept in the database, seen by every
process within the settings' freshness window."""

from __future__ import annotations

from confab.storage.channels import ChannelSettingsStore
from confab.storage.database import Database
from confab.storage.served_models import ServedModels


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_channel_follows_the_default_until_it_chooses_its_own(database: Database) -> None:
    served = ServedModels(database)
    assert await served.default() is None  # the config's model
    assert await served.own_choice("discord", "1") is None

    await served.set_default("tarnwick")
    await served.set_for_channel("discord", "2", "/models/qwen")
    assert await served.own_choice("discord", "1") is None  # it follows the default
    assert await served.default() == "tarnwick"
    assert await served.own_choice("discord", "2") == "/models/qwen"
    assert await served.overrides() == [("discord", "2", "/models/qwen")]

    await served.set_default("other")  # replaces, never a second row
    assert await served.default() == "other"
    await served.set_for_channel("discord", "2", None)
    assert await served.own_choice("discord", "2") is None  # back to the default
    assert await served.overrides() == []
    await served.set_default(None)
    assert await served.default() is None


async def test_a_channels_model_leaves_its_other_settings_alone(database: Database) -> None:
    settings = ChannelSettingsStore(database)
    await settings.update("slack", "C1", system_prompt="Be brief.", training_optin=True)
    await ServedModels(database, settings).set_for_channel("slack", "C1", "tarnwick")
    fresh = await ChannelSettingsStore(database).get("slack", "C1")
    assert (fresh.system_prompt, fresh.training_optin, fresh.model) == (
        "Be brief.",
        True,
        "tarnwick",
    )


async def test_another_process_sees_a_choice_once_what_it_read_is_stale(
    database: Database,
) -> None:
    clock = Clock()
    running_bot = ServedModels(database, fresh_s=5.0, clock=clock)
    assert await running_bot.own_choice("console", "general") is None
    assert await running_bot.default() is None

    command_line = ServedModels(database)
    await command_line.set_default("tarnwick")
    await command_line.set_for_channel("console", "general", "qwen")
    assert await running_bot.default() is None  # read 0 s ago: still trusted
    assert await running_bot.own_choice("console", "general") is None
    clock.now = 5.0
    assert await running_bot.default() == "tarnwick"
    assert await running_bot.own_choice("console", "general") == "qwen"
