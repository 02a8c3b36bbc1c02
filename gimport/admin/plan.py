"""`gimport admin plan`: how big the campus is and how long it will take, from the old server alone.

Each user's mailbox is scanned read-only (gimport.operations.plan.preview: EXAMINE, message sizes and dates; the same
selection as a run, [filters] included, and what an earlier run already imported when a state file exists).
Gmail is not contacted. The wall time is estimated at each of the three limits — the per-user quota
([gmail] quota_units_per_minute, users `parallel_users` at a time in each shard), the project's per-minute
budget and its daily budget — and the largest of them is the one that binds. Optionally the users are
balanced over N shards by messages and bytes to import, largest first (gimport.admin.shards.write_shard_map).
"""

from __future__ import annotations

import heapq
import math
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gimport import wiring
from gimport.admin.fanout import fan_out
from gimport.admin.paths import user_paths
from gimport.admin.reshard import existing_map
from gimport.admin.shards import balance, load_shard_map, shard_of, size_weights
from gimport.admin.users import SourceLogin, UserEntry, user_settings
from gimport.config.settings import Settings
from gimport.errors import ConfigError, GimportError
from gimport.i18n import N_, _
from gimport.mail.quota import COSTS
from gimport.operations.plan import preview

# English here and in --json; gimport.render.admin translates them where they are shown
PER_USER, PER_MINUTE, DAILY = N_("per-user quota"), N_("project per-minute budget"), N_("project daily budget")


@dataclass
class UserPlan:
    gmail: str
    source_user: str
    messages: int = 0  # on the old server (every folder the mapping imports or not)
    selected: int = 0  # chosen by the mapping and [filters]
    to_import: int = 0  # selected, not imported yet (by an earlier run), not too large
    bytes: int = 0  # of those to import
    labels: int = 0  # labels a run would create
    error: str = ""
    bug: bool = False  # the scan failed by an unexpected error (a bug in gimport: exit code 70)

    @property
    def units(self) -> int:
        if not self.to_import:
            return 0  # a run with nothing to import creates no labels either
        return self.to_import * COSTS["users.messages.import"] + self.labels * COSTS["users.labels.create"]


@dataclass
class Limit:
    name: str
    budget: float | None  # units per minute (per user, or the project's), or per day; None: no limit
    seconds: float | None  # the wall time this limit alone allows; None: no limit


@dataclass
class CampusPlan:
    users: list[UserPlan]
    shards: list[list[str]]  # the users (addresses) of each shard the estimate assumes
    limits: list[Limit] = field(default_factory=list)
    # each shard's wall time: its users `parallel_users` at a time at the per-user quota, within the shard's
    # share of the per-minute project budget
    shard_seconds: list[float] = field(default_factory=list)
    concurrent: int = 1  # shards running at once (the array throttle)
    total: float = 0.0  # the campus: the shards `concurrent` at a time, in index order, and the daily budget

    @property
    def units(self) -> int:
        return sum(u.units for u in self.users)

    @property
    def binds(self) -> Limit:
        return max(self.limits, key=lambda lim: lim.seconds or 0.0)

    @property
    def seconds(self) -> float:
        return self.total


def scan_user(settings: Settings, logins: SourceLogin, entry: UserEntry) -> UserPlan:
    """One user's numbers from the old server (read-only) and their state file, if any (read-only)."""
    row = UserPlan(entry.gmail, entry.source_user)
    login, password = logins.for_user(entry)
    us = user_settings(settings, entry, login)
    state = wiring.state_if_exists(user_paths(settings.admin.state_dir, entry.gmail).state)
    source = wiring.source(us.source, password)
    try:
        logins.connect(source, entry)
        p = preview(source, us, state)
    finally:
        source.close()
        if state is not None:
            state.close()
    row.messages = sum(f.messages for f in p.folders)
    row.selected = sum(f.selected for f in p.folders if f.plan.action == "import")
    row.to_import, row.bytes, row.labels = p.to_import, p.to_import_bytes, len(p.labels_needed)
    errors = [f"{f.folder}: {f.error}" for f in p.folders if f.error]
    row.error = "; ".join(errors[:2])
    return row


def scan(settings: Settings, users: list[UserEntry], *, stop: threading.Event) -> list[UserPlan]:
    """scan_user for every user, [admin] parallel_users at a time, in the users' order. A user whose
    mailbox cannot be read gets a line with the error (and counts of 0)."""
    logins = SourceLogin(settings.admin, app_only=settings.source.oauth is not None)

    def failed(entry: UserEntry, err: Exception) -> UserPlan:
        if isinstance(err, GimportError):
            return UserPlan(entry.gmail, entry.source_user, error=str(err))
        return UserPlan(entry.gmail, entry.source_user, error=f"unexpected error: {err!r}", bug=True)

    results = fan_out(
        users, settings.admin.parallel_users, lambda _, e: scan_user(settings, logins, e), stop=stop, on_error=failed
    )
    return [results[i] for i in sorted(results)]


def makespan(seconds: list[float], slots: int) -> float:
    """The wall time of jobs of these lengths run `slots` at a time, each next job (in the given order) on
    the first free slot — how AdminRun works through its users."""
    if not seconds:
        return 0.0
    free = [0.0] * max(1, min(slots, len(seconds)))
    for s in seconds:
        heapq.heappush(free, heapq.heappop(free) + s)
    return max(free)


