"""A corpus of Date headers seen in real old mail, each with the instant a person reads from it, and the
inverse of gimport's date fix (drop the added Date line, take X-Original- away) to prove nothing else
changed. Written apart from gimport.mail.dates: the expectations are a person's reading, not the code's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

JST = dt.timezone(dt.timedelta(hours=9))
# the INTERNALDATE every message of the corpus is seeded with: the day of an earlier server move, not the
# day the mail was written, so a test tells a date read from the header from the last resort
MOVED = dt.datetime(2011, 3, 11, 14, 46, 0, tzinfo=JST)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


@dataclasses.dataclass(frozen=True)
class OddDate:
    """`dates`: the Date lines of the message as written (none, one or two); `wall`: the local time a person
    reads when the header names no zone (the instant is then that time in the INTERNALDATE's zone);
    `instant`: the instant when the header names it; neither: the message can only be dated by its
    INTERNALDATE. `strict`: gimport must leave it alone."""

    name: str
    dates: tuple[bytes, ...]
    instant: dt.datetime | None = None
    wall: dt.datetime | None = None
    strict: bool = False
    newline: bytes = b"\r\n"

    def message(self, n: int) -> bytes:
        nl = self.newline
        head = [b"From: Old Friend <old@example.jp>"]
        head += self.dates[:1]
        head += [b"Subject: odd date " + self.name.encode(), b"Message-ID: <odd-%d@example.jp>" % n]
        head += self.dates[1:]
        body = b"This is about " + self.name.encode() + nl
        return nl.join(head) + nl + nl + body

    def expected(self, internaldate: dt.datetime) -> dt.datetime:
        """The instant the message must be dated at in Gmail, for a given INTERNALDATE."""
        if self.instant is not None:
            return self.instant
        if self.wall is not None:
            zone = internaldate.tzinfo
            assert zone is not None
            return self.wall.replace(tzinfo=zone)
        return internaldate


CORPUS = (
    OddDate("strict", (b"Date: Mon, 01 Dec 2003 10:00:00 +0900 (JST)",), utc(2003, 12, 1, 1), strict=True),
    OddDate("two-digit year", (b"Date: Mon, 1 Dec 03 10:00:00 +0900",), utc(2003, 12, 1, 1)),
    OddDate("two-digit year, last century", (b"Date: Tue, 2 Dec 97 10:00:00 -0500",), utc(1997, 12, 2, 15)),
    OddDate("three-digit year", (b"Date: Mon, 1 Dec 103 10:00:00 +0000",), utc(2003, 12, 1, 10)),
    OddDate("obsolete zone EST", (b"Date: Mon, 1 Dec 2003 10:00:00 EST",), utc(2003, 12, 1, 15)),
    OddDate("obsolete zone GMT", (b"Date: Mon, 1 Dec 2003 10:00:00 GMT",), utc(2003, 12, 1, 10)),
    OddDate("named zone JST", (b"Date: Mon, 01 Dec 2003 10:00:00 JST",), utc(2003, 12, 1, 1)),
    OddDate("named zone CET", (b"Date: Mon, 01 Dec 2003 10:00:00 CET",), utc(2003, 12, 1, 9)),
    OddDate("no zone", (b"Date: Mon, 01 Dec 2003 10:00:00",), wall=dt.datetime(2003, 12, 1, 10)),
    OddDate("ISO 8601", (b"Date: 2003-12-01T10:00:00+09:00",), utc(2003, 12, 1, 1)),
    OddDate("Japanese style, no zone", (b"Date: 2003/12/01 10:00",), wall=dt.datetime(2003, 12, 1, 10)),
    OddDate("Japanese style, JST", (b"Date: 2003/12/01 10:00 JST",), utc(2003, 12, 1, 1)),
    OddDate("Japanese 年月日", ("Date: 2003年12月1日 10時05分".encode(),), wall=dt.datetime(2003, 12, 1, 10, 5)),
    OddDate("German names", (b"Date: Mo, 01 Dez 2003 10:00:00 +0100",), utc(2003, 12, 1, 9)),
    OddDate("French names, Latin-1", (b"Date: lun., 1 d\xe9c. 2003 10:00:00 +0100",), utc(2003, 12, 1, 9)),
    OddDate("wrong day of the week", (b"Date: Fri, 01 Dec 2003 10:00:00 +0900",), utc(2003, 12, 1, 1)),
    OddDate("folded, strict", (b"Date: Mon, 1 Dec 2003\r\n 10:00:00 -0500",), utc(2003, 12, 1, 15), strict=True),
    OddDate("folded", (b"Date: Mon, 1 Dec 03\r\n\t10:00:00 EST",), utc(2003, 12, 1, 15)),
    OddDate(
        "two Date headers",
        (b"Date: Mon, 01 Dec 2003 10:00:00 +0900", b"Date: Tue, 02 Dec 2003 11:00:00 +0900"),
        utc(2003, 12, 1, 1),
    ),
    OddDate("lower-case name, bare LF", (b"date: Mon, 1 Dec 03 10:00:00 +0900",), utc(2003, 12, 1, 1), newline=b"\n"),
    OddDate("out of range", (b"Date: Sun, 31 Nov 2003 25:61:00 +0000",)),
    OddDate("garbage", (b"Date: sometime last winter",)),
    OddDate("empty", (b"Date:",)),
    OddDate("none", ()),
)

_ADDED = re.compile(rb"^Date: [^\r\n]*\r?\n", re.MULTILINE)
_RENAMED = re.compile(rb"^X-Original-(?=date[ \t]*:)", re.MULTILINE | re.IGNORECASE)


def served(sent: bytes) -> bytes:
    """The message as the source served it, from what gimport sent after fixing its date: the added Date
    line dropped (gimport adds exactly one, in strict form: `Date: ` and one line), X-Original- taken away."""
    end = re.search(rb"\r?\n\r?\n", sent)
    head, rest = (sent[: end.start()], sent[end.start() :]) if end else (sent, b"")
    added = _ADDED.findall(head + b"\n")
    assert len(added) == 1, f"not exactly one Date line in {head!r}"
    head = _ADDED.sub(b"", head + b"\n", count=1)[:-1]
    return _RENAMED.sub(b"", head) + rest


# RFC 5322 §3.3, strict, written apart from gimport's own check: what a Gmail that reads nothing else reads
_STRICT = re.compile(
    rb"^(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), ?)?\d{1,2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    rb"\d{4} \d\d:\d\d(?::\d\d)? [+-]\d{4}(?: \([^()]*\))?$"
)


def looks_strict(value: bytes) -> bool:
    return _STRICT.match(value) is not None
