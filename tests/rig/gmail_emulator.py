"""A Gmail API emulator that the real google-api-python-client / google-auth / httplib2 talk to.

Test rig only (stdlib only). It speaks the wire protocol the client uses against gmail.googleapis.com and
oauth2.googleapis.com: OAuth (authorize redirect, code grant with PKCE, refresh grant, jwt-bearer grant,
revoke), the Gmail REST calls the product needs (labels, messages.import/insert in every upload flavour,
profile, settings), batch, per-user quota (token bucket or sliding window), a per-user concurrency cap,
a latency (per call, plus optionally per MB of the request), and injected faults.

Usage from a test::

    with GmailEmulator() as emu:
        emu.add_user("alice@example.ac.jp")
        info = emu.authorized_user_info("alice@example.ac.jp", ["https://www.googleapis.com/auth/gmail.insert"])
        ...  # point the client at emu.base_url (see tests/rig/gmail_client.py)

Standalone: ``python -m tests.rig.gmail_emulator --port 0 --user alice@example.ac.jp`` prints
``gmail emulator listening on http://127.0.0.1:PORT/`` and serves until SIGTERM/SIGINT. The quota:
``--quota-units-per-minute N`` with ``--quota-mode bucket`` (default; ``--burst-seconds``) or
``--quota-mode sliding --quota-window SECONDS`` (see GmailEmulator). ``--latency SECONDS`` and
``--latency-per-mb SECONDS`` make every Gmail call take that long; ``--max-concurrent N`` is the per-user cap
on calls in flight (Gmail's 429 "Too many concurrent requests for user").

Method names (for faults and stats): the discovery-document method id without the ``gmail.users.`` prefix,
e.g. ``messages.import``, ``labels.list``, ``labels.create``, ``getProfile``, ``settings.getImap``.
Accepted aliases: ``import`` (= messages.import), ``insert`` (= messages.insert), the full
``gmail.users.*`` id, and ``*`` (any method). Pseudo-methods that are not Gmail methods:

- ``upload.chunk``  a data-carrying PUT of a resumable upload (``match`` is tested against the chunk bytes;
  5xx_before drops the chunk, 5xx_after/reset_after keep it; the message is stored when the last chunk
  arrives, so 5xx_after on the last chunk stores the message and a later status query answers 200);
- ``upload.status`` a ``Content-Range: bytes */N`` status query of a resumable upload;
- ``batch``         the outer POST /batch request as a whole (5xx_after / reset_after: every part is
  processed and stored, then the whole reply is replaced by the error / the connection is reset);
- ``oauth.token``, ``oauth.authorize``, ``oauth.revoke``  the OAuth endpoints.

For resumable uploads the initiating POST is the ``messages.import`` call (charged 25 units, subject to
``messages.import`` faults, but ``match`` never applies there because the message is not known yet).

Fault kinds: ``5xx_before``, ``5xx_after``, ``reset_after`` (TCP RST, no response; inside a batch the
part is processed, the rest of the batch too, then the connection is reset), ``close_after`` (extra: a
graceful close without response; httplib2 then silently re-sends the request once on a new connection,
which is how a real dropped keep-alive connection can duplicate a POST), ``slow`` (sleep ``delay`` s,
holding a concurrency slot; ``Fault.release()`` ends the sleep early), ``hang`` (never answer, holding the
slot, until ``Fault.release()`` or the emulator stops: a Gmail whose calls hang, whose "too many concurrent
requests" answers then refuse the client's retries), ``400``, ``429`` (Retry after =
now + ``delay`` s). ``count=None`` fires forever. ``match`` is bytes that must occur in the raw message
(import/insert), in the chunk (upload.chunk) or in the request body (any other method).
One fault at most fires per call; faults are checked in the order added.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import collections
import contextlib
import dataclasses
import datetime
import email.utils
import hashlib
import hmac
import importlib.util
import json
import math
import os
import re
import secrets
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["Fault", "FaultList", "GmailEmulator", "Stats", "StoredMessage", "UserState", "main"]

MAX_MESSAGE_BYTES = 157286400
# A request body above this is refused before it is read (base64 of a maximal message plus slack).
MAX_REQUEST_BYTES = MAX_MESSAGE_BYTES * 4 // 3 + (4 << 20)
# Gmail documents a limit of 100 calls per batch (the exact error for more is unverified).
MAX_BATCH_PARTS = 100

GMAIL_SCOPE_PREFIX = "https://www.googleapis.com/auth/"
QUOTA_MODES = frozenset({"bucket", "sliding"})
FAULT_KINDS = frozenset({"5xx_before", "5xx_after", "reset_after", "close_after", "slow", "hang", "400", "429"})
PSEUDO_METHODS = frozenset({"upload.chunk", "upload.status", "batch", "oauth.token", "oauth.authorize", "oauth.revoke"})
_METHOD_ALIASES = {
    "import": "messages.import",
    "insert": "messages.insert",
    "profile": "getProfile",
    "token": "oauth.token",
    "chunk": "upload.chunk",
}

# System labels as labels.list shows them (visibility fields where Gmail shows them).
_SYSTEM_LABELS = [
    ("CHAT", {"messageListVisibility": "hide", "labelListVisibility": "labelHide"}),
    ("SENT", {}),
    ("INBOX", {}),
    ("IMPORTANT", {"messageListVisibility": "hide", "labelListVisibility": "labelHide"}),
    ("TRASH", {"messageListVisibility": "hide", "labelListVisibility": "labelHide"}),
    ("DRAFT", {}),
    ("SPAM", {"messageListVisibility": "hide", "labelListVisibility": "labelHide"}),
    ("CATEGORY_FORUMS", {}),
    ("CATEGORY_UPDATES", {}),
    ("CATEGORY_PERSONAL", {}),
    ("CATEGORY_PROMOTIONS", {}),
    ("CATEGORY_SOCIAL", {}),
    ("STARRED", {}),
    ("UNREAD", {}),
]
SYSTEM_LABEL_IDS = frozenset(name for name, _ in _SYSTEM_LABELS)
IMPORT_FORBIDDEN_LABELS = frozenset({"DRAFT", "CHAT"})
RESERVED_LABEL_NAMES = frozenset(
    "inbox spam trash unread starred important sent draft drafts chat chats migrated todo todos buzz bin "
    "allmail archive archived muted".split()
)
# Names real Gmail refuses beyond those (system labels in other interface languages, newer system labels;
# users report them: GYB #135, #429, #442, #518). Kept apart from gimport's own list on purpose: labels.create
# refuses them, so a test proves gimport's rule for any refusal, not its list.
LOCALIZED_RESERVED_NAMES = frozenset(
    n.casefold()
    for n in (
        "Scheduled",
        "Snoozed",
        "Ongelezen",
        "Gearchiveerd",
        "Verzonden",
        "Prullenbak",
        "Enviados",
        "Enviado",
        "Papelera",
        "Borradores",
        "Gesendet",
        "Entwürfe",
        "Papierkorb",
        "Envoyés",
        "Corbeille",
        "Brouillons",
    )
)
_LABEL_LIST_VIS = ("labelShow", "labelShowIfUnread", "labelHide")
_MESSAGE_LIST_VIS = ("show", "hide")

# Gmail quota units per method; anything not listed costs 1.
UNIT_COSTS = {
    "messages.import": 25,
    "messages.insert": 25,
    "messages.send": 100,
    "messages.list": 5,
    "messages.get": 5,
    "messages.modify": 5,
    "labels.create": 5,
    "labels.delete": 5,
    "labels.patch": 5,
    "labels.update": 5,
    "labels.list": 1,
    "labels.get": 1,
    "getProfile": 1,
}

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_5XX_MESSAGES = {
    500: ("Internal error encountered.", "backendError"),
    502: ("Bad Gateway", "backendError"),
    503: ("The service is currently unavailable.", "backendError"),
    504: ("The request timed out. Please try again.", "backendError"),
}
_401_MESSAGE = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
    "valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
_RAW_REQUIRED = "'raw' RFC822 payload message string or uploading message via /upload/* URL required"
_TOKEN_REVOKED = "Token has been expired or revoked."
_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


# --------------------------------------------------------------------------------------------------
# The discovery document: routes, scopes, parameter types, request field names (parsed once).


@dataclasses.dataclass(frozen=True, slots=True)
class _MethodSpec:
    name: str  # "messages.import"
    http_method: str
    regex: re.Pattern
    scopes: frozenset
    units: int
    media: bool
    params: dict  # query parameter name -> (type, enum or None)
    body_fields: frozenset | None  # allowed top-level request fields (camelCase and snake_case), or None


_SPECS_LOCK = threading.Lock()
_SPECS: dict | None = None


def discovery_document_path() -> str:
    """Path of the gmail.v1 discovery document bundled with google-api-python-client (not imported)."""
    spec = importlib.util.find_spec("googleapiclient")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("google-api-python-client is not installed")
    base = next(iter(spec.submodule_search_locations))
    return os.path.join(base, "discovery_cache", "documents", "gmail.v1.json")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _load_specs() -> dict:
    """{"by_name": {name: spec}, "by_http": {"GET": [spec, ...]}} from the bundled discovery document."""
    global _SPECS
    with _SPECS_LOCK:
        if _SPECS is not None:
            return _SPECS
        with open(discovery_document_path(), encoding="utf-8") as fh:
            doc = json.load(fh)
        schemas = doc.get("schemas", {})
        by_name: dict[str, _MethodSpec] = {}

        def walk(resources: dict) -> None:
            for res in resources.values():
                for m in res.get("methods", {}).values():
                    name = m["id"].removeprefix("gmail.users.")
                    path = m.get("flatPath", m["path"])
                    pattern = ""
                    for lit, var in re.findall(r"([^{]*)(?:\{([^}]+)\})?", path):
                        pattern += re.escape(lit)
                        if var:
                            pattern += f"(?P<{var}>[^/]+)"
                    params = {
                        p: (d.get("type"), tuple(d["enum"]) if "enum" in d else None)
                        for p, d in m.get("parameters", {}).items()
                        if d.get("location") == "query"
                    }
                    fields = None
                    ref = (m.get("request") or {}).get("$ref")
                    if ref and ref in schemas:
                        props = schemas[ref].get("properties", {})
                        fields = frozenset(list(props) + [_snake(p) for p in props])
                    if name.startswith("settings.") and not name.startswith("settings.get"):
                        units = 5 if "." not in name[len("settings.") :] else 1
                    elif name.startswith("settings.get"):
                        units = 1
                    else:
                        units = UNIT_COSTS.get(name, 1)
                    by_name[name] = _MethodSpec(
                        name=name,
                        http_method=m["httpMethod"],
                        regex=re.compile(pattern),
                        scopes=frozenset(m.get("scopes", ())),
                        units=units,
                        media=bool(m.get("supportsMediaUpload")),
                        params=params,
                        body_fields=fields,
                    )
                walk(res.get("resources", {}))

        walk(doc.get("resources", {}))
        by_http: dict[str, list] = collections.defaultdict(list)
        for spec in by_name.values():
            by_http[spec.http_method].append(spec)
        for lst in by_http.values():
            # Literal-heavy patterns first, so ".../messages/import" wins over ".../messages/{id}".
            lst.sort(key=lambda s: (s.regex.pattern.count("(?P<"), -len(s.regex.pattern)))
        _SPECS = {"by_name": by_name, "by_http": dict(by_http)}
        return _SPECS


def canonical_method(name: str) -> str:
    """Normalise a fault/stats method name (see module docstring); raises ValueError if unknown."""
    if name == "*":
        return name
    name = name.removeprefix("gmail.users.")
    name = _METHOD_ALIASES.get(name, name)
    if name not in PSEUDO_METHODS and name not in _load_specs()["by_name"]:
        raise ValueError(f"unknown method name {name!r}")
    return name


# --------------------------------------------------------------------------------------------------
# Public data types


@dataclasses.dataclass(eq=False)
class Fault:
    """An injected fault; see the module docstring for kinds and method names."""

    kind: str
    method: str = "import"
    count: int | None = 1
    skip: int = 0
    match: bytes | None = None
    delay: float = 0.0
    status: int = 503
    fired: int = dataclasses.field(default=0, init=False)
    seen: int = dataclasses.field(default=0, init=False)
    _wake: threading.Event = dataclasses.field(default_factory=threading.Event, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {sorted(FAULT_KINDS)}")
        self.method = canonical_method(self.method)
        if isinstance(self.match, str):
            self.match = self.match.encode("utf-8")
        if self.kind in ("5xx_before", "5xx_after") and not 500 <= self.status <= 599:
            raise ValueError("5xx faults need a 5xx status")

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.fired >= self.count

    def release(self) -> None:
        """Wake every call sleeping in this "slow" or "hang" fault now (and make later ones not sleep)."""
        self._wake.set()

    def _applies(self, method: str, subject: bytes | None) -> bool:
        if self.method != "*" and self.method != method:
            return False
        return not (self.match is not None and (subject is None or self.match not in subject))


class FaultList:
    """Thread-safe ordered list of faults (``emu.faults``)."""

    def __init__(self, stats: Stats) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._stats = stats

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def remove(self, fault: Fault) -> None:
        with self._lock:
            self._faults.remove(fault)

    def clear(self) -> None:
        with self._lock:
            faults, self._faults = self._faults, []
        for f in faults:
            f.release()

    def __iter__(self):
        with self._lock:
            return iter(list(self._faults))

    def __len__(self) -> int:
        with self._lock:
            return len(self._faults)

    def _select(self, method: str, subject: bytes | None) -> Fault | None:
        if not self._faults:
            return None
        with self._lock:
            for f in self._faults:
                if f.exhausted or not f._applies(method, subject):
                    continue
                if f.seen < f.skip:
                    f.seen += 1
                    continue
                f.seen += 1
                f.fired += 1
                self._stats._inc("faults_fired")
                return f
        return None


@dataclasses.dataclass(eq=False)
class StoredMessage:
    id: str
    thread_id: str
    raw: bytes
    label_ids: list
    params: dict
    internal_date_ms: int
    message_id: str | None
    upload_path: str
    history_id: int = 0


@dataclasses.dataclass(eq=False)
class UserState:
    email: str
    messages: list = dataclasses.field(default_factory=list)
    import_calls: int = 0
    labels: dict = dataclasses.field(default_factory=dict)
    imap: dict = dataclasses.field(
        default_factory=lambda: {
            "enabled": True,
            "autoExpunge": True,
            "expungeBehavior": "archive",
            "maxFolderSize": 0,
        }
    )
    imap_locked_enabled: bool = False
    auto_forwarding: dict = dataclasses.field(default_factory=lambda: {"enabled": False})
    forwarding_addresses: list = dataclasses.field(default_factory=list)
    filters: list = dataclasses.field(default_factory=list)
    send_as: list = dataclasses.field(default_factory=list)
    exists: bool = True
    history_id: int = 1000
    # internal indexes
    _by_id: dict = dataclasses.field(default_factory=dict, repr=False)
    _by_message_id: dict = dataclasses.field(default_factory=dict, repr=False)
    _next_label: int = dataclasses.field(default=1, repr=False)
    _bucket_tokens: float | None = dataclasses.field(default=None, repr=False)
    _bucket_time: float = dataclasses.field(default=0.0, repr=False)
    _window: collections.deque = dataclasses.field(default_factory=collections.deque, repr=False)  # (t, units)
    _window_units: float = dataclasses.field(default=0.0, repr=False)
    _in_flight: int = dataclasses.field(default=0, repr=False)

    def __post_init__(self) -> None:
        if not self.labels:
            for lid, extra in _SYSTEM_LABELS:
                self.labels[lid] = {"id": lid, "name": lid, **extra, "type": "system"}
        if not self.send_as:
            self.send_as.append({"sendAsEmail": self.email, "displayName": "", "isPrimary": True, "isDefault": True})

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def message_by_id(self, message_id: str) -> StoredMessage | None:
        return self._by_id.get(message_id)


class Stats:
    """Thread-safe counters (``emu.stats``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: collections.Counter = collections.Counter()
        self.rate_limited = 0  # every 429 sent (quota, concurrency, injected)
        self.limited_by_method: collections.Counter = collections.Counter()  # the quota's and concurrency's 429s
        self.quota_limited = 0
        self.concurrency_limited = 0
        self.faults_fired = 0
        self.bytes_received = 0
        self.merged = 0
        self.units_charged: collections.Counter = collections.Counter()

    def _inc(self, attr: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, attr, getattr(self, attr) + n)

    def _count_limited(self, method: str) -> None:
        with self._lock:
            self.limited_by_method[method] += 1

    def _count_request(self, method: str) -> None:
        with self._lock:
            self.requests[method] += 1

    def _charge(self, email: str, units: int) -> None:
        with self._lock:
            self.units_charged[email] += units

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "requests": dict(self.requests),
                "rate_limited": self.rate_limited,
                "limited_by_method": dict(self.limited_by_method),
                "quota_limited": self.quota_limited,
                "concurrency_limited": self.concurrency_limited,
                "faults_fired": self.faults_fired,
                "bytes_received": self.bytes_received,
                "merged": self.merged,
                "units_charged": dict(self.units_charged),
            }


