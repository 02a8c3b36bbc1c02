"""The state file under attack (and the label limit): the run lock, a lost
or damaged state file, a full disk, files planted on a shared machine. Real Dovecot, the Gmail emulator,
`python -m gimport` as a process: exit codes and stderr as a person sees them."""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import signal
import sqlite3
import subprocess
import sys

import pytest

from tests.helpers import run_process, wait_for
from tests.rig.corpus import sample_mailbox
from tests.rig.gmail_emulator import Fault
from tests.rig.workspace import EMAIL
from tests.test_run import assert_all_imported

NOBODY = 65534


@pytest.fixture
def mailbox(imap_user):
    box = sample_mailbox(n=150, seed=11)
    for folder, messages in box.items():
        imap_user.seed(folder, messages)
    return box


def total(box) -> int:
    """Messages in the mailbox: one copied into several folders is one (imported once)."""
    return len({seed.raw for seeds in box.values() for seed in seeds})


def gimport(ws, *args, timeout=180, **kw):
    """Run `python -m gimport --config <ws> ARGS` to the end: (exit code, stdout, stderr)."""
    proc = run_process(ws, *args, **kw)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out.decode(), err.decode()


def one_line(err: str) -> str:
    """The error a run ends with: its last line, after the progress lines ("gimport: scanning folders");
    no traceback and nothing else after it."""
    assert "Traceback" not in err, err
    assert "Logging error" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, err
    assert lines[-1].startswith("gimport: "), err
    return lines[-1]


def with_paths(ws, *, state=None, log=None):
    """The workspace with [state] path / log_file moved (absolute paths)."""
    text = ws.config.read_text("utf-8")
    if state is not None:
        text = text.replace('path = "gimport-state.sqlite"', f'path = "{state}"')
    if log is not None:
        text = text.replace('log_file = "gimport.log"', f'log_file = "{log}"')
    ws.config.write_text(text, encoding="utf-8")
    return dataclasses.replace(ws, state=state or ws.state, log=log or ws.log)


@pytest.fixture
def small_fs(tmp_path):
    """mount(size) -> a fresh tmpfs of that size (a full disk on demand); unmounted at the end."""
    mounted = []

    def mount(size: str, name: str = "fs"):
        target = tmp_path / f"{name}{len(mounted)}"
        target.mkdir()
        res = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(target)], capture_output=True
        )
        if res.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here to make a full disk: {res.stderr.decode().strip()}")
        mounted.append(target)
        return target

    yield mount
    for target in reversed(mounted):
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


