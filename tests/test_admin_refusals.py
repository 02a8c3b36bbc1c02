"""Refusals in a campus run, sorted by whom they concern: a token refused for one user (an address of another
domain in the users file) costs that user alone, reported with the reason and what to fix, while a refusal
for everyone (the delegation grant itself) stops the run; and a stop never rewrites the outcome of a user
whose mail is all in Gmail."""

from __future__ import annotations

import pytest

from tests.rig.admin_workspace import Person, make_admin_workspace
from tests.test_admin import DOMAIN, assert_exactly_once, new_user, report_rows, run


@pytest.fixture
def emulator(campus_emulator):
    """The admin tests' emulator (tests/conftest.py)."""
    return campus_emulator


def test_a_user_of_another_domain_costs_that_user_and_a_stop_keeps_finished_users(
    tmp_path, dovecot_server, emulator, capsys
):
    good = [new_user(dovecot_server, n, prefix="ref") for n in (6, 5, 4, 6, 5)]
    stray = new_user(dovecot_server, 3, prefix="ref")
    people = [Person(name, f"{name}@{DOMAIN}", pw) for name, pw, _ in good]
    # the second line: its refusal comes while the first users are still being migrated
    people.insert(1, Person(stray[0], f"{stray[0]}@other.example.org", stray[1]))
    for p in people:
        emulator.add_user(p.gmail)  # the account exists, at another Workspace customer
    emulator.delegated_domains = frozenset({DOMAIN})
    ws = make_admin_workspace(
        tmp_path, server=dovecot_server, emulator_url=emulator.base_url, people=people, parallel_users=2
    )
    rc, out = run(ws, "run", capsys=capsys)
    assert rc == 1, out.out + out.err
    rows = report_rows(ws.report)
    stray_gmail = people[1].gmail
    others = [p for p in people if p.gmail != stray_gmail]
    assert [rows[p.gmail]["outcome"] for p in others] == ["complete"] * 5
    for p, (_, _, box) in zip(others, good, strict=True):
        assert_exactly_once(emulator, p.gmail, box)
    assert rows[stray_gmail]["outcome"] == "failed"
    error = rows[stray_gmail]["error"]
    assert "unauthorized_client" in error
    assert "other.example.org" in error  # the domain, and what to fix: the address in the users file
    assert "users file" in error
    assert stray_gmail in out.out
    assert "stopping" not in out.err.lower()
    assert emulator.user(stray_gmail).messages == []

    # now the grant is taken away: every token is refused, the run stops, and nobody's outcome is rewritten
    emulator.delegated_scopes = frozenset()
    rc, out = run(ws, "run", capsys=capsys)
    assert rc == 3, out.out + out.err
    assert "Domain-wide delegation" in out.out + out.err
    rc, out = run(ws, "status", "--csv", capsys=capsys)
    assert rc == 1
    status = report_rows_text(out.out)
    assert [status[p.gmail]["outcome"] for p in others] == ["complete"] * 5
    assert status[stray_gmail]["outcome"] == "failed"


def report_rows_text(text: str) -> dict[str, dict[str, str]]:
    import csv
    import io

    return {r["gmail_address"]: r for r in csv.DictReader(io.StringIO(text))}
