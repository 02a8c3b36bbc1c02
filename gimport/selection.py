"""Which messages of a folder are selected now: shared by run, plan and verify (one formula).

Only reads the source (through gimport.contract.MailSource); touches no state.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from gimport.contract import MailSource
from gimport.settings import FilterSettings

T = TypeVar("T")


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

    @property
    def selected(self) -> int:
        return self.matched - self.too_big


def select_messages(
    source: MailSource, folder_name: str, filters: FilterSettings, done: Callable[[int], Collection[int]] | None = None
) -> FolderSelection:
    """Open one folder read-only and apply [filters]. Only reads the source; touches no state.

    `done(uidvalidity)` names the UIDs of that folder generation that need no more work: they count as
    selected without their size being fetched (they were selected when they were done). Used by the run
    (state: imported, duplicate, skipped) and by `gimport verify` (imported, duplicate).
    Raises FolderGone (the folder cannot be opened) and SourceError (the server is gone).
    """
    max_size = int(filters.max_size_mb * 1024 * 1024) if filters.max_size_mb else None
    uidvalidity, found = source.examine(folder_name)
    uids = source.search(filters.since, filters.before)
    finished = set(done(uidvalidity)) if done else set()
    done_uids = [u for u in uids if u in finished]
    todo, too_big = [], 0
    for meta in source.fetch_meta([u for u in uids if u not in finished]):
        if max_size is not None and meta.size > max_size:
            too_big += 1
            continue
        todo.append((meta.uid, meta.size))
    return FolderSelection(uidvalidity, found, len(uids), done_uids, todo, too_big)
