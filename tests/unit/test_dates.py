import datetime as dt

import pytest

from gimport.mail import dates
from gimport.mail.rfc822 import header_values
from tests.rig.odd_dates import CORPUS, JST, MOVED, OddDate, looks_strict, served, utc


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_every_odd_date_lands_on_the_date_a_person_reads(case: OddDate):
    raw = case.message(1)
    sent = dates.fix_date(raw, MOVED)
    if case.strict:
        assert sent is raw
        assert not dates.needs_fix(raw)
        return
    assert dates.needs_fix(raw)
    (new,) = header_values(sent, "Date")
    assert looks_strict(new.encode()), new
    assert dates.is_strict(new)
    assert not dates.needs_fix(sent)
    # the instant, to the second
    assert dates.read_date(new, None) == case.expected(MOVED)
    # nothing else changed: the served bytes come back, every original Date line kept as X-Original-Date
    assert served(sent) == raw
    assert len(header_values(sent, "X-Original-Date")) == len(case.dates)
    # the new line sits where the first Date was (at the top when there was none), with its line ending
    line = b"Date: " + new.encode() + case.newline
    assert sent.index(line) == (raw.index(case.dates[0]) if case.dates else 0)


def test_the_zone_of_the_internaldate_is_used_only_where_the_header_names_none():
    raw = OddDate("no zone", (b"Date: 2003/12/01 10:00",)).message(1)
    in_utc = dates.fix_date(raw, MOVED.astimezone(dt.UTC))
    assert b"\r\nDate: Mon, 01 Dec 2003 10:00:00 +0000\r\n" in in_utc
    assert b"\r\nDate: Mon, 01 Dec 2003 10:00:00 +0900\r\n" in dates.fix_date(raw, MOVED)


def test_no_date_and_no_internaldate_leaves_the_bytes_alone():
    raw = OddDate("garbage", (b"Date: sometime",)).message(1)
    assert dates.fix_date(raw, None) is raw
    # a readable header needs no INTERNALDATE: a missing zone is then UTC
    raw = OddDate("no zone", (b"Date: 2003/12/01 10:00",)).message(1)
    assert b"Date: Mon, 01 Dec 2003 10:00:00 +0000\r\n" in dates.fix_date(raw, None)


@pytest.mark.parametrize(
    "value",
    [
        "Mon, 01 Dec 2003 10:00:00 +0900",
        "1 Dec 2003 10:00 -0000",
        "Mon,1 Dec 2003 10:00:00 +0900",
        "Mon, 01 Dec 2003 10:00:00 +0900 (JST)",
        "Sat, 01 Dec 1900 10:00:00 +0000",
    ],
)
def test_strict(value):
    assert dates.is_strict(value)


@pytest.mark.parametrize(
    "value",
    [
        "Mon, 01 Dec 03 10:00:00 +0900",  # two-digit year
        "Mon, 01 Dec 2003 10:00:00 JST",  # named zone
        "Mon, 01 Dec 2003 10:00:00 GMT",  # obsolete zone
        "Mon, 01 Dec 2003 10:00:00",  # no zone
        "Tue, 01 Dec 2003 10:00:00 +0900",  # the wrong day of the week
        "Mon, 01 Dez 2003 10:00:00 +0900",  # not English
        "mon, 01 dec 2003 10:00:00 +0900",  # not as written in the RFC
        "Mon, 31 Nov 2003 10:00:00 +0900",
        "Mon, 01 Dec 2003 24:00:00 +0900",
        "Mon, 01 Dec 2003 10:00:60 +0900",
        "Mon, 01 Dec 2003 10:00:00 +0960",
        "Sun, 01 Dec 1899 10:00:00 +0000",
        "2003-12-01T10:00:00+09:00",
        "",
    ],
)
def test_not_strict(value):
    assert not dates.is_strict(value)


def test_two_date_headers_are_not_strict_even_when_each_is():
    raw = b"Date: Mon, 01 Dec 2003 10:00:00 +0900\r\nDate: Mon, 01 Dec 2003 10:00:00 +0900\r\n\r\nx"
    assert dates.needs_fix(raw)
    assert dates.needs_fix(b"Subject: no date\r\n\r\nx")


@pytest.mark.parametrize(
    ("value", "instant"),
    [
        ("Mon, 1 Dec 49 10:00:00 +0000", utc(2049, 12, 1, 10)),  # RFC 5322 §4.3: under 50 is 20xx
        ("Mon, 1 Dec 50 10:00:00 +0000", utc(1950, 12, 1, 10)),  # 50 and over is 19xx
        ("Mon, 1 Dec 2003 10:00:00 PDT", utc(2003, 12, 1, 17)),
        ("Mon, 1 Dec 2003 10:00:00 Z", utc(2003, 12, 1, 10)),
        ("Mon, 1 Dec 2003 10:00:00 A", utc(2003, 12, 1, 10)),  # §4.3: military zones are -0000
        ("Mon, 1 Dec 2003 10:00:00 GMT+0900", utc(2003, 12, 1, 1)),  # as written, not POSIX's inverted sign
        ("Mon, 1 Dec 2003 10:00:00 +0900 JST", utc(2003, 12, 1, 1)),
        ("lunes, 1 de diciembre de 2003 10:00:00 +0100", utc(2003, 12, 1, 9)),
        ("1 dicembre 2003 10:00 +0100", utc(2003, 12, 1, 9)),
        ("1 maart 2003 10:00 +0100", utc(2003, 3, 1, 9)),
        ("1 dezembro 2003 10:00 -0300", utc(2003, 12, 1, 13)),
        ("1 maj 2003 10:00 +0200", utc(2003, 5, 1, 8)),
        ("Mon Dec  1 10:00:00 2003", dt.datetime(2003, 12, 1, 10, tzinfo=JST)),  # asctime: the zone given
        ("2003年12月1日(月) 10:05:09", dt.datetime(2003, 12, 1, 10, 5, 9, tzinfo=JST)),
        ("1 Dec 2003", dt.datetime(2003, 12, 1, tzinfo=JST)),  # no time: midnight
    ],
)
def test_read_date(value, instant):
    assert dates.read_date(value, JST) == instant


@pytest.mark.parametrize("value", ["yesterday", "Dec 1", "10:00", "12", "x" * 500])
def test_unreadable(value):
    assert dates.read_date(value, JST) is None


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_date_fix_tells_from_the_date_lines_alone_what_fix_date_does(case: OddDate):
    raw = case.message(1)
    lines = b"".join(d + b"\r\n" for d in case.dates) + b"\r\n"  # what a FETCH of HEADER.FIELDS (DATE) gives
    kind = dates.date_fix(lines)
    assert kind == dates.date_fix(raw)
    if case.strict:
        assert kind == dates.STRICT
    elif case.instant is None and case.wall is None:
        assert kind == dates.LAST_RESORT
        assert dates.read_date(header_values(dates.fix_date(raw, MOVED), "Date")[0], None) == MOVED
    else:
        assert kind == dates.READ
