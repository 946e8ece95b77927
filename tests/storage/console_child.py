"""``confab console`` with a scripted model, for the SIGKILL durability test.

The whole command runs as shipped (config from the environment, the app, the
router, the console adapter on real pipes, the database); only the model is
the scripted one, so the test needs no model weights.
"""

from __future__ import annotations

import sys

import confab.bot.app
from confab.bot.cli import main
from confab.bot.config import Config
from confab.bot.llm.backend import ModelBackend
from confab.bot.llm.weights import Progress
from confab.bot.testing import ScriptedBackend


def scripted_backend(config: Config, progress: Progress | None = None) -> ModelBackend:
    return ScriptedBackend(["First answer.", "Second answer."], delay_s=0.01)


if __name__ == "__main__":
    confab.bot.app.build_backend = scripted_backend
    sys.exit(main(["console"]))
