"""The shipped deployment examples are consistent with gimport: the Kubernetes Indexed Job and the Slurm
array script. (They also run: tests/test_slurm.py on a real single-node Slurm, tests/test_kubernetes.py
validates the manifests and runs the Job's pods as processes.)"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from gimport.config.load import load_settings

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def test_kubernetes_indexed_job_is_consistent(tmp_path):
    docs = [d for d in yaml.safe_load_all((DEPLOY / "kubernetes" / "indexed-job.yaml").read_text()) if d]
    by_kind = {d["kind"]: d for d in docs}
    job = by_kind["Job"]["spec"]
    assert job["completionMode"] == "Indexed"
    (container,) = job["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    # Kubernetes exports JOB_COMPLETION_INDEX but not the count: the manifest must say it, the same N
    assert int(env["GIMPORT_SHARD_COUNT"]) == job["completions"] == job["parallelism"]
    assert container["command"][-2:] == ["admin", "run"]
    config = container["command"][container["command"].index("--config") + 1]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert any(config.startswith(m) for m in mounts)
    # the embedded config is a valid admin config
    toml = tmp_path / "gimport.toml"
    toml.write_text(by_kind["ConfigMap"]["data"]["gimport.toml"])
    settings = load_settings(toml, env={}, admin=True)
    assert str(settings.admin.state_dir).startswith("/state")


def test_slurm_array_script_is_valid_bash_and_runs_admin():
    script = DEPLOY / "slurm" / "gimport-array.sbatch"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert re.search(r"^#SBATCH --array=\d+-\d+", text, re.MULTILINE)
    assert "admin run" in text
    # the time limit's warning goes to the shell alone, which requeues the task (tests/test_slurm.py)
    assert "#SBATCH --signal=B:USR1@" in text
    assert re.search(r"^trap requeue USR1$", text, re.MULTILINE)
    assert "scontrol requeue" in text
    # Slurm's SIGTERM reaches gimport itself; the shell never forwards one (a second SIGTERM shortens a clean
    # stop to 3 s), it only waits for gimport
    assert re.search(r'^"\$venv/bin/gimport" .* admin run &$', text, re.MULTILINE)
    assert re.search(r"^trap ':' TERM$", text, re.MULTILINE)
    assert "kill -TERM" not in text
    assert "kill -s TERM" not in text
    # the shard count the header tells to configure is the array's size
    low, high = map(int, re.search(r"^#SBATCH --array=(\d+)-(\d+)", text, re.MULTILINE).groups())
    assert (low, f"shard_count = {high + 1}") == (0, re.search(r"shard_count = \d+", text).group(0))
