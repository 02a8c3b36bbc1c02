"""What the state file records, as the state hands it back: a message's status, its record, a folder's
counts, and what earlier generations of a folder put into Gmail. Part of the contract (gimport.contract
re-exports every name): kept apart so that the contract's own module stays a page of protocols."""

from __future__ import annotations

from dataclasses import dataclass

# A message's status in the state file (and its outcome in a run).
PENDING = "pending"  # found on the source, not yet sent
SENDING = "sending"  # import call may be in flight
IMPORTED = "imported"  # Gmail has it (gmail_id set)
DUPLICATE = "duplicate"  # same content imported already: from this folder, or as a copy elsewhere (engine.copies)
FAILED = "failed"  # last attempt failed; retried by the next run
SKIPPED = "skipped"  # can never be imported as it is (e.g. over Gmail's 150 MiB); reported every run
DONE_STATUSES = (IMPORTED, DUPLICATE)
PROBLEM_STATUSES = (FAILED, SKIPPED)  # what `gimport failed` lists and `gimport accept` may accept
# A failed or skipped message can be *accepted* (gimport accept): its status stays, the time of the acceptance
# is recorded beside it; run no longer tries it and verify lists it, never silently.
ACCEPTED = "accepted"


@dataclass(frozen=True)
class KnownContent:
    """What a folder's earlier generations (other UIDVALIDITYs) put into Gmail: identity
    (gimport.mail.selection.content_identity) -> the content hashes of the imported messages that have it, and
    content hash -> Gmail id."""

    by_identity: dict[str, frozenset[str]]
    by_hash: dict[str, str]

    def __bool__(self) -> bool:
        return bool(self.by_hash)


@dataclass(frozen=True)
class ContentMatch:
    """A message counted as done by its content: the Gmail id of the imported copy, its identity, hash."""

    gmail_id: str
    identity: str | None
    sha256: str
    size: int


@dataclass(frozen=True)
class MessageRecord:
    uid: int
    status: str
    message_id: str | None
    gmail_id: str | None
    last_error: str
    accepted: float | None = None  # when it was accepted as not in Gmail (gimport accept), else None
    labels: str | None = None  # the label ids it was sent with, comma-separated (None: not sent)


@dataclass(frozen=True)
class FolderCounts:
    folder: str
    found: int
    selected: int
    labels: str
    imported: int
    duplicate: int
    failed: int
    skipped: int
    sending: int
    pending: int
    bytes_imported: int
    resent: int
    accepted: int = 0  # failed or skipped, accepted as not in Gmail (not counted in failed/skipped)

    @property
    def to_do(self) -> int:
        """Selected messages not yet in Gmail and still worth a try (the one "to do" formula)."""
        return max(0, self.selected - self.imported - self.duplicate - self.skipped - self.accepted)
