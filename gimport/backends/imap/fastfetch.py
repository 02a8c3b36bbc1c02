"""FETCH answers of the shape servers send for what gimport asks, read at a fraction of the general parser's
cost; anything else is left to imapclient's parser (the one that decides).

imapclient's response parser lexes every byte in Python: reading the scan's answer for 150 messages (UID,
size, flags, date, Message-ID) cost about as much CPU as the rest of a user's start, and a campus starts 100
users at once. Most answers are plain: `N (UID 5 RFC822.SIZE 1234 FLAGS (\\Seen) INTERNALDATE "..."
BODY[...] {n}` with the literal and a closing `)`. read() takes exactly that grammar and gives exactly what
imapclient.response_parser.parse_fetch_response(data, normalise_times=False, uid_is_key=False) gives for it
(tests/unit/test_fastfetch.py holds the two side by side); at the first answer outside it, it returns None
and the caller asks imapclient, for the whole response. Pure code: bytes in, values out.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from imapclient.fixed_offset import FixedOffset
from imapclient.response_parser import _convert_INTERNALDATE, parse_fetch_response

# an atom of a parenthesised list (flags): no space, parenthesis, quote, brace, bracket, wildcard or backslash
# but a leading one (\Seen)
_FLAG = rb"\\?[^\s()\"{}\[\]%*\\]+"
# one attribute and its value: a number, a parenthesised list of atoms or a quoted string without escapes
_PAIR_SOURCE = (
    rb"(?P<key>[A-Za-z0-9.]+) (?:(?P<num>\d+)|\((?P<list>"
    + _FLAG
    + rb"(?: "
    + _FLAG
    + rb")*)?\)|\"(?P<str>[^\"\\\r\n]*)\")"
)
_PAIR = re.compile(_PAIR_SOURCE)
_PAIRS = re.sub(rb"\(\?P<\w+>", b"(?:", _PAIR_SOURCE)  # the same, unnamed: it repeats in the answer's pattern
_LINE = re.compile(rb"(\d+) \((" + _PAIRS + rb"(?: " + _PAIRS + rb")*)\)")
_HEAD = re.compile(rb"(\d+) \((?:(" + _PAIRS + rb"(?: " + _PAIRS + rb")*) )?(BODY\[[^\]\r\n\"{}]*\]) \{(\d+)\}")
# INTERNALDATE as servers write it: "06-Feb-2019 02:22:55 +0000" (a day below 10 may lead with a space)
_DATE = re.compile(rb" ?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)")
_MONTHS = {m: i for i, m in enumerate(b"jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)}
_zones: dict[int, FixedOffset] = {}
# their values are structures: imapclient builds objects for them
_STRUCTURED = frozenset({b"ENVELOPE", b"BODY", b"BODYSTRUCTURE"})


class _Unusual(Exception):
    """An answer outside the grammar: imapclient reads the response."""


def _atom(token: bytes) -> Any:
    """imapclient.response_parser.atom for the tokens the grammar lets through."""
    if token == b"NIL":
        return None
    if token.isdigit() and (token[:1] != b"0" or len(token) == 1):
        return int(token)
    return token


def _date(value: bytes) -> Any:
    """imapclient's INTERNALDATE (aware, in the server's zone, as FixedOffset), without email.utils' general
    date parser for the usual form; anything else (and "-0000", which means no zone) goes to imapclient."""
    m = _DATE.fullmatch(value)
    month = _MONTHS.get(m[2].lower()) if m else None
    if m is None or month is None or (m[7] == b"-" and m[8] == m[9] == b"00"):
        return _convert_INTERNALDATE(value, False)
    minutes = (1 if m[7] == b"+" else -1) * (int(m[8]) * 60 + int(m[9]))
    zone = _zones.get(minutes)
    if zone is None:
        zone = _zones.setdefault(minutes, FixedOffset(minutes))
    try:
        return dt.datetime(int(m[3]), month, int(m[1]), int(m[4]), int(m[5]), int(m[6]), tzinfo=zone)
    except ValueError:  # 31-Feb, 25:00: imapclient decides
        return _convert_INTERNALDATE(value, False)


def _pairs(text: bytes | None, into: dict[bytes, Any]) -> None:
    if not text:
        return
    for m in _PAIR.finditer(text):
        word = m["key"].upper()
        if word in _STRUCTURED:
            raise _Unusual
        num, lst, string = m["num"], m["list"], m["str"]
        if word == b"UID":
            if num is None:
                raise _Unusual
            into[word] = int(num)
        elif word == b"INTERNALDATE":
            if string is None:
                raise _Unusual
            into[word] = _date(string)
        elif num is not None:
            into[word] = _atom(num)
        elif string is not None:
            into[word] = string
        else:
            into[word] = tuple(_atom(t) for t in lst.split(b" ")) if lst else ()


def read(data: list[Any]) -> dict[int, dict[bytes, Any]] | None:
    """The FETCH answers of `data` (imaplib's list) keyed by sequence number, each a dict as imapclient gives
    it (SEQ, UID, ... and the literal under its BODY[...] name); None when any answer is outside the grammar."""
    out: dict[int, dict[bytes, Any]] = {}
    i, n = 0, len(data)
    try:
        while i < n:
            item = data[i]
            if isinstance(item, bytes):
                m = _LINE.fullmatch(item)
                if m is None:
                    return None
                seq = int(m[1])
                fields: dict[bytes, Any] = {b"SEQ": seq}
                _pairs(m[2], fields)
                i += 1
            elif isinstance(item, tuple) and len(item) == 2 and i + 1 < n and data[i + 1] == b")":
                head, literal = item
                m = _HEAD.fullmatch(head) if isinstance(head, bytes) else None
                if m is None or not isinstance(literal, bytes) or len(literal) != int(m[4]):
                    return None
                seq = int(m[1])
                fields = {b"SEQ": seq}
                _pairs(m[2], fields)
                fields[m[3].upper()] = literal
                i += 2
            else:
                return None
            out.setdefault(seq, {}).update(fields)
    except _Unusual:
        return None
    return out


def fetch_response(data: list[Any]) -> dict[int, dict[bytes, Any]]:
    """read(), or imapclient's parser where read() declines (it raises imapclient's ProtocolError on what it
    cannot read either)."""
    fast = read(data)
    if fast is not None:
        return fast
    return dict(parse_fetch_response(data, False, False))
