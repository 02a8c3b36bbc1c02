"""The fast reading of FETCH answers against imapclient's parser: whatever it reads, it reads as imapclient does;
what it declines, imapclient reads (or refuses). The answers are Dovecot's shapes (taken from a real one), and
thousands of variants around them: odd flags, numbers, NIL, case, answers without UID, unsolicited FLAGS,
structures, partial bodies, literals of the wrong length, items after a literal."""

from __future__ import annotations

import random

import pytest
from imapclient.response_parser import _convert_INTERNALDATE, parse_fetch_response

from gimport.backends.imap.fastfetch import _date, fetch_response, read
from gimport.backends.imap.parse import fetch_answers

# as Dovecot answered gimport's three FETCHes (scan: meta, identities; transfer: bodies)
META = [
    b'1 (UID 1 RFC822.SIZE 3670 FLAGS (\\Seen \\Recent) INTERNALDATE "06-Feb-2019 02:22:55 +0000")',
    b'2 (UID 2 RFC822.SIZE 2330 FLAGS () INTERNALDATE "11-Apr-2019 17:27:20 +0900")',
]
IDENTITIES = [
    (
        b'1 (UID 1 RFC822.SIZE 3670 FLAGS (\\Seen \\Recent) INTERNALDATE "06-Feb-2019 02:22:55 +0000"'
        b" BODY[HEADER.FIELDS (MESSAGE-ID)] {62}",
        b"Message-ID: <068c6748a909d6828837d069@corpus.gimport.test>\r\n\r\n",
    ),
    b")",
    (
        b'2 (UID 2 RFC822.SIZE 2330 FLAGS ($Label1 \\Flagged) INTERNALDATE "11-Apr-2019 17:27:20 -0500"'
        b" BODY[HEADER.FIELDS (MESSAGE-ID)] {2}",
        b"\r\n",
    ),
    b")",
]
BODIES = [
    (b'7 (UID 40 FLAGS (\\Seen) INTERNALDATE "06-Feb-2019 02:22:55 +0000" BODY[] {20}', b"Subject: x\r\n\r\nbody\r\n"),
    b")",
]


def imapclient_reads(data: list) -> dict | type[Exception]:
    """imapclient's reading, or the class of what it raised (a ProtocolError; an AttributeError for some)."""
    try:
        return dict(parse_fetch_response(data, False, False))
    except Exception as exc:  # noqa: BLE001  (whatever imapclient raises, the fast way must raise too)
        return type(exc)


@pytest.mark.parametrize("data", [META, IDENTITIES, BODIES], ids=["meta", "identities", "bodies"])
def test_what_dovecot_sends_is_read_fast_and_as_imapclient_reads_it(data):
    fast = read(data)
    assert fast is not None
    assert fast == imapclient_reads(data)
    assert fetch_answers(data, [1, 2, 40]) == {
        item[b"UID"]: item for item in imapclient_reads(data).values() if item[b"UID"] in (1, 2, 40)
    }


DATES = [
    b"06-Feb-2019 02:22:55 +0000",
    b" 6-Feb-2019 02:22:55 +0900",
    b"6-feb-2019 02:22:55 -0500",
    b"31-Dec-1999 23:59:59 +0530",
    b"01-Jan-2020 00:00:00 -0000",
    b"31-Feb-2019 02:22:55 +0000",
    b"06-Feb-2019 25:22:55 +0000",
    b"06-Foo-2019 02:22:55 +0000",
    b"06-Feb-19 02:22:55 +0000",
    b"Wed, 06 Feb 2019 02:22:55 +0000",
    b"06-Feb-2019 02:22:55",
    b"garbage",
    b"",
]


@pytest.mark.parametrize("text", DATES)
def test_internaldate_as_imapclient_reads_it_zone_included(text):
    def seen(value):
        return None if value is None else (value, value.utcoffset(), value.tzname(), value.tzinfo is None)

    assert seen(_date(text)) == seen(_convert_INTERNALDATE(text, False))


def _flag(rng: random.Random) -> bytes:
    return rng.choice(
        [b"\\Seen", b"\\Answered", b"$Label1", b"NIL", b"12", b"012", b"0", b"Junk", b"\\*", b'"q"', b"a[b]", b"%x"]
    )


def _value(rng: random.Random, key: bytes) -> bytes:
    if key == b"FLAGS" or rng.random() < 0.1:
        return b"(" + b" ".join(_flag(rng) for _ in range(rng.randrange(4))) + b")"
    if key == b"INTERNALDATE":
        return rng.choice(
            [b'"06-Feb-2019 02:22:55 +0000"', b'"1-Jan-2020 00:00:00 +0900"', b'"garbage"', b"NIL", b'""']
        )
    return rng.choice([b"5", b"0", b"0123", b"99999999999", b"NIL", b'"x"', b'"a\\"b"', b"abc"])


def _answer(rng: random.Random, seq: int) -> list:
    keys = [b"UID", b"RFC822.SIZE", b"FLAGS", b"INTERNALDATE"]
    rng.shuffle(keys)
    keys = keys[: rng.randrange(1, 5)]
    if rng.random() < 0.1:
        keys.append(rng.choice([b"uid", b"X-GM-MSGID", b"ENVELOPE", b"BODY", b"MODSEQ"]))
    sep = b"  " if rng.random() < 0.05 else b" "
    pairs = sep.join(k + b" " + _value(rng, k) for k in keys)
    head = str(seq).encode() + b" (" + pairs
    if rng.random() < 0.5:
        literal = b"Message-ID: <%d@x>\r\n\r\n" % rng.randrange(1000)
        key = rng.choice([b"BODY[HEADER.FIELDS (MESSAGE-ID)]", b"BODY[]", b"body[]", b"BODY[]<0>"])
        n = len(literal) + (1 if rng.random() < 0.05 else 0)
        closer = rng.choice([b")"] * 9 + [b" UID 9)"])
        return [(head + b" " + key + b" {%d}" % n, literal), closer]
    return [head + b")"]


def test_thousands_of_variants_read_as_imapclient_reads_them_or_are_left_to_it():
    rng = random.Random(20261208)
    fast_count = 0
    for _ in range(4000):
        data: list = []
        for _ in range(rng.randrange(1, 4)):
            data += _answer(rng, rng.randrange(1, 4))  # repeated sequence numbers: answers are merged
        expected = imapclient_reads(data)
        fast = read(data)
        if fast is not None:
            fast_count += 1
            assert fast == expected, data
        if isinstance(expected, type):
            with pytest.raises(expected):
                fetch_response(data)
        else:
            assert fetch_response(data) == expected, data
    assert fast_count > 300  # the plain ones go the fast way


def test_nothing_found_is_no_answer():
    assert fetch_response([None]) == {}
