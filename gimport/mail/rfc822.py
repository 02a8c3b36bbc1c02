"""Pure helpers on raw message bytes. Nothing here re-encodes a message: bytes stay as stored.

The one change gimport ever makes to a message, a Date Gmail can read, is gimport.mail.dates'.
"""

from __future__ import annotations

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


def sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()
