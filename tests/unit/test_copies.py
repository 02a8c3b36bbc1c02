"""One message in several folders: the labels of its copies (gimport.mail.copies), how the copies are found
(gimport.engine.copies, against a fake source) and how the state records them (one transaction)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from gimport.backends.state.store import StateStore
from gimport.contract import DUPLICATE, IMPORTED, PENDING, FetchedMessage, MessageKey
from gimport.engine.copies import Candidate, Copy, find_copies
from gimport.engine.results import FolderResult
from gimport.errors import FolderGone
from gimport.mail.copies import merged_labels
from gimport.mail.mapping import IMPORT, Folder, FolderPlan
from gimport.mail.selection import copy_identity

WHEN = dt.datetime(2021, 5, 3, 9, 30, tzinfo=dt.UTC)


def test_inbox_if_any_copy_trash_spam_and_unread_only_if_every_copy() -> None:
    assert merged_labels([["INBOX", "UNREAD"], ["Work"], ["TRASH"]]) == ("INBOX", "Work")
    assert merged_labels([["Work", "UNREAD"], ["TRASH", "UNREAD", "STARRED"]]) == ("Work", "UNREAD", "STARRED")
    assert merged_labels([["TRASH"], ["TRASH", "UNREAD"]]) == ("TRASH",)
    assert merged_labels([["SPAM"], ["SPAM"]]) == ("SPAM",)
    assert merged_labels([["SPAM"], ["TRASH"]]) == ()  # in neither everywhere: archived, kept
    assert merged_labels([["SENT"], ["Work", "IMPORTANT"]]) == ("SENT", "Work", "IMPORTANT")
    assert merged_labels([]) == ()


def test_the_copy_identity_works_without_a_message_id_and_needs_a_date() -> None:
    assert copy_identity("<a@x>", 10, WHEN) != copy_identity(None, 10, WHEN)
    assert copy_identity(None, 10, WHEN) == copy_identity("", 10, WHEN)
    assert copy_identity(None, 10, WHEN) != copy_identity(None, 11, WHEN)
    assert copy_identity("<a@x>", 10, None) is None


class FakeSource:
    """Folders of uid -> bytes; `uidvalidity` per folder name; `gone`: folders that cannot be opened."""

    def __init__(self, folders: dict[str, dict[int, bytes]], uidvalidity: dict[str, int], gone: set[str]) -> None:
        self.folders, self.uidvalidity, self.gone = folders, uidvalidity, gone
        self.open = ""
        self.fetched: list[tuple[str, list[int]]] = []

    def examine(self, name: str) -> tuple[int, int]:
        if name in self.gone:
            raise FolderGone(name)
        self.open = name
        return self.uidvalidity[name], len(self.folders[name])

    def fetch_bodies(self, uids: list[int], expected_bytes: int | None = None) -> Iterator[FetchedMessage]:
        self.fetched.append((self.open, list(uids)))
        for uid in uids:
            yield FetchedMessage(uid, self.folders[self.open][uid], (), WHEN)


def candidate(folder: str, uid: int, raw: bytes, message_id: str | None = "<m@x>") -> Candidate:
    plan = FolderPlan(Folder(folder), IMPORT, (folder,))
    key = MessageKey("acct", folder, 1, uid)
    ident = copy_identity(message_id, len(raw), WHEN)
    assert ident is not None
    return Candidate(Copy(key, plan, ("\\Seen",), FolderResult(plan), len(raw)), ident)


def test_copies_are_confirmed_by_their_hash_and_the_first_is_the_home() -> None:
    same, other = b"Subject: a\r\n\r\nsame\r\n", b"Subject: a\r\n\r\nelse\r\n"  # one size, one identity
    source = FakeSource(
        {"INBOX": {1: same, 2: b"x"}, "Work": {5: same, 6: other}, "Old": {9: same}, "Gone": {3: same}},
        {"INBOX": 1, "Work": 1, "Old": 2, "Gone": 1},
        {"Gone"},
    )
    cands = [
        candidate("INBOX", 1, same),
        candidate("INBOX", 2, b"x", "<alone@x>"),
        candidate("Work", 5, same),
        candidate("Work", 6, other),
        candidate("Old", 9, same),  # its UIDVALIDITY changed since the scan: left as it is
        candidate("Gone", 3, same),  # cannot be read now: left as it is
    ]
    found = find_copies(source, cands)  # type: ignore[arg-type]  # the part of a MailSource it uses
    home = MessageKey("acct", "INBOX", 1, 1)
    assert list(found.of) == [home]
    assert [c.key for c in found.of[home]] == [MessageKey("acct", "Work", 1, 5)]
    assert found.left_out == {MessageKey("acct", "Work", 1, 5)}
    # a message whose identity is its own is never read; the others are, folder by folder
    assert ("INBOX", [1]) in source.fetched
    assert all(2 not in uids for _f, uids in source.fetched)


def test_nothing_is_read_when_no_identity_is_shared() -> None:
    source = FakeSource({"INBOX": {1: b"a"}}, {"INBOX": 1}, set())
    found = find_copies(source, [candidate("INBOX", 1, b"a")])  # type: ignore[arg-type]
    assert not found.of
    assert not found.left_out
    assert not source.fetched


def test_the_home_and_its_copies_are_recorded_in_one_go(tmp_path) -> None:
    state = StateStore(tmp_path / "s.db")
    try:
        home, work, trash = (MessageKey("acct", f, 1, 1) for f in ("INBOX", "Work", "Trash"))
        for k in (home, work, trash):
            state.add_pending(k.account, k.folder, 1, [(1, 20)])
        state.mark_sending(home, "<m@x>", "abc", "INBOX,Label_1", "ident")
        state.mark_imported(home, "g1", 20, [work, trash])
        records = {f: state.folder_messages("acct", f, 1)[1] for f in ("INBOX", "Work", "Trash")}
        assert records["INBOX"].status == IMPORTED
        for f in ("Work", "Trash"):
            r = records[f]
            assert (r.status, r.gmail_id, r.message_id, r.labels) == (DUPLICATE, "g1", "<m@x>", "INBOX,Label_1")
        # a later generation of Work finds the message by its content, though Work's copy was never sent
        assert state.known_content("acct", "Work", 2).by_hash == {"abc": "g1"}
        assert state.done_uids("acct", "Work", 1) == {1}
        assert PENDING not in {r.status for r in records.values()}
    finally:
        state.close()
