"""Which messages of a folder are selected now: shared by run, plan and verify (one formula).

Only reads the source (through gimport.contract.MailSource); touches no state.

A message is done by its key (this generation's UID recorded done) or, when the folder's earlier
generations (other UIDVALIDITYs) imported messages, by its content: its cheap identity (Message-ID,
RFC822.SIZE, INTERNALDATE, read in one FETCH with the sizes) names exactly one imported message, or,
where the identity is missing or ambiguous and the caller asks for it, its content hash (the body,
fetched one message at a time) is that of an imported message. So a server that gives a folder a new
UIDVALIDITY in every session (some do, rebuilding their indexes) costs one small FETCH per message per run, not a re-import.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gimport.config.settings import FilterSettings
from gimport.contract import ContentMatch, KnownContent, MailSource
from gimport.errors import FolderChanged
from gimport.mail import rfc822
from gimport.mail.keywords import is_deleted, keywords

# A folder whose UIDVALIDITY changes between the EXAMINE and the last command of its scan is scanned again
# (a server rebuilding its indexes, a reconnect): this many times, then it is reported as changing.
SCAN_TRIES = 3

T = TypeVar("T")


def content_identity(message_id: str | None, size: int, internaldate: dt.datetime | None) -> str | None:
    """The cheap identity of a message (Message-ID, size, INTERNALDATE to the second): what tells a message
    apart when its UID means nothing any more (a new UIDVALIDITY). None when it has no Message-ID or date:
    only its content hash can tell then."""
    if not message_id or internaldate is None:
        return None
    return f"{message_id}\n{size}\n{int(internaldate.timestamp())}"


def _path(item: Any) -> str:
    return str(item.path)


def inbox_first(items: Iterable[T], key: Callable[[T], str] = _path) -> list[T]:
    """The order folders are shown and worked in: INBOX first, then by path (the one shared sort).
    `key` gives an item's folder path (default: its `.path`, as a FolderPlan has)."""
    return sorted(items, key=lambda item: (key(item).upper() != "INBOX", key(item)))


@dataclass(frozen=True)
class FolderSelection:
    """What [filters] select in one folder on the source now; see select_messages."""

    uidvalidity: int
    found: int  # messages in the folder
    matched: int  # of those, within [filters] since/before
    done: list[int]  # matched UIDs that `done` said need no more work (their size is not fetched again)
    todo: list[tuple[int, int]]  # (uid, size): matched, not done, within [filters] max_size_mb
    too_big: int  # matched, not done, over max_size_mb
    by_content: dict[int, ContentMatch] = field(default_factory=dict)  # matched, done by content (see module)
    unknown_size: frozenset[int] = frozenset()  # of todo: the server's size claim is unusable (size 0 there)
    compared_by_content: bool = False  # earlier generations exist: identities were read
    deleted: int = 0  # matched, not done, flagged \\Deleted: left out (todo holds them with include_deleted)
    deleted_left_out: bool = True  # [filters] include_deleted is false
    keywords: dict[str, int] = field(default_factory=dict)  # keyword -> messages of todo carrying it

    @property
    def selected(self) -> int:
        return self.matched - self.too_big - (self.deleted if self.deleted_left_out else 0)


def select_messages(
    source: MailSource,
    folder_name: str,
    filters: FilterSettings,
    done: Callable[[int], Collection[int]] | None = None,
    known: Callable[[int], KnownContent] | None = None,
    *,
    resolve_by_hash: bool = False,
    opened: tuple[int, int] | None = None,
) -> FolderSelection:
    """Open one folder read-only and apply [filters]. Only reads the source; touches no state.

    `done(uidvalidity)` names the UIDs of that folder generation that need no more work: they count as
    selected without their size being fetched (they were selected when they were done). Used by the run
    (state: imported, duplicate, skipped) and by `gimport verify` (imported, duplicate).
    `known(uidvalidity)`: what the folder's other generations imported; the rest is then compared by content
    (see the module docstring); `resolve_by_hash` also hashes the bodies of those the identity cannot tell
    (verify; the run hashes every body it fetches anyway).
    `opened`: (uidvalidity, count) of an EXAMINE just done in this session: the scan uses it, with no new one.
    A UIDVALIDITY change during the scan (FolderChanged) is answered by examining and scanning again, up to
    SCAN_TRIES times. Raises FolderGone (the folder cannot be opened), FolderChanged (it kept changing) and
    SourceError (the server is gone).
    """
    for attempt in range(SCAN_TRIES):
        try:
            examined = opened if opened is not None and attempt == 0 else source.examine(folder_name)
            return _select_open(source, examined, filters, done, known, resolve_by_hash)
        except FolderChanged:
            if attempt == SCAN_TRIES - 1:
                raise
    raise AssertionError("unreachable")


def _select_open(
    source: MailSource,
    examined: tuple[int, int],
    filters: FilterSettings,
    done: Callable[[int], Collection[int]] | None,
    known: Callable[[int], KnownContent] | None,
    resolve_by_hash: bool,
) -> FolderSelection:
    max_size = int(filters.max_size_mb * 1024 * 1024) if filters.max_size_mb else None
    uidvalidity, found = examined
    uids = sorted(set(source.search(filters.since, filters.before)))  # a server may repeat UIDs
    finished = set(done(uidvalidity)) if done else set()
    done_uids = [u for u in uids if u in finished]
    rest = [u for u in uids if u not in finished]
    earlier = known(uidvalidity) if known and rest else None
    todo, too_big = [], 0
    by_content: dict[int, ContentMatch] = {}
    unknown: set[int] = set()
    unresolved: list[int] = []
    deleted = 0
    tags: dict[str, int] = {}
    metas = source.fetch_identities(rest) if earlier else source.fetch_meta(rest)
    for meta in metas:
        if meta.size_known and max_size is not None and meta.size > max_size:
            too_big += 1
            continue
        if is_deleted(meta.flags):
            deleted += 1
            if not filters.include_deleted:
                continue
        for keyword in keywords(meta.flags):
            tags[keyword] = tags.get(keyword, 0) + 1
        if earlier:
            ident = content_identity(meta.message_id, meta.size, meta.internaldate) if meta.size_known else None
            hashes = earlier.by_identity.get(ident) if ident else None
            if hashes is not None and len(hashes) == 1:
                sha = next(iter(hashes))
                by_content[meta.uid] = ContentMatch(earlier.by_hash[sha], ident, sha, meta.size)
                continue
            if resolve_by_hash:
                unresolved.append(meta.uid)
        if not meta.size_known:
            unknown.add(meta.uid)
        todo.append((meta.uid, meta.size))
    if earlier and unresolved:
        # one body at a time: only the messages the identity could not tell, never the folder at once
        hashed: dict[int, ContentMatch] = {}
        for uid in unresolved:
            for msg in source.fetch_bodies([uid]):
                if msg.error is None:
                    sha = rfc822.sha256(msg.raw)
                    if sha in earlier.by_hash:
                        ident = content_identity(rfc822.message_id(msg.raw), len(msg.raw), msg.internaldate)
                        hashed[uid] = ContentMatch(earlier.by_hash[sha], ident, sha, len(msg.raw))
        by_content.update(hashed)
        todo = [(u, s) for u, s in todo if u not in hashed]
    return FolderSelection(
        uidvalidity,
        found,
        len(uids),
        done_uids,
        todo,
        too_big,
        by_content,
        frozenset(unknown),
        compared_by_content=bool(earlier),
        deleted=deleted,
        deleted_left_out=not filters.include_deleted,
        keywords=tags,
    )
