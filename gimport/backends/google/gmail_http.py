"""Gmail's answers: the HTTP transport gimport.backends.google.gmail talks through, and `classify`, this
backend's shouldRetry.

`classify` turns the client library's exceptions into gimport.errors by what the caller must do:
- RetryableError: try again later (429/403 rate limits, 5xx, transport errors); carries the wait the
  server asked for, and whether the server may have stored the message anyway (`ambiguous`).
- MessageRejected: this message cannot be imported as it is (400, 413); record and go on.
- Conflict: a label of that name exists (409).
- GmailError / AuthError: stop the account (daily limit, missing scope, revoked token).

The transport is httplib2's, with one change: a connection closed without an answer is an error, never a
silent second request. `discovery_doc` is the Gmail API's discovery document, pointed at `api_url` when
set. Nothing here makes a call. Only the gimport.backends.google.gmail* modules import googleapiclient.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import json
import re
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import google.auth.exceptions
import httplib2
from googleapiclient.errors import HttpError

from gimport.backends import tls
from gimport.errors import AuthError, Conflict, GmailError, GmailRefused, MessageRejected, RetryableError
from gimport.i18n import _

_RATE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded"}
_DAILY_REASONS = {"dailyLimitExceeded", "quotaExceeded"}
_RETRY_AFTER = re.compile(r"Retry after (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)")
_TRANSPORT = (
    OSError,  # ConnectionResetError, TimeoutError, socket.timeout, ...
    http.client.HTTPException,
    httplib2.HttpLib2Error,
    ssl.SSLError,
    socket.gaierror,
)


@dataclass(frozen=True)
class ApiError:
    status: int
    reason: str
    message: str
    retry_after: float | None


def _parse_http_error(exc: HttpError, now: Callable[[], dt.datetime]) -> ApiError:
    status = int(exc.resp.status)
    reason, message = "", ""
    try:
        err = json.loads(exc.content.decode("utf-8", "replace"))["error"]
        message = str(err.get("message", ""))
        errors = err.get("errors") or []
        reason = str(errors[0].get("reason", "")) if errors else str(err.get("status", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        message = exc.content[:200].decode("utf-8", "replace") if exc.content else ""
    wait = None
    header = exc.resp.get("retry-after")
    if header:
        with contextlib.suppress(ValueError):
            wait = float(header)
    match = _RETRY_AFTER.search(message)
    if match:
        when = dt.datetime.fromisoformat(match.group(1).replace("Z", "+00:00"))
        wait = max(0.0, (when - now()).total_seconds())
    return ApiError(status, reason, message, wait)


def short_name(method: str) -> str:
    """How a method is named in messages: users.messages.import -> import, users.labels.list -> labels.list."""
    name = method.removeprefix("users.")
    return name.removeprefix("messages.") if name.startswith("messages.import") else name


def classify(exc: BaseException, *, what: str, now: Callable[[], dt.datetime] | None = None) -> BaseException:
    """This backend's shouldRetry: turn a client-library exception into gimport.errors' (see the module
    docstring). `what` is the method (its discovery-document name or the short one)."""
    now = now or (lambda: dt.datetime.now(dt.UTC))
    what = short_name(what)
    if isinstance(exc, google.auth.exceptions.RefreshError):
        if getattr(exc, "retryable", False):  # the token endpoint answered 5xx/429: a passing problem
            return RetryableError(
                _("{what}: Google's token endpoint is not answering properly: {exc}").format(what=what, exc=exc)
            )
        return AuthError(
            _("Gmail authorization is no longer valid ({reason})").format(reason=exc.args[0] if exc.args else exc)
        )
    if isinstance(exc, google.auth.exceptions.TransportError):
        return RetryableError(
            _("{what}: cannot reach Google's token endpoint: {exc}").format(what=what, exc=exc),
            unreachable=_unreachable(exc),
            no_answer=True,
        )
    if isinstance(exc, HttpError):
        err = _parse_http_error(exc, now)
        text = f"{what}: HTTP {err.status} {err.reason} {err.message}".strip()
        if err.status == 429 or (err.status == 403 and err.reason in _RATE_REASONS):
            # Gmail gives "too many concurrent requests" the same status and reason as "slow down": only
            # the message tells them apart. The first lowers the concurrency, not the rate.
            concurrent = "too many concurrent requests" in err.message.lower()
            return RetryableError(text, wait=err.retry_after, rate_limited=True, concurrent=concurrent)
        if err.status == 403 and err.reason in _DAILY_REASONS:
            return GmailError(
                _("Gmail's daily limit for this account is reached ({message}): run again tomorrow").format(
                    message=err.message
                )
            )
        if err.status == 403 and err.reason == "insufficientPermissions":
            return AuthError(_("the Gmail token lacks a permission gimport needs ({what})").format(what=what))
        if err.status == 401:
            return AuthError(_("Gmail refused the authorization ({message})").format(message=err.message))
        if err.status >= 500 or err.status == 408:
            return RetryableError(text, wait=err.retry_after, ambiguous=True)
        if err.status == 409:
            return Conflict(text)
        if err.status in (400, 413) and err.reason != "failedPrecondition":
            return MessageRejected(text)
        if err.status == 404 and what.endswith("import"):
            return GmailError(_("Gmail answered 404 for the import: {message}").format(message=err.message))
        return GmailRefused(
            _("Gmail refused {what}: HTTP {status} {message}").format(
                what=what, status=err.status, message=err.message or err.reason
            )
        )
    if isinstance(exc, _TRANSPORT):
        unreachable = _unreachable(exc)
        return RetryableError(
            _("{what}: connection problem: {exc!r}").format(what=what, exc=exc),
            ambiguous=not unreachable,
            unreachable=unreachable,
            no_answer=True,
        )
    return exc


def _unreachable(err: BaseException) -> bool:
    """True when nothing answered at all (connection refused, unknown host), looking through causes."""
    seen: set[int] = set()
    e: BaseException | None = err
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, ConnectionRefusedError | socket.gaierror | httplib2.ServerNotFoundError):
            return True
        e = e.__cause__ or e.__context__
    return False


class _AnswerOrError(http.client.HTTPConnection):
    """httplib2 silently sends a request again when the server closes the connection without an answer
    (it takes that for a stale kept-alive connection). For an import the first copy may be stored already,
    and the second would go uncounted. Make it an error instead: the caller retries it, counted as a call
    that may have been stored (RetryableError.ambiguous)."""

    def getresponse(self) -> http.client.HTTPResponse:
        try:
            return super().getresponse()
        except http.client.BadStatusLine as exc:  # RemoteDisconnected included
            raise ConnectionAbortedError(f"the server closed the connection without an answer ({exc!r})") from exc


class _HTTPConnection(_AnswerOrError, httplib2.HTTPConnectionWithTimeout):  # type: ignore[misc]  # httplib2: untyped
    pass


class _HTTPSConnection(_AnswerOrError, httplib2.HTTPSConnectionWithTimeout):  # type: ignore[misc]  # httplib2: untyped
    """httplib2's HTTPS connection on a TLS context shared by the process (gimport.backends.tls): httplib2
    builds one per connection, reading its whole CA bundle each time (17 ms of CPU; every import thread of
    every user opens one, again after each reconnect). The same checks: certificate and host name verified
    against httplib2's bundle. A connection that turns verification off or presents a client certificate
    keeps httplib2's own context."""

    def __init__(self, host: str, port: int | None = None, **kwargs: Any) -> None:
        shared = not any(
            kwargs.get(k)
            for k in (
                "disable_ssl_certificate_validation",
                "cert_file",
                "key_file",
                "tls_maximum_version",
                "tls_minimum_version",
            )
        )
        if shared:  # httplib2 then builds a context without reading a bundle, replaced below
            kwargs["disable_ssl_certificate_validation"] = True
        super().__init__(host, port, **kwargs)
        if shared:
            self.disable_ssl_certificate_validation = False
            self._context = tls.bundle(self.ca_certs)


