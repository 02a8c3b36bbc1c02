"""The local sources' pure parts: config validation, label names, mbox scanning and keys."""

from __future__ import annotations

import io

import pytest

from gimport.backends.local.common import decode_modified_utf7, make_uid, remove_fields
from gimport.backends.local.maildir import parse_name
from gimport.backends.local.mboxscan import identity_of, read_message, scan, separator_date
from gimport.backends.local.takeout import classify, parse_labels
from gimport.config.load import load_settings
from gimport.errors import ConfigError


def write(tmp_path, text):
    p = tmp_path / "gimport.toml"
    p.write_text(text, encoding="utf-8")
    return p


# ---------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize("kind", ["maildir", "mbox", "thunderbird", "takeout"])
def test_local_type_needs_a_path_only(tmp_path, kind):
    s = load_settings(write(tmp_path, f'[source]\ntype = "{kind}"\npath = "mail"\n'), env={})
    assert s.source.type == kind
    assert s.source.path == (tmp_path / "mail").resolve()
    assert s.source.account == f"{kind}@local"
    assert s.source.labels == s.labels
    with pytest.raises(ConfigError, match=r"\[source\] path is required with type = "):
        load_settings(write(tmp_path, f'[source]\ntype = "{kind}"\n'), env={})


@pytest.mark.parametrize("key", ["host = 'x'", "user = 'u'", "password_file = 'p'", "port = 993", "security = 'ssl'"])
def test_local_type_refuses_imap_keys(tmp_path, key):
    with pytest.raises(ConfigError, match=r"is not used with type = 'maildir'.*remove it"):
        load_settings(write(tmp_path, f'[source]\ntype = "maildir"\npath = "m"\n{key}\n'), env={})


def test_unknown_type_and_path_on_imap_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"type must be one of imap, maildir, mbox, thunderbird, takeout"):
        load_settings(write(tmp_path, '[source]\ntype = "pst"\npath = "x"\n'), env={})
    with pytest.raises(ConfigError, match=r"path is for mail on this computer"):
        load_settings(write(tmp_path, '[source]\nhost = "h"\nuser = "u"\npath = "x"\n'), env={})


# --------------------------------------------------------------------------------------------- helpers


def test_modified_utf7_names():
    assert decode_modified_utf7("&ZeVnLIqe-") == "日本語"
    assert decode_modified_utf7("&TtVOiw-") == "仕事"
    assert decode_modified_utf7("A&-B") == "A&B"
    assert decode_modified_utf7("plain") == "plain"


def test_maildir_names():
    assert parse_name("1600000000.M1P2.host,S=12:2,FS") == ("1600000000.M1P2.host,S=12", "FS")
    assert parse_name("1600000000.M1P2.host") == ("1600000000.M1P2.host", None)
    assert parse_name("1600000000.M1P2.host!2,S") == ("1600000000.M1P2.host", "S")


def test_removing_fields_keeps_every_other_byte():
    raw = b"A: 1\r\nX-Mozilla-Keys: a\r\n  b\r\nB: 2\r\n\r\nX-Mozilla-Keys: body\r\n"
    assert remove_fields(raw, frozenset({b"x-mozilla-keys"})) == b"A: 1\r\nB: 2\r\n\r\nX-Mozilla-Keys: body\r\n"
    assert remove_fields(b"A: 1\n\nb\n", frozenset({b"x"})) == b"A: 1\n\nb\n"


def test_uids_differ_by_occurrence_and_fit_sqlite():
    a, b = make_uid(b"x", 0), make_uid(b"x", 1)
    assert a != b
    assert 0 < a < 2**63
    assert 0 < b < 2**63


# ------------------------------------------------------------------------------------------------ mbox


def _scan(data):
    return list(scan(io.BytesIO(data)))


def test_scan_separators_escapes_and_the_last_blank_line():
    data = (
        b"From a@b Tue Dec  1 09:00:00 2026\nSubject: one\n\nhi\nFrom the start\n>From x\n\n"
        b"From a@b Tue Dec  1 09:00:01 2026\nSubject: two\n\nbody\n\n"
    )
    one, two = _scan(data)
    fh = io.BytesIO(data)
    assert read_message(fh, one.start, one.end, one.identity, "t") == b"Subject: one\n\nhi\nFrom the start\nFrom x\n"
    assert read_message(fh, two.start, two.end, two.identity, "t") == b"Subject: two\n\nbody\n"
    # "From the start" has no blank line before it and no date: not a separator
    assert len(_scan(data)) == 2


def test_identity_survives_growth_status_changes_and_compaction():
    first = b"From a@b Tue Dec  1 09:00:00 2026\nSubject: one\nStatus: O\n\nbody\n\n"
    grown = first.replace(b"Status: O", b"Status: RO") + b"From a@b Tue Dec  1 09:00:01 2026\nSubject: 2\n\nx\n"
    no_blank_at_end = first[:-1]
    ids = {_scan(d)[0].identity for d in (first, grown, no_blank_at_end)}
    assert len(ids) == 1
    assert identity_of(b"Subject: one\nStatus: RO\n\nbody\n") in ids


