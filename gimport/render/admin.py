"""Rendering for `gimport admin`: one aggregate progress bar, a line per user as it starts and finishes,
and the final table. No logic of its own.

With hundreds of users there is deliberately no bar per user: the bar counts messages for everybody
(its total grows as each user's folders are scanned), and each user gets two plain lines that stay
readable in a scrollback or a `kubectl logs`. When the stream is not a terminal the bar is off and only
the lines are printed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TextIO

from gimport.admin.checks import UserCheck
from gimport.admin.coverage import Coverage
from gimport.admin.plan import DAILY, CampusPlan
from gimport.admin.report import (
    BUSY,
    COMPLETE,
    INCOMPLETE,
    INTERRUPTED,
    NOT_RUN,
    NOT_STARTED,
    RUNNING,
    USER_FAILED,
    UserRow,
    outcome_counts,
    sort_rows,
)
from gimport.admin.run import AdminSummary
from gimport.admin.users import UserEntry
from gimport.contract import FAILED, IMPORTED
from gimport.i18n import _
from gimport.render.bar import BarReporter, Translate
from gimport.render.text import format_table, human_bytes, human_duration

TABLE_LIMIT = 40  # above this many users, the table shows only those that need attention


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


def _short(text: str, n: int = 90) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def format_rows(rows: list[UserRow], *, show_all: bool = False, report: str | None = None) -> str:
    """The per-user table, worst first, then totals and what to do."""
    rows = sort_rows(rows)
    shown = rows if show_all or len(rows) <= TABLE_LIMIT else [r for r in rows if r.outcome != COMPLETE]
    headers = [
        _("gmail address"),
        _("source user"),
        _("outcome"),
        _("found"),
        _("imported"),
        _("failed"),
        _("to do"),
        _("bytes"),
        _("time"),
    ]
    table = [
        [
            r.gmail,
            r.source_user,
            r.outcome,
            str(r.found),
            str(r.imported),
            str(r.failed),
            str(r.to_do),
            human_bytes(r.bytes),
            "" if r.duration is None else human_duration(r.duration),
        ]
        for r in shown
    ]
    table.append(
        [
            _("total ({n} users)").format(n=len(rows)),
            "",
            "",
            str(sum(r.found for r in rows)),
            str(sum(r.imported for r in rows)),
            str(sum(r.failed for r in rows)),
            str(sum(r.to_do for r in rows)),
            human_bytes(sum(r.bytes for r in rows)),
            "",
        ]
    )
    out = [format_table(headers, table, right={3, 4, 5, 6, 7, 8})]
    hidden = len(rows) - len(shown)
    if hidden:
        if report:
            out.append(
                _("{n} complete user(s) not shown (every user is in {report}); --all shows them.").format(
                    n=hidden, report=report
                )
            )
        else:
            out.append(_("{n} complete user(s) not shown; --all shows them.").format(n=hidden))
    problems = [r for r in rows if r.error and r.outcome not in (COMPLETE, NOT_RUN)]
    if problems:
        out.append("\n" + _("Problems:"))
        for r in problems[:TABLE_LIMIT]:
            out.append(f"  {r.gmail}: {r.outcome}: {_short(r.error, 160)}")
        if len(problems) > TABLE_LIMIT:
            out.append(_("  ... and {n} more (see the report)").format(n=len(problems) - TABLE_LIMIT))
    out.append("\n" + _("Users: {counts}.").format(counts=outcome_counts(rows) or _("none")))
    return "\n".join(out)


def format_admin_summary(s: AdminSummary, *, report: str, show_all: bool = False) -> str:
    out = [format_rows(s.rows, show_all=show_all, report=report)]
    rate = s.imported_now / s.duration if s.duration > 0 else 0.0
    out.append(
        _("{n} message(s) imported by this run in {duration} ({rate} msg/s, {size}); shard {shard} ({origin}).").format(
            n=f"{s.imported_now:,}",
            duration=human_duration(s.duration),
            rate=f"{rate:.1f}",
            size=human_bytes(s.bytes_now),
            shard=s.shard,
            origin=s.shard.origin,
        )
    )
    out.append(_("Report: {path}").format(path=report))
    if s.interrupted:
        out.append(_("Interrupted: run the same command again to continue where each user stopped."))
    elif s.fatal is not None:
        out.append(_("Stopped: {error}").format(error=s.fatal))
    elif s.complete:
        out.append(_("Every user is complete: everything selected is in Gmail."))
    else:
        out.append(
            _(
                "Some users are not complete (see above): fix what the problems say and run 'gimport admin run'"
                " again; finished users are skipped quickly and nothing is imported twice."
            )
        )
    return "\n".join(out)


def format_status_rows(rows: list[UserRow], *, show_all: bool = False) -> str:
    if not rows:
        return _("No users recorded yet: run 'gimport admin run'.")
    out = [format_rows(rows, show_all=show_all)]
    if any(r.outcome in (RUNNING,) for r in rows):
        out.append(_("Users marked 'running' are being migrated by a gimport process now."))
    if all(r.ok for r in rows):
        out.append(_("Every user is complete: everything selected at each user's last run is in Gmail."))
    elif any(r.outcome in (NOT_STARTED, INTERRUPTED, INCOMPLETE, USER_FAILED) for r in rows):
        out.append(_("Run 'gimport admin run' to continue."))
    return "\n".join(out)


def format_checks(checks: list[UserCheck], title: str) -> str:
    headers = [_("gmail address"), _("source user"), title, _("detail")]
    rows = [[c.gmail, c.source_user, _(c.outcome), _short(c.detail, 110)] for c in checks]
    counts: dict[str, int] = {}
    for c in checks:
        counts[c.outcome] = counts.get(c.outcome, 0) + 1
    summary = ", ".join(f"{n} {_(o)}" for o, n in sorted(counts.items()))
    return format_table(headers, rows, right=set()) + "\n\n" + _("Users: {counts}.").format(counts=summary or _("none"))


def _indices(values: list[int]) -> str:
    return ", ".join(str(i) for i in values)


def format_coverage(cov: Coverage, state_dir: object, *, after_run: bool = False) -> str:
    """What the shard records say (gimport.admin.coverage): one line when all is well, else a line per
    problem with what to do."""
    where = f"{state_dir}/shards"
    if cov.count is None and not cov.errors:
        return _("Shards: no run has recorded its shard in {where} yet: run 'gimport admin run'.").format(where=where)
    out: list[str] = []
    if cov.mismatch:
        out.append(
            _(
                "Shards: runs with different shard counts ({counts}) are recorded in {where}: every run and pod"
                " must use the same N ([admin] shard_count); if you changed N on purpose, delete the records of"
                " the old N there (shard-*-of-N.json)"
            ).format(counts=", ".join(map(str, cov.counts)), where=where)
        )
    if cov.missing:
        text = (
            _("Shards not run yet (of {count}): {missing}; 'gimport admin status' exits 0 once every shard has run")
            if after_run
            else _(
                "Shards that never ran (of {count}): {missing}: run them (Slurm: sbatch --array={missing_csv};"
                " Kubernetes: completions and parallelism must be {count})"
            )
        )
        out.append(
            text.format(count=cov.count, missing=_indices(cov.missing), missing_csv=",".join(map(str, cov.missing)))
        )
    if cov.unfinished:
        out.append(
            _("Shards started but not finished (running now, or killed): {shards}").format(
                shards=_indices(cov.unfinished)
            )
        )
    if cov.users_changed:
        out.append(_("The shards ran with different users files: run every shard again with the same file"))
    if cov.uncovered_count and (cov.settled or not after_run):
        names = ", ".join(cov.uncovered[:5]) + (" ..." if len(cov.uncovered) > 5 else "")
        out.append(
            _("{n} user(s) of the users file taken by no shard{colon}{names}").format(
                n=cov.uncovered_count, colon=": " if names else "", names=names
            )
        )
    out += [_("Unreadable shard record: {error}").format(error=e) for e in cov.errors]
    if not out:
        return _("Shards: {ran} of {count} ran (shard count {count}); every user is taken by a shard.").format(
            ran=len(cov.ran), count=cov.count
        )
    return "\n".join(out)


def format_campus_plan(plan: CampusPlan, *, shard_map: object = None) -> str:
    """`gimport admin plan`: a line per user, the totals, the wall time at each limit and which binds."""
    headers = [_("gmail address"), _("source user"), _("messages"), _("to import"), _("bytes"), _("units"), ""]
    rows = [
        [u.gmail, u.source_user, f"{u.messages:,}", f"{u.to_import:,}", human_bytes(u.bytes), f"{u.units:,}", u.error]
        for u in plan.users
    ]
    total_bytes = sum(u.bytes for u in plan.users)
    rows.append(
        [
            _("total ({n} users)").format(n=len(plan.users)),
            "",
            f"{sum(u.messages for u in plan.users):,}",
            f"{sum(u.to_import for u in plan.users):,}",
            human_bytes(total_bytes),
            f"{plan.units:,}",
            "",
        ]
    )
    out = [format_table(headers, rows, right={2, 3, 4, 5})]
    out.append("")
    out.append(_("Wall time at each limit ({n} shard(s)):").format(n=len(plan.shards)))
    for lim in plan.limits:
        if lim.seconds is None:
            out.append(_("  {name}: no limit ([admin] project_units_per_day = 0)").format(name=_(lim.name)))
            continue
        if lim.name == DAILY and not lim.seconds:
            out.append(
                _("  {name}: not reached ({units:,} units of {budget:,.0f} units/day)").format(
                    name=_(lim.name), units=plan.units, budget=lim.budget
                )
            )
            continue
        unit = _("units/day") if lim.name == DAILY else _("units/min")
        mark = _("  <- binds") if lim is plan.binds else ""
        out.append(f"  {_(lim.name)}: {human_duration(lim.seconds)} ({lim.budget:,.0f} {unit}){mark}")
    out.append(
        _("Estimated: at least {time}, bound by the {limit}.").format(
            time=human_duration(plan.seconds), limit=_(plan.binds.name)
        )
    )
    if len(plan.shards) > 1:
        spread = ", ".join(human_duration(s) for s in plan.shard_seconds)
        out.append(_("Per shard at the per-user quota: {spread}").format(spread=spread))
    if shard_map is not None:
        out.append(
            _("Shard map written: {path} ({n} shards, balanced by messages to import, largest first)").format(
                path=shard_map, n=len(plan.shards)
            )
        )
    return "\n".join(out)
