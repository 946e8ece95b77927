"""The Slack app manifest: built from the config and the skills really installed, in
both command styles and both connection modes, and rendered as YAML or JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from confab.adapters.slack import SlackConfig
from confab.adapters.slack.manifest import (
    APP_NAME_CHARS,
    DESCRIPTION_CHARS,
    MAX_SLASH_COMMANDS,
    SLACK_BUILT_IN_COMMANDS,
    USAGE_HINT_CHARS,
    render_manifest,
    slack_manifest,
)
from confab.bot.errors import ConfigError
from confab.bot.plugins import SKILL_GROUP, discover_skills
from confab.bot.skill import Skill, SkillContext, SkillInfo
from confab.skills.qa import AskSkill
from confab.skills.summarise import SummariseSkill

EVENTS_URL = "https://bot.example.com/slack/events"
SCOPES = [
    "app_mentions:read",
    "channels:history",
    "groups:history",
    "im:history",
    "mpim:history",
    "chat:write",
    "commands",
    "users:read",
    "files:read",
]
EVENTS = ["app_mention", "message.channels", "message.groups", "message.im", "message.mpim"]
# 300 characters, its first sentence end well inside the first half of the limit.
LONG_HELP = (
    "Forecasts! Look up the weather for any city in the world with hourly temperatures, "
    "wind speed and direction, humidity, air pressure, sunrise and sunset times, pollen "
    "counts, ultraviolet index and warnings issued by the national weather services of "
    "its country, for today, tomorrow and the next weeks."
)


class WeatherSkill(Skill):
    """A third-party skill, installed through its own entry point."""

    name = "weather"
    help = "Today's weather for a city."
    usage = "<city>"

    async def run(self, ctx: SkillContext) -> None:
        await ctx.reply("Sunny.")


def installed_skills() -> list[SkillInfo]:
    return [SkillInfo.of(skill) for skill in discover_skills().skills.values()]


def commands_of(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    commands: list[dict[str, Any]] = manifest["features"]["slash_commands"]
    return commands


def urls_in(value: Any) -> Iterator[tuple[str, Any]]:
    """Every ``url`` / ``request_url`` key anywhere in the manifest."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("url", "request_url"):
                yield key, item
            yield from urls_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from urls_in(item)


def assert_reads_whole(shortened: str, original: str) -> None:
    """``shortened`` is ``original`` cut at the end of a word or sentence."""
    stem = shortened.removesuffix("…")
    assert original.startswith(stem)
    assert stem[-1].isalnum() or stem[-1] in ".!?)]>"
    assert original[len(stem)] in " ,;:"  # the next character is no letter of the same word


@pytest.fixture(scope="module")
def skills() -> list[SkillInfo]:
    found = installed_skills()
    assert {"ask", "summarise", "code", "write", "help", "remind", "search"} <= {
        skill.name for skill in found
    }
    return found


def test_per_skill_gives_every_installed_skill_its_own_command(skills: list[SkillInfo]) -> None:
    manifest, warnings = slack_manifest(SlackConfig(), skills, bot_name="Confab")

    commands = [command["command"] for command in commands_of(manifest)]
    accepted = [skill for skill in skills if skill.name not in SLACK_BUILT_IN_COMMANDS]
    assert commands == [f"/{skill.name}" for skill in accepted]
    assert len(set(commands)) == len(commands)
    # Slack's own /remind and /search cannot be taken: both are left out, and said so.
    assert [warning.split()[0] for warning in warnings] == ["/remind", "/search"]
    assert all("Slack keeps" in warning and "built-in" in warning for warning in warnings)
    ask = commands_of(manifest)[0]
    assert ask == {
        "command": "/ask",
        "description": AskSkill.help,
        "usage_hint": "<question> [--private]",
        "should_escape": False,
    }
    summarise = next(c for c in commands_of(manifest) if c["command"] == "/summarise")
    assert summarise["description"] == SummariseSkill.help
    assert summarise["usage_hint"] == "[N | 30m | 2h | 1d | today] [--private]"


