"""The budgets every user of a shard shares: the shard's share of the project's per-minute quota and of its
daily budget ([admin] project_units_per_minute and project_units_per_day, each divided by the shard count).
Chained behind each user's own pacer (wiring.account), so they sit on the one call path."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable

from gimport.admin.coverage import read_daily, write_daily
from gimport.admin.shards import Shard
from gimport.config.settings import Settings
from gimport.pacing.daily import PACIFIC, DailyBudget
from gimport.pacing.rate import RatePacer


def project_pacer(settings: Settings, shard: Shard, stop: threading.Event | None = None) -> RatePacer:
    """The shard's share of [admin] project_units_per_minute; a wait `stop` cuts short."""
    return RatePacer(settings.admin.project_units_per_minute / shard.count, sleep=stop.wait if stop else time.sleep)


def daily_budget(
    settings: Settings,
    shard: Shard,
    *,
    persist: bool = True,
    clock: Callable[[], float] | None = None,
    on_pause: Callable[[float], None] | None = None,
    on_resume: Callable[[], None] | None = None,
) -> DailyBudget:
    """This shard's share of [admin] project_units_per_day, counting on from what it spent earlier today
    (saved in the state directory when `persist`)."""
    admin = settings.admin
    per_day = admin.project_units_per_day / shard.count if admin.project_units_per_day else None
    day, spent = read_daily(admin.state_dir, shard) if persist else (None, 0.0)
    return DailyBudget(
        per_day,
        spent=spent,
        day=day,
        clock=clock or time.time,
        on_pause=on_pause,
        on_resume=on_resume,
        persist=(lambda d, u: write_daily(admin.state_dir, shard, d, u)) if persist else None,
    )


def pause_times(until: float) -> tuple[str, str]:
    """(US Pacific, local) wall-clock texts of the Unix time `until`."""
    pacific = dt.datetime.fromtimestamp(until, PACIFIC).strftime("%Y-%m-%d %H:%M %Z")
    local = dt.datetime.fromtimestamp(until).astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return pacific, local
