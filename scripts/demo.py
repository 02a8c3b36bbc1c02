"""gimport end to end against a throwaway Dovecot and the Gmail API emulator."""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gimport.render.table import Column, format_table  # noqa: E402
from gimport.render.text import terminal_width, wrap  # noqa: E402
from tests.rig.corpus import sample_mailbox  # noqa: E402
from tests.rig.dovecot import Dovecot  # noqa: E402
from tests.rig.gmail_emulator import GmailEmulator  # noqa: E402
from tests.rig.workspace import make_workspace  # noqa: E402

EMAIL = "student@example.ac.jp"


def indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def gimport(ws, *args: str) -> int:
    cmd = [sys.executable, "-m", "gimport", "--config", str(ws.config), *args]
    print(f"\n$ gimport {' '.join(args)}", flush=True)
    return subprocess.call(cmd, env=ws.env(), cwd=ws.dir)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--messages", type=int, default=300, help="size of the sample mailbox (default 300)")
    ap.add_argument(
        "--quota",
        type=int,
        default=15_000,
        help="Gmail quota in units/min/user for the emulator and gimport (default 15000, "
        "about 10 imports/s; 6000 for Cloud projects created since May 2026)",
    )
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="gimport-demo-"))
    root.chmod(0o755)
    server = Dovecot(root / "dovecot")
    emu = GmailEmulator(quota_units_per_minute=args.quota)
    try:
        server.add_user("kt12345", separator="/")
        box = sample_mailbox(n=args.messages, seed=1)
        for folder, messages in box.items():
            server.seed("kt12345", folder, messages)
        server.start()
        emu.start()
        emu.add_user(EMAIL)
        ws = make_workspace(
            root / "work", server=server, user="kt12345", emulator=emu, email=EMAIL, quota_units_per_minute=args.quota
        )
        total = sum(len(m) for m in box.values())
        width = terminal_width(sys.stdout)
        print(
            wrap(
                f"Old server: Dovecot on localhost:{server.tls_port} (TLS), user kt12345, {total} messages in "
                f"{len(box)} folders:",
                width,
            )
        )
        print(
            indent(
                format_table(
                    [Column("folder", name=True), Column("messages", right=True)],
                    [[f, str(len(m))] for f, m in box.items()],
                )
            )
        )
        print(
            wrap(
                f"Gmail: the emulator at {emu.base_url} (GIMPORT_GMAIL_API_URL), account {EMAIL}, "
                f"quota {args.quota} units/min",
                width,
            )
        )
        print(f"Config: {ws.config}\n" + "".join(f"  | {line}\n" for line in ws.config.read_text().splitlines()))

        for step in (("plan",), ("run",)):
            rc = gimport(ws, *step)
            if rc != 0:
                print(f"demo: gimport {step[0]} exited {rc}", file=sys.stderr)
                return rc

        user = emu.user(EMAIL)
        by_label = collections.Counter()
        for m in user.messages:
            for lid in m.label_ids:
                label = user.labels[lid]
                by_label[label["name"] if label.get("type") == "user" else lid] += 1
        print(
            wrap(
                f"\nWhat landed in Gmail: {len(user.messages)} messages "
                f"(a message in two folders is one Gmail message with two labels)",
                width,
            )
        )
        rows = [[name, str(n)] for name, n in sorted(by_label.items(), key=lambda kv: (not kv[0].isupper(), kv[0]))]
        print(indent(format_table([Column("label", name=True), Column("messages", right=True)], rows)))

        rc = gimport(ws, "run")  # the second run finds nothing to do
        if rc != 0:
            return rc
        for step in (("status",), ("verify",), ("cleanup", "--yes")):
            rc = gimport(ws, *step)
            if rc != 0:
                print(f"demo: gimport {' '.join(step)} exited {rc}", file=sys.stderr)
                return rc
        print("\ndemo: done; removing the throwaway server, emulator and files")
        return 0
    finally:
        emu.stop()
        server.stop()
        if os.environ.get("GIMPORT_KEEP_DEMO") != "1":
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
