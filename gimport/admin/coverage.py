"""Shard coverage: did every shard run, with the same shard count, and did they together take every user?

A Job can be Complete while users were never touched (completions 3 but a shard count of 4), so each
`admin run` records its shard in the state directory (<state_dir>/shards/shard-I-of-N.json: identity, the
users it took, the size and a digest of the users file, when it started and finished) and `admin status`
checks the records: success is `gimport admin status` exiting 0, not the Job being Complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gimport.admin.shards import Shard
from gimport.errors import ConfigError
from gimport.i18n import _, english

SHARDS_DIR = "shards"
_NAME = re.compile(r"shard-(\d+)-of-(\d+)\.json")


def shards_dir(state_dir: Path) -> Path:
    return Path(state_dir) / SHARDS_DIR


def record_path(state_dir: Path, shard: Shard) -> Path:
    return shards_dir(state_dir) / f"shard-{shard.index}-of-{shard.count}.json"


def users_digest(gmails: list[str]) -> str:
    """A digest of the users file's set of addresses (order and case do not matter)."""
    text = "\n".join(sorted({g.strip().lower() for g in gmails}))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1, ensure_ascii=False)
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(
            _("cannot write {path}: {reason} ([admin] state_dir)").format(path=path, reason=exc.strerror)
        ) from None


def record_start(state_dir: Path, shard: Shard, mine: list[str], all_users: list[str]) -> dict[str, Any]:
    """Record that this shard runs now, over `mine` of `all_users` (Gmail addresses). Returns the record."""
    doc = {
        "index": shard.index,
        "count": shard.count,
        "origin": english(shard.origin),  # a JSON record: English
        "shard_map": shard.assignment is not None,
        "users_total": len(all_users),
        "users_digest": users_digest(all_users),
        "users": sorted(g.strip().lower() for g in mine),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": time.time(),
        "finished": None,
        "outcome": None,
    }
    write_json(record_path(state_dir, shard), doc)
    return doc


def record_finish(state_dir: Path, record: dict[str, Any], outcome: str) -> None:
    """Complete the record written by record_start: when the run ended and how (complete, incomplete,
    interrupted, failed)."""
    record = {**record, "finished": time.time(), "outcome": outcome}
    write_json(record_path(state_dir, Shard(record["index"], record["count"])), record)


def read_records(state_dir: Path) -> list[dict[str, Any]]:
    """Every shard record in the state directory (unreadable ones as {"index", "count", "error"})."""
    out = []
    folder = shards_dir(state_dir)
    for path in sorted(folder.glob("shard-*-of-*.json")) if folder.is_dir() else []:
        m = _NAME.fullmatch(path.name)
        if not m:
            continue
        try:
            doc = json.loads(path.read_text("utf-8"))
            if not isinstance(doc, dict):
                raise ValueError("not an object")
        except (OSError, ValueError) as exc:
            doc = {"error": f"{path}: {exc}"}
        doc.setdefault("index", int(m.group(1)))
        doc.setdefault("count", int(m.group(2)))
        doc.setdefault("users", [])
        out.append(doc)
    return out


@dataclass
class Coverage:
    """What the shard records say. ok: one shard count, every shard of it recorded, every user taken."""

    count: int | None = None  # the shard count of the records (the most recent one's when they differ)
    counts: list[int] = field(default_factory=list)  # every shard count found (more than one: a mismatch)
    ran: list[int] = field(default_factory=list)  # shard indices of `count` with a record
    missing: list[int] = field(default_factory=list)  # shard indices of `count` that never ran
    unfinished: list[int] = field(default_factory=list)  # started, not finished (running now, or killed)
    stopped: list[int] = field(default_factory=list)  # their last run ended interrupted or failed
    uncovered: list[str] = field(default_factory=list)  # users of the users file no shard took
    uncovered_count: int = 0  # the same, counted (also known without a users file)
    users_changed: bool = False  # the shards ran with different users files
    errors: list[str] = field(default_factory=list)  # unreadable records

    @property
    def mismatch(self) -> bool:
        return len(self.counts) > 1

    @property
    def ok(self) -> bool:
        return (
            self.count is not None
            and not self.mismatch
            and not self.missing
            and not self.uncovered_count
            and not self.users_changed
            and not self.errors
        )

    @property
    def fails_run(self) -> bool:
        """At the end of `admin run`: a shard count that differs between runs, shards run with different
        users files, unreadable records, or (once every shard has run to its end) users no shard took.
        Shards not run yet are no failure of this one (they may be queued); `admin status` reports them."""
        return self.mismatch or self.users_changed or bool(self.errors) or (self.settled and self.uncovered_count > 0)

    @property
    def settled(self) -> bool:
        """Every shard of `count` has run to its end: what is uncovered now stays uncovered."""
        return self.count is not None and not self.missing and not self.unfinished


def check(state_dir: Path, users: list[str] | None = None, shard: Shard | None = None) -> Coverage:
    """The coverage of the shard records in `state_dir`. `users`: the users file's addresses (None: judged
    by the users_total the shards recorded). `shard`: check only that shard (status --shard)."""
    records = read_records(state_dir)
    cov = Coverage(errors=[r["error"] for r in records if "error" in r])
    records = [r for r in records if "error" not in r]
    if not records:
        return cov
    cov.counts = sorted({r["count"] for r in records})
    newest = max(records, key=lambda r: r.get("started") or 0)
    cov.count = shard.count if shard is not None else newest["count"]
    if shard is not None and shard.count not in cov.counts:
        cov.counts.append(shard.count)
    mine = [r for r in records if r["count"] == cov.count]
    wanted = [shard.index] if shard is not None else list(range(cov.count))
    by_index = {r["index"]: r for r in mine}
    cov.ran = sorted(i for i in by_index if i in wanted)
    cov.missing = [i for i in wanted if i not in by_index]
    cov.unfinished = sorted(i for i in cov.ran if not by_index[i].get("finished"))
    cov.stopped = sorted(i for i in cov.ran if by_index[i].get("outcome") in ("interrupted", "failed"))
    if shard is not None:
        return cov  # one shard cannot tell what the others covered
    covered = {g for r in mine for g in r.get("users", [])}
    digests = {r.get("users_digest") for r in mine}
    cov.users_changed = len(digests) > 1
    if users is not None:
        cov.uncovered = [g for g in users if g.strip().lower() not in covered]
        cov.uncovered_count = len(cov.uncovered)
    else:
        total = max(int(r.get("users_total") or 0) for r in mine)
        cov.uncovered_count = max(0, total - len(covered))
    return cov
