"""The scan: which messages of each folder a run sends, recorded in the state before anything is sent.

For every folder the mapping imports, the Scanner runs the selection (gimport.mail.selection: EXAMINE, SEARCH,
sizes, what earlier runs did), records what it found (the folder, the pending messages, the ones matched by
content, the ones too large to send), tells the folder's FolderResult what it saw, and hands the fetch the
folder's work: a FolderWork. It speaks the contract only (a MailSource and a State), never prints, and reports
a folder it cannot read as that folder's error (the run goes on with the others). The fetch
(gimport.engine.fetch) asks for a folder's work again (Scanner.rescan) when its UIDVALIDITY changes during the
run.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from gimport.config.settings import FilterSettings, LabelSettings
from gimport.contract import SKIPPED, MailSource, MessageKey, State
from gimport.engine.copies import Candidate, Copy, find_copies
from gimport.engine.results import FolderResult, RunSummary
from gimport.errors import FolderChanged, FolderGone
from gimport.i18n import _, english
from gimport.mail.keywords import keyword_counts
from gimport.mail.mapping import IMPORT, FolderPlan
from gimport.mail.quota import too_large
from gimport.mail.selection import FolderSelection, select_messages

log = logging.getLogger("gimport")

Items = list[tuple[int, int]]  # (uid, claimed size) pairs to send, in order

# a folder given a new UIDVALIDITY this many times (runs) is one the server renumbers in every session
EVERY_SESSION = 3


def deleted_key(account: str, folder: str) -> str:
    """The state's meta key of a folder's count of messages marked deleted on the server (latest scan)."""
    return f"deleted\t{account}\t{folder}"


@dataclass(frozen=True)
class FolderWork:
    """One folder's share of a run as a scan handed it out: the messages to send under one UIDVALIDITY (the
    folder's generation). Outcomes are recorded on `result`, which counts the work as remaining until then."""

    result: FolderResult
    uidvalidity: int
    items: Items
    label_ids: Mapping[str, str]  # label reference -> Gmail label id (gimport.engine.labels), for every message
    alone: frozenset[int] = frozenset()  # uids whose size claim is unusable: each goes in a FETCH of its own
    # uid -> the copies of that message in other places, imported with it (gimport.engine.copies)
    copies: Mapping[int, tuple[Copy, ...]] = field(default_factory=dict)

    @property
    def folder(self) -> str:
        return self.result.folder

    @property
    def plan(self) -> FolderPlan:
        return self.result.plan

    @property
    def size(self) -> int:
        """The bytes claimed for the items."""
        return sum(n for _, n in self.items)


