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
import time
from collections.abc import Callable
from typing import TypeVar

import imapclient
from imapclient.exceptions import IMAPClientError, LoginError

from gimport.backends.imap.oauth import sign_in_again, source_token
from gimport.backends.imap.parse import LiteralTooLarge, cert_hint, parse_folder_name, security_hint
from gimport.backends.imap.watchdog import WATCHDOG
from gimport.calls import Caller, RetryPolicy
from gimport.config.settings import SourceSettings
from gimport.errors import FolderGone, Interrupted, LoginRefused, RetryableError, SourceError
from gimport.i18n import _
from gimport.mail.quota import MAX_MESSAGE_BYTES

log = logging.getLogger("gimport.imap")
T = TypeVar("T")

_TRANSIENT = (OSError, imaplib.IMAP4.abort, ssl.SSLError, EOFError)

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
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
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
        if any(c in text for text in (s.login or s.user, self._password) for c in "\r\n\0"):
            # imaplib sends them as they are: a line break would end LOGIN and start a command of the server's choosing
            raise SourceError(
                _("the IMAP user name or password holds a line break or NUL"),
                hint=_("nothing was sent; write it on one line"),
            )
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
                _("cannot verify the certificate of {where} ({verify_message})").format(
                    where=where, verify_message=exc.verify_message
                ),
                hint=cert_hint(exc),
            ) from None
        except (socket.gaierror, ConnectionRefusedError, TimeoutError, OSError, IMAPClientError) as exc:
            raise SourceError(
                _("cannot connect to the IMAP server {where} ({security}): {exc}").format(
                    where=where, security=s.security, exc=exc
                ),
                hint=security_hint(s, exc),
            ) from None
        # IMAPClient turns imaplib's debug level up to route it to a logger; imaplib then formats a repr()
        # of every response, message bodies included, whatever the log level: about 2x each message in
        # memory and CPU. gimport does not log protocol traffic (it could carry mail contents).
        client._imap.debug = 0
        self._connecting = client
        self._guard_reads(client)
        client.folder_encode = False  # names are decoded here, so that an invalid one cannot stop the account
        try:
            if client._imap.state == "AUTH":
                # a PREAUTH greeting: the server has authenticated the connection already
                log.warning("the IMAP server %s greeted PREAUTH: already logged in, no LOGIN sent", where)
            else:
                self._login(client)
        except LoginError:
            client.shutdown()
            raise self._refused(where) from None
        except _TRANSIENT as exc:
            raise SourceError(
                _("the IMAP server {where} dropped the connection during login: {exc}").format(where=where, exc=exc)
            ) from None
        except IMAPClientError as exc:
            client.shutdown()
            raise SourceError(
                _("the IMAP server {where} refused to go on after the greeting: {detail}").format(
                    where=where, detail=exc
                )
            ) from None
        self._client = client
        self._connecting = None
        self._prefix = self._personal_prefix(client)

    def _refused(self, where: str) -> LoginRefused:
        """What to fix when the server answered the login with NO."""
        s = self.settings
        if self._token is not None:
            return LoginRefused(
                _(
                    "the IMAP server {where} refused the OAuth token for user {user!r} even after a refresh:"
                    " check that [source] user is the account that signed in, and that IMAP is allowed for it"
                ).format(where=where, user=s.user)
            )
        if s.login and s.login != s.user:
            return LoginRefused(
                _(
                    "the IMAP server {where} refused the login {login!r} for user {user!r}: check the user"
                    " name and the master user's login and password"
                ).format(where=where, login=s.login, user=s.user)
            )
        return LoginRefused(
            _(
                "the IMAP server {where} refused the login for user {user!r}: check [source] user and the password"
            ).format(where=where, user=s.user)
        )

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
        except (IMAPClientError, *_TRANSIENT) as exc:
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
            self._deadline_passed = False
            # the deadline covers a reconnect (greeting, login, EXAMINE) as well as the operation
            timer = WATCHDOG.arm(self._deadline(nbytes), self._past_deadline)
            try:
                if self._client is None:
                    self.connect()
                    if self._folder is not None:
                        self._examine(self._folder, expect=self._uidvalidity)
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
                detail = _("no answer within {n:.0f} s").format(n=self._deadline(nbytes)) if late else f"{exc}"
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
            raise SourceError(
                _("lost the connection to the IMAP server and could not get it back: {err}").format(err=err)
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
