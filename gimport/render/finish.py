"""Rendering of `gimport verify` and `gimport cleanup` (gimport.operations.verify, gimport.operations.cleanup) for people and for scripts.

No logic of its own, and no message contents: folders, UIDs and Message-IDs only (never a subject).
"""

from __future__ import annotations

from typing import Any

from gimport.i18n import N_, _, english
from gimport.mail.selection import inbox_first
from gimport.operations.cleanup import GMAIL_SETTINGS_PATH, CleanupPlan, CleanupResult, GmailSettingsReport
from gimport.operations.verify import RETRY_COMMAND, LabelCheck, VerifyReport
from gimport.render.ledger import verify_json, verify_sections
from gimport.render.table import Column, format_table
from gimport.render.text import wrap

LEGEND = (
    N_(
        "Exact: 'on source' and 'selected' are the source now (after the mapping and [filters]); 'recorded'"
        " (imported, or a copy of an imported message) and 'missing' come from the state file, for each folder's"
        " current UIDVALIDITY."
    ),
    N_(
        "Approximate: 'Gmail label count' is Gmail's own count for the label (messagesTotal). A message in two"
        " folders is one Gmail message with two labels, and mail you labelled yourself counts too, so it is only"
        " checked to be at least what gimport recorded importing; system labels (INBOX, SENT, SPAM, TRASH, ...)"
        " hold other mail as well and are only shown, never compared."
    ),
)


def _label_cell(check: LabelCheck | None) -> str:
    if check is None:
        return "?"
    total = "-" if check.gmail_total is None else f"{check.gmail_total:,}"
    if check.verdict == "not compared":
        return _("{total} (system label)").format(total=total)
    if check.verdict == "ok":
        return _("{total} ok").format(total=total)
    if check.verdict == "fewer":
        return _("{total} FEWER than {recorded}").format(total=total, recorded=f"{check.recorded:,}")
    if check.verdict == "absent":
        return _("label not in Gmail")
    return _("- (no label yet)")


def format_verify(r: VerifyReport, *, shown_limit: int | None = None, width: int | None = None) -> str:
    """The verify report for people; `width`: fit the terminal (None: full names, unwrapped)."""
    head = [
        _("Verify: {source} -> {gmail}    state file: {path}").format(
            source=r.source_account, gmail=r.gmail_account, path=r.state_path
        ),
        "",
    ]
    out: list[str] = ["", _(LEGEND[0]), _(LEGEND[1])]
    notes = _verify_notes(r)
    if notes:
        out += ["", *notes]
    out += _missing_lines(r, shown_limit)
    out += verify_sections(r, shown_limit=shown_limit)  # accepted messages, the exact proof (gimport.render.ledger)
    if r.retry_helps:
        out.append(
            _("To import what is missing (failed ones are retried): {command}   then: gimport verify").format(
                command=RETRY_COMMAND
            )
        )
    out += ["", _verdict(r)]
    table = _verify_table(r, width)
    return wrap("\n".join(head), width, indent="  ") + "\n" + table + "\n" + wrap("\n".join(out), width, indent="    ")


def _verify_table(r: VerifyReport, width: int | None) -> str:
    """One row per folder (INBOX first): the source, the state file and Gmail's label counts; the totals."""
    columns = [
        Column(_("folder"), name=True),
        Column(_("labels"), same_as=0),
        Column(_("on source"), right=True),
        Column(_("selected"), right=True),
        Column(_("recorded"), right=True, over=3),
        Column(_("missing"), right=True, zero=True),
        Column(_("Gmail label count")),
    ]
    rows = []
    for f in inbox_first(r.folders, key=lambda f: f.folder):
        if f.error:
            rows.append([f.folder, ", ".join(f.labels), "?", "?", "?", "?", _("folder not readable")])
            continue
        gm = "; ".join(_label_cell(r.labels.get(label)) for label in f.labels)
        rows.append(
            [
                f.folder,
                ", ".join(f.labels),
                f"{f.on_source:,}",
                f"{f.selected:,}",
                f"{f.recorded_imported:,}",
                f"{f.missing:,}",
                gm,
            ]
        )
    ok = [f for f in r.folders if not f.error]
    rows.append(
        [
            _("total"),
            "",
            f"{sum(f.on_source for f in ok):,}",
            f"{sum(f.selected for f in ok):,}",
            f"{sum(f.recorded_imported for f in ok):,}",
            f"{r.missing_total:,}",
            "",
        ]
    )
    return format_table(columns, rows, width=width)