def test_umbrella_is_one_command_that_names_every_skill(skills: list[SkillInfo]) -> None:
    config = SlackConfig(command_style="umbrella", command_name="confab")
    manifest, warnings = slack_manifest(config, skills, bot_name="Confab")

    assert warnings == []
    [umbrella] = commands_of(manifest)
    assert umbrella["command"] == "/confab"
    assert umbrella["description"].startswith("Run one of Confab's commands: ask, code, ")
    for skill in skills:  # Slack's reserved names included: they run as /confab remind ...
        assert skill.name in umbrella["description"]
    hint = umbrella["usage_hint"]
    assert len(hint) <= USAGE_HINT_CHARS
    assert hint.startswith("ask <question> | code explain|review|fix|write ")
    # Fourteen skills do not fit: it stops after a whole alternative.
    *alternatives, rest = hint.split(" | ")
    assert rest == "…"
    names = [skill.name for skill in skills]
    assert [alternative.split()[0] for alternative in alternatives] == names[: len(alternatives)]
    assert "forget <me|channel>" in alternatives  # a skill's own choices stay together

    other, _ = slack_manifest(
        SlackConfig(command_style="umbrella", command_name="bot"), skills, bot_name="Confab"
    )
    assert [command["command"] for command in commands_of(other)] == ["/bot"]


def test_a_plugin_skill_installed_by_entry_point_gets_a_command() -> None:
    plugin = EntryPoint("weather", f"{__name__}:WeatherSkill", SKILL_GROUP)
    catalog = discover_skills([*entry_points(group=SKILL_GROUP), plugin])
    assert catalog.skills["weather"] is WeatherSkill
    skills = [SkillInfo.of(skill) for skill in catalog.skills.values()]

    manifest, _ = slack_manifest(SlackConfig(), skills, bot_name="Confab")
    weather = [c for c in commands_of(manifest) if c["command"] == "/weather"]
    assert weather == [
        {
            "command": "/weather",
            "description": "Today's weather for a city.",
            "usage_hint": "<city> [--private]",
            "should_escape": False,
        }
    ]
    few = [info for info in skills if info.name in ("ping", "weather")]
    umbrella, _ = slack_manifest(SlackConfig(command_style="umbrella"), few, bot_name="Confab")
    assert ": ping, weather." in commands_of(umbrella)[0]["description"]


@pytest.mark.parametrize("style", ["per_skill", "umbrella"])
def test_descriptions_and_hints_fit_slacks_menu_and_read_whole(
    skills: list[SkillInfo], style: str
) -> None:
    long = SkillInfo("weather", LONG_HELP, "<city> " + " ".join(["[--day DAY]"] * 20), ())
    assert len(LONG_HELP) == 300
    manifest, _ = slack_manifest(
        SlackConfig(command_style=style), [*skills, long], bot_name="Confab"
    )

    for command in commands_of(manifest):
        assert 0 < len(command["description"]) <= DESCRIPTION_CHARS
        assert 0 < len(command["usage_hint"]) <= USAGE_HINT_CHARS
    if style == "per_skill":
        weather = commands_of(manifest)[-1]
        assert weather["command"] == "/weather"
        assert weather["description"].endswith("…")
        assert len(weather["description"]) > DESCRIPTION_CHARS - 15  # not cut needlessly short
        assert_reads_whole(weather["description"], LONG_HELP)
        assert weather["usage_hint"].endswith("…")
        assert_reads_whole(weather["usage_hint"], long.usage)


def test_a_long_help_is_cut_after_its_last_whole_sentence() -> None:
    first = "Look up the weather for any city in the world, hour by hour, for the next week."
    help_text = first + " Then " + "a great deal more about winds and tides " * 5
    manifest, _ = slack_manifest(
        SlackConfig(), [SkillInfo("weather", help_text, "", ())], bot_name="Confab"
    )
    assert commands_of(manifest)[0]["description"] == first


