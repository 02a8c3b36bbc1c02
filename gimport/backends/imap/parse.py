"""Pure parsing for the IMAP backend (imapclient's response_parser is the model): folder names, flags,
sizes, dates, UID sets, FETCH answers read by hand, and the advice for TLS and certificate failures.
Used by gimport.backends.imap.source and gimport.backends.imap.session only; tested by feeding it values."""

from __future__ import annotations

import datetime as dt
import re
import socket
import ssl
from collections.abc import Sequence
from typing import Any

from imapclient import imap_utf7
from imapclient.exceptions import IMAPClientError

from gimport.backends.imap.fastfetch import fetch_response
from gimport.config.settings import SourceSettings
from gimport.contract import MessageMeta
from gimport.errors import SourceError
from gimport.i18n import _

UID_IN_FETCH = re.compile(rb"\bUID (\d+)")
# A size claim above this is nonsense (a server bug): the body tells the size instead.
_SANE_SIZE = 1 << 40


class LiteralTooLarge(SourceError):
    """The server announced a literal larger than what the operation allows (the connection is then unusable).
    Where no caller has a better use for it (a body is skipped as too large), it stops the account like any
    other misbehaving server: one line, exit 4."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            _(
                "the IMAP server announced a literal of {size:,} bytes where at most {limit:,} make sense: it is"
                " misbehaving, and gimport closed the connection without reading it"
            ).format(size=size, limit=limit),
            hint="",
        )
        self.size, self.limit = size, limit


class FetchFailed(Exception):
    """A body FETCH did not bring the messages: refused (NO/BAD), the connection lost each time, past its
    deadline, or more bytes than allowed."""

    def __init__(self, reason: str, *, too_large: int | None = None) -> None:
        super().__init__(reason)
        self.reason, self.too_large = reason, too_large


def as_text(value: object) -> str:
    """Server data as text, whatever bytes it holds (8-bit flags, delimiters: never a UnicodeDecodeError)."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.decode("latin-1")
    return str(value)


def parse_folder_name(raw: object) -> tuple[str, bytes]:
    """(name as shown and matched, name on the wire) for a LIST answer's name. Modified UTF-7 is decoded when
    it is valid; otherwise (``&ZZZ``) the name is kept as sent, so it can still be shown and excluded. A folder
    named NIL (the atom, which parsers read as "no value") is "NIL"."""
    if raw is None:
        return "NIL", b"NIL"
    if isinstance(raw, int):
        return str(raw), str(raw).encode()
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    assert isinstance(raw, bytes)
    try:
        decoded = imap_utf7.decode(raw)
        if imap_utf7.encode(decoded) == raw:
            return decoded, raw
    except (ValueError, UnicodeError, TypeError):
        pass
    return as_text(raw), raw


def same_but_nul(exact: bytes, body: bytes, step: int = 1 << 20) -> bool:
    """`exact` is `body` with some 0x80 bytes being NULs in truth (compared a MiB at a time, so a large
    message is not copied whole)."""
    if len(exact) != len(body):
        return False
    view_e, view_b = memoryview(exact), memoryview(body)
    for i in range(0, len(exact), step):
        if bytes(view_e[i : i + step]).replace(b"\x00", b"\x80") != view_b[i : i + step]:
            return False
    return True


def parse_flags(value: object) -> tuple[str, ...]:
    if not isinstance(value, (tuple, list)):
        return ()
    return tuple(as_text(f) for f in value)


def _size(value: object) -> int | None:
    """RFC822.SIZE as claimed, or None when it is missing, not a number, negative or absurd."""
    try:
        n = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
    return n if 0 <= n < _SANE_SIZE else None


def parse_meta(uid: int, item: dict[bytes, Any], message_id: str | None = None) -> MessageMeta:
    size = _size(item.get(b"RFC822.SIZE"))
    return MessageMeta(
        uid,
        size or 0,
        parse_flags(item.get(b"FLAGS", ())),
        parse_date(item.get(b"INTERNALDATE")),
        message_id=message_id,
        size_known=size is not None,
    )


def uid_set(uids: Sequence[int]) -> str:
    """ "1:3,7,9:10" for [1, 2, 3, 7, 9, 10] (sorted, each once)."""
    out: list[str] = []
    ordered = sorted(set(uids))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}:{ordered[j]}")
        i = j + 1
    return ",".join(out)


def fetch_answers(data: list[Any], uids: Sequence[int]) -> dict[int, dict[bytes, Any]]:
    """A UID FETCH's answer lines, keyed by the UID each one names, for the `uids` asked. IMAPClient keys an
    answer without UID by its sequence number, which gives one message another's data (a server may answer
    without the UID): such answers are left out here."""
    wanted = set(uids)
    out: dict[int, dict[bytes, Any]] = {}
    # INTERNALDATE as the server wrote it, in its own zone (not normalised to this machine's): a Date
    # without a zone is read in that zone (gimport.mail.dates)
    for item in fetch_response(data).values():
        uid = item.get(b"UID")
        if isinstance(uid, int) and uid in wanted:
            out.setdefault(uid, {}).update(item)
    return out


def parse_date(value: object) -> dt.datetime | None:
    if not isinstance(value, dt.datetime):
        return None
    return value if value.tzinfo else value.astimezone()  # naive is this machine's local time


def cert_hint(exc: ssl.SSLCertVerificationError) -> str:
    """What to do about a certificate that does not verify: it depends on why."""
    text = f"{exc.verify_message or ''} {exc}".lower()
    if exc.verify_code == 62 or "hostname mismatch" in text or "ip address mismatch" in text:
        return _(
            "the certificate is for another name: set [source] host to a name the certificate is for"
            " (not an IP address or alias); ca_file does not change this"
        )
    if exc.verify_code == 10 or "expired" in text:
        return _(
            "the server's certificate has expired: the server's administrator must renew it (check this"
            " machine's clock too); ca_file does not change this"
        )
    if exc.verify_code == 9 or "not yet valid" in text:
        return _("the server's certificate is not valid yet: check this machine's clock")
    return _("set [source] ca_file to the CA certificate that signed the server's certificate")


def security_hint(s: SourceSettings, exc: BaseException) -> str | None:
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
