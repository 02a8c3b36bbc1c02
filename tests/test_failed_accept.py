"""Messages Gmail will never take: `gimport failed`, `export-failed`, `accept` (and --undo), the verify
verdict with accepted messages, and the ledger (`report --csv`). Real Dovecot, the emulator, the CLI."""

from __future__ import annotations

import csv
import io
import json
import os
import stat

import pytest

from gimport.backends.state.store import StateStore
from gimport.cli import main
from gimport.cli.ledger import safe_file_name
from gimport.contract import MessageKey
from tests.rig.corpus import make_message
from tests.rig.dovecot import SeedMessage
from tests.rig.gmail_emulator import Fault

SECRET_SUBJECT = "Private medical letter"
POISON = b"X-Poison: yes"  # the emulator rejects (400) every import holding these bytes
# the rig's Maildir++ cannot hold "." in a folder name: ".." is covered by the file-name test below
FOLDERS = ("INBOX", "Projects/2024", "受信/日本語", "a:b (1)")


def msg(n: int, *, poison: bool = False, subject: str = "hello") -> SeedMessage:
    extra = [("X-Poison", "yes")] if poison else []
    raw = make_message(
        subject=f"{subject} {n}",
        body=f"body {n} \u00e9\u3042",
        sender="a@example.jp",
        to="b@example.jp",
        message_id=f"<f{n}@test.invalid>",
        extra_headers=extra,
    )
    return SeedMessage(raw, ("\\Seen",))


def cli(ws, *args, capsys):
    rc = main(["--config", str(ws.config), *args])
    return rc, capsys.readouterr()


@pytest.fixture
def mailbox(imap_user, emulator):
    """Two good messages per folder and one Gmail rejects in each but INBOX."""
    n = 0
    for folder in FOLDERS:
        batch = []
        for poison in (False, folder != "INBOX", False):
            n += 1
            batch.append(msg(n, poison=poison, subject=SECRET_SUBJECT if poison else "hello"))
        imap_user.seed(folder, batch)
    emulator.faults.add(Fault("400", method="import", count=None, match=POISON))
    return imap_user


def problem_keys(ws) -> list[MessageKey]:
    state = StateStore.open_readonly(ws.state)
    try:
        (account,) = state.accounts()
        return [r.key for r in state.ledger(account, statuses=("failed", "skipped"))]
    finally:
        state.close()


def served(user, folder: str) -> dict[int, bytes]:
    """What the server serves for each UID of a folder (read-only, PEEK)."""
    client = user.connect()
    try:
        client.select_folder(user.folder_name(folder), readonly=True)
        data = client.fetch(client.search("ALL"), ["BODY.PEEK[]"])
        return {uid: d[b"BODY[]"] for uid, d in data.items()}
    finally:
        client.logout()


def test_failed_lists_them_by_key_and_export_failed_writes_them_byte_exact(ws, emulator, mailbox, tmp_path, capsys):
    assert cli(ws, "run", capsys=capsys)[0] == 1
    keys = problem_keys(ws)
    assert sorted(k.folder for k in keys) == sorted(f for f in FOLDERS if f != "INBOX")
    rc, out = cli(ws, "failed", capsys=capsys)
    assert rc == 1
    for key in keys:
        assert str(key) in out.out
    assert "rejected by Gmail" in out.out
    assert SECRET_SUBJECT not in out.out + out.err

    before = mailbox.snapshot()
    target = tmp_path / "kept"
    rc, out = cli(ws, "export-failed", str(target), capsys=capsys)
    assert rc == 0, out.out
    files = sorted(p.name for p in target.iterdir())
    assert files == sorted(safe_file_name(k) for k in keys)
    assert all("/" not in f and not f.startswith(".") for f in files)
    for key in keys:
        data = (target / safe_file_name(key)).read_bytes()
        assert data == served(mailbox, key.folder)[key.uid]
        assert POISON in data
        assert stat.S_IMODE(os.stat(target / safe_file_name(key)).st_mode) == 0o600
    assert mailbox.snapshot() == before  # read-only: flags and contents as they were


