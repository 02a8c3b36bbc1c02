"""gimport.admin.processes without processes: how many, who goes where, what a child reports and how the
parent puts the children's reports together (a child that dies included)."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pytest

from gimport.admin.processes import (
    STOP,
    USERS_PER_PROCESS,
    PipeReporter,
    ProcessRun,
    WorkerResult,
    listen_for_stop,
    process_count,
    split,
)
from gimport.admin.report import COMPLETE, INCOMPLETE, NOT_RUN, UserRow
from gimport.admin.shards import Shard
from gimport.admin.users import UserEntry
from gimport.config.settings import AdminSettings


def entries(n: int) -> list[UserEntry]:
    return [UserEntry(line=i + 2, source_user=f"u{i}", gmail=f"u{i}@example.ac.jp") for i in range(n)]


@pytest.mark.parametrize(
    ("configured", "parallel", "users", "cores", "expected"),
    [
        (0, 4, 4, 8, 1),  # a small campus: one interpreter does it
        (0, USERS_PER_PROCESS, 1000, 8, 1),
        (0, USERS_PER_PROCESS + 1, 1000, 8, 2),
        (0, 100, 1000, 2, 2),  # never more than the cores this process may use
        (0, 100, 1000, 16, 4),
        (0, 100, 30, 16, 2),  # the users at a time are the shard's users when fewer
        (3, 100, 1000, 2, 3),  # configured: as said (a machine whose IMAP server and Gmail are elsewhere)
        (8, 4, 1000, 16, 4),  # never more processes than users at a time
        (5, 100, 1, 16, 1),
    ],
)
def test_process_count(configured, parallel, users, cores, expected):
    assert process_count(configured, parallel, users, cores) == expected


def test_split_deals_users_round_robin_and_loses_none():
    users = entries(7)
    parts = split(users, 3)
    assert [len(p) for p in parts] == [3, 2, 2]
    assert sorted((u for p in parts for u in p), key=lambda u: u.gmail) == sorted(users, key=lambda u: u.gmail)
    assert parts[0] == [users[0], users[3], users[6]]


class FakeConn:
    def __init__(self) -> None:
        self.sent: list[tuple] = []

    def send(self, message) -> None:
        self.sent.append(message)


def test_pipe_reporter_batches_messages_and_flushes_before_a_users_line():
    conn = FakeConn()
    reporter = PipeReporter(conn, every=3600)  # no timed flush during the test: only the explicit ones
    reporter.rate_limited = lambda: 7
    entry = entries(1)[0]
    reporter.user_started(1, 1, entry)
    reporter.transfer_added(3, 300)
    for size in (100, 100, 100):
        reporter.message_finished("imported", size)
    assert conn.sent == [("started", entry)]  # counted, not sent one by one
    row = UserRow(entry.gmail, entry.source_user, COMPLETE)
    reporter.user_finished(1, 1, row)
    assert conn.sent[1:] == [("messages", 3, 300, [("imported", 100)] * 3, 7), ("finished", row)]
    reporter.warning("w")
    reporter.close(WorkerResult([row], False, None, 3, 300, 0, 7))
    assert conn.sent[-2:] == [("warning", "w"), ("done", WorkerResult([row], False, None, 3, 300, 0, 7))]


def test_listen_for_stop_stops_on_request_and_when_the_parent_is_gone():
    for close in (False, True):
        parent, child = multiprocessing.Pipe()
        stopped = threading.Event()
        thread = listen_for_stop(child, stopped.set)
        if close:
            parent.close()
        else:
            parent.send("something else")
            parent.send(STOP)
        thread.join(10)
        assert stopped.is_set()


def _run(tmp_path: Path, users: list[UserEntry]) -> ProcessRun:
    from gimport.config.settings import Settings

    settings = Settings.__new__(Settings)  # only settings.admin is read by the merge
    object.__setattr__(settings, "admin", AdminSettings(state_dir=tmp_path, report_file=tmp_path / "r.csv"))
    events: list[tuple] = []

    class Sink:
        def __getattr__(self, name):
            return lambda *args: events.append((name, *args))

    run = ProcessRun(
        settings,
        users,
        processes=2,
        target=lambda spec, conn: None,
        shard=Shard(),
        reporter=Sink(),
        everybody=[u.gmail for u in users],
        log_file=tmp_path / "log",
    )
    run.events = events  # type: ignore[attr-defined]
    return run


def test_parent_numbers_users_across_children_and_shows_a_shared_warning_once(tmp_path):
    users = entries(4)
    run = _run(tmp_path, users)
    counts, shown, results = [0, 0], set(), {}
    run._handle(0, ("started", users[0]), counts, shown, results)
    run._handle(1, ("started", users[1]), counts, shown, results)
    run._handle(1, ("warning", "daily budget spent"), counts, shown, results)
    run._handle(0, ("warning", "daily budget spent"), counts, shown, results)
    run._handle(0, ("messages", 2, 20, [("imported", 10)], 3), counts, shown, results)
    run._handle(1, ("messages", 0, 0, [], 4), counts, shown, results)
    assert run.events == [
        ("user_started", 1, 4, users[0]),
        ("user_started", 2, 4, users[1]),
        ("warning", "daily budget spent"),
        ("transfer_added", 2, 20),
        ("message_finished", "imported", 10),
    ]
    assert run.rate_limited() == 7


def test_a_child_without_a_result_leaves_its_users_as_their_files_say_and_counts_a_bug(tmp_path):
    users = entries(4)
    run = _run(tmp_path, users)
    groups = split(users, 2)
    rows = [UserRow(u.gmail, u.source_user, COMPLETE, imported=5) for u in groups[0]]
    # the dead child finished one user (incomplete) before it died: that row stands as reported
    survivor = UserRow(groups[1][0].gmail, groups[1][0].source_user, INCOMPLETE, error="2 message(s) failed")
    run._handle(1, ("finished", survivor), [0, 0], set(), {})
    run.exit_codes = [0, -9]
    summary = run._summary(groups, {0: WorkerResult(rows, False, None, 10, 100, 0, 0)})
    assert [r.gmail for r in summary.rows] == [u.gmail for u in users]  # the users' order
    assert summary.imported_now == 10
    assert summary.bugs == 1
    assert summary.fatal is not None
    assert "exit code -9" in str(summary.fatal)
    assert survivor in summary.rows
    # the dead child's other users: not run, and the report says why
    dead = [r for r in summary.rows if r.gmail in {u.gmail for u in groups[1][1:]}]
    assert {r.outcome for r in dead} == {NOT_RUN}
    assert all("worker process ended" in r.error for r in dead)
    assert not summary.complete
