"""The progress of `gimport admin run` (an AdminReporter): one aggregate progress bar, a line per user as
it starts and finishes, and the --stats status lines. Renders what the run reports; decides nothing.

With hundreds of users there is deliberately no bar per user: the bar counts messages for everybody
(its total grows as each user's folders are scanned), and each user gets two plain lines that stay
readable in a scrollback or a `kubectl logs`. When the stream is not a terminal the bar is off and only
the lines are printed. The tables after the run are gimport.render.admin's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TextIO

from gimport.admin.report import BUSY, INCOMPLETE, USER_FAILED, UserRow
from gimport.admin.users import UserEntry
from gimport.contract import FAILED, IMPORTED
from gimport.i18n import _
from gimport.render.bar import BarReporter, Translate
from gimport.render.text import human_bytes, human_duration


class AdminProgress(BarReporter):
    """The AdminReporter of a terminal (or a log stream), on the shared tqdm base (render.bar).

    `stats`: seconds between one-line status lines when the stream is not a terminal (0: none; the admin
    CLI passes `--stats`); the same lines go to the log. `rate_limited`: how often Gmail asked to slow down.
    """

    bar_format = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}, {rate_fmt}{postfix}]"

    def __init__(
        self,
        total_users: int,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        *,
        stats: float = 0,
        on_tick: Callable[[dict[str, Any]], None] | None = None,
        rate_limited: Callable[[], int] | None = None,
    ) -> None:
        super().__init__(stream, enabled, stats=stats, on_tick=on_tick, rate_limited=rate_limited)
        self.total_users = total_users
        self._width = 24
        self.users_done = self.users_failed = 0
        self.messages = self.failed = self.bytes = 0
        self.total_messages = 0
        self.finished = 0  # messages with an outcome, whatever it is
        self._paused: str | None = None
        with self._lock:
            self._open_bar(0)
            self._postfix()
        self.start_stats()

    def _postfix(self) -> None:
        if self.bar is not None:
            text: str = _("users {done}/{total}").format(done=self.users_done, total=self.total_users)
            if self.users_failed:
                text += ", " + _("{n} failed").format(n=self.users_failed)
            text += f", {human_bytes(self.bytes)}"
            if self.failed:
                text += ", " + _("{n} msg failed").format(n=self.failed)
            if self._paused:
                text += ", " + _("paused until {until}").format(until=self._paused)
            self._set_postfix(text)

    def _tag(self, what: str, n: int, gmail: str) -> str:
        digits = len(str(self.total_users))
        self._width = max(self._width, min(len(gmail), 40))
        return f"[{what:<7} {n:>{digits}}/{self.total_users}] {gmail:<{self._width}}"

    def paused(self, until: str | None) -> None:
        """The daily budget is spent: show until when on the bar (None: going on again)."""
        with self._lock:
            self._paused = until
            self._postfix()
            if self.bar is not None:
                self.bar.refresh()

    def user_started(self, number: int, total: int, entry: UserEntry) -> None:
        with self._lock:
            self._line(
                _("{tag} source user {user}").format(
                    tag=self._tag("started", number, entry.gmail), user=entry.source_user
                )
            )

    def transfer_added(self, messages: int, size: int) -> None:
        with self._lock:
            self.total_messages += messages
            if self.bar is not None and messages:
                self.bar.total = (self.bar.total or 0) + messages
                self.bar.refresh()

    def message_finished(self, outcome: str, size: int) -> None:
        with self._lock:
            self.finished += 1
            if outcome == IMPORTED:
                self.messages += 1
                self.bytes += size
            elif outcome == FAILED:
                self.failed += 1
            if self.bar is not None:
                self._postfix()
                self._advance()

    def user_warning(self, gmail: str, text: str) -> None:
        with self._lock:
            self._line(_("warning: {user}: {text}").format(user=gmail, text=text))

    def user_finished(self, done: int, total: int, row: UserRow) -> None:
        with self._lock:
            self.users_done = done
            if row.outcome == USER_FAILED:
                self.users_failed += 1
            self._line(f"{self._tag('done', done, row.gmail)} {_finish_text(row)}")
            self._postfix()
            if self.bar is not None:
                self.bar.refresh()

    def status_line(self, tr: Translate, now: float | None = None) -> str:
        with self._lock:
            elapsed = max((time.time() if now is None else now) - self.started, 1e-6)
            parts = [
                tr("users {done}/{total} done").format(done=self.users_done, total=self.total_users),
                tr("{done}/{total} messages").format(done=f"{self.finished:,}", total=f"{self.total_messages:,}"),
                human_bytes(self.bytes),
                tr("{rate} msg/s").format(rate=f"{self.finished / elapsed:.1f}"),
            ]
            if self.users_failed:
                parts.append(tr("{n} user(s) failed").format(n=self.users_failed))
            if self.failed:
                parts.append(tr("{n} failed").format(n=self.failed))
            if self.rate_limited():
                parts.append(tr("Gmail asked to slow down ({n} times)").format(n=self.rate_limited()))
            return tr("gimport: status: {parts}").format(parts=", ".join(parts))

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "started": round(self.started, 1),
                "updated": round(time.time(), 1),
                "users_done": self.users_done,
                "users_total": self.total_users,
                "users_failed": self.users_failed,
                "done": self.finished,
                "total": self.total_messages,
                "failed": self.failed,
                "bytes_done": self.bytes,
            }


def _finish_text(row: UserRow) -> str:
    if row.outcome in (USER_FAILED, BUSY):
        return f"{row.outcome.upper():<9} {row.error}"
    duration = human_duration(row.duration or 0)
    text = f"{row.outcome:<9} " + _(
        "{now} imported now ({total} in Gmail), {failed} failed, {size}, {duration}"
    ).format(
        now=f"{row.imported_last_run:,}",
        total=f"{row.imported:,}",
        failed=f"{row.failed:,}",
        size=human_bytes(row.bytes),
        duration=duration,
    )
    if row.outcome == INCOMPLETE and row.error:
        text += f": {row.error}"
    return text
