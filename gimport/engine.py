"""The migration engine: plan -> scan -> fetch -> import -> record.

It speaks only to small interfaces (an IMAP source, a Gmail client, the state store, a pacer) and never
prints: it reports events to a Reporter, which the CLI renders. One thread reads the source (the IMAP
connection is not shared), a pool of workers imports, and a byte budget bounds what sits in memory
between the two. Every import is recorded as 'sending' before the call and 'imported' right after, so
a run killed at any instant can be started again: nothing is lost, and only messages that were in
flight at the kill can be sent a second time (counted and reported).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Protocol

from gimport import rfc822
from gimport.config import FilterSettings, Settings
from gimport.errors import GimportError, GmailError, Interrupted, SourceError
from gimport.gmail import (
    MAX_MESSAGE_BYTES,
    UNITS,
    LabelConflict,
    MessageRejected,
    RetryableError,
    check_account,
    paced_call,
)
from gimport.imap_source import FetchedMessage, FolderChanged, FolderGone
from gimport.mapping import IMPORT, FolderPlan, label_key, message_labels, plan_folders, user_labels_to_create
from gimport.pacer import Pacer
from gimport.state import DUPLICATE, FAILED, IMPORTED, SKIPPED, MessageKey, StateStore

log = logging.getLogger("gimport")
# A message's outcome in a run (reported to the Reporter) is the status the state file records for it:
# IMPORTED, DUPLICATE, FAILED or SKIPPED.


@dataclass
class EngineOptions:
    workers: int = 8
    memory_budget: int = 24 * 1024 * 1024  # bytes of fetched messages waiting for import (~1 s of work)
    fetch_batch: int = 100  # messages per IMAP FETCH
    fetch_batch_bytes: int = 8 * 1024 * 1024
    max_attempts: int = 6  # per message, for server errors and connection problems
    max_rate_limited: int = 40  # per message, for "slow down" answers (they say nothing about the message)
    thread_prefix: str = ""  # prepended to the names of the engine's threads (admin mode: routes log lines)


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
    bytes: int = 0
    error: str | None = None
    reasons: Counter = field(default_factory=Counter)

    @property
    def folder(self) -> str:
        return self.plan.path

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
    source, folder_name: str, filters: FilterSettings, done: Callable[[int], Collection[int]] | None = None
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


class Reporter(Protocol):
    def phase(self, text: str) -> None: ...
    def transfer_started(self, messages: int, size: int) -> None: ...
    def message_finished(self, folder: str, outcome: str, size: int) -> None: ...
    def warning(self, text: str) -> None: ...


class NullReporter:
    def phase(self, text: str) -> None:
        pass

    def transfer_started(self, messages: int, size: int) -> None:
        pass

    def message_finished(self, folder: str, outcome: str, size: int) -> None:
        pass

    def warning(self, text: str) -> None:
        pass


@dataclass
class _Item:
    result: FolderResult
    label_ids: dict[str, str]
    uidvalidity: int
    message: FetchedMessage
    budget: int


class _ByteBudget:
    """Bounds the bytes held between fetching and importing; one item always fits, however large."""

    def __init__(self, limit: int, stop: threading.Event) -> None:
        self.limit, self.used = limit, 0
        self._cond = threading.Condition()
        self._stop = stop

    def acquire(self, n: int) -> bool:
        with self._cond:
            while self.used > 0 and self.used + n > self.limit:
                if self._stop.is_set():
                    return False
                self._cond.wait(0.2)
            self.used += n
            return True

    def release(self, n: int) -> None:
        with self._cond:
            self.used -= n
            self._cond.notify_all()


class Migration:
    """One mailbox from one source account into one Gmail account."""

    def __init__(
        self,
        *,
        settings: Settings,
        source,
        gmail,
        state: StateStore,
        pacer: Pacer,
        reporter: Reporter | None = None,
        options: EngineOptions | None = None,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        self.settings = settings
        self.source, self.gmail, self.state, self.pacer = source, gmail, state, pacer
        self.reporter = reporter or NullReporter()
        self.options = options or EngineOptions(workers=settings.gmail.workers)
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._fatal_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self.summary = RunSummary(source_account=source.account, gmail_account=None)

    def request_stop(self) -> None:
        """Stop soon: calls in flight finish and are recorded; nothing new starts."""
        self.summary.interrupted = True
        self._stop.set()

    # -- helpers ------------------------------------------------------------------------------------
    def _gmail_call(self, what: str, fn: Callable[[], object]) -> object:
        """A non-import Gmail call with pacing and retry of transient errors."""
        if self._stop.is_set():
            raise Interrupted("stopped before the migration began")
        return paced_call(
            self.pacer,
            what,
            fn,
            attempts=self.options.max_attempts,
            rate_limited_attempts=self.options.max_rate_limited,
            sleep=self._sleep,
        )

    def _warn(self, text: str) -> None:
        log.warning("%s", text)
        self.summary.warnings.append(text)
        self.reporter.warning(text)

    def _set_fatal(self, err: GimportError) -> None:
        with self._fatal_lock:
            if self.summary.fatal is None:
                self.summary.fatal = err
                log.error("stopping: %s", err)
        self._stop.set()

    # -- phases -------------------------------------------------------------------------------------
    def _identify(self) -> None:
        address = self._gmail_call("settings.get", self.gmail.primary_address)
        check_account(address, self.settings.gmail.user)
        self.state.bind_destination(address)
        self.summary.gmail_account = address

    def _ensure_labels(self, plans: list[FolderPlan]) -> dict[str, str]:
        """Label reference (system id or user name) -> label id; creates missing user labels, parents first."""
        existing = self._gmail_call("labels.list", self.gmail.list_labels)
        ids = {label_key(lbl["name"]): lbl["id"] for lbl in existing}
        actual = {label_key(lbl["name"]): lbl["name"] for lbl in existing}
        ids.update({lbl["id"]: lbl["id"] for lbl in existing if lbl.get("type") == "system"})
        refs: dict[str, str] = {}
        for name in user_labels_to_create(plans):  # parents come first
            key = label_key(name)
            if key in ids:
                continue
            parent, _, leaf = name.rpartition("/")
            # nest under the parent as Gmail spells it (an existing "Work" for our "work")
            full = f"{actual[label_key(parent)]}/{leaf}" if parent else name
            try:
                created = self._gmail_call(
                    "labels.create", lambda n=full: self.gmail.create_label(n, self.settings.labels.visibility)
                )
                log.info("created label %r (%s)", full, created["id"])
            except LabelConflict:
                # created meanwhile, or a conflict we did not foresee: look again
                again = {label_key(lbl["name"]): lbl for lbl in self.gmail.list_labels()}
                if key not in again:
                    raise GmailError(f"Gmail says label {full!r} conflicts with an existing label") from None
                created = again[key]
            except MessageRejected as err:
                raise GmailError(
                    f"Gmail rejects the label name {full!r} ({err}): map that folder to another name in [labels.map]"
                ) from None
            ids[key], actual[key] = created["id"], created["name"]
        for plan in plans:
            for ref in plan.labels:
                refs[ref] = ids.get(ref) or ids[label_key(ref)]
        for system in ("UNREAD", "STARRED"):
            refs[system] = system
        return refs

    def _scan(self, plans: list[FolderPlan]) -> list[tuple[FolderResult, list[tuple[int, int]]]]:
        account = self.source.account
        work = []
        for plan in plans:
            if plan.action != IMPORT:
                continue
            if self._stop.is_set():
                break
            result = FolderResult(plan)
            self.summary.folders.append(result)
            try:
                sel = select_messages(
                    self.source,
                    plan.folder.name,
                    self.settings.filters,
                    done=lambda v, path=plan.path: self.state.done_uids(account, path, v),
                )
            except FolderGone as exc:
                result.error = f"cannot open the folder on the server: {exc}"
                self._warn(f"{plan.path}: {result.error}")
                continue
            result.uidvalidity, result.found = sel.uidvalidity, sel.found
            # skipped in an earlier run (e.g. over 150 MB): needs no more work, but is not in Gmail
            skipped = self.state.done_uids(account, plan.path, sel.uidvalidity, (SKIPPED,)) & set(sel.done)
            result.already = len(sel.done) - len(skipped)
            if skipped:
                result.todo += len(skipped)
                result.skipped += len(skipped)
                result.reasons["skipped in an earlier run (see gimport status)"] += len(skipped)
            result.selected = sel.selected
            result.todo += len(sel.todo)
            self.state.add_pending(account, plan.path, result.uidvalidity, sel.todo)
            items = []
            for uid, size in sel.todo:
                if size > MAX_MESSAGE_BYTES:  # known from RFC822.SIZE: not worth fetching
                    reason = f"too large for Gmail: {size:,} bytes (limit {MAX_MESSAGE_BYTES:,})"
                    self.state.mark_skipped(MessageKey(account, plan.path, result.uidvalidity, uid), reason)
                    result.skipped += 1
                    result.reasons[reason.split(":")[0]] += 1
                    log.info("skipped folder=%r uid=%d size=%d reason=%r", plan.path, uid, size, reason)
                else:
                    items.append((uid, size))
            result.todo_bytes = sum(size for _, size in items)
            self.state.record_folder(
                account, plan.path, result.uidvalidity, result.found, result.selected, ",".join(plan.labels)
            )
            log.info(
                "scanned %s: %d messages, %d selected, %d done before, %d to import",
                plan.path,
                result.found,
                result.selected,
                result.already,
                result.todo,
            )
            if items:
                work.append((result, items))
        return work

    def _fetch_loop(self, work, label_ids, budget: _ByteBudget, q: queue.Queue) -> None:
        try:
            for result, items in work:
                if self._stop.is_set():
                    return
                try:
                    uidvalidity, _ = self.source.examine(result.plan.folder.name)
                except FolderGone as exc:
                    result.error = f"the folder disappeared during the run: {exc}"
                    self._warn(f"{result.folder}: {result.error}")
                    continue
                if uidvalidity != result.uidvalidity:
                    result.error = "the folder's UIDVALIDITY changed during the run: run again to pick it up"
                    self._warn(f"{result.folder}: {result.error}")
                    continue
                for chunk in self._chunks(items):
                    need = sum(size for _, size in chunk)
                    if not budget.acquire(need):
                        return
                    try:
                        fetched = self.source.fetch_bodies([uid for uid, _ in chunk])
                    except (FolderGone, FolderChanged) as exc:
                        budget.release(need)
                        result.error = f"the folder changed during the run ({exc}): run again to pick it up"
                        self._warn(f"{result.folder}: {result.error}")
                        break
                    sizes = dict(chunk)
                    budget.release(need - sum(sizes[m.uid] for m in fetched))
                    missing = len(chunk) - len(fetched)
                    if missing:
                        result.todo -= missing  # expunged since the scan
                    for msg in fetched:
                        q.put(_Item(result, label_ids, uidvalidity, msg, sizes[msg.uid]))
                    if self._stop.is_set():
                        return
        except GimportError as err:
            self._set_fatal(err)
        except Exception as err:  # noqa: BLE001 - a bug must not leave workers waiting forever
            log.exception("reading the source failed")
            self._set_fatal(SourceError(f"reading the source failed: {err!r}"))
        finally:
            for _ in range(self.options.workers):
                q.put(None)

    def _chunks(self, items: list[tuple[int, int]]):
        chunk, size = [], 0
        for uid, n in items:
            if chunk and (len(chunk) >= self.options.fetch_batch or size + n > self.options.fetch_batch_bytes):
                yield chunk
                chunk, size = [], 0
            chunk.append((uid, n))
            size += n
        if chunk:
            yield chunk

    def _worker(self, budget: _ByteBudget, q: queue.Queue) -> None:
        while True:
            item = q.get()
            if item is None:
                return
            try:
                if not self._stop.is_set():
                    self._import_one(item)
            except GimportError as err:
                self._set_fatal(err)
            except Exception as err:  # noqa: BLE001
                log.exception("unexpected error importing a message")
                self._set_fatal(GmailError(f"unexpected error: {err!r}"))
            finally:
                budget.release(item.budget)

    def _finish(self, item: _Item, outcome: str, size: int, reason: str = "") -> None:
        with self._count_lock:  # workers finish concurrently
            self._count(item.result, outcome, size, reason)
        log.info(
            "%s folder=%r uid=%d size=%d%s",
            outcome,
            item.result.folder,
            item.message.uid,
            size,
            f" reason={reason!r}" if reason else "",
        )
        self.reporter.message_finished(item.result.folder, outcome, size)

    @staticmethod
    def _count(r: FolderResult, outcome: str, size: int, reason: str) -> None:
        if outcome == IMPORTED:
            r.imported += 1
            r.bytes += size
        elif outcome == DUPLICATE:
            r.duplicates += 1
        elif outcome == FAILED:
            r.failed += 1
            r.reasons[reason.split(":")[0]] += 1
        elif outcome == SKIPPED:
            r.skipped += 1
            r.reasons[reason.split(":")[0]] += 1

    def _import_one(self, item: _Item) -> None:
        r, msg = item.result, item.message
        account = self.source.account
        key = MessageKey(account, r.folder, item.uidvalidity, msg.uid)
        raw = msg.raw
        size = len(raw)
        if size == 0:
            self.state.mark_skipped(key, "empty message on the server (0 bytes)")
            return self._finish(item, SKIPPED, 0, "empty message on the server (0 bytes)")
        if size > MAX_MESSAGE_BYTES:
            reason = f"too large for Gmail: {size:,} bytes (limit {MAX_MESSAGE_BYTES:,})"
            self.state.mark_skipped(key, reason)
            return self._finish(item, SKIPPED, size, reason)
        digest = rfc822.sha256(raw)
        mid = rfc822.message_id(raw)
        copy = self.state.find_imported_copy(account, r.folder, digest)
        if copy:
            self.state.mark_duplicate(key, copy, digest, mid)
            return self._finish(item, DUPLICATE, size)
        labels = [item.label_ids[ref] for ref in message_labels(r.plan, msg.flags)]
        data = rfc822.ensure_date(raw, msg.internaldate)
        self.pacer.acquire(UNITS["import"], sleep=self._sleep)
        if self._stop.is_set():
            return  # never sent: stays pending for the next run
        if self.state.mark_sending(key, mid, digest, ",".join(labels)):
            with self._count_lock:
                r.resent += 1
        attempts = rate_limited = 0

        def chunk_retry(attempt: int, err: RetryableError) -> bool:
            if err.rate_limited:
                self.pacer.note_rate_limited(err.wait, concurrent=err.concurrent)
            if attempt > self.options.max_attempts or self._stop.is_set():
                return False
            self._sleep(self.pacer.backoff_delay(attempt, err.wait))
            return not self._stop.is_set()

        while True:
            try:
                with self.pacer.slot():
                    gmail_id = self.gmail.import_message(data, labels, chunk_retry=chunk_retry)
            except RetryableError as err:
                if err.rate_limited:
                    rate_limited += 1
                    self.pacer.note_rate_limited(err.wait, concurrent=err.concurrent)
                else:
                    attempts += 1
                if err.ambiguous:
                    with self._count_lock:
                        r.ambiguous += 1
                if attempts >= self.options.max_attempts or rate_limited >= self.options.max_rate_limited:
                    reason = f"gave up after {attempts + rate_limited} attempts: {err}"
                    self.state.mark_failed(key, reason)
                    return self._finish(item, FAILED, size, reason)
                self._sleep(self.pacer.backoff_delay(max(attempts, 1), err.wait))
                if self._stop.is_set():
                    reason = f"interrupted while waiting to retry: {err}"
                    if err.ambiguous:
                        # Gmail may have it: leave it in flight, so the next run counts the re-send
                        self.state.note_error(key, reason)
                    else:
                        self.state.mark_failed(key, reason)
                    return self._finish(item, FAILED, size, reason)
                self.pacer.acquire(UNITS["import"], sleep=self._sleep)
                continue
            except MessageRejected as err:
                reason = f"rejected by Gmail: {err}"
                self.state.mark_failed(key, reason)
                return self._finish(item, FAILED, size, reason)
            except GimportError as err:
                self.state.mark_failed(key, str(err))
                self._finish(item, FAILED, size, str(err))
                raise
            self.state.mark_imported(key, gmail_id, size)
            return self._finish(item, IMPORTED, size)

    # -- the run ------------------------------------------------------------------------------------
    def run(self) -> RunSummary:
        """Migrate; returns the summary. Errors that stop the run are in summary.fatal (also raised
        when they happen before anything was sent)."""
        s = self.summary
        try:
            self.reporter.phase("checking the Gmail account")
            self._identify()
            self.reporter.phase("listing folders on the source")
            folders = self.source.list_folders()
            plans = plan_folders(folders, self.settings.labels)
            self.reporter.phase("preparing labels in Gmail")
            label_ids = self._ensure_labels(plans)
            self.reporter.phase("scanning folders")
            work = self._scan(plans)
        except GimportError as err:
            s.fatal = err
            s.finished = time.monotonic()
            return s
        in_flight = self.state.count_in_flight(self.source.account)
        if in_flight:
            self._warn(
                f"{in_flight} message(s) were in flight when an earlier run stopped: they are sent again"
                " (Gmail merges a re-import of the same Message-ID)"
            )
        total = sum(len(items) for _, items in work)
        total_bytes = sum(size for _, items in work for _, size in items)
        self.reporter.transfer_started(total, total_bytes)
        if total:
            self._transfer(work, label_ids)
        s.rate_limited = self.pacer.rate_limited
        s.imap_reconnects = getattr(self.source, "reconnects", 0)
        s.finished = time.monotonic()
        return s

    def _transfer(self, work, label_ids) -> None:
        budget = _ByteBudget(self.options.memory_budget, self._stop)
        q: queue.Queue = queue.Queue()
        workers = [
            threading.Thread(
                target=self._worker, args=(budget, q), name=f"{self.options.thread_prefix}import-{i}", daemon=True
            )
            for i in range(self.options.workers)
        ]
        for t in workers:
            t.start()
        fetcher = threading.Thread(
            target=self._fetch_loop,
            args=(work, label_ids, budget, q),
            name=f"{self.options.thread_prefix}fetch",
            daemon=True,
        )
        fetcher.start()
        for t in [fetcher, *workers]:
            while t.is_alive():
                t.join(0.5)
