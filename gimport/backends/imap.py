"""The old mail server, read-only. The only module that imports imapclient.

Folders are opened with EXAMINE (read-only) and bodies fetched with BODY.PEEK[], so neither flags nor
contents on the server change. A dropped connection is re-opened transparently (a few tries with
backoff); if the folder's UIDVALIDITY changed meanwhile, FolderChanged is raised so the caller can
re-scan it instead of trusting stale UIDs.
"""

from __future__ import annotations

import datetime as dt
import imaplib
import logging
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import imapclient
from imapclient.exceptions import IMAPClientError, LoginError

from gimport import rfc822
from gimport.calls import Caller, RetryPolicy
from gimport.contract import FetchedMessage, Folder, MessageMeta
from gimport.errors import FolderChanged, FolderGone, LoginRefused, RetryableError, SourceError
from gimport.i18n import _
from gimport.settings import SourceSettings

log = logging.getLogger("gimport.imap")

_UID_IN_FETCH = re.compile(rb"\bUID (\d+)")
_TRANSIENT = (OSError, imaplib.IMAP4.abort, ssl.SSLError, EOFError)


__all__ = ["ImapSource", "FolderGone", "FolderChanged", "LoginRefused", "FetchedMessage", "MessageMeta"]


def _same_but_nul(exact: bytes, body: bytes, step: int = 1 << 20) -> bool:
    """`exact` is `body` with some 0x80 bytes being NULs in truth (compared a MiB at a time, so a large
    message is not copied whole)."""
    if len(exact) != len(body):
        return False
    view_e, view_b = memoryview(exact), memoryview(body)
    for i in range(0, len(exact), step):
        if bytes(view_e[i : i + step]).replace(b"\x00", b"\x80") != view_b[i : i + step]:
            return False
    return True


def _flags(value: Sequence[bytes | str]) -> tuple[str, ...]:
    return tuple(f.decode() if isinstance(f, bytes) else f for f in value)


def _date(value: object) -> dt.datetime | None:
    if not isinstance(value, dt.datetime):
        return None
    return value if value.tzinfo else value.astimezone()  # IMAPClient gives naive local time


