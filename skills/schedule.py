"""``schedule`` and ``remind``: skills on a timetable, and reminders, in this channel.

``!schedule add "0 9 * * 1-5" summarise 24h``, ``!schedule add daily 09:00
summarise``, ``!schedule list``, ``!schedule pause ID``, ``!schedule resume ID``,
``!schedule remove ID``; ``!remind in 2h <text>``, ``!remind at 14:30 <text>``.
Times are in the channel's timezone.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from confab.bot.skill import ScheduledJob, Skill, SkillContext


def _when(job: ScheduledJob, zone: ZoneInfo) -> str:
    if job.next_run is None:
        return "paused"
    local: datetime = job.next_run.astimezone(zone)
    return f"next {local:%Y-%m-%d %H:%M} ({zone.key})"


def _what(job: ScheduledJob) -> str:
    if job.spec.reminder is not None:
        return f"reminder: {_inline(job.spec.reminder)}"
    return f"`{_inline(f'{job.spec.skill} {job.spec.args}'.strip())}`"


def _inline(text: str, limit: int = 80) -> str:
    """``text`` on one line, cut short, without backticks: a quote inside a reply that
    cannot open a code block (or end the inline code around it)."""
    text = " ".join(text.replace("`", "'").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ScheduleSkill(Skill):
    name = "schedule"
    uses_model = False
    help = "Run a command here on a timetable (admins), list or remove jobs."
    usage = (
        'add "<cron>"|daily HH:MM|weekly mon HH:MM|every 30m <command> [args] '
        "| list | pause ID | resume ID | remove ID | timezone [NAME]"
    )
    admin_commands = ("add", "timezone NAME")

    async def run(self, ctx: SkillContext) -> None:
        action, _, rest = ctx.args.strip().partition(" ")
        action = action.lower()
        if action == "add" and rest.strip():
            job = await ctx.schedule.add(rest.strip())
            zone = await ctx.schedule.zone()
            await ctx.reply(
                f"Scheduled `{job.id}`: {_what(job)}, {job.description}; {_when(job, zone)}."
            )
        elif action == "list" and not rest.strip():
            jobs = ctx.schedule.jobs()
            if not jobs:
                await ctx.reply("No jobs are scheduled in this channel.")
                return
            zone = await ctx.schedule.zone()
            lines = ["**Scheduled here**"] + [
                f"- `{job.id}` {_when(job, zone)}: {_what(job)} ({job.description}), "
                f"by {job.spec.owner_name}"
                for job in jobs
            ]
            await ctx.reply("\n".join(lines))
        elif action == "timezone":
            name = rest.strip()
            if name:
                cleared = name.lower() in ("default", "reset")
                await ctx.channel.set_timezone(None if cleared else name)
            zone = await ctx.schedule.zone()
            await ctx.reply(f"Times in this channel are in {zone.key}.")
        elif action == "remove" and rest.strip():
            job = await ctx.schedule.remove(rest.strip())
            await ctx.reply(f"Removed `{job.id}`: {_what(job)}.")
        elif action in ("pause", "resume") and rest.strip():
            job = await ctx.schedule.pause(rest.strip(), paused=action == "pause")
            zone = await ctx.schedule.zone()
            await ctx.reply(f"{action.capitalize()}d `{job.id}`: {_what(job)}; {_when(job, zone)}.")
        else:
            p = ctx.prefix
            await ctx.reply(
                f'Usage: `{p}schedule add "0 9 * * 1-5" summarise 24h`, '
                f"`{p}schedule add daily 09:00 summarise`, `{p}schedule add weekly mon 09:00 "
                f"summarise 7d`, `{p}schedule add every 30m ping`; `{p}schedule list`; "
                f"`{p}schedule pause ID`, `resume ID`, `remove ID`; "
                f"`{p}schedule timezone Europe/Paris` (admins)."
            )


class RemindSkill(Skill):
    name = "remind"
    uses_model = False
    help = "Remind you here, once: in a while or at a time."
    usage = "in 2h|at HH:MM <text>"

    async def run(self, ctx: SkillContext) -> None:
        if not ctx.args.strip():
            p = ctx.prefix
            await ctx.reply(
                f"Usage: `{p}remind in 2h stand-up notes` or `{p}remind at 14:30 call Ada`."
            )
            return
        job = await ctx.schedule.remind(ctx.args.strip())
        zone = await ctx.schedule.zone()
        await ctx.reply(f"I'll remind you {_when(job, zone).removeprefix('next ')}. (`{job.id}`)")
