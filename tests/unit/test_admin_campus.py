"""Campus planning, the pure parts: balanced shards and the shard map, shard coverage from the records, the
plan's estimate at each limit, each shard's share of the daily budget."""

from __future__ import annotations

import json

import pytest

from gimport.admin import coverage
from gimport.admin.plan import DAILY, PER_MINUTE, PER_USER, UserPlan, estimate, makespan
from gimport.admin.shards import (
    Shard,
    balance,
    load_shard_map,
    shard_for,
    shard_of,
    size_weights,
    write_shard_map,
)
from gimport.admin.shares import daily_budget
from gimport.config.load import load_settings
from gimport.errors import ConfigError


def _settings(tmp_path, admin="", gmail=""):
    path = tmp_path / "gimport.toml"
    path.write_text(f'[source]\nhost = "imap.example.edu"\n[gmail]\n{gmail}\n[admin]\n{admin}')
    return load_settings(path, admin=True)


# ------------------------------------------------------------------------------------------ balanced shards


def test_balance_is_largest_first_to_the_lightest_shard():
    weights = {"a": 200_000, "b": 190_000, "c": 180_000, **{f"u{i:02d}": 1000 for i in range(30)}}
    shards = balance(weights, 3)
    loads = [sum(weights[g] for g in s) for s in shards]
    assert [s[0] for s in shards] == ["a", "b", "c"]  # the three big mailboxes on three shards
    assert max(loads) - min(loads) <= 1000 + 10_000  # within one small mailbox of the big ones' spread
    assert sorted(g for s in shards for g in s) == sorted(weights)  # everybody exactly once
    # a hash would have put two of the big three together for some N; the balanced split never does
    assert balance(weights, 3) == shards  # deterministic


def test_a_skewed_campus_balances_within_15_percent_of_the_mean():
    """40 users: 6 large mailboxes, 14 medium, 20 small (a hundredfold between them, as on a campus), bytes
    not in proportion to messages: over 8 shards the greatest shard is within 15% of the mean, while the
    hash is far off."""
    import random

    rng = random.Random(27)
    sizes = {}
    for i in range(40):
        low, high = (1500, 2500) if i < 6 else (300, 800) if i < 20 else (10, 100)
        messages = rng.randint(low, high)
        sizes[f"u{i:02d}@x.jp"] = (messages, int(messages * rng.uniform(5_000, 40_000)))
    shards = balance(size_weights(sizes), 8)
    assert sorted(g for s in shards for g in s) == sorted(sizes)
    weights = size_weights(sizes)
    loads = [sum(weights[g] for g in s) for s in shards]
    mean = sum(loads) / 8
    assert max(loads) <= 1.15 * mean, (max(loads) / mean, loads)
    hashed = [0.0] * 8
    for g, w in weights.items():
        hashed[shard_of(g, 8)] += w
    assert max(hashed) > 1.15 * mean  # what the default was before a plan: the hash alone
    for column in (0, 1):  # messages alone and bytes alone are balanced too
        per = [sum(sizes[g][column] for g in s) for s in shards]
        assert max(per) <= 1.35 * sum(per) / 8


def test_shard_map_round_trip_and_what_it_decides(tmp_path):
    path = tmp_path / "shards.json"
    sizes = {"Big@X.jp": (100, 1000), "b@x.jp": (60, 600), "c@x.jp": (50, 500)}
    write_shard_map(path, sizes, 2)
    m = load_shard_map(path)
    assert m.count == 2
    assert m.users == {"big@x.jp": 0, "b@x.jp": 1, "c@x.jp": 1}
    assert m.sizes == {"big@x.jp": (100, 1000), "b@x.jp": (60, 600), "c@x.jp": (50, 500)}
    settings = _settings(tmp_path, 'shard_map = "shards.json"\n')
    shard = shard_for("1/2", settings.admin.shard_count, shard_map=settings.admin.shard_map)
    assert [g for g in ["big@x.jp", "B@x.jp", "c@x.jp"] if shard.takes(g)] == ["B@x.jp", "c@x.jp"]
    # a user the map does not name goes by the hash
    assert shard.takes("new@x.jp") == (shard_of("new@x.jp", 2) == 1)
    # the map's N fixes the shard count: another N is refused, the job's index alone is enough
    with pytest.raises(ConfigError, match="shard count is fixed at 2"):
        shard_for("0/3", None, shard_map=settings.admin.shard_map)
    assert str(shard_for(None, None, shard_map=path, from_env=True)) == "0/1"  # no job: every user


