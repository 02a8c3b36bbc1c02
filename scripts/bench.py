"""Benchmark: prints figures, asserts nothing (see README.md, "Performance").

1. unlimited quota: messages/s, MB/s, peak RSS of the gimport process;
2. the rerun with nothing to do;
3. against a quota of N units/min: achieved rate / ceiling and the 429s received.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gimport.auth import SCOPES, write_private  # noqa: E402
from tests.rig.corpus import realistic_mailbox  # noqa: E402
from tests.rig.dovecot import Dovecot  # noqa: E402

EMAIL = "bench@example.ac.jp"
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Emulator:
    """The emulator as a separate process, so it does not share a core (or the GIL) with gimport."""

    def __init__(self, quota: int | None) -> None:
        cmd = [sys.executable, "-m", "tests.rig.gmail_emulator", "--port", "0", "--user", EMAIL, "--no-merge"]
        if quota:
            cmd += ["--quota-units-per-minute", str(quota)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1])
        line = self.proc.stdout.readline()
        m = re.search(r"(http://\S+/)", line)
        if not m:
            raise SystemExit(f"emulator did not start: {line!r}")
        self.base_url = m.group(1)

    def call(self, method: str, path: str, body: dict | None = None) -> object:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with _opener.open(req, timeout=30) as resp:
            return json.loads(resp.read())

    def token(self) -> dict:
        return self.call("POST", "_emulator/users", {"email": EMAIL, "scopes": list(SCOPES)})

    def stats(self) -> dict:
        return self.call("GET", "_emulator/stats")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)


def workspace(d: Path, server: Dovecot, user: str, emu: Emulator, quota: int) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    write_private(d / "pw.txt", server.password(user))
    write_private(d / "token.json", json.dumps(emu.token()))
    cfg = d / "gimport.toml"
    cfg.write_text(
        f'[source]\nhost = "localhost"\nport = {server.tls_port}\nca_file = "{server.ca_file}"\n'
        f'user = "{user}"\npassword_file = "pw.txt"\n[gmail]\nquota_units_per_minute = {quota}\n'
    )
    return cfg


def run_gimport(cfg: Path, emu: Emulator, *args: str) -> tuple[float, int, int]:
    """(seconds, exit code, peak RSS in KB) of one gimport process."""
    env = dict(os.environ, GIMPORT_GMAIL_API_URL=emu.base_url)
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gimport", "--config", str(cfg), *(args or ("run",))],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.monotonic() - start, proc.returncode, usage.ru_maxrss


def import_times(log: Path) -> list[dt.datetime]:
    """When each import finished, from the log file."""
    return [
        dt.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
        for line in log.read_text("utf-8").splitlines()
        if " INFO imported folder=" in line
    ]


def rate(stamps: list[dt.datetime], skip: float = 0.0) -> float:
    """Imports per second between the first and last stamp, leaving out the first `skip` fraction
    (the pacer's initial burst)."""
    stamps = stamps[int(len(stamps) * skip) :]
    window = (stamps[-1] - stamps[0]).total_seconds() if len(stamps) > 1 else 0.0
    return (len(stamps) - 1) / window if window else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--avg-kb", type=float, default=20)
    ap.add_argument("--quota", type=int, default=120_000, help="units/min for the quota run (default 120000)")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="gimport-bench-"))
    root.chmod(0o755)
    server = Dovecot(root / "dovecot")
    emus: list[Emulator] = []
    try:
        server.add_user("bench", separator="/")
        box = realistic_mailbox(n=args.messages, avg_kb=args.avg_kb, seed=1)
        t = time.monotonic()
        for folder, msgs in box.items():
            server.seed("bench", folder, msgs)
        server.start()
        sizes = [len(m.raw) for msgs in box.values() for m in msgs]
        total_mb = sum(sizes) / 1e6
        print(
            f"mailbox: {len(sizes)} messages in {len(box)} folders, {total_mb:.1f} MB, "
            f"avg {sum(sizes) / len(sizes) / 1024:.1f} KiB, largest {max(sizes) / 1e6:.2f} MB "
            f"(seeded in {time.monotonic() - t:.2f} s)"
        )
        print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")

        # 1. unlimited
        emu = Emulator(quota=None)
        emus.append(emu)
        cfg = workspace(root / "unlimited", server, "bench", emu, quota=100_000_000)
        secs, rc, rss = run_gimport(cfg, emu)
        stored = emu.stats()
        stamps = import_times(cfg.parent / "gimport.log")
        n = len(stamps)
        print("\n[unlimited quota]")
        print(
            f"  exit code {rc}; {n} imported in {secs:.2f} s wall "
            f"({n / secs:.0f} msg/s, {total_mb / secs:.1f} MB/s end to end, process start included; "
            f"{rate(stamps):.0f} msg/s during the transfer)"
        )
        print(f"  peak RSS {rss / 1024:.0f} MB (budget: 200 MB + 2 x largest = {200 + 2 * max(sizes) / 2**20:.0f} MB)")
        print(f"  emulator: {json.dumps(stored.get('requests'))}, 429s {stored.get('rate_limited')}")

        # 2. nothing to do
        secs2, rc2, _ = run_gimport(cfg, emu)
        print("\n[rerun with nothing to do]")
        print(f"  exit code {rc2}; {secs2:.2f} s for {len(sizes)} recorded messages (process start included)")
        emu.stop()
        emus.remove(emu)

        # 3. against a quota
        emu = Emulator(quota=args.quota)
        emus.append(emu)
        cfg = workspace(root / "quota", server, "bench", emu, quota=args.quota)
        secs3, rc3, _ = run_gimport(cfg, emu)
        st = emu.stats()
        stamps3 = import_times(cfg.parent / "gimport.log")
        calls = st["requests"].get("messages.import", 0)
        ceiling = args.quota / 60 / 25
        achieved, steady = rate(stamps3), rate(stamps3, skip=0.2)
        print(f"\n[quota {args.quota} units/min = ceiling {ceiling:.1f} imports/s]")
        print(
            f"  exit code {rc3}; {len(stamps3)} imported in {secs3:.1f} s wall "
            f"= {len(stamps3) / secs3 / ceiling:.1%} of the ceiling end to end"
        )
        print(
            f"  during the transfer {achieved:.2f} imports/s = {achieved / ceiling:.1%} of the ceiling; "
            f"steady state (after the first 20%) {steady:.2f}/s = {steady / ceiling:.1%}"
        )
        print(
            f"  429s: {st.get('rate_limited')} of {calls} import calls ({st.get('rate_limited', 0) / max(calls, 1):.2%})"
        )
        return 0
    finally:
        for e in emus:
            e.stop()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
