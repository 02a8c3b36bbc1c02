from gimport.backends.imap.parse import same_but_nul


def test_binary_body_is_accepted_only_when_it_differs_by_nuls():
    body = b"head\r\n\r\nab\x80cd\x80"
    assert same_but_nul(b"head\r\n\r\nab\x00cd\x80", body, step=3)  # a real 0x80 stays 0x80
    assert same_but_nul(body, body, step=3)
    assert not same_but_nul(b"head\r\n\r\nab\x00cd", body, step=3)  # length differs (e.g. decoded)
    assert not same_but_nul(b"head\r\n\r\nab\x00cX\x80", body, step=3)  # any other difference
    assert not same_but_nul(b"Head\r\n\r\nab\x00cd\x80", body, step=4)
