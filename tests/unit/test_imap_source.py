import datetime as dt

from gimport.backends.imap.parse import fetch_answers, parse_date, same_but_nul


def test_binary_body_is_accepted_only_when_it_differs_by_nuls():
    body = b"head\r\n\r\nab\x80cd\x80"
    assert same_but_nul(b"head\r\n\r\nab\x00cd\x80", body, step=3)  # a real 0x80 stays 0x80
    assert same_but_nul(body, body, step=3)
    assert not same_but_nul(b"head\r\n\r\nab\x00cd", body, step=3)  # length differs (e.g. decoded)
    assert not same_but_nul(b"head\r\n\r\nab\x00cX\x80", body, step=3)  # any other difference
    assert not same_but_nul(b"Head\r\n\r\nab\x00cd\x80", body, step=4)


def test_fetch_answers_are_keyed_by_the_uid_they_name_and_answers_without_one_are_left_out():
    data = [b"1 (UID 7 RFC822.SIZE 10)", b"2 (RFC822.SIZE 20)", b"3 (UID 9 RFC822.SIZE 30)", b"4 (UID 11 FLAGS ())"]
    answers = fetch_answers(data, [7, 9, 2])
    assert sorted(answers) == [7, 9]  # 2 is the second answer's sequence number, not a UID it named
    assert answers[7][b"RFC822.SIZE"] == 10
    assert answers[9][b"RFC822.SIZE"] == 30


def test_internaldate_keeps_the_servers_zone():
    answers = fetch_answers([b'1 (UID 5 INTERNALDATE "01-Dec-2003 10:00:00 +0900")'], [5])
    when = parse_date(answers[5][b"INTERNALDATE"])
    assert when is not None
    assert when.utcoffset() == dt.timedelta(hours=9)
    assert when == dt.datetime(2003, 12, 1, 1, tzinfo=dt.UTC)
