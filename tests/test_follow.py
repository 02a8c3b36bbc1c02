"""`gimport run --follow` end to end: a real Dovecot, the Gmail emulator, gimport as a separate process.

New mail delivered while following arrives: in INBOX within seconds (IDLE; the poll is far off), in another
folder within the poll interval; each message exactly once across a SIGKILL and a new follow, and across a
restart of the server; `--until` ends with exit 0; `status` from another process tells the follow.
"""

from __future__ import annotations

import collections
import json
import re
import shutil
import signal
import sqlite3
import tempfile
import time
from pathlib import Path

import pytest

from tests.helpers import run, run_process, wait_for
from tests.rig.corpus import make_message
from tests.rig.dovecot import Dovecot, SeedMessage
from tests.rig.workspace import EMAIL, make_workspace

IDLE_SECONDS = 10.0  # what "within seconds" means here: far below the poll the IDLE tests use


def message(subject: str) -> bytes:
    return make_message(subject=subject, body=f"body of {subject}", sender="a@example.org", to="b@example.org")


def deliver(imap_user, folder: str, subject: str) -> None:
    """New mail arriving in `folder` through the server (APPEND, as a delivery over LMTP updates its index)."""
    client = imap_user.connect()
    try:
        client.append(imap_user.folder_name(folder), message(subject))
    finally:
        client.logout()


def write_behind(imap_user, folder: str, subject: str) -> None:
    """Mail written into the folder on disk while the server is not running (a Maildir file)."""
    imap_user.seed(folder, [SeedMessage(message(subject))])


def subjects(emulator) -> collections.Counter:
    found = collections.Counter()
    for m in emulator.user(EMAIL).messages:
        hit = re.search(rb"^Subject: (.*?)\r?$", m.raw, re.M)
        found[hit.group(1).decode() if hit else ""] += 1
    return found


def follow_record(ws) -> dict | None:
    """The follow's record in the state file, read as another process would (read-only)."""
    if not ws.state.exists():
        return None
    db = sqlite3.connect(f"file:{ws.state}?mode=ro", uri=True, timeout=5)
    try:
        row = db.execute("select value from meta where key = 'follow'").fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        db.close()
    return json.loads(row[0]) if row else None


def following(ws) -> bool:
    record = follow_record(ws)
    return bool(record and record.get("checked") and not record.get("ended") and "idle" in record)


def arrived(emulator, subject: str, timeout: float) -> float:
    """Seconds until `subject` is in Gmail (fails after `timeout`)."""
    t0 = time.monotonic()
    wait_for(lambda: subjects(emulator)[subject] >= 1, timeout=timeout)
    return time.monotonic() - t0


@pytest.fixture
def ws(tmp_path, imap_user, emulator, monkeypatch):
    monkeypatch.setenv("GIMPORT_GMAIL_API_URL", emulator.base_url)  # for the commands run in-process
    for i in range(3):
        write_behind(imap_user, "INBOX", f"old {i}")
    write_behind(imap_user, "Work", "old work")
    return make_workspace(tmp_path, server=imap_user.server, user=imap_user.name, emulator=emulator, email=EMAIL)


def stop(proc, sig=signal.SIGTERM) -> tuple[int, str, str]:
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out.decode(), err.decode()


def test_new_mail_in_inbox_arrives_within_seconds_by_idle(ws, imap_user, emulator, capsys):
    proc = run_process(ws, "run", "--follow", "--poll", "600", "--stats", "0")
    try:
        wait_for(lambda: following(ws), timeout=60)
        assert subjects(emulator) == {"old 0": 1, "old 1": 1, "old 2": 1, "old work": 1}
        assert follow_record(ws)["idle"] is True
        deliver(imap_user, "INBOX", "new 1")
        took = arrived(emulator, "new 1", IDLE_SECONDS)
        deliver(imap_user, "INBOX", "new 2")
        took = max(took, arrived(emulator, "new 2", IDLE_SECONDS))
        wait_for(lambda: follow_record(ws)["imported"] == 2, timeout=10)
        # status from another shell while following
        rc, out = run(ws, "status", capsys=capsys)
        assert re.search(
            r"Follow: following since \d\d:\d\d, last new message \d\d:\d\d \(INBOX\), 2 imported", out.out
        )
        assert "IDLE on INBOX, every folder every 600 s" in out.out
        # cleanup in another shell meanwhile: warned before IMAP goes off
        _rc, out = run(ws, "cleanup", "--dry-run", capsys=capsys)
        assert f"gimport run --follow (pid {proc.pid}) is still importing new mail" in out.out
    finally:
        rc, _out, err = stop(proc)
    assert rc == 130, err
    assert took < IDLE_SECONDS
    assert sum(subjects(emulator).values()) == 6
    log = ws.log.read_text()
    # told by the server in IDLE, or seen when INBOX was opened to wait (mail that came during the last pass)
    assert re.search(r"IDLE: (the server tells of new mail in INBOX|INBOX has new mail since it was scanned)", log)
    keys = re.findall(r"imported folder='INBOX' uid=(\d+) size=\d+ key=INBOX:\d+:(\d+)", log)
    assert sorted(int(uid) for uid, key_uid in keys if uid == key_uid) == [1, 2, 3, 4, 5]
    record = follow_record(ws)
    assert record["ended"]
    assert record["imported"] == 2
    assert record["last_folder"] == "INBOX"


