"""What a person reads about `gimport run --follow`: the line `gimport status` prints from the follow's
record in the state (gimport.engine.follow, meta FOLLOW_KEY), the part of the `--stats` line, and the
closing line of the run."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from gimport.i18n import _
from gimport.render.text import clock_time

Translate = Callable[[str], str]


def read_record(text: str | None) -> dict[str, Any] | None:
    """The follow's record as the state keeps it; None when there is none (or it cannot be read)."""
    try:
        record = json.loads(text) if text else None
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def follow_line(record: dict[str, Any], *, running: bool, tr: Translate = str) -> str:
    """ "following since 14:02, last new message 15:10 (INBOX), 3 imported while following"; for a follow
    that ended: "followed from 14:02 to 18:00, ...". `tr`: applied to each translated message before it is
    filled in: `english` gives the log's English."""
    since = clock_time(float(record.get("since") or 0))
    if running and not record.get("ended"):
        head = tr(_("following since {since}")).format(since=since)
    else:
        end = clock_time(float(record.get("ended") or record.get("checked") or 0))
        head = tr(_("followed from {since} to {end}")).format(since=since, end=end)
    parts = [head]
    if record.get("last"):
        last = clock_time(float(record["last"]))
        parts.append(tr(_("last new message {clock} ({folder})")).format(clock=last, folder=record.get("last_folder")))
    else:
        parts.append(tr(_("no new message yet")))
    parts.append(tr(_("{n} imported while following")).format(n=f"{int(record.get('imported') or 0):,}"))
    return ", ".join(parts)


def follow_details(record: dict[str, Any], *, running: bool) -> str:
    """The lines `gimport status` prints about the follow."""
    lines = [_("Follow: {line}.").format(line=follow_line(record, running=running))]
    if running and not record.get("ended"):
        how = _("IDLE on INBOX, every folder every {poll:g} s") if record.get("idle") else None
        how = how or _("every folder every {poll:g} s (no IDLE)")
        lines.append(how.format(poll=float(record.get("poll") or 0)))
        if record.get("checked"):
            lines.append(_("Last scan at {clock}.").format(clock=clock_time(float(record["checked"]))))
        if record.get("until"):
            lines.append(_("It stops at {clock}.").format(clock=clock_time(float(record["until"]))))
    return "\n".join(lines)
