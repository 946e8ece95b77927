"""The files of a new skill's package, as ``confab new skill NAME`` writes them.

Each is a :class:`string.Template`: ``$name`` (the skill's command), ``$module``
(``confab_NAME``), ``$cls`` (its class-name stem), ``$confab`` (the confab-bot
requirement); ``$$`` is a dollar sign, as the prompt file's own placeholders need.
"""

from __future__ import annotations

PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "confab-$name"
version = "0.1.0"
description = "The $name skill for the Confab chat bot."
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["$confab"]

[project.optional-dependencies]
# The `chat` pytest fixture and its async support.
test = ["confab-bot[testing]"]

# How Confab finds the skill: `!$name` works after `pip install` and a restart.
[project.entry-points."confab.skills"]
$name = "$module.skill:${cls}Skill"

[tool.setuptools.packages.find]
where = ["src"]

# The prompts are data beside the code: without this a wheel would leave them out.
[tool.setuptools.package-data]
$module = ["*.toml"]

[tool.pytest.ini_options]
testpaths = ["tests"]
# Async tests need no setting (Confab's plugin marks them); this only answers
# pytest-asyncio's warning that the default will change.
asyncio_default_fixture_loop_scope = "function"
"""

INIT = '''\
"""The `$name` skill for Confab."""

from $module.skill import ${cls}Config, ${cls}Skill

__all__ = ["${cls}Config", "${cls}Skill"]
'''

SKILL = '''\
"""`$name`: asks the model about a topic, with the prompts in $name.toml.

`!$name the moon` streams the model's answer into the chat.
"""

from __future__ import annotations

from pydantic import Field

from confab import Arg, ChatMessage, GenerationSettings, PromptTemplates, Skill, SkillContext

PROMPTS = PromptTemplates.load(__package__, "$name.toml")


class ${cls}Config(GenerationSettings):
    """`[skills.$name]` in the bot's config: how long and how freely the model answers."""

    max_new_tokens: int | None = Field(200, gt=0, le=8192)
    temperature: float | None = Field(0.7, ge=0.0, le=2.0)


class ${cls}Skill(Skill):
    name = "$name"
    help = "Ask the model about a topic."
    # Parsed by the router into ctx.options; `!$name` alone gets the usage.
    arguments = (Arg("topic", rest=True, help="what to ask about, e.g. the moon"),)
    config_model = ${cls}Config

    async def run(self, ctx: SkillContext) -> None:
        messages = [
            ChatMessage("system", PROMPTS.render("system")),
            ChatMessage("user", PROMPTS.render("request", topic=ctx.options["topic"])),
        ]
        config: ${cls}Config = ctx.config or ${cls}Config()
        params = config.params(ctx.model.default_params)
        await ctx.reply_stream(ctx.model.stream(messages, params))
'''

PROMPTS = """\
# Prompts of the `$name` skill (skill.py): `$$topic` is filled in there.
system = "You are a helpful assistant in a team chat. Answer in two or three short sentences."
request = "Tell me something interesting about $$topic."
"""

TEST = '''\
"""The `$name` skill through Confab's `chat` fixture: the real router, a scripted model."""

import pytest


@pytest.mark.skills("$name")
@pytest.mark.model_replies("A scripted answer.")
async def test_answers_with_the_model(chat):
    assert await chat.ask("!$name the moon") == "A scripted answer."
    assert "the moon" in chat.model.prompts[-1][-1].content


@pytest.mark.skills("$name")
async def test_asks_for_a_topic(chat):
    assert await chat.ask("!$name") == "Usage: `!$name <topic…>` — `topic` is missing."


@pytest.mark.skills("help", "$name")
async def test_help_lists_it(chat):
    assert "!$name <topic…>" in await chat.ask("!help")
'''

README = """\
# confab-$name

The `$name` skill for [Confab](https://pypi.org/project/confab-bot/): `!$name the moon`
asks the model about a topic and streams its answer.

## Try it

```sh
pip install -e '.[test]'
pytest
confab console    # then type: !$name the moon
```

After `pip install` in the bot's environment and a restart, `!$name` works and
`!help` lists it: Confab finds it through the `confab.skills` entry point in
`pyproject.toml`.

## Settings

`[skills.$name]` in the bot's `config.toml` (see `${cls}Config` in `skill.py`):

```toml
[skills.$name]
max_new_tokens = 200
temperature = 0.7
```

## Layout

- `src/$module/skill.py`: the skill;
- `src/$module/$name.toml`: its prompts, loaded with `PromptTemplates.load`
  (shipped in the wheel by `[tool.setuptools.package-data]`);
- `tests/test_$name.py`: its tests, with the `chat` fixture Confab installs
  (`@pytest.mark.skills("$name")` runs the installed skill; `@pytest.mark.model_replies`
  scripts the model).
"""

# Where each file goes in the package folder, and what it holds.
FILES = {
    "pyproject.toml": PYPROJECT,
    "README.md": README,
    "src/$module/__init__.py": INIT,
    "src/$module/skill.py": SKILL,
    "src/$module/$name.toml": PROMPTS,
    "tests/test_$name.py": TEST,
}
