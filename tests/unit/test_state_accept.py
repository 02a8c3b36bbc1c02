"""The state file's schema 2: acceptances (gimport accept), the ledger, and schema-1 files still working."""

import sqlite3

import pytest

from gimport.backends.state.store import SCHEMA_VERSION, MessageKey, StateStore

A = "kt@mail"

# the schema gimport wrote before acceptances existed (SCHEMA_VERSION 1), as it was
SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE folders (
    account TEXT NOT NULL, folder TEXT NOT NULL, uidvalidity INTEGER,
    found INTEGER NOT NULL DEFAULT 0, selected INTEGER NOT NULL DEFAULT 0,
    labels TEXT NOT NULL DEFAULT '', last_listed REAL,
    PRIMARY KEY (account, folder));
CREATE TABLE messages (
    account TEXT NOT NULL, folder TEXT NOT NULL, uidvalidity INTEGER NOT NULL, uid INTEGER NOT NULL,
    message_id TEXT, size INTEGER, sha256 TEXT, status TEXT NOT NULL, gmail_id TEXT, labels TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, resent INTEGER NOT NULL DEFAULT 0, updated REAL,
    PRIMARY KEY (account, folder, uidvalidity, uid));
INSERT INTO meta VALUES ('schema_version', '1');
INSERT INTO folders VALUES ('kt@mail', 'Work', 7, 3, 3, 'Work', 1.0);
INSERT INTO messages VALUES ('kt@mail', 'Work', 7, 1, '<a@x>', 10, 'h1', 'imported', 'g1', 'L1', 1, NULL, 0, 5.0);
INSERT INTO messages VALUES ('kt@mail', 'Work', 7, 2, '<b@x>', 20, 'h2', 'failed', NULL, 'L1', 1, 'HTTP 400', 0, 6.0);
INSERT INTO messages VALUES ('kt@mail', 'Work', 7, 3, NULL, 30, NULL, 'skipped', NULL, NULL, 0, 'too large', 0, 7.0);
"""


def old_file(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_1)
    db.close()
    return path


def test_a_schema_1_file_is_read_as_it_is_and_migrated_on_write(tmp_path):
    path = old_file(tmp_path)
    before = path.read_bytes()
    ro = StateStore.open_readonly(path)
    rows = ro.ledger(A)
    assert [(r.key.uid, r.status, r.accepted) for r in rows] == [
        (1, "imported", None),
        (2, "failed", None),
        (3, "skipped", None),
    ]
    assert ro.done_uids(A, "Work", 7) == {1, 3}
    assert ro.folder_messages(A, "Work", 7)[2].accepted is None
    ro.close()
    assert path.read_bytes() == before  # reading changed nothing

    st = StateStore(path)
    assert st.get_meta("schema_version") == str(SCHEMA_VERSION) == "2"
    assert st.accept([MessageKey(A, "Work", 7, 2)], 100.0) == [MessageKey(A, "Work", 7, 2)]
    st.close()
    st = StateStore(path)  # opening a migrated file again is a no-op
    assert st.ledger(A)[1].accepted == 100.0
    st.close()


def test_accept_only_failed_or_skipped_and_undo(tmp_path):
    st = StateStore(old_file(tmp_path))
    k = [MessageKey(A, "Work", 7, uid) for uid in (1, 2, 3, 4)]
    assert st.accept(k, 50.0) == [k[1], k[2]]  # imported and unknown ones are not accepted
    assert st.accept(k, 60.0) == []  # nor twice
    assert st.done_uids(A, "Work", 7) == {1, 2, 3}  # accepted: no more work
    assert st.done_uids(A, "Work", 7, ("skipped",), accepted=False) == set()
    assert st.problems(A) == []
    (c,) = st.folder_counts(A)
    assert (c.failed, c.skipped, c.accepted, c.to_do) == (0, 0, 2, 0)
    assert st.unaccept(k[1]) is True
    assert st.unaccept(k[1]) is False
    assert st.done_uids(A, "Work", 7) == {1, 3}
    (c,) = st.folder_counts(A)
    assert (c.failed, c.accepted, c.to_do) == (1, 1, 1)
    st.close()


def test_keys_round_trip_with_colons_in_folder_names():
    key = MessageKey(A, "a:b:c/受信", 12, 34)
    assert MessageKey.parse(A, str(key)) == key
    for bad in ("INBOX", "INBOX:1", "INBOX:x:1", ":1:2", "INBOX:1:"):
        with pytest.raises(ValueError, match="FOLDER:UIDVALIDITY:UID"):
            MessageKey.parse(A, bad)


def test_the_ledger_says_what_gimport_changed(tmp_path):
    path = old_file(tmp_path)
    ro = StateStore.open_readonly(path)  # a file without the column: read as it is, nothing changed
    assert [r.changes for r in ro.ledger(A)] == ["", "", ""]
    ro.close()
    st = StateStore(path)
    key = MessageKey(A, "Work", 7, 2)
    st.mark_sending(key, "<b@x>", "h2", "L1")
    st.mark_imported(key, "g2", 20, changes="date fixed")
    st.mark_imported(MessageKey(A, "Work", 7, 1), "g1", 10)
    assert [(r.key.uid, r.changes) for r in st.ledger(A)] == [(1, ""), (2, "date fixed"), (3, "")]
    st.close()
