"""The contract the engine speaks: what a mail source, the Gmail destination, the state, the pacer and
the reporter offer, and the values that cross between them (rclone's fs/types.go).

The engine, plan, verify and cleanup import this module and the pure ones (gimport.mail) only, never a
backend: a new source (Maildir, mbox, ...) plugs in by offering MailSource, without a change to the
engine. Errors crossing these interfaces are those of gimport.errors, typed by what the caller must do.

Core and optional parts, as rclone's Fs and its optional interfaces: MailSource, Destination and State
are what the engine needs; MessageIdLookup, MailboxSettings, MessageListing and Ledger are what a command
or two need, and those commands ask for them. Python has no intersection type, so an optional part
extends the core it adds to. The *Backend protocols gather every part: what gimport.wiring builds, and
what each backend is checked against (the `_: type[...]` line at the end of each backend's module).

Which message is meant: a message is named by its per-source key, (account, folder, generation, uid).
For IMAP the generation is the folder's UIDVALIDITY and uid its UID; a local source gives numbers of
its own with the same promise: the same message keeps the same key for as long as the generation
stays the same, and a new generation says "every uid may now mean another message".

One message, several folders: a source whose folders are labels (Google Takeout, Gmail over IMAP) lists
every label as a folder but serves a message in one of them only, naming the others in
FetchedMessage.also_in; the engine adds those folders' labels. A folder with `served_from` serves no message
at all: it is a label only (its messages come from that folder). Copies elsewhere: gimport.engine.copies.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Self, runtime_checkable

from gimport.records import (
    ACCEPTED,
    DONE_STATUSES,
    DUPLICATE,
    FAILED,
    IMPORTED,
    PENDING,
    PROBLEM_STATUSES,
    SENDING,
    SKIPPED,
    ContentMatch,
    FolderCounts,
    KnownContent,
    MessageRecord,
)

# the state's rows (gimport.records) are part of the contract: re-exported with its own names
__all__ = [
    "ACCEPTED",
    "DONE_STATUSES",
    "DUPLICATE",
    "FAILED",
    "IMPORTED",
    "PENDING",
    "PROBLEM_STATUSES",
    "SENDING",
    "SKIPPED",
    "ContentMatch",
    "Destination",
    "DestinationBackend",
    "FetchedMessage",
    "Folder",
    "FolderCounts",
    "KnownContent",
    "Ledger",
    "LedgerRow",
    "MailSource",
    "MailboxSettings",
    "MessageIdLookup",
    "MessageKey",
    "MessageListing",
    "MessageMeta",
    "MessageRecord",
    "Pacer",
    "Reporter",
    "SourceBackend",
    "State",
    "StateBackend",
    "logical_path",
]

# ------------------------------------------------------------------------------------------------ values


def logical_path(name: str, delimiter: str | None) -> str:
    """The folder name with "/" between levels, whatever the server's delimiter."""
    if not delimiter or delimiter == "/":
        return name
    # a literal "/" inside a level of a "." server would nest in Gmail: keep it visible but flat
    return "/".join(part.replace("/", "\u2215") for part in name.split(delimiter))


@dataclass(frozen=True)
class Folder:
    """A folder as the source lists it. `prefix` is the personal namespace's prefix the server puts in front
    of every folder but INBOX (Cyrus: "INBOX."; "" when the server says there is none; None when it does not
    say): part of `name` and `path` (what the state file is keyed by), not of `label_path` (what labels are
    made from)."""

    name: str
    delimiter: str | None = "/"
    flags: frozenset[str] = frozenset()
    # the labels this folder stands for when the source knows them (Takeout's "Important" -> IMPORTANT, a
    # Gmail source's labels; a name not a system id is a user label; () for "no label": archived); None:
    # the mapping decides; [labels.map] wins.
    labels: tuple[str, ...] | None = None
    prefix: str | None = None
    served_from: str | None = None  # a label only: its messages are served from this folder (see the module)

    @property
    def path(self) -> str:
        return logical_path(self.name, self.delimiter)

    @property
    def label_path(self) -> str | None:
        """`path` without the namespace prefix; None when the prefix is not known."""
        if self.prefix is None:
            return None
        name = self.name
        if self.prefix and name.startswith(self.prefix) and len(name) > len(self.prefix):
            name = name[len(self.prefix) :]
        return logical_path(name, self.delimiter)

    @property
    def selectable(self) -> bool:
        lowered = {f.lower() for f in self.flags}
        return not ({"\\noselect", "\\nonexistent"} & lowered)