# --------------------------------------------------------------------------------------------------
# Small helpers


class _Req:
    __slots__ = ("body", "headers", "method", "path", "query")

    def __init__(self, method: str, path: str, query: dict, headers: dict, body: bytes) -> None:
        self.method = method
        self.path = path  # without the leading "/", still %-encoded
        self.query = query  # name -> list[str]
        self.headers = headers  # lower-case name -> value
        self.body = body

    def q(self, name: str, default: str | None = None) -> str | None:
        v = self.query.get(name)
        return v[0] if v else default


class _Resp:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list | None = None, body: bytes = b"") -> None:
        self.status = status
        self.headers = headers or []
        self.body = body


class _Ctx:
    """Per HTTP request: what to do with the connection afterwards, and batch slot bookkeeping."""

    __slots__ = ("abort", "held", "host")

    def __init__(self, host: str) -> None:
        self.abort: str | None = None  # "reset" | "close"
        self.held: set | None = None  # users holding a concurrency slot for the whole batch
        self.host = host


class _Token:
    __slots__ = ("client_id", "email", "expires", "family", "kind", "revoked", "scopes")

    def __init__(self, email, scopes, expires, family, kind, client_id=None) -> None:
        self.email = email
        self.scopes = scopes
        self.expires = expires
        self.family = family
        self.kind = kind
        self.revoked = False
        self.client_id = client_id


class _Upload:
    __slots__ = ("buf", "email", "id", "label_ids", "lock", "params", "result", "spec", "thread_id", "total")

    def __init__(self, uid, email, spec, params, label_ids, thread_id, total) -> None:
        self.id = uid
        self.email = email
        self.spec = spec
        self.params = params
        self.label_ids = label_ids
        self.thread_id = thread_id
        self.total = total
        self.buf = bytearray()
        self.result: bytes | None = None
        self.lock = threading.Lock()


class _ApiError(Exception):
    def __init__(self, resp: _Resp) -> None:
        super().__init__(resp.status)
        self.resp = resp


_JSON_HEADERS = [("Content-Type", "application/json; charset=UTF-8")]


def _json(status: int, obj, headers: list | None = None) -> _Resp:
    body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return _Resp(status, _JSON_HEADERS + (headers or []), body)


def _gerror(code: int, message: str, reason: str, domain: str = "global", status: str | None = None, **kw):
    err = {"message": message, "domain": domain, "reason": reason}
    err.update(kw.pop("extra", {}))
    body = {
        "error": {
            "code": code,
            "message": message,
            "errors": [err],
            "status": status or _STATUS_NAMES.get(code, "UNKNOWN"),
        }
    }
    if "details" in kw:
        body["error"]["details"] = kw["details"]
    return _json(code, body, kw.get("headers"))


def _bad(message: str, reason: str = "invalidArgument") -> _Resp:
    return _gerror(400, message, reason)


def _failed_precondition(message: str) -> _Resp:
    return _gerror(400, message, "failedPrecondition", status="FAILED_PRECONDITION")


def _not_found(message: str = "Requested entity was not found.") -> _Resp:
    return _gerror(404, message, "notFound")


def _server_error(status: int) -> _Resp:
    msg, reason = _5XX_MESSAGES.get(status, ("Backend Error", "backendError"))
    return _gerror(status, msg, reason)


def _rfc3339_ms(t: float) -> str:
    ms = math.ceil(t * 1000)
    dt = datetime.datetime.fromtimestamp(ms // 1000, datetime.UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _insufficient_scopes(method: str) -> _Resp:
    message = "Request had insufficient authentication scopes."
    body = {
        "error": {
            "code": 403,
            "message": message,
            "errors": [{"message": "Insufficient Permission", "domain": "global", "reason": "insufficientPermissions"}],
            "status": "PERMISSION_DENIED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                    "domain": "googleapis.com",
                    "metadata": {"service": "gmail.googleapis.com", "method": "gmail.users." + method},
                }
            ],
        }
    }
    return _json(403, body)


def _rate_limited(retry_at: float) -> _Resp:
    msg = "User-rate limit exceeded.  Retry after " + _rfc3339_ms(retry_at)
    return _gerror(429, msg, "rateLimitExceeded", domain="usageLimits")


def _too_many_concurrent() -> _Resp:
    return _gerror(429, "Too many concurrent requests for user.", "rateLimitExceeded", domain="usageLimits")


def _oauth_error(status: int, error: str, description: str | None = None) -> _Resp:
    body = {"error": error}
    if description is not None:
        body["error_description"] = description
    return _json(status, body)


_URLSAFE_TO_STD = str.maketrans("-_", "+/")


def _b64decode_any(s: str) -> bytes:
    """base64url with or without padding, or standard base64 (Google accepts both for bytes fields)."""
    s = s.strip().translate(_URLSAFE_TO_STD)
    rem = len(s) % 4
    if rem == 1:
        raise ValueError("bad base64 length")
    if rem:
        s += "=" * (4 - rem)
    return base64.b64decode(s, validate=True)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_WANTED_HEADERS = frozenset({b"message-id", b"date", b"references", b"in-reply-to"})


def parse_header_fields(raw: bytes) -> dict:
    """First Message-ID/Date/References/In-Reply-To of the header block, unfolded, decoded latin-1."""
    end1 = raw.find(b"\r\n\r\n")
    end2 = raw.find(b"\n\n")
    ends = [e for e in (end1, end2) if e >= 0]
    head = raw[: min(ends)] if ends else raw
    out: dict[str, str] = {}
    name: bytes | None = None
    value: list[bytes] = []

    def flush() -> None:
        if name is not None and name in _WANTED_HEADERS:
            key = name.decode("ascii")
            if key not in out:
                out[key] = b" ".join(v.strip() for v in value).decode("latin-1").strip()

    for line in head.split(b"\n"):
        if line.endswith(b"\r"):
            line = line[:-1]
        if line[:1] in (b" ", b"\t"):
            if name is not None:
                value.append(line)
            continue
        flush()
        name, sep, rest = line.partition(b":")
        if not sep or not name or b" " in name:
            name = None
            value = []
            continue
        name = name.lower()
        value = [rest]
    flush()
    return out


