"""The project's daily budget on disk: one record of what every shard together spent of today's
[admin] project_units_per_day (<state_dir>/shards/daily.json), whatever the shard count, so that a re-shard
or a restart during a quota day goes on counting from the project's spend.

Each shard adds what it spent since its last save, under an exclusive flock (shards of one campus share
the state directory), and learns in return what the others spent. Older versions kept one record per shard
(daily-shard-I-of-N.json): until the project record exists, today's spend is their sum."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

from gimport.admin.coverage import shards_dir, write_json
from gimport.errors import ConfigError
from gimport.i18n import _

PROJECT_DAILY = "daily.json"
_LOCK = ".daily.lock"
_LEGACY = re.compile(r"daily-shard-\d+-of-\d+\.json")


def daily_path(state_dir: Path) -> Path:
    return shards_dir(state_dir) / PROJECT_DAILY


def legacy_paths(state_dir: Path) -> list[Path]:
    """The per-shard records of older versions."""
    folder = shards_dir(state_dir)
    return sorted(p for p in folder.glob("daily-shard-*.json") if _LEGACY.fullmatch(p.name)) if folder.is_dir() else []


def _read(path: Path) -> tuple[str, float] | None:
    try:
        doc = json.loads(path.read_text("utf-8"))
        return str(doc["day"]), float(doc["units"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_daily(state_dir: Path) -> tuple[str | None, float]:
    """(quota day, units the project spent that day); (None, 0) when unknown."""
    found = _read(daily_path(state_dir))
    if found is not None:
        return found
    legacy = [r for r in (_read(p) for p in legacy_paths(state_dir)) if r is not None]
    if not legacy:
        return None, 0.0
    day = max(d for d, _u in legacy)
    return day, sum(u for d, u in legacy if d == day)


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    folder = shards_dir(state_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ConfigError(
            _("cannot write {path}: {reason} ([admin] state_dir)").format(path=folder / _LOCK, reason=exc.strerror)
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # drops the flock


def add_daily(state_dir: Path, day: str, units: float) -> float:
    """Add `units` spent on quota day `day` to the project's record; returns the project's spend that day."""
    with _locked(state_dir):
        known, spent = read_daily(state_dir)
        total = (spent if known == day else 0.0) + units
        if known is None or known <= day:
            write_json(daily_path(state_dir), {"day": day, "units": total})
        return total