def test_names_slack_refuses_are_left_out_with_the_reason() -> None:
    skills = [
        SkillInfo("ask", "Ask a question.", "<question>", ()),
        SkillInfo("Weather", "Upper case.", "", ()),
        SkillInfo("w" * 32, "One character too long with its '/'.", "", ()),
        SkillInfo("w" * 31, "Just fits.", "", ()),
        SkillInfo("status", "Slack's own.", "", ()),
        SkillInfo("ask", "A second ask.", "", ()),
    ]
    manifest, warnings = slack_manifest(SlackConfig(), skills, bot_name="Confab")

    assert [c["command"] for c in commands_of(manifest)] == ["/ask", "/" + "w" * 31]
    assert len(warnings) == 4
    assert warnings[0].startswith("/Weather left out: Slack commands are lowercase")
    assert warnings[1].startswith(f"/{'w' * 32} left out: Slack commands are at most 31")
    assert warnings[2].startswith("/status left out: Slack keeps /status for its own")
    assert warnings[3].startswith("/ask left out: another skill has that name")
    assert all('slack.command_style = "umbrella"' in warning for warning in warnings)


def test_no_more_commands_than_slack_allows_and_the_rest_is_reported() -> None:
    skills = [SkillInfo(f"skill{n}", f"Skill number {n}.", "", ()) for n in range(53)]
    manifest, warnings = slack_manifest(SlackConfig(), skills, bot_name="Confab")

    assert len(commands_of(manifest)) == MAX_SLASH_COMMANDS
    assert [warning.split()[0] for warning in warnings] == ["/skill50", "/skill51", "/skill52"]
    assert "Slack allows 50 slash commands per app" in warnings[0]


def test_admin_only_skills_say_so() -> None:
    skills = [SkillInfo("purge", "Delete old answers.", "", (), admin_only=True)]
    manifest, _ = slack_manifest(SlackConfig(), skills, bot_name="Confab")
    assert commands_of(manifest)[0]["description"] == "Delete old answers. (admins only)"


def test_scopes_and_events_are_what_the_adapter_uses(skills: list[SkillInfo]) -> None:
    for style in ("per_skill", "umbrella"):
        manifest, _ = slack_manifest(SlackConfig(command_style=style), skills, bot_name="C")
        assert manifest["oauth_config"]["scopes"]["bot"] == SCOPES
        assert manifest["settings"]["event_subscriptions"]["bot_events"] == EVENTS
    # No skill can be a command: no slash commands, and no `commands` scope asked for.
    bare, _ = slack_manifest(
        SlackConfig(), [SkillInfo("remind", "Slack's own.", "", ())], bot_name="C"
    )
    assert "slash_commands" not in bare["features"]
    assert bare["oauth_config"]["scopes"]["bot"] == [s for s in SCOPES if s != "commands"]


@pytest.mark.parametrize("style", ["per_skill", "umbrella"])
def test_socket_mode_has_no_urls(skills: list[SkillInfo], style: str) -> None:
    manifest, _ = slack_manifest(
        SlackConfig(mode="socket", command_style=style), skills, bot_name="Confab"
    )
    assert list(urls_in(manifest)) == []
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert manifest["settings"]["interactivity"] == {"is_enabled": True}
    assert manifest["settings"]["token_rotation_enabled"] is False

    ignored, warnings = slack_manifest(
        SlackConfig(mode="socket"), skills, bot_name="Confab", public_url=EVENTS_URL
    )
    assert list(urls_in(ignored)) == []
    assert warnings[0].startswith(f"Socket Mode needs no public URL: {EVENTS_URL} is not used")


@pytest.mark.parametrize("style", ["per_skill", "umbrella"])
def test_http_mode_sends_events_commands_and_interactivity_to_the_public_url(
    skills: list[SkillInfo], style: str
) -> None:
    manifest, _ = slack_manifest(
        SlackConfig(mode="http", command_style=style),
        skills,
        bot_name="Confab",
        public_url="https://bot.example.com",
    )
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is False
    assert settings["event_subscriptions"] == {"request_url": EVENTS_URL, "bot_events": EVENTS}
    assert settings["interactivity"] == {"is_enabled": True, "request_url": EVENTS_URL}
    assert commands_of(manifest)
    assert [command["url"] for command in commands_of(manifest)] == [EVENTS_URL] * len(
        commands_of(manifest)
    )
    assert {url for _, url in urls_in(manifest)} == {EVENTS_URL}


