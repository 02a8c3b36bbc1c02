"""The Date header Gmail dates a message by. Pure: bytes and datetimes in, bytes out.

Gmail (users.messages.import with internalDateSource=dateHeader) dates a message by its Date header only
when it can read it; otherwise the message shows the day of the import. What Gmail reads is not
documented, so gimport counts only the strict form of RFC 5322 §3.3 as readable: exactly one Date header,
`[Mon, ]1 Dec 2003 10:00[:00] +0900` with English names, a four-digit year (1900 or later), a numeric
zone, values in range and the day of the week (if any) right for the date; a trailing comment is allowed.

Any other message gets a Date in that form carrying the date a person would read from the original: the
first Date header that can be read leniently (python-dateutil; RFC 5322 §4.3 for two- and three-digit years
and the obsolete zone names, common zone names such as JST or CET, month names in the common Western
European languages, Japanese 年月日), in the zone of the server's INTERNALDATE where it names none; or,
the last resort, the INTERNALDATE itself. Every original Date line stays, renamed `X-Original-Date` (the
prefix `X-Original-` put before its name, nothing else touched), and the new one is put where the first
was (at the top when there was none), with that line's own line ending: so the message is its served
bytes again once the new line is dropped and the prefix taken away.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
import unicodedata
from typing import Any

from dateutil import parser as dateutil_parser

from gimport.mail.rfc822 import header_block, header_values

PREFIX = b"X-Original-"
# what fix_date does with a message (date_fix tells it from the header alone)
STRICT = "strict"  # sent as it is
READ = "read"  # a strict Date from what a person reads in the header
LAST_RESORT = "internaldate"  # no Date header can be read: the INTERNALDATE's
DATE_FIXED = "date fixed"  # what the ledger (gimport report --csv) says of a message fix_date changed
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_STRICT = re.compile(
    rf"(?:({'|'.join(_DAYS)}),[ \t]*)?(\d{{1,2}})[ \t]+({'|'.join(_MONTHS)})[ \t]+(\d{{4}})[ \t]+"
    r"(\d\d):(\d\d)(?::(\d\d))?[ \t]+([+-])(\d\d)(\d\d)(?:[ \t]*\([^()\\]*\))*"
)
_DATE_FIELD = re.compile(rb"^date[ \t]*:", re.MULTILINE | re.IGNORECASE)

# Zone names a person reads as an offset (hours). RFC 5322 §4.3's obsolete names first (its military
# letters are read as -0000, as §4.3 says: see _REWRITES); then names common in mail that name one
# offset only. Names that mean several (IST: India, Ireland, Israel) are left out: those dates take the
# zone of the INTERNALDATE, as a date without a zone does.
_ZONES = {
    "UT": 0, "GMT": 0, "UTC": 0,
    "EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7, "MDT": -6, "PST": -8, "PDT": -7,
    "JST": 9, "KST": 9, "HKT": 8, "SGT": 8, "AWST": 8, "ACST": 9.5, "AEST": 10, "AEDT": 11,
    "NZST": 12, "NZDT": 13, "HST": -10, "AKST": -9, "AKDT": -8, "AST": -4, "ADT": -3, "NST": -3.5,
    "WET": 0, "WEST": 1, "BST": 1, "CET": 1, "CEST": 2, "MET": 1, "MEST": 2, "MEZ": 1, "MESZ": 2,
    "EET": 2, "EEST": 3, "MSK": 3, "MSD": 4,
}  # fmt: skip

# Month names beyond English, lower case, as dateutil looks them up: German, French, Spanish, Italian,
# Dutch, Portuguese, Swedish, Danish, Norwegian and Finnish, full and abbreviated (accents and none).
_MONTH_NAMES = (
    "januar janvier janv enero ene gennaio gen januari janeiro jänner jän tammikuu",
    "februar février fevrier févr fevr febrero febbraio februari fevereiro fev helmikuu",
    "märz maerz mär mrz mars marzo mrt maart março marco marts maaliskuu",
    "avril avr abril abr aprile huhtikuu",
    "mai mayo maggio mag mei maio maj toukokuu",
    "juni juin junio giugno giu junho kesäkuu",
    "juli juillet juil julio luglio lug julho heinäkuu",
    "august août aout agosto ago augustus augusti elokuu",
    "september septembre septiembre setiembre settembre set setembro syyskuu",
    "oktober octobre octubre ottobre ott okt outubro out lokakuu",
    "november novembre noviembre novembro marraskuu",
    "dezember décembre decembre déc diciembre dic dicembre december dezembro dez desember des joulukuu",
)
# Japanese dates (2003年12月1日 10時00分) read as 2003/12/1 10:00.
_JAPANESE = str.maketrans({"年": "/", "月": "/", "日": " ", "時": ":", "分": " ", "秒": " "})
# What dateutil reads otherwise than a person does, put the way a person reads it: comments go; "GMT+0900"
# is +0900 (not POSIX's inverted sign); a three-digit year after the month is 1900 + it (RFC 5322 §4.3:
# old clients wrote the years since 1900); a military zone letter after the time is -0000 (§4.3).
_REWRITES = (
    (re.compile(r"\([^()]*\)"), " "),
    (re.compile(r"\b(?:GMT|UTC|UT)[ \t]*(?=[+-]\d)", re.I), ""),
    (re.compile(rf"\b({'|'.join(_MONTHS)})[ \t]+(\d{{3}})\b", re.I), lambda m: f"{m[1]} {1900 + int(m[2])}"),
    (re.compile(r"(\d:\d\d)[ \t]+[A-IK-Za-ik-z][ \t]*$"), r"\1 +0000"),
)


class _Names(dateutil_parser.parserinfo):
    """dateutil's English names plus the months above; years read as RFC 5322 §4.3 says."""

    MONTHS = [  # noqa: RUF012 -- dateutil reads this class attribute
        (*english, *more.split()) for english, more in zip(dateutil_parser.parserinfo.MONTHS, _MONTH_NAMES, strict=True)
    ]

    def convertyear(self, year: int, century_specified: bool = False) -> int:
        if century_specified or year >= 1000:
            return year
        # §4.3: a two-digit year under 50 is 20xx, any other two- or three-digit year is 1900 + it
        return year + 2000 if year < 50 else year + 1900