def _verify_notes(r: VerifyReport) -> list[str]:
    """Folders that could not be read, labels Gmail counts fewer of or lacks, folders no longer selected."""
    notes: list[str] = []
    for f in r.folders:
        if f.error:
            notes.append(
                _("error: {folder}: {error} (not verified; run 'gimport plan' to see the folders)").format(
                    folder=f.folder, error=f.error
                )
            )
    for check in r.labels.values():
        if check.verdict == "fewer":
            notes.append(
                _(
                    "note: label {label!r}: Gmail counts {total} message(s), fewer than the {recorded} gimport"
                    " recorded importing: deleted in Gmail, or the label taken off them?"
                ).format(label=check.label, total=f"{check.gmail_total or 0:,}", recorded=f"{check.recorded:,}")
            )
        elif check.verdict == "absent":
            notes.append(
                _(
                    "note: label {label!r} is not in Gmail, but {recorded} message(s) were imported under it: was it"
                    " deleted or renamed in Gmail? ('gimport run' creates it again for new messages only)"
                ).format(label=check.label, recorded=f"{check.recorded:,}")
            )
    for folder, n in r.not_selected_now:
        notes.append(
            _(
                "note: {folder!r} is in the state file ({n} imported) but is not selected on the source now"
                " (deleted, renamed or excluded there): not checked"
            ).format(folder=folder, n=f"{n:,}")
        )
    return notes


def _missing_lines(r: VerifyReport, shown_limit: int | None) -> list[str]:
    """The selected messages not recorded as imported (the first `shown_limit` of them) and how many cannot be."""
    if not r.missing_total:
        return []
    listed = r.missing[:shown_limit] if shown_limit is not None else r.missing
    out = [
        "",
        _("Missing: {n} selected message(s) not recorded as imported").format(n=f"{r.missing_total:,}"),
    ]
    for m in listed:
        out.append(f"  {m.folder}  UID {m.uid}  {m.message_id or _('(no Message-ID)')}  {m.status}: {m.reason}")
    if r.missing_total > len(listed):
        out.append(
            _("  ... and {n} more ('gimport verify --json' lists them all)").format(
                n=f"{r.missing_total - len(listed):,}"
            )
        )
    skipped = sum(f.skipped for f in r.folders)
    if skipped:
        out.append(
            _(
                "{n} of them cannot be imported as they are (skipped, see the reasons): '{command}' does not"
                " retry them; keep them on the old account or save them elsewhere if you need them."
            ).format(n=f"{skipped:,}", command=RETRY_COMMAND)
        )
    return out


def _verdict(r: VerifyReport) -> str:
    """The last line: VERIFIED, or NOT VERIFIED and why."""
    accepted = len(r.accepted)
    if r.passed:
        total = sum(f.selected for f in r.folders)
        proven = (
            _("are in {account}, each proven by its Gmail id")
            if r.exact is not None
            else _("are recorded as imported into {account}")
        ).format(account=r.gmail_account)
        return _("VERIFIED: all {n} selected message(s) in {folders} folder(s) {proven}").format(
            n=f"{total - accepted:,}", folders=len(r.folders), proven=proven
        ) + (_("; {n:,} accepted as not in Gmail (listed above).").format(n=accepted) if accepted else ".")
    if not r.folders:
        return _("NOT VERIFIED: no folder on the source is selected (see 'gimport plan').")
    if r.missing_total or r.exact is None:
        return _("NOT VERIFIED: {n} selected message(s) are not recorded as imported.").format(n=f"{r.missing_total:,}")
    failing = sum(g.fails for g in r.exact.gaps)
    return _("NOT VERIFIED: {n:,} message(s) recorded as imported are not as recorded in Gmail.").format(n=failing)


def verify_to_json(r: VerifyReport) -> dict[str, Any]:
    return {
        "passed": r.passed,
        "source_account": r.source_account,
        "gmail_account": r.gmail_account,
        "state_file": str(r.state_path),
        "exact": ["on_source", "selected", "recorded_imported", "missing", "failed", "skipped"],
        "approximate": ["gmail_labels[].messages_total"],
        "folders": [
            {
                "folder": f.folder,
                "labels": list(f.labels),
                "uidvalidity": f.uidvalidity,
                "recorded_uidvalidity": f.recorded_uidvalidity,
                "on_source": f.on_source,
                "selected": f.selected,
                "recorded_imported": f.recorded_imported,
                "missing": f.missing,
                "failed": f.failed,
                "skipped": f.skipped,
                "error": None if f.error is None else english(f.error),
                "gmail_labels": [
                    {
                        "label": c.label,
                        "system": c.system,
                        "messages_total": c.gmail_total,
                        "recorded": c.recorded,
                        "verdict": c.verdict,
                    }
                    for c in (r.labels.get(label) for label in f.labels)
                    if c is not None
                ],
            }
            for f in r.folders
        ],
        "missing_total": r.missing_total,
        "missing": [
            {
                "folder": m.folder,
                "uid": m.uid,
                "message_id": m.message_id,
                "status": m.status,
                "reason": english(m.reason),
                "retried_by_run": m.retried_by_run,
            }
            for m in r.missing
        ],
        "not_selected_now": [{"folder": f, "recorded_imported": n} for f, n in r.not_selected_now],
        "retry_command": RETRY_COMMAND if r.retry_helps else None,
        **verify_json(r),
    }


