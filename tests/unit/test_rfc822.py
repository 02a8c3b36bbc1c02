import datetime as dt

from gimport.mail import rfc822

MSG = b"From: a@example.jp\r\nSubject: x\r\n =?ISO-2022-JP?B?GyRCJEckOxsoQg==?=\r\nMessage-ID:\r\n <m1@example.jp>\r\n\r\nbody\r\n"


def test_header_values_unfold_and_stop_at_the_body():
    assert rfc822.message_id(MSG) == "<m1@example.jp>"
    assert rfc822.header_values(MSG, "subject") == ["x =?ISO-2022-JP?B?GyRCJEckOxsoQg==?="]
    assert rfc822.header_values(b"A: 1\r\n\r\nB: 2\r\n", "B") == []


def test_message_without_message_id():
    assert rfc822.message_id(b"From: a\r\n\r\nx") is None


def test_usable_date():
    assert rfc822.has_usable_date(b"Date: Tue, 01 Jun 2021 10:00:00 +0900\r\n\r\n")
    assert not rfc822.has_usable_date(b"Date: yesterday-ish\r\n\r\n")
    assert not rfc822.has_usable_date(b"Subject: none\r\n\r\n")


def test_ensure_date_keeps_bytes_when_date_is_usable():
    raw = b"Date: Tue, 01 Jun 2021 10:00:00 +0900\r\nSubject: \xff\x00\r\n\r\nbody"
    assert rfc822.ensure_date(raw, dt.datetime(2020, 1, 1, tzinfo=dt.UTC)) is raw


def test_ensure_date_synthesises_from_internaldate_and_keeps_the_rest():
    raw = b"Subject: \x1b$B$3\x1b(B\r\n\r\n\x00body\r\n"
    when = dt.datetime(2016, 3, 4, 5, 6, 7, tzinfo=dt.timezone(dt.timedelta(hours=9)))
    out = rfc822.ensure_date(raw, when)
    assert out == b"Date: Fri, 04 Mar 2016 05:06:07 +0900\r\n" + raw
    assert rfc822.has_usable_date(out)


def test_ensure_date_follows_bare_lf_messages():
    out = rfc822.ensure_date(b"Subject: x\n\nbody\n", dt.datetime(2016, 3, 4, tzinfo=dt.UTC))
    assert out.startswith(b"Date: Fri, 04 Mar 2016 00:00:00 +0000\nSubject")


def test_sha256_is_of_the_exact_bytes():
    assert rfc822.sha256(b"a\r\n") != rfc822.sha256(b"a\n")
