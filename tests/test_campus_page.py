"""`gimport admin report --html` in a real browser: a campus run on the real Dovecot and the Gmail emulator
(good users, a user Gmail rejects messages of, in a folder whose name is markup, and a user whose password is
wrong), then the page opened from its file by headless Chromium. It renders with its script running, shows
every user, searches, filters and sorts from its #fragment, and requests nothing at all; a page that does
request something is seen doing so (the observation can fail)."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from gimport.cli import main
from tests.rig import chromium
from tests.rig.admin_workspace import Person, make_admin_workspace
from tests.rig.corpus import make_message
from tests.rig.dovecot import SeedMessage
from tests.rig.gmail_emulator import Fault
from tests.test_admin import DOMAIN, new_user, report_rows

POISON = b"X-Poison: yes"  # the emulator rejects (400) every import holding these bytes
PROBLEMS, IMPORTED = 4, 6  # columns of the users table
HOSTILE_FOLDER = "Work/<script>alert(1)</script>"


@pytest.fixture
def emulator(campus_emulator):
    return campus_emulator


class Rows(HTMLParser):
    """The users table of a dumped DOM: each body row's cells' text and whether it is hidden."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[tuple[list[str], bool]] = []
        self.ready = False
        self.scripts = 0
        self._table = self._body = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.ready = self.ready or (tag == "html" and a.get("data-ready") == "1")
        self.scripts += tag == "script"
        if tag == "table":
            self._table = a.get("id") == "users-table"
        self._body = self._body or (self._table and tag == "tbody")
        if self._body and tag == "tr":
            self.rows.append(([], "hidden" in a))
        if self._body and tag == "td":
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None and self.rows:
            self.rows[-1][0].append("".join(self._cell).strip())
            self._cell = None
        if tag == "table":
            self._table = self._body = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def shown(dom: str) -> tuple[Rows, list[list[str]]]:
    parsed = Rows()
    parsed.feed(dom)
    return parsed, [cells for cells, hidden in parsed.rows if not hidden]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_campus_page_in_a_real_browser(tmp_path, dovecot_server, emulator, capsys):
    chromium.chromium()  # skipped, saying why, before the campus is built where there is no browser
    good = [new_user(dovecot_server, n) for n in (9, 15, 6)]
    rejected = new_user(dovecot_server, 6)
    poison = [
        SeedMessage(
            make_message(
                subject=f"poison {i}", body="x", sender="a@x.jp", to="b@x.jp", extra_headers=[("X-Poison", "yes")]
            )
        )
        for i in range(2)
    ]
    dovecot_server.seed(rejected[0], HOSTILE_FOLDER, poison)
    badpw = new_user(dovecot_server, 3)
    people = [Person(name, f"{name}@{DOMAIN}", pw) for name, pw, _box in [*good, rejected]]
    people.append(Person(badpw[0], f"{badpw[0]}@{DOMAIN}", "not-the-password"))
    for p in people:
        emulator.add_user(p.gmail)
    emulator.faults.add(Fault("400", method="import", count=None, match=POISON))
    ws = make_admin_workspace(tmp_path / "ws", server=dovecot_server, emulator_url=emulator.base_url, people=people)
    rc = main(["--config", str(ws.config), "admin", "run"])
    assert rc == 1  # the rejected messages and the wrong password
    rows = report_rows(ws.report)
    assert [rows[p.gmail]["outcome"] for p in people] == ["complete"] * 3 + ["incomplete", "failed"]

    page = tmp_path / "campus.html"
    emulator.stop()  # the page is written from the state files alone
    capsys.readouterr()
    assert main(["--config", str(ws.config), "admin", "report", "--html", str(page)]) == 0
    assert f"{len(people)} user(s)" in capsys.readouterr().err
    # a page that cannot be written is a one-line error naming it (exit code 2), and leaves nothing behind
    nowhere = tmp_path / "no-such-dir" / "campus.html"
    assert main(["--config", str(ws.config), "admin", "report", "--html", str(nowhere)]) == 2
    assert f"cannot write {nowhere}" in capsys.readouterr().err
    assert not nowhere.parent.exists()
    url = page.as_uri()

    # rendered, the script ran (the page's policy allowed it), every user is there, and nothing was requested
    dom, requests = chromium.dump_dom(url, tmp_path / "chromium")
    parsed, visible = shown(dom)
    assert parsed.ready
    assert requests == []
    assert sorted(cells[0] for cells in visible) == sorted(p.gmail for p in people)
    assert f"{len(people)} of {len(people)} users shown" in dom
    by_user = {cells[0]: cells for cells in visible}
    problems = by_user[people[3].gmail][PROBLEMS]
    assert HOSTILE_FOLDER in problems
    assert "Invalid message" in problems
    assert parsed.scripts == 1  # the page's own script; the folder's name never became one
    assert "refused the login" in by_user[people[4].gmail][PROBLEMS]
    for p in people:  # the imported column shows what the report file says
        assert by_user[p.gmail][IMPORTED] == rows[p.gmail]["imported"]

    # without its script (a copy whose policy lets no script run, as a reader with scripts off sees it) the
    # table is all there, and the search box, useless then, hidden
    text = page.read_text("utf-8")
    no_script = tmp_path / "no-script.html"
    assert "script-src &#x27;sha256-" in text  # the policy as the page writes it (an attribute: quotes escaped)
    no_script.write_text(re.sub(r"script-src [^;\"]+", "script-src &#x27;none&#x27;", text, count=1), "utf-8")
    dom, requests = chromium.dump_dom(no_script.as_uri(), tmp_path / "chromium")
    parsed, visible = shown(dom)
    assert not parsed.ready
    assert requests == []
    assert sorted(cells[0] for cells in visible) == sorted(p.gmail for p in people)
    assert 'id="tools" hidden' in dom

    # sorted by a column from the #fragment, largest first
    dom, requests = chromium.dump_dom(url + "#sort=imported&dir=desc", tmp_path / "chromium")
    _parsed, visible = shown(dom)
    imported = [int(cells[IMPORTED].replace(",", "")) for cells in visible]
    assert imported == sorted(imported, reverse=True)
    assert imported[0] == 15
    assert requests == []

    # searched: a piece of the hostile folder's name finds the one user with messages there
    dom, _requests = chromium.dump_dom(url + "#q=alert(1)", tmp_path / "chromium")
    _parsed, visible = shown(dom)
    assert [cells[0] for cells in visible] == [people[3].gmail]
    assert f"1 of {len(people)} users shown" in dom

    # filtered by outcome group: the incomplete and the failed user
    dom, _requests = chromium.dump_dom(url + "#outcome=failed&sort=gmail", tmp_path / "chromium")
    _parsed, visible = shown(dom)
    assert [cells[0] for cells in visible] == sorted([people[3].gmail, people[4].gmail])

    # a screenshot reads (looked at by hand when the page changes: it is left in the test's tmp_path)
    png = tmp_path / "campus.png"
    assert chromium.screenshot(url, tmp_path / "chromium", png) == []
    assert png_size(png) == (1280, 1600)

    # the same page in Japanese, as gimport writes it under a Japanese locale
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG"))}
    ja = tmp_path / "campus-ja.html"
    subprocess.run(
        [sys.executable, "-m", "gimport", "--config", str(ws.config), "admin", "report", "--html", str(ja)],
        env={**env, "LANGUAGE": "ja", "LANG": "ja_JP.UTF-8"},
        check=True,
        capture_output=True,
    )
    dom, requests = chromium.dump_dom(ja.as_uri(), tmp_path / "chromium")
    parsed, visible = shown(dom)
    assert parsed.ready
    assert requests == []
    assert len(visible) == len(people)
    assert '<html lang="ja"' in dom
    assert chromium.screenshot(ja.as_uri(), tmp_path / "chromium", tmp_path / "campus-ja.png") == []


def test_the_request_log_sees_a_page_that_loads_something(tmp_path):
    """The observation above can fail: a page with an image on another host is seen requesting it."""
    page = tmp_path / "loads.html"
    page.write_text('<!DOCTYPE html><p>x</p><img src="http://campus.example.invalid/logo.png" alt="">')
    _dom, requests = chromium.dump_dom(page.as_uri(), tmp_path / "chromium")
    assert requests == ["http://campus.example.invalid/logo.png"]
