"""``python -m confab`` is the ``confab`` command."""

from confab.bot.cli import main

raise SystemExit(main())
