from gimport.mail import rfc822

MSG = b"From: a@example.jp\r\nSubject: x\r\n =?ISO-2022-JP?B?GyRCJEckOxsoQg==?=\r\nMessage-ID:\r\n <m1@example.jp>\r\n\r\nbody\r\n"


def test_header_values_unfold_and_stop_at_the_body():
    assert rfc822.message_id(MSG) == "<m1@example.jp>"
    assert rfc822.header_values(MSG, "subject") == ["x =?ISO-2022-JP?B?GyRCJEckOxsoQg==?="]
    assert rfc822.header_values(b"A: 1\r\n\r\nB: 2\r\n", "B") == []


def test_message_without_message_id():
    assert rfc822.message_id(b"From: a\r\n\r\nx") is None


def test_sha256_is_of_the_exact_bytes():
    assert rfc822.sha256(b"a\r\n") != rfc822.sha256(b"a\n")
