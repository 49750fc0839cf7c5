"""Cron ticks as pure functions of time: the next tick, the ticks in an interval, and which
missed ticks run under a catchup policy. Times in and out are aware UTC datetimes; the cron
expression is read in the schedule's time zone (so ``0 6 * * *`` is 06:00 there, across
daylight-saving changes). Six fields put seconds first."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

# A scheduler down for long with catchup: all on a frequent schedule would queue runs without
# end; it queues the newest ones up to this many.
MAX_CATCHUP = 1000


def _iterator(schedule, start: datetime):
    from croniter import croniter

    return croniter(schedule.cron, start.astimezone(ZoneInfo(schedule.timezone)),
                    second_at_beginning=len(schedule.cron.split()) == 6)


def next_tick(schedule, after: datetime) -> datetime:
    """The first tick strictly after ``after``."""
    return _iterator(schedule, after).get_next(datetime).astimezone(timezone.utc)


def previous_tick(schedule, before: datetime) -> datetime:
    """The last tick strictly before ``before``."""
    return _iterator(schedule, before).get_prev(datetime).astimezone(timezone.utc)


def ticks_between(schedule, start: datetime, end: datetime, limit: int = MAX_CATCHUP) -> list[datetime]:
    """The ticks t with start < t <= end, oldest first; the newest ``limit`` of them."""
    ticks: list[datetime] = []
    iterator = _iterator(schedule, start)
    while (tick := iterator.get_next(datetime).astimezone(timezone.utc)) <= end:
        ticks.append(tick)
        if len(ticks) > limit:
            del ticks[0]
    return ticks


def select_ticks(due: list[datetime], catchup: str, now: datetime, on_time_s: float) -> list[datetime]:
    """Which of the due ticks (oldest first) run. A tick no older than ``on_time_s`` is on time
    and always runs; older ones were missed (the scheduler was down): ``all`` runs each of them,
    ``latest`` only the newest due tick, ``skip`` none of them."""
    if catchup == "all":
        return list(due)
    if catchup == "latest":
        return due[-1:]
    return [t for t in due[-1:] if (now - t).total_seconds() <= on_time_s]
