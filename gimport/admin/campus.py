"""What the campus page (`gimport admin report --html`) shows, read from the state directory alone: each
user's report line (as `admin status` reads it), the shard each user last ran in, why messages failed, when
messages were imported (minute by minute, from the state files' message rows), each shard's record and what it
spent of the daily budget. Pure reading: no network, nothing written; gimport.render.campus renders it.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gimport import wiring
from gimport.admin import coverage
from gimport.admin.paths import user_paths
from gimport.admin.report import META_SHARD, META_STARTED, NOT_STARTED, UserRow, read_rows
from gimport.admin.users import UserEntry
from gimport.config.settings import AdminSettings
from gimport.contract import Ledger
from gimport.errors import StateError
from gimport.pacing.daily import quota_day

MINUTE = 60
REASONS_READ = 200  # failed or skipped messages read per user for their reasons (the counts are exact anyway)
_DAILY = re.compile(r"daily-shard-(\d+)-of-(\d+)\.json")


@dataclass
class Reason:
    """One reason messages of a user failed or were skipped, with how many and in which folders."""

    status: str  # failed or skipped
    text: str
    count: int = 0
    folders: list[str] = field(default_factory=list)


@dataclass
class UserDetail:
    row: UserRow
    shard: str = ""  # "I/N" of the user's last run ("" before the first)
    started: float | None = None  # when the last run began
    reasons: list[Reason] = field(default_factory=list)  # most frequent first


@dataclass
class ShardInfo:
    """One shard as its record and its daily-budget file tell it."""

    index: int
    count: int
    host: str = ""
    started: float | None = None
    finished: float | None = None
    outcome: str = ""  # of its last run ("" while it runs, or when it was killed)
    users: int = 0
    error: str = ""  # an unreadable record
    day: str | None = None  # the quota day of `units`
    units: float = 0.0  # spent of the daily budget on `day`
    limit: float | None = None  # this shard's share of [admin] project_units_per_day (None: no limit)


@dataclass
class CampusReport:
    state_dir: Path
    generated: float
    today: str  # the quota day now (midnight to midnight US Pacific)
    users: list[UserDetail]
    shards: list[ShardInfo]
    minutes: dict[int, tuple[int, int]]  # minute (Unix time) -> (messages, bytes) imported in it, the campus
    units_per_day: float | None  # [admin] project_units_per_day (None: no daily limit)
    units_per_minute: float


def read_campus(admin: AdminSettings, users: list[UserEntry] | None, *, now: float | None = None) -> CampusReport:
    """The campus page's data: every user of `users`, or (None) of every state file in [admin] state_dir."""
    now = time.time() if now is None else now
    minutes: Counter[int] = Counter()
    sizes: Counter[int] = Counter()
    details = []
    for row in read_rows(admin.state_dir, users):
        detail, times = _user_detail(admin.state_dir, row)
        details.append(detail)
        for start, n, size in times:
            minutes[start] += n
            sizes[start] += size
    return CampusReport(
        state_dir=admin.state_dir,
        generated=now,
        today=quota_day(now),
        users=details,
        shards=read_shards(admin),
        minutes={m: (minutes[m], sizes[m]) for m in sorted(minutes)},
        units_per_day=admin.project_units_per_day or None,
        units_per_minute=admin.project_units_per_minute,
    )


def _user_detail(state_dir: Path, row: UserRow) -> tuple[UserDetail, list[tuple[int, int, int]]]:
    """A user's detail and import times from their state file (nothing more when it is missing or
    unreadable: the row says so)."""
    detail = UserDetail(row)
    path = user_paths(state_dir, row.gmail).state
    if row.outcome == NOT_STARTED or not path.exists():
        return detail, []
    try:
        state = wiring.state(path, readonly=True)
    except StateError:
        return detail, []
    try:
        detail.shard = state.get_meta(META_SHARD) or ""
        started = state.get_meta(META_STARTED)
        detail.started = float(started) if started else None
        detail.reasons = reasons(state)
        return detail, state.import_times(MINUTE)
    except (StateError, ValueError):
        return detail, []
    finally:
        state.close()


def reasons(state: Ledger, limit: int = REASONS_READ) -> list[Reason]:
    """Why the messages of a state file failed or were skipped (not accepted), grouped, most frequent first."""
    grouped: dict[tuple[str, str], Reason] = {}
    for account in state.accounts():
        for folder, _uid, status, text in state.problems(account, limit):
            reason = grouped.setdefault((status, text), Reason(status, text))
            reason.count += 1
            if folder not in reason.folders:
                reason.folders.append(folder)
    return sorted(grouped.values(), key=lambda r: (-r.count, r.status, r.text))


def read_shards(admin: AdminSettings) -> list[ShardInfo]:
    """Every shard with a record or a daily-budget file, of every shard count found, by count then index."""
    shards: dict[tuple[int, int], ShardInfo] = {}
    for rec in coverage.read_records(admin.state_dir):
        info = shards.setdefault((rec["count"], rec["index"]), ShardInfo(rec["index"], rec["count"]))
        _fill_from_record(info, rec)
    folder = coverage.shards_dir(admin.state_dir)
    for path in sorted(folder.glob("daily-shard-*-of-*.json")) if folder.is_dir() else []:
        m = _DAILY.fullmatch(path.name)
        if not m:
            continue
        index, count = int(m.group(1)), int(m.group(2))
        info = shards.setdefault((count, index), ShardInfo(index, count))
        try:
            doc = json.loads(path.read_text("utf-8"))
            info.day, info.units = str(doc["day"]), float(doc["units"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # no budget file worth showing: the record is shown without it
    for info in shards.values():
        info.limit = admin.project_units_per_day / info.count if admin.project_units_per_day else None
    return [shards[k] for k in sorted(shards)]


def _fill_from_record(info: ShardInfo, rec: dict[str, Any]) -> None:
    info.error = str(rec.get("error") or "")
    info.host = str(rec.get("host") or "")
    info.started = _number(rec.get("started"))
    info.finished = _number(rec.get("finished"))
    info.outcome = str(rec.get("outcome") or "")
    users = rec.get("users")
    info.users = len(users) if isinstance(users, list) else 0


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