def test_new_mail_in_another_folder_arrives_within_the_poll(ws, imap_user, emulator):
    proc = run_process(ws, "run", "--follow", "--poll", "2", "--stats", "1")
    try:
        wait_for(lambda: following(ws), timeout=60)
        deliver(imap_user, "Work", "new work")
        took = arrived(emulator, "new work", 2 + IDLE_SECONDS / 2)
        imap_user.create_folder("Later")  # a folder made while following: labelled and scanned too
        deliver(imap_user, "Later", "in a new folder")
        arrived(emulator, "in a new folder", 2 + IDLE_SECONDS / 2)
    finally:
        rc, _out, err = stop(proc)
    assert rc == 130, err
    assert took < 2 + IDLE_SECONDS / 2
    assert all(n == 1 for n in subjects(emulator).values()), subjects(emulator)
    assert sum(subjects(emulator).values()) == 6
    user = emulator.user(EMAIL)
    later = next(m for m in user.messages if b"in a new folder" in m.raw)
    assert "Later" in [user.labels[i]["name"] for i in later.label_ids if i in user.labels]
    # --stats lines go on while following, with the follow's figures
    assert re.search(r"gimport: status: .*following since \d\d:\d\d, .*imported while following", err), err


def test_sigkill_while_following_then_a_new_follow_imports_everything_once(ws, imap_user, emulator):
    proc = run_process(ws, "run", "--follow", "--poll", "2", "--stats", "0")
    wait_for(lambda: following(ws), timeout=60)
    deliver(imap_user, "INBOX", "before kill")
    arrived(emulator, "before kill", IDLE_SECONDS)
    # recorded as imported (a message still in flight at a kill is sent again: the documented exception)
    wait_for(lambda: follow_record(ws)["imported"] == 1, timeout=10)
    proc.kill()
    proc.communicate(timeout=30)
    deliver(imap_user, "INBOX", "while down")
    deliver(imap_user, "Work", "while down work")
    proc = run_process(ws, "run", "--follow", "--poll", "2", "--stats", "0")
    try:
        wait_for(lambda: following(ws) and follow_record(ws)["pid"] == proc.pid, timeout=60)
        arrived(emulator, "while down", 5)
        arrived(emulator, "while down work", 5)
        deliver(imap_user, "INBOX", "after restart")
        arrived(emulator, "after restart", IDLE_SECONDS)
    finally:
        rc, _out, err = stop(proc)
    assert rc == 130, err
    found = subjects(emulator)
    assert all(n == 1 for n in found.values()), found
    assert set(found) == {
        "old 0",
        "old 1",
        "old 2",
        "old work",
        "before kill",
        "while down",
        "while down work",
        "after restart",
    }


def test_until_ends_with_exit_0_when_everything_seen_is_in_gmail(ws, imap_user, emulator, capsys):
    until = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() + 8))
    proc = run_process(ws, "run", "--follow", "--poll", "2", "--until", until, "--stats", "0")
    wait_for(lambda: following(ws), timeout=60)
    deliver(imap_user, "Work", "before until")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert subjects(emulator)["before until"] == 1
    assert sum(subjects(emulator).values()) == 5
    assert re.search(r"gimport: followed from \d\d:\d\d to \d\d:\d\d", out.decode())
    rc, out = run(ws, "cleanup", "--dry-run", capsys=capsys)
    assert rc == 0  # a dry run that found nothing in the way
    assert "mail reached the old server after the last import" not in out.out
    # mail after the follow ended (a second later than the last import, as INTERNALDATE counts whole seconds)
    last = max(r[0] for r in sqlite3.connect(ws.state).execute("select updated from messages where updated"))
    wait_for(lambda: time.time() >= last + 1.1, timeout=5)
    deliver(imap_user, "INBOX", "too late")
    _rc, out = run(ws, "cleanup", "--dry-run", capsys=capsys)
    assert re.search(r"mail reached the old server after the last import \(newest: .* in INBOX", out.out)


def test_until_and_poll_are_checked(ws, capsys):
    rc, out = run(ws, "run", "--until", "18:00", capsys=capsys)
    assert rc == 2
    assert "--until goes with --follow" in out.err
    rc, out = run(ws, "run", "--follow", "--until", "tomorrow", capsys=capsys)
    assert rc == 2
    assert "not a time" in out.err
    rc, out = run(ws, "run", "--follow", "--poll", "0.5", capsys=capsys)
    assert rc == 2
    assert "--poll must be at least 1 seconds" in out.err


@pytest.fixture
def own_dovecot():
    """A Dovecot of this test's own: it is restarted under a follow."""
    workdir = Path(tempfile.mkdtemp(prefix="gimport-dovecot-follow-"))
    workdir.chmod(0o755)  # Dovecot's mail processes run as nobody
    dv = Dovecot(workdir)
    dv.start()
    try:
        yield dv
    finally:
        dv.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def test_server_restart_while_following_reconnects_and_new_mail_arrives(tmp_path, own_dovecot, emulator):
    own_dovecot.add_user("fol")
    user = own_dovecot.user("fol")
    write_behind(user, "INBOX", "old")
    ws = make_workspace(tmp_path, server=own_dovecot, user="fol", emulator=emulator, email=EMAIL)
    proc = run_process(ws, "run", "--follow", "--poll", "2", "--stats", "0")
    try:
        wait_for(lambda: following(ws), timeout=60)
        own_dovecot.stop()
        write_behind(user, "INBOX", "while restarting")
        own_dovecot.start()
        arrived(emulator, "while restarting", 60)
        deliver(user, "INBOX", "after restart")
        arrived(emulator, "after restart", IDLE_SECONDS)
        assert proc.poll() is None
    finally:
        rc, _out, err = stop(proc)
    assert rc == 130, err
    found = subjects(emulator)
    assert found == {"old": 1, "while restarting": 1, "after restart": 1}, found
    assert "reconnecting" in ws.log.read_text() or "trying again" in ws.log.read_text()
