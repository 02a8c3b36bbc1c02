"""Rendering of the per-message views: verify's exact proof and accepted messages, `gimport failed`, the
ledger CSV (`gimport report --csv`, `gimport admin report --csv`).

Messages are named by their key (folder, UIDVALIDITY, UID) and Message-ID; never by contents.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable
from typing import Any

from gimport.contract import ACCEPTED, LedgerRow
from gimport.i18n import _, english
from gimport.operations.verify import EXACT_HOWTO, VerifyReport
from gimport.render.table import Column, format_table

# "changed": what gimport changed in the message on its way ("date fixed"), empty when nothing
LEDGER_COLUMNS = "folder uid uidvalidity message_id size status gmail_id reason time changed".split()


def iso(ts: float | None) -> str:
    """UTC, to the second, ISO 8601 ("" for none)."""
    if ts is None:
        return ""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key(folder: str, uidvalidity: int, uid: int) -> str:
    return f"{folder}:{uidvalidity}:{uid}"


def verify_sections(r: VerifyReport, *, shown_limit: int | None = None) -> list[str]:
    """The lines verify adds for accepted messages, the exact proof, and the level of proof given."""
    out: list[str] = []
    if r.accepted:
        out += [
            "",
            _("Accepted, not in Gmail: {n:,} message(s) (gimport accept; undo: gimport accept --undo KEY)").format(
                n=len(r.accepted)
            ),
        ]
        for a in r.accepted[:shown_limit] if shown_limit is not None else r.accepted:
            out.append(
                f"  {a.key}  {a.message_id or _('(no Message-ID)')}  {a.status}: {a.reason}"
                f"  ({_('accepted')} {iso(a.accepted)})"
            )
        if shown_limit is not None and len(r.accepted) > shown_limit:
            out.append(
                _("  ... and {n:,} more (gimport failed lists them all)").format(n=len(r.accepted) - shown_limit)
            )
    x = r.exact
    if x is not None:
        out += [
            "",
            _(
                "Exact check in Gmail: {checked:,} recorded message(s) ({ids:,} Gmail id(s)) checked by id and label;"
                " {calls:,} call(s), {units:,} quota units, {seconds:.1f} s"
            ).format(checked=x.checked, ids=x.gmail_messages, calls=x.calls, units=x.units, seconds=x.seconds),
        ]
        if x.gaps:
            out.append(_("Not proven: {n:,} message(s) (key FOLDER:UIDVALIDITY:UID)").format(n=len(x.gaps)))
            gaps = x.gaps[:shown_limit] if shown_limit is not None else x.gaps
            for g in gaps:
                verdict = _("FAILS") if g.fails else _("listed")
                out.append(f"  {g.key}  {g.message_id or _('(no Message-ID)')}  {_(g.problem)} ({verdict}): {g.detail}")
            if len(x.gaps) > len(gaps):
                out.append(
                    _("  ... and {n:,} more ('gimport verify --exact --json' lists them all)").format(
                        n=len(x.gaps) - len(gaps)
                    )
                )
            if any(not g.fails for g in x.gaps):
                out.append(_("A label gone since the import is listed only; --strict-labels makes it fail."))
        out.append(_("Level of proof: exact (every selected message by its Gmail id, in Gmail now)."))
    else:
        out += ["", _("Level of proof: label counts (the state file is exact; Gmail's label counts are approximate).")]
        if r.exact_available:
            out.append(_("For a per-message proof in Gmail: gimport verify --exact"))
        else:
            out.append(
                _(
                    "For a per-message proof in Gmail: {howto} (adds a read-only metadata scope), then gimport verify --exact"
                ).format(howto=EXACT_HOWTO)
            )
    return out


def verify_json(r: VerifyReport) -> dict[str, Any]:
    """The keys verify --json adds (accepted messages, the exact proof)."""
    x = r.exact
    return {
        "proof_level": r.proof_level,
        "accepted": [
            {
                "key": str(a.key),
                "folder": a.key.folder,
                "uidvalidity": a.key.uidvalidity,
                "uid": a.key.uid,
                "message_id": a.message_id,
                "status": a.status,
                "reason": a.reason,
                "accepted": iso(a.accepted),
            }
            for a in r.accepted
        ],
        "exact_check": None
        if x is None
        else {
            "passed": x.passed,
            "checked": x.checked,
            "gmail_messages": x.gmail_messages,
            "calls": x.calls,
            "units": x.units,
            "seconds": round(x.seconds, 3),
            "strict_labels": x.strict_labels,
            "gaps": [
                {
                    "key": str(g.key),
                    "folder": g.key.folder,
                    "uidvalidity": g.key.uidvalidity,
                    "uid": g.key.uid,
                    "message_id": g.message_id,
                    "gmail_id": g.gmail_id,
                    "problem": g.problem,
                    "detail": english(g.detail),
                    "fails": g.fails,
                }
                for g in x.gaps
            ],
        },
    }


def format_failed(rows: list[LedgerRow], *, width: int | None = None) -> str:
    """`gimport failed`: one line per failed/skipped message, by key, with its reason; `width`: fit the
    terminal."""
    if not rows:
        return _("No message is recorded as failed or skipped.")
    columns = [
        Column(_("key (folder:UIDVALIDITY:UID)"), name=True),
        Column(_("Message-ID"), name=True, optional=True),  # the key names the message; accept takes the key
        Column(_("size"), right=True),
        Column(_("status")),
        Column(_("reason")),
    ]
    table = []
    for r in rows:
        status = r.status if r.accepted is None else f"{r.status}, {_('accepted')} {iso(r.accepted)}"
        table.append([str(r.key), r.message_id or "-", f"{r.size:,}" if r.size is not None else "?", status, r.reason])
    open_ = sum(r.accepted is None for r in rows)
    lines = [format_table(columns, table, width=width), ""]
    lines.append(
        _("{n:,} failed or skipped, {a:,} of them accepted as not in Gmail.").format(n=len(rows), a=len(rows) - open_)
    )
    if open_:
        lines.append(
            _(
                "Keep them: gimport export-failed DIR (each as .eml, as the old server serves it)."
                " Give them up: gimport accept KEY... or --all-failed (verify then lists them as accepted)."
            )
        )
    return "\n".join(lines)


def ledger_values(r: LedgerRow) -> list[str]:
    """One ledger row (LEDGER_COLUMNS). An accepted message shows status "accepted", its own status in the
    reason, and the time of the acceptance."""
    status, reason, when = r.status, r.reason, r.updated
    if r.accepted is not None:
        status, reason, when = ACCEPTED, f"{r.status}: {r.reason}", r.accepted
    return [
        r.key.folder,
        str(r.key.uid),
        str(r.key.uidvalidity),
        r.message_id or "",
        "" if r.size is None else str(r.size),
        status,
        r.gmail_id or "",
        reason,
        iso(when),
        r.changes,
    ]


def ledger_csv(rows: Iterable[tuple[str, LedgerRow]] | Iterable[LedgerRow], *, user_column: bool = False) -> str:
    """The ledger as CSV text: one row per message; with `user_column`, rows are (user, row) and the first
    column is the user (gimport admin report --csv)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow((["user"] if user_column else []) + LEDGER_COLUMNS)
    for item in rows:
        if user_column:
            user, row = item  # type: ignore[misc]
            w.writerow([user, *ledger_values(row)])
        else:
            w.writerow(ledger_values(item))  # type: ignore[arg-type]
    return buf.getvalue()
