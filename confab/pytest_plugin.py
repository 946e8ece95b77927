"""Confab's pytest plugin: the ``chat`` fixture, installed with the package.

A skill's test::

    @pytest.mark.skills("echo")
    async def test_echo(chat):
        assert await chat.ask("!echo hi") == "hi"

- ``@pytest.mark.skills(...)``: the skills the bot runs: installed ones by
  their entry point name (``"echo"``, loaded as the bot would load it), and
  classes (made with their default config) or instances in a list
  (``[Echo]``, ``[Echo(EchoConfig(loud=True))]``). pytest takes a lone class
  given to a marker for the thing it decorates, hence the list. On a test, a
  class or a module (``pytestmark``); the closest one counts.
- ``@pytest.mark.model_replies(*replies, **options)``: what the scripted model
  answers, in turn (the last one repeats); ``options`` go to
  :class:`~confab.testing.ScriptedBackend` (``delay_s=``, ``context_window=``).
  Without it the model gives its stock answer.
- ``chat``: a :class:`~confab.testing.ChatHarness` over those skills, entered,
  on a SQLite file in ``tmp_path``, closed after the test. ``chat.model`` is
  the model (``chat.model.prompts``: what it was asked).
- ``chat_model``: the model ``chat`` uses. Override this fixture to give it
  another one (a ScriptedBackend answering by a function of the prompt, say).

Async tests need no pytest-asyncio configuration: in strict mode (its default)
this plugin marks ``asyncio`` the coroutine tests that are Confab's to run
(they use ``chat``, carry ``skills``, or belong to a subclass of
:class:`confab.contract.AdapterContract`) and carry no async marker yet. In
auto mode pytest-asyncio takes every coroutine itself and this plugin marks
nothing.

pytest loads this module in every project where Confab is installed: it imports
only pytest (and pytest-asyncio) here; the harness loads when a test asks for it.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

try:
    import pytest_asyncio
except ImportError:  # installed without the `testing` extra: no async tests at all
    pytest_asyncio = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from confab.bot.llm.backend import ModelBackend
    from confab.bot.skill import Skill
    from confab.bot.testing import ChatHarness

ASYNC_MARKERS = ("asyncio", "anyio", "trio")
CONTRACT = "confab.contract.AdapterContract"
NO_ASYNCIO = "Confab's chat fixture runs on pytest-asyncio: pip install 'confab-bot[testing]'"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "skills(*skills): the skills of Confab's `chat` fixture: installed names, "
        "or classes and instances in a list",
    )
    config.addinivalue_line(
        "markers",
        "model_replies(*replies, **options): what the model of Confab's `chat` fixture answers",
    )


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(
    collector: pytest.Module | pytest.Class, name: str, obj: object
) -> Generator[None, Any, Any]:
    if _lost_to_a_lone_class(collector, name, obj):
        # Without this the test would silently not be collected.
        raise collector.CollectError(
            f"{collector.nodeid}::{name}: @pytest.mark.skills(...) was given one class, "
            "which pytest takes for the thing it decorates; write "
            f"@pytest.mark.skills([{type(obj).__name__}])"
        )
    # Marked on the function before pytest makes its item, so pytest-asyncio's own
    # hooks (wherever they run in the hook order) see an explicitly marked test.
    if (
        inspect.iscoroutinefunction(obj)
        and collector.istestfunction(obj, name)
        and _asyncio_is_strict(collector.config)
        and _is_confabs(collector, obj)
        and not any(_marked(collector, obj, marker) for marker in ASYNC_MARKERS)
    ):
        pytest.mark.asyncio(obj)
    return (yield)


def _lost_to_a_lone_class(collector: pytest.Module | pytest.Class, name: str, obj: object) -> bool:
    """Whether ``name`` was a test that ``@pytest.mark.skills(Echo)`` turned into an Echo."""
    if inspect.isclass(obj) or inspect.isroutine(obj) or not collector.funcnamefilter(name):
        return False
    marks = vars(type(obj)).get("pytestmark", [])
    return any(getattr(mark, "name", None) == "skills" for mark in marks)


def _asyncio_is_strict(config: pytest.Config) -> bool:
    if not config.pluginmanager.has_plugin("asyncio"):
        return False
    mode = config.getoption("asyncio_mode", None) or config.getini("asyncio_mode")
    return bool(mode == "strict")


def _is_confabs(collector: pytest.Module | pytest.Class, test: Any) -> bool:
    try:
        uses_chat = "chat" in inspect.signature(test).parameters
    except (TypeError, ValueError):
        uses_chat = False
    in_contract = isinstance(collector, pytest.Class) and any(
        f"{cls.__module__}.{cls.__qualname__}" == CONTRACT for cls in collector.obj.__mro__
    )
    return uses_chat or in_contract or _marked(collector, test, "skills")


def _marked(collector: pytest.Module | pytest.Class, test: Any, name: str) -> bool:
    own = getattr(test, "pytestmark", [])
    own = own if isinstance(own, list) else [own]
    return any(mark.name == name for mark in own) or collector.get_closest_marker(name) is not None


@pytest.fixture
def chat_model(request: pytest.FixtureRequest) -> ModelBackend:
    """The model ``chat`` answers with: a ScriptedBackend scripted by
    ``@pytest.mark.model_replies`` (its stock answer without one).

    Override this fixture (in a conftest or a test module) to give ``chat``
    another model.
    """
    from confab.bot.testing import ScriptedBackend

    marker = request.node.get_closest_marker("model_replies")
    if marker is None:
        return ScriptedBackend()
    if not all(isinstance(reply, str) for reply in marker.args):
        pytest.fail(
            f"{request.node.nodeid}: model_replies takes the answers as strings; "
            "override the chat_model fixture to script them otherwise",
            pytrace=False,
        )
    if not marker.args:
        return ScriptedBackend(**marker.kwargs)
    return ScriptedBackend(marker.args, **marker.kwargs)


def _named_skills(request: pytest.FixtureRequest) -> list[type[Skill] | Skill]:
    from importlib.metadata import entry_points

    from confab.bot.plugins import SKILL_GROUP, discover_skills

    marker = request.node.get_closest_marker("skills")
    if marker is None:
        pytest.fail(
            f"{request.node.nodeid}: name the skills to chat with, as installed "
            '(@pytest.mark.skills("echo")) or as classes (@pytest.mark.skills([Echo]))',
            pytrace=False,
        )
    skills: list[type[Skill] | Skill] = []
    for arg in marker.args:
        for skill in arg if isinstance(arg, list | tuple) else [arg]:
            if not isinstance(skill, str):
                skills.append(skill)
                continue
            points = entry_points(group=SKILL_GROUP, name=skill)
            if not points:
                pytest.fail(f"no skill {skill!r} is installed ({SKILL_GROUP})", pytrace=False)
            catalog = discover_skills(points)
            if catalog.failed:
                pytest.fail(f"skill {skill!r} is left out: {catalog.failed[skill]}", pytrace=False)
            skills.extend(catalog.skills.values())
    return skills


async def _chat(
    request: pytest.FixtureRequest, tmp_path: Path, chat_model: ModelBackend
) -> AsyncIterator[ChatHarness]:
    """A ChatHarness over the skills of ``@pytest.mark.skills``, entered, on a SQLite
    file in ``tmp_path``, answered by ``chat_model``; closed after the test."""
    from confab.bot.testing import ChatHarness

    async with ChatHarness(_named_skills(request), tmp_path, model=chat_model) as harness:
        yield harness


if pytest_asyncio is not None:
    chat = pytest_asyncio.fixture(_chat, name="chat")
else:

    @pytest.fixture(name="chat")
    def _no_chat() -> None:
        pytest.fail(NO_ASYNCIO, pytrace=False)