def daily_bound(units: float, per_day: float | None, other: float) -> float | None:
    """The wall time at the daily budget: each quota day's budget spent, then a wait for the next day
    (ceil(units / per_day) - 1 waits of up to a day, counted as whole days: a lower bound when the run
    starts at midnight US Pacific), the last day's rest at the pace of the other limits (`other` seconds
    for everything). 0: the daily budget is never reached; None: there is none."""
    if not per_day:
        return None
    waits = max(0, math.ceil(units / per_day) - 1)
    if waits == 0:
        return 0.0
    rest = units - waits * per_day
    return waits * 86400.0 + (rest / units) * other


def shard_count_for(settings: Settings, write_shards: int | None, shard: Any = None) -> int:
    """The shard count a plan assumes: --write-shards, [admin] shard_count, the shard map's, --shard's N, 1."""
    admin = settings.admin
    if write_shards:
        return write_shards
    if admin.shard_count:
        return admin.shard_count
    path = existing_map(admin)
    if path is not None and path.exists():
        return load_shard_map(path).count
    return shard.count if shard is not None else 1


def estimate(
    settings: Settings, users: list[UserPlan], shard_count: int, *, balanced: bool, concurrent: int | None = None
) -> CampusPlan:
    """The wall time for `users` over `shard_count` shards (balanced: as --write-shards would split them; else
    by the shard map / hash, as a run would), `concurrent` shards at a time (None: all at once), the next
    index starting when one ends, as a throttled Slurm array runs them. Each shard works through its users
    `parallel_users` at a time at the per-user quota, within its share (1/N) of the per-minute project budget;
    the daily budget adds a wait for each quota day it is spent."""
    admin = settings.admin
    if balanced:
        shards = balance(size_weights({u.gmail: (u.to_import, u.bytes) for u in users}), shard_count)
    else:
        shards = [[] for _ in range(shard_count)]
        path = existing_map(admin)
        shard_map = load_shard_map(path) if path is not None and path.exists() else None
        assignment = shard_map.users if shard_map is not None and shard_map.count == shard_count else {}
        for u in users:
            index = assignment.get(u.gmail.lower())
            shards[shard_of(u.gmail, shard_count) if index is None else index].append(u.gmail)
    per_user = settings.gmail.quota_units_per_minute
    by_gmail = {u.gmail: u for u in users}
    order = {u.gmail: i for i, u in enumerate(users)}
    at_once = max(1, min(concurrent or shard_count, shard_count))
    user_times = [
        makespan([by_gmail[g].units / per_user * 60.0 for g in sorted(s, key=lambda g: order[g])], admin.parallel_users)
        for s in shards
    ]
    share = admin.project_units_per_minute / shard_count  # what each shard paces itself to
    minute_times = [sum(by_gmail[g].units for g in s) / share * 60.0 for s in shards]
    shard_seconds = [max(a, b) for a, b in zip(user_times, minute_times, strict=True)]
    units = sum(u.units for u in users)
    per_day = admin.project_units_per_day or None
    campus = makespan(shard_seconds, at_once)
    daily = daily_bound(units, per_day, campus)
    limits = [
        Limit(PER_USER, per_user, makespan(user_times, at_once)),
        Limit(PER_MINUTE, admin.project_units_per_minute, makespan(minute_times, at_once)),
        Limit(DAILY, per_day, daily),
    ]
    return CampusPlan(users, shards, limits, shard_seconds, at_once, max(campus, daily or 0.0))


def array_throttle(sbatch: Path) -> int | None:
    """The %K of the `#SBATCH --array=...%K` line of a Slurm batch script (tasks at once), or None."""
    try:
        text = sbatch.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(_("cannot read {path}: {reason}").format(path=sbatch, reason=exc.strerror)) from None
    for line in text.splitlines():
        m = re.match(r"\s*#SBATCH\s+(?:--array[= ]|-a\s*)(\S+)", line)
        if m:
            throttle = re.search(r"%(\d+)$", m.group(1))
            return int(throttle.group(1)) if throttle else None
    return None


def to_json(plan: CampusPlan, shard_map: Any = None) -> dict[str, Any]:
    return {
        "users": [
            {
                "gmail_address": u.gmail,
                "source_user": u.source_user,
                "messages": u.messages,
                "selected": u.selected,
                "to_import": u.to_import,
                "bytes": u.bytes,
                "units": u.units,
                "error": u.error or None,
            }
            for u in plan.users
        ],
        "totals": {
            "users": len(plan.users),
            "messages": sum(u.messages for u in plan.users),
            "to_import": sum(u.to_import for u in plan.users),
            "bytes": sum(u.bytes for u in plan.users),
            "units": plan.units,
        },
        "limits": [
            {"limit": lim.name, "budget": lim.budget, "seconds": None if lim.seconds is None else round(lim.seconds, 1)}
            for lim in plan.limits
        ],
        "binds": plan.binds.name,
        "seconds": round(plan.seconds, 1),
        "concurrent_shards": plan.concurrent,
        "shards": [
            {"index": i, "users": users, "seconds": round(secs, 1)}
            for i, (users, secs) in enumerate(zip(plan.shards, plan.shard_seconds, strict=True))
        ],
        "shard_map": None if shard_map is None else str(shard_map),
    }
