"""The campus page: `gimport admin report --html` as one self-contained HTML file (its style, script and
chart inline; nothing is fetched, so it works from a shared folder or as a mail attachment). The tables are
complete without the script; the script (campus.js, beside this module) adds search and sorting. Every text
that comes from outside (addresses, folder names, failure reasons, host names) is escaped, and the page's
Content-Security-Policy lets only its own style and script run and load nothing.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Sequence
from functools import cache
from html import escape
from importlib import resources

from gimport import __version__
from gimport.admin.campus import CampusReport, ShardInfo, UserDetail
from gimport.admin.report import (
    BUSY,
    COMPLETE,
    INCOMPLETE,
    INTERRUPTED,
    NOT_RUN,
    NOT_STARTED,
    OUTCOME_ORDER,
    RUNNING,
    USER_FAILED,
)
from gimport.i18n import N_, _, is_japanese
from gimport.render.campus_chart import rate_chart, when
from gimport.render.text import human_bytes, human_duration

# the three groups the page counts users in, and each outcome's group
DONE, FAILED, IN_PROGRESS = "complete", "failed", "progress"
GROUP = {
    COMPLETE: DONE,
    USER_FAILED: FAILED,
    INCOMPLETE: FAILED,
    INTERRUPTED: IN_PROGRESS,
    RUNNING: IN_PROGRESS,
    BUSY: IN_PROGRESS,
    NOT_RUN: IN_PROGRESS,
    NOT_STARTED: IN_PROGRESS,
}
GROUP_NAMES = {DONE: N_("complete"), FAILED: N_("failed"), IN_PROGRESS: N_("in progress")}
OUTCOME_NAMES = {
    COMPLETE: N_("complete"),
    INCOMPLETE: N_("incomplete"),
    USER_FAILED: N_("failed"),
    INTERRUPTED: N_("interrupted"),
    RUNNING: N_("running"),
    BUSY: N_("busy"),
    NOT_RUN: N_("not run"),
    NOT_STARTED: N_("not started"),
}
REASON_LINES = 5  # reasons listed per user; the rest are counted


@cache
def asset(name: str) -> str:
    """campus.css or campus.js, shipped beside this module."""
    return resources.files("gimport.render").joinpath(name).read_text("utf-8")


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def e(value: object) -> str:
    """Text for the page: escaped for an element's content and for a quoted attribute alike."""
    return escape(str(value), quote=True)


def outcome_name(outcome: str) -> str:
    return _(OUTCOME_NAMES[outcome]) if outcome in OUTCOME_NAMES else outcome


def group_of(detail: UserDetail) -> str:
    return GROUP.get(detail.row.outcome, IN_PROGRESS)


def render_campus(report: CampusReport) -> str:
    """The whole page."""
    css, js = asset("campus.css"), asset("campus.js")
    policy = f"default-src 'none'; style-src {_hash(css)}; script-src {_hash(js)}; base-uri 'none'; form-action 'none'"
    title = _("gimport: the campus migration")
    zone = time.strftime("%Z %z", time.localtime(report.generated))
    body = [
        f"<header><h1>{e(title)}</h1>",
        '<p class="note">'
        + e(
            _(
                "Written {when} from the state files in {state_dir} (read only; no network). Times are the local"
                " time of the machine that wrote the page ({zone})."
            ).format(when=when(report.generated), state_dir=report.state_dir, zone=zone)
        )
        + "</p>",
        "<nav>"
        + "".join(
            f'<a href="#{anchor}">{e(text)}</a>'
            for anchor, text in (
                ("totals", _("Campus totals")),
                ("rate", _("Import rate")),
                ("budget", _("Daily budget")),
                ("shards", _("Shards")),
                ("users", _("Users")),
            )
        )
        + "</nav></header>",
        _totals(report),
        _section("rate", _("Import rate"), rate_chart(report.minutes)),
        _budget(report),
        _shards(report),
        _users(report),
        f'<footer class="note">gimport {e(__version__)}</footer>',
    ]
    return (
        f'<!DOCTYPE html>\n<html lang="{"ja" if is_japanese() else "en"}">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{e(policy)}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{e(title)}</title>\n<style>{css}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + f"\n<script>{js}</script>\n</body>\n</html>\n"
    )


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{e(title)}</h2>{body}</section>'


def _note(text: str) -> str:
    return f'<p class="note">{e(text)}</p>'


def _group_names() -> list[tuple[str, str]]:
    return [(g, _(name)) for g, name in GROUP_NAMES.items()]