def test_accepting_lets_run_and_verify_pass_and_undo_puts_one_back(ws, emulator, mailbox, capsys):
    assert cli(ws, "run", capsys=capsys)[0] == 1
    keys = problem_keys(ws)
    first, rest = keys[0], keys[1:]
    assert cli(ws, "verify", capsys=capsys)[0] == 1
    assert cli(ws, "cleanup", "--dry-run", "--revoke", "--forget", capsys=capsys)[0] == 1  # blocked

    rc, out = cli(ws, "accept", str(first), capsys=capsys)
    assert rc == 0
    assert f"{first}: accepted as not in Gmail" in out.out
    assert cli(ws, "run", capsys=capsys)[0] == 1  # the others still fail
    imports = emulator.stats.snapshot()["requests"]["messages.import"]
    rc, out = cli(ws, "accept", "--all-failed", capsys=capsys)
    assert rc == 0
    assert all(str(k) in out.out for k in rest)

    rc, out = cli(ws, "run", capsys=capsys)
    assert rc == 0, out.out
    assert emulator.stats.snapshot()["requests"]["messages.import"] == imports  # accepted: not retried
    assert f"{len(keys)} message(s) accepted as not in Gmail" in out.out

    rc, out = cli(ws, "verify", capsys=capsys)
    assert rc == 0, out.out
    assert f"Accepted, not in Gmail: {len(keys)} message(s)" in out.out
    for key in keys:
        assert str(key) in out.out
    assert "accepted as not in Gmail (listed above)" in out.out
    data = json.loads(cli(ws, "verify", "--json", capsys=capsys)[1].out)
    assert data["passed"]
    assert sorted(a["key"] for a in data["accepted"]) == sorted(str(k) for k in keys)
    assert cli(ws, "status", capsys=capsys)[0] == 0
    rc, out = cli(ws, "cleanup", "--dry-run", "--revoke", "--forget", capsys=capsys)
    assert rc == 0, out.out  # verify passes: revoking and forgetting are allowed now

    # accepting twice, or a key that is not failed, is refused and named
    rc, out = cli(ws, "accept", str(first), "INBOX:1:1", capsys=capsys)
    assert rc == 1
    assert "accepted already" in out.err
    assert "not recorded as failed or skipped" in out.err
    rc, out = cli(ws, "accept", "not-a-key", capsys=capsys)
    assert rc == 2
    assert "FOLDER:UIDVALIDITY:UID" in out.err

    # undo one: the next run tries it again (the server-side fault is gone now: it is imported)
    emulator.faults.clear()
    rc, out = cli(ws, "accept", "--undo", str(first), capsys=capsys)
    assert rc == 0
    assert "tries it again" in out.out
    rc, out = cli(ws, "run", capsys=capsys)
    assert rc == 0
    assert emulator.stats.snapshot()["requests"]["messages.import"] == imports + 1
    data = json.loads(cli(ws, "verify", "--json", capsys=capsys)[1].out)
    assert data["passed"]
    assert len(data["accepted"]) == len(keys) - 1


def test_report_csv_has_one_row_per_message_and_no_contents(ws, emulator, mailbox, tmp_path, capsys):
    assert cli(ws, "run", capsys=capsys)[0] == 1
    keys = problem_keys(ws)
    cli(ws, "accept", str(keys[0]), capsys=capsys)
    path = tmp_path / "ledger.csv"
    rc, _out = cli(ws, "report", "--csv", str(path), capsys=capsys)
    assert rc == 0
    text = path.read_text("utf-8")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SECRET_SUBJECT not in text
    assert "a@example.jp" not in text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == [
        "folder",
        "uid",
        "uidvalidity",
        "message_id",
        "size",
        "status",
        "gmail_id",
        "reason",
        "time",
        "changed",
    ]
    assert len(rows) == 3 * len(FOLDERS), [(r["folder"], r["uid"], r["status"]) for r in rows]
    stored = {m.id for m in emulator.user("student@example.ac.jp").messages}
    imported = [r for r in rows if r["status"] == "imported"]
    assert len(imported) == 3 * len(FOLDERS) - len(keys)
    assert {r["gmail_id"] for r in imported} <= stored
    assert all(r["time"].endswith("Z") and int(r["size"]) > 0 for r in rows)
    by_key = {f"{r['folder']}:{r['uidvalidity']}:{r['uid']}": r for r in rows}
    assert by_key[str(keys[0])]["status"] == "accepted"
    assert by_key[str(keys[0])]["reason"].startswith("failed: ")
    assert all(by_key[str(k)]["status"] == "failed" for k in keys[1:])
    assert {r["folder"] for r in rows} == set(FOLDERS)


@pytest.mark.parametrize(
    "folder",
    ["..", "../../etc/passwd", "/", "a/b", "a:b", "受信/日本語", ".hidden", "CON", "x" * 400, "\x00\n"],
)
def test_export_file_names_are_safe_and_distinct(folder):
    name = safe_file_name(MessageKey("u@h", folder, 7, 9))
    assert "/" not in name
    assert "\x00" not in name
    assert "\n" not in name
    assert not name.startswith(".")
    assert name.endswith(".7.9.eml")
    assert len(name.encode("utf-8")) <= 200
    assert name != safe_file_name(MessageKey("u@h", folder + "x", 7, 9))
    if folder == "受信/日本語":
        assert name == "受信%2F日本語.7.9.eml"
