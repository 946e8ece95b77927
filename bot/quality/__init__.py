"""The answer-quality suite: everyday requests with known right answers, run through
the real router, skills and model, and scored per skill (``bench/quality.py``)."""
