"""Gmail, through the Gmail API. The only module that imports googleapiclient.

Every call goes to `api_url` when set (GIMPORT_GMAIL_API_URL; uploads and batch included), else to
Google. Errors are classified by what the caller should do:
- RetryableError: try again later (429/403 rate limits, 5xx, transport errors); carries the wait the
  server asked for, and whether the server may have stored the message anyway (`ambiguous`).
- MessageRejected: this message cannot be imported as it is (400, 413); record and go on.
- GmailError / AuthError (gimport.errors): stop the run (daily limit, missing scope, revoked token).
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import io
import json
import logging
import re
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import google.auth.exceptions
import google_auth_httplib2
import httplib2
from googleapiclient import discovery
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaIoBaseUpload

from gimport.errors import AuthError, GmailError

log = logging.getLogger("gimport.gmail")

MAX_MESSAGE_BYTES = 157_286_400  # Gmail's 150 MB limit for one message
JSON_LIMIT = 700_000  # bigger messages go by resumable upload (the JSON payload limit is undocumented)
CHUNK_SIZE = 8 * 1024 * 1024  # resumable chunks; a multiple of 256 KiB
IMPORT_PARAMS = {"internalDateSource": "dateHeader", "neverMarkSpam": True, "processForCalendar": False}
# Unit costs of the calls gimport makes (https://developers.google.com/gmail/api/reference/quota)
UNITS = {"import": 25, "labels.list": 1, "labels.get": 1, "labels.create": 5, "settings.get": 1, "settings.update": 5}
_RATE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded"}
_DAILY_REASONS = {"dailyLimitExceeded", "quotaExceeded"}
_CONCURRENT = "too many concurrent requests"  # "Too many concurrent requests for user."
_RETRY_AFTER = re.compile(r"Retry after (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)")
_TRANSPORT = (
    OSError,  # ConnectionResetError, TimeoutError, socket.timeout, ...
    http.client.HTTPException,
    httplib2.HttpLib2Error,
    ssl.SSLError,
    socket.gaierror,
)


class RetryableError(Exception):
    """Try again later. `wait`: what the server asked for; `rate_limited`: a "slow down" answer;
    `concurrent`: of those, "too many concurrent requests" (fewer calls at once, not a slower rate);
    `ambiguous`: the server may have done the work anyway; `unreachable`: nothing answered at all
    (connection refused, unknown host)."""

    def __init__(
        self,
        message: str,
        *,
        wait: float | None = None,
        rate_limited: bool = False,
        concurrent: bool = False,
        ambiguous: bool = False,
        unreachable: bool = False,
    ):
        super().__init__(message)
        self.wait, self.rate_limited, self.ambiguous = wait, rate_limited, ambiguous
        self.concurrent = concurrent
        self.unreachable = unreachable


class MessageRejected(Exception):
    """Gmail refuses this message as it is; retrying the same bytes will not help."""


class LabelConflict(Exception):
    """A label of that name (case-insensitively) already exists."""


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
        try:
            wait = float(header)
        except ValueError:
            pass
    match = _RETRY_AFTER.search(message)
    if match:
        when = dt.datetime.fromisoformat(match.group(1).replace("Z", "+00:00"))
        wait = max(0.0, (when - now()).total_seconds())
    return ApiError(status, reason, message, wait)


def classify(exc: BaseException, *, what: str, now: Callable[[], dt.datetime] | None = None) -> BaseException:
    """Turn a client-library exception into one of this module's (or gimport.errors') exceptions."""
    now = now or (lambda: dt.datetime.now(dt.UTC))
    if isinstance(exc, google.auth.exceptions.RefreshError):
        if getattr(exc, "retryable", False):  # the token endpoint answered 5xx/429: a passing problem
            return RetryableError(f"{what}: Google's token endpoint is not answering properly: {exc}")
        return AuthError(
            f"Gmail authorization is no longer valid ({exc.args[0] if exc.args else exc}): run 'gimport auth' again"
        )
    if isinstance(exc, google.auth.exceptions.TransportError):
        return RetryableError(f"{what}: cannot reach Google's token endpoint: {exc}", unreachable=_unreachable(exc))
    if isinstance(exc, HttpError):
        err = _parse_http_error(exc, now)
        text = f"{what}: HTTP {err.status} {err.reason} {err.message}".strip()
        if err.status == 429 or (err.status == 403 and err.reason in _RATE_REASONS):
            # Gmail gives both kinds the same status and reason: only the message tells them apart
            concurrent = _CONCURRENT in err.message.lower()
            return RetryableError(text, wait=err.retry_after, rate_limited=True, concurrent=concurrent)
        if err.status == 403 and err.reason in _DAILY_REASONS:
            return GmailError(f"Gmail's daily limit for this account is reached ({err.message}): run again tomorrow")
        if err.status == 403 and err.reason == "insufficientPermissions":
            return AuthError(f"the Gmail token lacks a permission gimport needs ({what}): run 'gimport auth' again")
        if err.status == 401:
            return AuthError(f"Gmail refused the authorization ({err.message}): run 'gimport auth' again")
        if err.status >= 500 or err.status == 408:
            return RetryableError(text, wait=err.retry_after, ambiguous=True)
        if err.status == 409:
            return LabelConflict(text)
        if err.status in (400, 413) and err.reason != "failedPrecondition":
            return MessageRejected(text)
        if err.status == 404 and what == "import":
            return GmailError(f"Gmail answered 404 for the import: {err.message}")
        return GmailError(f"Gmail refused {what}: HTTP {err.status} {err.message or err.reason}")
    if isinstance(exc, _TRANSPORT):
        unreachable = _unreachable(exc)
        return RetryableError(
            f"{what}: connection problem: {exc!r}", ambiguous=not unreachable, unreachable=unreachable
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


def paced_call(
    pacer: Any,
    what: str,
    fn: Callable[[], Any],
    *,
    attempts: int = 6,
    rate_limited_attempts: int = 40,
    sleep: Callable[[float], object] | None = None,
) -> Any:
    """A non-import Gmail call, charged to `pacer` (gimport.pacer.Pacer) and retried on passing errors.

    Gives up at once when nothing answers (connection refused, unknown host), after `attempts` server or
    network errors, or after `rate_limited_attempts` "slow down" answers: GmailError (exit 5). A label
    conflict or a rejected request becomes GmailError too; AuthError passes through.
    """
    sleep = sleep or pacer.sleep
    errors = limited = 0
    while True:
        pacer.acquire(UNITS.get(what, 1), sleep=sleep)
        try:
            with pacer.slot():
                return fn()
        except RetryableError as err:
            if err.rate_limited:
                limited += 1
                pacer.note_rate_limited(err.wait, concurrent=err.concurrent)
            else:
                errors += 1
            if err.unreachable or errors >= attempts or limited >= rate_limited_attempts:
                raise GmailError(f"cannot get an answer from Gmail ({err}): check the network and try again") from None
            sleep(pacer.backoff_delay(max(errors, limited), err.wait))
        except MessageRejected as err:
            raise GmailError(f"Gmail refused {what}: {err}") from None


def check_account(address: str, expected: str | None) -> None:
    """Refuse a token for another account than [gmail] user (AuthError, exit 3)."""
    if expected and address.lower() != expected.lower():
        raise AuthError(
            f"the token is for {address}, but [gmail] user is {expected}: run 'gimport auth' and sign in as {expected}"
        )


class _AnswerOrError:
    """httplib2 silently sends a request again when the server closes the connection without an answer
    (it takes that for a stale kept-alive connection). For an import the first copy may be stored already,
    and the second would go uncounted. Make it an error instead: the caller retries it, counted as a call
    that may have been stored (RetryableError.ambiguous)."""

    def getresponse(self):
        try:
            return super().getresponse()
        except http.client.BadStatusLine as exc:  # RemoteDisconnected included
            raise ConnectionAbortedError(f"the server closed the connection without an answer ({exc!r})") from exc


class _HTTPConnection(_AnswerOrError, httplib2.HTTPConnectionWithTimeout):
    pass


class _HTTPSConnection(_AnswerOrError, httplib2.HTTPSConnectionWithTimeout):
    pass


class _Http(httplib2.Http):
    def request(
        self,
        uri,
        method="GET",
        body=None,
        headers=None,
        redirections=httplib2.DEFAULT_MAX_REDIRECTS,
        connection_type=None,
    ):
        if connection_type is None:
            connection_type = _HTTPSConnection if uri.startswith("https:") else _HTTPConnection
        return super().request(uri, method, body, headers, redirections, connection_type)


def _discovery_doc(api_url: str | None) -> dict[str, Any]:
    doc = json.loads(
        resources.files("googleapiclient").joinpath("discovery_cache/documents/gmail.v1.json").read_text("utf-8")
    )
    if api_url:
        base = api_url if api_url.endswith("/") else api_url + "/"
        doc["rootUrl"] = doc["baseUrl"] = doc["mtlsRootUrl"] = base
    return doc


class GmailClient:
    """One Gmail account. Thread-safe: each thread gets its own HTTP connection object."""

    def __init__(self, credentials: Any, *, api_url: str | None = None, timeout: float = 120.0) -> None:
        self._credentials = credentials
        self._timeout = timeout
        self._local = threading.local()
        self._service = discovery.build_from_document(_discovery_doc(api_url), http=self._http())
        # building the resources is costly; keep them
        users = self._service.users()
        self._messages, self._labels, self._settings = users.messages(), users.labels(), users.settings()
        self._users = users

    def _http(self) -> google_auth_httplib2.AuthorizedHttp:
        http = getattr(self._local, "http", None)
        if http is None:
            raw = _Http(timeout=self._timeout)
            # as googleapiclient.http.build_http() does: 308 is "resume incomplete" for resumable uploads,
            # not a redirect (a bare Http raises RedirectMissingLocation on it)
            raw.redirect_codes = raw.redirect_codes - {308}
            http = google_auth_httplib2.AuthorizedHttp(self._credentials, http=raw)
            self._local.http = http
        return http

    def _execute(self, request: Any, what: str) -> Any:
        try:
            return request.execute(http=self._http(), num_retries=0)
        except Exception as exc:  # noqa: BLE001 - classified and re-raised
            raise classify(exc, what=what) from exc

    # -- account and labels -------------------------------------------------------------------------
    def primary_address(self) -> str:
        """The account's primary address (settings.sendAs.list; gmail.settings.basic allows it)."""
        result = self._execute(self._settings.sendAs().list(userId="me"), "settings.sendAs.list")
        for entry in result.get("sendAs", []):
            if entry.get("isPrimary"):
                return entry["sendAsEmail"]
        raise GmailError("Gmail reported no primary address for this account")

    def list_labels(self) -> list[dict[str, Any]]:
        return self._execute(self._labels.list(userId="me"), "labels.list").get("labels", [])

    def get_label(self, label_id: str) -> dict[str, Any]:
        return self._execute(self._labels.get(userId="me", id=label_id), "labels.get")

    def create_label(self, name: str, visibility: str = "labelShow") -> dict[str, Any]:
        body = {"name": name, "labelListVisibility": visibility, "messageListVisibility": "show"}
        return self._execute(self._labels.create(userId="me", body=body), "labels.create")

    # -- settings -----------------------------------------------------------------------------------
    def get_imap(self) -> dict[str, Any]:
        return self._execute(self._settings.getImap(userId="me"), "settings.getImap")

    def update_imap(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._execute(self._settings.updateImap(userId="me", body=body), "settings.updateImap")

    def get_auto_forwarding(self) -> dict[str, Any]:
        return self._execute(self._settings.getAutoForwarding(userId="me"), "settings.getAutoForwarding")

    def list_forwarding_addresses(self) -> list[dict[str, Any]]:
        req = self._settings.forwardingAddresses().list(userId="me")
        return self._execute(req, "settings.forwardingAddresses.list").get("forwardingAddresses", [])

    def list_filters(self) -> list[dict[str, Any]]:
        return self._execute(self._settings.filters().list(userId="me"), "settings.filters.list").get("filter", [])

    # -- import -------------------------------------------------------------------------------------
    def import_message(
        self,
        raw: bytes,
        label_ids: list[str],
        *,
        chunk_retry: Callable[[int, RetryableError], bool] | None = None,
    ) -> str:
        """Import one message byte-exact; returns its Gmail id.

        Small messages go as JSON `raw`; larger ones by resumable upload, whose chunks are retried
        through `chunk_retry(attempt, error)` (returns False to give up), resuming from what the server
        says it has. Raises RetryableError, MessageRejected, GmailError or AuthError.
        """
        if len(raw) > MAX_MESSAGE_BYTES:
            raise MessageRejected(f"message is {len(raw):,} bytes, over Gmail's limit of {MAX_MESSAGE_BYTES:,}")
        if len(raw) <= JSON_LIMIT:
            body = {"raw": base64.urlsafe_b64encode(raw).decode("ascii"), "labelIds": label_ids}
            result = self._execute(self._messages.import_(userId="me", body=body, **IMPORT_PARAMS), "import")
            return result["id"]
        return self._import_resumable(raw, label_ids, chunk_retry)

    def _import_resumable(
        self, raw: bytes, label_ids: list[str], chunk_retry: Callable[[int, RetryableError], bool] | None
    ) -> str:
        media = MediaIoBaseUpload(io.BytesIO(raw), mimetype="message/rfc822", chunksize=CHUNK_SIZE, resumable=True)
        request = self._messages.import_(userId="me", body={"labelIds": label_ids}, media_body=media, **IMPORT_PARAMS)
        attempt = 0
        response = None
        while response is None:
            try:
                # num_retries=0: the client's own chunk retry does not rewind the stream and hangs
                _, response = request.next_chunk(http=self._http(), num_retries=0)
            except Exception as exc:  # noqa: BLE001 - classified below
                err = classify(exc, what="import")
                if not isinstance(err, RetryableError):
                    raise err from exc
                attempt += 1
                if request.resumable_uri is None or chunk_retry is None or not chunk_retry(attempt, err):
                    raise err from exc
                # the next next_chunk() asks the server what it has and resumes from there
                request._in_error_state = True
        return response["id"]
