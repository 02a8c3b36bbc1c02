"""Rendering of `gimport verify` and `gimport cleanup` (gimport.verify, gimport.cleanup) for people and for scripts.

No logic of its own, and no message contents: folders, UIDs and Message-IDs only (never a subject).
"""

from __future__ import annotations

from typing import Any

from gimport.cleanup import GMAIL_SETTINGS_PATH, CleanupPlan, CleanupResult, GmailSettingsReport
from gimport.render.text import format_table, wrap
from gimport.selection import inbox_first
from gimport.verify import RETRY_COMMAND, LabelCheck, VerifyReport

LEGEND = """\
Exact: 'on source' and 'selected' are the source now (after the mapping and [filters]); 'recorded' (imported,
or a copy of an imported message) and 'missing' come from the state file, for each folder's current UIDVALIDITY.
Approximate: 'Gmail label count' is Gmail's own count for the label (messagesTotal). A message in two folders is
one Gmail message with two labels, and mail you labelled yourself counts too, so it is only checked to be at
least what gimport recorded importing; system labels (INBOX, SENT, SPAM, TRASH, ...) hold other mail as well
and are only shown, never compared."""


def _label_cell(check: LabelCheck | None) -> str:
    if check is None:
        return "?"
    total = "-" if check.gmail_total is None else f"{check.gmail_total:,}"
    return {
        "not compared": f"{total} (system label)",
        "ok": f"{total} ok",
        "fewer": f"{total} FEWER than {check.recorded:,}",
        "absent": "label not in Gmail",
        "unused": "- (no label yet)",
    }[check.verdict]


def format_verify(r: VerifyReport, *, shown_limit: int | None = None, width: int | None = None) -> str:
    """The verify report for people; `width`: fit the terminal (None: full names, unwrapped)."""
    head = [f"Verify: {r.source_account} -> {r.gmail_account}    state file: {r.state_path}", ""]
    out: list[str] = []
    headers = ["folder", "labels", "on source", "selected", "recorded", "missing", "Gmail label count"]
    rows = []
    for f in inbox_first(r.folders, key=lambda f: f.folder):
        if f.error:
            rows.append([f.folder, ", ".join(f.labels), "?", "?", "?", "?", "folder not readable"])
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
            "total",
            "",
            f"{sum(f.on_source for f in ok):,}",
            f"{sum(f.selected for f in ok):,}",
            f"{sum(f.recorded_imported for f in ok):,}",
            f"{r.missing_total:,}",
            "",
        ]
    )
    table = format_table(headers, rows, right={2, 3, 4, 5}, width=width, prose={6})
    out += ["", LEGEND if width is None else " ".join(LEGEND.split("\n")).replace(" Approximate:", "\nApproximate:")]

    notes = []
    for f in r.folders:
        if f.error:
            notes.append(f"error: {f.folder}: {f.error} (not verified; run 'gimport plan' to see the folders)")
    for check in r.labels.values():
        if check.verdict == "fewer":
            notes.append(
                f"note: label {check.label!r}: Gmail counts {check.gmail_total:,} message(s), fewer than the"
                f" {check.recorded:,} gimport recorded importing: deleted in Gmail, or the label taken off them?"
            )
        elif check.verdict == "absent":
            notes.append(
                f"note: label {check.label!r} is not in Gmail, but {check.recorded:,} message(s) were imported under"
                " it: was it deleted or renamed in Gmail? ('gimport run' creates it again for new messages only)"
            )
    for folder, n in r.not_selected_now:
        notes.append(
            f"note: {folder!r} is in the state file ({n:,} imported) but is not selected on the source now"
            " (deleted, renamed or excluded there): not checked"
        )
    if notes:
        out += [""] + notes

    if r.missing_total:
        listed = r.missing[:shown_limit] if shown_limit is not None else r.missing
        out += ["", f"Missing: {r.missing_total:,} selected message(s) not recorded as imported"]
        for m in listed:
            out.append(f"  {m.folder}  UID {m.uid}  {m.message_id or '(no Message-ID)'}  {m.status}: {m.reason}")
        if r.missing_total > len(listed):
            out.append(f"  ... and {r.missing_total - len(listed):,} more ('gimport verify --json' lists them all)")
        skipped = sum(f.skipped for f in r.folders)
        if skipped:
            out.append(
                f"{skipped:,} of them cannot be imported as they are (skipped, see the reasons): '{RETRY_COMMAND}'"
                " does not retry them; keep them on the old account or save them elsewhere if you need them."
            )
    if r.retry_helps:
        out.append(f"To import what is missing (failed ones are retried): {RETRY_COMMAND}   then: gimport verify")
    out.append("")
    if r.passed:
        total = sum(f.selected for f in r.folders)
        out.append(
            f"VERIFIED: all {total:,} selected message(s) in {len(r.folders)} folder(s) are recorded as imported"
            f" into {r.gmail_account}."
        )
    elif not r.folders:
        out.append("NOT VERIFIED: no folder on the source is selected (see 'gimport plan').")
    else:
        out.append(f"NOT VERIFIED: {r.missing_total:,} selected message(s) are not recorded as imported.")
    return wrap("\n".join(head), width, indent="  ") + "\n" + table + "\n" + wrap("\n".join(out), width, indent="    ")


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
                "error": f.error,
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
                "reason": m.reason,
                "retried_by_run": m.retried_by_run,
            }
            for m in r.missing
        ],
        "not_selected_now": [{"folder": f, "recorded_imported": n} for f, n in r.not_selected_now],
        "retry_command": RETRY_COMMAND if r.retry_helps else None,
    }


