"""The Kubernetes Indexed Job: the manifests pass `kubernetes-validate --strict` for every Kubernetes minor
version from 1.29 on that the validator knows, and N gimport processes started the way the Job starts its pods
(the manifest's command and env, JOB_COMPLETION_INDEX = 0..N-1) migrate every user exactly once, also when one
index is stopped with SIGTERM mid-run and retried."""

from __future__ import annotations

import collections
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from kubernetes_validate import utils as kv_utils

from gimport.admin.shards import shard_of
from tests.helpers import wait_for
from tests.rig.admin_workspace import Person, make_admin_workspace
from tests.test_admin import DOMAIN, assert_exactly_once, new_user, report_rows, run_process

KUBERNETES = Path(__file__).resolve().parents[1] / "deploy" / "kubernetes"
MANIFESTS = sorted(KUBERNETES.glob("*.yaml"))


def _supported_minors() -> list[str]:
    """Every minor version from 1.29 on that the installed kubernetes-validate has schemas for."""
    minors = {".".join(v.split(".")[:2]) for v in kv_utils.all_versions()}
    return sorted(
        (m for m in minors if tuple(map(int, m.split("."))) >= (1, 29)), key=lambda m: tuple(map(int, m.split(".")))
    )


def test_the_validator_knows_the_versions_we_claim():
    minors = _supported_minors()
    assert "1.29" in minors, minors
    assert len(minors) >= 3, minors
    assert MANIFESTS, f"no manifests in {KUBERNETES}"


