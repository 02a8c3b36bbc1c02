"""`gimport admin reshard N` without servers: what it refuses, what it moves, what it keeps."""

from __future__ import annotations

import json
import os

import pytest

from gimport import wiring
from gimport.admin import coverage
from gimport.admin.daily import daily_path, read_daily
from gimport.admin.paths import user_paths
from gimport.admin.reshard import map_path, reshard, running
from gimport.admin.shards import Shard, load_shard_map, shard_for
from gimport.admin.users import UserEntry
from gimport.config.load import load_settings
from gimport.errors import ConfigError


def _setup(tmp_path, admin_extra=""):
    config = tmp_path / "gimport.toml"
    config.write_text(
        '[source]\nhost = "imap.example.edu"\n[admin]\n# eight array tasks\nshard_count = 8  # = --array=0-7\n'
        + admin_extra
    )
    settings = load_settings(config, admin=True)
    users = [UserEntry(i + 2, f"u{i}", f"u{i}@x.jp", password="pw") for i in range(10)]
    return config, settings, users


def test_reshard_moves_the_old_records_keeps_the_day_and_sets_the_count(tmp_path):
    config, settings, users = _setup(tmp_path)
    admin = settings.admin
    for i in range(8):
        rec = coverage.record_start(admin.state_dir, Shard(i, 8), [u.gmail for u in users if u.gmail.endswith("x")], [])
        coverage.record_finish(admin.state_dir, rec, "complete")
    folder = coverage.shards_dir(admin.state_dir)
    for i, units in enumerate((1000, 2500)):  # an older version's per-shard daily records
        (folder / f"daily-shard-{i}-of-8.json").write_text(json.dumps({"day": "2026-12-07", "units": units}))
    state = user_paths(admin.state_dir, "u0@x.jp").state
    state.write_bytes(b"kept")

    done = reshard(admin, users, 3, config)
    assert done.old_counts == [8]
    assert sorted(p.name for p in done.moved) == sorted(
        [f"shard-{i}-of-8.json" for i in range(8)] + ["daily-shard-0-of-8.json", "daily-shard-1-of-8.json"]
    )
    assert not list(folder.glob("shard-*-of-*.json"))
    assert done.moved_to is not None
    assert len(list(done.moved_to.iterdir())) == 10
    assert read_daily(admin.state_dir) == ("2026-12-07", 3500)  # the day's spend, now the project's record
    assert json.loads(daily_path(admin.state_dir).read_text())["units"] == 3500
    assert state.read_bytes() == b"kept"
    text = config.read_text()
    assert "shard_count = 3  # = --array=0-7" in text  # its comments kept
    assert done.config_changed
    m = load_shard_map(map_path(admin))
    assert m.count == 3
    assert sorted(m.users) == sorted(u.gmail for u in users)
    assert sorted(len(s) for s in done.shards) == [3, 3, 4]
    # every index of the new count takes its users from the map, nobody twice, nobody left out
    settings = load_settings(config, admin=True)
    taken = [
        u.gmail
        for i in range(3)
        for u in users
        if shard_for(f"{i}/3", settings.admin.shard_count, shard_map=map_path(settings.admin)).takes(u.gmail)
    ]
    assert sorted(taken) == sorted(u.gmail for u in users)


def test_reshard_refuses_while_a_shard_runs(tmp_path):
    config, settings, users = _setup(tmp_path)
    admin = settings.admin
    admin.state_dir.mkdir(parents=True)
    state = user_paths(admin.state_dir, "u3@x.jp").state
    state.write_bytes(b"")
    lock = wiring.run_lock(state)
    assert lock.acquire()
    try:
        assert running(admin, users) == ["u3@x.jp is being migrated now"]
        with pytest.raises(ConfigError, match=r"not re-sharding while shards run: u3@x\.jp is being migrated now"):
            reshard(admin, users, 3, config)
    finally:
        lock.release()
    # a record started on another host and never finished: unknown, so refused too
    rec = coverage.record_start(admin.state_dir, Shard(2, 8), [], [])
    path = coverage.record_path(admin.state_dir, Shard(2, 8))
    path.write_text(json.dumps({**rec, "host": "node17"}))
    with pytest.raises(ConfigError, match="shard 2/8 started on node17 and has not finished"):
        reshard(admin, users, 3, config)
    assert running(admin, users, force=True) == []  # squeue shows nothing: that task was killed
    # on this host, a process that is gone runs no more
    path.write_text(json.dumps({**rec, "pid": 2**22 + 12345}))
    assert running(admin, users) == []
    assert "shard_count = 8" in config.read_text()
    assert os.path.exists(path)
    with pytest.raises(ConfigError, match="at least 1"):
        reshard(admin, users, 0, config)
