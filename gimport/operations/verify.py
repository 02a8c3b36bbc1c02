"""`gimport verify`: prove that everything arrived. Returns data; never prints (gimport.render.finish).

verify compares, per selected folder, three things:
- the source now (exact): the messages the mapping and [filters] select, found with the engine's own
  selection (gimport.mail.selection.select_messages) on a read-only source session;
- the state file (exact): which of them are recorded imported (or a duplicate of an imported copy) for
  the folder's current UIDVALIDITY. Opened read-only: verify writes nothing anywhere;
- Gmail's label counts (labels.get messagesTotal; approximate for this purpose): a message in two folders
  is one Gmail message with two labels, the user may have used the label too, and system labels (INBOX,
  SENT, ...) hold other mail, so those are shown and never compared.
A message is *missing* when it is selected on the source now and not recorded imported/duplicate; the
check passes only when nothing is missing and every selected folder could be read.

Accepted messages (gimport accept: failed or skipped, accepted as not in Gmail) are not missing: they are
listed as "accepted, not in Gmail", never left out silently.

With `exact` (the gmail.metadata scope, gimport auth --exact-verify), every selected message recorded as
imported is also proven in Gmail, by its Gmail id and labels (gimport.operations.proof); without the scope the
report says which level of proof it gave and how to get the exact one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gimport.config.settings import SYSTEM_LABEL_IDS, Settings
from gimport.contract import (
    DONE_STATUSES,
    FAILED,
    PENDING,
    SENDING,
    SKIPPED,
    Destination,
    KnownContent,
    Ledger,
    MessageIdLookup,
    MessageKey,
    MessageListing,
    MessageRecord,
    Reporter,
)
from gimport.engine.identity import identify
from gimport.engine.reporting import NullReporter
from gimport.errors import AuthError, FolderChanged, FolderGone
from gimport.i18n import _
from gimport.mail.mapping import IMPORT, FolderPlan, label_key, plan_folders
from gimport.mail.selection import FolderSelection, inbox_first, select_messages
from gimport.operations.proof import ExactResult, ProofItem, prove

RETRY_COMMAND = "gimport run"


# ------------------------------------------------------------------------------------------------ verify


@dataclass(frozen=True)
class MissingMessage:
    folder: str
    uid: int
    message_id: str | None  # from the state file, else read from the source (one header, PEEK)
    status: str  # failed | skipped | sending | pending | new
    reason: str
    retried_by_run: bool  # whether 'gimport run' will try it again


@dataclass(frozen=True)
class AcceptedMessage:
    """A selected message accepted as not in Gmail (gimport accept)."""

    key: MessageKey
    message_id: str | None
    status: str  # failed | skipped
    reason: str
    accepted: float  # when (epoch seconds)


EXACT_HOWTO = "gimport auth --exact-verify"


@dataclass(frozen=True)
class LabelCheck:
    label: str  # system label id or user label name
    system: bool
    gmail_total: int | None  # labels.get messagesTotal; None when Gmail has no such label
    recorded: int  # distinct Gmail messages the state file records under this label (selected folders)

    @property
    def verdict(self) -> str:
        """not compared | ok | fewer | absent | unused"""
        if self.system:
            return "not compared"
        if self.gmail_total is None:
            return "absent" if self.recorded else "unused"
        return "ok" if self.gmail_total >= self.recorded else "fewer"


@dataclass
class FolderCheck:
    folder: str
    labels: tuple[str, ...]
    uidvalidity: int | None = None
    recorded_uidvalidity: int | None = None  # what the last run saw
    on_source: int = 0  # messages in the folder now
    selected: int = 0  # of those, selected by [filters]
    recorded_imported: int = 0  # state file: imported or duplicate, this UIDVALIDITY (may include deleted ones)
    accepted: int = 0  # selected, accepted as not in Gmail (gimport accept)
    missing: int = 0  # selected and not recorded imported
    failed: int = 0  # of missing: last attempt failed
    skipped: int = 0  # of missing: cannot be imported as it is
    error: str | None = None  # the folder could not be read
    by_content: int = 0  # of recorded_imported: found by content (imported under another UIDVALIDITY)


@dataclass
class VerifyReport:
    source_account: str
    gmail_account: str
    state_path: Path
    folders: list[FolderCheck]
    labels: dict[str, LabelCheck]
    missing: list[MissingMessage]  # detailed, at most list_limit
    missing_total: int
    not_selected_now: list[tuple[str, int]] = field(default_factory=list)  # recorded folders not selected now
    accepted: list[AcceptedMessage] = field(default_factory=list)  # all of them (never silently)
    exact: ExactResult | None = None  # the per-message proof in Gmail (verify --exact), else None
    exact_available: bool = False  # whether the grant allows it

    @property
    def proof_level(self) -> str:
        """exact (every message by its Gmail id) | label counts (state file vs source exact, Gmail approximate)"""
        return "exact" if self.exact is not None else "label counts"

    @property
    def passed(self) -> bool:
        return (
            self.missing_total == 0
            and all(f.error is None for f in self.folders)
            and bool(self.folders)
            and (self.exact is None or self.exact.passed)
        )

    @property
    def retry_helps(self) -> bool:
        return any(f.missing - f.skipped for f in self.folders) or any(f.error for f in self.folders)


def _reason(
    rec: MessageRecord | None, folder_uv: int, recorded_uv: int | None, folder_known: bool
) -> tuple[str, str, bool]:
    """(status, reason, retried by run) for a selected message not recorded imported."""
    if rec is not None:
        if rec.status == FAILED:
            return FAILED, rec.last_error or _("the last attempt failed"), True
        if rec.status == SKIPPED:
            return (
                SKIPPED,
                _("{reason} (gimport run does not retry it)").format(reason=rec.last_error or _("cannot be imported")),
                False,
            )
        if rec.status == SENDING:
            return SENDING, _("was being sent when a run was interrupted; gimport run sends it again"), True
        if rec.status == PENDING:
            return PENDING, _("found by an earlier run that stopped before importing it"), True
    if not folder_known:
        return "new", _("the folder was not scanned by any run yet"), True
    if recorded_uv is not None and recorded_uv != folder_uv:
        return (
            "new",
            _(
                "the folder's UIDVALIDITY changed since the last run ({recorded} -> {now}); gimport run re-reads it"
                " and skips what it already imported"
            ).format(recorded=recorded_uv, now=folder_uv),
            True,
        )
    return "new", _("new on the source since the last run (or newly selected by [filters])"), True


def verify(
    settings: Settings,
    *,
    source: MessageIdLookup,
    gmail: MessageListing,
    state: Ledger,
    list_limit: int | None = None,
    reporter: Reporter | None = None,
    exact: bool = False,
    strict_labels: bool = False,
) -> VerifyReport:
    """Compare source, state file and Gmail; change nothing. `source` is a connected ImapSource (used
    read-only), `gmail` a GmailClient (labels.list, labels.get, sendAs.list), `state` ideally opened
    with StateStore.open_readonly. At most `list_limit` missing messages are detailed (None: all);
    all are counted. With `exact`, every selected message recorded imported is proven in Gmail
    (gimport.operations.proof; `strict_labels`: a label gone since the import fails too). Raises AuthError (also
    when `exact` is asked without the scope), GmailError, SourceError, StateError."""
    reporter = reporter or NullReporter()
    exact_available = gmail.can_list_messages()
    if exact and not exact_available:
        raise AuthError(
            _("the Gmail grant cannot list messages, which 'gimport verify --exact' needs"),
            hint=_("run '{command}' once to add the read-only metadata scope").format(command=EXACT_HOWTO),
        )
    reporter.phase(_("checking the Gmail account"))
    address = identify(gmail, settings.gmail.user, state)
    reporter.phase(_("listing folders on the source"))
    plans = inbox_first([p for p in plan_folders(source.list_folders(), settings.labels) if p.action == IMPORT])
    reporter.phase(_("comparing {n} folder(s) with the state file").format(n=len(plans)))
    comparison = _Comparison(settings, source, state, list_limit=list_limit, exact=exact)
    for plan in plans:
        comparison.folder(plan)
    reporter.phase(_("reading label counts from Gmail"))
    labels = _label_checks(gmail, plans, comparison.gmail_ids)
    result = None
    if exact:
        items = comparison.proof_items
        reporter.phase(_("proving {n} message(s) in Gmail by their ids").format(n=f"{len(items):,}"))
        result = prove(gmail, items, strict_labels=strict_labels)
    return VerifyReport(
        source_account=source.account,
        gmail_account=address,
        state_path=state.path,
        folders=comparison.checks,
        labels=labels,
        missing=comparison.missing,
        missing_total=comparison.missing_total,
        not_selected_now=_not_selected_now(state, source.account, {p.path for p in plans}),
        accepted=comparison.accepted,
        exact=result,
        exact_available=exact_available,
    )


class _Comparison:
    """The folder-by-folder part of verify: each selected folder on the source now against the state file.
    Collects the folders' checks, the missing messages (at most `list_limit` detailed), the accepted ones, the
    Gmail ids recorded per label, and (with `exact`) what the proof in Gmail must check."""

    def __init__(
        self, settings: Settings, source: MessageIdLookup, state: Ledger, *, list_limit: int | None, exact: bool
    ) -> None:
        self.settings, self.source, self.state = settings, source, state
        self.account = source.account
        self.list_limit, self.exact = list_limit, exact
        self.recorded_folders = state.recorded_folders(self.account)
        self.checks: list[FolderCheck] = []
        self.missing: list[MissingMessage] = []
        self.missing_total = 0
        self.accepted: list[AcceptedMessage] = []
        self.proof_items: list[ProofItem] = []
        self.gmail_ids: dict[str, set[str]] = {}  # label -> Gmail ids recorded for the selected folders

    def folder(self, plan: FolderPlan) -> None:
        """Compare one folder; a folder the server cannot serve gets its check's error."""
        check = FolderCheck(plan.path, plan.labels, recorded_uidvalidity=self.recorded_folders.get(plan.path))
        self.checks.append(check)
        records: dict[int, MessageRecord] = {}
        sel = self._select(plan, check, records)
        if sel is None:
            return
        check.uidvalidity, check.on_source, check.selected = sel.uidvalidity, sel.found, sel.selected
        check.by_content = len(sel.by_content)
        done_records = [r for r in records.values() if r.status in DONE_STATUSES]
        check.recorded_imported = len(done_records) + len(sel.by_content)
        self._done(plan, check, sel, records, done_records)
        ids = {r.gmail_id for r in done_records if r.gmail_id} | {m.gmail_id for m in sel.by_content.values()}
        for label in plan.labels:
            self.gmail_ids.setdefault(label_key(label) if label not in SYSTEM_LABEL_IDS else label, set()).update(ids)
        self.missing.extend(self._with_message_ids(self._missing(plan, check, sel, records)))

    def _select(
        self, plan: FolderPlan, check: FolderCheck, records: dict[int, MessageRecord]
    ) -> FolderSelection | None:
        """The folder's selection now, with the engine's own formula; `records` gets the state file's records
        of the generation it finds. None (and check.error) when the server cannot serve the folder."""
        state, account, path = self.state, self.account, plan.path

        def done(uidvalidity: int) -> set[int]:
            records.update(state.folder_messages(account, path, uidvalidity))
            return {uid for uid, r in records.items() if r.status in DONE_STATUSES or r.accepted is not None}

        def known(uidvalidity: int) -> KnownContent:
            return state.known_content(account, path, uidvalidity)

        try:
            # a message an earlier UIDVALIDITY imported counts by its content, as in a run
            return select_messages(
                self.source, plan.folder.name, self.settings.filters, done, known, resolve_by_hash=True
            )
        except (FolderGone, FolderChanged) as exc:
            check.error = _(
                "the server cannot serve the folder ({detail}); if it never can, leave it out with [labels] exclude"
            ).format(detail=exc)
            return None

    def _done(
        self,
        plan: FolderPlan,
        check: FolderCheck,
        sel: FolderSelection,
        records: dict[int, MessageRecord],
        done_records: list[MessageRecord],
    ) -> None:
        """The selected messages that need no more work: the accepted ones are listed; the others (with
        `exact`) are to be proven in Gmail."""
        # a duplicate records no labels of its own: those of the copy it duplicates
        by_gmail_id = {r.gmail_id: r.labels for r in done_records if r.gmail_id and r.labels}
        for uid in sorted(set(sel.done)):
            r = records[uid]
            key = MessageKey(self.account, plan.path, sel.uidvalidity, uid)
            if r.status not in DONE_STATUSES:
                assert r.accepted is not None  # done without a done status: accepted (see _select)
                check.accepted += 1
                self.accepted.append(AcceptedMessage(key, r.message_id, r.status, r.last_error, r.accepted))
            elif self.exact:
                labels = r.labels or by_gmail_id.get(r.gmail_id or "") or ""
                self.proof_items.append(
                    ProofItem(key, r.message_id, r.gmail_id, tuple(x for x in labels.split(",") if x))
                )

    def _missing(
        self, plan: FolderPlan, check: FolderCheck, sel: FolderSelection, records: dict[int, MessageRecord]
    ) -> list[MissingMessage]:
        """Count the selected messages not recorded imported; returns those to detail (list_limit)."""
        check.missing = len(sel.todo)
        self.missing_total += check.missing
        detailed: list[MissingMessage] = []
        for uid, _size in sel.todo:
            rec = records.get(uid)
            status, reason, retried = _reason(
                rec, sel.uidvalidity, check.recorded_uidvalidity, plan.path in self.recorded_folders
            )
            check.failed += status == FAILED
            check.skipped += status == SKIPPED
            if self.list_limit is None or len(self.missing) + len(detailed) < self.list_limit:
                detailed.append(
                    MissingMessage(plan.path, uid, rec.message_id if rec else None, status, reason, retried)
                )
        return detailed

    def _with_message_ids(self, detailed: list[MissingMessage]) -> list[MissingMessage]:
        """`detailed`, with the Message-IDs the state file lacks read from the source (one header, PEEK)."""
        unknown = [m.uid for m in detailed if m.message_id is None]
        if not unknown:
            return detailed
        found_ids = self.source.fetch_message_ids(unknown)
        return [
            MissingMessage(m.folder, m.uid, found_ids.get(m.uid), m.status, m.reason, m.retried_by_run)
            if m.message_id is None
            else m
            for m in detailed
        ]


def _not_selected_now(state: Ledger, account: str, selected_paths: set[str]) -> list[tuple[str, int]]:
    """The folders the state file records imports for that are not selected now, with how many."""
    return [
        (c.folder, c.imported + c.duplicate)
        for c in state.folder_counts(account)
        if c.folder not in selected_paths and (c.imported or c.duplicate)
    ]


def _label_checks(gmail: Destination, plans: list[FolderPlan], gmail_ids: dict[str, set[str]]) -> dict[str, LabelCheck]:
    existing = gmail.list_labels()
    by_key = {label_key(lbl["name"]): lbl["id"] for lbl in existing if lbl.get("type") != "system"}
    system_ids = {lbl["id"] for lbl in existing if lbl.get("type") == "system"}
    out: dict[str, LabelCheck] = {}
    for plan in plans:
        for label in plan.labels:
            if label in out:
                continue
            system = label in SYSTEM_LABEL_IDS
            key = label if system else label_key(label)
            label_id = (label if label in system_ids else None) if system else by_key.get(key)
            total = None
            if label_id is not None:
                info = gmail.get_label(label_id)
                total = int(info.get("messagesTotal", 0))
            out[label] = LabelCheck(label, system, total, len(gmail_ids.get(key, ())))
    return out