@dataclass(frozen=True)
class MessageMeta:
    """What a source knows of a message without reading its body. `size` is what the server claims;
    `size_known` is False when the claim is missing or unusable (not a number, absurdly large): the body
    then tells. `message_id` only from MailSource.fetch_identities."""

    uid: int
    size: int
    flags: tuple[str, ...]
    internaldate: dt.datetime | None
    message_id: str | None = None
    size_known: bool = True


@dataclass(frozen=True)
class FetchedMessage:
    """A message's bytes exactly as the source serves them, with its flags and internal date; or, with
    `error` set, why the server did not give them (costs this message only: recorded failed and retried
    next run, or skipped for good when `permanent`)."""

    uid: int
    raw: bytes
    flags: tuple[str, ...]
    internaldate: dt.datetime | None
    also_in: tuple[str, ...] = ()  # names of other folders the message is in (see the module docstring)
    error: str | None = None
    permanent: bool = False


@dataclass(frozen=True)
class MessageKey:
    """The per-source key of one message (see the module docstring)."""

    account: str
    folder: str
    uidvalidity: int
    uid: int

    def __str__(self) -> str:
        """The key as the commands print and accept it: FOLDER:UIDVALIDITY:UID (the account is the config's)."""
        return f"{self.folder}:{self.uidvalidity}:{self.uid}"

    @classmethod
    def parse(cls, account: str, text: str) -> MessageKey:
        """A key printed by `gimport failed` (FOLDER:UIDVALIDITY:UID; the folder may hold ":" itself).
        Raises ValueError saying what is wrong."""
        folder, sep1, rest = text.rpartition(":")
        folder, sep2, uidvalidity = folder.rpartition(":")
        if not (sep1 and sep2 and folder and uidvalidity.isdigit() and rest.isdigit()):
            raise ValueError(f"{text!r} is not a message key (FOLDER:UIDVALIDITY:UID, as 'gimport failed' prints it)")
        return cls(account, folder, int(uidvalidity), int(rest))


@dataclass(frozen=True)
class LedgerRow:
    """One message as the state file records it (gimport report --csv, failed, verify --exact)."""

    key: MessageKey
    message_id: str | None
    size: int | None
    status: str
    gmail_id: str | None
    labels: tuple[str, ...]  # label ids it was sent with (empty: not sent, or a duplicate of a copy)
    reason: str
    updated: float | None
    accepted: float | None
    changes: str = ""  # what gimport changed in the message on its way to Gmail: "" or "date fixed"


# --------------------------------------------------------------------------------------------- protocols


class MailSource(Protocol):
    """A mailbox, read-only, as the engine and plan read it. One thread uses it. Raises SourceError (the
    account), FolderGone / FolderChanged (one folder)."""

    @property
    def account(self) -> str: ...

    reconnects: int

    def list_folders(self) -> list[Folder]: ...
    def examine(self, folder: str) -> tuple[int, int]:
        """Open `folder` read-only: (generation, message count)."""

    def search(self, since: dt.date | None = None, before: dt.date | None = None) -> list[int]:
        """UIDs in the open folder, ascending, each once."""

    def fetch_meta(self, uids: Sequence[int]) -> Iterator[MessageMeta]: ...
    def fetch_identities(self, uids: Sequence[int]) -> Iterator[MessageMeta]:
        """fetch_meta plus each message's Message-ID, in one FETCH per chunk (no body)."""

    def fetch_bodies(self, uids: Sequence[int], expected_bytes: int | None = None) -> Iterable[FetchedMessage]:
        """Bodies in the order asked (lazily or not: iterate, and hold only what you need); expunged ones left out; a message the
        server will not give comes back with `error` set (never an exception for one message).
        `expected_bytes`: what the sizes claim."""

    def interrupt(self) -> None:
        """From another thread: stop now. The operation in progress ends with Interrupted."""


