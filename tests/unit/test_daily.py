"""DailyBudget: the project's units per Google quota day (midnight to midnight US Pacific), on a fake clock."""

from __future__ import annotations

import datetime as dt
import threading

from gimport.pacing.daily import PACIFIC, DailyBudget, next_day_start, quota_day
from gimport.pacing.rate import ChainedPacer, RatePacer


class FakeClock:
    def __init__(self, start: float) -> None:
        self.now = start
        self.naps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.naps.append(seconds)
        self.now += seconds


def pacific(*args: int) -> float:
    return dt.datetime(*args, tzinfo=PACIFIC).timestamp()


def test_the_quota_day_turns_at_midnight_us_pacific_across_dst():
    t = pacific(2026, 3, 7, 23, 59, 59)
    assert quota_day(t) == "2026-03-07"
    assert quota_day(t + 1) == "2026-03-08"
    assert next_day_start(t) == t + 1
    # 8 March 2026 has 23 hours in California (DST starts), 1 November 25
    assert next_day_start(pacific(2026, 3, 8, 0, 0, 0)) - pacific(2026, 3, 8, 0, 0, 0) == 23 * 3600
    assert next_day_start(pacific(2026, 11, 1, 0, 0, 0)) - pacific(2026, 11, 1, 0, 0, 0) == 25 * 3600
    # 09:00 UTC is 01:00 in California in winter: still the same Pacific day as the evening before in Tokyo
    assert quota_day(dt.datetime(2026, 12, 2, 7, 59, tzinfo=dt.UTC).timestamp()) == "2026-12-01"


def test_spending_the_day_pauses_until_pacific_midnight_then_resumes():
    clock = FakeClock(pacific(2026, 12, 1, 22, 0, 0))
    events = []
    budget = DailyBudget(
        100,
        clock=clock,
        sleep=clock.sleep,
        on_pause=lambda until: events.append(("pause", until)),
        on_resume=lambda: events.append(("resume", clock.now)),
    )
    for _ in range(4):
        assert budget.acquire(25) == 0
    assert budget.snapshot() == ("2026-12-01", 100)
    waited = budget.acquire(25)
    midnight = pacific(2026, 12, 2, 0, 0, 0)
    assert events[0] == ("pause", midnight)
    assert events[1][0] == "resume"
    assert midnight <= events[1][1] <= midnight + 1
    assert 2 * 3600 <= waited <= 2 * 3600 + 1
    assert max(clock.naps) <= 300.5
    assert budget.snapshot() == ("2026-12-02", 25)
    assert budget.waited == waited
    assert budget.paused_until is None


def test_no_limit_never_waits_and_a_restart_the_same_day_keeps_what_was_spent():
    clock = FakeClock(pacific(2026, 12, 1, 12, 0, 0))
    unlimited = DailyBudget(0, clock=clock, sleep=clock.sleep)
    for _ in range(1000):
        unlimited.acquire(25)
    assert not clock.naps
    restored = DailyBudget(100, spent=90, day="2026-12-01", clock=clock, sleep=clock.sleep)
    assert restored.snapshot() == ("2026-12-01", 90)
    stale = DailyBudget(100, spent=90, day="2026-11-30", clock=clock, sleep=clock.sleep)
    assert stale.snapshot() == ("2026-12-01", 0)  # yesterday's spending does not count today


def test_a_stop_ends_the_pause_without_charging():
    clock = FakeClock(pacific(2026, 12, 1, 12, 0, 0))
    budget = DailyBudget(50, clock=clock, sleep=clock.sleep)
    budget.acquire(50)
    stop = threading.Event()
    stop.set()  # SIGTERM during the pause: the Caller's sleep is its stop event's wait
    assert budget.acquire(25, sleep=stop.wait) > 0
    assert budget.snapshot() == ("2026-12-01", 50)  # nothing charged; the caller sees its stop and gives up


def test_chained_behind_the_per_user_and_project_pacers():
    clock = FakeClock(pacific(2026, 12, 1, 23, 59, 0))
    mono = FakeClock(0.0)
    own = RatePacer(6000, clock=mono, sleep=mono.sleep)
    project = RatePacer(1_200_000, clock=mono, sleep=mono.sleep)
    daily = DailyBudget(75, clock=clock, sleep=clock.sleep)
    chained = ChainedPacer(own, project, daily)
    for _ in range(3):
        chained.acquire(25)
    assert not clock.naps
    chained.acquire(25)  # the fourth import waits for the new quota day
    assert 60 <= sum(clock.naps) <= 61
    assert daily.snapshot() == ("2026-12-02", 25)


def test_persisted_now_and_then_and_on_flush():
    clock = FakeClock(pacific(2026, 12, 1, 12, 0, 0))
    saved = []
    budget = DailyBudget(None, clock=clock, sleep=clock.sleep, persist=lambda d, s: saved.append((d, s)))
    budget.acquire(25)
    assert saved == []  # not every call: at most every 10 s
    clock.now += 11
    budget.acquire(25)
    assert saved == [("2026-12-01", 50)]
    budget.flush()
    assert saved[-1] == ("2026-12-01", 50)


def test_shards_spend_one_daily_record_together(tmp_path):
    """Two shards (two budgets) on one state directory: each learns what the other spent; an older version's
    per-shard records are summed until the project record exists; a re-shard the same day goes on from it."""
    import json

    from gimport.admin.daily import add_daily, daily_path, read_daily

    clock = FakeClock(pacific(2026, 12, 1, 12, 0, 0))
    folder = tmp_path / "shards"
    folder.mkdir()
    for i, units in enumerate((300, 200)):
        (folder / f"daily-shard-{i}-of-8.json").write_text(json.dumps({"day": "2026-12-01", "units": units}))
    (folder / "daily-shard-2-of-8.json").write_text(json.dumps({"day": "2026-11-30", "units": 999}))
    assert read_daily(tmp_path) == ("2026-12-01", 500)

    def budget():
        day, spent = read_daily(tmp_path)
        return DailyBudget(
            1000, spent=spent, day=day, clock=clock, sleep=clock.sleep, share=lambda d, u: add_daily(tmp_path, d, u)
        )

    a, b = budget(), budget()
    assert a.snapshot() == b.snapshot() == ("2026-12-01", 500)
    a.acquire(100)
    b.acquire(50)
    a.flush()
    assert json.loads(daily_path(tmp_path).read_text()) == {"day": "2026-12-01", "units": 600}
    b.flush()
    assert b.snapshot() == ("2026-12-01", 650)
    a.acquire(10)
    a.flush()
    assert a.snapshot() == ("2026-12-01", 660)  # b's 50 learned, its own 10 kept
    assert read_daily(tmp_path) == ("2026-12-01", 660)
    assert budget().snapshot() == ("2026-12-01", 660)  # a restart, any shard count
    clock.now += 86400
    c = budget()
    assert c.snapshot()[1] == 0
    c.acquire(5)
    c.flush()
    assert read_daily(tmp_path) == ("2026-12-02", 5)
