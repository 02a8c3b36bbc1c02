"""The scan: which messages of each folder a run sends, recorded in the state before anything is sent.

For every folder the mapping imports, the Scanner runs the selection (gimport.mail.selection: EXAMINE, SEARCH,
sizes, what earlier runs did), records what it found (the folder, the pending messages, the ones matched by
content, the ones too large to send), and fills the folder's FolderResult. It speaks the contract only (a
MailSource and a State), never prints, and reports a folder it cannot read as that folder's error (the run goes
on with the others). The fetch (gimport.engine.fetch) asks it to scan a folder again when the folder's UIDVALIDITY
changes during the run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from gimport.config.settings import FilterSettings
from gimport.contract import SKIPPED, MailSource, MessageKey, State
from gimport.engine.results import FolderResult, RunSummary
from gimport.errors import FolderChanged, FolderGone
from gimport.i18n import _, english
from gimport.mail.mapping import IMPORT, FolderPlan
from gimport.mail.quota import too_large
from gimport.mail.selection import select_messages

log = logging.getLogger("gimport")

# what the scan hands to the fetch: each folder's result with the (uid, claimed size) pairs to send
Items = list[tuple[int, int]]
Work = list[tuple[FolderResult, Items]]

# a folder given a new UIDVALIDITY this many times (runs) is one the server renumbers in every session
EVERY_SESSION = 3


class Scanner:
    """Scans the folders of one run into `summary`; `warn` shows and keeps a warning (Migration._warn)."""

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
        self.unknown_size: set[tuple[str, int]] = set()  # (path, uid) whose size claim is unusable

    def scan(self, plans: list[FolderPlan], stop: threading.Event) -> Work:
        """Scan every folder the plans import (until `stop`); returns the work for the fetch."""
        work: Work = []
        for plan in plans:
            if plan.action != IMPORT:
                continue
            if stop.is_set():
                break
            result = FolderResult(plan)
            self.summary.folders.append(result)
            items = self.select(result)
            if items:
                work.append((result, items))
        self._note_content_folders()
        # what status shows: the folders this run could not read, with why
        self.state.set_folder_errors(self.source.account, {r.folder: r.error for r in self.summary.folders if r.error})
        return work

    def select(self, result: FolderResult, opened: tuple[int, int] | None = None) -> Items:
        """Scan one folder (under the EXAMINE `opened`, when given) and record what it found: the (uid, size)
        pairs to fetch. A folder that cannot be read gets result.error and no items."""
        account = self.source.account
        plan = result.plan
        path = plan.path
        try:
            sel = select_messages(
                self.source,
                plan.folder.name,
                self.filters,
                done=lambda v: self.state.done_uids(account, path, v),
                known=lambda v: self.state.known_content(account, path, v),
                opened=opened,
            )
        except FolderGone as exc:
            result.error = _(
                "the server cannot open the folder ({detail}); if it never can, leave it out with [labels] exclude"
            ).format(detail=exc)
            self.warn(_("{folder}: {problem}").format(folder=path, problem=result.error))
            return []
        except FolderChanged as exc:
            result.error = _("its UIDVALIDITY kept changing while it was scanned ({detail}): run again").format(
                detail=exc
            )
            self.warn(_("{folder}: {problem}").format(folder=path, problem=result.error))
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
            result.note_reason(_("skipped in an earlier run (see gimport status)"), len(skipped))
        result.selected = sel.selected
        result.todo += len(sel.todo)
        self.state.add_pending(account, path, result.uidvalidity, sel.todo)
        if sel.compared_by_content and path not in self.content_folders:
            self.content_folders[path] = self.state.generations(account, path)
        items = []
        for uid, size in sel.todo:
            if uid not in sel.unknown_size and size > self.limit:  # known from RFC822.SIZE: not worth fetching
                reason = too_large(size, self.limit)
                self.state.mark_skipped(MessageKey(account, path, result.uidvalidity, uid), english(reason))
                result.skipped += 1
                result.note_reason(reason)
                log.info("skipped folder=%r uid=%d size=%d reason=%r", path, uid, size, english(reason))
            else:
                items.append((uid, size))
        self.unknown_size |= {(path, uid) for uid in sel.unknown_size}
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