_NAMES = _Names()
_PARSER = dateutil_parser.parser(_NAMES)
# two defaults that share no field: a field that takes the default's value was not in the text
_DEFAULTS = (dt.datetime(2001, 1, 1), dt.datetime(2002, 2, 2))


def is_strict(value: str) -> bool:
    """Whether one Date value (unfolded) is RFC 5322 §3.3's strict date-time, as gimport promises Gmail reads."""
    m = _STRICT.fullmatch(value.strip())
    if m is None:
        return False
    day_name, day, month, year, hh, mm, ss, _sign, zh, zm = m.groups()
    try:
        when = dt.datetime(int(year), _MONTHS.index(month) + 1, int(day), int(hh), int(mm), int(ss or 0))
    except ValueError:  # 31 Nov, 25:00, :60 (a leap second Python cannot hold: not promised either)
        return False
    if int(year) < 1900 or int(zm) > 59 or int(zh) > 23:
        return False
    return day_name is None or _DAYS[when.weekday()] == day_name


def needs_fix(raw: bytes) -> bool:
    """Whether the message's Date header(s) are anything but exactly one strict date-time."""
    values = header_values(raw, "Date")
    return len(values) != 1 or not is_strict(values[0])


def date_fix(header: bytes) -> str:
    """What fix_date will do with a message, from its header (or just its Date lines): STRICT, READ or
    LAST_RESORT."""
    if not needs_fix(header):
        return STRICT
    values = header_values(header, "Date")
    return READ if any(read_date(v, None) is not None for v in values) else LAST_RESORT


def _zone(name: str | None, offset: int | None) -> dt.tzinfo | None:
    """dateutil's hook for a zone in the text: a numeric offset, else a name known above, else none (the
    date then takes the INTERNALDATE's zone; never this machine's, as dateutil would for its own names)."""
    if offset is None and name and name.upper() in _ZONES:
        return dt.timezone(dt.timedelta(hours=_ZONES[name.upper()]))
    if offset is not None:
        try:
            return dt.timezone(dt.timedelta(seconds=offset))
        except ValueError:  # a day or more: no real zone
            return None
    return None


def _parse(text: str, default: dt.datetime) -> Any:
    return _PARSER.parse(text, default=default, fuzzy=True, tzinfos=_zone)


def read_date(value: str, zone: dt.tzinfo | None) -> dt.datetime | None:
    """The instant a person reads from one Date value, or None when it names no whole date (day, month and
    year) or names one that cannot be. A time without a zone is in `zone` (UTC when None)."""
    try:  # header_values decodes as latin-1; a date written in Japanese is in UTF-8
        text = value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        text = value
    text = unicodedata.normalize("NFKC", text).translate(_JAPANESE)
    for pattern, replacement in _REWRITES:
        text = pattern.sub(replacement, text)
    try:
        first, second = (_parse(text, d) for d in _DEFAULTS)
    except (ValueError, OverflowError, TypeError):
        return None
    if (first.year, first.month, first.day) != (second.year, second.month, second.day):
        return None  # a field came from the default: the text does not name a whole date
    when: dt.datetime = first if first.tzinfo is not None else first.replace(tzinfo=zone or dt.UTC)
    if (when.utcoffset() or dt.timedelta()) % dt.timedelta(minutes=1):
        return None  # no zone is off by seconds: RFC 5322 cannot write it
    return when.replace(microsecond=0) if 1900 <= when.year <= 9999 else None


def intended_date(raw: bytes, internaldate: dt.datetime | None) -> dt.datetime | None:
    """The instant the message's new Date carries: the first Date header a person can read (in the
    INTERNALDATE's zone where it names none), else the INTERNALDATE; None when neither is known."""
    zone = internaldate.tzinfo if internaldate is not None else None
    for value in header_values(raw, "Date"):
        when = read_date(value, zone)
        if when is not None:
            return when
    return internaldate


def format_date(when: dt.datetime) -> str:
    """RFC 5322 §3.3's form, in `when`'s own zone: `Mon, 01 Dec 2003 10:00:00 +0900`."""
    return email.utils.format_datetime(when.replace(microsecond=0))


def fix_date(raw: bytes, internaldate: dt.datetime | None) -> bytes:
    """`raw` itself when its Date is strict (or no date is known at all); else the message with every Date
    line renamed X-Original-Date and one strict Date added where the first was (see the module's doc)."""
    if not needs_fix(raw):
        return raw
    when = intended_date(raw, internaldate)
    if when is None:
        return raw
    if when.tzinfo is None:
        when = when.astimezone()  # a naive INTERNALDATE is this machine's local time
    block = header_block(raw)
    starts = [m.start() for m in _DATE_FIELD.finditer(block)]
    at = starts[0] if starts else 0
    line_end = raw.find(b"\n", at)
    newline = b"\r\n" if line_end < 0 or raw[line_end - 1 : line_end] == b"\r" else b"\n"
    out = bytearray(raw)
    for start in reversed(starts):
        out[start:start] = PREFIX
    out[at:at] = b"Date: " + format_date(when).encode("ascii") + newline
    return bytes(out)