class ImapSource:
    """A read-only session on the source server. Not thread-safe: one thread uses it."""

    def __init__(
        self,
        settings: SourceSettings,
        password: str,
        *,
        reconnect_tries: int = 4,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self.settings = settings
        self._password = password
        # reconnecting goes through the one call path, without a quota
        self._caller = Caller(None, RetryPolicy(attempts=reconnect_tries + 1, give_up_after=None), sleep=sleep)
        self._client: imapclient.IMAPClient | None = None
        self._folder: str | None = None
        self._uidvalidity: int | None = None
        self.reconnects = 0

    @property
    def account(self) -> str:
        return f"{self.settings.user}@{self.settings.host}"

    # -- connection ---------------------------------------------------------------------------------
    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        if self.settings.ca_file:
            try:
                ctx.load_verify_locations(cafile=str(self.settings.ca_file))
            except (OSError, ssl.SSLError) as exc:
                raise SourceError(
                    _("[source] ca_file {ca_file}: cannot load it ({exc})").format(
                        ca_file=self.settings.ca_file, exc=exc
                    )
                ) from None
        return ctx

    def connect(self) -> None:
        """Open and log in. Raises SourceError with what to fix."""
        s = self.settings
        where = f"{s.host}:{s.port}"
        try:
            if s.security == "ssl":
                client = imapclient.IMAPClient(
                    s.host, port=s.port, ssl=True, ssl_context=self._ssl_context(), timeout=s.timeout
                )
            else:
                client = imapclient.IMAPClient(s.host, port=s.port, ssl=False, timeout=s.timeout)
                if s.security == "starttls":
                    client.starttls(self._ssl_context())
        except ssl.SSLCertVerificationError as exc:
            raise SourceError(
                _(
                    "cannot verify the certificate of {where} ({verify_message}): set [source] ca_file to the"
                    " server's CA certificate"
                ).format(where=where, verify_message=exc.verify_message)
            ) from None
        except (socket.gaierror, ConnectionRefusedError, TimeoutError, OSError, IMAPClientError) as exc:
            raise SourceError(
                _("cannot connect to the IMAP server {where} ({security}): {exc}").format(
                    where=where, security=s.security, exc=exc
                ),
                hint=_security_hint(s, exc),
            ) from None
        # IMAPClient turns imaplib's debug level up to route it to a logger; imaplib then formats a repr()
        # of every response, message bodies included, whatever the log level: about 2x each message in
        # memory and CPU. gimport does not log protocol traffic (it could carry mail contents).
        client._imap.debug = 0
        try:
            client.login(s.login or s.user, self._password)
        except LoginError:
            client.shutdown()
            if s.login and s.login != s.user:
                raise LoginRefused(
                    _(
                        "the IMAP server {where} refused the login {login!r} for user {user!r}: check the user"
                        " name and the master user's login and password"
                    ).format(where=where, login=s.login, user=s.user)
                ) from None
            raise LoginRefused(
                _(
                    "the IMAP server {where} refused the login for user {user!r}: check [source] user and the password"
                ).format(where=where, user=s.user)
            ) from None
        except _TRANSIENT as exc:
            raise SourceError(
                _("the IMAP server {where} dropped the connection during login: {exc}").format(where=where, exc=exc)
            ) from None
        self._client = client

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.logout()
        except Exception:  # noqa: BLE001 - closing a broken connection must not fail the run
            try:
                client.shutdown()
            except Exception:  # noqa: BLE001
                pass

    def __enter__(self) -> ImapSource:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, op: Callable[[Any], Any]) -> Any:
        """Run `op` on the connection, reconnecting (and re-examining the folder) if it drops."""

        def attempt() -> Any:
            if self._client is None:
                self.connect()
                if self._folder is not None:
                    self._examine(self._folder, expect=self._uidvalidity)
            return op(self._client)

        def classify(exc: BaseException) -> BaseException:
            if isinstance(exc, _TRANSIENT):
                log.warning("IMAP connection lost (%s); reconnecting", exc)
                self._drop()
                return RetryableError(f"{exc}", no_answer=True)
            if isinstance(exc, IMAPClientError):
                if self._folder is None:
                    return SourceError(_("the IMAP server refused a command: {exc}").format(exc=exc))
                # NO/BAD inside a folder (e.g. deleted meanwhile): the folder, not the run, is lost
                return FolderGone(_("{folder}: {exc}").format(folder=self._folder, exc=exc))
            return exc

        def count(_: RetryableError) -> None:
            self.reconnects += 1

        try:
            return self._caller.call(attempt, classify=classify, on_retry=count)
        except RetryableError as err:
            raise SourceError(
                _("lost the connection to the IMAP server and could not get it back: {err}").format(err=err)
            ) from None

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.shutdown()
            except Exception:  # noqa: BLE001
                pass

    # -- folders ------------------------------------------------------------------------------------
    def list_folders(self) -> list[Folder]:
        rows = self._call(lambda c: c.list_folders())
        folders = []
        for flags, delimiter, name in rows:
            delim = delimiter.decode() if isinstance(delimiter, bytes) else delimiter
            folders.append(Folder(name=name, delimiter=delim, flags=frozenset(_flags(flags))))
        return folders

    def _examine(self, folder: str, expect: int | None = None) -> tuple[int, int]:
        client = self._client
        if client is None:  # _call connects first; a direct caller without a connection is a bug
            raise imaplib.IMAP4.abort("not connected")
        try:
            info = client.select_folder(folder, readonly=True)
        except imaplib.IMAP4.abort:
            raise  # the connection is gone, not the folder: _call reconnects
        except IMAPClientError as exc:  # NO / BAD: the server refuses this folder
            raise FolderGone(_("{folder}: {exc}").format(folder=folder, exc=exc)) from None
        uidvalidity = int(info[b"UIDVALIDITY"])
        if expect is not None and uidvalidity != expect:
            self._folder = None
            raise FolderChanged(folder)
        self._folder, self._uidvalidity = folder, uidvalidity
        return uidvalidity, int(info.get(b"EXISTS", 0))

    def examine(self, folder: str) -> tuple[int, int]:
        """Open `folder` read-only. Returns (UIDVALIDITY, message count). Raises FolderGone."""
        self._folder = None
        return self._call(lambda c: self._examine(folder))

    def search(self, since: dt.date | None = None, before: dt.date | None = None) -> list[int]:
        """UIDs in the open folder, optionally by INTERNALDATE range (server-side, by day)."""
        criteria: list[object] = []
        if since:
            criteria += ["SINCE", since]
        if before:
            criteria += ["BEFORE", before]
        return sorted(self._call(lambda c: c.search(criteria or ["ALL"])))

    def fetch_meta(self, uids: Sequence[int], chunk: int = 2000) -> Iterator[MessageMeta]:
        for i in range(0, len(uids), chunk):
            part = list(uids[i : i + chunk])
            data = self._call(_fetching(part, ["RFC822.SIZE", "FLAGS", "INTERNALDATE"]))
            for uid in part:
                item = data.get(uid)
                if item is None:
                    continue  # expunged since the search
                yield MessageMeta(uid, int(item[b"RFC822.SIZE"]), _flags(item[b"FLAGS"]), _date(item[b"INTERNALDATE"]))

    def fetch_message_ids(self, uids: Sequence[int], chunk: int = 500) -> dict[int, str | None]:
        """The Message-ID header of each message in the open folder (PEEK: \\Seen is not set); None when
        it has none. Expunged messages are left out. Fetches that one header only, never the body."""
        out: dict[int, str | None] = {}
        for i in range(0, len(uids), chunk):
            part = list(uids[i : i + chunk])
            data = self._call(_fetching(part, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]))
            for uid in part:
                item = data.get(uid)
                if item is None:
                    continue
                block = next((v for k, v in item.items() if k.startswith(b"BODY[HEADER")), None) or b""
                out[uid] = rfc822.message_id(block)
        return out

    def fetch_bodies(self, uids: Sequence[int]) -> list[FetchedMessage]:
        """Bodies with BODY.PEEK[] (never sets \\Seen), in the order asked; expunged ones are left out."""
        data = self._call(lambda c: c.fetch(list(uids), ["BODY.PEEK[]", "FLAGS", "INTERNALDATE"]))
        out = []
        for uid in uids:
            item = data.get(uid)
            if item is None or b"BODY[]" not in item:
                continue
            raw = item[b"BODY[]"] or b""
            out.append(FetchedMessage(uid, raw, _flags(item[b"FLAGS"]), _date(item[b"INTERNALDATE"])))
        suspects = [m.uid for m in out if b"\x80" in m.raw]
        if suspects and self._has_binary():
            exact = self._fetch_binary(suspects)
            for i, m in enumerate(out):
                b = exact.get(m.uid)
                # BODY[] cannot carry NUL: servers such as Dovecot send 0x80 instead. BINARY[] (RFC 3516)
                # can; take it only when it is the same message with NULs restored, nothing else decoded.
                if b is not None and b != m.raw and _same_but_nul(b, m.raw):
                    out[i] = FetchedMessage(m.uid, b, m.flags, m.internaldate)
        return out

    def _has_binary(self) -> bool:
        caps = self._call(lambda c: c.capabilities())
        return b"BINARY" in caps

    def _fetch_binary(self, uids: Sequence[int]) -> dict[int, bytes]:
        """BINARY.PEEK[] through imaplib (IMAPClient does not parse literal8 `~{n}`)."""

        def op(c: imapclient.IMAPClient) -> dict[int, bytes]:
            typ, data = c._imap.uid("FETCH", ",".join(map(str, uids)), "(BINARY.PEEK[])")
            found: dict[int, bytes] = {}
            if typ != "OK":
                return found
            for part in data:
                if isinstance(part, tuple) and len(part) == 2:
                    m = _UID_IN_FETCH.search(part[0])
                    if m and part[0].rstrip().endswith(b"}"):
                        found[int(m.group(1))] = part[1]
            return found

        return self._call(op)


def _fetching(uids: list[int], items: list[str]) -> Callable[[Any], Any]:
    """The FETCH of `items` for `uids`, as an operation for ImapSource._call (bound now, not in a loop)."""
    return lambda client: client.fetch(uids, items)


def _security_hint(s: SourceSettings, exc: BaseException) -> str | None:
    """What to try when TLS and plain IMAP are mixed up: TLS spoken to a plain port fails the handshake
    (WRONG_VERSION_NUMBER), plain IMAP to a TLS port waits for a greeting that never comes."""
    if s.security == "ssl" and isinstance(exc, ssl.SSLError):
        return _(
            "port {port} does not speak TLS from the start: if it is the plain IMAP port (143), set [source]"
            ' security = "starttls"; for TLS use port 993'
        ).format(port=s.port)
    if s.security != "ssl" and isinstance(exc, (TimeoutError, socket.timeout, ConnectionResetError, IMAPClientError)):
        return _('no IMAP greeting on port {port}: if it is a TLS port (993), set [source] security = "ssl"').format(
            port=s.port
        )
    return None