# ----------------------------------------------------------------------------------------------- cleanup


def _imap_text(imap: dict[str, Any]) -> str:
    if not imap.get("enabled"):
        return "disabled"
    extras = []
    if "autoExpunge" in imap:
        extras.append(f"auto-expunge {'on' if imap['autoExpunge'] else 'off'}")
    if imap.get("expungeBehavior"):
        extras.append(f"deleted over IMAP: {imap['expungeBehavior']}")
    return "enabled" + (f" ({', '.join(extras)})" if extras else "")


def format_gmail_settings(s: GmailSettingsReport) -> str:
    auto = s.auto_forwarding
    addresses = ", ".join(
        f"{a.get('forwardingEmail', '?')} ({a.get('verificationStatus', '?')})" for a in s.forwarding_addresses
    )
    filters = ", ".join(f"{f['action']['forward']} (filter {f.get('id', '?')})" for f in s.forwarding_filters)
    out = [
        f"Gmail account: {s.account}",
        f"IMAP access: {_imap_text(s.imap)}",
        "Auto-forwarding: "
        + (
            f"on, to {auto.get('emailAddress', '?')} ({auto.get('disposition', '?')})" if auto.get("enabled") else "off"
        ),
        f"Forwarding addresses: {addresses or 'none'}",
        f"Filters that forward: {filters or 'none'}",
        "Old server's mail domain(s): "
        + (", ".join(s.old_domains) if s.old_domains else "unknown (no usable [source] host or user in the config)"),
    ]
    for w in s.warnings:
        out.append(f"warning: {w.where} to {w.address} ({w.detail}): {w.advice}")
    return "\n".join(out)


def format_cleanup_plan(p: CleanupPlan, *, dry_run: bool, width: int | None = None) -> str:
    out = [format_gmail_settings(p.gmail), ""]
    if p.verify is not None:
        if p.verify.passed:
            out.append("Verify: passes (every selected message is recorded as imported).")
        else:
            out.append(f"Verify: does NOT pass ({p.verify.missing_total:,} selected message(s) missing).")
    elif p.forced:
        out.append("--force: not checking that verify passes first.")
    out += p.notes
    changes = []
    if p.disable_imap:
        changes.append(
            f"disable IMAP access to {p.gmail.account} (gimport does not need it; the other IMAP settings stay as"
            " they are)"
        )
    if p.revoke:
        changes.append(f"revoke gimport's access to Gmail and delete the token file {p.token_file}")
    if p.forget:
        changes.append(f"delete the state file {p.forget} (and its -wal/-shm files): gimport forgets what it imported")
    if p.blocked:
        out.append(f"Refused: {p.blocked}. Nothing was changed.")
        return wrap("\n".join(out), width, indent="    ")
    if not changes:
        out.append("Nothing to change: IMAP access is already disabled.")
    else:
        out.append("Would change:" if dry_run else "To change:")
        out += [f"  - {c}" for c in changes]
    if dry_run:
        out.append("Dry run: nothing was changed.")
    return wrap("\n".join(out), width, indent="    ")


def format_cleanup_result(p: CleanupPlan, r: CleanupResult, *, width: int | None = None) -> str:
    out = []
    if p.disable_imap:
        if r.imap_disabled:
            out.append("IMAP access: disabled (read back from Gmail).")
        else:
            out.append(
                "IMAP access: Gmail still reports it ENABLED after the change (it accepted the request but keeps"
                f" IMAP on for this account). Turn it off yourself: {GMAIL_SETTINGS_PATH} > IMAP access:"
                " 'Disable IMAP' > Save Changes; then 'gimport cleanup --dry-run' shows the result."
            )
    if r.revoke_text:
        out.append(r.revoke_text)
    for path in r.deleted:
        out.append(f"Deleted {path}")
    if p.gmail.warnings:
        out.append(f"Still to do by you: {len(p.gmail.warnings)} forwarding setting(s) above point at the old server.")
    return wrap("\n".join(out), width, indent="    ")
