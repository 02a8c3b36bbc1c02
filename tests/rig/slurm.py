"""A throwaway single-node Slurm cluster on loopback, for tests: munged, slurmctld and slurmd as root, every
file (config, munge key and socket, state, spool, logs, pid files) in one temp dir; nothing under /etc is read
or written (the commands find the config through SLURM_CONF, the daemons through -f).

    with SlurmCluster(workdir) as slurm:           # starts munged, slurmctld, slurmd; waits for the node
        job = slurm.sbatch(["script.sbatch"], cwd=..., env=...)
        slurm.wait(lambda: slurm.states(job) ..., deadline=...)

Needs Debian's ``slurm-wlm`` (slurmctld, slurmd, client commands) and ``munge``; scripts/test installs them
with apt-get when it can. ``missing()`` says what is not there. One node, ``localhost`` on 127.0.0.1, with
this machine's real CPUs and memory (``slurmd -C``); proctrack/linuxproc and task/none (no cgroups needed),
select/cons_tres, no accounting database (so no sacct: job states come from squeue and ``scontrol show job``,
kept for MinJobAge after the end). Ports are picked free.

Plain library code, no pytest: a failure to start raises SlurmError with the daemons' log tails.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

SLURMCTLD = "/usr/sbin/slurmctld"
SLURMD = "/usr/sbin/slurmd"
MUNGED = "/usr/sbin/munged"
CLIENTS = ("sbatch", "squeue", "scontrol", "scancel", "sinfo")

START_DEADLINE = 60.0
STOP_DEADLINE = 20.0
#: KillWait: seconds between the SIGTERM of scancel/requeue and the SIGKILL. Long enough for a clean stop.
KILL_WAIT = 60
#: AuthInfo cred_expire: a step credential's lifetime, and the delay before a requeued job is eligible again.
CRED_EXPIRE = 10


class SlurmError(RuntimeError):
    """The cluster did not start or a command failed; the message holds the relevant log lines."""


def missing() -> list[str]:
    """The programs this rig needs that are not installed (empty when it can run)."""
    need = [p for p in (SLURMCTLD, SLURMD, MUNGED) if not os.access(p, os.X_OK)]
    need += [c for c in CLIENTS if shutil.which(c) is None]
    return need


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} not readable)"
    return "\n".join(text.splitlines()[-lines:]) or f"({path} empty)"


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent (thread) dies."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def machine_resources() -> tuple[int, int]:
    """(CPUs, RealMemory MB) of this machine as slurmd sees them (`slurmd -C`)."""
    out = subprocess.run([SLURMD, "-C"], capture_output=True, text=True, timeout=30, check=True).stdout
    cpus = re.search(r"\bCPUs=(\d+)", out)
    mem = re.search(r"\bRealMemory=(\d+)", out)
    if not cpus or not mem:
        raise SlurmError(f"cannot read CPUs/RealMemory from 'slurmd -C': {out!r}")
    return int(cpus.group(1)), int(mem.group(1))


class SlurmCluster:
    """munged + slurmctld + slurmd for one node, ``localhost``. Not thread-safe; stop() is idempotent and
    cancels every job first."""

    def __init__(self, workdir: Path | str, *, cluster: str = "gimporttest") -> None:
        self.dir = Path(workdir)
        self.cluster = cluster
        self.conf = self.dir / "slurm.conf"
        self.munge_socket = self.dir / "munge" / "munge.socket.2"
        self._procs: dict[str, subprocess.Popen] = {}

    # ---- environment --------------------------------------------------------------------------------

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """os.environ with SLURM_CONF pointing at this cluster (and no SLURM_* of an outer job)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        env["SLURM_CONF"] = str(self.conf)
        env.update(extra or {})
        return env

    def run(self, *args: str, check: bool = True, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
        """A Slurm client command against this cluster; SlurmError (with stderr) when it fails and check."""
        done = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, env=self.env(), **kw)
        if check and done.returncode != 0:
            raise SlurmError(f"{' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
        return done

    # ---- lifecycle ----------------------------------------------------------------------------------

    def _write_config(self) -> None:
        cpus, memory = machine_resources()
        ctld_port, slurmd_port = _free_ports(2)
        d = self.dir
        for sub in ("munge", "state", "spool", "log", "run"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        # munged insists: its directories are not writable by group/others, the key is 0600 and the owner's
        for sub in ("munge", "state", "spool", "log", "run"):
            (d / sub).chmod(0o700)
        key = d / "munge" / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o600)
        # cred_expire is also how long a requeued job waits before it may start again (Slurm's default, 120 s,
        # would be most of a test's time)
        auth = f"socket={self.munge_socket},cred_expire={CRED_EXPIRE}"
        self.conf.write_text(
            "\n".join(
                [
                    f"ClusterName={self.cluster}",
                    "SlurmctldHost=localhost(127.0.0.1)",
                    f"SlurmctldPort={ctld_port}",
                    f"SlurmdPort={slurmd_port}",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    "AuthType=auth/munge",
                    "CredType=cred/munge",
                    f"AuthInfo={auth}",
                    f"StateSaveLocation={d / 'state'}",
                    f"SlurmdSpoolDir={d / 'spool'}",
                    f"SlurmctldPidFile={d / 'run' / 'slurmctld.pid'}",
                    f"SlurmdPidFile={d / 'run' / 'slurmd.pid'}",
                    f"SlurmctldLogFile={d / 'log' / 'slurmctld.log'}",
                    f"SlurmdLogFile={d / 'log' / 'slurmd.log'}",
                    "SlurmctldDebug=info",
                    "SlurmdDebug=info",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core_Memory",
                    "SchedulerType=sched/backfill",
                    "JobAcctGatherType=jobacct_gather/none",
                    "AccountingStorageType=accounting_storage/none",
                    "JobCompType=jobcomp/none",
                    "MpiDefault=none",
                    "SwitchType=switch/none",
                    "ReturnToService=2",
                    "MailProg=/bin/true",
                    f"KillWait={KILL_WAIT}",
                    "MinJobAge=600",
                    # the scheduler looks at pending jobs at least this often (a requeued task starts soon)
                    "SchedulerParameters=sched_interval=2,bf_interval=2",
                    f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN",
                    "PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.dir / "log" / f"{name}.stderr", "ab")  # noqa: SIM115 - closed with the process
        self._procs[name] = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=self.env(),
            start_new_session=True,
            preexec_fn=_die_with_parent,  # a test runner killed with -9 leaves no daemons behind
        )
        log.close()

    def _logs(self) -> str:
        parts = []
        for name in ("munged.log", "munged.stderr", "slurmctld.log", "slurmctld.stderr", "slurmd.log", "slurmd.stderr"):
            path = self.dir / ("munge" if name.startswith("munged.log") else "log") / name
            if path.exists():
                parts.append(f"--- {name}\n{_tail(path)}")
        return "\n".join(parts)

    def _wait(self, what: str, ok: Callable[[], bool], deadline: float) -> None:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    raise SlurmError(f"{name} exited with {proc.returncode} while waiting for {what}\n{self._logs()}")
            if ok():
                return
            time.sleep(0.1)  # polling a condition, not waiting for time to pass
        raise SlurmError(f"timed out after {deadline:.0f} s waiting for {what}\n{self._logs()}")

    def start(self) -> SlurmCluster:
        """Start the three daemons and wait (with a deadline) until sinfo shows the node idle. SlurmError."""
        if self._procs:
            return self
        self._write_config()
        m = self.dir / "munge"
        try:
            self._spawn(
                "munged",
                [
                    MUNGED,
                    "--foreground",
                    "--force",  # root is fine for a throwaway rig
                    f"--key-file={m / 'munge.key'}",
                    f"--socket={self.munge_socket}",
                    f"--pid-file={m / 'munged.pid'}",
                    f"--log-file={m / 'munged.log'}",
                    f"--seed-file={m / 'munged.seed'}",
                ],
            )
            self._wait("the munge socket", self.munge_socket.exists, START_DEADLINE)
            self._spawn("slurmctld", [SLURMCTLD, "-D", "-i", "-f", str(self.conf)])
            self._wait("slurmctld", lambda: self.run("scontrol", "ping", check=False).returncode == 0, START_DEADLINE)
            self._spawn("slurmd", [SLURMD, "-D", "-N", "localhost", "-f", str(self.conf)])
            self._wait("the node to be idle", self._node_idle, START_DEADLINE)
        except BaseException:
            self.stop()
            raise
        return self

    def _node_idle(self) -> bool:
        out = self.run("sinfo", "--noheader", "--Node", "--format=%N %t", check=False).stdout.split()
        return out[:2] == ["localhost", "idle"]

    def stop(self) -> None:
        """Cancel every job, then stop slurmd, slurmctld and munged (SIGTERM, SIGKILL after a deadline)."""
        if not self._procs:
            return
        if all(p.poll() is None for n, p in self._procs.items() if n in ("munged", "slurmctld")):
            with contextlib.suppress(Exception):
                self.run("scancel", "--full", "--signal=KILL", "--user=root", check=False)
                self.wait_for(lambda: not self.job_ids(), deadline=STOP_DEADLINE, what="jobs to end")
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self._procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(STOP_DEADLINE)
        self._kill_leftover_steps()
        self._procs.clear()

    def _kill_leftover_steps(self) -> None:
        """slurmstepd processes run in their own sessions and outlive slurmd: end those of this cluster (their
        command line names none of our paths; they keep slurmd's log, under our directory, open)."""
        mine = str(self.dir) + os.sep
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                comm = Path(entry.path, "comm").read_text().strip()
                if comm != "slurmstepd":
                    continue
                fds = os.listdir(Path(entry.path, "fd"))
                opened = [os.readlink(Path(entry.path, "fd", fd)) for fd in fds]
            except OSError:
                continue
            if any(o.startswith(mine) for o in opened):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry.name), signal.SIGKILL)

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- jobs ---------------------------------------------------------------------------------------

    def sbatch(self, args: Iterable[str], *, cwd: Path, env: Mapping[str, str] | None = None) -> str:
        """Submit; returns the job id. `env` is added to the submitting environment (sbatch exports it)."""
        done = subprocess.run(
            ["sbatch", "--parsable", *args],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=cwd,
            env=self.env(env),
        )
        if done.returncode != 0:
            raise SlurmError(f"sbatch {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
        return done.stdout.strip().split(";")[0]

    def job_ids(self) -> list[str]:
        return self.run("squeue", "--noheader", "--format=%i", check=False).stdout.split()

    def tasks(self, job: str) -> dict[str, dict[str, str]]:
        """Every task of array job `job` that slurmctld still knows (running, pending or ended less than
        MinJobAge ago): {"<job>_<task>": {"JobState": ..., "ExitCode": ..., "Restarts": ..., ...}}."""
        out = self.run("scontrol", "--oneliner", "show", "job", job, check=False).stdout
        tasks = {}
        for line in out.splitlines():
            fields = dict(re.findall(r"(\w+)=(\S*)", line))
            if "ArrayJobId" in fields and "ArrayTaskId" in fields:
                tasks[f"{fields['ArrayJobId']}_{fields['ArrayTaskId']}"] = fields
            elif "JobId" in fields:
                tasks[fields["JobId"]] = fields
        return tasks

    def wait_for(self, ok: Callable[[], bool], *, deadline: float, what: str) -> None:
        """Poll `ok` until it is true; SlurmError (with the daemons' logs) after `deadline` seconds."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if ok():
                return
            time.sleep(0.2)  # polling a condition, not waiting for time to pass
        raise SlurmError(f"timed out after {deadline:.0f} s waiting for {what}\n{self._logs()}")
