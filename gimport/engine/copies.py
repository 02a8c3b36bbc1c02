"""One message in several folders, imported once: finding the copies in a scan, and what becomes of them.

A message filed in a folder while a copy stays in INBOX (IMAP COPY, a client's "copy to") is the same bytes
in two folders. Gmail documents no merge of two imports of one message, and one that never merges stores
both: so the copies a scan finds are imported ONCE, with the labels of every folder
(gimport.mail.copies.merged_labels says which).

Finding them: the scan reads each message's copy identity (Message-ID, size, INTERNALDATE: one small FETCH,
gimport.mail.selection.copy_identity). Messages that share one in this scan are candidates; their bodies are
then read (one FETCH of a few at a time, folder by folder) and only those with the same content hash are
copies. The first of them in the scan's order (INBOX first) is the *home*: the one sent. The others are left
out of their folders' work; each is recorded in the state file as a duplicate of the home, with its Gmail
id, in the same transaction as the home's import (StateStore.mark_imported): a run killed at any instant
leaves either all of them to send again, once, or none. When the home fails or is skipped, so are its
copies (the next run finds them all again).

A copy that shows up in a later run, after its message was imported from another folder, is imported as any
new message, with its folder's labels (what Gmail then does with two imports of one message is reported, not
documented) -- unless the token allows users.messages.modify (`gimport auth --label-copies`): then its labels
are added to the message already in Gmail (never any taken away: Trash, Spam and unread stay as the first
import left them) and it is recorded as a duplicate of it (later_copy).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from gimport.config.settings import LabelSettings
from gimport.contract import DUPLICATE, FAILED, IMPORTED, SKIPPED, MailSource, MessageKey, Reporter, State
from gimport.engine.results import FolderResult
from gimport.errors import AuthError, FolderChanged, FolderGone, GmailRefused, MessageRejected
from gimport.i18n import english
from gimport.mail import rfc822
from gimport.mail.copies import EVERY_COPY, merged_labels
from gimport.mail.keywords import flag_labels
from gimport.mail.mapping import FolderPlan, message_labels

log = logging.getLogger("gimport")

READ_BATCH = 20  # candidates read per FETCH when confirming copies
READ_BATCH_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Copy:
    """A copy of a message the run imports once from another place (its home): where it is, its flags at the
    scan, and the folder result its outcome is recorded on."""

    key: MessageKey
    plan: FolderPlan
    flags: tuple[str, ...]
    result: FolderResult
    size: int


@dataclass(frozen=True)
class Candidate:
    """A message to send, with its copy identity (gimport.mail.selection.copy_identity)."""

    copy: Copy
    identity: str


@dataclass(frozen=True)
class Copies:
    """What find_copies found: home key -> its copies; and every copy's key (left out of its folder's work)."""

    of: dict[MessageKey, tuple[Copy, ...]]
    left_out: frozenset[MessageKey]


def find_copies(source: MailSource, candidates: Sequence[Candidate]) -> Copies:
    """The copies among `candidates` (in the scan's order): those sharing a copy identity are read and
    hashed, folder by folder; a folder that cannot be read now, or has another UIDVALIDITY than at its scan,
    keeps its messages apart (each is then sent as it is). Raises SourceError (the server is gone)."""
    by_identity: dict[str, list[Candidate]] = {}
    for c in candidates:
        by_identity.setdefault(c.identity, []).append(c)
    shared = [c for group in by_identity.values() if len(group) > 1 for c in group]
    if not shared:
        return Copies({}, frozenset())
    hashes = _hashes(source, shared)
    groups: dict[tuple[str, str], list[Copy]] = {}
    for c in shared:
        sha = hashes.get(c.copy.key)
        if sha is not None:
            groups.setdefault((c.identity, sha), []).append(c.copy)
    of = {group[0].key: tuple(group[1:]) for group in groups.values() if len(group) > 1}
    left_out = frozenset(c.key for copies in of.values() for c in copies)
    log.info("copies in several places: %d messages stand for %d more", len(of), len(left_out))
    return Copies(of, left_out)


def _hashes(source: MailSource, shared: list[Candidate]) -> dict[MessageKey, str]:
    """The content hash of each candidate whose folder can be read as it was scanned."""
    by_folder: dict[str, list[Candidate]] = {}
    for c in shared:
        by_folder.setdefault(c.copy.plan.folder.name, []).append(c)
    hashes: dict[MessageKey, str] = {}
    for name, members in by_folder.items():
        try:
            uidvalidity, _count = source.examine(name)
            if uidvalidity != members[0].copy.key.uidvalidity:
                log.info("%s: UIDVALIDITY changed since its scan: its copies are sent apart", name)
                continue
            by_uid = {c.copy.key.uid: c.copy.key for c in members}
            for chunk in _chunks([c.copy for c in members]):
                for msg in source.fetch_bodies([c.key.uid for c in chunk], expected_bytes=sum(c.size for c in chunk)):
                    if msg.error is None and msg.uid in by_uid:
                        hashes[by_uid[msg.uid]] = rfc822.sha256(msg.raw)
        except (FolderGone, FolderChanged) as exc:
            log.info("%s: cannot read it again to compare copies (%s): they are sent apart", name, exc)
    return hashes


def _chunks(copies: list[Copy]) -> Iterable[list[Copy]]:
    chunk: list[Copy] = []
    size = 0
    for c in copies:
        if chunk and (len(chunk) >= READ_BATCH or size + c.size > READ_BATCH_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(c)
        size += c.size
    if chunk:
        yield chunk


def labels_with_copies(refs: Sequence[str], copies: Sequence[Copy], settings: LabelSettings) -> list[str]:
    """The label references of a home message whose own are `refs`, with those of its copies."""
    if not copies:
        return list(refs)
    others = [(*message_labels(c.plan, c.flags), *flag_labels(c.flags, settings)) for c in copies]
    return list(merged_labels([refs, *others]))


def finish_copies(
    state: State, reporter: Reporter, copies: Sequence[Copy], outcome: str, size: int, reason: str = ""
) -> None:
    """What became of a home message becomes of its copies: imported (the state recorded them with it:
    StateStore.mark_imported) makes each a duplicate of it; failed or skipped, the same, recorded."""
    mine = DUPLICATE if outcome == IMPORTED else outcome
    for c in copies:
        if mine == FAILED:
            state.mark_failed(c.key, english(reason))
        elif mine == SKIPPED:
            state.mark_skipped(c.key, english(reason))
        c.result.record(mine, size=size, reason=reason)
        log.info("%s folder=%r uid=%d (a copy of the message sent from another place)", mine, c.key.folder, c.key.uid)
        reporter.message_finished(c.key.folder, mine, size)


@runtime_checkable
class LabelsOfImported(Protocol):
    """Optional, for a destination: adding labels to a message already there (Gmail: users.messages.modify,
    when the token has a scope for it)."""

    def can_modify_messages(self) -> bool: ...
    def add_labels(self, message_id: str, label_ids: Sequence[str]) -> None: ...


def later_copy(gmail: object, state: State, key: MessageKey, sha256: str, label_ids: dict[str, str]) -> str | None:
    """The Gmail id of the message imported from another folder at an earlier run with the same content as
    the message at `key`, after adding `label_ids` (reference -> id: the labels the copy would be sent with)
    to it; None (send the copy as any message) when the destination may not modify messages, none was
    imported, or Gmail refuses the change. The labels that say where a message is (EVERY_COPY) are not
    added: the message is in the other folder too."""
    if not isinstance(gmail, LabelsOfImported) or not gmail.can_modify_messages():
        return None
    gmail_id = state.find_imported_copy(key.account, None, sha256)
    if gmail_id is None:
        return None
    add = [lid for ref, lid in label_ids.items() if ref not in EVERY_COPY]
    try:
        if add:
            gmail.add_labels(gmail_id, add)
    except (MessageRejected, GmailRefused, AuthError) as exc:
        log.info(
            "folder=%r uid=%d: cannot label the earlier import %s (%s): sent as it is",
            key.folder,
            key.uid,
            gmail_id,
            exc,
        )
        return None
    log.info("folder=%r uid=%d: a copy of %s, imported at an earlier run: labels added", key.folder, key.uid, gmail_id)
    return gmail_id