@pytest.mark.parametrize("minor", _supported_minors())
def test_manifests_validate_strictly(minor):
    tool = Path(sys.executable).parent / "kubernetes-validate"
    for manifest in MANIFESTS:
        done = subprocess.run(
            [str(tool), "--strict", "--quiet", "-k", f"{minor}.0", str(manifest)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"{manifest.name} against Kubernetes {minor}:\n{done.stdout}{done.stderr}"


def _job() -> tuple[int, dict[str, str], list[str]]:
    """(completions, env, command) of the Indexed Job in the shipped manifest."""
    docs = [d for d in yaml.safe_load_all((KUBERNETES / "indexed-job.yaml").read_text()) if d]
    job = next(d for d in docs if d["kind"] == "Job")["spec"]
    (container,) = job["template"]["spec"]["containers"]
    return job["completions"], {e["name"]: e["value"] for e in container["env"]}, container["command"]


@pytest.fixture
def emulator(campus_emulator):
    """The admin tests' emulator (tests/conftest.py)."""
    return campus_emulator


def test_indexed_job_pods_with_a_retried_index_deliver_exactly_once(tmp_path, dovecot_server, emulator):
    completions, job_env, command = _job()
    assert command[:2] == ["gimport", "--config"]
    assert command[-2:] == ["admin", "run"]
    per_shard = collections.Counter()
    users = []
    while len(users) < 2 * completions:  # two users per index, so every pod has work
        name, password, box = new_user(dovecot_server, 24, prefix="k8s")
        gmail = f"{name}@{DOMAIN}"
        if per_shard[shard_of(gmail, completions)] >= 2:
            continue  # (an unused account on the rig costs nothing)
        per_shard[shard_of(gmail, completions)] += 1
        users.append((Person(name, gmail, password), box))
    for p, _ in users:
        emulator.add_user(p.gmail)
    ws = make_admin_workspace(
        tmp_path,
        server=dovecot_server,
        emulator_url=emulator.base_url,
        people=[p for p, _ in users],
        quota_units_per_minute=6000,  # 4 imports/s per user: a pod takes a few seconds
        workers=2,
        parallel_users=2,
    )

    started: list[subprocess.Popen] = []

    def pod(index: int, count: int = completions) -> subprocess.Popen:
        # what the Job runs: the manifest's command (config path moved to the test's) and env, plus the index
        env = {**job_env, "JOB_COMPLETION_INDEX": str(index), "GIMPORT_SHARD_COUNT": str(count)}
        proc = run_process(ws, emulator.base_url, "run", env=env)
        started.append(proc)
        return proc

    try:
        _run_the_job(emulator, users, ws, completions, pod)
        _reshard_the_job(emulator, users, ws, pod, dovecot_server)
    finally:  # a failed assertion must not leave pods running
        for proc in started:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)


def _run_the_job(emulator, users, ws, completions, pod) -> None:
    """All indexes at once; index 2 is stopped with SIGTERM part-way and retried; exactly once for all."""
    victim = 2
    victims = [p.gmail for p, _ in users if shard_of(p.gmail, completions) == victim]
    pods = {i: pod(i) for i in range(completions)}
    wait_for(lambda: min(len(emulator.user(g).messages) for g in victims) >= 3, timeout=60)
    # read the pod's stderr as it comes, to see when the first SIGTERM has been taken
    lines: list[bytes] = []
    reader = threading.Thread(target=lambda: lines.extend(pods[victim].stderr), daemon=True)
    reader.start()
    pods[victim].send_signal(signal.SIGTERM)  # the kubelet stopping the pod (eviction, node drain)
    wait_for(lambda: any(b"stopping" in line for line in lines), timeout=30)
    pods[victim].send_signal(signal.SIGTERM)  # a second one (signals are not queued: sent after the first
    pods[victim].send_signal(signal.SIGTERM)  # was handled) is the same clean stop
    out = pods[victim].stdout.read()
    pods[victim].wait(timeout=60)
    reader.join(10)
    err = b"".join(lines)
    assert pods[victim].returncode == 130, err.decode()
    assert b"stopped at once" not in err
    assert b"Interrupted" in out
    assert b"the Job retries index 2 by itself" in out  # what to do, in the Job's terms
    assert sum(len(emulator.user(g).messages) for g in victims) < len(victims) * 24  # stopped part-way
    for i, proc in pods.items():
        if i != victim:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err.decode()
    # the Job retries the index (backoffLimitPerIndex): the same JOB_COMPLETION_INDEX, so the same users
    retry = pod(victim)
    out, err = retry.communicate(timeout=120)
    assert retry.returncode == 0, err.decode()
    assert f"shard {victim}/{completions} (Kubernetes Indexed Job".encode() in err

    for p, box in users:
        assert_exactly_once(emulator, p.gmail, box)
    calls = sum(emulator.user(p.gmail).import_calls for p, _ in users)
    assert calls == sum(len(msgs) for _, box in users for msgs in box.values())  # nothing re-sent at all
    for i in range(completions):
        rows = report_rows(ws.dir / f"report-shard-{i}-of-{completions}.csv")
        assert len(rows) == 2
        assert {r["outcome"] for r in rows.values()} == {"complete"}


def _reshard_the_job(emulator, users, ws, pod, dovecot_server) -> None:
    """Then the campus goes from 4 indexes to 2, as the manifest's comments say: two users are added to the
    users file, `gimport admin reshard 2` in a pod with the volume, a new Job with completions and
    GIMPORT_SHARD_COUNT 2. Every user once in one shard, nobody re-sent, the day's spend kept."""
    import csv
    import json

    added = [new_user(dovecot_server, 6, prefix="k8s") for _ in range(2)]
    for name, password, box in added:
        gmail = f"{name}@{DOMAIN}"
        emulator.add_user(gmail)
        users.append((Person(name, gmail, password), box))
        with ws.users_csv.open("a", encoding="utf-8", newline="") as fh:
            csv.writer(fh).writerow([name, gmail, password, ""])
    daily = ws.state_dir / "shards" / "daily.json"
    spent = json.loads(daily.read_text())
    reshard = run_process(ws, emulator.base_url, "reshard", "2")
    out, err = reshard.communicate(timeout=60)
    assert reshard.returncode == 0, err.decode()
    assert b"carried over" in out
    assert json.loads(daily.read_text()) == spent
    pods = [pod(i, 2) for i in range(2)]
    for proc in pods:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    for p, box in users:
        assert_exactly_once(emulator, p.gmail, box)
    calls = sum(emulator.user(p.gmail).import_calls for p, _ in users)
    assert calls == sum(len(msgs) for _, box in users for msgs in box.values())  # nothing re-sent at all
    rows = [report_rows(ws.dir / f"report-shard-{i}-of-2.csv") for i in range(2)]
    assert not set(rows[0]) & set(rows[1])
    assert set(rows[0]) | set(rows[1]) == {p.gmail for p, _ in users}
    status = run_process(ws, emulator.base_url, "status")
    out, err = status.communicate(timeout=60)
    assert status.returncode == 0, out.decode()
    assert b"Shards: 2 of 2 ran" in out
    assert json.loads(daily.read_text())["units"] >= spent["units"] + 12 * 25
