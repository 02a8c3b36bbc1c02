"""What stopped a try at connecting to the IMAP server, named as it happened: a connection that dropped or
went silent (tried again, RetryableError), a login the server refused (LoginRefused), TLS or a certificate
that failed, nothing listening. A server that answered once and drops now is having trouble: every
connection fault is tried again then; before the first connection, what no retry can mend is said at once,
with what to fix.
"""

from __future__ import annotations

import imaplib
import logging
import socket
import ssl

from imapclient.exceptions import IMAPClientError, LoginError

from gimport.backends.imap.parse import cert_hint, security_hint
from gimport.config.settings import SourceSettings
from gimport.errors import LoginRefused, RetryableError, SourceError
from gimport.i18n import N_, _

log = logging.getLogger("gimport.imap")

TRANSIENT = (OSError, imaplib.IMAP4.abort, ssl.SSLError, EOFError)
_DROPPED = (ssl.SSLEOFError, ssl.SSLZeroReturnError, EOFError, imaplib.IMAP4.abort, ConnectionError)
# where a try at connecting was when it failed (the messages say it)
PHASES = {
    "connect": N_("waiting for its greeting"),
    "tls": N_("starting TLS"),
    "login": N_("logging in"),
    "namespace": N_("asking for its namespace"),
    "folder": N_("re-opening the folder"),
}


def connect_fault(
    s: SourceSettings,
    exc: BaseException,
    phase: str,
    *,
    first: bool,
    late: bool,
    deadline: float,
    oauth: bool = False,
) -> tuple[BaseException, str | None]:
    """(the error, a hint for when every try failed) for `exc`, raised while `phase` (PHASES) of a try at
    connecting; `first`: no connection has succeeded yet; `late`: the try passed its `deadline`."""
    where = f"{s.host}:{s.port}"
    if isinstance(exc, LoginError) and isinstance(exc.__context__, TRANSIENT):
        exc = exc.__context__  # imapclient reports a connection lost during LOGIN as a refused login
    if isinstance(exc, ssl.SSLCertVerificationError):
        return SourceError(
            _("cannot verify the certificate of {where} ({verify_message})").format(
                where=where, verify_message=exc.verify_message
            ),
            hint=cert_hint(exc),
        ), None
    if isinstance(exc, LoginError):
        return refused(s, where, oauth=oauth), None
    hint = security_hint(s, exc) if first and phase in ("connect", "tls") else None
    if late or isinstance(exc, TRANSIENT):
        permanent = None if late or not first or phase not in ("connect", "tls") else _at_once(s, exc, where, hint)
        if permanent is not None:
            return permanent, hint
        log.warning("IMAP connection to %s failed while %s (%s); trying again", where, PHASES[phase], exc)
        return RetryableError(what_happened(s, exc, phase, late, deadline), no_answer=True), hint
    if isinstance(exc, IMAPClientError):
        return SourceError(
            _("the IMAP server {where} refused to go on after the greeting: {detail}").format(where=where, detail=exc),
            hint=hint,
        ), None
    return exc, None


def _at_once(s: SourceSettings, exc: BaseException, where: str, hint: str | None) -> SourceError | None:
    """Before the first connection succeeded, what no retry can mend: nothing there (no such host, the port
    closed), TLS refused (not a drop), or plain IMAP to a TLS port (no greeting ever comes). None: a drop."""
    if isinstance(exc, ssl.SSLError) and not isinstance(exc, _DROPPED):
        return SourceError(
            _("the TLS handshake with the IMAP server {where} failed: {exc}").format(where=where, exc=exc), hint=hint
        )
    if isinstance(exc, (socket.gaierror, ConnectionRefusedError, TimeoutError)) or not isinstance(exc, _DROPPED):
        return SourceError(
            _("cannot connect to the IMAP server {where} ({security}): {exc}").format(
                where=where, security=s.security, exc=exc
            ),
            hint=hint,
        )
    return None


def what_happened(s: SourceSettings, exc: BaseException, phase: str, late: bool, deadline: float) -> str:
    """What ended one try, for the message a person reads when every try failed."""
    doing = _(PHASES[phase])
    if late:
        return _("no answer within {n:.0f} s while {phase}").format(n=deadline, phase=doing)
    if isinstance(exc, TimeoutError):
        return _("no answer within {n:.0f} s while {phase}").format(n=float(s.timeout), phase=doing)
    if isinstance(exc, (socket.gaierror, ConnectionRefusedError)):
        return _("the server cannot be reached: {exc}").format(exc=exc)
    if isinstance(exc, ssl.SSLError) and not isinstance(exc, _DROPPED):
        return _("TLS failed while {phase}: {exc}").format(phase=doing, exc=exc)
    return _("the server dropped the connection while {phase}: {exc}").format(
        phase=doing, exc=exc or type(exc).__name__
    )


def refused(s: SourceSettings, where: str, *, oauth: bool = False) -> LoginRefused:
    """What to fix when the server answered the login with NO."""
    if oauth:
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
        _("the IMAP server {where} refused the login for user {user!r}: check [source] user and the password").format(
            where=where, user=s.user
        )
    )
