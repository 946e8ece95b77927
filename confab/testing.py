"""What a plugin author's tests need: a running bot core to talk to, and a scripted model.

With the ``chat`` fixture (installed with Confab as a pytest plugin) a skill's
test needs no import from here::

    @pytest.mark.skills(Echo)
    async def test_echo(chat):
        assert await chat.ask("!echo hi") == "hi"

For more control (several harnesses on one database, a router config of the
test's own, a scheduler), build the harness yourself::

    from confab.testing import ChatHarness, ScriptedBackend

    async def test_echo(tmp_path):
        async with ChatHarness([Echo], tmp_path, model=ScriptedBackend()) as chat:
            assert await chat.ask("!echo hi") == "hi"

Unlike :mod:`confab`, this module loads the database and the router: import it
from tests only.
"""

from confab.bot.testing import (
    BrokenBackend,
    ChatHarness,
    Posted,
    RecordingAdapter,
    Script,
    ScriptedBackend,
)

__all__ = [
    "BrokenBackend",
    "ChatHarness",
    "Posted",
    "RecordingAdapter",
    "Script",
    "ScriptedBackend",
]
