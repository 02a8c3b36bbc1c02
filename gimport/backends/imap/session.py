"""One IMAP session on the old mail server: log in, and run each operation under a deadline.

ImapSession owns the connection: TLS and login (with what to fix when they fail), the personal namespace's
prefix, a guard that refuses a literal larger than the operation allows before reading a byte of it, and
`_call`, which runs one operation through the one call path (gimport.calls). Each attempt has a deadline;
past it, or when the connection drops, the session reconnects and re-opens the folder that was open (with
`_examine`, which gimport.backends.imap.source.ImapSource provides); `interrupt` ends it from another thread.
It never lists, searches or fetches by itself: that is ImapSource's, built on this class. Only the
gimport.backends.imap.source* modules import imapclient.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from typing import TypeVar

import imapclient
from imapclient.exceptions import IMAPClientError, LoginError

from gimport.backends import tls
from gimport.backends.imap.faults import TRANSIENT as _TRANSIENT
from gimport.backends.imap.faults import connect_fault
from gimport.backends.imap.oauth import sign_in_again, source_token
from gimport.backends.imap.parse import LiteralTooLarge, parse_folder_name
from gimport.backends.imap.watchdog import WATCHDOG
from gimport.calls import Caller, RetryPolicy
from gimport.config.settings import SourceSettings
from gimport.errors import FolderGone, GimportError, Interrupted, RetryableError, SourceError
from gimport.i18n import _
from gimport.mail.quota import MAX_MESSAGE_BYTES

log = logging.getLogger("gimport.imap")
T = TypeVar("T")


# The slowest a server may send before an operation passes its deadline: [source] timeout bounds each read,
# this bounds the whole, so a server trickling a byte at a time cannot hold a run forever.
MIN_RATE = 50_000  # bytes per second
DEADLINE_READS = 4  # an operation may take this many [source] timeouts, plus its bytes at MIN_RATE


class ImapSession:
    """A logged-in connection to the source server whose every operation has a deadline. Not thread-safe:
    one thread uses it (`interrupt` excepted)."""

    def __init__(
        self,
        settings: SourceSettings,
        password: str,
        *,
        reconnect_tries: int = 4,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        """`sleep`: the wait between tries (default: one a stop request ends)."""
        self.settings = settings
        self._password = password
        # [source] auth = "xoauth2" | "oauthbearer": the token file, refreshed as it expires; else None
        self._token = source_token(settings)
        # reconnecting goes through the one call path, without a quota
        self._stop = threading.Event()
        self._caller = Caller(
            None, RetryPolicy(attempts=reconnect_tries + 1, give_up_after=None), sleep=sleep, stop=self._stop
        )
        self._client: imapclient.IMAPClient | None = None
        self._folder: str | None = None  # the folder open on this connection: re-opened after a reconnect
        self._uidvalidity: int | None = None
        self._prefix: str | None = None  # the personal namespace's prefix (Cyrus: "INBOX."); None: not told
        self._literal_limit: int | None = None  # bytes of literals the operation in progress may still read
        self._deadline_passed = False
        self._connecting: imapclient.IMAPClient | None = None  # during connect(): for the deadline and interrupt
        self._connected_once = False  # a server that answered once and drops now is having trouble: retried
        self._phase = "connect"  # where the try at connecting is (_PHASES)
        self._hint: str | None = None  # what to fix, when the first connection keeps failing
        self.reconnects = 0

    def interrupt(self) -> None:
        """From another thread: end the operation in progress now (its socket is shut) and start no other
        (Interrupted). Used by a stop request (SIGTERM, Ctrl-C) while a server trickles an answer."""
        self._stop.set()
        self._shut(self._client or self._connecting)

    @staticmethod
    def _shut(client: imapclient.IMAPClient | None) -> None:
        sock = getattr(getattr(client, "_imap", None), "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    @property
    def account(self) -> str:
        return f"{self.settings.user}@{self.settings.host}"

    # -- connection ---------------------------------------------------------------------------------
    def _ssl_context(self) -> ssl.SSLContext:
        """The system's CAs and [source] ca_file's; one context per process (gimport.backends.tls)."""
        ca_file = str(self.settings.ca_file) if self.settings.ca_file else None
        try:
            return tls.system_and(ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise SourceError(
                _("[source] ca_file {ca_file}: cannot load it ({exc})").format(ca_file=self.settings.ca_file, exc=exc)
            ) from None

    def connect(self) -> None:
        """Open and log in. A connection dropped or silent on the way (before the greeting, during TLS, the
        login, or re-opening the folder after a reconnect) is tried again with backoff through the one call
        path, like any transient fault. Raises LoginRefused when the server answers the login with NO,
        SourceError with what to fix (or naming what kept failing), Interrupted on a stop."""
        s = self.settings
        if any(c in text for text in (s.login or s.user, self._password) for c in "\r\n\0"):
            # imaplib sends them as they are: a line break would end LOGIN and start a command of the server's choosing
            raise SourceError(
                _("the IMAP user name or password holds a line break or NUL"),
                hint=_("nothing was sent; write it on one line"),
            )
        self._hint = None
        try:
            self._caller.call(self._open_once, classify=self._connect_fault)
        except RetryableError as err:
            where = f"{s.host}:{s.port}"
            if self._connected_once:
                raise SourceError(
                    _("lost the connection to the IMAP server {where} and could not get it back: {err}").format(
                        where=where, err=err
                    ),
                    hint="",
                ) from None
            raise SourceError(
                _("cannot connect to the IMAP server {where} ({security}): {err}").format(
                    where=where, security=s.security, err=err
                ),
                hint=self._hint or "",
            ) from None

    def _open_once(self) -> None:
        """One try at a logged-in connection (with the folder that was open re-opened), under a deadline."""
        self._deadline_passed = False
        self._phase = "connect"
        timer = WATCHDOG.arm(self._deadline(), self._past_deadline)
        try:
            client = self._open()
            self._phase = "login"
            if client._imap.state == "AUTH":
                # a PREAUTH greeting: the server has authenticated the connection already
                log.warning("the IMAP server %s greeted PREAUTH: already logged in, no LOGIN sent", self.settings.host)
            else:
                self._login(client)
            if not self._connected_once:  # asked once: the names must not change meaning at a reconnect
                self._phase = "namespace"
                self._prefix = self._personal_prefix(client)
            self._client, self._connecting = client, None
            if self._folder is not None:
                self._phase = "folder"
                self._examine(self._folder, expect=self._uidvalidity)
            self._connected_once = True
        finally:
            WATCHDOG.cancel(timer)

    def _open(self) -> imapclient.IMAPClient:
        """The connection, TLS and the greeting (not logged in yet)."""
        s = self.settings
        if s.security == "ssl":
            client = imapclient.IMAPClient(
                s.host, port=s.port, ssl=True, ssl_context=self._ssl_context(), timeout=s.timeout
            )
        else:
            client = imapclient.IMAPClient(s.host, port=s.port, ssl=False, timeout=s.timeout)
        # IMAPClient turns imaplib's debug level up to route it to a logger; imaplib then formats a repr()
        # of every response, message bodies included, whatever the log level: about 2x each message in
        # memory and CPU. gimport does not log protocol traffic (it could carry mail contents).
        client._imap.debug = 0
        self._connecting = client
        if s.security == "starttls":
            self._phase = "tls"
            client.starttls(self._ssl_context())
        self._guard_reads(client)
        client.folder_encode = False  # names are decoded here, so that an invalid one cannot stop the account
        return client

    def _connect_fault(self, exc: BaseException) -> BaseException:
        """Classify what stopped one try at connecting: RetryableError for a connection that dropped or
        went silent (tried again), else the error to report (gimport.backends.imap.faults)."""
        if isinstance(exc, GimportError) and self._phase == "folder" and not self._stop.is_set():
            return exc  # FolderGone, FolderChanged: the folder's, on a connection that works
        self._abandon()
        if self._stop.is_set():
            return Interrupted(_("stopped on request"))
        if isinstance(exc, GimportError):  # SourceError: already says what to fix
            return exc
        err, self._hint = connect_fault(
            self.settings,
            exc,
            self._phase,
            first=not self._connected_once,
            late=self._deadline_passed,
            deadline=self._deadline(),
            oauth=self._token is not None,
        )
        return err

    def _abandon(self) -> None:
        """Close the connection a failed try left half open."""
        client, self._connecting = self._connecting, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.shutdown()
        self._drop()

    def _login(self, client: imapclient.IMAPClient) -> None:
        """LOGIN with the password, or AUTHENTICATE with the OAuth token: a token the server refuses is
        refreshed and tried once more on the same connection. Raises LoginError when refused."""
        if self._token is None:
            client.login(self.settings.login or self.settings.user, self._password)
            return
        token = self._token.access_token()
        try:
            self._authenticate(client, token)
        except LoginError:
            if not self._token.refused(token):
                raise
            log.info("the IMAP server %s refused the OAuth token: refreshed, trying again", self.settings.host)
            self._authenticate(client, self._token.access_token())

    def _authenticate(self, client: imapclient.IMAPClient, token: str) -> None:
        """SASL XOAUTH2 or OAUTHBEARER (RFC 7628) with `token`. On failure the server sends its error as a
        challenge, answered with the empty response (XOAUTH2) or ^A (OAUTHBEARER), and then says NO."""
        user = self.settings.user
        if any(c in token for c in "\r\n\0\1"):
            raise SourceError(_("the OAuth token in [source] token_file is malformed"), hint=sign_in_again())
        if self.settings.auth == "oauthbearer":
            mech, abort = "OAUTHBEARER", "\1"
            authzid = user.replace("=", "=3D").replace(",", "=2C")
            first = f"n,a={authzid},\1auth=Bearer {token}\1\1"
        else:
            mech, abort, first = "XOAUTH2", "", f"user={user}\1auth=Bearer {token}\1\1"
        answers = iter((first,))

        def respond(challenge: bytes) -> str:
            return next(answers, abort)

        try:
            client._imap.authenticate(mech, respond)
        except imaplib.IMAP4.abort:
            raise
        except IMAPClientError as exc:
            raise LoginError(str(exc)) from None

    def _personal_prefix(self, client: imapclient.IMAPClient) -> str | None:
        """The personal namespace's prefix (RFC 2342): "" when there is none, None when the server does not say."""
        try:
            if not client.has_capability("NAMESPACE"):
                return None
            personal = client.namespace().personal
        except _TRANSIENT:
            raise  # the connection dropped: tried again, not taken for "no namespace"
        except IMAPClientError as exc:
            log.info("NAMESPACE not usable (%s): folder names kept whole", exc)
            return None
        if not personal:
            return ""
        return parse_folder_name(personal[0][0])[0]

    def _guard_reads(self, client: imapclient.IMAPClient) -> None:
        """Refuse a literal beyond what the operation allows before reading a byte of it: a server announcing
        10^15 bytes, or under-claiming sizes, cannot make gimport allocate what it says."""
        imap = client._imap
        read: Callable[[int], bytes] = imap.read  # imaplib's read (imapclient gives it no type)

        def guarded(size: int) -> bytes:
            limit = self._literal_limit
            if limit is not None:
                if size > limit:
                    raise LiteralTooLarge(size, limit)
                self._literal_limit = limit - size
            return read(size)

        imap.read = guarded

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.logout()
        except Exception:  # noqa: BLE001 - closing a broken connection must not fail the run
            with contextlib.suppress(Exception):
                client.shutdown()

    # -- one operation, under a deadline ------------------------------------------------------------
    def _deadline(self, nbytes: int = 0) -> float:
        return DEADLINE_READS * float(self.settings.timeout) + nbytes / MIN_RATE

    def _call(
        self,
        op: Callable[[imapclient.IMAPClient], T],
        *,
        nbytes: int = 0,
        literal_limit: int | None = MAX_MESSAGE_BYTES,
        policy: RetryPolicy | None = None,
    ) -> T:
        """Run `op` on the connection, reconnecting (and re-examining the folder) if it drops. Each attempt has a
        deadline (DEADLINE_READS timeouts + `nbytes` at MIN_RATE): past it the socket is shut, which counts as a
        lost connection. A literal over `literal_limit` bytes (over the whole attempt) is not read: the connection
        is dropped and LiteralTooLarge raised."""

        def attempt() -> T:
            if self._client is None:
                self.connect()  # tried again on its own (each try under its own deadline): not this operation's fault
            self._deadline_passed = False
            # the deadline covers the operation (a reconnect is tried on its own, under its own deadline)
            timer = WATCHDOG.arm(self._deadline(nbytes), self._past_deadline)
            try:
                self._literal_limit = literal_limit
                return op(self._client)
            finally:
                WATCHDOG.cancel(timer)
                self._literal_limit = None

        def classify(exc: BaseException) -> BaseException:
            if self._stop.is_set():
                self._drop()
                return Interrupted(_("stopped on request"))
            if isinstance(exc, LiteralTooLarge):
                self._drop()  # the rest of the literal is still on the wire
                return exc
            if isinstance(exc, _TRANSIENT) or (self._deadline_passed and isinstance(exc, IMAPClientError)):
                late = self._deadline_passed
                log.warning("IMAP connection lost (%s); reconnecting", "past the deadline" if late else exc)
                self._drop()
                if late:
                    detail = _("no answer within {n:.0f} s").format(n=self._deadline(nbytes))
                else:
                    detail = _("the server dropped the connection: {exc}").format(exc=exc)
                return RetryableError(detail, no_answer=True)
            if isinstance(exc, IMAPClientError):
                if self._folder is None:
                    return SourceError(_("the IMAP server refused a command: {exc}").format(exc=exc))
                # NO/BAD inside a folder (e.g. deleted meanwhile): the folder, not the run, is lost
                return FolderGone(_("{folder}: {exc}").format(folder=self._folder, exc=exc))
            return exc

        def count(_: RetryableError) -> None:
            self.reconnects += 1

        try:
            return self._caller.call(attempt, classify=classify, on_retry=count, policy=policy)
        except RetryableError as err:
            # connected again each time (connect() says when that fails), and lost again during the operation
            raise SourceError(
                _("the IMAP server {where} failed the same operation at each of {n} tries: {err}").format(
                    where=f"{self.settings.host}:{self.settings.port}",
                    n=(policy or self._caller.policy).attempts,
                    err=err,
                )
            ) from None

    def _past_deadline(self) -> None:
        self._deadline_passed = True
        log.warning("an IMAP operation passed its deadline: closing the connection")
        self._shut(self._client or self._connecting)

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):  # dropping a broken connection must not fail the run
                client.shutdown()

    def _examine(self, folder: str, expect: int | None = None) -> tuple[int, int]:
        """Open `folder` read-only on the connection: (UIDVALIDITY, EXISTS). The source's EXAMINE; _call
        re-opens the open folder with it after a reconnect. Raises FolderChanged when `expect` is not it."""
        raise NotImplementedError
