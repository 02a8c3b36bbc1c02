"""Before cleanup turns IMAP off: is the cutover over? Two things say it is not: a `gimport run --follow`
still importing (its record in the state, gimport.engine.follow, and the run lock held), and mail that reached
the old server after the last import (the newest INTERNALDATE among the highest UIDs of each folder the
mapping imports, against the time of the last import the state records). Reads only; returns what to say."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from gimport.config.settings import Settings
from gimport.contract import DUPLICATE, IMPORTED, Ledger, MailSource
from gimport.errors import GimportError
from gimport.i18n import _, english
from gimport.mail.mapping import IMPORT, plan_folders

log = logging.getLogger("gimport")

TAIL = 5  # the highest UIDs of a folder whose dates are read: new mail gets the highest


def newest_on_source(source: MailSource, settings: Settings) -> tuple[dt.datetime, str] | None:
    """The newest INTERNALDATE among the last TAIL messages (by UID) of each folder the mapping imports, with
    its folder; None when there is none. Raises SourceError."""
    newest: tuple[dt.datetime, str] | None = None
    for plan in plan_folders(source.list_folders(), settings.labels):
        if plan.action != IMPORT:
            continue
        try:
            source.examine(plan.folder.name)
            uids = source.search()[-TAIL:]
            metas = list(source.fetch_meta(uids))
        except GimportError as err:  # a folder that cannot be read now: the others still tell
            log.info("cutover check: %s: %s", plan.folder.name, english(err))
            continue
        for meta in metas:
            when = meta.internaldate
            if when is not None and when.tzinfo is not None and (newest is None or when > newest[0]):
                newest = (when, plan.path)
    return newest


def last_import(state: Ledger, account: str) -> float | None:
    """When the state last recorded a message as imported (epoch seconds); None when it never did."""
    times = [r.updated for r in state.ledger(account, statuses=(IMPORTED, DUPLICATE)) if r.updated]
    return max(times, default=None)


def cutover_warnings(
    *,
    follow: dict[str, Any] | None,
    running: bool,
    newest: Callable[[], tuple[dt.datetime, str] | None],
    last: float | None,
) -> list[str]:
    """What cleanup says before it changes anything: a follow still running, mail newer than the last import.
    `newest` is called only when no follow is running (the follow imports such mail itself)."""
    if running:
        if follow is not None and not follow.get("ended"):
            return [
                _(
                    "warning: gimport run --follow (pid {pid}) is still importing new mail from the old server: switch"
                    " IMAP off after the cutover, when the follow is stopped and 'gimport verify' passes"
                ).format(pid=follow.get("pid"))
            ]
        return [_("warning: a gimport run is still going on: let it finish before cleanup")]
    found = newest()
    if found is None or last is None:
        return []
    when, folder = found
    if when.timestamp() <= last:
        return []
    return [
        _(
            "warning: mail reached the old server after the last import (newest: {when} in {folder}; last import:"
            " {last}): run 'gimport run' (or 'gimport run --follow' until the cutover) before cleanup"
        ).format(
            when=when.astimezone().strftime("%Y-%m-%d %H:%M"),
            folder=folder,
            last=dt.datetime.fromtimestamp(last).strftime("%Y-%m-%d %H:%M"),
        )
    ]
