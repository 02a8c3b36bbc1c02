"""The state file on its own: statuses, in-flight detection, per-folder counts."""

import pytest

from gimport.backends.state.store import MessageKey, StateStore
from gimport.errors import StateError

A = "kt@mail"


def test_lifecycle_and_counts(tmp_path):
    st = StateStore(tmp_path / "s.sqlite")
    st.record_folder(A, "Work", 7, found=4, selected=4, labels="Work")
    st.add_pending(A, "Work", 7, [(1, 100), (2, 200), (3, 300), (4, 400)])
    k = [MessageKey(A, "Work", 7, uid) for uid in (1, 2, 3, 4)]
    assert st.mark_sending(k[0], "<a@x>", "h1", "L1") == 0
    st.mark_imported(k[0], "g1", 100)
    st.mark_sending(k[1], "<b@x>", "h2", "L1")
    st.mark_failed(k[1], "rejected by Gmail: HTTP 400")
    st.mark_skipped(k[2], "too large")
    st.mark_sending(k[3], None, "h4", "L1")  # left in flight
    (c,) = st.folder_counts(A)
    assert (c.imported, c.failed, c.skipped, c.sending, c.pending, c.bytes_imported) == (1, 1, 1, 1, 0, 100)
    assert st.done_uids(A, "Work", 7) == {1, 3}
    assert st.count_in_flight(A) == 1
    assert st.problems(A)[0][:3] in {("Work", 2, "failed"), ("Work", 3, "skipped")}
    st.close()

    # a new run finds the in-flight message and learns it is a re-send
    st = StateStore(tmp_path / "s.sqlite")
    assert st.mark_sending(k[3], None, "h4", "L1") == 1
    st.mark_imported(k[3], "g4", 400)
    (c,) = st.folder_counts(A)
    assert c.resent == 1
    assert c.imported == 2


def test_content_match_is_per_folder(tmp_path):
    st = StateStore(tmp_path / "s.sqlite")
    key = MessageKey(A, "Work", 1, 10)
    st.mark_sending(key, None, "abc", "")
    assert st.find_imported_copy(A, "Work", "abc") is None  # in flight is not imported
    st.mark_imported(key, "g", 1)
    assert st.find_imported_copy(A, "Work", "abc") == "g"
    assert st.find_imported_copy(A, "Other", "abc") is None


def test_counts_follow_the_current_uidvalidity(tmp_path):
    st = StateStore(tmp_path / "s.sqlite")
    st.mark_sending(MessageKey(A, "F", 1, 1), None, "h", "")
    st.mark_imported(MessageKey(A, "F", 1, 1), "g", 1)
    st.record_folder(A, "F", 2, found=1, selected=1, labels="")
    st.add_pending(A, "F", 2, [(5, 1)])
    (c,) = st.folder_counts(A)
    assert (c.imported, c.pending) == (0, 1)


def test_destination_is_bound(tmp_path):
    st = StateStore(tmp_path / "s.sqlite")
    st.bind_destination("a@example.ac.jp")
    st.bind_destination("A@example.ac.jp")
    with pytest.raises(StateError, match="fresh \\[state\\] path"):
        st.bind_destination("b@example.ac.jp")


def test_not_a_database(tmp_path):
    bad = tmp_path / "s.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateError, match="is damaged or not a gimport state file"):
        StateStore(bad)


def test_status_without_state_file(tmp_path):
    with pytest.raises(StateError, match="nothing has been run yet"):
        StateStore.open_readonly(tmp_path / "none.sqlite")


def test_calls_left_in_flight_are_counted_each(tmp_path):
    """A message in flight through several killed runs: each call left in flight may have been stored, so the
    next run learns how many; an outcome (or a failure) starts the count again."""
    st = StateStore(tmp_path / "s.sqlite")
    key = MessageKey(A, "Work", 7, 1)
    st.record_folder(A, "Work", 7, found=1, selected=1, labels="Work")
    st.add_pending(A, "Work", 7, [(1, 100)])
    assert st.mark_sending(key, None, "h", "L1") == 0  # run 1, killed during the call
    assert st.mark_sending(key, None, "h", "L1") == 1  # run 2: one call may be in Gmail; killed again
    assert st.mark_sending(key, None, "h", "L1") == 2  # run 3: two may be
    st.mark_imported(key, "g1", 100)
    (c,) = st.folder_counts(A)
    assert c.resent == 3
    st.mark_failed(key, "rejected")
    assert st.mark_sending(key, None, "h", "L1") == 0  # after an outcome, a fresh count
    st.close()
