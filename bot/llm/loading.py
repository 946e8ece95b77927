"""One model loads at a time in a process.

Loading a transformers model changes process-wide state while it runs
(initialisation on the meta device, logging verbosity, torch's thread count),
so two loads on two threads (the language model at start, and the knowledge
base's sentence model warming up beside it) can spoil each other. Every
loader holds :data:`LOADING` while it loads; answering never waits for it.
"""

from __future__ import annotations

import threading

LOADING = threading.RLock()
