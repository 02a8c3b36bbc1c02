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
from dataclasses import dataclass

from gimport import rfc822
from gimport.account import identify
from gimport.accounting import FolderResult, RunSummary
from gimport.budget import ByteBudget
from gimport.calls import StopRequested
from gimport.contract import (
    DUPLICATE,
    FAILED,
    IMPORTED,
    SKIPPED,
    Destination,
    FetchedMessage,
    MailSource,
    MessageKey,
    NullReporter,
    Pacer,
    Reporter,
    State,
    content_identity,
)
from gimport.errors import (
    FolderChanged,
    FolderGone,
    GimportError,
    Interrupted,
    MessageRejected,
    RetryableError,
    Unexpected,
)
from gimport.i18n import _, english, ngettext
from gimport.labels import ensure_labels
from gimport.mapping import IMPORT, FolderPlan, message_labels, plan_folders
from gimport.newstate import check_new_state
from gimport.selection import SCAN_TRIES, inbox_first, select_messages
from gimport.settings import Settings

log = logging.getLogger("gimport")
# A message's outcome in a run (reported to the Reporter) is the status the state file records for it:
# IMPORTED, DUPLICATE, FAILED or SKIPPED.


def _too_large(size: int, limit: int) -> str:
    return _("too large for Gmail: {size:,} bytes (limit {limit:,})").format(size=size, limit=limit)


def _reason_kind(reason: str) -> str:
    """The group a reason is counted under in the summary: its text before the first ':' (translations
    keep that ASCII colon)."""
    return reason.split(":")[0]


@dataclass
class EngineOptions:
    workers: int = 8
    memory_budget: int = 24 * 1024 * 1024  # bytes of fetched messages waiting for import (~1 s of work)
    fetch_batch: int = 100  # messages per IMAP FETCH
    fetch_batch_bytes: int = 8 * 1024 * 1024
    thread_prefix: str = ""  # prepended to the names of the engine's threads (admin mode: routes log lines)
    new_state: bool = False  # `run --new-state`: go on with a new state even if the labels hold mail already


@dataclass
class _Item:
    result: FolderResult
    label_ids: dict[str, str]
    uidvalidity: int
    message: FetchedMessage
    budget: int


ItemQueue = queue.Queue["_Item | None"]
Work = list[tuple[FolderResult, list[tuple[int, int]]]]