def _card(value: str, label: str, cls: str = "") -> str:
    return f'<div class="card {cls}"><b>{e(value)}</b>{e(label)}</div>'


def _totals(report: CampusReport) -> str:
    rows = [u.row for u in report.users]
    groups = {g: sum(1 for u in report.users if group_of(u) == g) for g in GROUP_NAMES}
    cards = [_card(f"{len(rows):,}", _("users"))]
    cards += [_card(f"{groups[g]:,}", text, g) for g, text in _group_names()]
    cards += [
        _card(f"{sum(r.found for r in rows):,}", _("messages found")),
        _card(f"{sum(r.imported for r in rows):,}", _("imported")),
        _card(f"{sum(r.failed for r in rows):,}", _("failed messages")),
        _card(f"{sum(r.skipped for r in rows):,}", _("skipped")),
        _card(f"{sum(r.to_do for r in rows):,}", _("to do")),
        _card(human_bytes(sum(r.bytes for r in rows)), _("imported (size)")),
    ]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    # TRANSLATORS: the list's separator (Japanese uses 、)
    comma = _(", ")
    detail = comma.join(
        _("{n} {outcome}").format(n=f"{counts[o]:,}", outcome=outcome_name(o)) for o in OUTCOME_ORDER if o in counts
    )
    note = _note(_("Users by outcome: {counts}.").format(counts=detail)) if detail else ""
    return _section("totals", _("Campus totals"), f'<div class="cards">{"".join(cards)}</div>{note}')


def _table(headers: Sequence[tuple[str, str, bool]], rows: list[str], *, table_id: str = "") -> str:
    """A table: headers as (key, text, numeric); rows already rendered as <tr>...</tr>."""
    head = "".join(f'<th scope="col" data-key="{k}"{" class=n" if num else ""}>{e(t)}</th>' for k, t, num in headers)
    ident = f' id="{table_id}"' if table_id else ""
    # wide tables scroll sideways in their own box, so that the page around them keeps its width
    return (
        f'<div class="wide"><table{ident}><thead><tr>{head}</tr></thead><tbody>\n'
        + "\n".join(rows)
        + "\n</tbody></table></div>"
    )


def _num(n: float, text: str | None = None) -> str:
    return f'<td class="n" data-v="{n:g}">{e(f"{n:,.0f}" if text is None else text)}</td>'


def _budget(report: CampusReport) -> str:
    limit = (
        _(
            "[admin] project_units_per_day: {units} units per quota day (midnight to midnight US Pacific), shared by the"
            " shards; today is {today}."
        ).format(units=f"{report.units_per_day:,.0f}", today=report.today)
        if report.units_per_day
        else _(
            "No daily limit is set ([admin] project_units_per_day); what each shard spent is counted all the same;"
            " today is {today} (US Pacific)."
        ).format(today=report.today)
    )
    shards = [s for s in report.shards if s.day is not None]
    if not shards:
        return _section(
            "budget", _("Daily budget"), _note(limit) + _note(_("No shard has recorded what it spent yet."))
        )
    spent_today = sum(s.units for s in shards if s.day == report.today)
    total = _("Spent today by every shard: {units} units.").format(units=f"{spent_today:,.0f}")
    if report.units_per_day:
        total = _("Spent today by every shard: {units} of {limit} units ({percent:.0f}%).").format(
            units=f"{spent_today:,.0f}",
            limit=f"{report.units_per_day:,.0f}",
            percent=100 * spent_today / report.units_per_day,
        )
    headers = [
        ("shard", _("shard"), False),
        ("day", _("quota day"), False),
        ("units", _("units spent"), True),
        ("limit", _("this shard's share"), True),
        ("use", _("used"), False),
    ]
    rows = [_budget_row(s, report.today) for s in shards]
    return _section("budget", _("Daily budget"), _note(limit) + f"<p>{e(total)}</p>" + _table(headers, rows))


def _budget_row(s: ShardInfo, today: str) -> str:
    day = s.day or ""
    if day != today:
        day = _("{day} (not today: nothing spent today yet)").format(day=day)
    if s.limit:
        share = s.units / s.limit
        use = f'<td><meter min="0" max="1" high="0.9" value="{min(share, 1):.3f}"></meter> {share:.0%}</td>'
        limit = _num(s.limit)
    else:
        use, limit = "<td>" + e(_("no limit")) + "</td>", _num(0, "")
    return f"<tr><td>{e(f'{s.index}/{s.count}')}</td><td>{e(day)}</td>{_num(s.units)}{limit}{use}</tr>"


