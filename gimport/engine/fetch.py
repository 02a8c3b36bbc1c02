"""The fetch: one thread reads the scanned messages' bodies from the source into the import queue.

The Fetcher owns the source's connection for the transfer (an IMAP connection is not shared), reads the work
the scan gave (one FolderWork per folder) under one EXAMINE per folder, and hands each fetched message to the
import workers as an Item. The byte budget (gimport.engine.inflight) bounds what sits in memory between the two:
sizes are claims, so a message bigger than its claim waits for room. A folder whose UIDVALIDITY changes during
the run is scanned again (the `rescan` it is given: gimport.engine.scan) before it is fetched under the new value.
A message expunged since the scan is recorded as GONE on the folder's result. It speaks the contract only and
never prints.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from gimport.contract import FetchedMessage, MailSource
from gimport.engine.inflight import InFlightBytes
from gimport.engine.results import GONE
from gimport.engine.scan import FolderWork, Items
from gimport.errors import FolderChanged, FolderGone, GimportError, Unexpected
from gimport.i18n import _
from gimport.mail.selection import SCAN_TRIES

log = logging.getLogger("gimport")

# scan a folder's work again under this EXAMINE (uidvalidity, count); None: the folder cannot be read
Rescan = Callable[[FolderWork, tuple[int, int]], "FolderWork | None"]


@dataclass
class Item:
    """One fetched message on its way to an import worker; `budget` is what it holds of the byte budget."""

    work: FolderWork  # the folder's work it was fetched for: its result, UIDVALIDITY and label ids
    message: FetchedMessage
    budget: int


ItemQueue = queue.Queue["Item | None"]  # None: no more items (one per worker)


class Fetcher:
    """Reads the work into `q`, `batch` messages and at most `batch_bytes` claimed per FETCH; `rescan` gives a
    folder's work again after a UIDVALIDITY change, `warn` shows and keeps a warning, `fatal` stops the run with
    an error."""

    def __init__(
        self,
        *,
        source: MailSource,
        rescan: Rescan,
        batch: int,
        batch_bytes: int,
        budget: InFlightBytes,
        q: ItemQueue,
        stop: threading.Event,
        warn: Callable[[str], None],
        fatal: Callable[[GimportError], None],
    ) -> None:
        self.source, self.rescan, self.batch, self.batch_bytes = source, rescan, batch, batch_bytes
        self.budget, self.q, self.stop = budget, q, stop
        self.warn, self.fatal = warn, fatal

    def run(self, work: list[FolderWork], workers: int) -> None:
        """The fetch thread: every folder of `work`, then one None per worker, whatever happens."""
        try:
            for folder in work:
                if self.stop.is_set():
                    return
                if not self._folder(folder):
                    return
        except GimportError as err:
            self.fatal(err)
        except Exception as err:  # a bug must not leave workers waiting forever
            log.exception("reading the source failed")
            self.fatal(Unexpected(_("reading the source failed: {error!r}").format(error=err)))
        finally:
            for _i in range(workers):
                self.q.put(None)

    def _folder_error(self, work: FolderWork, problem: str) -> bool:
        """The folder cannot be fetched (the run goes on with the others): keep and show why."""
        work.result.error = problem
        self.warn(_("{folder}: {problem}").format(folder=work.folder, problem=problem))
        return True

    def _folder(self, work: FolderWork) -> bool:
        """Fetch one folder's work under one EXAMINE; when its UIDVALIDITY is not the scan's any more (a new
        session, a reconnect), scan it again in this session first. False when the run must stop."""
        rescans = 0
        opened: tuple[int, int] | None = None
        current: FolderWork | None = work
        while current is not None and current.items:
            if opened is None:
                try:
                    opened = self.source.examine(current.plan.folder.name)
                except FolderGone as exc:
                    return self._folder_error(
                        current, _("the folder disappeared during the run: {detail}").format(detail=exc)
                    )
            if opened[0] != current.uidvalidity:
                rescans += 1
                if rescans > SCAN_TRIES:
                    return self._folder_error(current, _("its UIDVALIDITY kept changing during the run: run again"))
                log.info(
                    "%s: UIDVALIDITY %s -> %s in this run: scanning it again",
                    current.folder,
                    current.uidvalidity,
                    opened[0],
                )
                self.budget.wait_empty()  # what was fetched under the old value is recorded first
                # scanned under this very EXAMINE, then fetched under it too (a server may change the value at
                # every EXAMINE)
                current = self.rescan(current, opened)
                continue
            try:
                return self._items(current)
            except FolderChanged:
                opened = None  # reconnected to another UIDVALIDITY: examine, scan again, go on
        return True

    def _items(self, work: FolderWork) -> bool:
        """Fetch the work's items into the queue, FETCH by FETCH. False when the run must stop."""
        pending = list(work.items)
        while pending:
            chunk = self._next_chunk(pending, work.alone)
            try:
                answered = self._fetch(work, chunk)
            except FolderGone as exc:
                return self._folder_error(
                    work, _("the folder changed during the run ({detail}): run again to pick it up").format(detail=exc)
                )
            if answered is None:
                return False
            del pending[: len(chunk)]
            gone = [uid for uid, _ in chunk if uid not in answered]
            if gone:
                work.result.record(GONE, n=len(gone))
                log.info("expunged since the scan folder=%r uids=%s", work.folder, gone)
            if self.stop.is_set():
                return False
        return True

    def _fetch(self, work: FolderWork, chunk: Items) -> set[int] | None:
        """One FETCH: queue its messages, each holding its bytes of the budget. Returns the uids the server
        answered, None when a stop came while waiting for room."""
        budget = self.budget
        need = sum(size for _, size in chunk)
        if not budget.acquire(need):
            return None
        held = need  # taken from the budget, not yet handed to a fetched message
        answered: set[int] = set()
        try:
            for msg in self.source.fetch_bodies([uid for uid, _ in chunk], expected_bytes=need):
                n = len(msg.raw)
                # sizes are claims: a message bigger than claimed waits for room
                if n > held:
                    if not budget.acquire(n - held, held=held):
                        return None  # `held` is released below
                    held = 0
                else:
                    held -= n
                answered.add(msg.uid)
                self.q.put(Item(work, msg, n))
        finally:
            budget.release(held)
        return answered

    def _next_chunk(self, pending: Items, alone: frozenset[int]) -> Items:
        """The next FETCH: up to `batch` messages and `batch_bytes` claimed; a message whose size
        claim is unusable (in `alone`) goes alone."""
        chunk: Items = []
        size = 0
        for uid, n in pending:
            by_itself = uid in alone
            if chunk and (by_itself or len(chunk) >= self.batch or size + n > self.batch_bytes):
                break
            chunk.append((uid, n))
            size += n
            if by_itself:
                break
        return chunk
