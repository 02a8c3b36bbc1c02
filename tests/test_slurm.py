"""The shipped Slurm array script on a real single-node Slurm (tests/rig/slurm.py): 4 array tasks migrate 12
users from the Dovecot rig into the Gmail emulator (merging off, so every re-send is a stored duplicate). One
task is cancelled with scancel mid-run and requeued with scontrol requeue; then one task is resubmitted alone
(sbatch --array=1). Every message must arrive exactly once.

Skipped, with the reason, only where Slurm is not installed (scripts/test installs slurm-wlm and munge with
apt-get when it can) or its daemons cannot start."""

from __future__ import annotations

import collections
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

from gimport.admin.shards import shard_of
from tests.rig import slurm as rig_slurm
from tests.rig.admin_workspace import Person, make_admin_workspace
from tests.rig.gmail_emulator import GmailEmulator
from tests.test_admin import DOMAIN, report_rows, small_box

SCRIPT = Path(__file__).resolve().parents[1] / "deploy" / "slurm" / "gimport-array.sbatch"
SHARDS, PER_SHARD, MESSAGES = 4, 3, 40
# 2 imports/s per user: a user takes ~20 s, long enough to stop a task in the middle of its users
PER_USER_UNITS = 3000


@pytest.fixture
def slurm(capsys):
    if os.geteuid() != 0:
        pytest.skip("the Slurm rig runs slurmctld/slurmd as root: run scripts/test as root")
    need = rig_slurm.missing()
    if need:
        reason = f"Slurm is not installed ({', '.join(need)} missing; scripts/test installs slurm-wlm and munge)"
        with capsys.disabled():
            print(f"\ntest_slurm: SKIPPED: {reason}", file=sys.stderr)
        pytest.skip(reason)
    workdir = Path(tempfile.mkdtemp(prefix="gimport-slurm-"))
    cluster = rig_slurm.SlurmCluster(workdir)
    try:
        cluster.start()
    except rig_slurm.SlurmError as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        with capsys.disabled():
            print(f"\ntest_slurm: SKIPPED: the Slurm daemons did not start: {exc}", file=sys.stderr)
        pytest.skip(f"the Slurm daemons did not start: {str(exc)[:2000]}")
    try:
        yield cluster
    finally:
        cluster.stop()
        if os.environ.get("GIMPORT_KEEP_RIG") != "1":
            shutil.rmtree(workdir, ignore_errors=True)


def _balanced_people(
    server, emulator, per_shard: int = PER_SHARD, messages: int = MESSAGES
) -> tuple[list[Person], dict[str, dict]]:
    """`per_shard` users in each of the SHARDS shards (the hash decides; names are drawn until it fits)."""
    people: list[Person] = []
    boxes: dict[str, dict] = {}
    counts = collections.Counter()
    while len(people) < SHARDS * per_shard:
        name = f"slm{secrets.token_hex(3)}"
        gmail = f"{name}@{DOMAIN}"
        shard = shard_of(gmail, SHARDS)
        if counts[shard] >= per_shard:
            continue
        counts[shard] += 1
        password = server.add_user(name)
        box = small_box(name, messages)
        for folder, msgs in box.items():
            server.seed(name, folder, msgs)
        emulator.add_user(gmail)
        people.append(Person(name, gmail, password))
        boxes[gmail] = box
    return people, boxes


def _count(emulator: GmailEmulator, boxes: dict[str, dict]) -> tuple[int, int, dict[str, tuple[int, int]]]:
    """(missing, duplicates, {gmail: (missing, duplicates)}) comparing each account with its seeded box."""
    per_user = {}
    for gmail, box in boxes.items():
        stored = collections.Counter(m.raw for m in emulator.user(gmail).messages)
        seeded = collections.Counter(m.raw for msgs in box.values() for m in msgs)
        missing = sum((seeded - stored).values())
        extra = sum((stored - seeded).values())
        per_user[gmail] = (missing, extra)
    return sum(m for m, _ in per_user.values()), sum(d for _, d in per_user.values()), per_user