# How the emulator reads a Date header for internalDateSource=dateHeader. Google does not document what
# Gmail reads: "lenient" reads whatever email.utils can parse (the kindest plausible Gmail); "strict" reads
# only RFC 5322 §3.3's strict date-time in exactly one Date header and dates anything else at the time of
# the import (the worst plausible Gmail: its users see old mail dated "today").
DATE_MODES = ("lenient", "strict")
_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_STRICT_DATE = re.compile(
    r"(?:(?P<dow>[A-Z][a-z]{2}),[ \t]*)?(?P<day>\d{1,2})[ \t]+(?P<mon>[A-Z][a-z]{2})[ \t]+(?P<year>\d{4})[ \t]+"
    r"(?P<hh>\d\d):(?P<mm>\d\d)(?::(?P<ss>\d\d))?[ \t]+(?P<zone>[+-]\d{4})(?:[ \t]*\([^()]*\))*"
)
_DATE_LINE = re.compile(rb"^date[ \t]*:", re.MULTILINE | re.IGNORECASE)


def strict_date(value: str) -> datetime.datetime | None:
    """The instant of an RFC 5322 §3.3 date-time in its strict form (English names, four-digit year from
    1900, numeric zone, values in range, the right day of the week; a trailing comment), else None."""
    m = _STRICT_DATE.fullmatch(value.strip())
    if m is None or m["mon"] not in _MONTH_NAMES or (m["dow"] is not None and m["dow"] not in _DAY_NAMES):
        return None
    zone = int(m["zone"][1:3]) * 60 + int(m["zone"][3:])
    if int(m["zone"][3:]) > 59 or int(m["year"]) < 1900:
        return None
    try:
        tz = datetime.timezone(datetime.timedelta(minutes=-zone if m["zone"][0] == "-" else zone))
        when = datetime.datetime(
            int(m["year"]), _MONTH_NAMES.index(m["mon"]) + 1, int(m["day"]),
            int(m["hh"]), int(m["mm"]), int(m["ss"] or 0), tzinfo=tz,
        )  # fmt: skip
    except ValueError:
        return None
    if m["dow"] is not None and _DAY_NAMES[when.weekday()] != m["dow"]:
        return None
    return when


def _date_lines(raw: bytes) -> int:
    ends = [e for e in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if e >= 0]
    return len(_DATE_LINE.findall(raw[: min(ends)] if ends else raw))


def _internal_date_ms(fields: dict, source: str, *, strict: bool = False, date_lines: int = 1) -> int:
    now = int(time.time() * 1000)
    if source == "receivedTime":
        return now
    value = fields.get("date")
    if not value:
        return now
    if strict:
        when = strict_date(value) if date_lines == 1 else None
        return now if when is None else int(when.timestamp() * 1000)
    try:
        dt = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return now
    if dt is None:
        return now
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.UTC)
    try:
        return int(dt.timestamp() * 1000)
    except (OverflowError, OSError, ValueError):
        return now


def _jwt_part(data: dict) -> str:
    return _b64url(json.dumps(data, separators=(",", ":")).encode())


def _split_multipart(body: bytes, content_type: str) -> list[tuple[dict, bytes]]:
    """Split a multipart body on bytes (never email.parser): [(headers lower-case, content), ...]."""
    m = re.search(r'boundary="?([^";]+)"?', content_type, re.I)
    if not m:
        raise ValueError("no boundary in Content-Type")
    delim = b"--" + m.group(1).strip().encode("latin-1")
    first = body.find(delim)
    if first < 0:
        raise ValueError("boundary not found")
    after = body[first + len(delim) : first + len(delim) + 2]
    nl = b"\r\n" if after == b"\r\n" else b"\n"
    sep = nl + delim
    parts = []
    pos = first + len(delim)
    while True:
        if body[pos : pos + 2] == b"--":
            break  # closing delimiter
        line_end = body.find(b"\n", pos)
        if line_end < 0:
            raise ValueError("truncated multipart")
        start = line_end + 1
        nxt = body.find(sep, start)
        if nxt < 0:
            raise ValueError("unterminated multipart part")
        parts.append(_split_head_body(body[start:nxt]))
        pos = nxt + len(sep)
    return parts


