"""Scheduled jobs: the job values (``jobs``), reading ``<when>`` texts (``when``),
APScheduler's wiring (``runner``) and a channel's view for skills (``channel_schedule``)."""
