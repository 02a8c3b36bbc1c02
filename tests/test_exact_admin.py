"""`gimport admin verify --exact` and `gimport admin report --csv`: a service account whose delegation grant
lists (or not) the gmail.metadata scope, the emulator, the real google-auth jwt-bearer exchange."""

from __future__ import annotations

import csv
import io
import secrets

import pytest

from gimport.backends.google.oauth import SCOPES, scopes_for
from gimport.cli import main
from tests.rig.admin_workspace import Person, make_admin_workspace
from tests.rig.corpus import make_message
from tests.rig.dovecot import SeedMessage

DOMAIN = "campus.example.ac.jp"


@pytest.fixture
def emulator(campus_emulator):
    """The admin tests' emulator (tests/conftest.py)."""
    return campus_emulator


def admin(ws, *args, capsys):
    rc = main(["--config", str(ws.config), "admin", *args])
    return rc, capsys.readouterr()


@pytest.fixture
def campus(tmp_path, dovecot_server, emulator):
    people = []
    for _u in range(2):
        name = f"ex{secrets.token_hex(3)}"
        password = dovecot_server.add_user(name)
        for folder in ("INBOX", "Work"):
            dovecot_server.seed(
                name,
                folder,
                [
                    SeedMessage(make_message(subject=f"{name} {folder} {i}", body="b", sender="a@x.jp", to="b@x.jp"))
                    for i in range(3)
                ],
            )
        people.append(Person(name, f"{name}@{DOMAIN}", password))
        emulator.add_user(people[-1].gmail)
    ws = make_admin_workspace(tmp_path, server=dovecot_server, emulator_url=emulator.base_url, people=people)
    return ws, people


def test_admin_verify_exact_needs_the_fourth_scope_in_the_grant_and_names_a_gap(campus, emulator, capsys):
    ws, people = campus
    emulator.delegated_scopes = frozenset(SCOPES)  # the grant as docs/admin.md gave it before
    assert admin(ws, "run", capsys=capsys)[0] == 0
    assert admin(ws, "verify", capsys=capsys)[0] == 0
    rc, out = admin(ws, "verify", "--exact", capsys=capsys)
    # the grant must list the fourth scope: Google refuses the service account for every user
    assert rc == 1
    assert out.out.count("act for users") == 2
    assert "Users: 2 failed." in out.out

    emulator.delegated_scopes = frozenset(scopes_for(True))
    rc, out = admin(ws, "verify", "--exact", capsys=capsys)
    assert rc == 0, out.out
    assert out.out.count("each proven in Gmail") == 2
    victim = emulator.user(people[1].gmail).messages[0]
    emulator.delete_message(people[1].gmail, victim.id)
    rc, out = admin(ws, "verify", "--exact", capsys=capsys)
    assert rc == 1
    line = next(ln for ln in out.out.splitlines() if people[1].gmail in ln)
    assert "NOT VERIFIED" in line
    assert "1 not as recorded in Gmail, e.g. " in line
    assert " missing" in line


def test_admin_report_csv_is_one_ledger_with_a_user_column(campus, emulator, tmp_path, capsys):
    ws, people = campus
    assert admin(ws, "run", capsys=capsys)[0] == 0
    path = tmp_path / "campus-ledger.csv"
    rc, _out = admin(ws, "report", "--csv", str(path), capsys=capsys)
    assert rc == 0
    rows = list(csv.DictReader(io.StringIO(path.read_text("utf-8"))))
    assert list(rows[0])[:2] == ["user", "folder"]
    assert len(rows) == 12
    for p in people:
        mine = [r for r in rows if r["user"] == p.gmail]
        assert len(mine) == 6
        assert {r["gmail_id"] for r in mine} == {m.id for m in emulator.user(p.gmail).messages}
        assert all(r["status"] == "imported" for r in mine)
