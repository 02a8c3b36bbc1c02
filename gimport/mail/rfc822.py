"""Pure helpers on raw message bytes. Nothing here re-encodes a message: bytes stay as stored.

The one change gimport ever makes to a message: when it has no usable Date header, one is synthesised
from the server's INTERNALDATE and put in front of the header block, so Gmail (which dates imports by
the Date header) does not date it "today".
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import re

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]*:", re.MULTILINE)


def header_block(raw: bytes) -> bytes:
    """The bytes of the header section (without the blank line); the whole message if it has no body."""
    match = _HEADER_END.search(raw)
    return raw[: match.start()] if match else raw


def header_values(raw: bytes, name: str) -> list[str]:
    """Unfolded values of every `name` header, decoded as latin-1 (never fails)."""
    block = header_block(raw)
    lname = name.lower().encode()
    values = []
    starts = list(_FIELD.finditer(block))
    for i, m in enumerate(starts):
        if m.group(1).lower() != lname:
            continue
        end = starts[i + 1].start() if i + 1 < len(starts) else len(block)
        value = block[m.end() : end]
        values.append(re.sub(rb"\r?\n[ \t]+", b" ", value).strip().decode("latin-1"))
    return values


def message_id(raw: bytes) -> str | None:
    values = header_values(raw, "Message-ID")
    return values[0] if values and values[0] else None


def has_usable_date(raw: bytes) -> bool:
    values = header_values(raw, "Date")
    if not values:
        return False
    try:
        parsed = email.utils.parsedate_to_datetime(values[0])
    except (TypeError, ValueError, IndexError):
        return False
    return parsed is not None and 1970 <= parsed.year <= 9999


def ensure_date(raw: bytes, internaldate: dt.datetime | None) -> bytes:
    """`raw` unchanged if it has a usable Date header (or no INTERNALDATE is known); otherwise a
    Date header from `internaldate` (RFC 5322 format) followed by the original bytes."""
    if internaldate is None or has_usable_date(raw):
        return raw
    if internaldate.tzinfo is None:
        internaldate = internaldate.astimezone()  # IMAPClient gives naive local time
    newline = b"\r\n" if b"\r\n" in raw[:4096] or not raw else b"\n"
    return b"Date: " + email.utils.format_datetime(internaldate).encode("ascii") + newline + raw


def sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()
