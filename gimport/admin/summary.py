"""What `gimport admin run` returns and records: the run's AdminSummary, its one-word outcome for the
shard record (gimport.admin.coverage), and the English text that says why a user is left incomplete (the
report's error column). Pure data and functions of it; never prints, never touches a file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from gimport.admin.report import COMPLETE, INCOMPLETE, INTERRUPTED, USER_FAILED, UserRow
from gimport.admin.shards import Shard
from gimport.engine.results import RunSummary
from gimport.errors import GimportError
from gimport.i18n import english


@dataclass
class AdminSummary:
    shard: Shard
    rows: list[UserRow] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    interrupted: bool = False
    fatal: GimportError | None = None  # stopped every user (the service account cannot impersonate)
    imported_now: int = 0
    bytes_now: int = 0
    bugs: int = 0  # users stopped by an unexpected error (a bug in gimport: exit code 70, not 1)

    @property
    def duration(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def complete(self) -> bool:
        return not self.interrupted and self.fatal is None and all(r.ok for r in self.rows)


def run_outcome(summary: AdminSummary) -> str:
    """One word for a shard's record: complete, interrupted, failed (stopped everybody) or incomplete."""
    if summary.interrupted:
        return INTERRUPTED
    if summary.fatal is not None:
        return USER_FAILED
    return COMPLETE if summary.complete else INCOMPLETE


def incomplete_reason(summary: RunSummary | None) -> str:
    """Why a user's migration ended incomplete, in English (the state file and the report keep English)."""
    if summary is None:
        return ""
    failed, skipped = summary.total("failed"), summary.total("skipped")
    parts = []
    if failed:
        parts.append(f"{failed} message(s) failed (the next run retries them)")
    if skipped:
        parts.append(f"{skipped} message(s) cannot be imported (skipped)")
    reasons = list(dict.fromkeys(english(r) for f in summary.folders for r in f.reasons))
    if reasons:
        parts.append("reasons: " + "; ".join(reasons[:3]))
    parts += [f"{f.folder}: {english(f.error)}" for f in summary.folders if f.error][:2]
    if summary.warnings and not parts:
        parts.append(english(summary.warnings[0]))
    return "; ".join(parts)