def _split_head_body(part: bytes) -> tuple[dict, bytes]:
    """Header block (CRLF or LF) then blank line then content."""
    headers: dict[str, str] = {}
    pos = 0
    while True:
        nl = part.find(b"\n", pos)
        if nl < 0:
            line, pos = part[pos:], len(part)
        else:
            line, pos = part[pos:nl], nl + 1
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            break
        if line[:1] in (b" ", b"\t") and headers:
            last = next(reversed(headers))
            headers[last] += " " + line.strip().decode("latin-1")
            continue
        k, _, v = line.partition(b":")
        headers[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
        if pos >= len(part):
            break
    return headers, part[pos:]


# --------------------------------------------------------------------------------------------------
# The HTTP layer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # the default backlog of 5 stalls many clients connecting at once (SYN retry: 1 s)

    def __init__(self, addr, handler, emu: GmailEmulator) -> None:
        self.emu = emu
        self._conns: set = set()
        self._conns_lock = threading.Lock()
        super().__init__(addr, handler)

    def process_request(self, request, client_address):
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # the client went away: nothing to report
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ESF"
    sys_version = ""
    timeout = 300  # idle keep-alive connections are dropped after this

    def log_message(self, format, *args):  # silence the default stderr log
        pass

    def _serve(self) -> None:
        emu: GmailEmulator = self.server.emu
        headers = {k.lower(): v for k, v in self.headers.items()}
        method = headers.get("x-http-method-override", self.command).upper()
        target = self.path
        if target.startswith(("http://", "https://")):
            target = urllib.parse.urlsplit(target)._replace(scheme="", netloc="").geturl()
        path, _, qs = target.partition("?")
        length = headers.get("content-length")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = self._read_chunked()
        elif length:
            n = int(length) if length.strip().isdigit() else -1
            if n < 0:
                self.close_connection = True
                self._write(_bad("Invalid Content-Length"))
                return
            if n > MAX_REQUEST_BYTES:
                self.close_connection = True
                self._write(_gerror(413, "Request payload too large", "uploadTooLarge"))
                return
            body = self.rfile.read(n)
        else:
            body = b""
        emu.stats._inc("bytes_received", len(body))
        query = urllib.parse.parse_qs(qs, keep_blank_values=True) if qs else {}
        req = _Req(method, path.lstrip("/"), query, headers, body)
        ctx = _Ctx(headers.get("host") or emu._hostport)
        try:
            resp = emu._dispatch(req, ctx)
        except Exception as exc:  # noqa: BLE001 - a bug in the emulator: answer 500 and say what it was
            resp = _gerror(500, f"emulator bug: {exc!r}", "backendError")
        if ctx.abort is not None:
            self._abort(ctx.abort)
            return
        if headers.get("connection", "").lower() == "close":
            self.close_connection = True
        self._write(resp)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    def _read_chunked(self) -> bytes:
        out = bytearray()
        while True:
            line = self.rfile.readline(65537)
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(out)
            out += self.rfile.read(size)
            self.rfile.readline(65537)

    def _write(self, resp: _Resp) -> None:
        phrase = "Resume Incomplete" if resp.status == 308 else HTTPStatus(resp.status).phrase
        lines = [f"HTTP/1.1 {resp.status} {phrase}\r\n"]
        for k, v in resp.headers:
            lines.append(f"{k}: {v}\r\n")
        body = b"" if self.command == "HEAD" else resp.body
        lines.append(f"Content-Length: {len(resp.body)}\r\n")
        if self.close_connection:
            lines.append("Connection: close\r\n")
        lines.append("\r\n")
        # Headers and body in one write: two writes cost a delayed-ACK round trip per request.
        self.wfile.write("".join(lines).encode("latin-1") + body)

    def _abort(self, how: str) -> None:
        self.close_connection = True
        try:
            if how == "reset":
                # Linger 0: close() sends RST; the client sees ConnectionResetError, not a clean EOF.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                self.connection.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self.connection.close()


# --------------------------------------------------------------------------------------------------
# The emulator


class GmailEmulator:
    """In-process Gmail API + Google OAuth emulator; see the module docstring.

    quota_units_per_minute: None = unlimited, else enforced per user as `quota_mode` says:
    ``"bucket"`` (default): a token bucket refilled at upm/60 units/s holding upm/60*burst_seconds units
    (a call dearer than the whole bucket passes when it is full);
    ``"sliding"``: a sliding window of `quota_window` seconds: a call is refused when the units charged
    in the last quota_window seconds plus its own exceed upm*quota_window/60 (a call dearer than the
    whole window passes when the window is empty). Both refuse with Gmail's 429 "Retry after <time>",
    the time at which the same call would pass; refused calls cost nothing.
    max_concurrent: per-user cap on requests in flight (None = no cap); a batch is one request. A call over
    the cap is refused at once (before any latency) with 429 "Too many concurrent requests for user."
    latency, latency_per_mb: every Gmail API call (and every chunk of a resumable upload) is answered
    `latency + latency_per_mb * MB of its request body` seconds after it arrived, holding its concurrency
    slot all along (real Gmail answers a small import in a few hundred ms, a large one in seconds). Quota
    refusals wait too; OAuth and control endpoints never do. Both may be changed while running.
    merge_duplicates: a messages.import of a Message-ID already imported for that user returns the
    existing message (labels merged) instead of storing a second copy. messages.insert never merges.
    date_mode: how internalDateSource=dateHeader reads the Date header: ``"lenient"`` (default; whatever
    email.utils parses) or ``"strict"`` (RFC 5322 §3.3's strict form in exactly one Date header, else the
    time of the import); see DATE_MODES.
    """

    def __init__(
        self,
        quota_units_per_minute: float | None = None,
        burst_seconds: float = 1.0,
        quota_mode: str = "bucket",
        quota_window: float = 60.0,
        max_concurrent: int | None = 10,
        merge_duplicates: bool = True,
        date_mode: str = "lenient",
        latency: float = 0.0,
        latency_per_mb: float = 0.0,
        access_token_lifetime: int = 3600,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._specs = _load_specs()
        self.quota_units_per_minute = quota_units_per_minute
        self.burst_seconds = burst_seconds
        if quota_mode not in QUOTA_MODES:
            raise ValueError(f"quota_mode must be one of {sorted(QUOTA_MODES)}, not {quota_mode!r}")
        if quota_window <= 0:
            raise ValueError("quota_window must be positive")
        self.quota_mode = quota_mode
        self.quota_window = quota_window
        self.max_concurrent = max_concurrent
        if latency < 0 or latency_per_mb < 0:
            raise ValueError("latency must not be negative")
        self.latency, self.latency_per_mb = latency, latency_per_mb
        self._stopping = threading.Event()  # cuts latency waits short at stop()
        self.merge_duplicates = merge_duplicates
        if date_mode not in DATE_MODES:
            raise ValueError(f"date_mode must be one of {DATE_MODES}, not {date_mode!r}")
        self.date_mode = date_mode
        self.access_token_lifetime = access_token_lifetime
        self.host = host
        self.port = port
        self.client_id = f"emulator-{secrets.token_hex(6)}.apps.googleusercontent.com"
        self.client_secret = "GOCSPX-emulator-" + secrets.token_urlsafe(18)
        self.deny_consent = False
        self.consent_user: str | None = None
        self.authorize_requests: list[dict] = []  # query of every authorize request (inspection)
        self.stats = Stats()
        self.faults = FaultList(self.stats)
        self._lock = threading.RLock()
        self._users: dict[str, UserState] = {}
        self._tokens: dict[str, _Token] = {}  # access and refresh tokens
        self._codes: dict[str, dict] = {}
        self._uploads: dict[str, _Upload] = {}
        self._next_msg = 0x19A0000000000000 + secrets.randbelow(1 << 40)
        self._route_cache: dict = {}
        self.modified: list[tuple[str, str, tuple, tuple]] = []  # messages.modify calls: email, id, add, remove
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._handlers = {
            "labels.list": self._labels_list,
            "labels.get": self._labels_get,
            "labels.create": self._labels_create,
            "labels.delete": self._labels_delete,
            "messages.import": self._messages_import,
            "messages.insert": self._messages_import,
            "messages.list": self._messages_list_by_label,
            "messages.get": self._messages_get_scoped,
            "messages.modify": self._messages_modify,
            "getProfile": self._get_profile,
            "settings.getImap": self._get_imap,
            "settings.updateImap": self._update_imap,
            "settings.getAutoForwarding": self._get_auto_forwarding,
            "settings.updateAutoForwarding": self._update_auto_forwarding,
            "settings.forwardingAddresses.list": self._list_forwarding,
            "settings.filters.list": self._list_filters,
            "settings.sendAs.list": self._list_send_as,
        }

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> GmailEmulator:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server((self.host, self.port), _Handler, self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="gmail-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        for f in self.faults:
            f.release()
        self._stopping.set()
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> GmailEmulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def _hostport(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"http://{self._hostport}/"

    # ---- users, tokens, inspection ---------------------------------------------------------------

    def add_user(self, email: str) -> UserState:
        key = email.lower()
        with self._lock:
            state = self._users.get(key)
            if state is None:
                state = self._users[key] = UserState(email=email)
                if self.consent_user is None:
                    self.consent_user = email
            return state

    def user(self, email: str) -> UserState:
        return self._users[email.lower()]

    @property
    def users(self) -> dict:
        return dict(self._users)

    def label_by_name(self, user: str, name: str) -> dict | None:
        folded = name.casefold()
        with self._lock:
            for lab in self.user(user).labels.values():
                if lab["name"].casefold() == folded:
                    return lab
        return None

    def set_quota(
        self,
        quota_units_per_minute: float | None,
        burst_seconds: float | None = None,
        *,
        mode: str | None = None,
        window: float | None = None,
    ) -> None:
        """Change the quota (and optionally its mode, burst or window); every user starts afresh."""
        if mode is not None and mode not in QUOTA_MODES:
            raise ValueError(f"mode must be one of {sorted(QUOTA_MODES)}, not {mode!r}")
        if window is not None and window <= 0:
            raise ValueError("window must be positive")
        with self._lock:
            self.quota_units_per_minute = quota_units_per_minute
            if burst_seconds is not None:
                self.burst_seconds = burst_seconds
            if mode is not None:
                self.quota_mode = mode
            if window is not None:
                self.quota_window = window
            for st in self._users.values():
                st._bucket_tokens = None  # refilled to capacity on next use
                st._window.clear()
                st._window_units = 0.0

    def client_config(self) -> dict:
        return {
            "installed": {
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "auth_uri": self.base_url + "o/oauth2/auth",
                "token_uri": self.base_url + "token",
                "redirect_uris": ["http://localhost"],
            }
        }

    def authorized_user_info(self, email: str, scopes=("https://mail.google.com/",)) -> dict:
        """google-auth "authorized_user" info with a fresh refresh token for a known user."""
        if email.lower() not in self._users:
            raise KeyError(f"unknown user {email!r}: call add_user() first")
        scopes = list(scopes)
        refresh = self._mint("refresh", email, frozenset(scopes), family=None, client_id=self.client_id)
        return {
            "type": "authorized_user",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "refresh_token": refresh,
            "token_uri": self.base_url + "token",
            "scopes": scopes,
        }

    def issue_access_token(self, email: str, scopes) -> str:
        """An access token directly (no OAuth round trip), for tests that do not care about OAuth."""
        return self._mint("access", email, frozenset(scopes), family=None)

    def expire_access_tokens(self, email: str | None = None) -> int:
        now = time.monotonic()
        n = 0
        with self._lock:
            for tok in self._tokens.values():
                mine = email is None or tok.email.lower() == email.lower()
                if tok.kind == "access" and mine and tok.expires > now:
                    tok.expires = now
                    n += 1
        return n

    def revoke_refresh_tokens(self, email: str | None = None) -> int:
        """Refresh grants now fail with invalid_grant; access tokens already issued keep working."""
        n = 0
        with self._lock:
            for tok in self._tokens.values():
                mine = email is None or tok.email.lower() == email.lower()
                if tok.kind == "refresh" and mine and not tok.revoked:
                    tok.revoked = True
                    n += 1
        return n

    def in_flight(self, email: str) -> int:
        return self.user(email)._in_flight

    def _mint(self, kind: str, email: str, scopes: frozenset, family: str | None, client_id=None) -> str:
        prefix = {"access": "ya29.emu-", "refresh": "1//emu-"}[kind]
        token = prefix + secrets.token_urlsafe(24)
        if kind == "access":
            expires = time.monotonic() + self.access_token_lifetime
        else:
            expires = math.inf
        with self._lock:
            self._tokens[token] = _Token(email, scopes, expires, family or token, kind, client_id)
        return token

    # ---- dispatch ---------------------------------------------------------------------------------

    def _dispatch(self, req: _Req, ctx: _Ctx) -> _Resp:
        p = req.path
        if p.startswith("gmail/v1/"):
            return self._api(req, ctx, p, None)
        if p.startswith("upload/gmail/v1/") or p.startswith("resumable/upload/gmail/v1/"):
            return self._upload(req, ctx, p.partition("upload/")[2])
        if p in ("batch", "batch/gmail/v1") and req.method == "POST":
            return self._batch(req, ctx)
        if p in ("token", "o/oauth2/token", "oauth2/v4/token"):
            return self._outer_call(ctx, "oauth.token", req.body, lambda: self._token(req))
        if p in ("o/oauth2/auth", "o/oauth2/v2/auth"):
            return self._outer_call(ctx, "oauth.authorize", None, lambda: self._authorize(req))
        if p in ("revoke", "o/oauth2/revoke"):
            return self._outer_call(ctx, "oauth.revoke", req.body, lambda: self._revoke(req))
        if p.startswith("_emulator/"):
            return self._control(req, p[len("_emulator/") :])
        return _gerror(404, "Not Found", "notFound")

    def _route(self, method: str, path: str):
        key = (method, path)
        hit = self._route_cache.get(key)
        if hit is not None:
            return hit
        for spec in self._specs["by_http"].get(method, ()):
            m = spec.regex.fullmatch(path)
            if m:
                hit = (spec, {k: urllib.parse.unquote(v) for k, v in m.groupdict().items()})
                break
        else:
            hit = (None, None)
        if len(self._route_cache) > 4096:
            self._route_cache.clear()
        self._route_cache[key] = hit
        return hit

    def _outer_call(self, ctx: _Ctx, method: str, subject, fn) -> _Resp:
        """A non-Gmail call (OAuth endpoints, batch): counted, subject to faults, never to quota."""
        self.stats._count_request(method)
        fault, early = self._before_faults(method, subject)
        if early is not None:
            return early
        resp = fn()
        return self._after_faults(fault, resp, ctx)

    def _before_faults(self, method: str, subject) -> tuple[Fault | None, _Resp | None]:
        fault = self.faults._select(method, subject)
        if fault is None:
            return None, None
        kind = fault.kind
        if kind == "slow":
            fault._wake.wait(fault.delay)
        elif kind == "hang":
            fault._wake.wait()
        elif kind == "5xx_before":
            return fault, _server_error(fault.status)
        elif kind == "400":
            msg = "Invalid message" if method in ("messages.import", "messages.insert") else "Bad Request"
            return fault, _bad(msg)
        elif kind == "429":
            self.stats._inc("rate_limited")
            return fault, _rate_limited(time.time() + max(fault.delay, 0.0))
        return fault, None

    def _after_faults(self, fault: Fault | None, resp: _Resp, ctx: _Ctx) -> _Resp:
        if fault is None:
            return resp
        if fault.kind == "5xx_after":
            return _server_error(fault.status)
        if fault.kind == "reset_after":
            ctx.abort = "reset"
        elif fault.kind == "close_after" and ctx.abort is None:
            ctx.abort = "close"
        return resp

    def _authenticate(self, req: _Req) -> tuple[_Token | None, _Resp | None]:
        auth = req.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        tok = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if tok is None or tok.kind != "access" or tok.revoked or tok.expires <= time.monotonic():
            return None, _gerror(
                401,
                _401_MESSAGE,
                "authError",
                extra={"location": "Authorization", "locationType": "header"},
                headers=[("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/", error="invalid_token"')],
            )
        return tok, None

    def _api(self, req: _Req, ctx: _Ctx, path: str, upload_path: str | None) -> _Resp:
        """One Gmail call: route, auth, scope, user, concurrency, faults, quota, handler."""
        spec, pp = self._route(req.method, path)
        if spec is None:
            self.stats._count_request("unknown")
            return _gerror(404, f"Not Found: {req.method} /{path}", "notFound")
        self.stats._count_request(spec.name)
        tok, err = self._authenticate(req)
        if err is not None:
            return err
        if spec.scopes and spec.scopes.isdisjoint(tok.scopes):
            return _insufficient_scopes(spec.name)
        user_id = pp.get("userId", "me")
        if user_id != "me" and user_id.lower() != tok.email.lower():
            return _gerror(403, f"Delegation denied for {tok.email}", "forbidden")
        state = self._users.get(tok.email.lower())
        if state is None:
            return _failed_precondition("Precondition check failed.")
        if not state.exists:
            return _failed_precondition("Mail service not enabled")
        # Query parameter types (booleans and enums) as the Google front end checks them.
        for name, values in req.query.items():
            pdef = spec.params.get(name)
            if pdef is None:
                continue
            ptype, enum = pdef
            v = values[-1]
            if ptype == "boolean" and v.lower() not in ("true", "false", "1", "0"):
                return _bad(f"Invalid value at '{_snake(name)}' (TYPE_BOOL), \"{v}\"")
            if enum is not None and v not in enum:
                return _bad(f"Invalid value at '{_snake(name)}' ({name}), \"{v}\"")
        acquired = self._acquire(state, ctx)
        if acquired is None:
            self.stats._inc("rate_limited")
            self.stats._inc("concurrency_limited")
            self.stats._count_limited(spec.name)
            return _too_many_concurrent()
        call = _Call(self, spec, state, tok, req, pp, upload_path)
        try:
            handler = self._handlers.get(spec.name)
            if spec.name in ("messages.import", "messages.insert"):
                resp = handler(call)  # gates itself once the raw message is known
            else:
                resp = call.gate(req.body or None)
                if resp is None:
                    if handler is None:
                        resp = _gerror(
                            501, f"gmail.users.{spec.name} is not implemented by the emulator", "notImplemented"
                        )
                    else:
                        resp = handler(call)
            return self._after_faults(call.fault, resp, ctx)
        except _ApiError as e:
            return self._after_faults(call.fault, e.resp, ctx)
        finally:
            self._take_time(len(req.body or b""))
            if acquired:
                self._release(state)

    def _take_time(self, body_bytes: int) -> None:
        """The call's latency (see GmailEmulator), while it holds its concurrency slot."""
        delay = self.latency + self.latency_per_mb * body_bytes / 1e6
        if delay > 0:
            self._stopping.wait(delay)

    def _acquire(self, state: UserState, ctx: _Ctx) -> bool | None:
        """True: took a slot (release it after the call); False: the batch holds one; None: over the cap."""
        with self._lock:
            if ctx.held is not None and state.email in ctx.held:
                return False
            if self.max_concurrent is not None and state._in_flight >= self.max_concurrent:
                return None
            state._in_flight += 1
            if ctx.held is not None:
                ctx.held.add(state.email)
                return False
            return True

    def _release(self, state: UserState) -> None:
        with self._lock:
            state._in_flight -= 1

    def _charge(self, state: UserState, units: int) -> _Resp | None:
        upm = self.quota_units_per_minute
        if upm is None or units <= 0:
            self.stats._charge(state.email, units)
            return None
        with self._lock:
            now = time.monotonic()
            if self.quota_mode == "sliding":
                wait = self._charge_window(state, units, upm, now)
            else:
                wait = self._charge_bucket(state, units, upm, now)
        if wait is not None:
            self.stats._inc("rate_limited")
            self.stats._inc("quota_limited")
            return _rate_limited(time.time() + wait)
        self.stats._charge(state.email, units)
        return None

    def _charge_bucket(self, state: UserState, units: int, upm: float, now: float) -> float | None:
        """Token bucket (under the lock): None = charged, else seconds until the call would pass."""
        rate = upm / 60.0
        cap = rate * self.burst_seconds
        if state._bucket_tokens is None:
            tokens = cap
        else:
            tokens = min(cap, state._bucket_tokens + (now - state._bucket_time) * rate)
        need = min(units, cap)  # a call dearer than the whole bucket passes when the bucket is full
        state._bucket_time = now
        if tokens + 1e-9 < need:
            state._bucket_tokens = tokens
            return (need - tokens) / rate
        state._bucket_tokens = tokens - units
        return None

    def _charge_window(self, state: UserState, units: int, upm: float, now: float) -> float | None:
        """Sliding window (under the lock): None = charged, else seconds until the call would pass, i.e.
        until enough of the charges in the window have aged out of it."""
        window, entries = self.quota_window, state._window
        limit = upm * window / 60.0
        while entries and entries[0][0] <= now - window:
            state._window_units -= entries.popleft()[1]
        if not entries:
            state._window_units = 0.0  # no float drift
        need = min(units, limit)  # a call dearer than the whole window passes when the window is empty
        if state._window_units + need > limit + 1e-9:
            left = state._window_units
            for stamp, charged in entries:
                left -= charged
                if left + need <= limit + 1e-9:
                    return max(0.0, stamp + window - now)
            return max(0.0, entries[-1][0] + window - now)  # not reached: the empty window fits `need`
        entries.append((now, units))
        state._window_units += units
        return None

    # ---- Gmail handlers ---------------------------------------------------------------------------

    def _labels_list(self, call: _Call) -> _Resp:
        with self._lock:
            labels = [
                {k: v for k, v in lab.items() if not k.startswith(("messages", "threads"))}
                for lab in call.state.labels.values()
            ]
        return _json(200, {"labels": labels})

    def _label_counts(self, state: UserState, label_id: str) -> dict:
        total = unread = 0
        threads: set = set()
        unread_threads: set = set()
        for m in state.messages:
            if label_id in m.label_ids:
                total += 1
                threads.add(m.thread_id)
                if "UNREAD" in m.label_ids:
                    unread += 1
                    unread_threads.add(m.thread_id)
        return {
            "messagesTotal": total,
            "messagesUnread": unread,
            "threadsTotal": len(threads),
            "threadsUnread": len(unread_threads),
        }

    def _labels_get(self, call: _Call) -> _Resp:
        lid = call.pp["id"]
        with self._lock:
            lab = call.state.labels.get(lid)
            if lab is None:
                return _not_found("Requested entity was not found.")
            out = dict(lab)
            out.update(self._label_counts(call.state, lid))
        return _json(200, out)

    def _labels_create(self, call: _Call) -> _Resp:
        body = call.json_body()
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            return _bad("Invalid label name")
        llv = body.get("labelListVisibility", body.get("label_list_visibility"))
        mlv = body.get("messageListVisibility", body.get("message_list_visibility"))
        if llv is not None and llv not in _LABEL_LIST_VIS:
            return _bad(f"Invalid value at 'label.label_list_visibility' (LabelListVisibility), \"{llv}\"")
        if mlv is not None and mlv not in _MESSAGE_LIST_VIS:
            return _bad(f"Invalid value at 'label.message_list_visibility' (MessageListVisibility), \"{mlv}\"")
        parts = name.split("/")
        refused = RESERVED_LABEL_NAMES | LOCALIZED_RESERVED_NAMES
        if any(not p for p in parts) or name.casefold() in refused:
            return _bad("Invalid label name")
        state = call.state
        folded = name.casefold()
        with self._lock:
            names = {lab["name"].casefold() for lab in state.labels.values()}
            if folded in names:
                return _gerror(409, "Label name exists or conflicts", "aborted", status="ABORTED")
            # Strict nesting: "A/B" needs a user label "A" first. Real Gmail is more lenient (it shows
            # "A/B" nested once "A" exists); the rig is strict so the product must create parents first.
            if len(parts) > 1:
                parent = "/".join(parts[:-1]).casefold()
                if not any(lab["name"].casefold() == parent and lab["type"] == "user" for lab in state.labels.values()):
                    return _bad("Invalid label name")
            lid = f"Label_{state._next_label}"
            state._next_label += 1
            lab = {"id": lid, "name": name}
            if mlv is not None:
                lab["messageListVisibility"] = mlv
            if llv is not None:
                lab["labelListVisibility"] = llv
            lab["type"] = "user"
            if isinstance(body.get("color"), dict):
                lab["color"] = dict(body["color"])
            state.labels[lid] = lab
            state.history_id += 1
            return _json(200, dict(lab))

    def _labels_delete(self, call: _Call) -> _Resp:
        lid = call.pp["id"]
        with self._lock:
            lab = call.state.labels.get(lid)
            if lab is None:
                return _not_found()
            if lab["type"] == "system":
                return _bad("Invalid delete request")
            del call.state.labels[lid]
            for m in call.state.messages:
                if lid in m.label_ids:
                    m.label_ids.remove(lid)
        return _Resp(204)

    def _parse_message_body(self, call: _Call) -> tuple[bytes | None, list, str | None]:
        """JSON Message body -> (raw or None, labelIds, threadId); raises _ApiError."""
        body = call.json_body()
        label_ids = body.get("labelIds", body.get("label_ids", [])) or []
        if not isinstance(label_ids, list) or not all(isinstance(x, str) for x in label_ids):
            raise _ApiError(_bad("Invalid value at 'message.label_ids' (TYPE_STRING)"))
        thread_id = body.get("threadId", body.get("thread_id"))
        raw_s = body.get("raw")
        raw = None
        if raw_s is not None:
            if not isinstance(raw_s, str):
                raise _ApiError(_bad("Invalid value at 'message.raw' (TYPE_BYTES)"))
            try:
                raw = _b64decode_any(raw_s)
            except (ValueError, binascii.Error):
                raise _ApiError(
                    _bad(f"Invalid value at 'message.raw' (TYPE_BYTES), Base64 decoding failed for \"{raw_s[:40]}\"")
                ) from None
        return raw, label_ids, thread_id

    def _check_labels(self, state: UserState, label_ids: list) -> _Resp | None:
        for lid in label_ids:
            if lid in IMPORT_FORBIDDEN_LABELS or lid not in state.labels:
                return _bad(f"Invalid label: {lid}")
        return None

    def _call_params(self, req: _Req) -> dict:
        return {k: v[-1] for k, v in req.query.items() if k not in ("uploadType", "upload_id", "alt")}

    def _messages_import(self, call: _Call) -> _Resp:
        req = call.req
        upload = call.upload_path
        if upload is None or upload == "resumable":
            raw, label_ids, thread_id = self._parse_message_body(call)
            path_kind = upload or "json"
        elif upload == "media":
            err = self._check_media_type(req.headers.get("content-type", ""))
            if err is not None:
                return err
            raw, label_ids, thread_id, path_kind = req.body, [], None, "media"
        elif upload == "multipart":
            try:
                parts = _split_multipart(req.body, req.headers.get("content-type", ""))
            except ValueError as e:
                return _bad(f"Invalid multipart request: {e}")
            if len(parts) != 2:
                return _bad(f"Invalid multipart request with {len(parts)} mime parts.")
            (_mh, meta), (dh, data) = parts
            try:
                call._json_cache = json.loads(meta.decode("utf-8")) if meta.strip() else {}
            except ValueError:
                return _bad("Invalid JSON payload received in multipart metadata.")
            if not isinstance(call._json_cache, dict):
                return _bad("Invalid JSON payload received in multipart metadata.")
            err = self._check_media_type(dh.get("content-type", ""))
            if err is not None:
                return err
            if dh.get("content-transfer-encoding", "").lower() == "base64":
                try:
                    data = base64.b64decode(data)
                except (ValueError, binascii.Error):
                    return _bad("Invalid base64 media part")
            _, label_ids, thread_id = self._parse_message_body(call)
            raw, path_kind = data, "multipart"
        else:
            return _bad(f"Invalid upload type: {upload}")

        if path_kind == "resumable":
            # Initiating POST: metadata only; the message comes in PUTs to the session URI.
            err = self._check_media_type(req.headers.get("x-upload-content-type", "message/rfc822"))
            if err is None:
                err = call.gate(None)
            if err is not None:
                return err
            with self._lock:
                err = self._check_labels(call.state, label_ids)
            if err is not None:
                return err
            total_s = req.headers.get("x-upload-content-length")
            total = None
            if total_s:
                try:
                    total = int(total_s)
                except ValueError:
                    return _bad("Invalid X-Upload-Content-Length")
                if total > MAX_MESSAGE_BYTES:
                    return _gerror(413, f"Media larger than: {MAX_MESSAGE_BYTES}", "uploadTooLarge")
            uid = "emu-" + secrets.token_urlsafe(18)
            with self._lock:
                self._uploads[uid] = _Upload(
                    uid, call.state.email, call.spec, self._call_params(req), label_ids, thread_id, total
                )
            user_seg = urllib.parse.quote(call.pp.get("userId", "me"), safe="")
            location = (
                f"http://{call.ctx_host}/upload/gmail/v1/users/{user_seg}/{call.spec_path_tail}"
                f"?uploadType=resumable&upload_id={uid}"
            )
            return _Resp(200, [("Location", location), ("X-GUploader-UploadID", uid)], b"")

        if not raw:
            # No fault or quota for a request the front end rejects outright.
            return _bad(_RAW_REQUIRED)
        err = call.gate(raw)
        if err is not None:
            return err
        if len(raw) > MAX_MESSAGE_BYTES:
            return _gerror(413, f"Media larger than: {MAX_MESSAGE_BYTES}", "uploadTooLarge")
        with self._lock:
            err = self._check_labels(call.state, label_ids)
        if err is not None:
            return err
        return self._store(call.state, call.spec, raw, label_ids, thread_id, self._call_params(req), path_kind)

    def _check_media_type(self, content_type: str) -> _Resp | None:
        mt = content_type.split(";", 1)[0].strip().lower()
        if not mt.startswith("message/"):
            return _bad(f"Media type '{mt}' is not supported. Valid media types: [message/*]", "badContent")
        return None

    def _store(self, state, spec, raw: bytes, label_ids, thread_id, params, path_kind) -> _Resp:
        fields = parse_header_fields(raw)
        default_source = "receivedTime" if spec.name == "messages.insert" else "dateHeader"
        internal = _internal_date_ms(
            fields,
            params.get("internalDateSource", default_source),
            strict=self.date_mode == "strict",
            date_lines=_date_lines(raw),
        )
        message_id = fields.get("message-id") or None
        refs = (fields.get("references", "") + " " + fields.get("in-reply-to", "")).split()
        label_ids = list(dict.fromkeys(label_ids))
        with self._lock:
            state.import_calls += 1
            if self.merge_duplicates and message_id is not None and spec.name == "messages.import":
                existing = state._by_message_id.get(message_id)
                if existing is not None:
                    for lid in label_ids:
                        if lid not in existing.label_ids:
                            existing.label_ids.append(lid)
                    state.history_id += 1
                    self.stats._inc("merged")
                    return _json(200, _message_json(existing))
            self._next_msg += 1
            mid = format(self._next_msg, "x")
            tid = None
            if thread_id and any(m.thread_id == thread_id for m in state.messages[-1000:]):
                tid = thread_id
            if tid is None:
                for ref in reversed(refs):
                    parent = state._by_message_id.get(ref)
                    if parent is not None:
                        tid = parent.thread_id
                        break
            state.history_id += 1
            msg = StoredMessage(
                id=mid,
                thread_id=tid or mid,
                raw=raw,
                label_ids=label_ids,
                params=params,
                internal_date_ms=internal,
                message_id=message_id,
                upload_path=path_kind,
                history_id=state.history_id,
            )
            state.messages.append(msg)
            state._by_id[mid] = msg
            if message_id is not None:
                state._by_message_id.setdefault(message_id, msg)
            return _json(200, _message_json(msg))

    def _messages_get(self, call: _Call) -> _Resp:
        with self._lock:
            msg = call.state._by_id.get(call.pp["id"])
            if msg is None:
                return _not_found()
            out = _message_json(msg)
            out.update(
                {
                    "snippet": "",
                    "sizeEstimate": len(msg.raw),
                    "historyId": str(msg.history_id),
                    "internalDate": str(msg.internal_date_ms),
                }
            )
        if call.req.q("format", "full") == "raw":
            out["raw"] = base64.urlsafe_b64encode(msg.raw).decode("ascii")
        return _json(200, out)

    def _get_profile(self, call: _Call) -> _Resp:
        st = call.state
        with self._lock:
            return _json(
                200,
                {
                    "emailAddress": st.email,
                    "messagesTotal": len(st.messages),
                    "threadsTotal": len({m.thread_id for m in st.messages}),
                    "historyId": str(st.history_id),
                },
            )

    def _get_imap(self, call: _Call) -> _Resp:
        with self._lock:
            return _json(200, dict(call.state.imap))

    def _update_imap(self, call: _Call) -> _Resp:
        body = call.json_body()
        eb = body.get("expungeBehavior")
        if eb is not None and eb not in ("expungeBehaviorUnspecified", "archive", "trash", "deleteForever"):
            return _bad(f"Invalid value at 'imap_settings.expunge_behavior' (ExpungeBehavior), \"{eb}\"")
        with self._lock:
            imap = call.state.imap
            for k in ("enabled", "autoExpunge", "expungeBehavior", "maxFolderSize"):
                if k in body:
                    imap[k] = body[k]
            if call.state.imap_locked_enabled:
                imap["enabled"] = True
            return _json(200, dict(imap))

    def _get_auto_forwarding(self, call: _Call) -> _Resp:
        with self._lock:
            return _json(200, dict(call.state.auto_forwarding))

    def _update_auto_forwarding(self, call: _Call) -> _Resp:
        body = call.json_body()
        with self._lock:
            st = call.state
            if body.get("enabled"):
                addr = body.get("emailAddress", "")
                ok = any(
                    f.get("forwardingEmail", "").lower() == addr.lower() and f.get("verificationStatus") == "accepted"
                    for f in st.forwarding_addresses
                )
                if not ok:
                    return _failed_precondition("Unverified forwarding address")
                st.auto_forwarding = {k: body[k] for k in ("enabled", "emailAddress", "disposition") if k in body}
            else:
                st.auto_forwarding = {"enabled": False}
            return _json(200, dict(st.auto_forwarding))

    def _list_forwarding(self, call: _Call) -> _Resp:
        with self._lock:
            items = [dict(f) for f in call.state.forwarding_addresses]
        return _json(200, {"forwardingAddresses": items} if items else {})

    def _list_filters(self, call: _Call) -> _Resp:
        with self._lock:
            items = [json.loads(json.dumps(f)) for f in call.state.filters]
        return _json(200, {"filter": items} if items else {})

    def _list_send_as(self, call: _Call) -> _Resp:
        with self._lock:
            items = [dict(s) for s in call.state.send_as]
        return _json(200, {"sendAs": items})

    # ---- uploads ---------------------------------------------------------------------------------

    def _upload(self, req: _Req, ctx: _Ctx, path: str) -> _Resp:
        uid = req.q("upload_id")
        if uid is not None:
            return self._upload_session(req, ctx, uid)
        upload_type = req.q("uploadType")
        if upload_type not in ("media", "multipart", "resumable"):
            self.stats._count_request("unknown")
            return _bad(
                "Upload requests must include an uploadType URL parameter and a URL path beginning with /upload/"
            )
        spec, _ = self._route(req.method, path)
        if spec is not None and not spec.media:
            self.stats._count_request("unknown")
            return _gerror(404, f"Not Found: {req.method} /upload/{path}", "notFound")
        return self._api(req, ctx, path, upload_type)

    def _upload_session(self, req: _Req, ctx: _Ctx, uid: str) -> _Resp:
        # Like Google, the session URI is the credential: chunks need no Authorization header.
        sess = self._uploads.get(uid)
        cr = req.headers.get("content-range")
        is_status = cr is not None and cr.replace(" ", "").startswith("bytes*/")
        method = "upload.status" if is_status else "upload.chunk"
        self.stats._count_request(method)
        if sess is None or req.method not in ("PUT", "POST"):
            return _not_found("No such upload session")
        state = self._users.get(sess.email.lower())
        if state is None:
            return _not_found("No such upload session")
        acquired = self._acquire(state, ctx)
        if acquired is None:
            self.stats._inc("rate_limited")
            self.stats._inc("concurrency_limited")
            return _too_many_concurrent()
        try:
            fault, early = self._before_faults(method, None if is_status else req.body)
            if early is not None:
                return early
            with sess.lock:
                resp = self._upload_step(sess, state, req, cr, is_status)
            return self._after_faults(fault, resp, ctx)
        finally:
            self._take_time(len(req.body or b""))
            if acquired:
                self._release(state)

    def _upload_step(self, sess: _Upload, state: UserState, req: _Req, cr: str | None, is_status: bool) -> _Resp:
        if sess.result is not None:
            return _Resp(200, list(_JSON_HEADERS), sess.result)
        body = req.body
        if is_status:
            total_s = cr.replace(" ", "")[len("bytes*/") :]
            if total_s != "*" and not total_s.isdigit():
                return _bad(f"Invalid Content-Range header: {cr}")
            if total_s != "*" and sess.total is None:
                sess.total = int(total_s)
            if sess.total is not None and len(sess.buf) == sess.total:
                return self._upload_finish(sess, state)
            return self._range_308(sess)
        if cr is None:
            start, end, total_s = 0, len(body) - 1, str(sess.total if sess.total is not None else len(body))
        else:
            m = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", cr)
            if not m:
                return _bad(f"Invalid Content-Range header: {cr}")
            start, end, total_s = int(m.group(1)), int(m.group(2)), m.group(3)
            if end - start + 1 != len(body):
                return _bad("Content-Range does not match the length of the request body")
        if total_s != "*":
            total = int(total_s)
            if sess.total is not None and sess.total != total:
                return _bad("Content-Range total does not match X-Upload-Content-Length")
            sess.total = total
        have = len(sess.buf)
        if start > have:
            return _bad(f"Invalid request: chunk starts at {start} but only {have} bytes were received")
        if end + 1 > have:
            sess.buf += body[have - start :]
        if sess.total is not None:
            if len(sess.buf) > sess.total:
                return _bad("More data than the declared upload length")
            if len(sess.buf) == sess.total:
                return self._upload_finish(sess, state)
        return self._range_308(sess)

    def _range_308(self, sess: _Upload) -> _Resp:
        headers = [("X-GUploader-UploadID", sess.id)]
        if sess.buf:
            headers.append(("Range", f"bytes=0-{len(sess.buf) - 1}"))
        return _Resp(308, headers, b"")

    def _upload_finish(self, sess: _Upload, state: UserState) -> _Resp:
        raw = bytes(sess.buf)
        if not raw:
            resp = _bad(_RAW_REQUIRED)
        elif len(raw) > MAX_MESSAGE_BYTES:
            resp = _gerror(413, f"Media larger than: {MAX_MESSAGE_BYTES}", "uploadTooLarge")
        else:
            with self._lock:
                resp = self._check_labels(state, sess.label_ids)
            if resp is None:
                resp = self._store(state, sess.spec, raw, sess.label_ids, sess.thread_id, sess.params, "resumable")
        if resp.status == 200:
            sess.result = resp.body
            sess.buf = bytearray()
        return resp

    # ---- batch ------------------------------------------------------------------------------------

    def _batch(self, req: _Req, ctx: _Ctx) -> _Resp:
        return self._outer_call(ctx, "batch", None, lambda: self._batch_inner(req, ctx))

    def _batch_inner(self, req: _Req, ctx: _Ctx) -> _Resp:
        ctype = req.headers.get("content-type", "")
        if not ctype.lower().startswith("multipart/mixed"):
            return _bad("Batch requests must be multipart/mixed")
        try:
            parts = _split_multipart(req.body, ctype)
        except ValueError as e:
            return _bad(f"Invalid batch request: {e}")
        if len(parts) > MAX_BATCH_PARTS:
            return _bad(f"Too many requests in batch: {len(parts)} > {MAX_BATCH_PARTS}")
        outer_auth = req.headers.get("authorization")
        ctx.held = set()
        out = []
        boundary = "batch_" + secrets.token_hex(12)
        try:
            for headers, content in parts:
                resp = self._batch_part(content, outer_auth, ctx)
                cid = headers.get("content-id")
                out.append(f"--{boundary}\r\nContent-Type: application/http\r\n".encode())
                if cid:
                    cid = cid.strip()
                    inner = cid[1:-1] if cid.startswith("<") and cid.endswith(">") else cid
                    out.append(f"Content-ID: <response-{inner}>\r\n".encode())
                phrase = "Resume Incomplete" if resp.status == 308 else HTTPStatus(resp.status).phrase
                head = [f"\r\nHTTP/1.1 {resp.status} {phrase}\r\n"]
                for k, v in resp.headers:
                    head.append(f"{k}: {v}\r\n")
                head.append(f"Content-Length: {len(resp.body)}\r\n\r\n")
                out.append("".join(head).encode("latin-1"))
                out.append(resp.body + b"\r\n")
        finally:
            with self._lock:
                for email in ctx.held:
                    self._users[email.lower()]._in_flight -= 1
            ctx.held = None
        out.append(f"--{boundary}--\r\n".encode())
        return _Resp(200, [("Content-Type", f"multipart/mixed; boundary={boundary}")], b"".join(out))

    def _batch_part(self, content: bytes, outer_auth: str | None, ctx: _Ctx) -> _Resp:
        line_end = content.find(b"\n")
        request_line = content[: line_end if line_end >= 0 else len(content)].strip().decode("latin-1")
        rest = content[line_end + 1 :] if line_end >= 0 else b""
        try:
            method, target, _version = request_line.split(" ", 2)
        except ValueError:
            return _bad(f"Invalid batch part request line: {request_line!r}")
        headers, body = _split_head_body(rest)
        if "content-length" in headers:
            with contextlib.suppress(ValueError):
                body = body[: int(headers["content-length"])]
        else:
            body = body.rstrip(b"\r\n")
        if "authorization" not in headers and outer_auth:
            headers["authorization"] = outer_auth
        if target.startswith(("http://", "https://")):
            target = urllib.parse.urlsplit(target)._replace(scheme="", netloc="").geturl()
        path, _, qs = target.partition("?")
        query = urllib.parse.parse_qs(qs, keep_blank_values=True) if qs else {}
        method = headers.get("x-http-method-override", method).upper()
        sub = _Req(method, path.lstrip("/"), query, headers, body)
        if not sub.path.startswith("gmail/v1/"):
            return _bad("Batch parts must be Gmail API calls (media uploads cannot be batched)")
        return self._api(sub, ctx, sub.path, None)

    # ---- OAuth ------------------------------------------------------------------------------------

    def _authorize(self, req: _Req) -> _Resp:
        self.authorize_requests.append({k: v[-1] for k, v in req.query.items()})
        client_id = req.q("client_id")
        redirect_uri = req.q("redirect_uri") or ""
        state = req.q("state")
        if client_id != self.client_id:
            return _Resp(
                401, [("Content-Type", "text/plain")], b"Error 401: invalid_client\nThe OAuth client was not found."
            )
        if not re.match(r"^http://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?(/|$)", redirect_uri):
            return _Resp(400, [("Content-Type", "text/plain")], b"Error 400: redirect_uri_mismatch")

        def redirect(params: dict) -> _Resp:
            if state is not None:
                params = {"state": state, **params}
            sep = "&" if "?" in redirect_uri else "?"
            loc = redirect_uri + sep + urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
            return _Resp(302, [("Location", loc), ("Content-Type", "text/html; charset=UTF-8")], b"")

        if req.q("response_type") != "code":
            return redirect({"error": "unsupported_response_type"})
        scope = (req.q("scope") or "").split()
        if not scope:
            return redirect({"error": "invalid_request", "error_description": "Missing required parameter: scope"})
        user = self.consent_user
        if self.deny_consent or user is None or user.lower() not in self._users:
            return redirect({"error": "access_denied"})
        challenge = req.q("code_challenge")
        cmethod = req.q("code_challenge_method", "plain" if challenge else None)
        if cmethod not in (None, "plain", "S256"):
            return redirect({"error": "invalid_request", "error_description": "Invalid code_challenge_method"})
        code = "4/emu-" + secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = {
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "scopes": scope,
                "email": self._users[user.lower()].email,
                "challenge": challenge,
                "method": cmethod,
                "expires": time.monotonic() + 600,
            }
        return redirect({"code": code, "scope": " ".join(scope)})

    def _client_auth(self, req: _Req, form: dict) -> tuple[str | None, str | None]:
        auth = req.headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            try:
                cid, _, secret = base64.b64decode(auth[6:].strip()).decode().partition(":")
                return urllib.parse.unquote(cid), urllib.parse.unquote(secret)
            except (ValueError, binascii.Error):
                return None, None
        return form.get("client_id"), form.get("client_secret")

    def _token_response(self, email: str, scopes: list, family: str | None, refresh: str | None) -> _Resp:
        access = self._mint("access", email, frozenset(scopes), family)
        body = {
            "access_token": access,
            "expires_in": int(self.access_token_lifetime),
            "scope": " ".join(scopes),
            "token_type": "Bearer",
        }
        if refresh is not None:
            body["refresh_token"] = refresh
        if {"openid", "email", "https://www.googleapis.com/auth/userinfo.email"} & set(scopes) and family:
            body["id_token"] = self._id_token(email)
        return _json(200, body, [("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate")])

    def _id_token(self, email: str) -> str:
        now = int(time.time())
        sub = "1" + str(int(hashlib.sha256(email.lower().encode()).hexdigest(), 16))[:20]
        header = {"alg": "HS256", "kid": "emulator", "typ": "JWT"}
        payload = {
            "iss": "https://accounts.google.com",
            "azp": self.client_id,
            "aud": self.client_id,
            "sub": sub,
            "email": email,
            "email_verified": True,
            "iat": now,
            "exp": now + int(self.access_token_lifetime),
        }
        signing_input = _jwt_part(header) + "." + _jwt_part(payload)
        sig = hmac.new(self.client_secret.encode(), signing_input.encode(), hashlib.sha256).digest()
        return signing_input + "." + _b64url(sig)

    def _token(self, req: _Req) -> _Resp:
        if req.method != "POST":
            return _oauth_error(405, "invalid_request", "Token endpoint needs POST")
        form = {k: v[-1] for k, v in urllib.parse.parse_qs(req.body.decode("utf-8", "replace")).items()}
        grant = form.get("grant_type")
        if grant == _JWT_BEARER:
            return self._jwt_bearer(form)
        if grant not in ("authorization_code", "refresh_token"):
            return _oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant}")
        cid, secret = self._client_auth(req, form)
        if cid != self.client_id:
            return _oauth_error(401, "invalid_client", "The OAuth client was not found.")
        if secret != self.client_secret:
            return _oauth_error(401, "invalid_client", "Unauthorized")
        if grant == "authorization_code":
            with self._lock:
                code = self._codes.pop(form.get("code", ""), None)
            if code is None or code["expires"] < time.monotonic():
                return _oauth_error(400, "invalid_grant", "Malformed auth code.")
            if form.get("redirect_uri") != code["redirect_uri"]:
                return _oauth_error(400, "redirect_uri_mismatch", "Bad Request")
            if code["challenge"] is not None:
                verifier = form.get("code_verifier")
                if not verifier:
                    return _oauth_error(400, "invalid_grant", "Missing code verifier.")
                if code["method"] == "S256":
                    computed = _b64url(hashlib.sha256(verifier.encode("ascii")).digest())
                else:
                    computed = verifier
                if not hmac.compare_digest(computed, code["challenge"]):
                    return _oauth_error(400, "invalid_grant", "Invalid code verifier.")
            scopes = code["scopes"]
            refresh = self._mint("refresh", code["email"], frozenset(scopes), None, client_id=cid)
            return self._token_response(code["email"], scopes, refresh, refresh)
        # refresh_token grant
        rtoken = form.get("refresh_token", "")
        tok = self._tokens.get(rtoken)
        if tok is None or tok.kind != "refresh" or tok.revoked or tok.client_id != cid:
            return _oauth_error(400, "invalid_grant", _TOKEN_REVOKED)
        if tok.email.lower() not in self._users:
            return _oauth_error(400, "invalid_grant", _TOKEN_REVOKED)
        scopes = sorted(tok.scopes)
        if form.get("scope"):
            asked = form["scope"].split()
            if not set(asked) <= tok.scopes:
                return _oauth_error(400, "invalid_scope", "Some requested scopes were invalid.")
            scopes = asked
        return self._token_response(tok.email, scopes, tok.family, None)

    def _jwt_bearer(self, form: dict) -> _Resp:
        # Service-account assertion (domain-wide delegation). The emulator does NOT verify the signature
        # (nor aud/exp): any well-formed JWT naming a known user in "sub" (or "iss") gets a token.
        assertion = form.get("assertion", "")
        try:
            _h, payload_b64, _s = assertion.split(".")
            payload = json.loads(_b64decode_any(payload_b64))
            if not isinstance(payload, dict):
                raise ValueError
        except (ValueError, binascii.Error):
            return _oauth_error(400, "invalid_grant", "Invalid JWT: Token must be a short-lived token")
        subject = payload.get("sub") or payload.get("iss")
        scopes = (payload.get("scope") or "").split()
        if not subject or not scopes:
            return _oauth_error(400, "invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        refused = self._delegation_refuses(scopes)
        if refused is not None:
            return refused
        if self.delegated_domains is not None and subject.rpartition("@")[2].lower() not in self.delegated_domains:
            # a user of another Workspace customer: Google answers as for a grant that does not cover the scopes,
            # but for this subject only
            return self._unauthorized()
        if subject.lower() not in self._users:
            return _oauth_error(400, "invalid_grant", "Invalid email or User ID")
        email = self._users[subject.lower()].email
        return self._token_response(email, scopes, None, None)

    # The domain-wide delegation grant (Admin console > API controls): None = any scope; else the scopes
    # the service account's client id was given. Asking for one outside it fails for every user, as Google does.
    delegated_scopes: frozenset | None = None
    # the domains (lower-case) whose users the service account's customer holds: None = any
    delegated_domains: frozenset | None = None

    def _delegation_refuses(self, scopes) -> _Resp | None:
        if self.delegated_scopes is None or set(scopes) <= self.delegated_scopes:
            return None
        return self._unauthorized()

    @staticmethod
    def _unauthorized() -> _Resp:
        return _oauth_error(
            401,
            "unauthorized_client",
            "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any"
            " of the scopes requested.",
        )

    def _revoke(self, req: _Req) -> _Resp:
        token = req.q("token")
        if token is None and req.body:
            form = urllib.parse.parse_qs(req.body.decode("utf-8", "replace"))
            token = (form.get("token") or [None])[-1]
        with self._lock:
            tok = self._tokens.get(token or "")
            if tok is None or tok.revoked:
                return _oauth_error(400, "invalid_token", "Token expired or revoked")
            family = tok.family
            for t in self._tokens.values():
                if t.family == family:
                    t.revoked = True
        return _json(200, {})

    # ---- reading back under the metadata scope (verify --exact), and changing messages for the tests ----
    # users.messages.list as the discovery document gives it (labelIds repeated, includeSpamTrash,
    # maxResults <= 500, pageToken) and the metadata scope's limits: no `q`, no format=full|raw.

    def _metadata_only(self, call: _Call) -> bool:
        """The token holds gmail.metadata: Gmail then applies the metadata limits to the call."""
        return GMAIL_SCOPE_PREFIX + "gmail.metadata" in call.token.scopes

    def _messages_list_by_label(self, call: _Call) -> _Resp:
        req = call.req
        if self._metadata_only(call) and req.q("q"):
            return _gerror(403, "Metadata scope does not support 'q' parameter", "forbidden")
        want = req.query.get("labelIds", [])
        include = (req.q("includeSpamTrash", "false") or "false").lower() in ("true", "1")
        try:
            max_results = int(req.q("maxResults", "100"))
        except ValueError:
            return _bad(f"Invalid value at 'max_results' (TYPE_UINT32), \"{req.q('maxResults')}\"")
        if max_results < 0:
            return _bad(f"Invalid value at 'max_results' (TYPE_UINT32), \"{max_results}\"")
        max_results = min(max_results or 100, 500)
        if not include and not {"SPAM", "TRASH"} & set(want):
            # Gmail leaves Spam and Trash out unless asked (or listing those very labels)
            with self._lock:
                hidden = {id(x) for x in call.state.messages if {"SPAM", "TRASH"} & set(x.label_ids)}
        else:
            hidden = set()
        token = req.q("pageToken")
        if token:
            try:
                start = int(base64.urlsafe_b64decode(token.encode() + b"==").decode())
            except (ValueError, binascii.Error, UnicodeDecodeError):
                return _bad("Invalid pageToken")
        else:
            start = 0
        q = req.q("q", "") or ""
        rfc_id = None
        m = re.search(r"rfc822msgid:(\S+)", q)
        if m:
            rfc_id = m.group(1).strip("<>")
        with self._lock:
            msgs = [
                x
                for x in call.state.messages
                if id(x) not in hidden
                and all(lid in x.label_ids for lid in want)
                and (rfc_id is None or (x.message_id or "").strip("<>") == rfc_id)
            ]
        msgs.sort(key=lambda x: (x.internal_date_ms, x.id), reverse=True)
        page = msgs[start : start + max_results]
        out: dict = {}
        if page:
            out["messages"] = [{"id": x.id, "threadId": x.thread_id} for x in page]
        if start + max_results < len(msgs):
            out["nextPageToken"] = base64.urlsafe_b64encode(str(start + max_results).encode()).decode().rstrip("=")
        out["resultSizeEstimate"] = len(msgs)
        return _json(200, out)

    def _messages_get_scoped(self, call: _Call) -> _Resp:
        fmt = call.req.q("format", "full") or "full"
        if self._metadata_only(call) and fmt in ("full", "raw"):
            return _gerror(403, f"Metadata scope doesn't allow format {fmt.upper()}", "forbidden")
        return self._messages_get(call)

    def _messages_modify(self, call: _Call) -> _Resp:
        """users.messages.modify: add and remove labels of one message (the scope check, gmail.modify or
        mail.google.com, is the discovery document's, as for every method). As Gmail: an unknown label is
        400 "Invalid label", an unknown message 404, DRAFT and SENT cannot be added."""
        body = call.json_body()
        add, remove = body.get("addLabelIds") or [], body.get("removeLabelIds") or []
        if not all(isinstance(x, list) and all(isinstance(i, str) for i in x) for x in (add, remove)):
            return _bad("Invalid value at 'add_label_ids' (TYPE_STRING)")
        with self._lock:
            msg = call.state._by_id.get(call.pp["id"])
            if msg is None:
                return _not_found()
            for lid in [*add, *remove]:
                if lid not in call.state.labels or lid in ("DRAFT", "SENT"):
                    return _bad(f"Invalid label: {lid}")
            for lid in add:
                if lid not in msg.label_ids:
                    msg.label_ids.append(lid)
            for lid in remove:
                if lid in msg.label_ids:
                    msg.label_ids.remove(lid)
            self.modified.append((call.state.email, msg.id, tuple(add), tuple(remove)))
            return _json(200, _message_json(msg))

    def delete_message(self, email: str, message_id: str) -> bool:
        """Delete a message for good (as emptying Trash does). False when there is no such message."""
        st = self.user(email)
        with self._lock:
            msg = st._by_id.pop(message_id, None)
            if msg is None:
                return False
            st.messages.remove(msg)
            if msg.message_id is not None and st._by_message_id.get(msg.message_id) is msg:
                del st._by_message_id[msg.message_id]
            st.history_id += 1
        return True

    def change_labels(self, email: str, message_id: str, *, add=(), remove=()) -> bool:
        """Add/remove label ids on a message (as the user archiving, trashing, relabelling does)."""
        st = self.user(email)
        with self._lock:
            msg = st._by_id.get(message_id)
            if msg is None:
                return False
            msg.label_ids = [x for x in msg.label_ids if x not in set(remove)]
            msg.label_ids += [x for x in add if x not in msg.label_ids]
            st.history_id += 1
        return True

    def _control_messages(self, req: _Req, path: str) -> _Resp | None:
        """DELETE /_emulator/users/EMAIL/messages/ID: delete it; POST .../messages/ID/labels with
        {"add": [...], "remove": [...]}: change its labels. None: not one of these."""
        m = re.fullmatch(r"users/([^/]+)/messages/([^/]+)(/labels)?", path)
        if not m:
            return None
        email, mid = urllib.parse.unquote(m.group(1)), urllib.parse.unquote(m.group(2))
        if email.lower() not in self._users:
            return _not_found(f"unknown user {email}")
        if m.group(3) is None and req.method == "DELETE":
            return _json(200, {}) if self.delete_message(email, mid) else _not_found()
        if m.group(3) is not None and req.method == "POST":
            try:
                body = json.loads(req.body or b"{}")
                ok = self.change_labels(email, mid, add=body.get("add", ()), remove=body.get("remove", ()))
            except (ValueError, TypeError, AttributeError):
                return _bad('body must be {"add": [...], "remove": [...]}')
            return _json(200, {}) if ok else _not_found()
        return None

    # ---- control endpoints ------------------------------------------------------------------------

    def _control(self, req: _Req, path: str) -> _Resp:
        resp = self._control_messages(req, path)
        if resp is not None:
            return resp
        if path == "stats" and req.method == "GET":
            snap = self.stats.snapshot()
            with self._lock:
                snap["users"] = {
                    st.email: {"messages": len(st.messages), "import_calls": st.import_calls}
                    for st in self._users.values()
                }
            return _json(200, snap)
        if path == "client_config" and req.method == "GET":
            # the Desktop OAuth client file for `gimport auth` against a standalone emulator
            return _json(200, self.client_config())
        if path == "users" and req.method == "POST":
            try:
                body = json.loads(req.body or b"{}")
                email = body["email"]
            except (ValueError, KeyError, TypeError):
                return _bad('body must be {"email": ..., "scopes": [...]}')
            self.add_user(email)
            return _json(200, self.authorized_user_info(email, body.get("scopes") or ["https://mail.google.com/"]))
        m = re.fullmatch(r"users/([^/]+)/messages", path)
        if m and req.method == "GET":
            email = urllib.parse.unquote(m.group(1))
            if email.lower() not in self._users:
                return _not_found(f"unknown user {email}")
            with self._lock:
                items = [
                    {
                        "id": x.id,
                        "thread_id": x.thread_id,
                        "label_ids": list(x.label_ids),
                        "size": len(x.raw),
                        "sha256": hashlib.sha256(x.raw).hexdigest(),
                        "message_id": x.message_id,
                        "params": dict(x.params),
                        "internal_date_ms": x.internal_date_ms,
                        "upload_path": x.upload_path,
                    }
                    for x in self.user(email).messages
                ]
            return _json(200, items)
        if path == "faults" and req.method == "POST":
            try:
                body = json.loads(req.body or b"{}")
                if isinstance(body.get("match"), str):
                    body["match"] = body["match"].encode("utf-8")
                fault = self.faults.add(Fault(**body))
            except (ValueError, TypeError) as e:
                return _bad(f"bad fault: {e}")
            return _json(200, {"kind": fault.kind, "method": fault.method})
        if path == "faults" and req.method == "DELETE":
            self.faults.clear()
            return _json(200, {})
        return _gerror(404, f"Not Found: /_emulator/{path}", "notFound")


class _Call:
    """One authenticated Gmail call in progress."""

    __slots__ = ("_gated", "_json_cache", "emu", "fault", "pp", "req", "spec", "state", "token", "upload_path")

    def __init__(self, emu, spec, state, token, req, pp, upload_path) -> None:
        self.emu = emu
        self.spec = spec
        self.state = state
        self.token = token
        self.req = req
        self.pp = pp
        self.upload_path = upload_path
        self.fault: Fault | None = None
        self._json_cache = None
        self._gated = False

    @property
    def ctx_host(self) -> str:
        return self.req.headers.get("host") or self.emu._hostport

    @property
    def spec_path_tail(self) -> str:
        return "messages/import" if self.spec.name == "messages.import" else "messages"

    def gate(self, subject: bytes | None) -> _Resp | None:
        """Faults (before kinds) then quota; a response means: answer it and stop."""
        if self._gated:
            return None
        self._gated = True
        fault, early = self.emu._before_faults(self.spec.name, subject)
        self.fault = fault
        if early is not None:
            self.fault = None  # an early answer is the whole effect of the fault
            return early
        refused = self.emu._charge(self.state, self.spec.units)
        if refused is not None:
            self.emu.stats._count_limited(self.spec.name)
        return refused

    def json_body(self) -> dict:
        if self._json_cache is not None:
            return self._json_cache
        body = self.req.body
        if not body.strip():
            obj = {}
        else:
            try:
                obj = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                raise _ApiError(_bad("Invalid JSON payload received.")) from None
            if not isinstance(obj, dict):
                raise _ApiError(_bad("Invalid JSON payload received. Expected an object."))
        allowed = self.spec.body_fields
        if allowed is not None:
            for k in obj:
                if k not in allowed:
                    raise _ApiError(_bad(f'Invalid JSON payload received. Unknown name "{k}": Cannot find field.'))
        self._json_cache = obj
        return obj


def _message_json(msg: StoredMessage) -> dict:
    out = {"id": msg.id, "threadId": msg.thread_id}
    if msg.label_ids:
        out["labelIds"] = list(msg.label_ids)
    return out


# --------------------------------------------------------------------------------------------------
# Standalone


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.rig.gmail_emulator", description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--quota-units-per-minute", type=float, default=None)
    ap.add_argument("--burst-seconds", type=float, default=1.0, help="bucket mode: seconds of burst (default 1)")
    ap.add_argument(
        "--quota-mode",
        choices=sorted(QUOTA_MODES),
        default="bucket",
        help="how the per-user quota is measured: a token bucket (default) or a sliding window",
    )
    ap.add_argument("--quota-window", type=float, default=60.0, help="sliding mode: the window in seconds (default 60)")
    ap.add_argument("--max-concurrent", type=int, default=10, help="per-user cap on calls in flight; 0 = none")
    ap.add_argument("--latency", type=float, default=0.0, help="seconds every Gmail call takes (default 0)")
    ap.add_argument(
        "--latency-per-mb", type=float, default=0.0, help="seconds added per MB of a call's request body (default 0)"
    )
    ap.add_argument("--no-merge", action="store_true", help="store re-imports of a Message-ID as new messages")
    ap.add_argument(
        "--date-mode",
        choices=DATE_MODES,
        default="lenient",
        help="strict: date a message by its Date header only when it is RFC 5322's strict form (else: now)",
    )
    ap.add_argument("--user", action="extend", nargs="+", default=[], metavar="EMAIL")
    args = ap.parse_args(argv)
    emu = GmailEmulator(
        quota_units_per_minute=args.quota_units_per_minute,
        burst_seconds=args.burst_seconds,
        quota_mode=args.quota_mode,
        quota_window=args.quota_window,
        max_concurrent=args.max_concurrent if args.max_concurrent > 0 else None,
        merge_duplicates=not args.no_merge,
        date_mode=args.date_mode,
        latency=args.latency,
        latency_per_mb=args.latency_per_mb,
        host=args.host,
        port=args.port,
    )
    for u in args.user:
        emu.add_user(u)
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    emu.start()
    print(f"gmail emulator listening on {emu.base_url}", flush=True)
    while not stop.wait(3600):
        pass
    emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
