"""The budgets every user of a shard shares: the shard's share of the project's per-minute quota ([admin]
project_units_per_minute divided by the shard count) and the project's daily budget ([admin]
project_units_per_day), which every shard spends together through one record (gimport.admin.daily).
Chained behind each user's own pacer (wiring.account), so they sit on the one call path."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable

from gimport.admin.daily import add_daily, read_daily
from gimport.admin.shards import Shard
from gimport.config.settings import Settings
from gimport.pacing.daily import PACIFIC, DailyBudget
from gimport.pacing.rate import RatePacer


def project_pacer(
    settings: Settings, shard: Shard, stop: threading.Event | None = None, *, share: int = 1
) -> RatePacer:
    """The shard's share of [admin] project_units_per_minute (and of that, 1/`share`: one worker process of
    `share`); a wait `stop` cuts short."""
    units = settings.admin.project_units_per_minute / shard.count / max(1, share)
    return RatePacer(units, sleep=stop.wait if stop else time.sleep)


def daily_budget(
    settings: Settings,
    shard: Shard,
    *,
    persist: bool = True,
    clock: Callable[[], float] | None = None,
    on_pause: Callable[[float], None] | None = None,
    on_resume: Callable[[], None] | None = None,
) -> DailyBudget:
    """The project's [admin] project_units_per_day, counting on from what every shard spent earlier today
    (the record in the state directory, shared with the other shards when `persist`). `shard` is unused: the
    budget is the project's whatever the shard count."""
    admin = settings.admin
    per_day = admin.project_units_per_day or None
    day, spent = read_daily(admin.state_dir) if persist else (None, 0.0)
    return DailyBudget(
        per_day,
        spent=spent,
        day=day,
        clock=clock or time.time,
        on_pause=on_pause,
        on_resume=on_resume,
        share=(lambda d, u: add_daily(admin.state_dir, d, u)) if persist else None,
    )


def pause_times(until: float) -> tuple[str, str]:
    """(US Pacific, local) wall-clock texts of the Unix time `until`."""
    pacific = dt.datetime.fromtimestamp(until, PACIFIC).strftime("%Y-%m-%d %H:%M %Z")
    local = dt.datetime.fromtimestamp(until).astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return pacific, local