class Scanner:
    """Scans the folders of one run into `summary`; `label_ids` (label reference -> Gmail id) goes with each
    folder's work; `warn` shows and keeps a warning (Migration._warn)."""

    def __init__(
        self,
        *,
        source: MailSource,
        state: State,
        filters: FilterSettings,
        limit: int,
        summary: RunSummary,
        warn: Callable[[str], None],
    ) -> None:
        self.source, self.state, self.filters, self.limit = source, state, filters, limit
        self.summary, self.warn = summary, warn
        self.content_folders: dict[str, int] = {}  # path -> generations seen, for folders compared by content
        self.keywords: Counter[str] = Counter()  # keyword -> messages to send that carry it
        self.deleted: dict[str, int] = {}  # path -> messages marked deleted on the server (latest scan)
        self.candidates: list[Candidate] = []  # messages to send that may have copies elsewhere

    def scan(self, plans: list[FolderPlan], label_ids: Mapping[str, str], stop: threading.Event) -> list[FolderWork]:
        """Scan every folder the plans import (until `stop`); returns the work for the fetch: the folders
        with messages to send."""
        work: list[FolderWork] = []
        self.candidates = []  # this scan's: a later scan (run --follow) looks for copies among its own only
        for plan in plans:
            if plan.action != IMPORT:
                continue
            if stop.is_set():
                break
            result = FolderResult(plan)
            self.summary.folders.append(result)
            folder = self._folder(result, label_ids)
            if folder is not None and folder.items:
                work.append(folder)
        work = self._with_copies(work)
        self._note_content_folders()
        self._note_deleted()
        # what status shows: the folders this run could not read, with why
        self.state.set_folder_errors(self.source.account, {r.folder: r.error for r in self.summary.folders if r.error})
        return work

    def _with_copies(self, work: list[FolderWork]) -> list[FolderWork]:
        """The work, each message found in several places sent once: from its home, with its copies."""
        found = find_copies(self.source, self.candidates)
        if not found.of:
            return work
        log.info(
            "%d message(s) are in more than one folder (%d more copies): each imported once",
            len(found.of),
            len(found.left_out),
        )
        return [
            replace(
                w,
                items=[
                    i
                    for i in w.items
                    if MessageKey(self.source.account, w.folder, w.uidvalidity, i[0]) not in found.left_out
                ],
                copies={
                    k.uid: c for k, c in found.of.items() if (k.folder, k.uidvalidity) == (w.folder, w.uidvalidity)
                },
            )
            for w in work
        ]

    def rescan(self, work: FolderWork, opened: tuple[int, int]) -> FolderWork | None:
        """Scan `work`'s folder again under the EXAMINE `opened` (its UIDVALIDITY is not the work's any more);
        returns the new work, or None when the folder cannot be read (then its result has the error)."""
        return self._folder(work.result, work.label_ids, opened)

    def _folder(
        self, result: FolderResult, label_ids: Mapping[str, str], opened: tuple[int, int] | None = None
    ) -> FolderWork | None:
        """Scan one folder (under the EXAMINE `opened`, when given), record what it found and hand out its
        work. A folder that cannot be read gets result.error and no work."""
        sel = self._select(result, opened)
        if sel is None:
            return None
        account, path = self.source.account, result.folder
        if sel.by_content:
            self.state.add_done_by_content(account, path, sel.uidvalidity, sel.by_content)
        skipped_before = self._count_done(result, sel)
        self.state.add_pending(account, path, sel.uidvalidity, sel.todo)
        if sel.compared_by_content and path not in self.content_folders:
            self.content_folders[path] = self.state.generations(account, path)
        items = self._skip_too_large(result, sel)
        if opened is None:  # the run's scan, not a rescan: copies are looked for among all folders at once
            for uid, size in items:
                if uid in sel.copies:
                    ident, flags = sel.copies[uid]
                    key = MessageKey(account, path, sel.uidvalidity, uid)
                    self.candidates.append(Candidate(Copy(key, result.plan, flags, result, size), ident))
        self.keywords.update(sel.keywords)
        if sel.deleted or self.deleted.get(path):
            self.deleted[path] = sel.deleted
            self.state.set_meta(deleted_key(account, path), str(sel.deleted))
        result.handed_out(len(items))
        self.state.record_folder(
            account, path, sel.uidvalidity, result.found, result.selected, ",".join(result.plan.labels)
        )
        log.info(
            "scanned %s: uidvalidity %d, %d messages, %d selected, %d done before (%d by content), %d to import",
            path,
            sel.uidvalidity,
            result.found,
            result.selected,
            result.already,
            len(sel.by_content),
            skipped_before + len(sel.todo),
        )
        return FolderWork(result, sel.uidvalidity, items, label_ids, sel.unknown_size)

    def _select(self, result: FolderResult, opened: tuple[int, int] | None) -> FolderSelection | None:
        """The folder's selection now, or None (with result.error, shown) when it cannot be read."""
        account, path = self.source.account, result.folder
        try:
            return select_messages(
                self.source,
                result.plan.folder.name,
                self.filters,
                done=lambda v: self.state.done_uids(account, path, v),
                known=lambda v: self.state.known_content(account, path, v),
                opened=opened,
                copies=opened is None,
            )
        except FolderGone as exc:
            result.error = _(
                "the server cannot open the folder ({detail}); if it never can, leave it out with [labels] exclude"
            ).format(detail=exc)
        except FolderChanged as exc:
            result.error = _("its UIDVALIDITY kept changing while it was scanned ({detail}): run again").format(
                detail=exc
            )
        self.warn(_("{folder}: {problem}").format(folder=path, problem=result.error))
        return None

    def _count_done(self, result: FolderResult, sel: FolderSelection) -> int:
        """Tell `result` what the scan saw, and record as skipped what an earlier run skipped (returns how
        many)."""
        account, path = self.source.account, result.folder
        # skipped in an earlier run (e.g. over 150 MiB): needs no more work, but is not in Gmail
        skipped = self.state.done_uids(account, path, sel.uidvalidity, (SKIPPED,), accepted=False)
        skipped &= set(sel.done)
        # accepted as not in Gmail (gimport accept): no more work, counted apart, never as "already there"
        accepted = self.state.done_uids(account, path, sel.uidvalidity, (), accepted=True) & set(sel.done)
        result.scanned(
            uidvalidity=sel.uidvalidity,
            found=sel.found,
            selected=sel.selected,
            already=len(sel.done) - len(skipped) - len(accepted) + len(sel.by_content),
            accepted=len(accepted),
        )
        if skipped:
            result.record(SKIPPED, n=len(skipped), reason=_("skipped in an earlier run (see gimport status)"))
        return len(skipped)

    def _skip_too_large(self, result: FolderResult, sel: FolderSelection) -> Items:
        """The selection's messages to send; those known too large for Gmail (by RFC822.SIZE: not worth
        fetching) are recorded skipped instead."""
        items: Items = []
        for uid, size in sel.todo:
            if uid in sel.unknown_size or size <= self.limit:
                items.append((uid, size))
                continue
            reason = too_large(size, self.limit)
            self.state.mark_skipped(
                MessageKey(self.source.account, result.folder, sel.uidvalidity, uid), english(reason)
            )
            result.record(SKIPPED, reason=reason)
            log.info("skipped folder=%r uid=%d size=%d reason=%r", result.folder, uid, size, english(reason))
        return items

    def keyword_labels(self, settings: LabelSettings) -> list[str]:
        """The labels the scanned messages' keywords become (gimport.mail.keywords)."""
        return sorted(keyword_counts(self.keywords, settings))

    def note_renames(self, renamed: Mapping[str, str]) -> None:
        """Say (summary and log) which label names Gmail refused, and what they are called instead."""
        if renamed:
            self.warn(
                _("Gmail refuses {n} label name(s); renamed: {names}").format(
                    n=len(renamed), names=", ".join(f"{k!r} -> {v!r}" for k, v in sorted(renamed.items()))
                )
            )

    def _note_deleted(self) -> None:
        """Say (summary and log) how many messages are marked deleted on the server, and what became of them."""
        marked = {p: n for p, n in self.deleted.items() if n}
        if not marked:
            return
        names = ", ".join(f"{p} ({n})" for p, n in sorted(marked.items()))
        if self.filters.include_deleted:
            self.warn(
                _("{n} message(s) marked deleted on the server are imported to Trash ({names})").format(
                    n=sum(marked.values()), names=names
                )
            )
        else:
            self.warn(
                _(
                    "{n} message(s) marked deleted on the server are left out ({names}); [filters] include_deleted"
                    " = true imports them to Trash"
                ).format(n=sum(marked.values()), names=names)
            )

    def _note_content_folders(self) -> None:
        """Say once (summary and log) which folders were compared by content, and why."""
        if not self.content_folders:
            return
        every = sorted(p for p, n in self.content_folders.items() if n >= EVERY_SESSION)
        changed = sorted(p for p, n in self.content_folders.items() if n < EVERY_SESSION)
        if every:
            self.warn(
                _(
                    "the server gives {n} folder(s) a new UIDVALIDITY in every session ({names}): it keeps no UID"
                    " database for them (Courier-IMAP does this for folders never opened read-write). Their"
                    " messages are matched by content (Message-ID, size, date; the content hash where those do"
                    " not tell), so nothing is sent twice; each run reads those of every message again"
                ).format(n=len(every), names=", ".join(every))
            )
        if changed:
            self.warn(
                _(
                    "{n} folder(s) have a new UIDVALIDITY since an earlier run ({names}): their messages are"
                    " matched by content (Message-ID, size, date), so nothing is sent twice"
                ).format(n=len(changed), names=", ".join(changed))
            )
