"""Rendering of `gimport run`'s summary and of `gimport status` (the state file, and a run in progress).
No logic of its own. `width`: fit the terminal (gimport.render.text.terminal_width); None keeps full names.
"""

from __future__ import annotations

import time
from typing import Any

from gimport.contract import FolderCounts
from gimport.engine.results import RunSummary
from gimport.i18n import _
from gimport.mail.selection import inbox_first
from gimport.render.table import Column, format_table
from gimport.render.text import clock_time, human_bytes, human_duration, safe, wrap


def stopped_before_importing(s: RunSummary) -> bool:
    """A run an error stopped before it sent anything: the CLI says so in one line instead of a summary."""
    sent = s.total("imported") + s.total("duplicates") + s.total("failed")
    return s.fatal is not None and not s.interrupted and sent == 0


def format_summary(s: RunSummary, *, width: int | None = None) -> str:
    """The table of a finished run and what to do next."""
    lines = [_throughput(s), *_summary_notes(s), _what_next(s)]
    return _summary_table(s, width) + "\n" + wrap("\n".join(lines), width)


def _summary_table(s: RunSummary, width: int | None) -> str:
    """One row per folder (INBOX first) and the totals."""
    columns = [
        Column(_("folder"), name=True),
        Column(_("labels"), same_as=0),
        Column(_("found"), right=True),
        Column(_("imported now"), right=True, zero=True),
        Column(_("already there"), right=True, zero=True),
        Column(_("skipped"), right=True, zero=True),
        Column(_("failed"), right=True, zero=True),
        Column(_("bytes"), right=True),
    ]
    rows = []
    for f in inbox_first(s.folders, key=lambda f: f.folder):
        rows.append(
            [
                f.folder,
                ", ".join(f.plan.labels),
                str(f.found),
                str(f.imported),
                str(f.already + f.duplicates),
                str(f.skipped + max(0, f.found - f.selected)),
                str(f.failed),
                human_bytes(f.bytes),
            ]
        )
    tot = [
        _("total"),
        "",
        str(s.total("found")),
        str(s.total("imported")),
        str(s.total("already") + s.total("duplicates")),
        str(s.total("skipped") + sum(max(0, f.found - f.selected) for f in s.folders)),
        str(s.total("failed")),
        human_bytes(s.total("bytes")),
    ]
    return format_table(columns, [*rows, tot], width=width)


def _throughput(s: RunSummary) -> str:
    """How many were imported, how fast, into which account (or that there was nothing new); after a blank line."""
    imported = s.total("imported")
    rate = imported / s.duration if s.duration > 0 else 0.0
    if imported or s.total("todo"):
        return "\n" + _("{n} message(s) imported in {duration} ({rate} msg/s, {speed}/s) into {account}").format(
            n=f"{imported:,}",
            duration=human_duration(s.duration),
            rate=f"{rate:.1f}",
            speed=human_bytes(s.total("bytes") / max(s.duration, 1e-6)),
            account=s.gmail_account or "?",
        )
    return "\n" + _("Nothing new to import into {account} (checked in {duration}).").format(
        account=s.gmail_account or "?", duration=human_duration(s.duration)
    )


def _summary_notes(s: RunSummary) -> list[str]:
    """What the reader should know besides the counts: messages sent again, retried calls, slow-downs,
    accepted messages, and each folder's error and most common reasons."""
    out: list[str] = []
    resent = s.total("resent")
    if resent:
        out.append(
            _(
                "{n} import call(s) were in flight when an earlier run stopped; their messages were sent again"
                " (where Gmail had stored them, it may now hold them twice)."
            ).format(n=resent)
        )
    ambiguous = s.total("ambiguous")
    if ambiguous:
        out.append(
            _(
                "{n} call(s) were retried after an answer that may have come after Gmail stored the message"
                " (where it had, Gmail may now hold the message twice)."
            ).format(n=ambiguous)
        )
    if s.earlier_resends:
        out.append(
            _(
                "{n} call(s) of earlier runs that ended without a summary (killed) may have stored a message that"
                " was then sent again (Gmail may hold such a message twice)."
            ).format(n=s.earlier_resends)
        )
    if s.rate_limited:
        out.append(_("Gmail asked gimport to slow down {n} time(s).").format(n=s.rate_limited))
    accepted = s.total("accepted")
    if accepted:  # never silently: they are not in Gmail
        out.append(
            _(
                "{n:,} message(s) accepted as not in Gmail (gimport failed lists them; gimport accept --undo KEY)"
            ).format(n=accepted)
        )
    for f in s.folders:
        if f.error:
            out.append(safe(f"{f.folder}: {f.error}"))
        for reason, n in f.reasons.most_common(5):
            out.append(safe(f"{f.folder}: {n} x {reason}"))
    return out