def test_shard_map_conflicts_and_damage_are_config_errors(tmp_path):
    path = tmp_path / "shards.json"
    write_shard_map(path, {"a@x.jp": (1, 10)}, 4)
    with pytest.raises(ConfigError, match=r"shard_count is 8 but \[admin\] shard_map .* written for 4 shards"):
        shard_for("0/8", 8, shard_map=path)
    with pytest.raises(ConfigError, match="not found: write it with 'gimport admin plan --write-shards N'"):
        load_shard_map(tmp_path / "missing.json")
    doc = json.loads(path.read_text())
    doc["shards"][1]["users"].append("a@x.jp")
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match=r"a@x\.jp is in shards 0 and 1"):
        load_shard_map(path)
    path.write_text("{}")
    with pytest.raises(ConfigError, match="not a shard map"):
        load_shard_map(path)


# ------------------------------------------------------------------------------------------------ coverage


def _ran(state_dir, index, count, users, everybody, finish=True):
    mine = [u for u in users if shard_of(u, count) == index]
    rec = coverage.record_start(state_dir, Shard(index, count), mine, everybody)
    if finish:
        coverage.record_finish(state_dir, rec, "complete")


def test_coverage_from_the_records(tmp_path):
    users = [f"u{i}@x.jp" for i in range(40)]
    assert not coverage.check(tmp_path).ok
    assert coverage.check(tmp_path).count is None  # nothing recorded
    _ran(tmp_path, 0, 4, users, users)
    _ran(tmp_path, 1, 4, users, users)
    _ran(tmp_path, 2, 4, users, users, finish=False)  # killed, or running now
    cov = coverage.check(tmp_path, users)
    assert (cov.count, cov.missing, cov.unfinished, cov.ok, cov.settled) == (4, [3], [2], False, False)
    assert set(cov.uncovered) == {u for u in users if shard_of(u, 4) == 3}
    assert not cov.fails_run  # shard 3 may still be queued
    _ran(tmp_path, 3, 4, users, users)
    _ran(tmp_path, 2, 4, users, users)
    cov = coverage.check(tmp_path, users)
    assert cov.ok
    assert cov.settled
    assert not cov.uncovered
    assert coverage.check(tmp_path).ok  # judged by the users_total the shards recorded
    # a user added to the file since: taken by no shard; settled, so a run fails on it too
    cov = coverage.check(tmp_path, [*users, "late@x.jp"])
    assert cov.uncovered == ["late@x.jp"]
    assert not cov.ok
    assert cov.fails_run
    # one pod with another N
    _ran(tmp_path, 0, 3, users, users)
    cov = coverage.check(tmp_path, users)
    assert cov.mismatch
    assert cov.counts == [3, 4]
    assert not cov.ok
    assert cov.fails_run
    # status --shard I/N looks at that shard only
    assert coverage.check(tmp_path, users, Shard(1, 4)).missing == []


def test_shards_run_with_different_users_files(tmp_path):
    users = [f"u{i}@x.jp" for i in range(10)]
    _ran(tmp_path, 0, 2, users, users)
    _ran(tmp_path, 1, 2, users, users[:-1])
    cov = coverage.check(tmp_path)
    assert cov.users_changed
    assert not cov.ok
    assert cov.fails_run


# ---------------------------------------------------------------------------------------------- the plan


def test_makespan_is_the_admin_runs_order_over_its_slots():
    assert makespan([], 4) == 0
    assert makespan([10, 10, 10, 10], 2) == 20
    assert makespan([30, 10, 10, 10], 2) == 30  # the big one alone while the others share a slot
    assert makespan([10, 10, 10, 30], 2) == 40  # the big one last: the reason to sort largest first


def _users(n, messages):
    return [UserPlan(f"u{i}@x.jp", f"u{i}", messages=messages, selected=messages, to_import=messages) for i in range(n)]


def test_estimate_names_the_limit_that_binds(tmp_path):
    # 100 users of 24,000 messages: 60 M units, under the daily 80 M; 6,000 units/min per user, 25 at a time
    s = _settings(tmp_path, "parallel_users = 25\n", "quota_units_per_minute = 6000\n")
    plan = estimate(s, _users(100, 24_000), 1, balanced=False)
    secs = {lim.name: lim.seconds for lim in plan.limits}
    assert plan.units == 100 * 24_000 * 25
    assert secs[PER_USER] == pytest.approx(4 * 24_000 * 25 / 6000 * 60)  # 4 rounds of 100 minutes
    assert secs[PER_MINUTE] == pytest.approx(plan.units / 1_200_000 * 60)
    assert secs[DAILY] == 0  # never reached
    assert plan.binds.name == PER_USER
    assert plan.seconds == secs[PER_USER]

    # 200 users (120 M units) over 8 balanced shards of 25 at a time: 100 minutes at either per-minute
    # limit, but the daily 80 M units make it wait for a second quota day
    plan = estimate(s, _users(200, 24_000), 8, balanced=True)
    secs = {lim.name: lim.seconds for lim in plan.limits}
    assert [len(users) for users in plan.shards] == [25] * 8
    assert secs[PER_USER] == pytest.approx(6000)
    assert secs[PER_MINUTE] == pytest.approx(6000)
    assert secs[DAILY] == pytest.approx(86400 + 6000 / 3)
    assert plan.binds.name == DAILY

    # no daily limit and 15,000 units/min per user: the project's per-minute budget binds
    s0 = _settings(tmp_path, "parallel_users = 25\nproject_units_per_day = 0\n", "quota_units_per_minute = 15000\n")
    plan = estimate(s0, _users(200, 24_000), 8, balanced=True)
    assert [lim.seconds for lim in plan.limits if lim.name == DAILY] == [None]
    assert plan.binds.name == PER_MINUTE


