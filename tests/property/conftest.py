"""Property tests check behaviour, never speed: hypothesis' default 200 ms deadline
per example fails a correct test on a loaded machine (a schedule search that took
155 ms quiet took 290 ms beside the model tests). Speed is measured in bench/."""

from hypothesis import settings

settings.register_profile("confab", deadline=None)
settings.load_profile("confab")