class MessageIdLookup(MailSource, Protocol):
    """Optional: the Message-IDs of messages in the open folder (verify names the missing ones by them)."""

    def fetch_message_ids(self, uids: Sequence[int]) -> dict[int, str | None]: ...


@runtime_checkable
class SourceBackend(MessageIdLookup, Protocol):
    """Every part of a source, opened and closed by its owner (or `with`): gimport.wiring.source builds it."""

    def connect(self) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> None: ...


class Destination(Protocol):
    """One Gmail account as the engine needs it: address, labels, import. Each method is one paced, retried
    call (gimport.calls); errors: RetryableError (gave up), MessageRejected, Conflict, AuthError, GmailError."""

    max_message_bytes: int

    def primary_address(self) -> str: ...
    def list_labels(self) -> list[dict[str, Any]]: ...
    def get_label(self, label_id: str) -> dict[str, Any]: ...
    def create_label(self, name: str, visibility: str = "labelShow", messages: str = "show") -> dict[str, Any]: ...
    def import_message(
        self,
        raw: bytes,
        label_ids: list[str],
        *,
        on_attempt: Callable[[int], None] | None = None,
        on_retry: Callable[[Any], None] | None = None,
    ) -> str:
        """Import byte-exact; returns the Gmail id. `on_attempt(n)` runs before attempt n leaves."""


class MailboxSettings(Destination, Protocol):
    """Optional: the settings that may point at the old server (IMAP access, forwarding, filters): read by
    check and cleanup; cleanup changes IMAP access only."""

    def get_imap(self) -> dict[str, Any]: ...
    def update_imap(self, body: dict[str, Any]) -> dict[str, Any]: ...
    def get_auto_forwarding(self) -> dict[str, Any]: ...
    def list_forwarding_addresses(self) -> list[dict[str, Any]]: ...
    def list_filters(self) -> list[dict[str, Any]]: ...


class MessageListing(Destination, Protocol):
    """Optional: the ids of the messages in the account, by label (verify --exact proves the import by them)."""

    def can_list_messages(self) -> bool:
        """Whether the grant allows users.messages.list (the gmail.metadata scope: verify --exact)."""

    def list_message_ids(self, label_id: str | None, *, include_spam_trash: bool = False) -> Iterator[list[str]]:
        """The ids of the messages carrying `label_id` (None: the whole mailbox), one page (one call, up to
        500 ids) at a time. Raises AuthError without the scope."""


class DestinationBackend(MailboxSettings, MessageListing, Protocol):
    """Every part of the destination: what gimport.wiring.gmail builds."""


class Pacer(Protocol):
    """Spreads calls over a budget of units per minute (gimport.pacing.rate)."""

    def acquire(self, units: float = 1, *, sleep: Callable[[float], object] | None = None) -> float: ...
    def note_rate_limited(self, server_wait: float | None = None, *, concurrent: bool = False) -> None:
        """The server refused this thread's last call: slow down, or with `concurrent` fewer calls at once."""

    def slot(self) -> AbstractContextManager[Callable[[float], None]]:
        """Hold a place in the concurrency limit for one call; call what it yields with the cost as it leaves."""

    def backoff_delay(self, attempt: int, server_wait: float | None = None) -> float: ...
    @property
    def concurrency_limit(self) -> int: ...  # calls that may be in flight now (the engine's pool follows it)
    @property
    def rate_per_minute(self) -> float | None: ...
    @property
    def rate_limited(self) -> int: ...