# ----------------------------------------------------------------------------------------------- cleanup


def _imap_text(imap: dict[str, Any]) -> str:
    if not imap.get("enabled"):
        return _("disabled")
    extras = []
    if "autoExpunge" in imap:
        extras.append(_("auto-expunge on") if imap["autoExpunge"] else _("auto-expunge off"))
    if imap.get("expungeBehavior"):
        extras.append(_("deleted over IMAP: {behavior}").format(behavior=imap["expungeBehavior"]))
    return _("enabled") + (f" ({', '.join(extras)})" if extras else "")


def format_gmail_settings(s: GmailSettingsReport) -> str:
    auto = s.auto_forwarding
    addresses = ", ".join(
        f"{a.get('forwardingEmail', '?')} ({a.get('verificationStatus', '?')})" for a in s.forwarding_addresses
    )
    filters = ", ".join(
        _("{address} (filter {id})").format(address=f["action"]["forward"], id=f.get("id", "?"))
        for f in s.forwarding_filters
    )
    forwarding = (
        _("on, to {address} ({disposition})").format(
            address=auto.get("emailAddress", "?"), disposition=auto.get("disposition", "?")
        )
        if auto.get("enabled")
        else _("off")
    )
    out = [
        _("Gmail account: {account}").format(account=s.account),
        _("IMAP access: {imap}").format(imap=_imap_text(s.imap)),
        _("Auto-forwarding: {forwarding}").format(forwarding=forwarding),
        _("Forwarding addresses: {addresses}").format(addresses=addresses or _("none")),
        _("Filters that forward: {filters}").format(filters=filters or _("none")),
        _("Old server's mail domain(s): {domains}").format(
            domains=", ".join(s.old_domains)
            if s.old_domains
            else _("unknown (no usable [source] host or user in the config)")
        ),
    ]
    for w in s.warnings:
        out.append(
            _("warning: {where} to {address} ({detail}): {advice}").format(
                where=w.where, address=w.address, detail=w.detail, advice=w.advice
            )
        )
    return "\n".join(out)


def format_cleanup_plan(p: CleanupPlan, *, dry_run: bool, width: int | None = None) -> str:
    out = [format_gmail_settings(p.gmail), ""]
    if p.verify is not None:
        if p.verify.passed:
            out.append(_("Verify: passes (every selected message is recorded as imported)."))
        else:
            out.append(
                _("Verify: does NOT pass ({n} selected message(s) missing).").format(n=f"{p.verify.missing_total:,}")
            )
    elif p.forced:
        out.append(_("--force: not checking that verify passes first."))
    out += p.notes
    changes = []
    if p.disable_imap:
        changes.append(
            _(
                "disable IMAP access to {account} (gimport does not need it; the other IMAP settings stay as they are)"
            ).format(account=p.gmail.account)
        )
    if p.revoke:
        changes.append(_("revoke gimport's access to Gmail and delete the token file {path}").format(path=p.token_file))
    if p.forget:
        changes.append(
            _("delete the state file {path} (and its -wal/-shm files): gimport forgets what it imported").format(
                path=p.forget
            )
        )
    if p.blocked:
        out.append(_("Refused: {reason}. Nothing was changed.").format(reason=p.blocked))
        return wrap("\n".join(out), width, indent="    ")
    if not changes:
        out.append(_("Nothing to change: IMAP access is already disabled."))
    else:
        out.append(_("Would change:") if dry_run else _("To change:"))
        out += [f"  - {c}" for c in changes]
    if dry_run:
        out.append(_("Dry run: nothing was changed."))
    return wrap("\n".join(out), width, indent="    ")


def format_cleanup_result(p: CleanupPlan, r: CleanupResult, *, width: int | None = None) -> str:
    out: list[str] = []
    if p.disable_imap:
        if r.imap_disabled:
            out.append(_("IMAP access: disabled (read back from Gmail)."))
        else:
            out.append(
                _(
                    "IMAP access: Gmail still reports it ENABLED after the change (it accepted the request but keeps"
                    " IMAP on for this account). Turn it off yourself: {settings} > IMAP access: 'Disable IMAP' >"
                    " Save Changes; then 'gimport cleanup --dry-run' shows the result."
                ).format(settings=_(GMAIL_SETTINGS_PATH))
            )
    if r.revoke_text:
        out.append(r.revoke_text)
    for path in r.deleted:
        out.append(_("Deleted {path}").format(path=path))
    if p.gmail.warnings:
        out.append(
            _("Still to do by you: {n} forwarding setting(s) above point at the old server.").format(
                n=len(p.gmail.warnings)
            )
        )
    return wrap("\n".join(out), width, indent="    ")
