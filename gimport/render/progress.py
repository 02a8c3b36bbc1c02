"""Rendering for people: the tqdm progress bar and the tables the CLI prints. No logic of its own."""

from __future__ import annotations

import sys
import threading
import unicodedata
from typing import TextIO

from tqdm import tqdm

from gimport.accounting import RunSummary
from gimport.contract import DUPLICATE, FAILED, IMPORTED, SKIPPED, FolderCounts
from gimport.i18n import _

# Bidirectional overrides and isolates: they reorder what the terminal shows.
_BIDI = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def safe(text: object) -> str:
    """`text` as it may reach a terminal: control characters (ESC, BEL, CR, LF, ...: a server's folder name
    could retitle the terminal or break a table) and bidi overrides are shown escaped (\\x1b, \\r)."""
    out = []
    for ch in str(text):
        if ch in _BIDI or unicodedata.category(ch) == "Cc":
            out.append(
                {"\r": "\\r", "\n": "\\n", "\t": "\\t"}.get(ch) or f"\\x{ord(ch):02x}"
                if ord(ch) < 256
                else f"\\u{ord(ch):04x}"
            )
        else:
            out.append(ch)
    return "".join(out)


def safe_lines(text: str) -> str:
    """Every line of `text` made safe, the line breaks kept."""
    return "\n".join(safe(line) for line in text.split("\n"))


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def human_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class TqdmReporter:
    """Progress on a terminal: one bar (messages, with MB and MB/s), warnings above it.

    Turns itself off when the stream is not a terminal (cron, nohup, a log file); phases and warnings
    are still printed as plain lines then. mininterval keeps redraws cheap over slow SSH links.
    """

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.bar: tqdm | None = None
        self._lock = threading.Lock()
        self._bytes = 0
        self.counts = {IMPORTED: 0, DUPLICATE: 0, FAILED: 0, SKIPPED: 0}

    def _line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def phase(self, text: str) -> None:
        self._line(f"gimport: {safe(text)}")

    def warning(self, text: str) -> None:
        self._line(f"warning: {safe(text)}")

    def transfer_started(self, messages: int, size: int) -> None:
        self._line(f"gimport: {messages:,} message(s) to import, {human_bytes(size)}")
        if self.enabled and messages:
            self.bar = tqdm(
                total=messages,
                unit="msg",
                file=self.stream,
                mininterval=0.5,
                dynamic_ncols=True,
                smoothing=0.05,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]",
            )

    def message_finished(self, folder: str, outcome: str, size: int) -> None:
        with self._lock:
            self.counts[outcome] = self.counts.get(outcome, 0) + 1
            if outcome == IMPORTED:
                self._bytes += size
            if self.bar is not None:
                elapsed = max(self.bar.format_dict["elapsed"], 1e-6)
                post = f"{human_bytes(self._bytes)}, {human_bytes(self._bytes / elapsed)}/s"
                if self.counts[FAILED]:
                    post += f" failed {self.counts[FAILED]}"
                self.bar.set_postfix_str(post, refresh=False)
                self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def format_table(headers: list[str], rows: list[list[str]], right: set[int]) -> str:
    rows = [[safe(cell) for cell in row] for row in rows]

    def width(s: str) -> int:  # East Asian wide characters take two columns
        return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)

    cols = [max([width(h)] + [width(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def fmt(row: list[str]) -> str:
        cells = []
        for i, cell in enumerate(row):
            pad = " " * (cols[i] - width(cell))
            cells.append(pad + cell if i in right else cell + pad)
        return "  ".join(cells).rstrip()

    lines = [fmt(headers), fmt(["-" * c for c in cols])]
    lines += [fmt(r) for r in rows]
    return "\n".join(lines)


def format_summary(s: RunSummary) -> str:
    headers = ["folder", "labels", "found", "imported now", "already there", "skipped", "failed", "bytes"]
    rows = []
    for f in sorted(s.folders, key=lambda f: (f.folder.upper() != "INBOX", f.folder)):
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
        "total",
        "",
        str(s.total("found")),
        str(s.total("imported")),
        str(s.total("already") + s.total("duplicates")),
        str(s.total("skipped") + sum(max(0, f.found - f.selected) for f in s.folders)),
        str(s.total("failed")),
        human_bytes(s.total("bytes")),
    ]
    out = [format_table(headers, rows + [tot], right={2, 3, 4, 5, 6, 7})]
    imported = s.total("imported")
    rate = imported / s.duration if s.duration > 0 else 0.0
    if imported or s.total("todo"):
        out.append(
            f"\n{imported:,} message(s) imported in {human_duration(s.duration)} ({rate:.1f} msg/s,"
            f" {human_bytes(s.total('bytes') / max(s.duration, 1e-6))}/s) into {s.gmail_account or '?'}"
        )
    else:
        out.append(f"\nNothing new to import into {s.gmail_account or '?'} (checked in {human_duration(s.duration)}).")
    resent = s.total("resent")
    if resent:
        out.append(f"{resent} message(s) were in flight when an earlier run stopped and were sent again.")
    ambiguous = s.total("ambiguous")
    if ambiguous:
        out.append(
            f"{ambiguous} call(s) were retried after an answer that may have come after Gmail stored the message"
            " (Gmail merges re-imports of the same Message-ID)."
        )
    if s.rate_limited:
        out.append(f"Gmail asked gimport to slow down {s.rate_limited} time(s).")
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
    retry = any(f.error or f.failed or f.remaining > 0 for f in s.folders)
    if s.interrupted:
        out.append("Interrupted: run the same command again to continue where it stopped.")
    elif s.fatal is not None:
        out.append(safe(f"Stopped: {s.fatal}"))
    elif s.complete:
        out.append("Everything selected is in Gmail.")
    elif retry:
        out.append(
            "Some messages are not in Gmail (see above and the log file); run 'gimport run' again to retry them."
        )
    else:
        # only skipped ones (over Gmail's limit, empty): another run would not change that
        out.append(
            _(
                "Some messages cannot be imported as they are (see above; 'gimport status' lists them): another"
                " run does not retry them."
            )
        )
    return "\n".join(out)


def format_status(counts: list[FolderCounts], gmail_account: str | None) -> str:
    headers = ["folder", "labels", "found", "selected", "imported", "in flight", "failed", "skipped", "to do"]
    rows = []
    for c in sorted(counts, key=lambda c: (c.folder.upper() != "INBOX", c.folder)):
        done = c.imported + c.duplicate
        todo = max(0, c.selected - done - c.skipped)
        rows.append(
            [
                c.folder,
                c.labels,
                str(c.found),
                str(c.selected),
                str(done),
                str(c.sending),
                str(c.failed),
                str(c.skipped),
                str(todo),
            ]
        )
    if not rows:
        return "No folders recorded yet: run 'gimport run' (or 'gimport plan' to preview)."
    total = [sum(int(r[i]) for r in rows) for i in range(2, 9)]
    rows.append(["total", "", *map(str, total)])
    text = format_table(headers, rows, right=set(range(2, 9)))
    todo_total = total[-1]
    tail = f"\nGmail account: {gmail_account or 'not yet recorded'}"
    if todo_total == 0 and total[4] == 0 and total[5] == 0:
        tail += "\nEverything selected at the last run is in Gmail."
    else:
        tail += f"\n{todo_total} message(s) still to import: run 'gimport run' to continue."
    return text + tail


def format_plan(p) -> str:
    """The `gimport plan` table (p: gimport.plan.Preview)."""
    from gimport.plan import action_text

    headers = ["folder", "messages", "size", "labels", "action"]
    rows = [
        [fp.folder, str(fp.messages), human_bytes(fp.size), ", ".join(fp.plan.labels) or "-", action_text(fp)]
        for fp in sorted(p.folders, key=lambda f: (f.folder.upper() != "INBOX", f.folder))
    ]
    total_msgs = sum(fp.messages for fp in p.folders)
    rows.append(["total", str(total_msgs), human_bytes(sum(fp.size for fp in p.folders)), "", ""])
    out = [format_table(headers, rows, right={1, 2})]
    if p.labels_needed:
        out.append("\nUser labels needed (existing ones are reused, case-insensitively; the rest are created):")
        out += [f"  {name}" for name in p.labels_needed]
    for w in p.warnings:
        out.append(f"warning: {w}")
    out.append(
        f"\nTo import: {p.to_import:,} message(s), {human_bytes(p.to_import_bytes)}; at"
        f" {p.quota_units_per_minute:,} quota units/min (25 per import) that takes about"
        f" {human_duration(p.estimated_seconds)}."
    )
    out.append("Nothing was changed. Run 'gimport run' to import.")
    return "\n".join(out)
