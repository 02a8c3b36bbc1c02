"""What a run did (rclone's fs/accounting): the run's results (RunSummary, one FolderResult per folder),
filled by the engine and rendered by gimport.render."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from gimport.errors import GimportError
from gimport.mail.mapping import FolderPlan


def reason_kind(reason: str) -> str:
    """The group a reason is counted under in the summary: its text before the first ':' (translations
    keep that ASCII colon)."""
    return reason.split(":")[0]


@dataclass
class FolderResult:
    plan: FolderPlan
    uidvalidity: int | None = None
    found: int = 0  # messages in the folder on the server
    selected: int = 0  # of those, chosen by [filters]
    already: int = 0  # done in earlier runs
    todo: int = 0  # to send in this run
    todo_bytes: int = 0
    imported: int = 0
    duplicates: int = 0  # same content already imported from this folder (e.g. after a UIDVALIDITY change)
    failed: int = 0
    skipped: int = 0
    resent: int = 0  # in flight when an earlier run was interrupted, sent again now
    ambiguous: int = 0  # retried after an answer that may have come after Gmail stored it
    accepted: int = 0  # failed/skipped earlier and accepted as not in Gmail (gimport accept): not tried
    bytes: int = 0
    error: str | None = None
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def folder(self) -> str:
        return self.plan.path

    def note_reason(self, reason: str, n: int = 1) -> None:
        """Count `n` messages failed or skipped for `reason` under its kind (reason_kind)."""
        self.reasons[reason_kind(reason)] += n

    @property
    def remaining(self) -> int:
        return self.todo - self.imported - self.duplicates - self.skipped - self.failed


@dataclass
class RunSummary:
    source_account: str
    gmail_account: str | None
    folders: list[FolderResult] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    interrupted: bool = False
    fatal: GimportError | None = None
    rate_limited: int = 0
    imap_reconnects: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    def total(self, attr: str) -> int:
        return sum(getattr(f, attr) for f in self.folders)

    @property
    def complete(self) -> bool:
        """Everything selected is in Gmail."""
        return (
            not self.interrupted
            and self.fatal is None
            and all(f.error is None and f.remaining == 0 and f.failed == 0 and f.skipped == 0 for f in self.folders)
        )