@pytest.mark.parametrize(
    ("public_url", "request_url"),
    [
        ("https://bot.example.com/", EVENTS_URL),
        ("https://bot.example.com/slack/events", EVENTS_URL),
        ("https://example.com:8443/confab", "https://example.com:8443/confab/slack/events"),
    ],
)
def test_http_mode_request_url_from_a_base_url(public_url: str, request_url: str) -> None:
    manifest, _ = slack_manifest(
        SlackConfig(mode="http"), installed_skills(), bot_name="Confab", public_url=public_url
    )
    assert manifest["settings"]["event_subscriptions"]["request_url"] == request_url


@pytest.mark.parametrize("public_url", [None, "", "http://bot.example.com", "bot.example.com"])
def test_http_mode_without_a_public_https_url_says_what_to_pass(public_url: str | None) -> None:
    with pytest.raises(ConfigError) as raised:
        slack_manifest(
            SlackConfig(mode="http"), installed_skills(), bot_name="Confab", public_url=public_url
        )
    assert "https://bot.example.com" in raised.value.user_message
    if not public_url:
        assert raised.value.user_message.startswith("Slack's HTTP mode needs the bot's public URL")
    else:
        assert f"{public_url!r} is not a public HTTPS URL" in raised.value.user_message


def test_an_umbrella_named_like_a_slack_command_is_refused(skills: list[SkillInfo]) -> None:
    with pytest.raises(ConfigError, match=r"slack.command_name 'remind' is one of Slack's own"):
        slack_manifest(
            SlackConfig(command_style="umbrella", command_name="remind"), skills, bot_name="C"
        )


def test_the_bot_name_within_slacks_limits() -> None:
    name = "The Very Fantastic Name of Your Confab Bot"  # 42 characters
    manifest, warnings = slack_manifest(SlackConfig(), [], bot_name=name)

    assert manifest["display_information"]["name"] == "The Very Fantastic Name of Your"
    assert len(manifest["display_information"]["name"]) <= APP_NAME_CHARS
    assert manifest["features"]["bot_user"] == {"display_name": name, "always_online": True}
    assert warnings == [
        f"the bot's name {name!r} is longer than Slack's 35 characters for the app name: "
        "it is 'The Very Fantastic Name of Your' there"
    ]


@pytest.mark.parametrize(("mode", "style"), [("socket", "per_skill"), ("http", "umbrella")])
def test_yaml_and_json_are_the_same_manifest_in_its_key_order(
    skills: list[SkillInfo], mode: str, style: str
) -> None:
    long = SkillInfo("weather", LONG_HELP, 'in "<city>": [--day DAY]', ())
    manifest, _ = slack_manifest(
        SlackConfig(mode=mode, command_style=style),
        [*skills, long],
        bot_name="Confab",
        public_url="https://bot.example.com",
    )
    as_yaml = render_manifest(manifest, "yaml")
    as_json = render_manifest(manifest, "json")

    assert yaml.safe_load(as_yaml) == json.loads(as_json) == manifest
    assert as_json.startswith('{\n  "_metadata": {\n    "major_version": 1,')
    assert as_yaml.startswith("_metadata:\n  major_version: 1\n  minor_version: 1\n")
    assert "…" in as_yaml  # the cut description, as text rather than an escape
    parsed = yaml.safe_load(as_yaml)
    assert list(parsed) == [
        "_metadata",
        "display_information",
        "features",
        "oauth_config",
        "settings",
    ]
    assert list(parsed["features"]["bot_user"]) == ["display_name", "always_online"]
    assert list(commands_of(parsed)[0])[:4] == [
        "command",
        "description",
        "usage_hint",
        "should_escape",
    ]


def test_an_unknown_format_is_refused() -> None:
    manifest, _ = slack_manifest(SlackConfig(), [], bot_name="Confab")
    with pytest.raises(ValueError, match="use 'yaml' or 'json'"):
        render_manifest(manifest, "toml")  # type: ignore[arg-type]