def _what_next(s: RunSummary) -> str:
    """The last line: why the run ended and what to do now."""
    retry = any(f.error or f.failed or f.remaining > 0 for f in s.folders)
    if s.interrupted:
        return _("Interrupted: run the same command again to continue where it stopped.")
    if s.fatal is not None:
        return safe(_("Stopped: {error}").format(error=s.fatal))
    if s.complete:
        return _("Everything selected is in Gmail.")
    if retry:
        return _("Some messages are not in Gmail (see above and the log file); run 'gimport run' again to retry them.")
    # only skipped ones (over Gmail's limit, empty): another run would not change that
    return _(
        "Some messages cannot be imported as they are (see above; 'gimport status' lists them): another"
        " run does not retry them."
    )


def format_status(
    counts: list[FolderCounts],
    gmail_account: str | None,
    *,
    width: int | None = None,
    in_progress: bool = False,
    shared: tuple[int, int] = (0, 0),
) -> str:
    """The state file's table and what to do next; `in_progress`: a run holds the state file now
    (format_run_progress tells it), so there is no advice to start one. `shared`: (Gmail messages, the
    imported rows they stand for) of messages in several folders (gimport.engine.copies)."""
    columns = [
        Column(_("folder"), name=True),
        Column(_("labels"), same_as=0),
        Column(_("found"), right=True),
        Column(_("selected"), right=True),
        Column(_("imported"), right=True, over=3),
        Column(_("in flight"), right=True, zero=True),
        Column(_("failed"), right=True, zero=True),
        Column(_("skipped"), right=True, zero=True),
        Column(_("to do"), right=True, zero=True),
    ]
    rows = []
    for c in inbox_first(counts, key=lambda c: c.folder):
        rows.append(
            [
                c.folder,
                c.labels,
                str(c.found),
                str(c.selected),
                str(c.imported + c.duplicate),
                str(c.sending),
                str(c.failed),
                str(c.skipped),
                str(c.to_do),
            ]
        )
    if not rows:
        if in_progress:
            return wrap(_("No folders recorded yet: the run in progress is still scanning."), width)
        return wrap(_("No folders recorded yet: run 'gimport run' (or 'gimport plan' to preview)."), width)
    total = [sum(int(r[i]) for r in rows) for i in range(2, 9)]
    rows.append([_("total"), "", *map(str, total)])
    text = format_table(columns, rows, width=width)
    todo_total = total[-1]
    tail = "\n" + _("Gmail account: {account}").format(account=gmail_account or _("not yet recorded"))
    if shared[0]:
        tail += "\n" + _(
            "{n} message(s) in Gmail stand for {rows} of the imported ones above: copies in several folders,"
            " each imported once with every folder's label."
        ).format(n=shared[0], rows=shared[1])
    if in_progress:
        tail += "\n" + _("{n} message(s) still to import by the run in progress.").format(n=todo_total)
    elif todo_total == 0 and total[4] == 0 and total[5] == 0:
        tail += "\n" + _("Everything selected at the last run is in Gmail.")
    else:
        tail += "\n" + _("{n} message(s) still to import: run 'gimport run' to continue.").format(n=todo_total)
    return text + wrap(tail, width)


def format_run_progress(progress: dict[str, Any] | None, holder: str, *, width: int | None = None) -> str:
    """What `gimport status` says while a run holds the state file: who, since when, how far, until when.
    `progress` is the run's own record (TqdmReporter.snapshot), None when it has written none yet."""
    p = progress or {}
    # the one line statehard's status printed, followed by what the run itself recorded
    lines = [_("A run is going on now ({holder}): these numbers are moving.").format(holder=holder)]
    if p.get("started"):
        lines.append(_("Started at {clock}.").format(clock=clock_time(float(p["started"]))))
    total = int(p.get("total") or 0)
    if total:
        lines.append(
            _("Done so far: {done} of {total} message(s) ({bytes} of {total_bytes}), {failed} failed.").format(
                done=f"{int(p.get('done') or 0):,}",
                total=f"{total:,}",
                bytes=human_bytes(int(p.get("bytes_done") or 0)),
                total_bytes=human_bytes(int(p.get("total_bytes") or 0)),
                failed=int(p.get("failed") or 0),
            )
        )
        if p.get("already"):
            lines.append(_("Already in Gmail from earlier runs: {n}.").format(n=f"{int(p['already']):,}"))
        if p.get("eta"):
            lines.append(_("Expected to end at about {clock}.").format(clock=clock_time(float(p["eta"]))))
        if p.get("folder"):
            lines.append(_("Current folder: {folder}").format(folder=p["folder"]))
    elif p.get("phase"):
        lines.append(_("Now: {phase}.").format(phase=p["phase"]))
    if p.get("updated"):
        ago = max(0, time.time() - float(p["updated"]))
        lines.append(_("(recorded {ago} ago; the table below is the state file now)").format(ago=human_duration(ago)))
    lines.append(_("Do not start a second run: it would be refused. Let this one finish, or stop it."))
    return wrap("\n".join(lines), width)


__all__ = ["format_run_progress", "format_status", "format_summary", "stopped_before_importing"]
