"""`gimport admin` end to end: the real Dovecot, the Gmail emulator, a service-account token exchange (jwt-bearer)
through the real google-auth, and the real client libraries.

Users are impersonated with a freshly generated service-account key whose token_uri is the emulator's.
"""

from __future__ import annotations

import collections
import csv
import io
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from gimport.admin.shards import shard_of
from gimport.cli import main
from tests.helpers import wait_for
from tests.rig.admin_workspace import Person, make_admin_workspace
from tests.rig.corpus import make_message
from tests.rig.dovecot import Dovecot, SeedMessage
from tests.rig.gmail_emulator import Fault, GmailEmulator

DOMAIN = "campus.example.ac.jp"


def small_box(name: str, n: int) -> dict[str, list[SeedMessage]]:
    """n messages over INBOX, Sent and Work/Reports, distinct per user."""
    folders = {"INBOX": [], "Sent": [], "Work/Reports": []}
    for i in range(n):
        folder = list(folders)[i % 3]
        raw = make_message(subject=f"{name} message {i}", body=f"body {i} of {name}", sender="a@x.jp", to="b@x.jp")
        folders[folder].append(SeedMessage(raw, ("\\Seen",) if i % 4 else ()))
    return folders


def new_user(server: Dovecot, n: int, prefix: str = "adm") -> tuple[str, str, dict]:
    name = f"{prefix}{secrets.token_hex(3)}"
    password = server.add_user(name)
    box = small_box(name, n)
    for folder, msgs in box.items():
        server.seed(name, folder, msgs)
    return name, password, box


def campus(tmp_path, dovecot_server, emulator, sizes, prefix, **kw):
    """New users with mailboxes of `sizes` messages, their Gmail accounts and an admin workspace over them:
    (workspace, people, mailboxes)."""
    users = [new_user(dovecot_server, n, prefix=prefix) for n in sizes]
    people = [Person(name, f"{name}@{DOMAIN}", pw) for name, pw, _ in users]
    for p in people:
        emulator.add_user(p.gmail)
    ws = make_admin_workspace(tmp_path, server=dovecot_server, emulator_url=emulator.base_url, people=people, **kw)
    return ws, people, [box for _, _, box in users]


def run(ws, *args, capsys=None):
    rc = main(["--config", str(ws.config), "admin", *args])
    return rc, capsys.readouterr() if capsys else None


