"""What a run did (rclone's fs/accounting): the run's results (RunSummary, one FolderResult per folder),
filled by the engine and rendered by gimport.render.

A FolderResult owns its folder's counts. Two kinds of facts come in, each through one door:
- what the latest scan saw (scanned(): UIDVALIDITY, found, selected, already there, accepted) and how many
  messages it handed out to send (handed_out());
- what became of messages (record(): imported, duplicate, failed, skipped, or gone from the server since the
  scan), from the scan (skipped before sending), the fetch (gone) and the import workers alike.
Every other count a person sees (to do, remaining, the per-outcome numbers) is derived from those.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from gimport.contract import DUPLICATE, FAILED, IMPORTED, SKIPPED, FetchedMessage
from gimport.errors import GimportError
from gimport.i18n import _, ngettext
from gimport.mail.mapping import FolderPlan
from gimport.mail.quota import too_large

# an outcome that is no status in the state file: expunged from the folder between the scan and the fetch
GONE = "gone"
OUTCOMES = (IMPORTED, DUPLICATE, FAILED, SKIPPED, GONE)


def resent_warning(n: int) -> str:
    """What a run says when `n` messages were in flight when an earlier run stopped."""
    return ngettext(
        "{n} message was in flight when an earlier run stopped: it is sent again"
        " (if Gmail stored it before the stop, it may now hold it twice)",
        "{n} messages were in flight when an earlier run stopped: they are sent again"
        " (if Gmail stored them before the stop, it may now hold them twice)",
        n,
    ).format(n=n)


def reason_kind(reason: str) -> str:
    """The group a reason is counted under in the summary: its text before the first ':' (translations
    keep that ASCII colon)."""
    return reason.split(":")[0]


@dataclass
class FolderResult:
    plan: FolderPlan
    # what the latest scan saw (scanned())
    uidvalidity: int | None = None
    found: int = 0  # messages in the folder on the server
    selected: int = 0  # of those, chosen by [filters]
    already: int = 0  # done in earlier runs
    accepted: int = 0  # failed/skipped earlier and accepted as not in Gmail (gimport accept): not tried
    error: str | None = None
    # what this run did (record(), note_resent(), note_ambiguous())
    outcomes: Counter[str] = field(default_factory=Counter)  # messages per outcome (OUTCOMES)
    bytes: int = 0  # of the imported messages
    reasons: Counter[str] = field(default_factory=Counter)  # failed or skipped messages per reason_kind
    resent: int = 0  # import calls in flight when an earlier run was interrupted, their messages sent again now
    ambiguous: int = 0  # retried after an answer that may have come after Gmail stored it
    # the messages the latest scan handed out to send, and the outcomes recorded before it did
    _handed_out: int = field(default=0, repr=False)
    _recorded_before: int = field(default=0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def folder(self) -> str:
        return self.plan.path

    # -- the doors ----------------------------------------------------------------------------------
    def scanned(self, *, uidvalidity: int, found: int, selected: int, already: int, accepted: int) -> None:
        """What a scan of the folder saw (a later scan, after a UIDVALIDITY change, replaces it)."""
        with self._lock:
            self.uidvalidity, self.found, self.selected = uidvalidity, found, selected
            self.already, self.accepted = already, accepted

    def handed_out(self, n: int) -> None:
        """A scan handed `n` messages to the fetch: each is remaining until an outcome is recorded for it.
        What an earlier scan of the folder handed out and was not fetched is in this scan's `n` again."""
        with self._lock:
            self._handed_out, self._recorded_before = n, sum(self.outcomes.values())

    def record(self, outcome: str, *, n: int = 1, size: int = 0, reason: str = "") -> None:
        """What became of `n` messages (one of OUTCOMES); `size`: the bytes of an imported one; `reason`
        (failed, skipped): counted under its kind (reason_kind). Safe from any thread."""
        with self._lock:
            self.outcomes[outcome] += n
            if outcome == IMPORTED:
                self.bytes += size
            if outcome in (FAILED, SKIPPED):
                self.reasons[reason_kind(reason)] += n

    def note_resent(self, calls: int = 1) -> None:
        """A message in flight when an earlier run stopped is being sent again: `calls` import calls for it were
        left in flight (each may have been stored)."""
        with self._lock:
            self.resent += calls

    def note_ambiguous(self) -> None:
        """A call is retried after an answer that may have come after Gmail stored the message."""
        with self._lock:
            self.ambiguous += 1

    # -- derived ------------------------------------------------------------------------------------
    @property
    def imported(self) -> int:
        return self.outcomes[IMPORTED]

    @property
    def duplicates(self) -> int:
        """Same content already imported from this folder (e.g. after a UIDVALIDITY change), or a copy of a
        message imported once from another folder (gimport.engine.copies)."""
        return self.outcomes[DUPLICATE]

    @property
    def failed(self) -> int:
        return self.outcomes[FAILED]

    @property
    def skipped(self) -> int:
        return self.outcomes[SKIPPED]

    @property
    def remaining(self) -> int:
        """Handed out to send and not finished yet (nor gone from the server)."""
        return self._handed_out - (sum(self.outcomes.values()) - self._recorded_before)

    @property
    def todo(self) -> int:
        """This run's share of the folder: what it finished (gone ones aside) and what remains."""
        return self.imported + self.duplicates + self.failed + self.skipped + self.remaining


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
    earlier_resends: int = 0  # possible copies counted by earlier runs that printed no summary (killed)
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


def refusal(msg: FetchedMessage, limit: int) -> tuple[str, str, int] | None:
    """Why a fetched message cannot be sent as it is, as (outcome, reason, bytes counted): the server would not
    give it (it costs that message, never the folder: FAILED, or SKIPPED when it never can), it is empty, or it
    is over Gmail's `limit` (SKIPPED). None when it can be sent."""
    size = len(msg.raw)
    if msg.error is not None:
        return (SKIPPED if msg.permanent else FAILED), msg.error, 0
    if size == 0:
        return SKIPPED, _("empty message on the server (0 bytes)"), 0
    if size > limit:
        return SKIPPED, too_large(size, limit), size
    return None
