"""The one tqdm base shared by single-user progress (render.progress.TqdmReporter) and admin progress
(render.admin_progress.AdminProgress): a bar on a terminal, plain lines elsewhere, and the periodic status line of
unattended runs (`--stats SECONDS`, after rclone).

When the stream is a terminal the bar shows the progress; when it is not (nohup, cron, Slurm, Kubernetes
logs) there is no bar and, every `stats` seconds, one line of status is printed instead. Either way the
same status goes to the log file every `stats` seconds, in English like the rest of the log. `on_tick`
(optional) is called with a snapshot of the numbers every few seconds, whatever `stats` is: the CLI
records it in the state file so that `gimport status` can tell a run in progress.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from tqdm import tqdm

from gimport.i18n import _, english
from gimport.render.text import safe

log = logging.getLogger("gimport")

Translate = Callable[[str], str]
TICK_SECONDS = 5.0  # how often on_tick runs (the run's record for `gimport status`)


class BarReporter:
    """Base of the progress reporters. Subclasses give `status_line(tr)` and `snapshot()` and call
    `_open_bar(total)`, `_advance()` and `_set_postfix(text)` under `self._lock`.

    `stats`: seconds between status lines (0: none). Thread-safe: engine workers report concurrently.
    """

    bar_format = "{desc}{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"

    def __init__(
        self,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        *,
        stats: float = 0,
        on_tick: Callable[[dict[str, Any]], None] | None = None,
        rate_limited: Callable[[], int] | None = None,
    ) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.bar: tqdm[Any] | None = None
        self._lock = threading.RLock()
        self.stats = max(0.0, float(stats))
        self.on_tick = on_tick
        self.rate_limited = rate_limited or (lambda: 0)
        self.started = time.time()
        self._closing = threading.Event()
        self._ticker: threading.Thread | None = None

    # -- lines and the bar ---------------------------------------------------------------------------
    def _line(self, text: str) -> None:
        with self._lock:
            if self.bar is not None:
                self.bar.write(text, file=self.stream)
            else:
                print(text, file=self.stream, flush=True)

    def _open_bar(self, total: int, desc: str = "") -> None:
        if self.enabled and self.bar is None:
            self.bar = tqdm(
                total=total,
                desc=desc,
                unit="msg",
                file=self.stream,
                mininterval=0.5,  # cheap redraws over slow SSH links
                dynamic_ncols=True,
                smoothing=0.05,
                bar_format=self.bar_format,
            )

    def _advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def _set_postfix(self, text: str, desc: str | None = None) -> None:
        if self.bar is not None:
            if desc is not None:
                self.bar.set_description_str(desc, refresh=False)
            self.bar.set_postfix_str(text, refresh=False)

    def phase(self, text: str) -> None:
        self._line(f"gimport: {safe(text)}")

    def warning(self, text: str) -> None:
        self._line(_("warning: {text}").format(text=safe(text)))

    # -- the periodic status -------------------------------------------------------------------------
    def status_line(self, tr: Translate, now: float | None = None) -> str:
        """One line of status at `now` (default: the time now); `tr` is `_` for the terminal and
        `english` for the log (given a msgid, it returns the msgid itself: logs stay English)."""
        raise NotImplementedError

    def snapshot(self) -> dict[str, Any]:
        """The numbers of status_line, for on_tick (JSON-serializable)."""
        return {}

    def start_stats(self) -> None:
        """Start the status thread (idempotent): status lines every `stats` seconds, on_tick every few."""
        if self._ticker is not None or (not self.stats and self.on_tick is None):
            return
        self._ticker = threading.Thread(target=self._tick_loop, name="gimport-stats", daemon=True)
        self._ticker.start()

    def _tick_loop(self) -> None:
        step = min(self.stats or TICK_SECONDS, TICK_SECONDS)
        last_stats = time.monotonic()
        while not self._closing.wait(step):
            if self.stats and time.monotonic() - last_stats >= self.stats - 1e-3:
                last_stats = time.monotonic()
                self.emit_stats()
            self._tick()

    def _tick(self) -> None:
        if self.on_tick is not None:
            try:
                self.on_tick(self.snapshot())
            except Exception as exc:  # noqa: BLE001 - a status record must never stop a run
                log.warning("could not record the run's progress: %s", exc)

    def emit_stats(self) -> None:
        """Print (when there is no bar) and log one status line now."""
        with self._lock:
            now = time.time()  # one instant for both versions of the line
            if self.bar is None:
                print(self.status_line(_, now), file=self.stream, flush=True)
            log.info("%s", self.status_line(english, now))

    def close(self) -> None:
        self._closing.set()
        if self._ticker is not None and self._ticker is not threading.current_thread():
            self._ticker.join(2)
        self._ticker = None
        self._tick()
        with self._lock:
            if self.bar is not None:
                self.bar.close()
                self.bar = None


def eta_seconds(done: float, total: float, elapsed: float) -> float | None:
    """Seconds left at the rate so far; None before there is a rate."""
    if done <= 0 or elapsed <= 0 or total <= done:
        return None if total > done else 0.0
    return (total - done) / (done / elapsed)


__all__ = ["TICK_SECONDS", "BarReporter", "eta_seconds"]