class GmailHttp(httplib2.Http):  # type: ignore[misc]  # httplib2 has no types: its classes are Any
    """httplib2.Http on the connections above; `timeout_for(timeout)`, when given, says before each request how
    long it may wait for its answer (gimport.calls.Caller.time_left: a hung call must not outlast the
    moment the run gives up), at most `timeout`."""

    def __init__(self, timeout: float, timeout_for: Callable[[float], float] | None = None) -> None:
        super().__init__(timeout=timeout)
        self._base_timeout, self._timeout_for = timeout, timeout_for

    def _set_timeout(self) -> None:
        if self._timeout_for is None:
            return
        timeout = self._timeout_for(self._base_timeout)
        self.timeout = timeout
        for conn in self.connections.values():  # kept-alive connections have their socket's timeout set
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)

    def request(
        self,
        uri: str,
        method: str = "GET",
        body: str | bytes | None = None,
        headers: dict[str, str] | None = None,
        redirections: int = httplib2.DEFAULT_MAX_REDIRECTS,
        connection_type: type[http.client.HTTPConnection] | None = None,
    ) -> tuple[Any, bytes]:
        """httplib2's request, on the connections above. Returns (httplib2.Response, content)."""
        if connection_type is None:
            connection_type = _HTTPSConnection if uri.startswith("https:") else _HTTPConnection
        self._set_timeout()
        answer: tuple[Any, bytes] = super().request(uri, method, body, headers, redirections, connection_type)
        return answer


def discovery_doc(api_url: str | None) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(
        resources.files("googleapiclient").joinpath("discovery_cache/documents/gmail.v1.json").read_text("utf-8")
    )
    if api_url:
        base = api_url if api_url.endswith("/") else api_url + "/"
        doc["rootUrl"] = doc["baseUrl"] = doc["mtlsRootUrl"] = base
    return doc
