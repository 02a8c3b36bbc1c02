"""A folder's counts are derived from what the scan saw and the outcomes recorded (gimport.engine.results)."""

import threading

from gimport.contract import DUPLICATE, FAILED, IMPORTED, SKIPPED
from gimport.engine.results import GONE, FolderResult, RunSummary
from gimport.mail.mapping import IMPORT, Folder, FolderPlan


def _result() -> FolderResult:
    return FolderResult(FolderPlan(Folder("Work"), IMPORT, ("Work",)))


def test_counts_follow_the_recorded_outcomes() -> None:
    r = _result()
    r.record(SKIPPED, n=2, reason="skipped in an earlier run (see gimport status)")
    r.handed_out(5)
    assert (r.todo, r.remaining, r.skipped) == (7, 5, 2)
    r.record(IMPORTED, size=100)
    r.record(DUPLICATE)
    r.record(FAILED, reason="rejected by Gmail: no")
    r.record(GONE)  # expunged since the scan: no longer this run's to do
    assert (r.imported, r.duplicates, r.failed, r.bytes) == (1, 1, 1, 100)
    assert (r.todo, r.remaining) == (6, 1)
    assert r.reasons == {"skipped in an earlier run (see gimport status)": 2, "rejected by Gmail": 1}
    r.record(IMPORTED, size=50)
    assert (r.todo, r.remaining, r.bytes) == (6, 0, 150)


def test_a_rescan_hands_out_again_what_was_not_finished() -> None:
    r = _result()
    r.handed_out(4)
    r.record(IMPORTED, size=1)
    r.record(GONE)
    # the UIDVALIDITY changed: the scan under the new value finds the 2 not sent yet, and 1 too large
    r.record(SKIPPED, reason="too large")
    r.handed_out(2)
    assert (r.todo, r.remaining) == (4, 2)
    r.record(IMPORTED, size=1)
    r.record(IMPORTED, size=1)
    assert (r.todo, r.remaining, r.imported, r.skipped) == (4, 0, 3, 1)


def test_outcomes_recorded_from_many_threads_all_count() -> None:
    r = _result()
    r.handed_out(8 * 500)

    def work() -> None:
        for _ in range(500):
            r.record(IMPORTED, size=1)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (r.imported, r.bytes, r.remaining) == (4000, 4000, 0)


def test_the_run_is_complete_only_when_nothing_remains() -> None:
    s = RunSummary("a@example.org", "b@example.org")
    r = _result()
    s.folders.append(r)
    r.handed_out(1)
    assert not s.complete
    assert s.total("todo") == 1
    r.record(IMPORTED, size=3)
    assert s.complete
    assert s.total("imported") == 1
    assert s.total("bytes") == 3
