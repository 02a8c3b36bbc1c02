"""The migration engine: plan -> scan -> fetch -> import -> record.

It speaks only to small interfaces (an IMAP source, a Gmail client, the state store, a pacer) and never
prints: it reports events to a Reporter, which the CLI renders. The scan (gimport.engine.scan) records what each
folder has to send; one thread reads the source (gimport.engine.fetch: the IMAP connection is not shared), a pool of
workers here imports, and a byte budget bounds what sits in memory between the two. Every import is recorded
as 'sending' before the call and 'imported' right after, so a run killed at any instant can be started again:
nothing is lost, and only messages that were in flight at the kill can be sent a second time (counted and
reported). Each message's outcome is recorded once, on its folder's FolderResult (gimport.engine.results), which
derives every count a person sees.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from gimport.calls import StopRequested
from gimport.config.settings import Settings
from gimport.contract import (
    DUPLICATE,
    FAILED,
    IMPORTED,
    SKIPPED,
    Destination,
    MailSource,
    MessageKey,
    Pacer,
    Reporter,
    State,
)
from gimport.engine.copies import finish_copies, labels_with_copies, later_copy
from gimport.engine.fetch import Item, ItemQueue
from gimport.engine.identity import identify
from gimport.engine.inflight import InFlightBytes, PossibleCopies
from gimport.engine.labels import Labels
from gimport.engine.lost_state import MarkerJob, check_new_state, leave_marker, source_identity
from gimport.engine.reporting import NullReporter
from gimport.engine.results import RunSummary, refusal, resent_warning
from gimport.engine.scan import FolderWork, Scanner
from gimport.engine.transfer import EngineOptions, transfer
from gimport.errors import (
    GimportError,
    Interrupted,
    MessageRejected,
    RetryableError,
    Unexpected,
)
from gimport.i18n import _, english
from gimport.mail import rfc822
from gimport.mail.dates import DATE_FIXED, fix_date
from gimport.mail.keywords import flag_labels
from gimport.mail.mapping import LABELLING, FolderPlan, message_labels, plan_folders
from gimport.mail.selection import content_identity, inbox_first

log = logging.getLogger("gimport")
# A message's outcome in a run (reported to the Reporter) is the status the state file records for it:
# IMPORTED, DUPLICATE, FAILED or SKIPPED.


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
        self.summary = RunSummary(source_account=source.account, gmail_account=None)
        self.importing: dict[str, FolderPlan] = {}  # folder name -> plan, for FetchedMessage.also_in
        self._labels: Labels | None = None  # made while the run goes on (_prepare)
        self._copies = PossibleCopies(state, source.account)  # possible copies, kept in the state as counted
        self._markers: list[str] = []  # the marker labels of this source in Gmail (gimport.engine.lost_state)
        self._marker = MarkerJob(self._set_fatal)
        self._scanner = Scanner(
            source=source,
            state=state,
            filters=settings.filters,
            limit=gmail.max_message_bytes,
            summary=self.summary,
            warn=self._warn,
        )

    def request_stop(self) -> None:
        """Stop soon: calls in flight finish and are recorded; nothing new starts. The source's operation in
        progress ends at once (a server trickling an answer must not hold the stop up)."""
        self.summary.interrupted = True
        self._stop.set()
        self.source.interrupt()

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

    def _identify(self) -> None:
        if self._stop.is_set():
            raise Interrupted(_("stopped before the migration began"))
        self.summary.gmail_account = identify(self.gmail, self.settings.gmail.user, self.state, bind=True)

    def _worker(self, budget: InFlightBytes, q: ItemQueue) -> None:
        while True:
            item = q.get()
            if item is None:
                return
            try:
                if not self._stop.is_set():
                    self._import_one(item)
            except GimportError as err:
                self._set_fatal(err)
            except Exception as err:
                log.exception("unexpected error importing a message")
                self._set_fatal(Unexpected.of(err))
            finally:
                size = item.budget
                # the budget counts it free now: so must memory be (an idle worker kept its last message)
                del item
                budget.release(size)

    def _finish(self, item: Item, outcome: str, size: int, reason: str = "") -> None:
        """Record (on the folder's result), log (in English) and report one message's outcome; `reason` in the
        reader's language."""
        folder = item.work.folder
        item.work.result.record(outcome, size=size, reason=reason)
        log.info(
            "%s folder=%r uid=%d size=%d key=%s%s",
            outcome,
            folder,
            item.message.uid,
            size,
            MessageKey(self.source.account, folder, item.work.uidvalidity, item.message.uid),
            f" reason={english(reason)!r}" if reason else "",
        )
        self.reporter.message_finished(folder, outcome, size)
        if copies := item.work.copies.get(item.message.uid):
            finish_copies(self.state, self.reporter, copies, outcome, size, reason)

    def _import_one(self, item: Item) -> None:
        """Import one fetched message and record its outcome: what the server or Gmail's limits refuse costs
        that message only; an error that stops the run is recorded, then raised."""
        msg = item.message
        key = MessageKey(self.source.account, item.work.folder, item.work.uidvalidity, msg.uid)
        if self._refused(item, key):
            return
        raw = msg.raw
        digest = rfc822.sha256(raw)
        mid = rfc822.message_id(raw)
        # a message sent with the labels of its copies elsewhere is sent even when this folder has it already
        copies = item.work.copies.get(msg.uid)
        copy = None if copies else self.state.find_imported_copy(key.account, key.folder, digest)
        if not copy:
            refs = self._label_refs(item)  # once: for a copy imported at an earlier run and for the import
            if refs is None:
                return None  # a label could not be made, or a stop: the message stays for the next run
            copy = None if copies else later_copy(self.gmail, self.state, key, digest, refs)  # another folder's
            if not copy:
                return self._send(item, key, digest, mid, list(dict.fromkeys(refs.values())))
        self.state.mark_duplicate(key, copy, digest, mid)
        return self._finish(item, DUPLICATE, len(raw))

    def _refused(self, item: Item, key: MessageKey) -> bool:
        """Record the message as failed or skipped when it cannot be sent as it is (gimport.engine.results.
        refusal). False when it can be sent."""
        found = refusal(item.message, self.gmail.max_message_bytes)
        if found is None:
            return False
        outcome, reason, size = found
        (self.state.mark_skipped if outcome == SKIPPED else self.state.mark_failed)(key, english(reason))
        self._finish(item, outcome, size, reason)
        return True

    def _label_refs(self, item: Item) -> dict[str, str] | None:
        """Label reference -> Gmail label id of the labels the message is sent with: its folder's and flags',
        and those of its other folders (Takeout labels: imported once, with them all). None when a label could
        not be made, or a stop came."""
        work = item.work
        refs = list(message_labels(work.plan, item.message.flags))
        refs += flag_labels(item.message.flags, self.settings.labels)  # keywords, \Deleted
        for name in item.message.also_in:
            refs += self.importing[name].labels if name in self.importing else ()
        refs = labels_with_copies(refs, work.copies.get(item.message.uid, ()), self.settings.labels)
        if self._labels is not None and not self._labels.wait(refs):
            return None  # the message stays for the next run
        # a keyword set after the scan has no label made for it: the message goes without that one, never fails
        return {ref: work.label_ids[ref] for ref in refs if ref in work.label_ids}

    def _send(self, item: Item, key: MessageKey, digest: str, mid: str | None, labels: list[str]) -> None:
        """Send the message to Gmail with the label ids `labels`, recorded 'sending' before the call leaves, and
        record the outcome."""
        self._marker.wait()  # at once when it is there; when making it failed, a stop is set
        if self._stop.is_set():
            return None  # never sent: stays pending for the next run
        msg, result = item.message, item.work.result
        size = len(msg.raw)
        identity = content_identity(mid, size, msg.internaldate)
        # what Gmail gets; the state keeps the hash of the served bytes, so resume and duplicates see the source
        data = fix_date(msg.raw, msg.internaldate) if self.settings.importing.fix_dates else msg.raw
        attempts = [0, 0]  # the attempt, and the possible copies counted for this message in this run

        def on_attempt(n: int) -> None:
            attempts[0] = n
            # recorded before each call leaves: a kill from here on counts it as a possible copy at the next run
            earlier = self.state.mark_sending(key, mid, digest, ",".join(labels), identity)
            if n == 1 and earlier:  # calls of killed runs (this run's retries count as ambiguous)
                result.note_resent(earlier)
                attempts[1] += earlier

        def on_retry(err: RetryableError) -> None:
            if err.ambiguous:
                result.note_ambiguous()
                attempts[1] += 1

        try:
            gmail_id = self.gmail.import_message(data, labels, on_attempt=on_attempt, on_retry=on_retry)
        except StopRequested as stop:
            return self._stopped(item, key, stop, attempts)
        except RetryableError as err:
            reason = _("gave up after {attempts} attempts: {error}").format(attempts=attempts[0], error=err)
            self._settle(key, reason, attempts[1])
            return self._finish(item, FAILED, size, reason)
        except MessageRejected as err:
            reason = _("rejected by Gmail: {error}").format(error=err)
            self._settle(key, reason, attempts[1])
            return self._finish(item, FAILED, size, reason)
        except GimportError as err:
            self._settle(key, err, attempts[1])
            self._finish(item, FAILED, size, str(err))
            raise
        copies = [c.key for c in item.work.copies.get(msg.uid, ())]
        self.state.mark_imported(key, gmail_id, size, copies, changes=DATE_FIXED if data is not msg.raw else "")
        self._copies.add(attempts[1])
        return self._finish(item, IMPORTED, size)

    def _settle(self, key: MessageKey, reason: object, maybe: int) -> None:
        """Record the message failed; the possible copies counted for it in this run are kept in the state
        (the row no longer tells them: a kill before the summary leaves them to the next run's)."""
        self.state.mark_failed(key, english(reason))
        self._copies.add(maybe)

    def _stopped(self, item: Item, key: MessageKey, stop: StopRequested, attempts: list[int]) -> None:
        """A stop came while the message waited to be sent again (or before its first attempt). `attempts`:
        the attempt, and the possible copies counted for it in this run."""
        err = stop.last_error
        if err is None and attempts[0] == 0:
            return  # never sent: stays pending for the next run
        reason = _("interrupted while waiting to retry: {error}").format(error=err)
        if err is not None and err.ambiguous:
            # Gmail may have it: leave it in flight, so the next run counts the re-send
            self.state.note_error(key, english(reason))
        else:
            self._settle(key, reason, attempts[1])
        self._finish(item, FAILED, len(item.message.raw), reason)

    # -- the run ------------------------------------------------------------------------------------
    def run(self) -> RunSummary:
        """Migrate; returns the summary. An error that stops the run is returned in summary.fatal, never
        raised: one before the transfer (the account check, listing, labels, the scan) returns at once, with
        nothing sent (gimport.render.run.stopped_before_importing tells it apart)."""
        return self._pass(self._prepare)

    def run_again(self, folder: str | None = None) -> RunSummary:
        """A later pass (gimport.engine.follow): scan every folder, listed anew, or only `folder` (by name), and
        send what is new. Returns this pass's own summary (self.summary is replaced); errors as run()."""
        self.summary = self._scanner.summary = RunSummary(self.source.account, self.summary.gmail_account)
        labels = self._labels
        if labels is None or labels.failed is not None:  # run() stopped before its labels were made: as it does
            return self._pass(self._prepare)

        def prepare() -> list[FolderWork]:
            if folder is not None:
                return self._scan([p for p in self.importing.values() if p.folder.name == folder])
            known = set(self.importing)
            plans = self._list()
            if set(self.importing) - known:  # a folder made since: its labels first
                self._ids = labels.for_plans(plans)
            return self._scan(plans)

        return self._pass(prepare)

    def resume(self) -> None:
        """Go on after a pass an error stopped (never after a stop request): the follow tries again."""
        self._stop.clear()

    def _prepare(self) -> list[FolderWork]:
        self.reporter.phase(_("checking the Gmail account"))
        # Gmail's labels listed meanwhile: at a campus's start each round trip waits its turn in a busy process
        with ThreadPoolExecutor(1, thread_name_prefix=f"{self.options.thread_prefix}list-labels") as pool:
            listing = pool.submit(self.gmail.list_labels)
            self._identify()
            self.reporter.phase(_("listing folders on the source"))
            plans = self._list()
            labels = listing.result()
        # a lost state file must not mean a silent full re-import
        source, new = source_identity(self.settings.source), self.options.new_state
        self._markers = check_new_state(
            self.gmail, self.state, self.source.account, plans, source=source, new_state=new, labels=labels
        )
        self.reporter.phase(_("preparing labels in Gmail"))  # made while the run goes on: a message waits for its own
        self._labels = Labels(
            self.gmail,
            self.settings.labels.visibility,
            self.state,
            on_error=self._set_fatal,
            stop=self._stop,
            thread_prefix=self.options.thread_prefix,
        )
        self._ids = self._labels.start(plans, labels)
        self.reporter.phase(_("scanning folders"))
        work = self._scan(plans)
        in_flight = self.state.count_in_flight(self.source.account)
        if in_flight:
            self._warn(resent_warning(in_flight))
        return work

    def _list(self) -> list[FolderPlan]:
        plans = inbox_first(plan_folders(self.source.list_folders(), self.settings.labels))
        self.importing = {p.folder.name: p for p in plans if p.action in LABELLING}
        return plans

    def _scan(self, plans: list[FolderPlan]) -> list[FolderWork]:
        work = self._scanner.scan(plans, self._ids, self._stop)
        if self._labels is not None:
            self._labels.add_later(self._scanner.keyword_labels(self.settings.labels))
        return work

    def _pass(self, prepare: Callable[[], list[FolderWork]]) -> RunSummary:
        s = self.summary
        try:
            work = prepare()
        except GimportError as err:
            s.fatal = s.fatal or err
        if s.fatal is not None:  # a label Gmail would not make stops the run too
            self._labels_done()
            s.finished = time.monotonic()
            return s
        total = sum(len(folder.items) + sum(map(len, folder.copies.values())) for folder in work)
        self.reporter.transfer_started(total, sum(folder.size for folder in work))
        if total:
            # the marker (what tells a lost state file from a first run) is made while the first messages are
            # read from the source; no import leaves before it is there (_send)
            self._marker.start(self._leave_marker, f"{self.options.thread_prefix}marker")
            transfer(
                work,
                source=self.source,
                rescan=self._scanner.rescan,
                concurrency=lambda: self.pacer.concurrency_limit,
                options=self.options,
                stop=self._stop,
                worker=self._worker,
                warn=self._warn,
                fatal=self._set_fatal,
            )
            self._marker.join()
        self._labels_done()
        s.earlier_resends = self._copies.earlier  # the summary says them: the next run starts from zero
        self._copies.reported()
        s.rate_limited = self.pacer.rate_limited
        s.imap_reconnects = self.source.reconnects
        s.finished = time.monotonic()
        return s

    def _leave_marker(self) -> None:
        source = source_identity(self.settings.source)
        self._markers = leave_marker(self.gmail, self.state, self.source.account, source, self._markers)

    def _labels_done(self) -> None:
        """Wait for the labels' thread; say which names Gmail refused."""
        if self._labels is not None:
            self._labels.finish()
            self._scanner.note_renames(self._labels.renamed)
