"""The integration tests that matter, on both real servers (Dovecot and Cyrus, tests/conftest.py `any_server_user`):
a full migration byte-exact against what each server serves, flags, Japanese folders, resume, verify. Cyrus's
personal-namespace prefix ``INBOX.`` must not end up in label names (gimport reads NAMESPACE)."""

from __future__ import annotations

import base64
import collections
import datetime as dt
import email.utils
import hashlib
import signal

from tests.helpers import run as _run_echoing
from tests.helpers import run_process, wait_for
from tests.rig.dovecot import SeedMessage
from tests.rig.gmail_emulator import Fault
from tests.rig.workspace import EMAIL, make_workspace

# logical folder -> the labels the README promises for it
FOLDERS = {
    "INBOX": ["INBOX"],
    "Sent": ["SENT"],
    "Archive/2020": ["Archive (imported)/2020"],
    "仕事/報告書": ["仕事/報告書"],
    "個人/旅行 2024": ["個人/旅行 2024"],
}
JST = dt.timezone(dt.timedelta(hours=9))


def run(ws, *args, capsys=None):
    if capsys is not None:
        capsys.readouterr()
    return _run_echoing(ws, *args, capsys=capsys)


def _msg(folder: str, i: int) -> bytes:
    subject = f"=?UTF-8?B?{base64.b64encode(f'{folder} の {i}'.encode()).decode()}?="
    tag = hashlib.sha256(folder.encode()).hexdigest()[:8]
    body = f"本文 {i}\r\n".encode() + b"line with trailing space \r\n" + b"x" * (i * 37 % 500) + b"\r\n"
    return (
        f"Date: {email.utils.format_datetime(dt.datetime(2021, 2, 1 + i % 9, 10, tzinfo=JST))}\r\n"
        f"Message-ID: <{i}.{tag}@servers.test>\r\n"
        f"From: a@example.org\r\nSubject: {subject}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    ).encode() + body


def _seed(user, per_folder: int = 6) -> dict[str, list[SeedMessage]]:
    box = {}
    for n, folder in enumerate(FOLDERS):
        seeds = []
        for i in range(per_folder):
            flags = [f for f, on in (("\\Seen", i % 2 == 0), ("\\Flagged", i % 3 == 0)) if on]
            when = dt.datetime(2021, 2, 1 + i, 9, 30, tzinfo=JST)
            seeds.append(SeedMessage(_msg(folder, n * 100 + i), tuple(flags), internaldate=when))
        seeds = [s for s in seeds if user.server.can_store(s.raw)]
        user.seed(folder, seeds)
        box[folder] = seeds
    return box


def _ws(tmp_path, user, emulator, monkeypatch):
    ws = make_workspace(tmp_path, server=user.server, user=user.name, emulator=emulator, email=EMAIL)
    monkeypatch.setenv("GIMPORT_GMAIL_API_URL", emulator.base_url)
    return ws


def _labels(emulator, stored) -> list[str]:
    labels = emulator.user(EMAIL).labels
    return sorted(labels[i]["name"] if labels[i].get("type") == "user" else i for i in stored.label_ids)


def _assert_as_served(emulator, user) -> None:
    """Every message each server serves is in Gmail once, byte for byte, with its folder's labels and flags."""
    snapshot = user.server.snapshot(user.name)
    by_hash = collections.defaultdict(list)
    for m in emulator.user(EMAIL).messages:
        by_hash[hashlib.sha256(m.raw).hexdigest()].append(m)
    expected = 0
    for folder, labels in FOLDERS.items():
        for entry in snapshot[user.folder_name(folder)]:
            expected += 1
            got = by_hash.get(entry.sha256, [])
            assert len(got) == 1, (folder, entry.uid, len(got))
            want = list(labels)
            flags = {f.lower() for f in entry.flags}
            if "\\seen" not in flags:
                want.append("UNREAD")
            if "\\flagged" in flags:
                want.append("STARRED")
            assert _labels(emulator, got[0]) == sorted(want), (folder, entry.uid)
    assert len(emulator.user(EMAIL).messages) == expected
    names = [lbl["name"] for lbl in emulator.user(EMAIL).labels.values() if lbl.get("type") == "user"]
    assert not any(n.upper().startswith("INBOX") for n in names), names  # no "INBOX." prefix from Cyrus


def test_full_migration_byte_exact_flags_japanese_folders_and_verify(
    tmp_path, any_server_user, emulator, monkeypatch, capsys
):
    _seed(any_server_user)
    before = any_server_user.server.snapshot(any_server_user.name)
    ws = _ws(tmp_path, any_server_user, emulator, monkeypatch)
    rc, out = run(ws, capsys=capsys)
    assert rc == 0, out.out + out.err
    _assert_as_served(emulator, any_server_user)
    assert any_server_user.server.snapshot(any_server_user.name) == before  # read-only
    rc, out = run(ws, "verify", capsys=capsys)
    assert rc == 0, out.out
    calls = emulator.user(EMAIL).import_calls
    rc, out = run(ws, capsys=capsys)
    assert rc == 0
    assert emulator.user(EMAIL).import_calls == calls


def test_resume_after_sigterm(tmp_path, any_server_user, emulator, monkeypatch, capsys):
    _seed(any_server_user, per_folder=12)
    ws = _ws(tmp_path, any_server_user, emulator, monkeypatch)
    emulator.faults.add(Fault("slow", method="import", count=None, delay=0.05))
    proc = run_process(ws)
    try:
        wait_for(lambda: emulator.user(EMAIL).import_calls >= 10, timeout=60)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        assert proc.returncode == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    emulator.faults.clear()
    assert 0 < len(emulator.user(EMAIL).messages) < 12 * len(FOLDERS)
    rc, out = run(ws, capsys=capsys)
    assert rc == 0, out.out + out.err
    _assert_as_served(emulator, any_server_user)
    rc, out = run(ws, "verify", capsys=capsys)
    assert rc == 0, out.out


def test_a_folder_whose_uidvalidity_changed_is_matched_by_content(
    tmp_path, any_server_user, emulator, monkeypatch, capsys
):
    """On real servers: a new UIDVALIDITY after a run: nothing is sent again, verify passes."""
    _seed(any_server_user)
    ws = _ws(tmp_path, any_server_user, emulator, monkeypatch)
    assert run(ws, capsys=capsys)[0] == 0
    calls = emulator.user(EMAIL).import_calls
    any_server_user.server.reset_uidvalidity(any_server_user.name, "仕事/報告書")
    rc, out = run(ws, capsys=capsys)
    assert rc == 0, out.out + out.err
    assert emulator.user(EMAIL).import_calls == calls
    rc, out = run(ws, "verify", capsys=capsys)
    assert rc == 0, out.out
