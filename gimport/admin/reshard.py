"""`gimport admin reshard N`: change the shard count in one step, safely.

Refused while a shard runs (a user's run lock held, or a shard record started and never finished). Then:
the shard map is written for N shards, balanced by the users' sizes (the old map's, else what their state
files hold); the shard records of the old split are moved aside (<state_dir>/shards/old-<time>/), so the new
shards' coverage starts clean and no task fails on a stale record; the day's spend is kept in the project's
daily record (gimport.admin.daily), which does not depend on the shard count; [admin] shard_count in the
config is set to N when it is there. Users' state files are not touched: every user goes on where they were.
"""

from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from gimport import wiring
from gimport.admin.coverage import read_records, shards_dir
from gimport.admin.daily import add_daily, legacy_paths, read_daily
from gimport.admin.paths import user_paths
from gimport.admin.report import read_row
from gimport.admin.shards import load_shard_map, write_shard_map
from gimport.admin.users import UserEntry
from gimport.config.settings import AdminSettings
from gimport.errors import ConfigError
from gimport.i18n import _

DEFAULT_MAP = "map.json"  # in <state_dir>/shards/, when [admin] shard_map is not set


def map_path(admin: AdminSettings) -> Path:
    """The shard map a campus uses: [admin] shard_map, else <state_dir>/shards/map.json."""
    return admin.shard_map if admin.shard_map is not None else shards_dir(admin.state_dir) / DEFAULT_MAP


def existing_map(admin: AdminSettings) -> Path | None:
    """The shard map to read: [admin] shard_map (it must exist), else the default one when written."""
    path = map_path(admin)
    return path if admin.shard_map is not None or path.exists() else None


@dataclass
class Resharded:
    count: int
    old_counts: list[int]
    shards: list[list[str]]
    map_file: Path
    moved: list[Path] = field(default_factory=list)
    moved_to: Path | None = None
    daily: tuple[str | None, float] = (None, 0.0)
    config_changed: bool = False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, owned by someone else
    return True


def running(admin: AdminSettings, users: list[UserEntry], *, force: bool = False) -> list[str]:
    """What is running now, in the reader's words for the refusal: users whose run lock is held, and shard
    records started and never finished (alive on this host, or on another host: unknown, unless `force`: a
    task killed there, whose record can never finish)."""
    found: list[str] = []
    for u in users:
        if wiring.run_in_progress(user_paths(admin.state_dir, u.gmail).state):
            found.append(_("{gmail} is being migrated now").format(gmail=u.gmail))
    here = socket.gethostname()
    for r in read_records(admin.state_dir):
        if "error" in r or r.get("finished"):
            continue
        if r.get("host") == here and not _alive(int(r.get("pid") or 0)):
            continue  # killed on this host: it runs no more
        if force and r.get("host") != here:
            continue
        found.append(
            _("shard {index}/{count} started on {host} and has not finished").format(
                index=r["index"], count=r["count"], host=r.get("host") or "?"
            )
        )
    return found


def _sizes(admin: AdminSettings, users: list[UserEntry]) -> dict[str, tuple[int, int]]:
    """Each user's (messages, bytes): from the old map, else the state file (selected, and the bytes imported
    scaled to the messages), else the campus's median (a user never scanned)."""
    old = load_shard_map(map_path(admin)).sizes if map_path(admin).exists() else {}
    sizes: dict[str, tuple[int, int]] = {}
    for u in users:
        known = old.get(u.gmail.strip().lower())
        if known is None:
            row = read_row(admin.state_dir, u.gmail, u.source_user)
            if row.selected:
                per = row.bytes // max(1, row.imported)
                known = (row.selected, row.bytes + per * row.to_do)
        if known is not None:
            sizes[u.gmail] = known
    guess = sorted(sizes.values())[len(sizes) // 2] if sizes else (1, 1)
    return {u.gmail: sizes.get(u.gmail, guess) for u in users}


def set_shard_count(config: Path, count: int) -> bool:
    """Set `shard_count = N` in the config's [admin] table when it is there (its comments kept). Whether the
    file changed. Raises ConfigError when it cannot be written."""
    text = config.read_text("utf-8")
    pattern = re.compile(r"^(\s*shard_count\s*=\s*)\d+", re.MULTILINE)
    if len(pattern.findall(text)) != 1:
        return False
    new = pattern.sub(lambda m: f"{m.group(1)}{count}", text)
    if new == text:
        return False
    tmp = config.with_name(f".{config.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(new, encoding="utf-8")
        os.chmod(tmp, config.stat().st_mode & 0o777)
        os.replace(tmp, config)
    except OSError as exc:
        raise ConfigError(_("cannot write {path}: {reason}").format(path=config, reason=exc.strerror)) from None
    return True


def reshard(
    admin: AdminSettings, users: list[UserEntry], count: int, config: Path, *, force: bool = False
) -> Resharded:
    """Change the shard count to `count` (see the module's docstring). Raises ConfigError, and refuses
    while anything runs (`force`: a shard record of another host that never finished does not count)."""
    if count < 1:
        raise ConfigError(_("reshard {n}: the number of shards must be at least 1").format(n=count))
    busy = running(admin, users, force=force)
    if busy:
        raise ConfigError(
            _(
                "not re-sharding while shards run: {what}. Wait for the job to end (or stop it: scancel, kubectl"
                " delete job), then run 'gimport admin reshard {n}' again (--force when squeue or kubectl shows"
                " nothing running: a task killed on another host leaves its record unfinished)"
            ).format(what="; ".join(busy[:5]) + ("; ..." if len(busy) > 5 else ""), n=count)
        )
    records = read_records(admin.state_dir)
    result = Resharded(count, sorted({int(r["count"]) for r in records}), [], map_path(admin))
    # the day's spend first, into the record every shard count shares
    day, spent = read_daily(admin.state_dir)
    if day is not None:
        spent = add_daily(admin.state_dir, day, 0.0)
    result.daily = (day, spent)
    result.shards = write_shard_map(result.map_file, _sizes(admin, users), count)
    folder = shards_dir(admin.state_dir)
    stale = sorted(folder.glob("shard-*-of-*.json")) + legacy_paths(admin.state_dir)
    if stale:
        result.moved_to = folder / time.strftime("old-%Y%m%dT%H%M%S")
        try:
            result.moved_to.mkdir(parents=True, exist_ok=True)
            for path in stale:
                os.replace(path, result.moved_to / path.name)
                result.moved.append(path)
        except OSError as exc:
            raise ConfigError(
                _("cannot move {path} aside: {reason} ([admin] state_dir)").format(path=path, reason=exc.strerror)
            ) from None
    result.config_changed = bool(admin.shard_count) and set_shard_count(config, count)
    return result