def test_slurm_array_scancel_requeue_resubmit_exactly_once(slurm, dovecot_server, tmp_path, capsys, monkeypatch):
    started = time.monotonic()
    for k in ("JOB_COMPLETION_INDEX", "GIMPORT_SHARD", "GIMPORT_SHARD_COUNT", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(k, raising=False)  # sbatch passes the submitting environment on to the tasks
    emu = GmailEmulator(merge_duplicates=False)
    emu.start()
    try:
        people, boxes = _balanced_people(dovecot_server, emu)
        ws = make_admin_workspace(
            tmp_path,
            server=dovecot_server,
            emulator_url=emu.base_url,
            people=people,
            quota_units_per_minute=PER_USER_UNITS,
            workers=2,
            parallel_users=PER_SHARD,
            extra_admin=f"shard_count = {SHARDS}\n",
        )
        (ws.dir / "logs").mkdir()
        # only site settings differ from a campus: where gimport and its config are (the script's documented
        # GIMPORT_VENV / GIMPORT_CONFIG), the array size, and resources for a 2-CPU node
        env = {
            "GIMPORT_VENV": sys.prefix,
            "GIMPORT_CONFIG": str(ws.config),
            "GIMPORT_GMAIL_API_URL": emu.base_url,
        }
        site = [f"--array=0-{SHARDS - 1}", "--cpus-per-task=1", "--mem=512M"]
        job = slurm.sbatch([*site, str(SCRIPT)], cwd=ws.dir, env=env)
        victim = f"{job}_1"
        victims = [p.gmail for p in people if shard_of(p.gmail, SHARDS) == 1]
        out_file = ws.dir / "logs" / f"gimport-{job}_1.out"

        def victim_midway() -> bool:
            counts = [len(emu.user(g).messages) for g in victims]
            return min(counts) >= 5 and sum(counts) < len(victims) * MESSAGES // 2

        slurm.wait_for(victim_midway, deadline=90, what=f"task {victim}'s users to be part-way")
        slurm.run("scancel", victim)
        slurm.wait_for(
            lambda: slurm.tasks(job).get(victim, {}).get("JobState") == "CANCELLED",
            deadline=rig_slurm.KILL_WAIT - 5,  # before Slurm's SIGKILL: gimport stopped by itself
            what=f"{victim} to stop",
        )
        at_stop = {g: len(emu.user(g).messages) for g in victims}
        first_run = out_file.read_text()
        assert "Interrupted" in first_run, first_run  # the clean-stop summary, not a kill
        assert first_run.count("stopping (SIGTERM)") == 1, first_run
        assert f"scontrol requeue {job}_1" in first_run  # what to do, in Slurm's terms
        assert "run the same command again" not in first_run
        assert sum(at_stop.values()) < len(victims) * MESSAGES  # it really was stopped part-way
        missing, dups, _ = _count(emu, {g: boxes[g] for g in victims})
        assert dups == 0

        slurm.run("scontrol", "requeue", victim)

        def all_complete() -> bool:
            tasks = slurm.tasks(job)
            return all(tasks.get(f"{job}_{i}", {}).get("JobState") == "COMPLETED" for i in range(SHARDS))

        slurm.wait_for(all_complete, deadline=150, what="every array task to complete")
        tasks = slurm.tasks(job)
        assert {tasks[f"{job}_{i}"]["ExitCode"] for i in range(SHARDS)} == {"0:0"}
        assert tasks[victim]["Restarts"] == "1"
        second = out_file.read_text()[len(first_run) :]
        assert "shard 1/4 (Slurm array task 1 of 4)" in second, second
        for i in range(SHARDS):
            rows = report_rows(ws.dir / f"report-shard-{i}-of-{SHARDS}.csv")
            assert {r["outcome"] for r in rows.values()} == {"complete"}
            assert {shard_of(g, SHARDS) for g in rows} == {i}
            assert len(rows) == PER_SHARD

        missing, dups, per_user = _count(emu, boxes)
        calls = sum(emu.user(g).import_calls for g in boxes)
        total = len(boxes) * MESSAGES
        assert (missing, dups) == (0, 0), per_user
        # nothing re-sent at all: the stop let the calls in flight finish and recorded them
        assert calls == total, (calls, total)

        # resubmit one task alone, as an operator would: it is still shard 1 of 4, and has nothing to do
        again = slurm.sbatch(["--array=1", *site[1:], str(SCRIPT)], cwd=ws.dir, env=env)
        slurm.wait_for(
            lambda: slurm.tasks(again).get(f"{again}_1", {}).get("JobState") in ("COMPLETED", "FAILED"),
            deadline=60,
            what="the resubmitted task",
        )
        resubmitted = (ws.dir / "logs" / f"gimport-{again}_1.out").read_text()
        assert slurm.tasks(again)[f"{again}_1"]["ExitCode"] == "0:0", resubmitted
        assert re.search(rf"{PER_SHARD} of {len(people)} user\(s\) in shard 1/4", resubmitted), resubmitted
        assert sum(emu.user(g).import_calls for g in boxes) == total
        wall = time.monotonic() - started
        with capsys.disabled():
            print(
                f"\ntest_slurm: {len(boxes)} users x {MESSAGES} messages over {SHARDS} array tasks, task 1 cancelled"
                f" at {sum(at_stop.values())}/{len(victims) * MESSAGES} of its messages and requeued: missing"
                f" {missing}, duplicates {dups}, import calls {calls} for {total} messages; wall time {wall:.1f} s",
                file=sys.stderr,
            )
    finally:
        emu.stop()


def test_slurm_reshard_4_to_2_with_admin_reshard(slurm, dovecot_server, tmp_path, capsys, monkeypatch):
    """An array of 4 is stopped part-way (scancel of the whole job), `gimport admin reshard 2` refuses while it
    runs and then does the change; an array of 2 finishes the campus: no user twice, none skipped, and the
    day's spend carried over into the project's one daily record."""
    import json

    from gimport.cli import main

    for k in ("JOB_COMPLETION_INDEX", "GIMPORT_SHARD", "GIMPORT_SHARD_COUNT", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(k, raising=False)
    emu = GmailEmulator(merge_duplicates=False)
    emu.start()
    try:
        people, boxes = _balanced_people(dovecot_server, emu, per_shard=2, messages=30)
        ws = make_admin_workspace(
            tmp_path,
            server=dovecot_server,
            emulator_url=emu.base_url,
            people=people,
            quota_units_per_minute=PER_USER_UNITS,
            workers=2,
            parallel_users=2,
            extra_admin=f"shard_count = {SHARDS}\nproject_units_per_day = 50000000\n",
        )
        (ws.dir / "logs").mkdir()
        env = {"GIMPORT_VENV": sys.prefix, "GIMPORT_CONFIG": str(ws.config), "GIMPORT_GMAIL_API_URL": emu.base_url}
        site = ["--cpus-per-task=1", "--mem=512M"]
        job = slurm.sbatch([f"--array=0-{SHARDS - 1}", *site, str(SCRIPT)], cwd=ws.dir, env=env)
        total = len(boxes) * 30
        imported = lambda: sum(len(emu.user(g).messages) for g in boxes)  # noqa: E731
        slurm.wait_for(lambda: imported() >= total // 4, deadline=120, what="a quarter of the messages")
        monkeypatch.setenv("GIMPORT_GMAIL_API_URL", emu.base_url)
        admin = ["--config", str(ws.config), "admin"]
        rc = main([*admin, "reshard", "2"])
        out = capsys.readouterr()
        assert rc == 2, out.out + out.err
        assert "not re-sharding while shards run" in out.err
        assert f"shard_count = {SHARDS}" in ws.config.read_text()

        slurm.run("scancel", job)
        slurm.wait_for(lambda: not slurm.job_ids(), deadline=rig_slurm.KILL_WAIT - 5, what="the array to stop")
        before = imported()
        assert before < total  # stopped part-way
        daily = ws.state_dir / "shards" / "daily.json"
        spent = json.loads(daily.read_text())
        assert spent["units"] >= before * 25  # every import was charged to the project's record

        rc = main([*admin, "reshard", "2"])
        out = capsys.readouterr()
        assert rc == 0, out.out + out.err
        assert f"{spent['units']:,.0f} units, carried over" in out.out
        assert "shard_count = 2" in ws.config.read_text()
        assert json.loads(daily.read_text()) == spent
        assert not list((ws.state_dir / "shards").glob("shard-*-of-*.json"))

        again = slurm.sbatch(["--array=0-1", *site, str(SCRIPT)], cwd=ws.dir, env=env)

        def done() -> bool:
            tasks = slurm.tasks(again)
            return all(tasks.get(f"{again}_{i}", {}).get("JobState") in ("COMPLETED", "FAILED") for i in (0, 1))

        slurm.wait_for(done, deadline=240, what="the array of 2 to end")
        tasks = slurm.tasks(again)
        logs = [(ws.dir / "logs" / f"gimport-{again}_{i}.out").read_text() for i in (0, 1)]
        assert {tasks[f"{again}_{i}"]["ExitCode"] for i in (0, 1)} == {"0:0"}, logs
        missing, dups, per_user = _count(emu, boxes)
        assert (missing, dups) == (0, 0), per_user  # none skipped, no message twice
        rows = [report_rows(ws.dir / f"report-shard-{i}-of-2.csv") for i in (0, 1)]
        assert not set(rows[0]) & set(rows[1])  # no user in two shards
        assert set(rows[0]) | set(rows[1]) == set(boxes)
        assert main([*admin, "status"]) == 0, capsys.readouterr().out
        final = json.loads(daily.read_text())
        assert final["day"] == spent["day"]
        assert final["units"] >= spent["units"] + (total - before) * 25  # counted on from the carried spend
        with capsys.disabled():
            print(
                f"\ntest_slurm reshard: {len(boxes)} users x 30 messages, array of {SHARDS} cancelled at"
                f" {before}/{total}; reshard 2 carried {spent['units']:,.0f} units; final {final['units']:,.0f}"
                f" units; shards {[len(r) for r in rows]}; missing {missing}, duplicates {dups}",
                file=sys.stderr,
            )
    finally:
        emu.stop()


def test_slurm_plan_eta_matches_the_throttled_run(slurm, dovecot_server, tmp_path, capsys, monkeypatch):
    """`gimport admin plan --sbatch` reads the array's %K and estimates the campus as it will run: 4 shards,
    2 at a time, one 80-message user each at 2 imports/s. The measured wall time of the array (submit to the
    last task's end) is within 15% of the estimate."""
    import json

    from gimport.cli import main

    for k in ("JOB_COMPLETION_INDEX", "GIMPORT_SHARD", "GIMPORT_SHARD_COUNT", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(k, raising=False)
    emu = GmailEmulator(merge_duplicates=False)
    emu.start()
    try:
        people, boxes = _balanced_people(dovecot_server, emu, per_shard=1, messages=80)
        ws = make_admin_workspace(
            tmp_path,
            server=dovecot_server,
            emulator_url=emu.base_url,
            people=people,
            quota_units_per_minute=PER_USER_UNITS,
            workers=2,
            parallel_users=1,
            extra_admin=f"shard_count = {SHARDS}\n",
        )
        (ws.dir / "logs").mkdir()
        # the shipped script with the site's array: 4 shards, 2 at a time
        script = ws.dir / "gimport-array.sbatch"
        text = SCRIPT.read_text()
        assert "#SBATCH --array=0-7%4\n" in text
        script.write_text(text.replace("#SBATCH --array=0-7%4\n", f"#SBATCH --array=0-{SHARDS - 1}%2\n"))
        monkeypatch.setenv("GIMPORT_GMAIL_API_URL", emu.base_url)
        rc = main(["--config", str(ws.config), "admin", "plan", "--sbatch", str(script), "--json"])
        out = capsys.readouterr()
        assert rc == 0, out.err
        plan = json.loads(out.out)
        assert plan["concurrent_shards"] == 2
        assert [len(s["users"]) for s in plan["shards"]] == [1] * SHARDS
        eta = plan["seconds"]

        env = {"GIMPORT_VENV": sys.prefix, "GIMPORT_CONFIG": str(ws.config), "GIMPORT_GMAIL_API_URL": emu.base_url}
        started = time.monotonic()
        job = slurm.sbatch(["--cpus-per-task=1", "--mem=512M", str(script)], cwd=ws.dir, env=env)

        def ended() -> bool:
            tasks = slurm.tasks(job)
            return all(tasks.get(f"{job}_{i}", {}).get("JobState") in ("COMPLETED", "FAILED") for i in range(SHARDS))

        slurm.wait_for(ended, deadline=eta * 2 + 60, what="the throttled array to end")
        measured = time.monotonic() - started
        tasks = slurm.tasks(job)
        assert {tasks[f"{job}_{i}"]["ExitCode"] for i in range(SHARDS)} == {"0:0"}
        assert _count(emu, boxes)[:2] == (0, 0)
        with capsys.disabled():
            print(
                f"\ntest_slurm plan: {SHARDS} shards x 1 user x 80 messages, 2 at a time: estimated {eta:.1f} s,"
                f" measured {measured:.1f} s ({(measured - eta) / measured:+.0%})",
                file=sys.stderr,
            )
        assert abs(measured - eta) <= 0.15 * measured, (eta, measured)
    finally:
        emu.stop()


def test_slurm_a_time_limit_stop_comes_back_by_itself(slurm, dovecot_server, tmp_path, capsys, monkeypatch):
    """A task whose time limit comes before its users are done: the script's --signal=B:USR1@120 makes it
    requeue itself, gimport stops cleanly, and the task runs again by itself until it completes — exactly once,
    nothing re-sent."""
    for k in ("JOB_COMPLETION_INDEX", "GIMPORT_SHARD", "GIMPORT_SHARD_COUNT", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(k, raising=False)
    emu = GmailEmulator(merge_duplicates=False)
    emu.start()
    try:
        name = f"slm{secrets.token_hex(3)}"
        password = dovecot_server.add_user(name)
        box = small_box(name, 240)  # 2 minutes at 2 imports/s: more than the first run gets before the warning
        for folder, msgs in box.items():
            dovecot_server.seed(name, folder, msgs)
        gmail = f"{name}@{DOMAIN}"
        emu.add_user(gmail)
        ws = make_admin_workspace(
            tmp_path,
            server=dovecot_server,
            emulator_url=emu.base_url,
            people=[Person(name, gmail, password)],
            quota_units_per_minute=PER_USER_UNITS,
            workers=2,
            parallel_users=1,
            extra_admin="shard_count = 1\n",
        )
        (ws.dir / "logs").mkdir()
        env = {"GIMPORT_VENV": sys.prefix, "GIMPORT_CONFIG": str(ws.config), "GIMPORT_GMAIL_API_URL": emu.base_url}
        # a 3-minute limit: the script's own --signal=B:USR1@120 comes a minute in (slurmctld checks limits
        # every half minute or so)
        job = slurm.sbatch(
            ["--array=0", "--time=3", "--cpus-per-task=1", "--mem=512M", str(SCRIPT)], cwd=ws.dir, env=env
        )
        task = f"{job}_0"
        slurm.wait_for(
            lambda: int(slurm.tasks(job).get(task, {}).get("Restarts") or 0) >= 1, deadline=180, what="the requeue"
        )
        at_requeue = len(emu.user(gmail).messages)
        slurm.wait_for(
            lambda: slurm.tasks(job).get(task, {}).get("JobState") in ("COMPLETED", "FAILED", "TIMEOUT"),
            deadline=400,
            what="the task to end",
        )
        info = slurm.tasks(job)[task]
        out = (ws.dir / "logs" / f"gimport-{job}_0.out").read_text()
        assert info["JobState"] == "COMPLETED", out
        assert info["ExitCode"] == "0:0", out
        assert "the time limit is near: requeueing task 0" in out
        assert "Interrupted" in out  # the first run's clean stop
        assert "stopped at once" not in out
        total = sum(len(m) for m in box.values())
        assert 0 < at_requeue < total
        missing, dups, _ = _count(emu, {gmail: box})
        assert (missing, dups) == (0, 0)
        assert emu.user(gmail).import_calls == total  # nothing re-sent
        with capsys.disabled():
            print(
                f"\ntest_slurm time limit: requeued at {at_requeue}/{total} messages, restarts {info['Restarts']},"
                f" then COMPLETED 0:0; missing {missing}, duplicates {dups}",
                file=sys.stderr,
            )
    finally:
        emu.stop()
