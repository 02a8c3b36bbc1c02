"""Rendering the results of `gimport admin`: the per-user tables of run and status, the verify and
cleanup checks, the shard coverage and the campus plan. Pure formatting of what gimport.admin returns;
no logic of its own. The progress during a run is gimport.render.admin_progress.
"""

from __future__ import annotations

from gimport.admin.checks import UserCheck
from gimport.admin.coverage import Coverage
from gimport.admin.engines import Engine, interrupted_hint, not_run_yet, rerun_hint
from gimport.admin.plan import DAILY, CampusPlan
from gimport.admin.report import (
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
from gimport.admin.summary import AdminSummary
from gimport.i18n import _
from gimport.render.table import Column, format_table
from gimport.render.text import human_bytes, human_duration

TABLE_LIMIT = 40  # above this many users, the table shows only those that need attention


def _short(text: str, n: int = 90) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def format_rows(
    rows: list[UserRow], *, show_all: bool = False, report: str | None = None, width: int | None = None
) -> str:
    """The per-user table, worst first, then totals and what to do; `width`: fit the terminal."""
    rows = sort_rows(rows)
    shown = rows if show_all or len(rows) <= TABLE_LIMIT else [r for r in rows if r.outcome != COMPLETE]
    columns = [
        Column(_("gmail address"), name=True),
        Column(_("source user"), name=True, same_as=0),
        Column(_("outcome")),
        Column(_("found"), right=True),
        Column(_("imported"), right=True, over=3),
        Column(_("failed"), right=True, zero=True),
        Column(_("to do"), right=True, zero=True),
        Column(_("bytes"), right=True, optional=True),
        Column(_("time"), right=True, optional=True),
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
    out = [format_table(columns, table, width=width)]
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


def format_admin_summary(
    s: AdminSummary, *, report: str, show_all: bool = False, engine: Engine | None = None, width: int | None = None
) -> str:
    out = [format_rows(s.rows, show_all=show_all, report=report, width=width)]
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
        out.append(interrupted_hint(engine or Engine()))
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


def format_status_rows(rows: list[UserRow], *, show_all: bool = False, width: int | None = None) -> str:
    if not rows:
        return _("No users recorded yet: run 'gimport admin run'.")
    out = [format_rows(rows, show_all=show_all, width=width)]
    if any(r.outcome in (RUNNING,) for r in rows):
        out.append(_("Users marked 'running' are being migrated by a gimport process now."))
    if all(r.ok for r in rows):
        out.append(_("Every user is complete: everything selected at each user's last run is in Gmail."))
    elif any(r.outcome in (NOT_STARTED, INTERRUPTED, INCOMPLETE, USER_FAILED) for r in rows):
        out.append(_("Run 'gimport admin run' to continue."))
    return "\n".join(out)


def format_checks(checks: list[UserCheck], title: str, *, width: int | None = None) -> str:
    columns = [Column(_("gmail address"), name=True), Column(_("source user"), name=True, same_as=0)]
    columns += [Column(title), Column(_("detail"))]
    rows = [[c.gmail, c.source_user, _(c.outcome), _short(c.detail, 110)] for c in checks]
    counts: dict[str, int] = {}
    for c in checks:
        counts[c.outcome] = counts.get(c.outcome, 0) + 1
    summary = ", ".join(f"{n} {_(o)}" for o, n in sorted(counts.items()))
    return format_table(columns, rows, width=width) + "\n\n" + _("Users: {counts}.").format(counts=summary or _("none"))


def _indices(values: list[int]) -> str:
    return ", ".join(str(i) for i in values)


def format_coverage(cov: Coverage, state_dir: object, *, after_run: bool = False, engine: Engine | None = None) -> str:
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
                " must use the same N ([admin] shard_count); to change N on purpose, run 'gimport admin reshard"
                " N' (it moves the old records aside)"
            ).format(counts=", ".join(map(str, cov.counts)), where=where)
        )
    engine = engine or Engine()
    if cov.missing and after_run:
        out.append(
            _("Other shards (of {count}): {where}; 'gimport admin status' exits 0 once every shard has run").format(
                count=cov.count, where=not_run_yet(engine, cov.missing)
            )
        )
    elif cov.missing:
        out.append(
            _("Shards that never ran (of {count}): {missing}: run them ({how})").format(
                count=cov.count, missing=_indices(cov.missing), how=rerun_hint(Engine(), cov.missing, cov.count or 0)
            )
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
    stopped = [i for i in cov.stopped if i not in cov.unfinished]
    if not out and stopped:
        return _(
            "Shards: {ran} of {count} started (shard count {count}), every user taken by a shard; stopped before"
            " finishing their users: {stopped}: run them again ({how})"
        ).format(
            ran=len(cov.ran),
            count=cov.count,
            stopped=_indices(stopped),
            how=rerun_hint(Engine(), stopped, cov.count or 0),
        )
    if not out:
        return _("Shards: {ran} of {count} ran (shard count {count}); every user is taken by a shard.").format(
            ran=len(cov.ran), count=cov.count
        )
    return "\n".join(out)


def format_campus_plan(
    plan: CampusPlan,
    *,
    shard_map: object = None,
    finish: str = "",
    concurrent_from: str = "",
    width: int | None = None,
) -> str:
    """`gimport admin plan`: a line per user, the totals, the wall time at each limit and which binds, each
    shard's time, the campus's as it will run (`concurrent_from`: where the shards-at-once came from) and
    `finish`, the clock time it ends if started now."""
    columns = [Column(_("gmail address"), name=True), Column(_("source user"), name=True, same_as=0)]
    columns += [Column(h, right=True) for h in (_("messages"), _("to import"))]
    columns += [Column(_("bytes"), right=True, optional=True), Column(_("units"), right=True)]
    columns.append(Column(""))
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
    out = [format_table(columns, rows, width=width)]
    out.append("")
    out.append(
        _("Wall time at each limit ({n} shard(s), {k} at a time{source}):").format(
            n=len(plan.shards), k=plan.concurrent, source=f"; {concurrent_from}" if concurrent_from else ""
        )
    )
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
    if len(plan.shards) > 1:
        spread = ", ".join(f"{i}: {human_duration(s)}" for i, s in enumerate(plan.shard_seconds))
        out.append(
            _(
                "Per shard (its users [admin] parallel_users at a time, within its 1/N of the per-minute budget):"
                " {spread}"
            ).format(spread=spread)
        )
    out.append(
        _("Estimated: {time} for the campus ({k} shard(s) at a time), bound by the {limit}{finish}.").format(
            time=human_duration(plan.seconds),
            k=plan.concurrent,
            limit=_(plan.binds.name),
            finish=_("; if started now, it ends about {when}").format(when=finish) if finish else "",
        )
    )
    if shard_map is not None:
        out.append(
            _("Shard map written: {path} ({n} shards, balanced by messages and bytes to import, largest first)").format(
                path=shard_map, n=len(plan.shards)
            )
        )
    return "\n".join(out)