def run_process(ws, emu_url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    import os

    base = dict(os.environ, GIMPORT_GMAIL_API_URL=emu_url)
    for k in ("REQUESTS_CA_BUNDLE", "JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID", "GIMPORT_SHARD"):
        base.pop(k, None)
    env = {**base, **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "gimport", "--config", str(ws.config), "admin", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=Path(__file__).parents[1],
    )


def report_rows(path: Path) -> dict[str, dict[str, str]]:
    return {r["gmail_address"]: r for r in csv.DictReader(io.StringIO(path.read_text("utf-8")))}


def assert_exactly_once(emu: GmailEmulator, gmail: str, box: dict[str, list[SeedMessage]]) -> None:
    """Every seeded message is in this Gmail account exactly once (byte-exact), nothing else is."""
    stored = collections.Counter(m.raw for m in emu.user(gmail).messages)
    seeded = collections.Counter(m.raw for msgs in box.values() for m in msgs)
    assert stored == seeded


@pytest.fixture
def emulator(campus_emulator):
    """The admin tests' emulator (tests/conftest.py)."""
    return campus_emulator


def test_campus_run_isolates_failures_resumes_and_reports(tmp_path, dovecot_server, emulator, capsys):
    """Three good users, one wrong IMAP password, one Gmail account without mail service, one address Google
    does not know: the good ones are migrated exactly once, each failure is recorded with its reason; a rerun
    sends nothing again; fixing the password migrates that user; status, verify and cleanup follow."""
    good = [new_user(dovecot_server, 12) for _ in range(3)]
    badpw = new_user(dovecot_server, 6)
    nomail = new_user(dovecot_server, 6)
    unknown = new_user(dovecot_server, 3)
    people = [Person(name, f"{name}@{DOMAIN}", pw) for name, pw, _ in good]
    people.append(Person(badpw[0], f"{badpw[0]}@{DOMAIN}", "not-the-password"))
    people.append(Person(nomail[0], f"{nomail[0]}@{DOMAIN}", nomail[1], inline=True))
    people.append(Person(unknown[0], f"ghost-{unknown[0]}@{DOMAIN}", unknown[1]))
    for p in people[:-1]:
        emulator.add_user(p.gmail)
    emulator.user(people[4].gmail).exists = False
    ws = make_admin_workspace(
        tmp_path, server=dovecot_server, emulator_url=emulator.base_url, people=people, parallel_users=3
    )
    before = dovecot_server.user(good[0][0]).snapshot()

    rc, out = run(ws, "run", capsys=capsys)
    assert rc == 1
    for (_, _, box), p in zip(good, people, strict=False):
        assert_exactly_once(emulator, p.gmail, box)
    assert dovecot_server.user(good[0][0]).snapshot() == before  # the source is only read
    rows = report_rows(ws.report)
    assert set(rows) == {p.gmail for p in people}
    assert [rows[p.gmail]["outcome"] for p in people] == ["complete"] * 3 + ["failed"] * 3
    assert rows[people[0].gmail]["imported"] == "12"
    assert rows[people[0].gmail]["to_do"] == "0"
    assert "refused the login" in rows[people[3].gmail]["error"]
    assert "line 5" in rows[people[3].gmail]["error"]
    assert "Mail service not enabled" in rows[people[4].gmail]["error"]
    assert "invalid_grant" in rows[people[5].gmail]["error"]
    assert emulator.user(people[4].gmail).messages == []
    # a line per user as it finishes, then the table
    for p in people:
        assert p.gmail in out.err
    assert out.err.count("[done") == len(people)
    assert "FAILED" in out.err
    assert "Users: 3 failed, 3 complete." in out.out
    # the impersonation used exactly gimport's scopes, through the jwt-bearer grant
    assert emulator.stats.snapshot()["requests"].get("oauth.token", 0) >= len(people)
    # logs: one per user, and no password anywhere
    user_log = (ws.state_dir / f"{people[0].gmail}.log").read_text()
    assert user_log.count(" imported folder=") == 12
    for p in people:
        assert nomail[1] not in (ws.state_dir / f"{p.gmail}.log").read_text()
    assert nomail[1] not in ws.log.read_text()
    assert "refused the login" in ws.log.read_text()

    # rerun: nothing is sent again for the complete users
    calls = {p.gmail: emulator.user(p.gmail).import_calls for p in people[:3]}
    rc, out = run(ws, "run", capsys=capsys)
    assert rc == 1
    assert {p.gmail: emulator.user(p.gmail).import_calls for p in people[:3]} == calls
    assert report_rows(ws.report)[people[0].gmail]["imported_last_run"] == "0"

    # fix the password: that user is migrated, the others stay as they are
    (ws.dir / "passwords" / f"{badpw[0]}.txt").write_text(badpw[1] + "\n")
    rc, out = run(ws, "run", capsys=capsys)
    assert rc == 1  # the two Gmail-side failures remain
    assert_exactly_once(emulator, people[3].gmail, badpw[2])
    assert {p.gmail: emulator.user(p.gmail).import_calls for p in people[:3]} == calls
    assert report_rows(ws.report)[people[3].gmail]["outcome"] == "complete"

    # status: the same report, from the state files alone (no network at all)
    report = ws.report.read_text("utf-8")
    emulator.stop()
    rc, out = run(ws, "status", "--csv", capsys=capsys)
    assert rc == 1
    assert out.out == report
    rc, out = run(ws, "status", capsys=capsys)
    assert "Users: 2 failed, 4 complete." in out.out
    emulator.start()

    # verify and cleanup apply the single-user commands to every user
    rc, out = run(ws, "verify", capsys=capsys)
    assert rc == 1
    verdicts = {line.split()[0]: line.split()[2] for line in out.out.splitlines() if DOMAIN in line}
    assert [verdicts[p.gmail] for p in people[:4]] == ["verified"] * 4
    assert verdicts[people[4].gmail] == "failed"
    rc, out = run(ws, "cleanup", "--dry-run", capsys=capsys)
    assert all(emulator.user(p.gmail).imap["enabled"] for p in people[:4])
    assert out.out.count("IMAP on: disable it") == 4
    rc, out = run(ws, "cleanup", "--yes", capsys=capsys)
    assert rc == 1  # the unusable accounts cannot be cleaned up
    assert not any(emulator.user(p.gmail).imap["enabled"] for p in people[:4])
    assert out.out.count("IMAP disabled") == 4


def test_users_file_errors_are_one_line_naming_the_line(tmp_path, dovecot_server, emulator, capsys):
    name, pw, _ = new_user(dovecot_server, 1)
    ws = make_admin_workspace(
        tmp_path, server=dovecot_server, emulator_url=emulator.base_url, people=[Person(name, f"{name}@{DOMAIN}", pw)]
    )
    cases = {
        "source_user,gmail\nalice,alice@x.jp\n": "line 1: unknown column 'gmail'",
        "source_user,gmail_address\nalice,alice@x.jp\n": "line 2 (alice): no password or password_file, and no [admin] master_user",
        "source_user,gmail_address,password\nalice,alice@x.jp,pw\nbob,not-an-address,pw\n": "line 3 (bob): gmail_address 'not-an-address' is not an e-mail address",
        "source_user,gmail_address,password\n\nalice,a@x.jp,pw\n# comment\nbob,A@x.jp,pw\n": "line 5 (bob): A@x.jp is also on line 3",
        "source_user,gmail_address,password\nalice,a@x.jp\n": "line 2: 2 field(s), but the header has 3",
        "source_user,gmail_address,password_file\nalice,a@x.jp,nope.txt\n": "line 2 (alice): password_file",
    }
    for text, expected in cases.items():
        ws.users_csv.write_text(text)
        rc, out = run(ws, "run", capsys=capsys)
        assert rc == 2, text
        lines = out.err.strip().splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith("gimport: users file "), lines
        assert expected in lines[0], lines
        assert "Traceback" not in out.err
    assert emulator.stats.snapshot()["requests"] == {}  # nothing was started


def test_master_user_login(tmp_path, emulator, capsys):
    """Users without a password log in as `user*master` (Dovecot master users); the state key stays the user."""
    workdir = Path(tempfile.mkdtemp(prefix="gimport-dovecot-master-"))
    workdir.chmod(0o755)  # Dovecot's mail processes run as nobody
    dv = Dovecot(workdir, master_user_separator="*")
    master_pw = dv.add_master_user("migrator")
    dv.start()
    try:
        people, boxes = [], []
        for _ in range(2):
            name, _pw, box = new_user(dv, 5, prefix="mst")
            people.append(Person(name, f"{name}@{DOMAIN}", master=True))
            emulator.add_user(f"{name}@{DOMAIN}")
            boxes.append(box)
        ws = make_admin_workspace(
            tmp_path / "ws",
            server=dv,
            emulator_url=emulator.base_url,
            people=people,
            master=("migrator", master_pw),
        )
        rc, out = run(ws, "run", capsys=capsys)
        assert rc == 0, out.out
        for p, box in zip(people, boxes, strict=True):
            assert_exactly_once(emulator, p.gmail, box)
        log = (ws.state_dir / f"{people[0].gmail}.log").read_text()
        assert master_pw not in log
        assert master_pw not in ws.log.read_text()
        # a wrong master password fails every user, each with a message naming the master login
        (ws.dir / "master-password.txt").write_text("wrong\n")
        rc, out = run(ws, "run", capsys=capsys)
        assert rc == 1
        assert f"master user 'migrator' (login '{people[0].source_user}*migrator')" in out.out
    finally:
        dv.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def test_shards_in_separate_processes_cover_every_user_once(tmp_path, dovecot_server, emulator):
    count = 3
    users = [new_user(dovecot_server, 4, prefix="shd") for _ in range(8)]
    people = [Person(name, f"{name}@{DOMAIN}", pw) for name, pw, _ in users]
    for p in people:
        emulator.add_user(p.gmail)
    ws = make_admin_workspace(tmp_path, server=dovecot_server, emulator_url=emulator.base_url, people=people)
    procs = [
        run_process(ws, emulator.base_url, "run", "--shard", f"0/{count}"),
        # a Kubernetes Indexed Job pod, and a Slurm array task (sbatch --array=1-3)
        run_process(ws, emulator.base_url, "run", env={"JOB_COMPLETION_INDEX": "1", "GIMPORT_SHARD_COUNT": "3"}),
        run_process(
            ws,
            emulator.base_url,
            "run",
            env={
                "SLURM_ARRAY_TASK_ID": "3",
                "SLURM_ARRAY_TASK_MIN": "1",
                "SLURM_ARRAY_TASK_MAX": "3",
                "SLURM_ARRAY_TASK_COUNT": "3",
            },
        ),
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()
    seen: dict[str, int] = {}
    for i in range(count):
        rows = report_rows(ws.dir / f"report-shard-{i}-of-{count}.csv")
        for gmail, row in rows.items():
            assert gmail not in seen, f"{gmail} in shards {seen.get(gmail)} and {i}"
            assert shard_of(gmail, count) == i
            assert row["outcome"] == "complete"
            seen[gmail] = i
    assert set(seen) == {p.gmail for p in people}
    for (_, _, box), p in zip(users, people, strict=True):
        assert_exactly_once(emulator, p.gmail, box)
    assert b"project budget 400,000 units/min for this shard" in outputs[0][1]
    assert b"shard 1/3 (Kubernetes Indexed Job" in outputs[1][1]
    assert b"shard 2/3 (Slurm job array" in outputs[2][1]


def test_project_budget_holds_across_users(tmp_path, dovecot_server, monkeypatch, capsys):
    """Per-user quota 15,000 units/min each (the emulator enforces it); the project budget, 24,000 units/min,
    is lower than three users together (45,000): the run must take as long as the project budget says."""
    per_user, project = 15_000, 24_000
    emu = GmailEmulator(quota_units_per_minute=per_user, burst_seconds=1.0, merge_duplicates=False)
    emu.start()
    monkeypatch.setenv("GIMPORT_GMAIL_API_URL", emu.base_url)
    try:
        users = [new_user(dovecot_server, 20, prefix="bud") for _ in range(3)]
        people = [Person(name, f"{name}@{DOMAIN}", pw) for name, pw, _ in users]
        for p in people:
            emu.add_user(p.gmail)
        ws = make_admin_workspace(
            tmp_path,
            server=dovecot_server,
            emulator_url=emu.base_url,
            people=people,
            quota_units_per_minute=per_user,
            project_units_per_minute=project,
            parallel_users=3,
        )
        start = time.monotonic()
        rc, out = run(ws, "run", capsys=capsys)
        elapsed = time.monotonic() - start
        assert rc == 0, out.out
        for (_, _, box), p in zip(users, people, strict=True):
            assert_exactly_once(emu, p.gmail, box)
        stats = emu.stats.snapshot()
        units = sum(stats["units_charged"].values())
        assert units >= 3 * 20 * 25
        # per user: within the emulator's quota (no more than a stray 429)
        assert stats["rate_limited"] <= 2
        # project: the pacer lets half a second's worth through at once, then units/(budget/60) seconds
        rate = project / 60
        assert elapsed >= (units - rate * 0.5) / rate * 0.9, (elapsed, units)
        # and the per-user quotas alone would have allowed it in well under that
        assert (units - 3 * per_user / 60) / (3 * per_user / 60) < (units - rate * 0.5) / rate * 0.75
    finally:
        emu.stop()


def test_ctrl_c_stops_every_user_cleanly_then_resumes(tmp_path, dovecot_server, emulator):
    users = [new_user(dovecot_server, 25, prefix="int") for _ in range(4)]
    people = [Person(name, f"{name}@{DOMAIN}", pw) for name, pw, _ in users]
    for p in people:
        emulator.add_user(p.gmail)
    ws = make_admin_workspace(
        tmp_path, server=dovecot_server, emulator_url=emulator.base_url, people=people, parallel_users=2
    )
    emulator.faults.add(Fault("slow", method="import", count=10_000, delay=0.2))
    proc = run_process(ws, emulator.base_url, "run")
    wait_for(lambda: sum(emulator.user(p.gmail).import_calls for p in people) >= 10)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert b"Traceback" not in err
    assert b"Interrupted: run the same command again" in out
    outcomes = collections.Counter(r["outcome"] for r in report_rows(ws.report).values())
    assert outcomes["interrupted"] >= 1, outcomes
    assert outcomes["not run"] >= 1, outcomes
    emulator.faults.clear()
    proc = run_process(ws, emulator.base_url, "run")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    for (_, _, box), p in zip(users, people, strict=True):
        assert_exactly_once(emulator, p.gmail, box)  # a clean stop sends nothing twice


def test_verbose_admin_run_shows_gimport_lines_and_no_secrets(tmp_path, dovecot_server, emulator, capsys):
    """`gimport admin run --verbose` is read (it was once accepted and ignored), and the secret-bearing loggers
    (google.auth, urllib3, ...) stay muted as in single-user mode: no password, key or token anywhere."""
    users = [new_user(dovecot_server, 3, prefix="vrb") for _ in range(2)]
    people = [Person(name, f"{name}@{DOMAIN}", pw, inline=(i == 0)) for i, (name, pw, _) in enumerate(users)]
    for p in people:
        emulator.add_user(p.gmail)
    ws = make_admin_workspace(tmp_path, server=dovecot_server, emulator_url=emulator.base_url, people=people)
    rc, out = run(ws, "run", "--verbose", capsys=capsys)
    assert rc == 0, out.err
    assert "INFO gimport.admin: admin run: 2 user(s)" in out.err
    assert "DEBUG gimport" in out.err  # the engine's detail, shown with --verbose only
    key = __import__("json").loads((ws.dir / "sa.json").read_text())["private_key"]
    tokens = list(emulator._tokens)
    assert tokens  # the users' access tokens that must not appear
    logs = [ws.log.read_text("utf-8"), *(f.read_text("utf-8") for f in ws.state_dir.glob("*.log"))]
    for secret in [*(pw for _, pw, _ in users), key.splitlines()[1], *tokens]:
        for text in (out.err, out.out, *logs):
            assert secret not in text
    for (_, _, box), p in zip(users, people, strict=True):
        assert_exactly_once(emulator, p.gmail, box)