def test_not_an_mbox_is_refused():
    from gimport.backends.local.mboxscan import NotMbox

    with pytest.raises(NotMbox):
        _scan(b"Subject: no separator\n\nbody\n")


def test_separator_dates():
    assert separator_date(b"From a@b Tue Dec  1 09:00:00 2026\n").isoformat() == "2026-12-01T09:00:00+00:00"
    assert separator_date(b"From 17@xxx Tue Dec 01 09:00:00 +0900 2026\n").isoformat() == "2026-12-01T09:00:00+09:00"
    assert separator_date(b"From - Tue Dec 01 09:00:00 2026\n").year == 2026
    assert separator_date(b"From here on\n") is None


# --------------------------------------------------------------------------------------------- Takeout


@pytest.mark.parametrize(
    ("label", "folder"),
    [
        ("Inbox", "INBOX"),
        ("受信トレイ", "INBOX"),
        ("送信済みメール", "Sent"),
        ("Sent", "Sent"),
        ("重要", "Important"),
        ("迷惑メール", "Spam"),
        ("ゴミ箱", "Trash"),
        ("下書き", "Drafts"),
        ("Category Social", "Category Social"),
        ("カテゴリ: ソーシャル", "Category Social"),
        ("カテゴリ：プロモーション", "Category Promotions"),
        ("カテゴリ 新着", "Category Updates"),
        ("Category Forums", "Category Forums"),
        ("Work/Projects", "Work/Projects"),
        ("仕事", "仕事"),
    ],
)
def test_takeout_label_names(label, folder):
    assert classify(label) == folder


def test_takeout_flags_and_chat_are_not_folders():
    from gimport.backends.local.takeout import CHAT, OPENED, STARRED, UNREAD

    assert [classify(x) for x in ("Starred", "スター付き", "Unread", "未読", "Opened", "開封済み", "Chat")] == [
        STARRED, STARRED, UNREAD, UNREAD, OPENED, OPENED, CHAT,
    ]  # fmt: skip


def test_takeout_label_header():
    utf8 = 'Inbox,仕事/報告書,"Clients, 2024"'.encode().decode("latin-1")
    assert parse_labels(utf8) == ["Inbox", "仕事/報告書", "Clients, 2024"]
    assert parse_labels("=?UTF-8?B?5LuV5LqL?=,Opened") == ["仕事", "Opened"]


# ------------------------------------------------------------------------------- sources, files changing


def test_sources_offer_the_contract_and_notice_a_file_rewritten_under_them(tmp_path):
    from gimport.backends.local.mbox import MboxSource
    from gimport.contract import SourceBackend
    from gimport.errors import FolderChanged

    path = tmp_path / "inbox"
    one = b"From a@b Tue Dec  1 09:00:00 2026\nSubject: one\n\nbody\n\n"
    two = b"From a@b Tue Dec  1 09:00:01 2026\nSubject: two\n\nbody\n\n"
    path.write_bytes(one + two)
    src = MboxSource(path, "mbox@local")
    assert isinstance(src, SourceBackend)
    src.connect()
    (folder,) = src.list_folders()
    assert folder.name == "inbox"
    src.examine("inbox")
    uids = src.search()
    path.write_bytes(two + one)  # rewritten between the scan and the fetch
    with pytest.raises(FolderChanged):
        src.fetch_bodies(uids)
    src.examine("inbox")  # indexed again: the same keys
    assert sorted(src.search()) == sorted(uids)
    assert [m.raw for m in src.fetch_bodies(uids)] == [b"Subject: one\n\nbody\n", b"Subject: two\n\nbody\n"]


def test_maildir_message_renamed_between_scan_and_fetch_is_still_read(tmp_path):
    from gimport.backends.local.maildir import MaildirSource

    for d in ("cur", "new", "tmp"):
        (tmp_path / d).mkdir()
    (tmp_path / "new" / "1.M1P1.host").write_bytes(b"Subject: x\n\nbody\n")
    src = MaildirSource(tmp_path, "maildir@local")
    src.connect()
    src.list_folders()
    src.examine("INBOX")
    (uid,) = src.search()
    (tmp_path / "new" / "1.M1P1.host").rename(tmp_path / "cur" / "1.M1P1.host:2,S")
    (m,) = src.fetch_bodies([uid])
    assert m.raw == b"Subject: x\n\nbody\n"
    src.examine("INBOX")
    assert src.search() == [uid]  # the same key after the rename


def test_missing_path_is_a_source_error(tmp_path):
    from gimport.backends.local.maildir import MaildirSource
    from gimport.errors import SourceError

    with pytest.raises(SourceError, match="does not exist"):
        MaildirSource(tmp_path / "nope", "maildir@local").connect()
