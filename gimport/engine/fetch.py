"""The fetch: one thread reads the scanned messages' bodies from the source into the import queue.

The Fetcher owns the source's connection for the transfer (an IMAP connection is not shared), reads the work
the scan gave folder by folder under one EXAMINE, and hands each fetched message to the import workers as an
Item. The byte budget (gimport.engine.inflight) bounds what sits in memory between the two: sizes are claims, so a
message bigger than its claim waits for room. A folder whose UIDVALIDITY changes during the run is scanned
again (gimport.engine.scan) before it is fetched under the new value. It speaks the contract only and never prints.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from gimport.contract import FetchedMessage, MailSource
from gimport.engine.inflight import InFlightBytes
from gimport.engine.results import FolderResult
from gimport.engine.scan import Items, Scanner, Work
from gimport.errors import FolderChanged, FolderGone, GimportError, Unexpected
from gimport.i18n import _
from gimport.mail.selection import SCAN_TRIES

log = logging.getLogger("gimport")


@dataclass
class Item:
    """One fetched message on its way to an import worker; `budget` is what it holds of the byte budget."""

    result: FolderResult
    label_ids: dict[str, str]
    uidvalidity: int
    message: FetchedMessage
    budget: int


ItemQueue = queue.Queue["Item | None"]  # None: no more items (one per worker)


class Fetcher:
    """Reads `work` into `q`, `batch` messages and at most `batch_bytes` claimed per FETCH; `warn` shows and
    keeps a warning, `fatal` stops the run with an error."""

    def __init__(
        self,
        *,
        source: MailSource,
        scanner: Scanner,
        batch: int,
        batch_bytes: int,
        budget: InFlightBytes,
        q: ItemQueue,
        stop: threading.Event,
        warn: Callable[[str], None],
        fatal: Callable[[GimportError], None],
    ) -> None:
        self.source, self.scanner, self.batch, self.batch_bytes = source, scanner, batch, batch_bytes
        self.budget, self.q, self.stop = budget, q, stop
        self.warn, self.fatal = warn, fatal

    def run(self, work: Work, label_ids: dict[str, str], workers: int) -> None:
        """The fetch thread: every folder of `work`, then one None per worker, whatever happens."""
        try:
            for result, items in work:
                if self.stop.is_set():
                    return
                if not self._folder(result, items, label_ids):
                    return
        except GimportError as err:
            self.fatal(err)
        except Exception as err:  # a bug must not leave workers waiting forever
            log.exception("reading the source failed")
            self.fatal(Unexpected(_("reading the source failed: {error!r}").format(error=err)))
        finally:
            for _i in range(workers):
                self.q.put(None)

    def _folder(self, result: FolderResult, items: Items, label_ids: dict[str, str]) -> bool:
        """Fetch one folder's items under one EXAMINE; when its UIDVALIDITY is not the scan's any more (a new
        session, a reconnect), scan it again in this session first. False when the run must stop."""
        rescans = 0
        opened: tuple[int, int] | None = None
        while items:
            if opened is None:
                try:
                    opened = self.source.examine(result.plan.folder.name)
                except FolderGone as exc:
                    result.error = _("the folder disappeared during the run: {detail}").format(detail=exc)
                    self.warn(_("{folder}: {problem}").format(folder=result.folder, problem=result.error))
                    return True
            if opened[0] != result.uidvalidity:
                rescans += 1
                if rescans > SCAN_TRIES:
                    result.error = _("its UIDVALIDITY kept changing during the run: run again")
                    self.warn(_("{folder}: {problem}").format(folder=result.folder, problem=result.error))
                    return True
                log.info(
                    "%s: UIDVALIDITY %s -> %s in this run: scanning it again",
                    result.folder,
                    result.uidvalidity,
                    opened[0],
                )
                self.budget.wait_empty()  # what was fetched under the old value is recorded first
                # scanned under this very EXAMINE, then fetched under it too (a server may change the value at
                # every EXAMINE)
                items = self.scanner.select(result, opened)
                continue
            try:
                return self._items(result, items, label_ids)
            except FolderChanged:
                opened = None  # reconnected to another UIDVALIDITY: examine, scan again, go on
        return True

    def _items(self, result: FolderResult, items: Items, label_ids: dict[str, str]) -> bool:
        uidvalidity = result.uidvalidity
        assert uidvalidity is not None  # set by the scan that gave the items
        budget = self.budget
        pending = list(items)
        while pending:
            chunk = self._next_chunk(pending, result.folder)
            need = sum(size for _, size in chunk)
            if not budget.acquire(need):
                return False
            held = need  # taken from the budget, not yet handed to a fetched message
            answered: set[int] = set()
            try:
                for msg in self.source.fetch_bodies([uid for uid, _ in chunk], expected_bytes=need):
                    n = len(msg.raw)
                    # sizes are claims: a message bigger than claimed waits for room, so memory stays bounded whatever the server claims
                    if n > held:
                        if not budget.acquire(n - held, held=held):
                            return False  # `held` is released below
                        held = 0
                    else:
                        held -= n
                    answered.add(msg.uid)
                    self.q.put(Item(result, label_ids, uidvalidity, msg, n))
            except FolderGone as exc:
                result.error = _("the folder changed during the run ({detail}): run again to pick it up").format(
                    detail=exc
                )
                self.warn(f"{result.folder}: {result.error}")
                return True
            finally:
                budget.release(held)
                held = 0
            del pending[: len(chunk)]
            gone = [uid for uid, _ in chunk if uid not in answered]
            if gone:
                result.todo -= len(gone)  # expunged since the scan
                log.info("expunged since the scan folder=%r uids=%s", result.folder, gone)
            if self.stop.is_set():
                return False
        return True

    def _next_chunk(self, pending: Items, folder: str) -> Items:
        """The next FETCH: up to `batch` messages and `batch_bytes` claimed; a message whose size
        claim is unusable goes alone."""
        unknown = self.scanner.unknown_size
        chunk: Items = []
        size = 0
        for uid, n in pending:
            alone = (folder, uid) in unknown
            if chunk and (alone or len(chunk) >= self.batch or size + n > self.batch_bytes):
                break
            chunk.append((uid, n))
            size += n
            if alone:
                break
        return chunk
