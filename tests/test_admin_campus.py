"""Campus planning and its guards, end to end on the rig: shard coverage checked by `admin status` (and at the
end of `admin run`), the shard map written by `admin plan --write-shards` deciding the users of each index,
and the project's daily budget pausing a run (visibly) until the quota day turns, SIGTERM still stopping it
cleanly."""

from __future__ import annotations

import csv
import dataclasses
import json
import signal
import threading

import pytest

from gimport.admin.shards import shard_of
from tests.helpers import wait_for
from tests.test_admin import DOMAIN, assert_exactly_once, campus, new_user, report_rows, run, run_process


@pytest.fixture
def emulator(campus_emulator):
    """The admin tests' emulator (tests/conftest.py)."""
    return campus_emulator


def test_status_fails_until_every_shard_ran_and_on_a_shard_count_mismatch(tmp_path, dovecot_server, emulator, capsys):
    ws, people, boxes = campus(tmp_path, dovecot_server, emulator, [3] * 6, "cov")
    for i in (0, 1):
        rc, out = run(ws, "run", "--shard", f"{i}/3", capsys=capsys)
        assert rc == 0, out.err  # a shard not run yet is no failure of the others (they may be queued)
        assert "Other shards (of 3): shards " in out.out
    rc, out = run(ws, "status", capsys=capsys)
    assert rc == 1
    assert "Shards that never ran (of 3): 2" in out.out
    assert "sbatch --array=2" in out.out
    # every user that did run is complete: only the coverage says the campus is not done
    # without a users file (a debug pod with the state volume only) every state file found is complete:
    # only the shard records tell that shard 2 never ran
    bare = dataclasses.replace(ws, config=ws.dir / "no-users.toml")
    bare.config.write_text(ws.config.read_text().replace('users_file = "users.csv"\n', ""))
    rc, out = run(bare, "status", "--csv", capsys=capsys)
    rows = list(csv.DictReader(out.out.splitlines()))
    assert len(rows) == sum(1 for p in people if shard_of(p.gmail, 3) != 2), out.out
    assert rc == 1
    assert {r["outcome"] for r in rows} == {"complete"}
    assert "never ran (of 3): 2" in out.err

    rc, out = run(ws, "run", "--shard", "2/3", capsys=capsys)
    assert rc == 0, out.err
    assert "Shards: 3 of 3 ran (shard count 3); every user is taken by a shard." in out.out
    for w in (ws, bare):
        rc, out = run(w, "status", capsys=capsys)
        assert rc == 0, out.out
        assert "Shards: 3 of 3 ran" in out.out

    # a user added to the users file since: no shard took them
    late = new_user(dovecot_server, 2, prefix="cov")
    with ws.users_csv.open("a", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerow([late[0], f"{late[0]}@{DOMAIN}", late[1], ""])
    rc, out = run(ws, "status", capsys=capsys)
    assert rc == 1
    assert f"1 user(s) of the users file taken by no shard: {late[0]}@{DOMAIN}" in out.out

    # one pod with another shard count: the run that sees it fails, and so does status
    rc, out = run(ws, "run", "--shard", "0/2", capsys=capsys)
    assert rc == 1
    assert "different shard counts (2, 3)" in out.out
    rc, out = run(ws, "status", capsys=capsys)
    assert rc == 1
    assert "different shard counts (2, 3)" in out.out
    for p, box in zip(people, boxes, strict=True):
        assert_exactly_once(emulator, p.gmail, box)


def test_plan_writes_balanced_shards_that_decide_each_index(tmp_path, dovecot_server, emulator, capsys):
    sizes = [30, 20, 10, 6, 5, 4]
    ws, people, boxes = campus(
        tmp_path, dovecot_server, emulator, sizes, "pln", extra_admin='shard_map = "shards.json"\n'
    )
    rc, out = run(ws, "plan", "--write-shards", "2", "--json", capsys=capsys)
    assert rc == 0, out.err
    plan = json.loads(out.out)
    assert [u["messages"] for u in plan["users"]] == sizes
    assert [u["to_import"] for u in plan["users"]] == sizes
    assert [u["units"] for u in plan["users"]] == [n * 25 + 2 * 5 for n in sizes]  # labels Work and Work/Reports
    assert plan["totals"]["bytes"] == sum(len(m.raw) for box in boxes for msgs in box.values() for m in msgs)
    assert sum(emulator.user(p.gmail).import_calls for p in people) == 0  # Gmail is not contacted
    doc = json.loads((ws.dir / "shards.json").read_text())
    by_shard = {s["index"]: sorted(s["users"]) for s in doc["shards"]}
    g = [p.gmail for p in people]
    assert sorted(by_shard[0] + by_shard[1]) == sorted(g)
    # largest first, each to the lighter shard, by messages and bytes (of like sizes here): 30 alone on one
    # side would be 30 against 45; the greedy split is 36 and 39 or 35 and 40
    assert g[0] in by_shard[0]
    assert sorted(s["messages"] for s in doc["shards"]) in ([36, 39], [35, 40])
    assert [s["bytes"] for s in doc["shards"]] == [
        sum(
            len(m.raw)
            for p, box in zip(people, boxes, strict=True)
            if p.gmail in by_shard[i]
            for msgs in box.values()
            for m in msgs
        )
        for i in (0, 1)
    ]

    for i in (0, 1):
        rc, out = run(ws, "run", "--shard", f"{i}/2", capsys=capsys)
        assert rc == 0, out.err
        assert sorted(report_rows(ws.dir / f"report-shard-{i}-of-2.csv")) == by_shard[i]
    assert run(ws, "status", capsys=capsys)[0] == 0
    for p, box in zip(people, boxes, strict=True):
        assert_exactly_once(emulator, p.gmail, box)
    # an index of another N than the map's is refused before anything starts
    rc, out = run(ws, "run", "--shard", "0/3", capsys=capsys)
    assert rc == 2
    assert "shard count is fixed at 2" in out.err

    rc, out = run(ws, "plan", capsys=capsys)
    assert rc == 0
    assert "binds" in out.out
    assert "project daily budget" in out.out
    assert "to import" in out.out


def test_daily_budget_pauses_visibly_and_sigterm_stops_cleanly(tmp_path, dovecot_server, emulator):
    # 1,000 units a day for the project (one shard: all of it), about 39 imports after the setup calls
    ws, people, boxes = campus(
        tmp_path, dovecot_server, emulator, [30, 30], "day", extra_admin="project_units_per_day = 1000\n"
    )
    proc = run_process(ws, emulator.base_url, "run", "--shard", "0/1", env={"GIMPORT_SHARD_COUNT": ""})
    lines: list[bytes] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    wait_for(lambda: any(b"pausing until" in line for line in lines), timeout=60)
    imported = sum(len(emulator.user(p.gmail).messages) for p in people)
    assert 0 < imported <= 1000 // 25
    err = b"".join(lines).decode()
    assert "the project's daily budget of 1,000 units is spent (all shards together; [admin]" in err
    assert "US Pacific (" in err
    assert "local time)" in err
    log = ws.log.read_text("utf-8")
    assert "pausing until" in log
    assert "US Pacific" in log
    proc.send_signal(signal.SIGTERM)  # the orchestrator stopping the job during the pause
    out = proc.stdout.read()
    proc.wait(timeout=30)
    reader.join(10)
    assert proc.returncode == 130, b"".join(lines).decode()
    assert b"Interrupted" in out
    # an import already in flight when the first user reached the spent budget may still land (a stop lets
    # calls in flight finish); nothing beyond the day's units, and every unit it spent is saved
    landed = sum(len(emulator.user(p.gmail).messages) for p in people)
    assert imported <= landed <= 1000 // 25
    saved = json.loads((ws.state_dir / "shards" / "daily.json").read_text())
    assert saved["units"] >= landed * 25

    # the same day, a restart goes on counting: it pauses again at once instead of spending a second share
    proc = run_process(ws, emulator.base_url, "run")
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    wait_for(lambda: any(b"pausing until" in line for line in lines), timeout=60)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert sum(len(emulator.user(p.gmail).messages) for p in people) == landed  # the restart sent nothing
    # a campus that accepts the charges: no daily limit
    text = ws.config.read_text().replace("project_units_per_day = 1000", "project_units_per_day = 0")
    ws.config.write_text(text)
    proc = run_process(ws, emulator.base_url, "run")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    for p, box in zip(people, boxes, strict=True):
        assert_exactly_once(emulator, p.gmail, box)
