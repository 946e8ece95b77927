"""What every test with the real model shares."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def repeatable_sampling() -> None:
    """Sampling draws from torch's global generator, which every test that builds or
    runs a model advances; seeded per test, an answer does not depend on which tests
    ran before it."""
    torch.manual_seed(0)