class Migration:
    """One mailbox from one source account into one Gmail account."""

    def __init__(
        self,
        *,
        settings: Settings,
        source: MailSource,
        gmail: Destination,
        state: State,
        pacer: Pacer,
        reporter: Reporter | None = None,
        options: EngineOptions | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        """`stop` is the event the Gmail destination's call path watches (gimport.wiring passes the same
        one to both), so that request_stop() also cuts pacing waits and retry waits short."""
        self.settings = settings
        self.source, self.gmail, self.state, self.pacer = source, gmail, state, pacer
        self.reporter = reporter or NullReporter()
        self.options = options or EngineOptions(workers=settings.gmail.workers)
        self._stop = stop or threading.Event()
        self._fatal_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self.summary = RunSummary(source_account=source.account, gmail_account=None)
        self._importing: dict[str, FolderPlan] = {}  # folder name -> plan, for FetchedMessage.also_in
        self._content_folders: dict[str, int] = {}  # path -> generations seen, for folders compared by content
        self._unknown_size: set[tuple[str, int]] = set()  # (path, uid) whose size claim is unusable

    def request_stop(self) -> None:
        """Stop soon: calls in flight finish and are recorded; nothing new starts. The source's operation in
        progress ends at once (a server trickling an answer must not hold the stop up)."""
        self.summary.interrupted = True
        self._stop.set()
        interrupt = getattr(self.source, "interrupt", None)
        if interrupt is not None:
            interrupt()

    # -- helpers ------------------------------------------------------------------------------------
    def _warn(self, text: str) -> None:
        """Log the English, show and keep (summary) the reader's language."""
        log.warning("%s", english(text))
        self.summary.warnings.append(text)
        self.reporter.warning(text)

    def _set_fatal(self, err: GimportError) -> None:
        with self._fatal_lock:
            if self.summary.fatal is None:
                self.summary.fatal = err
                log.error("stopping: %s", english(err))
        self._stop.set()

    # -- phases -------------------------------------------------------------------------------------
    def _identify(self) -> None:
        if self._stop.is_set():
            raise Interrupted(_("stopped before the migration began"))
        self.summary.gmail_account = identify(self.gmail, self.settings.gmail.user, self.state, bind=True)

    def _ensure_labels(self, plans: list[FolderPlan]) -> dict[str, str]:
        return ensure_labels(self.gmail, plans, self.settings.labels.visibility)

    def _scan(self, plans: list[FolderPlan]) -> list[tuple[FolderResult, list[tuple[int, int]]]]:
        work = []
        for plan in plans:
            if plan.action != IMPORT:
                continue
            if self._stop.is_set():
                break
            result = FolderResult(plan)
            self.summary.folders.append(result)
            items = self._select(result)
            if items:
                work.append((result, items))
        self._note_content_folders()
        # what status shows: the folders this run could not read, with why
        self.state.set_folder_errors(self.source.account, {r.folder: r.error for r in self.summary.folders if r.error})
        return work

    def _select(self, result: FolderResult, opened: tuple[int, int] | None = None) -> list[tuple[int, int]]:
        """Scan one folder (under the EXAMINE `opened`, when given) and record what it found: the (uid, size)
        pairs to fetch. A folder that cannot be read gets result.error and no items."""
        account = self.source.account
        limit = self.gmail.max_message_bytes
        plan = result.plan
        path = plan.path
        try:
            sel = select_messages(
                self.source,
                plan.folder.name,
                self.settings.filters,
                done=lambda v: self.state.done_uids(account, path, v),
                known=lambda v: self.state.known_content(account, path, v),
                opened=opened,
            )
        except FolderGone as exc:
            result.error = _(
                "the server cannot open the folder ({detail}); if it never can, leave it out with [labels] exclude"
            ).format(detail=exc)
            self._warn(_("{folder}: {problem}").format(folder=path, problem=result.error))
            return []
        except FolderChanged as exc:
            result.error = _("its UIDVALIDITY kept changing while it was scanned ({detail}): run again").format(
                detail=exc
            )
            self._warn(_("{folder}: {problem}").format(folder=path, problem=result.error))
            return []
        processed = result.imported + result.duplicates + result.failed + result.skipped
        result.uidvalidity, result.found = sel.uidvalidity, sel.found
        if sel.by_content:
            self.state.add_done_by_content(account, path, sel.uidvalidity, sel.by_content)
        # skipped in an earlier run (e.g. over 150 MB): needs no more work, but is not in Gmail
        skipped = self.state.done_uids(account, path, sel.uidvalidity, (SKIPPED,), accepted=False)
        skipped &= set(sel.done)
        # accepted as not in Gmail (gimport accept): no more work, counted apart, never as "already there"
        accepted = self.state.done_uids(account, path, sel.uidvalidity, (), accepted=True) & set(sel.done)
        result.accepted = len(accepted)
        result.already = len(sel.done) - len(skipped) - len(accepted) + len(sel.by_content)
        result.todo = processed
        if skipped:
            result.todo += len(skipped)
            result.skipped += len(skipped)
            result.reasons[_("skipped in an earlier run (see gimport status)")] += len(skipped)
        result.selected = sel.selected
        result.todo += len(sel.todo)
        self.state.add_pending(account, path, result.uidvalidity, sel.todo)
        if sel.compared_by_content and path not in self._content_folders:
            self._content_folders[path] = self.state.generations(account, path)
        items = []
        for uid, size in sel.todo:
            if uid not in sel.unknown_size and size > limit:  # known from RFC822.SIZE: not worth fetching
                reason = _too_large(size, limit)
                self.state.mark_skipped(MessageKey(account, path, result.uidvalidity, uid), english(reason))
                result.skipped += 1
                result.reasons[_reason_kind(reason)] += 1
                log.info("skipped folder=%r uid=%d size=%d reason=%r", path, uid, size, english(reason))
            else:
                items.append((uid, size))
        self._unknown_size |= {(path, uid) for uid in sel.unknown_size}
        result.todo_bytes = sum(size for _, size in items)
        self.state.record_folder(
            account, path, result.uidvalidity, result.found, result.selected, ",".join(plan.labels)
        )
        log.info(
            "scanned %s: uidvalidity %d, %d messages, %d selected, %d done before (%d by content), %d to import",
            path,
            result.uidvalidity,
            result.found,
            result.selected,
            result.already,
            len(sel.by_content),
            result.todo - processed,
        )
        return items

    def _note_content_folders(self) -> None:
        """Say once (summary and log) which folders were compared by content, and why."""
        if not self._content_folders:
            return
        every = sorted(p for p, n in self._content_folders.items() if n >= 3)
        changed = sorted(p for p, n in self._content_folders.items() if n < 3)
        if every:
            self._warn(
                _(
                    "the server gives {n} folder(s) a new UIDVALIDITY in every session ({names}): it keeps no UID"
                    " database for them (Courier-IMAP does this for folders never opened read-write). Their"
                    " messages are matched by content (Message-ID, size, date; the content hash where those do"
                    " not tell), so nothing is sent twice; each run reads those of every message again"
                ).format(n=len(every), names=", ".join(every))
            )
        if changed:
            self._warn(
                _(
                    "{n} folder(s) have a new UIDVALIDITY since an earlier run ({names}): their messages are"
                    " matched by content (Message-ID, size, date), so nothing is sent twice"
                ).format(n=len(changed), names=", ".join(changed))
            )

    def _fetch_loop(self, work: Work, label_ids: dict[str, str], budget: ByteBudget, q: ItemQueue) -> None:
        try:
            for result, items in work:
                if self._stop.is_set():
                    return
                if not self._fetch_folder(result, items, label_ids, budget, q):
                    return
        except GimportError as err:
            self._set_fatal(err)
        except Exception as err:  # noqa: BLE001 - a bug must not leave workers waiting forever
            log.exception("reading the source failed")
            self._set_fatal(Unexpected(_("reading the source failed: {error!r}").format(error=err)))
        finally:
            for _i in range(self.options.workers):
                q.put(None)

    def _fetch_folder(
        self,
        result: FolderResult,
        items: list[tuple[int, int]],
        label_ids: dict[str, str],
        budget: ByteBudget,
        q: ItemQueue,
    ) -> bool:
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
                    self._warn(_("{folder}: {problem}").format(folder=result.folder, problem=result.error))
                    return True
            if opened[0] != result.uidvalidity:
                rescans += 1
                if rescans > SCAN_TRIES:
                    result.error = _("its UIDVALIDITY kept changing during the run: run again")
                    self._warn(_("{folder}: {problem}").format(folder=result.folder, problem=result.error))
                    return True
                log.info(
                    "%s: UIDVALIDITY %s -> %s in this run: scanning it again",
                    result.folder,
                    result.uidvalidity,
                    opened[0],
                )
                budget.wait_empty()  # what was fetched under the old value is recorded first
                # scanned under this very EXAMINE, then fetched under it too (a server may change the value at
                # every EXAMINE)
                items = self._select(result, opened)
                continue
            try:
                return self._fetch_items(result, items, label_ids, budget, q)
            except FolderChanged:
                opened = None  # reconnected to another UIDVALIDITY: examine, scan again, go on
        return True

    def _fetch_items(
        self,
        result: FolderResult,
        items: list[tuple[int, int]],
        label_ids: dict[str, str],
        budget: ByteBudget,
        q: ItemQueue,
    ) -> bool:
        uidvalidity = result.uidvalidity
        assert uidvalidity is not None  # set by the scan that gave the items
        unknown = self._unknown_size
        pending = list(items)
        while pending:
            chunk = self._next_chunk(pending, result.folder, unknown)
            need = sum(size for _, size in chunk)
            if not budget.acquire(need):
                return False
            held = need  # taken from the budget, not yet handed to a fetched message
            answered: set[int] = set()
            try:
                for msg in self.source.fetch_bodies([uid for uid, _ in chunk], expected_bytes=need):
                    n = len(msg.raw)
                    # sizes are claims: a message bigger than claimed waits for room (issue 11.9)
                    if n > held:
                        if not budget.acquire(n - held, held=held):
                            return False  # `held` is released below
                        held = 0
                    else:
                        held -= n
                    answered.add(msg.uid)
                    q.put(_Item(result, label_ids, uidvalidity, msg, n))
            except FolderGone as exc:
                result.error = _("the folder changed during the run ({detail}): run again to pick it up").format(
                    detail=exc
                )
                self._warn(f"{result.folder}: {result.error}")
                return True
            finally:
                budget.release(held)
                held = 0
            del pending[: len(chunk)]
            gone = [uid for uid, _ in chunk if uid not in answered]
            if gone:
                result.todo -= len(gone)  # expunged since the scan
                log.info("expunged since the scan folder=%r uids=%s", result.folder, gone)
            if self._stop.is_set():
                return False
        return True

    def _next_chunk(
        self, pending: list[tuple[int, int]], folder: str, unknown: set[tuple[str, int]]
    ) -> list[tuple[int, int]]:
        """The next FETCH: up to fetch_batch messages and fetch_batch_bytes claimed; a message whose size
        claim is unusable goes alone."""
        chunk: list[tuple[int, int]] = []
        size = 0
        for uid, n in pending:
            alone = (folder, uid) in unknown
            if chunk and (alone or len(chunk) >= self.options.fetch_batch or size + n > self.options.fetch_batch_bytes):
                break
            chunk.append((uid, n))
            size += n
            if alone:
                break
        return chunk

    def _worker(self, budget: ByteBudget, q: ItemQueue) -> None:
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
                self._set_fatal(Unexpected(_("unexpected error: {error!r}").format(error=err)))
            finally:
                size = item.budget
                # the budget counts it free now: so must memory be (an idle worker kept its last message)
                del item
                budget.release(size)

    def _finish(self, item: _Item, outcome: str, size: int, reason: str = "") -> None:
        """Count, log (in English) and report one message's outcome; `reason` in the reader's language."""
        with self._count_lock:  # workers finish concurrently
            self._count(item.result, outcome, size, reason)
        log.info(
            "%s folder=%r uid=%d size=%d%s",
            outcome,
            item.result.folder,
            item.message.uid,
            size,
            f" reason={english(reason)!r}" if reason else "",
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
            r.reasons[_reason_kind(reason)] += 1
        elif outcome == SKIPPED:
            r.skipped += 1
            r.reasons[_reason_kind(reason)] += 1

    def _import_one(self, item: _Item) -> None:
        r, msg = item.result, item.message
        account = self.source.account
        key = MessageKey(account, r.folder, item.uidvalidity, msg.uid)
        raw = msg.raw
        size = len(raw)
        limit = self.gmail.max_message_bytes
        if msg.error is not None:
            # the server would not give this one message: it costs that message, never the folder
            if msg.permanent:
                self.state.mark_skipped(key, msg.error)
                return self._finish(item, SKIPPED, 0, msg.error)
            self.state.mark_failed(key, msg.error)
            return self._finish(item, FAILED, 0, msg.error)
        if size == 0:
            reason: str = _("empty message on the server (0 bytes)")
            self.state.mark_skipped(key, english(reason))
            return self._finish(item, SKIPPED, 0, reason)
        if size > limit:
            reason = _too_large(size, limit)
            self.state.mark_skipped(key, english(reason))
            return self._finish(item, SKIPPED, size, reason)
        digest = rfc822.sha256(raw)
        mid = rfc822.message_id(raw)
        copy = self.state.find_imported_copy(account, r.folder, digest)
        if copy:
            self.state.mark_duplicate(key, copy, digest, mid)
            return self._finish(item, DUPLICATE, size)
        refs = list(message_labels(r.plan, msg.flags))
        for name in msg.also_in:  # the message's other folders (Takeout labels): imported once, with them all
            refs += self._importing[name].labels if name in self._importing else ()
        labels = list(dict.fromkeys(item.label_ids[ref] for ref in refs))
        identity = content_identity(mid, size, msg.internaldate)
        data = rfc822.ensure_date(raw, msg.internaldate)
        attempts = [0]

        def on_attempt(n: int) -> None:
            attempts[0] = n
            # recorded before the call leaves: a kill from here on counts as a possible re-send
            if n == 1 and self.state.mark_sending(key, mid, digest, ",".join(labels), identity):
                with self._count_lock:
                    r.resent += 1

        def on_retry(err: RetryableError) -> None:
            if err.ambiguous:
                with self._count_lock:
                    r.ambiguous += 1

        try:
            gmail_id = self.gmail.import_message(data, labels, on_attempt=on_attempt, on_retry=on_retry)
        except StopRequested as stop:
            err = stop.last_error
            if err is None and attempts[0] == 0:
                return  # never sent: stays pending for the next run
            reason = _("interrupted while waiting to retry: {error}").format(error=err)
            if err is not None and err.ambiguous:
                # Gmail may have it: leave it in flight, so the next run counts the re-send
                self.state.note_error(key, english(reason))
            else:
                self.state.mark_failed(key, english(reason))
            return self._finish(item, FAILED, size, reason)
        except RetryableError as err:
            reason = _("gave up after {attempts} attempts: {error}").format(attempts=attempts[0], error=err)
            self.state.mark_failed(key, english(reason))
            return self._finish(item, FAILED, size, reason)
        except MessageRejected as err:
            reason = _("rejected by Gmail: {error}").format(error=err)
            self.state.mark_failed(key, english(reason))
            return self._finish(item, FAILED, size, reason)
        except GimportError as err:
            self.state.mark_failed(key, english(err))
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
            self.reporter.phase(_("checking the Gmail account"))
            self._identify()
            self.reporter.phase(_("listing folders on the source"))
            folders = self.source.list_folders()
            plans = inbox_first(plan_folders(folders, self.settings.labels))
            self._importing = {p.folder.name: p for p in plans if p.action == IMPORT}
            if not self.options.new_state:  # a lost state file must not mean a silent full re-import
                check_new_state(self.gmail, self.state, self.source.account, plans)
            self.reporter.phase(_("preparing labels in Gmail"))
            label_ids = self._ensure_labels(plans)
            self.reporter.phase(_("scanning folders"))
            work = self._scan(plans)
        except GimportError as err:
            s.fatal = err
            s.finished = time.monotonic()
            return s
        in_flight = self.state.count_in_flight(self.source.account)
        if in_flight:
            self._warn(
                ngettext(
                    "{n} message was in flight when an earlier run stopped: it is sent again"
                    " (Gmail merges a re-import of the same Message-ID)",
                    "{n} messages were in flight when an earlier run stopped: they are sent again"
                    " (Gmail merges a re-import of the same Message-ID)",
                    in_flight,
                ).format(n=in_flight)
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

    def _transfer(self, work: Work, label_ids: dict[str, str]) -> None:
        budget = ByteBudget(self.options.memory_budget, self._stop)
        q: ItemQueue = queue.Queue()
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
