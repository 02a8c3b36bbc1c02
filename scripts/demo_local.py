"""gimport over local mail: a Thunderbird profile's Local Folders and a Google Takeout .zip, made here,
imported into the Gmail API emulator (scripts/demo_local)."""

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
from tests.rig.gmail_emulator import GmailEmulator  # noqa: E402
from tests.rig.localmail import message, takeout_entry, takeout_zip, thunderbird_entry, tree_snapshot  # noqa: E402
from tests.rig.workspace import make_local_workspace  # noqa: E402

EMAIL = "student@example.ac.jp"
TAKEOUT_LABELS = [
    ["受信トレイ", "重要", "開封済み", "カテゴリ: ソーシャル"],
    ["受信トレイ", "未読", "研究室/ゼミ"],
    ["送信済みメール", "開封済み"],
    ["研究室/論文", "スター付き", "開封済み"],
    ["Archived", "Opened"],
    ["迷惑メール", "開封済み"],
    ["Chat", "Opened"],
]


def indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def gimport(ws, *args: str) -> int:
    cmd = [sys.executable, "-m", "gimport", "--config", str(ws.config), *args]
    print(f"\n$ gimport {' '.join(args)}", flush=True)
    return subprocess.call(cmd, env=ws.env(), cwd=ws.dir)


def thunderbird(root: Path, n: int) -> Path:
    local = root / "profile" / "Mail" / "Local Folders"
    (local / "Archives.sbd").mkdir(parents=True)
    inbox = [thunderbird_entry(message(i), 0x1 if i % 3 else 0x0) for i in range(n // 2)]
    inbox.append(thunderbird_entry(message(9999, subject="deleted, not compacted"), 0x9))
    (local / "Inbox").write_bytes(b"".join(inbox))
    (local / "Sent").write_bytes(b"".join(thunderbird_entry(message(n + i), 0x1) for i in range(n // 4)))
    (local / "Archives.sbd" / "2019").write_bytes(
        b"".join(thunderbird_entry(message(2 * n + i), 0x5 if i % 5 == 0 else 0x1) for i in range(n // 4))
    )
    for name in ("Inbox", "Sent", "Archives.sbd/2019"):
        (local / (name + ".msf")).write_text("// mork\n")
    return local


def takeout(root: Path, n: int) -> Path:
    data = b"".join(
        takeout_entry(message(3 * n + i), TAKEOUT_LABELS[i % len(TAKEOUT_LABELS)], thread=i) for i in range(n)
    )
    return takeout_zip(root / "takeout-20261201T000000Z-001.zip", data)


def show_labels(emu: GmailEmulator) -> None:
    user = emu.user(EMAIL)
    by_label = collections.Counter()
    for m in user.messages:
        for lid in m.label_ids or ["(no label: archived)"]:
            label = user.labels.get(lid, {"name": lid})
            by_label[label["name"] if label.get("type") == "user" else lid] += 1
    print(f"\nWhat landed in Gmail: {len(user.messages)} messages")
    rows = [[name, str(k)] for name, k in sorted(by_label.items(), key=lambda kv: (not kv[0].isupper(), kv[0]))]
    print(indent(format_table([Column("label", name=True), Column("messages", right=True)], rows)))


def demo(title: str, kind: str, path: Path, root: Path, tree: Path) -> int:
    emu = GmailEmulator()
    emu.start()
    try:
        emu.add_user(EMAIL)
        ws = make_local_workspace(root / f"work-{kind}", kind=kind, path=path, emulator=emu)
        print(f"\n=== {title}: {path}")
        print(f"Config: {ws.config}\n" + "".join(f"  | {line}\n" for line in ws.config.read_text().splitlines()))
        before = tree_snapshot(tree)
        for step in (("plan",), ("run",)):
            rc = gimport(ws, *step)
            if rc != 0:
                return rc
        show_labels(emu)
        for step in (("run",), ("status",), ("verify",)):
            rc = gimport(ws, *step)
            if rc != 0:
                return rc
        same = tree_snapshot(tree) == before
        print(f"\nSource files unchanged (checksum, size, mode, mtime of every file): {'yes' if same else 'NO'}")
        return 0 if same else 1
    finally:
        emu.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--messages", type=int, default=200, help="messages per source (default 200)")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="gimport-demo-local-"))
    try:
        tb = thunderbird(root / "tb", args.messages)
        rc = demo("Thunderbird Local Folders", "thunderbird", tb, root, root / "tb")
        if rc == 0:
            (root / "takeout").mkdir()
            zipped = takeout(root / "takeout", args.messages)
            rc = demo("Google Takeout (.zip, Japanese labels)", "takeout", zipped, root, root / "takeout")
        print("\ndemo: done; removing the files" if rc == 0 else f"\ndemo: failed ({rc})")
        return rc
    finally:
        if os.environ.get("GIMPORT_KEEP_DEMO") != "1":
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
