"""When a schedule is due: cron expressions read by croniter, decided on a clock passed in.

Pure: no I/O and no clock of its own, so the rules (which a CronPlaybook follows, those of a
Kubernetes CronJob) are tested table by table. Missed times after an outage give at most one
catch-up run, the most recent, and only if it is still within `startingDeadlineSeconds`.

A schedule has five fields (minute hour day-of-month month day-of-week) or six, the first being
seconds; it is read in `timeZone` (an IANA name, UTC by default), so "0 9 * * *" in
Europe/Paris follows daylight-saving time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter


class InvalidSchedule(ValueError):
    """A schedule or time zone that cannot be read; the message says which and why."""


@dataclass(frozen=True)
class Schedule:
    expression: str
    zone: ZoneInfo

    @classmethod
    def parse(cls, expression: str, time_zone: str | None = None) -> Schedule:
        fields = expression.split()
        if len(fields) not in (5, 6):
            raise InvalidSchedule(
                f"spec.schedule: {expression!r} has {len(fields)} fields; expected 5 "
                "(minute hour day month weekday) or 6 (seconds first)"
            )
        if not croniter.is_valid(expression, second_at_beginning=len(fields) == 6):
            raise InvalidSchedule(f"spec.schedule: {expression!r} is not a cron expression")
        try:
            zone = ZoneInfo(time_zone or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidSchedule(f"spec.timeZone: unknown time zone {time_zone!r}") from None
        return cls(expression, zone)

    def _iterate(self, start: float) -> croniter:
        return croniter(
            self.expression,
            datetime.fromtimestamp(start, self.zone),
            second_at_beginning=len(self.expression.split()) == 6,
        )

    def latest_at_or_before(self, moment: float) -> float:
        """The last schedule time at or before `moment` (times are whole seconds)."""
        return float(self._iterate(math.floor(moment) + 1).get_prev(float))

    def next_after(self, moment: float) -> float:
        """The first schedule time strictly after `moment`."""
        return float(self._iterate(math.floor(moment)).get_next(float))


@dataclass(frozen=True)
class Due:
    """What a schedule asks for now: a run for `scheduled` (if any), and when to look again."""

    scheduled: float | None
    next_at: float
    too_late: float | None = None  # a missed time past its starting deadline, for the record


def due(
    schedule: Schedule,
    last_scheduled: float,
    now: float,
    starting_deadline: int | None = None,
) -> Due:
    """The run to start now, after `last_scheduled` (the last run's time, or the creation time).

    Of the schedule times after `last_scheduled` and up to `now`, only the most recent is run;
    with a starting deadline, only if it is no older than that many seconds.
    """
    next_at = schedule.next_after(now)
    latest = schedule.latest_at_or_before(now)
    if latest <= last_scheduled:
        return Due(None, next_at)
    if starting_deadline is not None and latest + starting_deadline < now:
        return Due(None, next_at, too_late=latest)
    return Due(latest, next_at)