def _shards(report: CampusReport) -> str:
    if not report.shards:
        return _section("shards", _("Shards"), _note(_("No shard has run yet (no record in the state directory).")))
    headers = [
        ("shard", _("shard"), False),
        ("host", _("host"), False),
        ("started", _("started"), False),
        ("finished", _("finished"), False),
        ("outcome", _("outcome"), False),
        ("users", _("users"), True),
        *[(g, text, True) for g, text in _group_names()],
        ("imported", _("imported"), True),
        ("bytes", _("size"), True),
    ]
    rows = []
    for s in report.shards:
        mine = [u for u in report.users if u.shard == f"{s.index}/{s.count}"]
        outcome = s.error or (outcome_name(s.outcome) if s.outcome else _("running, or stopped without finishing"))
        imported, size = sum(u.row.imported for u in mine), sum(u.row.bytes for u in mine)
        rows.append(
            f"<tr><td>{e(f'{s.index}/{s.count}')}</td><td>{e(s.host)}</td>"
            f"<td>{e(when(s.started) if s.started else '')}</td><td>{e(when(s.finished) if s.finished else '')}</td>"
            f"<td>{e(outcome)}</td>{_num(s.users)}"
            + "".join(_num(sum(1 for u in mine if group_of(u) == g)) for g in GROUP_NAMES)
            + f"{_num(imported)}{_num(size, human_bytes(size))}</tr>"
        )
    return _section(
        "shards", _("Shards"), _table(headers, rows) + _note(_("Each user is counted in the shard of their last run."))
    )


def _users(report: CampusReport) -> str:
    headers = [
        ("gmail", _("gmail address"), False),
        ("source", _("source user"), False),
        ("shard", _("shard"), False),
        ("outcome", _("outcome"), False),
        ("why", _("problems"), False),
        ("found", _("found"), True),
        ("imported", _("imported"), True),
        ("failed", _("failed"), True),
        ("skipped", _("skipped"), True),
        ("todo", _("to do"), True),
        ("bytes", _("size"), True),
        ("end", _("last run ended"), False),
        ("time", _("time"), True),
    ]
    options = "".join(f'<option value="{g}">{e(text)}</option>' for g, text in _group_names())
    shown, hint = _("{n} of {total} users shown"), _("search: address, user, reason, folder ...")
    search, outcome, every = _("search"), _("outcome"), _("every outcome")
    tools = (
        f'<div class="tools" id="tools" hidden data-shown="{e(shown)}">'
        f'<input type="search" id="q" placeholder="{e(hint)}" aria-label="{e(search)}">'
        f'<select id="outcome" aria-label="{e(outcome)}"><option value="">{e(every)}</option>'
        f'{options}</select><span id="shown" class="note"></span></div>'
    )
    rows = [_user_row(u) for u in report.users]
    return _section("users", _("Users"), tools + _table(headers, rows, table_id="users-table"))


def _user_row(u: UserDetail) -> str:
    r = u.row
    group = group_of(u)
    end = ""
    if u.started is not None and r.duration is not None:
        end = when(u.started + r.duration)
    duration = "" if r.duration is None else human_duration(r.duration)
    return (
        f'<tr data-group="{group}"><td class="addr">{e(r.gmail)}</td><td class="addr">{e(r.source_user)}</td>'
        f'<td>{e(u.shard)}</td><td class="o {group}">{e(outcome_name(r.outcome))}</td><td>{_problems(u)}</td>'
        f"{_num(r.found)}{_num(r.imported)}{_num(r.failed)}{_num(r.skipped)}{_num(r.to_do)}"
        f'{_num(r.bytes, human_bytes(r.bytes))}<td class="t">{e(end)}</td>{_num(r.duration or 0, duration)}</tr>'
    )


def _problems(u: UserDetail) -> str:
    """The user's error and why their messages failed or were skipped (with the folders), as a list."""
    items = [f"<li>{e(u.row.error)}</li>"] if u.row.error else []
    for reason in u.reasons[:REASON_LINES]:
        status = _("failed") if reason.status == "failed" else _("skipped")
        text = _("{status} {n}: {reason} (in {folders})").format(
            status=status, n=reason.count, reason=reason.text or "?", folders=", ".join(reason.folders)
        )
        items.append(f"<li>{e(text)}</li>")
    more = len(u.reasons) - REASON_LINES
    if more > 0:
        items.append("<li>" + e(_("and {n} more reason(s): gimport admin report --csv").format(n=more)) + "</li>")
    return f'<ul class="why">{"".join(items)}</ul>' if items else ""