class State(Protocol):
    """What the engine reads and records (gimport.backends.state.store.StateStore). Raises StateError."""

    @property
    def path(self) -> Path: ...

    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def bind_destination(self, gmail_account: str) -> None: ...
    def record_folder(
        self, account: str, folder: str, uidvalidity: int | None, found: int, selected: int, labels: str
    ) -> None: ...
    def set_folder_errors(self, account: str, errors: dict[str, str]) -> None: ...
    def recorded_folders(self, account: str) -> dict[str, int | None]: ...
    def done_uids(
        self, account: str, folder: str, uidvalidity: int, statuses: tuple[str, ...] = ..., *, accepted: bool = ...
    ) -> set[int]: ...
    def add_pending(self, account: str, folder: str, uidvalidity: int, items: Iterable[tuple[int, int]]) -> None: ...
    def find_imported_copy(self, account: str, folder: str | None, sha256: str) -> str | None: ...
    def known_content(self, account: str, folder: str, uidvalidity: int) -> KnownContent: ...
    def generations(self, account: str, folder: str) -> int: ...
    def add_done_by_content(
        self, account: str, folder: str, uidvalidity: int, matches: dict[int, ContentMatch]
    ) -> None: ...
    def mark_sending(
        self, key: MessageKey, message_id: str | None, sha256: str, labels: str, identity: str | None = None
    ) -> int: ...
    def mark_imported(
        self, key: MessageKey, gmail_id: str, size: int, copies: Sequence[MessageKey] = ..., *, changes: str = ...
    ) -> None: ...
    def mark_duplicate(self, key: MessageKey, gmail_id: str, sha256: str, message_id: str | None) -> None: ...
    def mark_failed(self, key: MessageKey, reason: str) -> None: ...
    def note_error(self, key: MessageKey, reason: str) -> None: ...
    def mark_skipped(self, key: MessageKey, reason: str) -> None: ...
    def count_in_flight(self, account: str) -> int: ...


class Ledger(State, Protocol):
    """Optional: the queries of the commands that report (status, failed, report, verify, admin report), and
    the acceptance of a message as not in Gmail (accept)."""

    def accounts(self) -> list[str]: ...
    def folder_counts(self, account: str) -> list[FolderCounts]: ...
    def folder_errors(self, account: str) -> dict[str, str]: ...
    def folder_messages(self, account: str, folder: str, uidvalidity: int) -> dict[int, MessageRecord]: ...
    def problems(self, account: str, limit: int = 50) -> list[tuple[str, int, str, str]]:
        """(folder, uid, status, reason) of messages failed or skipped and not accepted, newest first."""

    def ledger(self, account: str, *, statuses: tuple[str, ...] | None = None) -> list[LedgerRow]:
        """Every message of the folders' current generations (optionally only `statuses`), by key."""

    def import_times(self, bucket: int = ...) -> list[tuple[int, int, int]]:
        """(bucket start, messages, bytes) imported per `bucket` seconds (admin report --html's chart)."""

    def accept(self, keys: Iterable[MessageKey], when: float) -> list[MessageKey]:
        """Accept failed/skipped messages as not in Gmail; returns those newly accepted."""

    def unaccept(self, key: MessageKey) -> bool:
        """Undo an acceptance; False when the message was not accepted."""


class StateBackend(Ledger, Protocol):
    """Every part of the state file, with its owner's notes and close(): gimport.wiring.state builds it."""

    def close(self) -> None: ...


class Reporter(Protocol):
    """Where the engine reports; the CLI renders it (gimport.render). The engine never prints."""

    def phase(self, text: str) -> None: ...
    def transfer_started(self, messages: int, size: int) -> None: ...
    def message_finished(self, folder: str, outcome: str, size: int) -> None: ...
    def warning(self, text: str) -> None: ...
