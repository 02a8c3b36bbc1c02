"""Progress of one mailbox (`gimport run`): the Reporter the engine reports to. No logic of its own.

On a terminal: one bar with the current folder, messages and bytes done of the total, the rate and the
clock time it should end at, failures and "slowed down" when Gmail asked for it. Elsewhere (cron, nohup, a
log file): phases and warnings as plain lines and, every `stats` seconds, one line of status.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Any, TextIO

from gimport.contract import DUPLICATE, FAILED, IMPORTED, SKIPPED
from gimport.engine.results import RunSummary
from gimport.i18n import _
from gimport.render.bar import BarReporter, Translate, eta_seconds
from gimport.render.text import clock_time, elide, human_bytes, safe, safe_lines


class TqdmReporter(BarReporter):
    """The engine's Reporter for a terminal or a log stream (see the module docstring).

    `follow(summary)` lets it read the run's own figures (how much an earlier run already imported).
    """

    bar_format = "{desc}{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"

    def __init__(
        self,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        *,
        stats: float = 0,
        on_tick: Callable[[dict[str, Any]], None] | None = None,
        rate_limited: Callable[[], int] | None = None,
    ) -> None:
        super().__init__(stream, enabled, stats=stats, on_tick=on_tick, rate_limited=rate_limited)
        self.counts = {IMPORTED: 0, DUPLICATE: 0, FAILED: 0, SKIPPED: 0}
        self._bytes = 0  # imported bytes
        self._bytes_seen = 0  # bytes of every finished message, whatever its outcome (for the share done)
        self.total = 0
        self.total_bytes = 0
        self.folder = ""
        self.summary: RunSummary | None = None
        self.transfer_began: float | None = None
        self.phase_text = ""
        self.extra_status: Callable[[Translate], str | None] | None = None  # e.g. the follow's figures

    def follow(self, summary: RunSummary) -> None:
        self.summary = summary

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    @property
    def already(self) -> int:
        return self.summary.total("already") if self.summary is not None else 0

    def phase(self, text: str) -> None:
        self.phase_text = text
        super().phase(text)

    def transfer_started(self, messages: int, size: int) -> None:
        if self.transfer_began is not None:
            return self._more(messages, size)
        with self._lock:
            self.total, self.total_bytes = messages, size
            self.transfer_began = time.time()
            self.phase_text = _("importing") if messages else _("finishing")
        self._line(
            _("gimport: {messages} message(s) to import, {size}").format(
                messages=f"{messages:,}", size=human_bytes(size)
            )
        )
        if self.already:
            self._line(_("gimport: resumed: {n} message(s) already in Gmail").format(n=f"{self.already:,}"))
        with self._lock:
            if messages:
                self._open_bar(messages)
        self._tick()  # the totals are known now: record them at once for `gimport status`
        self.start_stats()

    def _more(self, messages: int, size: int) -> None:
        """A later pass (run --follow): its messages add to the totals; said only when there are some."""
        if not messages:
            return
        with self._lock:
            self.total += messages
            self.total_bytes += size
            self.phase_text = _("importing")
            if self.bar is not None:
                self.bar.total = self.total
                self.bar.refresh()
        self._line(
            _("gimport: {messages} new message(s) to import, {size}").format(
                messages=f"{messages:,}", size=human_bytes(size)
            )
        )
        self._tick()

    def message_finished(self, folder: str, outcome: str, size: int) -> None:
        with self._lock:
            self.counts[outcome] = self.counts.get(outcome, 0) + 1
            self.folder = folder
            self._bytes_seen += size
            if outcome == IMPORTED:
                self._bytes += size
            if self.bar is not None:
                self._set_postfix(self._bar_postfix(), desc=elide(folder, 16) + " ")
                self._advance()

    def _eta(self, now: float | None = None) -> float | None:
        if self.transfer_began is None:
            return None
        now = time.time() if now is None else now
        left = eta_seconds(self._bytes_seen or self.done, self.total_bytes or self.total, now - self.transfer_began)
        return None if left is None else now + left

    def _bar_postfix(self) -> str:
        parts = [f"{human_bytes(self._bytes_seen)}/{human_bytes(self.total_bytes)}"]
        eta = self._eta()
        if eta is not None:
            parts.append(_("ends {clock}").format(clock=clock_time(eta)))
        if self.counts[FAILED]:
            parts.append(_("{n} failed").format(n=self.counts[FAILED]))
        if self.rate_limited():
            parts.append(_("slowed down"))
        return ", ".join(parts)  # tqdm puts ", " before the postfix itself

    def status_line(self, tr: Translate, now: float | None = None) -> str:
        now = time.time() if now is None else now
        with self._lock:
            if self.transfer_began is None:
                return tr("gimport: status: {phase}").format(phase=self.phase_text or tr("starting"))
            elapsed = max(now - self.transfer_began, 1e-6)
            parts = [
                tr("{done}/{total} messages").format(done=f"{self.done:,}", total=f"{self.total:,}"),
                f"{human_bytes(self._bytes_seen)}/{human_bytes(self.total_bytes)}",
                tr("{rate} msg/s").format(rate=f"{self.done / elapsed:.1f}"),
            ]
            eta = self._eta(now)
            if eta is not None and self.done < self.total:
                parts.append(tr("ETA {clock}").format(clock=clock_time(eta)))
            if self.folder:
                parts.append(tr("folder {name}").format(name=self.folder))
            if self.counts[FAILED]:
                parts.append(tr("{n} failed").format(n=self.counts[FAILED]))
            if self.rate_limited():
                parts.append(tr("Gmail asked to slow down ({n} times)").format(n=self.rate_limited()))
            extra = self.extra_status(tr) if self.extra_status is not None else None
            if extra:
                parts.append(extra)
            return tr("gimport: status: {parts}").format(parts=", ".join(parts))

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": round(self.started, 1),
                "updated": round(time.time(), 1),
                "phase": self.phase_text,
                "done": self.done,
                "total": self.total,
                "already": self.already,
                "failed": self.counts[FAILED],
                "bytes_done": self._bytes_seen,
                "total_bytes": self.total_bytes,
                "eta": None if self._eta() is None else round(self._eta() or 0, 1),
                "folder": self.folder,
                "rate_limited": self.rate_limited(),
            }


__all__ = ["TqdmReporter", "safe", "safe_lines"]  # safe, safe_lines: gimport.render.text's
