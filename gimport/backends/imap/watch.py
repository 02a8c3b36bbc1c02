"""Waiting for new mail on the old server (`gimport run --follow`): IMAP IDLE (RFC 2177) on one folder.

WatchingImapSource is the ImapSource with two more operations, both through the session's one call path
(gimport.backends.imap.session: a deadline per attempt, a reconnect when the connection drops, `interrupt`
ending the wait at once): `can_idle`, and `idle`, which opens the folder read-only (EXAMINE) and waits in
IDLE until the server tells of new mail or the time is up. Nothing on the server changes: IDLE only listens.
"""

from __future__ import annotations

import logging
from typing import Any

import imapclient

from gimport.backends.imap.source import ImapSource

log = logging.getLogger("gimport.imap")

# what an IDLE answer says when the folder changed in a way worth a scan: new messages (EXISTS, RECENT)
NEWS = (b"EXISTS", b"RECENT")


class WatchingImapSource(ImapSource):
    """An ImapSource that can wait for new mail (see the module docstring). Not thread-safe, as ImapSource."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # folder -> its UIDNEXT at the first EXAMINE since the last wait that saw news (a scan's, usually):
        # what the next wait compares with, so that mail between a scan and the wait is not missed
        self._baseline: dict[str, int] = {}
        self._latest: dict[str, int] = {}  # folder -> its UIDNEXT at the latest EXAMINE

    def _examine(self, folder: str, expect: int | None = None) -> tuple[int, int]:
        opened = super()._examine(folder, expect)
        uidnext = _number(self._uidnext)
        if uidnext is not None:
            self._baseline.setdefault(folder, uidnext)
            self._latest[folder] = uidnext
        return opened

    def can_idle(self) -> bool:
        """Whether the server announces IDLE (asked on the connection, reconnecting if need be)."""
        return bool(self._call(lambda c: c.has_capability("IDLE")))

    def idle(self, folder: str, seconds: float) -> bool:
        """Open `folder` read-only and wait up to `seconds` (cut to stay within the operation's deadline) for
        the server to tell of new messages. True when it did -- or when the folder's UIDNEXT moved since it
        was scanned (mail that came between a scan and this wait) --; False when the time ran out.
        Raises SourceError (the server is gone for good), Interrupted (a stop request), FolderGone."""
        before = self._baseline.pop(folder, None)
        self.examine(folder)
        after = self._latest.get(folder)
        if after is not None:
            self._baseline[folder] = after
        if before is not None and after is not None and after > before:
            log.info("IDLE: %s has new mail since it was scanned (UIDNEXT %d -> %d)", folder, before, after)
            self._baseline.pop(folder, None)  # the scan that follows sets it again
            return True
        # the wait must end well before the deadline of the operation, which would count it as a lost connection
        wait = max(0.0, min(seconds, self._deadline() / 2))

        def op(c: imapclient.IMAPClient) -> bool:
            if self._latest.get(folder) != after:
                return True  # opened again after a reconnect, and mail came meanwhile
            c.idle()
            try:
                answers = c.idle_check(timeout=wait)
            finally:
                done = c.idle_done()
            return any(_news(a) for a in [*answers, *done[1]])

        news = self._call(op)
        if news:
            log.info("IDLE: the server tells of new mail in %s", folder)
            self._baseline.pop(folder, None)
        return news


def _news(answer: Any) -> bool:
    return isinstance(answer, tuple) and len(answer) >= 2 and answer[1] in NEWS


def _number(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