def test_the_daily_budget_is_the_projects_whatever_the_shard_count(tmp_path):
    s = _settings(tmp_path, "project_units_per_day = 1000000\n")
    assert daily_budget(s, Shard(0, 4), persist=False).limit == 1_000_000
    assert daily_budget(s, Shard(), persist=False).limit == 1_000_000
    assert daily_budget(_settings(tmp_path, "project_units_per_day = 0\n"), Shard(0, 4), persist=False).limit is None
    assert _settings(tmp_path).admin.project_units_per_day == 80_000_000
    with pytest.raises(ConfigError, match="project_units_per_day must be at least 0"):
        _settings(tmp_path, "project_units_per_day = -1\n")


def test_the_progress_bar_shows_the_daily_pause():
    import io

    from gimport.render.admin_progress import AdminProgress

    stream = io.StringIO()
    progress = AdminProgress(3, stream=stream, enabled=True)
    progress.paused("2026-12-02 00:00 PST US Pacific (2026-12-02 17:00 JST)")
    assert "paused until 2026-12-02 00:00 PST US Pacific (2026-12-02 17:00 JST)" in stream.getvalue()
    progress.paused(None)
    progress.close()
    last = stream.getvalue().rstrip().split("\r")[-1]
    assert "users 0/3" in last
    assert "paused" not in last  # going on again: the bar says so


def test_the_estimate_runs_the_shards_as_the_array_throttle_lets_them(tmp_path):
    from pathlib import Path

    from gimport.admin.plan import array_throttle

    # 8 shards of 2 users, one at a time per shard: each shard 2 x 10 minutes; 4 at a time: two waves
    s = _settings(tmp_path, "parallel_users = 1\nproject_units_per_day = 0\n", "quota_units_per_minute = 6000\n")
    users = _users(16, 2400)  # 60,000 units each: 10 minutes at 6,000 units/min
    all_at_once = estimate(s, users, 8, balanced=True)
    throttled = estimate(s, users, 8, balanced=True, concurrent=4)
    assert all_at_once.shard_seconds == throttled.shard_seconds == [pytest.approx(1200)] * 8
    assert all_at_once.seconds == pytest.approx(1200)
    assert throttled.seconds == pytest.approx(2400)
    assert throttled.concurrent == 4
    assert estimate(s, users, 8, balanced=True, concurrent=1).seconds == pytest.approx(8 * 1200)
    # a shard's share of the per-minute project budget slows it: 8 shards of 60,000 units/min is 7,500 each,
    # below the two users' 12,000 together
    s2 = _settings(
        tmp_path,
        "parallel_users = 2\nproject_units_per_day = 0\nproject_units_per_minute = 60000\n",
        "quota_units_per_minute = 6000\n",
    )
    plan = estimate(s2, users, 8, balanced=True, concurrent=4)
    assert plan.shard_seconds == [pytest.approx(120_000 / 7500 * 60)] * 8
    assert plan.seconds == pytest.approx(2 * 960)
    # the daily budget after the shards' time: one wait for the next quota day
    s3 = _settings(tmp_path, "parallel_users = 1\nproject_units_per_day = 600000\n", "quota_units_per_minute = 6000\n")
    plan = estimate(s3, users, 8, balanced=True, concurrent=4)
    assert plan.seconds == pytest.approx(86400 + (360_000 / 960_000) * 2400)

    shipped = Path(__file__).resolve().parents[2] / "deploy" / "slurm" / "gimport-array.sbatch"
    assert array_throttle(shipped) == 4  # "#SBATCH --array=0-7%4"
    plain = tmp_path / "plain.sbatch"
    plain.write_text("#!/bin/bash\n#SBATCH --array=0-7\nexec gimport admin run\n")
    assert array_throttle(plain) is None
    plain.write_text("#!/bin/bash\n#SBATCH -a 0-15%6\n")
    assert array_throttle(plain) == 6
