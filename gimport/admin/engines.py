"""Which job engine runs this process (Slurm, a Kubernetes Indexed Job, or none), from its environment, and
what an administrator does there to run a shard again: the messages of `admin run` and `admin status` say it
in the engine's own terms."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gimport.i18n import _

SLURM, KUBERNETES = "slurm", "kubernetes"


@dataclass(frozen=True)
class Engine:
    kind: str = ""  # SLURM, KUBERNETES or "" (a shell, cron, a login node)
    job: str = ""  # Slurm: the array job id (SLURM_ARRAY_JOB_ID, else SLURM_JOB_ID)
    task: str = ""  # Slurm: SLURM_ARRAY_TASK_ID; Kubernetes: JOB_COMPLETION_INDEX
    tasks: tuple[int, int] | None = None  # Slurm: the array's first and last task ids


def detect(env: Mapping[str, str] | None = None) -> Engine:
    env = os.environ if env is None else env
    if env.get("JOB_COMPLETION_INDEX", "").strip():
        return Engine(KUBERNETES, task=env["JOB_COMPLETION_INDEX"].strip())
    job = env.get("SLURM_ARRAY_JOB_ID") or env.get("SLURM_JOB_ID") or ""
    if job.strip():
        low, high = env.get("SLURM_ARRAY_TASK_MIN", ""), env.get("SLURM_ARRAY_TASK_MAX", "")
        tasks = (int(low), int(high)) if low.isdigit() and high.isdigit() else None
        return Engine(SLURM, job=job.strip(), task=env.get("SLURM_ARRAY_TASK_ID", "").strip(), tasks=tasks)
    return Engine()


def interrupted_hint(engine: Engine) -> str:
    """What to do after a run was stopped (SIGTERM, Ctrl-C), in the engine's terms."""
    if engine.kind == SLURM and engine.task:
        return _(
            "Interrupted: a requeued task (the time limit, preemption, scontrol requeue) runs again by itself;"
            " after a scancel, run this task again: scontrol requeue {job}_{task}, or sbatch --array={task}"
            " deploy/slurm/gimport-array.sbatch once the job has left squeue. It continues where each user stopped."
        ).format(job=engine.job, task=engine.task)
    if engine.kind == KUBERNETES:
        return _(
            "Interrupted: the Job retries index {index} by itself (backoffLimitPerIndex); if the Job has failed,"
            " delete it and apply it again. It continues where each user stopped."
        ).format(index=engine.task)
    return _("Interrupted: run the same command again to continue where each user stopped.")


def rerun_hint(engine: Engine, indices: Sequence[int], count: int) -> str:
    """How to run these shards of `count` (again)."""
    csv = ",".join(map(str, indices))
    if engine.kind == SLURM:
        return _(
            "Slurm: scontrol requeue {job}_{first} for each while the job is known, else sbatch --array={csv}"
        ).format(job=engine.job or "JOBID", first=indices[0] if indices else 0, csv=csv)
    if engine.kind == KUBERNETES:
        return _("Kubernetes: the Job retries failed indexes; completions and parallelism must be {count}").format(
            count=count
        )
    return _("Slurm: sbatch --array={csv}; Kubernetes: completions and parallelism must be {count}").format(
        csv=csv, count=count
    )


def not_run_yet(engine: Engine, missing: Sequence[int]) -> str:
    """After one shard's run, the shards with no record yet: where they are, in this engine's terms."""
    indices = ", ".join(map(str, missing))
    if engine.kind == SLURM and engine.tasks is not None:
        low, high = engine.tasks
        queued = [i for i in missing if low <= i <= high]
        outside = [i for i in missing if not low <= i <= high]
        parts = []
        if queued:
            parts.append(
                _("shards {indices} are tasks of this array (job {job}) that have not started yet").format(
                    indices=", ".join(map(str, queued)), job=engine.job
                )
            )
        if outside:
            parts.append(
                _("shards {indices} are not in this array: submit them (sbatch --array={csv})").format(
                    indices=", ".join(map(str, outside)), csv=",".join(map(str, outside))
                )
            )
        return "; ".join(parts)
    if engine.kind == KUBERNETES:
        return _("shards {indices}: the Job starts those indexes as parallelism allows").format(indices=indices)
    return _("shards {indices} have not recorded a run yet (queued, or still to start)").format(indices=indices)
