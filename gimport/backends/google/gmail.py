"""Gmail, through the Gmail API: gimport.contract.Destination.

Every call goes to `api_url` when set (GIMPORT_GMAIL_API_URL; uploads and batch included), else to
Google, and every call -- each method, each resumable-upload chunk, the OAuth token refresh inside a
request -- goes through the one call path (gimport.calls), charged from gimport.mail.quota.COSTS by the
method's real name. What Gmail's answers mean to the caller (retry, skip this message, stop the account)
is `classify`, and the HTTP transport is `GmailHttp`: both in gimport.backends.google.gmail_http. Only the
gimport.backends.google.gmail* modules import googleapiclient.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import google_auth_httplib2
from googleapiclient import discovery
from googleapiclient.http import HttpRequest, MediaIoBaseUpload

from gimport.backends.google.gmail_http import GmailHttp, classify, discovery_doc
from gimport.backends.google.scopes import LIST_SCOPES, MODIFY_SCOPES
from gimport.calls import Caller
from gimport.contract import DestinationBackend
from gimport.errors import Conflict, GmailError, GmailRefused, MessageRejected, RetryableError
from gimport.i18n import _
from gimport.mail.quota import COSTS, MAX_MESSAGE_BYTES

log = logging.getLogger("gimport.backends.google.gmail")

JSON_LIMIT = 700_000  # bigger messages go by resumable upload (the JSON payload limit is undocumented)
CHUNK_SIZE = 8 * 1024 * 1024  # resumable chunks; a multiple of 256 KiB
LIST_PAGE_SIZE = 500  # users.messages.list maxResults: the most Gmail gives in one call (5 units)
IMPORT_PARAMS = {"internalDateSource": "dateHeader", "neverMarkSpam": True, "processForCalendar": False}


class _NoHttp:
    """The shared resources' own HTTP object: every request is executed on its client's (execute(http=...)),
    and one that is not must fail, never go out with another user's credentials."""

    def request(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a Gmail request was executed without its client's HTTP object")


_shared: dict[str | None, tuple[Any, Any, Any, HttpRequest]] = {}
_shared_lock = threading.Lock()


def _resources(api_url: str | None) -> tuple[Any, Any, Any, HttpRequest]:
    """users.messages, users.labels, users.settings and the import request's template, built once per process
    and API address from the discovery document (3 ms of CPU each time; a campus builds a client per user)
    and shared by every client: building a request reads them only, and each client executes on its own
    HTTP object (its credentials)."""
    with _shared_lock:
        found = _shared.get(api_url)
        if found is None:
            users = discovery.build_from_document(discovery_doc(api_url), http=_NoHttp()).users()
            messages = users.messages()
            found = _shared[api_url] = (
                messages,
                users.labels(),
                users.settings(),
                messages.import_(userId="me", body={}, **IMPORT_PARAMS),
            )
        return found


LabelConflict = Conflict  # the name this module gave it before gimport.errors held it


class GmailClient:
    """One Gmail account (gimport.contract.Destination). Thread-safe: each thread gets its own HTTP
    connection object. Every call goes through `caller` (paced by its pacer, retried by its policy)."""

    max_message_bytes = MAX_MESSAGE_BYTES

    def __init__(
        self,
        credentials: Any,
        *,
        caller: Caller | None = None,
        api_url: str | None = None,
        timeout: float = 120.0,
    ) -> None:
        self._credentials = credentials
        self._timeout = timeout
        self.caller = caller or Caller(None)
        self._local = threading.local()
        self._messages, self._labels, self._settings, self._import_template = _resources(api_url)

    def _http(self) -> google_auth_httplib2.AuthorizedHttp:
        http = getattr(self._local, "http", None)
        if http is None:
            raw = GmailHttp(self._timeout, self.caller.time_left)
            # as googleapiclient.http.build_http() does: 308 is "resume incomplete" for resumable uploads,
            # not a redirect (a bare Http raises RedirectMissingLocation on it)
            raw.redirect_codes = raw.redirect_codes - {308}
            http = google_auth_httplib2.AuthorizedHttp(self._credentials, http=raw)
            self._local.http = http
        return http

    def _call(self, method: str, request: Any, *, rejected_passes: bool = False) -> dict[str, Any]:
        """One non-import call (`method`: its name in Gmail's discovery document), paced and retried;
        gives up as GmailError (exit 5). Conflict and AuthError pass through; MessageRejected becomes
        GmailRefused unless `rejected_passes` (the caller says what a refusal means)."""
        try:
            # every answer of the Gmail API is a JSON object; googleapiclient gives it no type
            response: dict[str, Any] = self.caller.call(
                lambda: request.execute(http=self._http(), num_retries=0),
                cost=COSTS[method],
                classify=lambda exc: classify(exc, what=method),
                policy=dataclasses.replace(self.caller.policy, fail_fast_unreachable=True),
            )
            return response
        except RetryableError as err:
            raise GmailError(
                _("cannot get an answer from Gmail ({err})").format(err=err), hint=_("check the network and try again")
            ) from None
        except Conflict:
            raise
        except MessageRejected as err:
            if rejected_passes:
                raise
            raise GmailRefused(_("Gmail refused {method}: {err}").format(method=method, err=err)) from None

    # -- account and labels -------------------------------------------------------------------------
    def primary_address(self) -> str:
        """The account's primary address (settings.sendAs.list; gmail.settings.basic allows it)."""
        result = self._call("users.settings.sendAs.list", self._settings.sendAs().list(userId="me"))
        for entry in result.get("sendAs", []):
            if entry.get("isPrimary"):
                return str(entry["sendAsEmail"])
        raise GmailError(_("Gmail reported no primary address for this account"))

    def list_labels(self) -> list[dict[str, Any]]:
        return _items(self._call("users.labels.list", self._labels.list(userId="me")), "labels")

    def get_label(self, label_id: str) -> dict[str, Any]:
        return self._call("users.labels.get", self._labels.get(userId="me", id=label_id))

    def create_label(self, name: str, visibility: str = "labelShow", messages: str = "show") -> dict[str, Any]:
        """Raises Conflict when the name (case-insensitively) exists, MessageRejected for a name Gmail
        refuses (the engine says which folder to map elsewhere). `messages`: messageListVisibility."""
        body = {"name": name, "labelListVisibility": visibility, "messageListVisibility": messages}
        return self._call("users.labels.create", self._labels.create(userId="me", body=body), rejected_passes=True)

    # -- settings -----------------------------------------------------------------------------------
    def get_imap(self) -> dict[str, Any]:
        return self._call("users.settings.getImap", self._settings.getImap(userId="me"))

    def update_imap(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("users.settings.updateImap", self._settings.updateImap(userId="me", body=body))

    def get_auto_forwarding(self) -> dict[str, Any]:
        return self._call("users.settings.getAutoForwarding", self._settings.getAutoForwarding(userId="me"))

    def list_forwarding_addresses(self) -> list[dict[str, Any]]:
        req = self._settings.forwardingAddresses().list(userId="me")
        return _items(self._call("users.settings.forwardingAddresses.list", req), "forwardingAddresses")

    def list_filters(self) -> list[dict[str, Any]]:
        req = self._settings.filters().list(userId="me")
        return _items(self._call("users.settings.filters.list", req), "filter")

    # -- reading back (verify --exact) ---------------------------------------------------------------
    def can_list_messages(self) -> bool:
        """Whether the credentials carry a scope that allows users.messages.list (gimport auth
        --exact-verify adds gmail.metadata; a service account asks for it with admin verify --exact)."""
        scopes = getattr(self._credentials, "scopes", None) or getattr(self._credentials, "_scopes", None) or ()
        return bool(LIST_SCOPES & set(scopes))

    def can_modify_messages(self) -> bool:
        """Whether the credentials allow users.messages.modify (gimport auth --label-copies)."""
        scopes = getattr(self._credentials, "scopes", None) or getattr(self._credentials, "_scopes", None) or ()
        return bool(MODIFY_SCOPES & set(scopes))

    def add_labels(self, message_id: str, label_ids: Sequence[str]) -> None:
        """users.messages.modify (5 units, paced and retried on the call path): add `label_ids` to a message
        already in Gmail; never removes any. Raises MessageRejected (no such message, a label Gmail refuses),
        GmailError, AuthError."""
        body = {"addLabelIds": list(label_ids)}
        request = self._messages.modify(userId="me", id=message_id, body=body)
        self._call("users.messages.modify", request, rejected_passes=True)

    def list_message_ids(self, label_id: str | None, *, include_spam_trash: bool = False) -> Iterator[list[str]]:
        """users.messages.list, one page (500 ids, 5 units) per call, each paced and retried on the call
        path: the ids of the messages carrying `label_id` (None: every message). Only labelIds,
        includeSpamTrash, maxResults and pageToken are sent: the metadata scope refuses `q`.
        Raises AuthError (no scope for it), GmailError."""
        token: str | None = None
        while True:
            params: dict[str, Any] = {"userId": "me", "maxResults": LIST_PAGE_SIZE}
            if label_id is not None:
                params["labelIds"] = [label_id]
            if include_spam_trash:
                params["includeSpamTrash"] = True
            if token:
                params["pageToken"] = token
            page = self._call("users.messages.list", self._messages.list(**params))
            yield [m["id"] for m in page.get("messages", [])]
            token = page.get("nextPageToken")
            if not token:
                return

    # -- import -------------------------------------------------------------------------------------
    def import_message(
        self,
        raw: bytes,
        label_ids: list[str],
        *,
        on_attempt: Callable[[int], None] | None = None,
        on_retry: Callable[[RetryableError], None] | None = None,
    ) -> str:
        """Import one message byte-exact; returns its Gmail id.

        Small messages go as JSON `raw`; larger ones by resumable upload, whose chunks are retried on the
        same call path, resuming from what the server says it has. `on_attempt(n)` runs right before
        attempt n of the import leaves; `on_retry(err)` for each error that will be retried. Raises
        RetryableError (gave up), MessageRejected, GmailError, AuthError or StopRequested.
        """
        if len(raw) > MAX_MESSAGE_BYTES:
            raise MessageRejected(
                _("message is {size:,} bytes, over Gmail's limit of {limit:,}").format(
                    size=len(raw), limit=MAX_MESSAGE_BYTES
                )
            )
        what = "users.messages.import"
        if len(raw) <= JSON_LIMIT:
            request = self._json_import(raw, label_ids)
            result = self.caller.call(
                lambda: request.execute(http=self._http(), num_retries=0),
                cost=COSTS[what],
                classify=lambda exc: classify(exc, what=what),
                on_attempt=on_attempt,
                on_retry=on_retry,
            )
            return str(result["id"])
        return self._import_resumable(raw, label_ids, on_attempt, on_retry)

    def _json_import(self, raw: bytes, label_ids: list[str]) -> HttpRequest:
        """The import request the client library builds for {"raw": ..., "labelIds": ...} (the same URI,
        headers and JSON bytes), from the one it built for this client: building it anew costs a message more
        CPU than sending it (parameter checks, URI templating, the body's JSON copy)."""
        t = self._import_template
        encoded = base64.urlsafe_b64encode(raw).decode("ascii")  # the alphabet needs no JSON escapes
        body = f'{{"raw": "{encoded}", "labelIds": {json.dumps(label_ids)}}}'
        headers = {k: v for k, v in t.headers.items() if k != "content-length"}
        return HttpRequest(t.http, t.postproc, t.uri, method=t.method, body=body, headers=headers, methodId=t.methodId)

    def _import_resumable(
        self,
        raw: bytes,
        label_ids: list[str],
        on_attempt: Callable[[int], None] | None,
        on_retry: Callable[[RetryableError], None] | None,
    ) -> str:
        what = "users.messages.import"
        media = MediaIoBaseUpload(io.BytesIO(raw), mimetype="message/rfc822", chunksize=CHUNK_SIZE, resumable=True)
        request = self._messages.import_(userId="me", body={"labelIds": label_ids}, media_body=media, **IMPORT_PARAMS)
        done: list[Any] = []

        def next_chunk() -> None:
            try:
                # num_retries=0: the client's own chunk retry does not rewind the stream and hangs
                _, response = request.next_chunk(http=self._http(), num_retries=0)
            except Exception:
                if request.resumable_uri is not None:
                    # the next next_chunk() asks the server what it has and resumes from there
                    request._in_error_state = True
                raise
            if response is not None:
                done.append(response)

        first = True
        while not done:
            # the upload is one import: charged once, "sending" recorded once; chunks resume, not restart
            self.caller.call(
                next_chunk,
                cost=COSTS[what] if first else 0,
                classify=lambda exc: classify(exc, what=what),
                on_attempt=on_attempt if first else None,
                on_retry=on_retry,
            )
            first = False
        return str(done[0]["id"])


def _items(response: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """The list under `key` of a listing's answer (Gmail leaves the key out when the list is empty)."""
    items: list[dict[str, Any]] = response.get(key, [])
    return items


# mypy proves here that GmailClient offers every part of the contract (as rclone's `var _ fs.Fs = &Fs{}`)
_fits_the_contract: type[DestinationBackend] = GmailClient
