"""The mbox variants as their writers mean them (gimport.backends.local.mboxscan): Content-Length
framing and its fallback, the mail server's folder-data message, quoting, and what plan is told."""

from __future__ import annotations

import io

from gimport.backends.local.mbox import MboxSource, status_flags
from gimport.backends.local.mboxscan import Variant, read_message, scan

SEP = b"From alice@vm  Thu Jan 02 03:04:05 2020\n"
PSEUDO = (
    b"From MAILER_DAEMON  Mon Dec 07 16:53:35 2026\nDate: Mon, 07 Dec 2026 16:53:35 +0000\n"
    b"From: Mail System Internal Data <MAILER-DAEMON@vm>\n"
    b"Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\nMessage-ID: <1796662415@vm>\n"
    b"X-IMAP: 1796662416 0000000002 $Work\nStatus: RO\n\n"
    b"This text is part of the internal format of your mail folder, and is not\na real message.\n\n"
)


def cl2(head: bytes, body: bytes, extra: bytes = b"X-UID: 1\nStatus: RO\nX-Keywords: \n") -> bytes:
    """One message as Dovecot's mbox writes it: server headers and Content-Length, nothing quoted."""
    return SEP + head + extra + b"Content-Length: %d\n\n" % len(body) + body + b"\n"


def read_all(data: bytes, *, content_length: bool = True) -> tuple[list[bytes], Variant]:
    v = Variant()
    fh = io.BytesIO(data)
    found = list(scan(fh, content_length=content_length, variant=v))
    return [read_message(fh, m.start, m.end, m.identity, "t", quoted=m.quoted) for m in found], v


PARAGRAPH_BODY = (
    b"hello\n\nFrom the start of a paragraph\n>From quoted\n\nFrom 10:00 to 12:00 on Tue Dec  1 2026\nend\n"
)


def test_dovecot_mboxcl2_is_framed_by_content_length_without_its_folder_data():
    data = PSEUDO + cl2(b"Subject: one\n", PARAGRAPH_BODY) + cl2(b"Subject: two\n", b"body two\n")
    msgs, v = read_all(data)
    assert len(msgs) == 2  # no pseudo-message, no piece split off at a "From " line
    assert msgs[0].endswith(b"\n\n" + PARAGRAPH_BODY)  # ">From quoted" kept: mboxcl2 quotes nothing
    assert msgs[1].endswith(b"\n\nbody two\n")
    assert (v.name, v.doubts(), v.pseudo) == ("mboxcl2", [], 1)


def test_uw_imap_pseudo_message_is_left_out_and_only_the_first():
    uw = PSEUDO.replace(b"MAILER_DAEMON  Mon", b"MAILER-DAEMON Mon")
    later = uw.replace(b"X-IMAP: 1796662416 0000000002 $Work\n", b"")  # the same text later: a real message
    msgs, v = read_all(uw + SEP + b"Subject: real\n\nbody\n\n" + later)
    assert len(msgs) == 2
    assert msgs[0] == b"Subject: real\n\nbody\n"
    assert v.pseudo == 1


def test_a_content_length_that_does_not_fit_falls_back_to_from_lines_and_says_so():
    good = cl2(b"Subject: one\n", b"one\n")
    bad = SEP + b"Subject: two\nContent-Length: 3\n\ntwo is longer\n\n"
    beyond = SEP + b"Subject: three\nContent-Length: 999999\n\nthree\n"
    msgs, v = read_all(good + bad + beyond)
    assert [m.split(b"\n\n", 1)[1] for m in msgs] == [b"one\n", b"two is longer\n", b"three\n"]
    assert v.length_misfit == 2
    assert any("Content-Length that does not fit" in d for d in v.doubts())


def test_mboxcl_or_mboxcl2_without_a_hint_is_named_ambiguous():
    data = cl2(b"Subject: one\n", b"You wrote:\n>From the archive\n", extra=b"")
    msgs, v = read_all(data)
    assert msgs[0].endswith(b">From the archive\n")  # read as mboxcl2: kept as written
    assert v.name == "mboxcl or mboxcl2"
    assert any("cannot be told apart" in d for d in v.doubts())


def test_a_from_line_after_a_blank_line_that_is_no_separator_stays_in_its_message():
    data = SEP + b"Subject: one\n\nDear all,\n\nFrom the minutes:\nnothing.\n\n" + SEP + b"Subject: two\n\nx\n"
    msgs, v = read_all(data)
    assert msgs == [b"Subject: one\n\nDear all,\n\nFrom the minutes:\nnothing.\n", b"Subject: two\n\nx\n"]
    assert v.not_separators == 1
    assert v.name == "mboxo or mboxrd"
    assert any("does not look like a From_ line" in d for d in v.doubts())


def test_mboxrd_deeper_quotes_are_named_as_the_ambiguity_they_are():
    data = SEP + b"Subject: one\n\n>From a\n>>From b\n\n"
    msgs, v = read_all(data)
    assert msgs == [b"Subject: one\n\nFrom a\n>From b\n"]
    assert any("'>>From '" in d for d in v.doubts())


def test_content_length_is_ignored_when_not_asked_for():
    data = SEP + b"Subject: one\nContent-Length: 2\n\nab\n\nFrom a@b Tue Dec  1 09:00:00 2026\nSubject: 2\n\nx\n"
    msgs, v = read_all(data, content_length=False)
    assert len(msgs) == 2
    assert v.by_length == 0


def test_server_flags_and_keywords():
    assert status_flags({"status": "RO", "x-status": "F"}) == ("\\Seen", "\\Flagged")
    assert status_flags({"status": "O", "x-status": "AT", "x-keywords": "$Work  Junk,$label1 "}) == (
        "\\Answered", "\\Draft", "$Work", "Junk", "$label1",
    )  # fmt: skip
    # marked deleted, not yet expunged: left out by the selection, or to Trash with [filters] include_deleted
    assert status_flags({"status": "RO", "x-status": "D"}) == ("\\Seen", "\\Deleted")


def test_the_source_imports_the_message_as_the_server_serves_it(tmp_path):
    """Dovecot serves neither X-UID, Status, X-Status, X-Keywords nor its Content-Length: neither does
    gimport import them; their flags are the message's flags; plan is told the variant."""
    head = b"From: a@b\nSubject: one\n"
    path = tmp_path / "inbox"
    path.write_bytes(
        PSEUDO + cl2(head, PARAGRAPH_BODY, extra=b"X-UID: 1\nStatus: \nX-Status: F\nX-Keywords: $Work   \n")
    )
    src = MboxSource(path, "mbox@local")
    src.connect()
    src.list_folders()
    assert src.examine("inbox")[1] == 1
    uids = src.search()
    (meta,) = src.fetch_meta(uids)
    assert meta.flags == ("\\Flagged", "$Work")  # "Status: " without R: unread
    assert [m.raw for m in src.fetch_bodies(uids)] == [head + b"\n" + PARAGRAPH_BODY]
    assert src.folder_format("inbox") == ("mboxcl2", [])
