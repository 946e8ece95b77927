"""The admin page's live figures, read from the app's own metrics over the last minute."""

from __future__ import annotations

import pytest

from confab.bot.admin.figures import LiveFigures
from confab.bot.metrics import PrometheusMetrics
from tests.helpers import Clock


def test_the_figures_count_the_last_minute() -> None:
    metrics, clock = PrometheusMetrics(), Clock()
    metrics.observe(lambda: None, lambda: [])
    figures = LiveFigures(metrics, clock)
    assert figures.now().reply_s is None  # nothing answered yet
    metrics.answered("web", "ask", 2.0)
    metrics.answered("slack", "ask", 4.0)
    metrics.refused("web", "ask", "rate_limit")
    metrics.arrived("web")
    clock.now += 30
    now = figures.now()
    assert now.messages_per_minute == pytest.approx(6.0)  # 3 in 30 s
    assert now.reply_s == pytest.approx(3.0)
    assert (now.in_progress, now.handled_total, now.window_s) == (1, 3, pytest.approx(30))
    # A minute later with nothing new, the window has moved past them.
    clock.now += 45
    figures.now()
    clock.now += 40
    later = figures.now()
    assert later.messages_per_minute == 0 and later.reply_s is None
    assert later.handled_total == 3
