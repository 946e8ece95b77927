"""``python -m bot`` is the ``confab`` command."""

from bot.cli import main

raise SystemExit(main())
