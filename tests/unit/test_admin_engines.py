"""The administrator's messages in the terms of the engine they are on (Slurm, Kubernetes, none), and without
contradictions: a stopped shard is not "ran", a campus of 8 shards without a shard given is not "no sharding",
the shards still queued in the same array are not "not run"."""

from __future__ import annotations

from gimport.admin import coverage
from gimport.admin.engines import KUBERNETES, SLURM, detect, interrupted_hint, not_run_yet
from gimport.admin.shards import Shard, resolve_shard, shard_of
from gimport.render.admin import format_coverage

SLURM_ENV = {
    "SLURM_JOB_ID": "4711",
    "SLURM_ARRAY_JOB_ID": "4700",
    "SLURM_ARRAY_TASK_ID": "2",
    "SLURM_ARRAY_TASK_MIN": "0",
    "SLURM_ARRAY_TASK_MAX": "7",
}


def test_the_engine_and_what_to_do_there_after_a_stop():
    slurm = detect(SLURM_ENV)
    assert (slurm.kind, slurm.job, slurm.task, slurm.tasks) == (SLURM, "4700", "2", (0, 7))
    text = str(interrupted_hint(slurm))
    assert "scontrol requeue 4700_2" in text
    assert "sbatch --array=2" in text
    assert "run the same command" not in text
    k8s = detect({"JOB_COMPLETION_INDEX": "3", "SLURM_JOB_ID": ""})
    assert k8s.kind == KUBERNETES
    assert "the Job retries index 3 by itself" in str(interrupted_hint(k8s))
    assert "run the same command again" in str(interrupted_hint(detect({})))


def test_shards_queued_in_the_same_array_are_not_reported_as_not_run():
    slurm = detect({**SLURM_ENV, "SLURM_ARRAY_TASK_MAX": "5"})
    text = str(not_run_yet(slurm, [4, 5, 6, 7]))
    assert "shards 4, 5 are tasks of this array (job 4700) that have not started yet" in text
    assert "shards 6, 7 are not in this array: submit them (sbatch --array=6,7)" in text


def test_a_campus_of_8_without_a_shard_given_is_every_user_not_no_sharding():
    shard = resolve_shard(None, {}, count=8)
    assert (shard.index, shard.count) == (0, 1)
    assert str(shard.origin) == "every user: no shard given, of 8 shards"
    assert str(resolve_shard(None, {}, count=None).origin) == "no sharding"


def test_status_does_not_say_ran_for_shards_that_were_stopped(tmp_path):
    users = [f"u{i}@x.jp" for i in range(20)]
    for i in range(4):
        rec = coverage.record_start(tmp_path, Shard(i, 4), [u for u in users if shard_of(u, 4) == i], users)
        coverage.record_finish(tmp_path, rec, "interrupted" if i in (1, 3) else "complete")
    cov = coverage.check(tmp_path, users)
    assert cov.ok
    assert cov.stopped == [1, 3]
    text = format_coverage(cov, tmp_path)
    assert "4 of 4 started" in text
    assert " ran " not in text
    assert "stopped before finishing their users: 1, 3" in text
    assert "sbatch --array=1,3" in text
