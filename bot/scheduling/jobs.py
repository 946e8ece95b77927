"""Scheduled jobs as data: what a job does and where, and how a listing shows it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a job does, where, and for whom; stored with the job."""

    platform: str
    channel: str
    thread: str | None
    owner_id: str
    owner_name: str
    skill: str | None = None  # run this skill with args ...
    args: str = ""
    reminder: str | None = None  # ... or post this reminder, once


@dataclass(frozen=True, slots=True)
class ScheduledJob:
    """A job as ``!schedule list`` shows it."""

    id: str
    spec: JobSpec
    next_run: datetime | None
    description: str
