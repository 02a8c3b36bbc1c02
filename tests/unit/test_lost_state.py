"""The marker that outlives the state file (gimport.engine.lost_state): its name, finding it, and the
check a run makes before importing, against a fake Gmail and a real state file."""

from __future__ import annotations

from pathlib import Path

import pytest

from gimport.backends.state.store import StateStore
from gimport.config.settings import SourceSettings
from gimport.engine.lost_state import (
    check_new_state,
    first_run,
    leave_marker,
    marker_name,
    marker_stem,
    markers_of,
    source_identity,
)
from gimport.errors import Conflict, StateError

WHEN = 1_796_670_000.0  # 2026-12-07 ...


class FakeGmail:
    def __init__(self, labels=None, conflict=False):
        self.labels = list(labels or [])
        self.created: list[tuple[str, str, str]] = []
        self.conflict = conflict

    def list_labels(self):
        return list(self.labels)

    def get_label(self, label_id):
        return {"id": label_id, "messagesTotal": 0}

    def create_label(self, name, visibility="labelShow", messages="show"):
        self.created.append((name, visibility, messages))
        if self.conflict:
            raise Conflict("exists")
        self.labels.append({"id": f"L{len(self.labels)}", "name": name, "type": "user"})
        return self.labels[-1]


def test_the_marker_names_the_source_by_a_hash_and_the_first_run():
    name = marker_name("alice@mail.example.org", WHEN)
    assert name.startswith(marker_stem("alice@mail.example.org"))
    assert "alice" not in name
    assert "example" not in name
    assert marker_stem("alice@mail.example.org") != marker_stem("bob@mail.example.org")
    assert first_run(name).startswith("2026-12-")
    assert first_run(name).endswith(" UTC")
    labels = [{"name": "Work"}, {"name": marker_name("bob@x", WHEN)}, {"name": name.upper()}]
    assert markers_of(labels, "alice@mail.example.org") == [name.upper()]


def test_local_sources_are_told_apart_by_their_path(tmp_path):
    a = SourceSettings(host="local", user="mbox", type="mbox", path=tmp_path / "a", port=0)
    b = SourceSettings(host="local", user="mbox", type="mbox", path=tmp_path / "b", port=0)
    assert a.account == b.account
    assert source_identity(a) != source_identity(b)
    imap = SourceSettings(host="imap.example.org", user="alice")
    assert source_identity(imap) == "alice@imap.example.org"


@pytest.fixture
def state(tmp_path: Path):
    store = StateStore(tmp_path / "s.sqlite")
    yield store
    store.close()


def test_a_first_run_leaves_a_hidden_marker_and_a_second_finds_it(state):
    gmail = FakeGmail()
    markers = check_new_state(gmail, state, "alice@h", [])
    assert markers == []
    assert gmail.created == []  # the check creates nothing: the marker comes before the first import
    leave_marker(gmail, state, "alice@h", "alice@h", markers)
    ((name, visibility, messages),) = gmail.created
    assert (visibility, messages) == ("labelHide", "hide")
    assert state.get_meta("marker:alice@h") == name
    markers = check_new_state(gmail, state, "alice@h", [])  # the state knows it: nothing more
    assert markers == [name]
    leave_marker(gmail, state, "alice@h", "alice@h", markers)
    assert len(gmail.created) == 1


def test_a_state_without_the_source_facing_its_marker_stops(state):
    gmail = FakeGmail([{"id": "L1", "name": marker_name("alice@h", WHEN), "type": "user"}])
    with pytest.raises(StateError, match="marker of a run from it") as err:
        check_new_state(gmail, state, "alice@h", [])
    assert "--new-state" in str(err.value)
    assert state.get_meta("marker:alice@h") is None
    markers = check_new_state(gmail, state, "alice@h", [], new_state=True)  # said on purpose
    leave_marker(gmail, state, "alice@h", "alice@h", markers)
    assert state.get_meta("marker:alice@h") == marker_name("alice@h", WHEN)
    assert gmail.created == []  # the first run's marker stays the one
    check_new_state(gmail, state, "alice@h", [])  # known from then on


def test_the_marker_names_the_source_not_the_state_account(state):
    """Local files: every Maildir is "maildir@local" in the state, the marker names the path."""
    gmail = FakeGmail([{"id": "L1", "name": marker_name("maildir@local:/home/a/Maildir", WHEN), "type": "user"}])
    check_new_state(gmail, state, "maildir@local", [], source="maildir@local:/srv/other")  # another source
    with pytest.raises(StateError):
        check_new_state(gmail, state, "maildir@local", [], source="maildir@local:/home/a/Maildir")


def test_a_marker_made_side_by_side_is_taken(state):
    gmail = FakeGmail(conflict=True)
    leave_marker(gmail, state, "alice@h", "alice@h", [])
    assert state.get_meta("marker:alice@h") == gmail.created[0][0]
