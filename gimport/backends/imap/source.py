"""The old mail server, read-only: gimport.contract.MailSource over IMAP.

Folders are opened with EXAMINE (read-only) and bodies fetched with BODY.PEEK[], so neither flags nor
contents on the server change. A dropped connection is re-opened transparently (a few tries with
backoff, gimport.backends.imap.session); if the folder's UIDVALIDITY changed meanwhile, FolderChanged is
raised so the caller can re-scan it instead of trusting stale UIDs. Only the gimport.backends.imap.source*
modules import imapclient.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import imaplib
import logging
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any, Self

import imapclient
from imapclient import imap_utf7
from imapclient.exceptions import IMAPClientError

from gimport.backends.imap.gmail import GMAIL, LABELS_ITEM, GmailLabels
from gimport.backends.imap.parse import (
    UID_IN_FETCH,
    FetchFailed,
    LiteralTooLarge,
    as_text,
    fetch_answers,
    parse_date,
    parse_flags,
    parse_folder_name,
    parse_meta,
    same_but_nul,
    uid_set,
)
from gimport.backends.imap.session import ImapSession
from gimport.calls import RetryPolicy
from gimport.config.settings import SourceSettings
from gimport.contract import FetchedMessage, Folder, MessageMeta, SourceBackend
from gimport.errors import FolderChanged, FolderGone, LoginRefused, SourceError
from gimport.i18n import _
from gimport.mail import rfc822
from gimport.mail.quota import MAX_MESSAGE_BYTES

log = logging.getLogger("gimport.imap")

__all__ = ["FetchedMessage", "FolderChanged", "FolderGone", "ImapSource", "LoginRefused", "MessageMeta"]

# UID SEARCH goes by message-sequence ranges of this many messages: imaplib refuses an answer line over
# 1,000,000 bytes, and 50,000 UIDs of up to 10 digits stay well below that, however large the folder.
SEARCH_SPAN = 50_000
# Literal bytes one FETCH of several messages may bring, at least: beyond it (sizes were under-claimed),
# the messages are fetched one at a time, each up to Gmail's limit, so memory stays bounded.
CHUNK_LITERAL_FLOOR = 16_000_000


def uid_fetch(c: imapclient.IMAPClient, uids: Sequence[int], items: str) -> dict[int, dict[bytes, Any]]:
    """UID FETCH on the connection, answers keyed by the UID each one names (parse.fetch_answers).
    A NO/BAD raises imaplib's error (IMAPClientError)."""
    typ, data = c._imap.uid("FETCH", uid_set(uids), items)
    if typ != "OK":
        raise imaplib.IMAP4.error(f"FETCH {typ}: {as_text(data[-1]) if data and data[-1] else ''}".strip())
    return fetch_answers(data, uids)


