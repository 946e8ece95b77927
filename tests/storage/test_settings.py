"""Users, their settings, channel settings and skill state: what goes in comes back."""

from __future__ import annotations

import pytest

from confab.storage.channels import ChannelSettingsStore
from confab.storage.conversations import ConversationKey, ConversationStore
from confab.storage.database import Database
from confab.storage.records import ChannelSettings
from confab.storage.skill_state import GLOBAL_SCOPE, SkillStateStore, channel_scope, user_scope
from confab.storage.users import UserStore


async def test_a_persons_turn_records_them_and_keeps_their_name_current(
    database: Database,
) -> None:
    store, users = ConversationStore(database), UserStore(database)
    key = ConversationKey("discord", "general")
    await store.append(key, role="user", author_id="42", author_name="Ada", text="hi")
    first = await users.get("discord", "42")
    assert first is not None and first.display_name == "Ada" and first.settings == {}
    await store.append(key, role="user", author_id="42", author_name="Ada L.", text="again")
    renamed = await users.get("discord", "42")
    assert renamed is not None and renamed.display_name == "Ada L."
    assert renamed.created_at == first.created_at
    await store.append(key, role="assistant", author_id="confab", author_name="confab", text="x")
    assert await users.get("discord", "confab") is None
    assert await users.get("slack", "42") is None


async def test_user_settings_round_trip_and_none_removes_one(database: Database) -> None:
    users = UserStore(database)
    assert await users.settings("slack", "U1") == {}
    await users.set_setting("slack", "U1", "timezone", "Europe/Paris")
    everything = await users.set_setting("slack", "U1", "quiet", {"from": 22, "to": [7, 30]})
    assert everything == {"timezone": "Europe/Paris", "quiet": {"from": 22, "to": [7, 30]}}
    assert await users.set_setting("slack", "U1", "timezone", None) == {
        "quiet": {"from": 22, "to": [7, 30]}
    }
    assert await users.settings("slack", "U1") == {"quiet": {"from": 22, "to": [7, 30]}}
    assert await users.settings("slack", "U2") == {}
    # Settings made before the person ever spoke keep their id as a name until they do.
    user = await users.get("slack", "U1")
    assert user is not None and user.display_name == "U1"


async def test_channel_settings_change_one_at_a_time_and_reset_to_defaults(
    database: Database,
) -> None:
    channels = ChannelSettingsStore(database)
    assert await channels.get("discord", "general") == ChannelSettings()
    await channels.update("discord", "general", system_prompt="Answer like a pirate.")
    changed = await channels.update(
        "discord", "general", enabled_skills=["ask", "help"], timezone="Europe/Paris"
    )
    assert changed == ChannelSettings("Answer like a pirate.", ("ask", "help"), "Europe/Paris")
    assert await channels.get("discord", "general") == changed
    assert await channels.get("discord", "random") == ChannelSettings()
    reset = await channels.update("discord", "general", system_prompt=None, enabled_skills=None)
    assert reset == ChannelSettings(timezone="Europe/Paris")
    none_enabled = await channels.update("discord", "general", enabled_skills=[])
    assert none_enabled.enabled_skills == ()


async def test_an_unknown_timezone_is_refused(database: Database) -> None:
    channels = ChannelSettingsStore(database)
    with pytest.raises(ValueError, match="unknown timezone 'Mars/Olympus'"):
        await channels.update("discord", "general", timezone="Mars/Olympus")
    assert await channels.get("discord", "general") == ChannelSettings()


async def test_skill_state_is_kept_per_skill_and_scope(database: Database) -> None:
    state = SkillStateStore(database)
    here, there = channel_scope("slack", "C1"), channel_scope("slack", "C2")
    await state.set("remind", here, "next", {"at": "09:00", "text": "stand-up"})
    await state.set("remind", here, "count", 1)
    await state.set("remind", here, "count", 2)
    await state.set("remind", there, "count", 7)
    await state.set("quiz", here, "count", "other skill")
    await state.set("remind", GLOBAL_SCOPE, "enabled", True)
    await state.set("remind", user_scope("slack", "U1"), "snoozed", None)

    assert await state.get("remind", here, "count") == 2
    assert await state.get("remind", there, "count") == 7
    assert await state.get("quiz", here, "count") == "other skill"
    assert await state.get("remind", GLOBAL_SCOPE, "enabled") is True
    assert await state.get("remind", here, "missing") is None
    assert await state.items("remind", here) == {
        "count": 2,
        "next": {"at": "09:00", "text": "stand-up"},
    }
    assert await state.in_scope(user_scope("slack", "U1")) == [("remind", "snoozed", None)]
    assert await state.delete("remind", here, "count") is True
    assert await state.delete("remind", here, "count") is False
    assert await state.items("remind", here) == {"next": {"at": "09:00", "text": "stand-up"}}