def fill(folder, keep: int) -> None:
    """Fill the filesystem of `folder` until about `keep` bytes are left."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    try:
        with open(folder / "filler", "ab") as fh:
            fh.write(b"\0" * max(0, free - keep))
    except OSError as exc:  # the run filled some of it meanwhile: full is what was wanted
        if exc.errno != errno.ENOSPC:
            raise


# ----------------------------------------------------------------------------------------- 7: the lock


def test_deleting_files_cannot_start_a_second_run_and_status_still_reads(ws, emulator, mailbox):
    # slow enough (150 messages, 8 workers, 1 s each) that the first run is still going at every check; 8 of
    # the emulator's 10 calls at once per user, so that cleanup's own Gmail calls get in
    ws.config.write_text(ws.config.read_text().replace("[gmail]\n", "[gmail]\nworkers = 8\n", 1))
    emulator.faults.add(Fault("slow", method="import", count=None, delay=1.0))
    user = emulator.user(EMAIL)
    first = run_process(ws)
    try:
        wait_for(lambda: user.import_calls >= 3)
        # what a person tidying up might delete: anything that looks like a lock or pid file
        for path in ws.dir.iterdir():
            if path.name.endswith((".lock", ".pid")):
                path.unlink()
        rc, _, err = gimport(ws)
        line = one_line(err)
        assert rc == 2
        assert f"pid {first.pid} on " in line
        assert "is already running gimport" in line
        # cleanup --forget uses the same lock: it refuses while the run holds the state
        rc, out, _ = gimport(ws, "cleanup", "--forget", "--force", "--yes")
        assert rc == 1
        assert "a gimport run is using" in out
        assert ws.state.exists()
        # status reads the state while the run holds the lock (SQLite WAL lets a reader in)
        rc, out, err = gimport(ws, "status")
        assert rc == 1, err
        assert "Source: " in out, err
        assert f"A run is going on now (pid {first.pid} on " in out
        assert first.poll() is None  # all of this while the first run was going
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    emulator.faults.clear()
    rc, _, err = gimport(ws)
    assert rc == 0, err
    assert_all_imported(emulator, mailbox)
    assert len(user.messages) == total(mailbox)  # no second run beside the first: nothing twice


def test_the_lock_is_a_flock_on_the_state_file_itself(tmp_path):
    import fcntl

    from gimport.backends.state.store import StateLock, StateStore

    path = tmp_path / "s.sqlite"
    a, b = StateLock(path), StateLock(path)
    assert a.acquire()
    assert not b.acquire()
    assert StateLock.held(path)
    store = StateStore(path)  # opened under the lock, as a run does
    store.set_meta("k", "v")
    assert "pid " in b.holder()
    assert f"pid {os.getpid()} " in b.holder()
    # the lock is on the state file's own inode: a BSD flock another descriptor of the file cannot take
    fd = os.open(path, os.O_RDONLY)
    with pytest.raises(BlockingIOError):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.close(fd)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("s.sqlite-")) == ["s.sqlite"]
    # probing the lock while the store is open must not drop SQLite's own (POSIX) locks: a second
    # writer is still kept out of a write transaction the store holds
    with store._tx():
        StateLock.held(path)
        other = sqlite3.connect(str(path), timeout=0)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.close()
    store.close()
    a.release()
    assert b.acquire()
    assert not StateLock.held(tmp_path / "none")
    b.release()


# -------------------------------------------------------------------------- 8: a lost state file


def markers(user) -> list[dict]:
    """The marker labels gimport left in the emulated Gmail (gimport.engine.lost_state)."""
    return [dict(lbl) for lbl in list(user.labels.values()) if lbl["name"].startswith("gimport-marker-")]


@pytest.mark.parametrize("how", ["deleted", "emptied", "replaced"])
@pytest.mark.parametrize("where", ["folders", "inbox only"])
def test_a_lost_state_file_does_not_mean_a_full_reimport(ws, emulator, imap_user, how, where):
    box = sample_mailbox(n=60, seed=12)
    if where == "inbox only":  # no user label holds mail: only the marker can tell
        box = {"INBOX": [seed for seeds in box.values() for seed in seeds]}
    for folder, messages in box.items():
        imap_user.seed(folder, messages)
    assert gimport(ws)[0] == 0
    user = emulator.user(EMAIL)
    # one hidden marker, made with the least scopes gimport asks for
    (marker,) = markers(user)
    assert (marker["labelListVisibility"], marker["messageListVisibility"]) == ("labelHide", "hide")
    stored = len(user.messages)
    assert stored == total(box)
    if how == "deleted":
        ws.state.unlink()
        rc, _out, err = gimport(ws, "status")
        line = one_line(err)
        assert rc == 2
        assert "nothing has been run yet" not in line
        assert "is missing, but Gmail holds the marker of a run from this source" in line
    elif how == "emptied":
        ws.state.write_bytes(b"")
    else:  # a state file of another source, or a fresh one
        ws.state.unlink()
        from gimport.backends.state.store import StateStore

        StateStore(ws.state).close()
        rc, out, _err = gimport(ws, "status")
        assert "But Gmail holds the marker of a run from this source" in " ".join(out.split())
    rc, _, err = gimport(ws)
    line = one_line(err)
    assert rc == 2
    assert "Gmail holds the marker of a run from it" in line
    assert "--new-state" in line
    assert len(user.messages) == stored  # stopped before importing anything
    # said on purpose: the run goes ahead, imports everything again, keeps the one marker
    rc, _out, err = gimport(ws, "run", "--new-state")
    assert rc == 0, err
    assert len(user.messages) == stored + total(box)
    assert [m["name"] for m in markers(user)] == [marker["name"]]
    # and the new state file is known from then on
    assert gimport(ws)[0] == 0
    assert len(user.messages) == stored + total(box)


def test_mail_already_in_the_labels_stops_a_first_run(ws, emulator, mailbox):
    """No marker (mail copied by another tool, or a gimport before the marker): the labels tell."""
    assert gimport(ws)[0] == 0
    user = emulator.user(EMAIL)
    calls = user.import_calls
    ws.state.unlink()
    for lid in [lbl["id"] for lbl in markers(user)]:
        del user.labels[lid]
    rc, _, err = gimport(ws)
    line = one_line(err)
    assert rc == 2
    assert "label(s) this run imports into already hold" in line
    assert "imapsync" in line
    assert user.import_calls == calls


def test_a_state_file_deleted_during_the_run_stops_it(ws, emulator, mailbox):
    emulator.faults.add(Fault("slow", method="import", count=None, delay=0.2))  # ~4 s in all
    user = emulator.user(EMAIL)
    proc = run_process(ws)

    def in_user_labels() -> int:
        # INBOX comes first; a lost state is noticed by the user labels (INBOX always holds mail)
        ids = {i for i, lbl in list(user.labels.items()) if lbl.get("type") == "user"}
        return sum(1 for m in list(user.messages) if ids & set(m.label_ids))

    wait_for(lambda: in_user_labels() >= 3)
    ws.state.unlink()
    at_delete = user.import_calls
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, (out + err).decode()
    assert "was deleted during the run" in err.decode()
    assert b"Traceback" not in err
    assert user.import_calls <= at_delete + 8 * 2  # only what was in flight (8 workers)
    emulator.faults.clear()
    rc, _, err = gimport(ws)  # and the next run does not import everything again
    assert rc == 2
    assert "Gmail holds the marker of a run from it" in one_line(err)


# ------------------------------------------------------------------------------- 14: state and disk


def test_one_overwritten_page_is_one_line(ws, emulator, mailbox):
    assert gimport(ws)[0] == 0
    db = sqlite3.connect(ws.state)
    root = db.execute("SELECT rootpage FROM sqlite_schema WHERE name='messages'").fetchone()[0]
    page = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    assert not ws.state.with_name(ws.state.name + "-wal").exists()  # checkpointed: the page is in the file
    with open(ws.state, "r+b") as fh:
        fh.seek((root - 1) * page)
        fh.write(b"\xa5" * page)
    for command in ("status", "run"):
        rc, _, err = gimport(ws, command)
        line = one_line(err)
        assert rc == 2, err
        assert f"the state file {ws.state} is damaged" in line
        assert ".recover" in line
        assert "move it away to start over" not in line


def test_an_empty_state_file_in_status(ws):
    ws.state.write_bytes(b"")
    rc, _, err = gimport(ws, "status")
    line = one_line(err)
    assert rc == 2
    assert "is empty (0 bytes)" in line
    assert "no such table" not in line


@pytest.mark.parametrize("phase", ["scan", "transfer"])
def test_state_on_a_full_filesystem_stops_cleanly(ws, emulator, mailbox, small_fs, phase):
    fs = small_fs("16m")
    w = with_paths(ws, state=fs / "state.sqlite")
    user = emulator.user(EMAIL)
    if phase == "scan":
        fill(fs, 12_000)
        rc, _out, err = gimport(w)
    else:  # the disk fills up while messages are being imported
        emulator.faults.add(Fault("slow", method="import", count=None, delay=0.1))
        proc = run_process(w)
        wait_for(lambda: user.import_calls >= 10)
        fill(fs, 0)
        _out, err = (b.decode() for b in proc.communicate(timeout=120))
        rc = proc.returncode
        emulator.faults.clear()
    line = one_line(err)
    assert rc == 2, err
    assert f"no space left for the state file {w.state}" in line
    assert "nothing is lost" in line
    assert "OperationalError" not in err
    assert (user.import_calls == 0) == (phase == "scan")
    (fs / "filler").unlink()  # room again: the same command finishes the job
    rc, out, err = gimport(w)
    assert rc == 0, err
    assert_all_imported(emulator, mailbox)
    # at most the messages in flight at the stop (reported), twice; at most [gmail] workers (40 by default)
    told = re.search(r"(\d+) import call\(s\) were in flight when an earlier run stopped", out)
    assert len(user.messages) - total(mailbox) <= (int(told.group(1)) if told else 0) <= 40, out


def test_log_on_a_full_disk_is_one_warning(ws, emulator, mailbox, small_fs):
    fs = small_fs("1m")
    w = with_paths(ws, log=fs / "gimport.log")
    fill(fs, 4096)
    rc, out, err = gimport(w)
    assert rc == 0, err
    assert "Logging error" not in err
    assert "Traceback" not in err
    assert err.count(f"cannot write the log file {w.log}") == 1
    assert "Everything selected is in Gmail." in out
    assert_all_imported(emulator, mailbox)


def test_a_read_only_state_folder_is_not_advised_away(ws, emulator, mailbox, small_fs):
    fs = small_fs("16m")
    w = with_paths(ws, state=fs / "state.sqlite")
    rc, _, err = gimport(w)
    assert rc == 0, err
    subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
    rc, _, err = gimport(w)
    line = one_line(err)
    assert rc == 2
    assert f"cannot write the state file {w.state}" in line
    assert "make its folder writable" in line
    assert "move it away to start over" not in line


def test_state_path_that_is_not_a_state_file(ws, emulator):
    w = with_paths(ws, state="/proc/version")
    for command in ("run", "status"):
        rc, _, err = gimport(w, command)
        line = one_line(err)
        assert rc == 2, err
        assert "/proc/version" in line, err


# ------------------------------------------------------------------------------ 15: shared machines


def _plant(path, *, symlink_to=None):
    if symlink_to is not None:
        path.symlink_to(symlink_to)
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o666)
    os.close(fd)
    os.chmod(path, 0o666)
    os.chown(path, NOBODY, NOBODY)


@pytest.mark.parametrize("planted", ["state", "log", "wal", "state-symlink", "log-symlink"])
def test_files_planted_in_a_shared_folder_are_refused(ws, emulator, mailbox, tmp_path, planted):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    w = with_paths(ws, state=shared / "gimport-state.sqlite", log=shared / "gimport.log")
    target = tmp_path / "elsewhere.txt"
    target.write_text("someone else's file\n")
    kind, _, link = planted.partition("-")
    path = {"state": w.state, "log": w.log, "wal": w.state.with_name(w.state.name + "-wal")}[kind]
    _plant(path, symlink_to=target if link else None)
    rc, _, err = gimport(w)
    line = one_line(err)
    assert rc == 2
    assert ("symbolic link" if link else "belongs to another user") in line
    assert emulator.user(EMAIL).import_calls == 0
    assert target.read_text() == "someone else's file\n"
    if not link:
        assert path.stat().st_size == 0
        assert path.stat().st_uid == NOBODY


def test_folders_gimport_creates_are_private_whatever_the_umask(ws, emulator, mailbox, tmp_path):
    w = with_paths(ws, state=tmp_path / "a" / "b" / "state.sqlite", log=tmp_path / "logs" / "x" / "gimport.log")
    rc, _, err = gimport(w, preexec_fn=lambda: os.umask(0))
    assert rc == 0, err
    for folder in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "logs", tmp_path / "logs" / "x"):
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    for path in (w.state, w.log):
        assert path.stat().st_mode & 0o777 == 0o600, path


# ------------------------------------------------------------------------------ Gmail's label limit


def test_a_mapping_over_gmails_label_limit_is_refused_before_importing(ws, emulator, imap_user):
    from tests.rig.corpus import make_message
    from tests.rig.dovecot import SeedMessage

    imap_user.seed("INBOX", [SeedMessage(make_message(subject="s", body="b", sender="a@x.jp", to="b@x.jp"))])
    imap_user.create_folders(["Lists"] + [f"Lists/l{i:05d}" for i in range(10_000)] + ["Work"])
    rc, _out, err = gimport(ws, "plan")
    line = one_line(err)
    assert rc == 2
    assert "needs 10,002 Gmail labels" in line
    assert "10,000 Gmail allows" in line
    assert "'Lists' (10,001 folders)" in line
    assert "[labels.map]" in line
    assert "[labels] exclude" in line
    rc, _out, err = gimport(ws)
    line = one_line(err)
    assert rc == 2
    assert "needs 10,002 Gmail labels" in line
    user = emulator.user(EMAIL)
    assert user.import_calls == 0
    assert not [lbl for lbl in user.labels.values() if lbl.get("type") == "user"]  # nothing created either
    # leaving the lists out brings it under the limit
    with open(ws.config, "a", encoding="utf-8") as fh:
        fh.write('\n[labels]\nexclude = ["Lists", "Lists/*"]\n')
    rc, _out, err = gimport(ws)
    assert rc == 0, err
    assert user.import_calls == 1


def test_label_limit_counts_existing_labels():
    from gimport.config.settings import LabelSettings
    from gimport.contract import Folder
    from gimport.mail.mapping import MAX_USER_LABELS, label_limit_problem, plan_folders

    folders = [Folder(name=f"F{i}") for i in range(10)]
    plans = plan_folders(folders, LabelSettings())
    assert label_limit_problem(plans) is None
    assert label_limit_problem(plans, [f"Mine{i}" for i in range(MAX_USER_LABELS - 10)]) is None
    problem = label_limit_problem(plans, [f"Mine{i}" for i in range(MAX_USER_LABELS - 9)])
    assert problem is not None
    assert "10,001 Gmail labels (10 new, 9,991 there already)" in problem
    # a label that exists already is not counted twice
    assert label_limit_problem(plans, ["f0"] + [f"Mine{i}" for i in range(MAX_USER_LABELS - 10)]) is None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
