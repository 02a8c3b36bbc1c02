"""A run left alone on a shared server. `--stats` status lines when stderr is not a terminal (and the
same lines in the log), `gimport status` while a run holds the state file, one line for a run that stops
before importing, secret files others can read refused, `gimport check`, `gimport init`, the TLS/plain hint.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest

from gimport.cli import main
from gimport.config.load import load_settings
from gimport.files import check_secret
from tests.helpers import run, run_process, wait_for
from tests.rig.corpus import make_message
from tests.rig.dovecot import SeedMessage
from tests.rig.workspace import EMAIL, make_workspace
from tests.test_narrow_terminal import run_pty

STATUS_LINE = re.compile(r"gimport: status: (\d[\d,]*)/(\d[\d,]*) messages, .* msg/s")


def seed(imap_user, n: int, folder: str = "INBOX") -> None:
    imap_user.seed(
        folder,
        [
            SeedMessage(make_message(subject=f"m{i}", body=f"body {i}", sender="a@example.org", to="b@example.org"))
            for i in range(n)
        ],
    )


@pytest.fixture
def paced(tmp_path, imap_user, emulator, monkeypatch):
    """A workspace paced to 10 imports/s (15,000 units/min): 80 messages take about 8 s."""
    seed(imap_user, 80)
    w = make_workspace(
        tmp_path,
        server=imap_user.server,
        user=imap_user.name,
        emulator=emulator,
        email=EMAIL,
        quota_units_per_minute=15_000,
        workers=2,
    )
    monkeypatch.setenv("GIMPORT_GMAIL_API_URL", emulator.base_url)
    return w


def test_stats_lines_go_to_stderr_and_to_the_log(paced, emulator):
    err_path = paced.dir / "run.err"
    with open(err_path, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gimport", "--config", str(paced.config), "run", "--stats", "1"],
            env=paced.env(),
            stdout=subprocess.PIPE,
            stderr=err,
        )
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    lines = [m for m in map(STATUS_LINE.search, err_path.read_text().splitlines()) if m]
    assert len(lines) >= 2, err_path.read_text()
    done = [int(m.group(1).replace(",", "")) for m in lines]
    assert done == sorted(done)
    assert all(int(m.group(2)) == 80 for m in lines)
    assert any("ETA " in m.string for m in lines)
    assert any("folder INBOX" in m.string for m in lines)
    logged = [line for line in paced.log.read_text().splitlines() if STATUS_LINE.search(line)]
    assert len(logged) >= 2
    assert len(emulator.user(EMAIL).messages) == 80


def test_stats_zero_prints_no_status_lines(paced):
    proc = run_process(paced, "run", "--stats", "0")
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0
    assert b"gimport: status:" not in err


def test_status_during_a_run_says_a_run_is_in_progress(paced, capsys):
    proc = run_process(paced, "run", "--stats", "0")
    try:

        def transfer_recorded() -> bool:
            if not paced.state.exists():
                return False
            out = subprocess.run(
                [sys.executable, "-c", _READ_PROGRESS, str(paced.state)], capture_output=True, text=True, timeout=30
            ).stdout
            return bool(out.strip()) and json.loads(out).get("total", 0) > 0

        wait_for(transfer_recorded, timeout=60)
        rc, out = run(paced, "status", capsys=capsys)
        text = out.out
        assert rc == 1
        assert re.search(rf"A run is going on now \(pid {proc.pid} on ", text), text
        assert "Started at " in text
        assert "Done so far: " in text
        assert " of 80 message(s)" in text
        assert "Do not start a second run" in text
        assert "run 'gimport run' to continue" not in text
        # a second run is refused harmlessly
        rc, out = run(paced, "run", capsys=capsys)
        assert rc == 2
        assert "already running gimport" in out.err
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    rc, out = run(paced, "status", capsys=capsys)
    last = out.out.split("Source: ")[-1]  # run() echoes what it captured: the earlier outputs come again
    assert "A run is going on now" not in last
    assert "run 'gimport run' to continue" in last


_READ_PROGRESS = """
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
row = db.execute("select value from meta where key = 'run_progress'").fetchone()
print(row[0] if row else "")
"""


def test_a_run_stopped_before_importing_prints_one_line_once(ws, imap_user, emulator, capsys):
    seed(imap_user, 3)
    emulator.revoke_refresh_tokens(EMAIL)
    emulator.expire_access_tokens(EMAIL)
    rc, out = run(ws, "run", capsys=capsys)
    assert rc == 3
    assert "Nothing new to import" not in out.out
    assert "folder" not in out.out
    said = [line for line in out.err.splitlines() if "gimport auth" in line]
    assert len(said) == 1, out.err  # the error once, not twice
    assert said[0].startswith("gimport: ")
    assert said[0].endswith(f"(log: {ws.log})")


# ------------------------------------------------------------------------------- secrets on a shared machine


def test_a_password_file_others_can_read_is_refused(ws, capsys):
    (ws.dir / "imap-password.txt").chmod(0o644)
    rc, out = run(ws, "run", capsys=capsys)
    assert rc == 2
    assert out.err.count("\n") == 1
    assert f"chmod 600 {ws.dir / 'imap-password.txt'}" in out.err
    (ws.dir / "imap-password.txt").chmod(0o640)  # the group is refused too in single-user mode
    rc, out = run(ws, "check", capsys=capsys)
    assert rc == 2
    assert "can be read by its group" in out.err


def test_a_token_file_others_can_read_is_refused(ws, imap_user, capsys):
    (ws.dir / "token.json").chmod(0o644)
    rc, out = run(ws, "run", capsys=capsys)
    assert rc == 2
    assert f"[gmail] token_file {ws.dir / 'token.json'} can be read by others" in out.err
    assert "chmod 600" in out.err
    assert out.err.count("\n") == 1


def test_admin_mode_lets_the_group_read(tmp_path):
    key = tmp_path / "sa.json"
    key.write_text("{}")
    key.chmod(0o440)
    check_secret(key, "[admin] service_account_file", group_ok=True)  # a Kubernetes secret with an fsGroup
    key.chmod(0o444)
    with pytest.raises(Exception, match="can be read by others"):
        check_secret(key, "[admin] service_account_file", group_ok=True)


# ------------------------------------------------------------------------------------------------- check


def test_check_logs_in_to_both_and_counts_changing_nothing(ws, imap_user, emulator, capsys):
    seed(imap_user, 7)
    seed(imap_user, 2, "Work")
    rc, out = run(ws, "check", capsys=capsys)
    assert rc == 0, out.err
    text = out.out
    assert f"Old server: {imap_user.name} on localhost:" in text
    assert "login OK" in text
    assert f"Gmail: {EMAIL}: the token refreshes" in text
    assert "Gmail's IMAP access:" in text
    assert "To import: 9 message(s)" in text
    assert "until about" in text
    assert not ws.state.exists()  # nothing recorded
    assert emulator.user(EMAIL).messages == []
    assert not [lbl for lbl in emulator.user(EMAIL).labels.values() if lbl.get("type") == "user"]


def test_check_exit_codes_are_those_of_run(ws, imap_user, emulator, capsys):
    (ws.dir / "imap-password.txt").write_text("wrong\n")
    rc, out = run(ws, "check", capsys=capsys)
    assert rc == 4
    assert "refused the login" in out.err
    (ws.dir / "imap-password.txt").write_text(imap_user.server.password(imap_user.name) + "\n")
    emulator.revoke_refresh_tokens(EMAIL)
    emulator.expire_access_tokens(EMAIL)
    rc, out = run(ws, "check", capsys=capsys)
    assert rc == 3, out.err


def test_tls_on_the_plain_port_says_what_to_try(ws, imap_user, capsys):
    text = ws.config.read_text().replace(f"port = {imap_user.server.tls_port}", f"port = {imap_user.server.plain_port}")
    ws.config.write_text(text)
    rc, out = run(ws, "check", capsys=capsys)
    assert rc == 4
    assert 'security = "starttls"' in out.err
    assert out.err.count("\n") == 1


def test_plain_on_the_tls_port_says_what_to_try(ws, imap_user, capsys):
    text = ws.config.read_text()
    text = text.replace('security = "ssl"', 'security = "plain"\ntimeout = 1')
    ws.config.write_text(text)
    rc, out = run(ws, "check", capsys=capsys)
    assert rc == 4
    assert 'security = "ssl"' in out.err


# -------------------------------------------------------------------------------------------------- init


def test_init_without_a_terminal_takes_the_options_and_never_overwrites(tmp_path, capsys):
    config = tmp_path / "gimport.toml"
    args = ["--config", str(config), "init", "--host", "mail.example.ac.jp", "--user", "kt12345"]
    assert main([*args, "--password-file", "pw.txt", "--gmail", "kt12345@example.ac.jp"]) == 0
    out = capsys.readouterr().out
    assert f"chmod 600 {tmp_path / 'pw.txt'}" in out
    settings = load_settings(config)
    assert (settings.source.host, settings.source.user, settings.source.security) == (
        "mail.example.ac.jp",
        "kt12345",
        "ssl",
    )
    assert settings.source.password_file == tmp_path / "pw.txt"
    assert settings.gmail.user == "kt12345@example.ac.jp"
    before = config.read_text()
    assert main([*args, "--host", "other"]) == 2
    assert config.read_text() == before
    assert "exists already" in capsys.readouterr().err


def test_init_asks_on_a_terminal_and_writes_the_password_file_0600(tmp_path):
    class Here:
        config = tmp_path / "gimport.toml"

        @staticmethod
        def env():
            return dict(os.environ)

    # host, user, no Gmail address, a file (the default), its name (the default); then the password, once
    # getpass has turned echo off (it flushes what was typed before)
    answers = "mail.example.ac.jp\nkt12345\n\n\n\n"
    rc, text = run_pty(Here, "init", input_text=answers, script=[("IMAP password (saved", "secret-pw\n")])
    assert rc == 0, text
    password = tmp_path / "imap-password.txt"
    assert password.read_text() == "secret-pw\n"
    assert password.stat().st_mode & 0o777 == 0o600
    settings = load_settings(Here.config)
    assert settings.source.user == "kt12345"
    assert settings.source.password_file == password
    assert "secret-pw" not in text  # not echoed
    assert Here.config.stat().st_mode & 0o777 == 0o644


def test_a_resumed_run_says_how_much_was_already_in_gmail(ws, imap_user, capsys):
    seed(imap_user, 5)
    assert run(ws, "run", capsys=capsys)[0] == 0
    seed(imap_user, 3, "Work")
    rc, out = run(ws, "run", capsys=capsys)
    assert rc == 0
    err = out.err.split("gimport: connecting")[-1]  # run() echoes what it captured: the last run only
    assert "gimport: 3 message(s) to import" in err
    assert "gimport: resumed: 5 message(s) already in Gmail" in err


def test_the_status_line_says_when_gmail_asked_to_slow_down(tmp_path, imap_user):
    from tests.rig.gmail_emulator import GmailEmulator

    seed(imap_user, 24)
    emu = GmailEmulator(quota_units_per_minute=6_000)  # Gmail holds 4 imports/s; gimport is told 20/s
    emu.start()
    try:
        w = make_workspace(
            tmp_path, server=imap_user.server, user=imap_user.name, emulator=emu, email=EMAIL,
            quota_units_per_minute=30_000, workers=4,
        )  # fmt: skip
        err_path = w.dir / "run.err"
        with open(err_path, "w") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "gimport", "--config", str(w.config), "run", "--stats", "1"],
                env=w.env(),
                stdout=subprocess.PIPE,
                stderr=err,
            )
            proc.communicate(timeout=180)
        assert proc.returncode == 0, err_path.read_text()
        assert emu.stats.rate_limited > 0
        slowed = [line for line in err_path.read_text().splitlines() if "Gmail asked to slow down" in line]
        assert slowed, err_path.read_text()
        assert all(line.startswith("gimport: status: ") for line in slowed), err_path.read_text()
        assert "Gmail asked to slow down" in w.log.read_text()
    finally:
        emu.stop()