class ImapSource(ImapSession):
    """A read-only session on the source server (gimport.contract.MailSource): LIST, EXAMINE, SEARCH and
    FETCH over ImapSession's connection. Not thread-safe: one thread uses it."""

    def __init__(
        self,
        settings: SourceSettings,
        password: str,
        *,
        reconnect_tries: int = 4,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        super().__init__(settings, password, reconnect_tries=reconnect_tries, sleep=sleep)
        self._wire: dict[str, bytes] = {}  # folder name (as listed) -> its name on the wire
        self._distrust_sizes = False  # the server under-claimed sizes: fetch bodies one at a time
        self._exists = 0  # EXISTS of the open folder's EXAMINE
        self._gmail: GmailLabels | None = None  # a Gmail account read by labels (gimport.backends.imap.gmail)

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- folders ------------------------------------------------------------------------------------
    def list_folders(self) -> list[Folder]:
        """Every folder LIST shows. Whatever the server sends (invalid modified UTF-7, 8-bit delimiter or
        flags, a folder named NIL) becomes a Folder: one strange name never blocks the account. A folder the
        server lists twice is one folder (scanned once: two scans of it would race to import it twice)."""
        rows = self._call(lambda c: c.list_folders())
        folders = []
        seen: set[str] = set()
        for flags, delimiter, raw_name in rows:
            name, wire = parse_folder_name(raw_name)
            if name in seen:
                log.warning("the server listed folder %r more than once: taken once", name)
                continue
            seen.add(name)
            self._wire[name] = wire
            delim = as_text(delimiter) if delimiter is not None else None
            prefix = self._prefix
            if prefix and not (delim and prefix.endswith(delim)):
                prefix = None  # a prefix this folder's delimiter does not end: not known to apply
            folders.append(Folder(name=name, delimiter=delim, flags=frozenset(parse_flags(flags)), prefix=prefix))
        self._gmail = GmailLabels.of(folders) if self._capable(GMAIL) else None
        return self._gmail.folders if self._gmail is not None else folders

    def _wire_name(self, folder: str) -> bytes:
        wire = self._wire.get(folder)
        return wire if wire is not None else imap_utf7.encode(folder)

    def _examine(self, folder: str, expect: int | None = None) -> tuple[int, int]:
        client = self._client
        if client is None:  # _call connects first; a direct caller without a connection is a bug
            raise imaplib.IMAP4.abort("not connected")
        try:
            info = client.select_folder(self._wire_name(folder), readonly=True)
        except imaplib.IMAP4.abort:
            raise  # the connection is gone, not the folder: _call reconnects
        except IMAPClientError as exc:  # NO / BAD: the server refuses this folder
            raise FolderGone(_("{folder}: {exc}").format(folder=folder, exc=exc)) from None
        except UnicodeError:
            raise FolderGone(
                _("{folder}: its name is not 7-bit and cannot be sent back to the server").format(folder=folder)
            ) from None
        except ValueError as exc:  # IMAPClient reading a number that is none
            raise FolderGone(
                _(
                    "{folder}: the server's EXAMINE answer is not valid (a UIDVALIDITY, EXISTS or UIDNEXT that is"
                    " not a number: {detail}), so its messages cannot be told apart from one session to the next"
                ).format(folder=folder, detail=exc)
            ) from None
        try:
            uidvalidity = int(info[b"UIDVALIDITY"])
            if uidvalidity <= 0 or uidvalidity >= 1 << 63:
                raise ValueError(uidvalidity)
        except (KeyError, ValueError, TypeError):
            raise FolderGone(
                _(
                    "{folder}: the server gives it no valid UIDVALIDITY ({value!r}), so its messages cannot be"
                    " told apart from one session to the next"
                ).format(folder=folder, value=info.get(b"UIDVALIDITY"))
            ) from None
        if expect is not None and uidvalidity != expect:
            self._folder = None
            raise FolderChanged(folder)
        self._folder, self._uidvalidity, self._uidnext = folder, uidvalidity, info.get(b"UIDNEXT")
        try:
            self._exists = int(info.get(b"EXISTS", 0))
        except (TypeError, ValueError):
            self._exists = 0
        return uidvalidity, self._exists

    def examine(self, folder: str) -> tuple[int, int]:
        """Open `folder` read-only. Returns (UIDVALIDITY, message count). Raises FolderGone."""
        self._folder = None
        return self._call(lambda c: self._examine(folder))

    def search(self, since: dt.date | None = None, before: dt.date | None = None) -> list[int]:
        """UIDs in the open folder, ascending and each once, optionally by INTERNALDATE range (server-side,
        by day). Asked SEARCH_SPAN message numbers at a time, so no answer line grows past imaplib's limit."""
        criteria: list[object] = []
        if since:
            criteria += ["SINCE", since]
        if before:
            criteria += ["BEFORE", before]
        count = self._exists
        found: set[int] = set()
        first = 1
        while True:
            last = first + SEARCH_SPAN - 1
            # the last range is open ("N:*"): messages that arrived since the EXAMINE are found too
            span = f"{first}:*" if last >= count else f"{first}:{last}"
            found.update(self._call(partial(_search, criteria=[span, *criteria]), nbytes=SEARCH_SPAN * 12))
            if last >= count:
                break
            first = last + 1
        return sorted(u for u in found if isinstance(u, int) and u > 0)

    def fetch_meta(self, uids: Sequence[int], chunk: int = 2000) -> Iterator[MessageMeta]:
        """Size claim, flags and INTERNALDATE of each message (expunged ones left out)."""
        for i in range(0, len(uids), chunk):
            part = list(uids[i : i + chunk])
            answers = self._call(
                partial(uid_fetch, uids=part, items="(UID RFC822.SIZE FLAGS INTERNALDATE)"), nbytes=len(part) * 200
            )
            unanswered = set(self._still_there([u for u in part if u not in answers]))
            for uid in part:
                item = answers.get(uid)
                if item is not None:
                    yield parse_meta(uid, item)
                elif uid in unanswered:
                    yield MessageMeta(uid, 0, (), None, size_known=False)  # the body fetch will tell

    def fetch_identities(self, uids: Sequence[int], chunk: int = 1000) -> Iterator[MessageMeta]:
        """fetch_meta plus the Message-ID header, in one FETCH per chunk (PEEK: \\Seen is not set)."""
        items = "(UID RFC822.SIZE FLAGS INTERNALDATE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"
        for i in range(0, len(uids), chunk):
            part = list(uids[i : i + chunk])
            try:
                # a header field answer is small: a server sending more is misbehaving
                answers = self._call(
                    partial(uid_fetch, uids=part, items=items),
                    nbytes=len(part) * 400,
                    literal_limit=len(part) * 4000 + 1_000_000,
                )
            except LiteralTooLarge:
                yield from self.fetch_meta(part)  # no identities: their content hash decides
                continue
            unanswered = set(self._still_there([u for u in part if u not in answers]))
            for uid in part:
                item = answers.get(uid)
                if item is None:
                    if uid in unanswered:
                        yield MessageMeta(uid, 0, (), None, size_known=False)
                    continue
                block = next((v for k, v in item.items() if k.startswith(b"BODY[HEADER")), None) or b""
                yield parse_meta(uid, item, rfc822.message_id(block) if isinstance(block, bytes) else None)

    def fetch_message_ids(self, uids: Sequence[int], chunk: int = 500) -> dict[int, str | None]:
        """The Message-ID header of each message in the open folder (PEEK: \\Seen is not set); None when
        it has none. Expunged messages are left out. Fetches that one header only, never the body."""
        return {m.uid: m.message_id for m in self.fetch_identities(uids, chunk)}

    def fetch_date_headers(self, uids: Sequence[int], chunk: int = 1000) -> dict[int, bytes]:
        """The Date and Message-ID lines of each message in the open folder by UID (b"" for none): what
        `gimport plan` counts the dates a run will fix and the messages without a Message-ID from. PEEK, never
        the body; a chunk a server overfills is not counted."""
        out: dict[int, bytes] = {}
        fetch = partial(uid_fetch, items="(UID BODY.PEEK[HEADER.FIELDS (DATE MESSAGE-ID)])")
        for part in (list(uids[i : i + chunk]) for i in range(0, len(uids), chunk)):
            with contextlib.suppress(LiteralTooLarge):
                answers = self._call(partial(fetch, uids=part), nbytes=len(part) * 200, literal_limit=len(part) * 5000)
                for uid, item in answers.items():
                    block = next((v for k, v in item.items() if k.startswith(b"BODY[HEADER")), None)
                    out[uid] = block if isinstance(block, bytes) else b""
        return out

    def fetch_bodies(self, uids: Sequence[int], expected_bytes: int | None = None) -> Iterator[FetchedMessage]:
        """Bodies with BODY.PEEK[] (never sets \\Seen), in the order asked; expunged ones are left out.

        Lazily: when the messages go one at a time (see below), the next is fetched only when the caller asks
        for it, so what is in memory is what the caller holds plus one message. A message the server will not
        give costs that message only: it comes back with `error` (NO for it, the connection lost each time it
        is asked for, past the deadline, an answer without its body) and `permanent` when it is over Gmail's
        limit whatever its size claimed. When a FETCH of several fails, they are asked one by one (and, when
        the sizes were under-claimed, every later FETCH of this session too). Raises FolderChanged, FolderGone,
        SourceError (the server is gone), Interrupted."""
        uids = list(uids)
        if len(uids) > 1 and self._distrust_sizes:
            for uid in uids:
                yield from self.fetch_bodies([uid])
            return
        if len(uids) == 1:
            limit = MAX_MESSAGE_BYTES + 1  # one message: anything Gmail could take
        else:
            limit = max(CHUNK_LITERAL_FLOOR, 2 * (expected_bytes or 0))
        try:
            out = self._fetch_chunk(uids, limit, expected_bytes or 0)
        except FetchFailed as exc:
            if len(uids) > 1:
                log.info("FETCH of %d messages failed (%s): one at a time", len(uids), exc.reason)
                if exc.too_large is not None:
                    self._distrust_sizes = True  # the size claims do not hold: never trust them for a batch
                for uid in uids:
                    yield from self.fetch_bodies([uid])
                return
            uid = uids[0]
            if exc.too_large is not None:
                reason = _("too large for Gmail: the server sends {size:,} bytes (limit {limit:,})").format(
                    size=exc.too_large, limit=MAX_MESSAGE_BYTES
                )
                yield FetchedMessage(uid, b"", (), None, error=reason, permanent=True)
            else:
                yield FetchedMessage(uid, b"", (), None, error=exc.reason)
            return
        suspects = [m.uid for m in out if m.error is None and b"\x80" in m.raw]
        if suspects and self._capable(b"BINARY"):
            exact = self._fetch_binary(suspects)
            for i, m in enumerate(out):
                b = exact.get(m.uid)
                # BODY[] cannot carry NUL: servers such as Dovecot send 0x80 instead. BINARY[] (RFC 3516)
                # can; take it only when it is the same message with NULs restored, nothing else decoded.
                if b is not None and b != m.raw and same_but_nul(b, m.raw):
                    out[i] = dataclasses.replace(m, raw=b)
        while out:
            yield out.pop(0)  # handed over: not kept here

    def _fetch_chunk(self, uids: list[int], limit: int, expected: int) -> list[FetchedMessage]:
        gmail, folder = self._gmail, self._folder or ""

        def op(c: imapclient.IMAPClient) -> dict[int, dict[bytes, Any]]:
            try:
                return uid_fetch(c, uids, f"(UID BODY.PEEK[] FLAGS INTERNALDATE{' ' + LABELS_ITEM if gmail else ''})")
            except imaplib.IMAP4.abort:
                raise
            except IMAPClientError as exc:
                if self._deadline_passed:
                    raise imaplib.IMAP4.abort(str(exc)) from None
                # a NO for the FETCH: it costs the messages it names, not the folder
                raise FetchFailed(_("the server refused to send it: {detail}").format(detail=exc)) from None

        try:
            # one reconnect for a FETCH of bodies: the same failure twice is the message's, not the connection's
            answers = self._call(op, nbytes=max(expected, 0), literal_limit=limit, policy=RetryPolicy(attempts=2))
        except LiteralTooLarge as exc:
            raise FetchFailed(
                _("the server announced {size:,} bytes").format(size=exc.size), too_large=exc.size
            ) from None
        except SourceError as exc:
            if self._stop.is_set():
                raise
            self._check_alive()  # the server itself gone: the account, not this message
            raise FetchFailed(
                _("the server dropped the connection each time it was asked for it ({detail})").format(
                    detail=exc.detail
                )
            ) from None
        out = []
        missing = []
        for uid in uids:
            item = answers.get(uid)
            if item is None:
                missing.append(uid)
                continue
            body = item.get(b"BODY[]")
            if not isinstance(body, bytes):
                # not "expunged": the server answered for the message, without it: the message is there, its data is not
                out.append(FetchedMessage(uid, b"", (), None, error=_("the server's FETCH answer has no body for it")))
                continue
            flags, date = parse_flags(item.get(b"FLAGS", ())), parse_date(item.get(b"INTERNALDATE"))
            also_in = gmail.also_in(item.get(LABELS_ITEM.encode()), folder) if gmail is not None else ()
            out.append(FetchedMessage(uid, body, flags, date, also_in=also_in))
        if missing:
            # no answer that names it: expunged, or an answer without UID (never trusted by sequence number)
            still = set(self._still_there(missing))
            for uid in missing:
                if uid in still:
                    out.append(
                        FetchedMessage(
                            uid, b"", (), None, error=_("the server did not send it (no FETCH answer naming its UID)")
                        )
                    )
            order = {uid: i for i, uid in enumerate(uids)}
            out.sort(key=lambda m: order[m.uid])
        return out

    def _still_there(self, uids: list[int]) -> list[int]:
        """Of `uids` that a FETCH did not answer for, those the server still has (the others were expunged).
        An answer without UID is never matched by sequence number: such messages are "still there"."""
        if not uids:
            return []
        found = self._call(lambda c: c.search(["UID", uid_set(uids)]), nbytes=len(uids) * 12)
        return [u for u in uids if u in set(found)]

    def _check_alive(self) -> None:
        """Reconnect (and re-examine) now: raises SourceError when the server is gone for good."""
        self._call(lambda c: c.noop())

    def _capable(self, name: bytes) -> bool:
        return name in self._call(lambda c: c.capabilities())

    def _fetch_binary(self, uids: Sequence[int]) -> dict[int, bytes]:
        """BINARY.PEEK[] through imaplib (IMAPClient does not parse literal8 `~{n}`)."""

        def op(c: imapclient.IMAPClient) -> dict[int, bytes]:
            typ, data = c._imap.uid("FETCH", ",".join(map(str, uids)), "(BINARY.PEEK[])")
            found: dict[int, bytes] = {}
            if typ != "OK":
                return found
            for part in data:
                if isinstance(part, tuple) and len(part) == 2:
                    m = UID_IN_FETCH.search(part[0])
                    if m and part[0].rstrip().endswith(b"}"):
                        found[int(m.group(1))] = part[1]
            return found

        try:
            return self._call(op)
        except LiteralTooLarge:
            return {}  # BODY[] stands


def _search(c: imapclient.IMAPClient, criteria: list[object]) -> list[int]:
    found: list[int] = c.search(criteria)
    return found


# mypy proves here that ImapSource offers every part of the contract (as rclone's `var _ fs.Fs = &Fs{}`)
_fits_the_contract: type[SourceBackend] = ImapSource
