"""The campus page (`gimport admin report --html`) from real state files: well-formed, every user in it, every
outside string escaped, nothing that could load from the network, Japanese under a Japanese locale; the import
times it charts, read from the state file."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from gimport import i18n
from gimport.admin.campus import read_campus
from gimport.admin.paths import user_paths
from gimport.admin.report import META_DURATION, META_GMAIL, META_OUTCOME, META_SHARD, META_STARTED
from gimport.admin.users import UserEntry
from gimport.backends.state import store as store_module
from gimport.backends.state.store import MessageKey, StateStore
from gimport.config.settings import AdminSettings
from gimport.render.campus import render_campus
from gimport.render.campus_chart import bars, bucket_minutes, nice_ceiling, rate_chart

PROBLEMS, IMPORTED = 4, 6  # columns of the users table
HOSTILE_FOLDER = 'Archive/<script>alert("folder")</script>'
HOSTILE_REASON = '</td></tr><script>alert("reason")</script><img src=x onerror=alert(1)>'
HOSTILE_SOURCE = '<script>alert("user")</script>'
HOSTILE_GMAIL = 'o\'hara&"x"@campus.example.ac.jp'
T0 = 1_765_000_000.0 - 1_765_000_000 % 60  # a whole minute
VOID = {"meta", "link", "br", "hr", "img", "input", "wbr", "col", "source", "area", "base", "embed", "track"}
SVG_VOID = {"line", "rect"}  # written as <line .../> in the inline SVG


class Checker(HTMLParser):
    """A strict reader: every element closed in order, and what the tests look at collected."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.scripts = self.styles = 0
        self.script_text = self.style_text = ""
        self.attrs: list[tuple[str, str, str]] = []  # (tag, name, value)
        self.user_rows: list[list[str]] = []
        self.csp = ""
        self._in_users = False
        self._cell: list[str] | None = None
        self.lang = ""

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            self.attrs.append((tag, name, value or ""))
        a = dict(attrs)
        if tag == "html":
            self.lang = a.get("lang") or ""
        if tag == "meta" and a.get("http-equiv") == "Content-Security-Policy":
            self.csp = a.get("content") or ""
        if tag == "table" and a.get("id") == "users-table":
            self._in_users = True
        if self._in_users and tag == "tr" and "tbody" in self.stack:
            self.user_rows.append([])
        if self._in_users and tag == "td":
            self._cell = []
        self.scripts += tag == "script"
        self.styles += tag == "style"
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
            return
        self.stack.pop()
        if tag == "table":
            self._in_users = False
        if tag == "td" and self._cell is not None:
            self.user_rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self.stack and self.stack[-1] == "script":
            self.script_text += data
        if self.stack and self.stack[-1] == "style":
            self.style_text += data
        if self._cell is not None:
            self._cell.append(data)


def check(page: str) -> Checker:
    c = Checker()
    c.feed(page)
    c.close()
    assert c.errors == []
    assert c.stack == []
    return c


def csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@pytest.fixture
def clock(monkeypatch):
    """The state file's clock, set by the test (the import times it records)."""
    now = [T0]
    monkeypatch.setattr(store_module.time, "time", lambda: now[0])
    return now


def write_user(state_dir: Path, gmail: str, *, imported: int, failed: int = 0, outcome: str = "complete", clock=None):
    """A state file like `admin run` leaves it: `imported` messages a minute apart, then `failed` ones."""
    st = StateStore(user_paths(state_dir, gmail).state)
    account = f"src-{gmail}"
    st.record_folder(account, "INBOX", 1, imported, imported, "INBOX")
    st.record_folder(account, HOSTILE_FOLDER, 7, failed, failed, "x")
    st.add_pending(account, "INBOX", 1, [(uid, 1000) for uid in range(1, imported + 1)])
    st.add_pending(account, HOSTILE_FOLDER, 7, [(uid, 10) for uid in range(1, failed + 1)])
    for uid in range(1, imported + 1):
        if clock is not None:
            clock[0] = T0 + 60 * uid
        key = MessageKey(account, "INBOX", 1, uid)
        st.mark_sending(key, None, f"h{uid}", "INBOX")
        st.mark_imported(key, f"g{uid}", 1000)
    for uid in range(1, failed + 1):
        st.mark_failed(MessageKey(account, HOSTILE_FOLDER, 7, uid), HOSTILE_REASON)
    for k, v in (
        (META_GMAIL, gmail),
        (META_OUTCOME, outcome),
        (META_SHARD, "0/1"),
        (META_STARTED, str(T0)),
        (META_DURATION, "90"),
    ):
        st.set_meta(k, v)
    st.close()


def test_import_times_counts_imports_per_minute_only(tmp_path, clock):
    write_user(tmp_path, "a@campus.example.ac.jp", imported=3, failed=2, clock=clock)
    st = StateStore(user_paths(tmp_path, "a@campus.example.ac.jp").state, readonly=True)
    try:
        assert st.import_times(60) == [(int(T0) + 60 * i, 1, 1000) for i in (1, 2, 3)]
        hours = st.import_times(3600)
        assert sum(n for _t, n, _b in hours) == 3
        assert all(t % 3600 == 0 for t, _n, _b in hours)
    finally:
        st.close()


def campus(tmp_path: Path, clock) -> tuple[AdminSettings, list[UserEntry]]:
    state = tmp_path / "state"
    write_user(state, "done@campus.example.ac.jp", imported=4, clock=clock)
    write_user(state, HOSTILE_GMAIL, imported=1, failed=3, outcome="incomplete", clock=clock)
    shards = state / "shards"
    shards.mkdir()
    (shards / "shard-0-of-1.json").write_text(
        json.dumps(
            {
                "index": 0,
                "count": 1,
                "host": "<b>host</b>",
                "started": T0,
                "finished": T0 + 600,
                "outcome": "incomplete",
                "users": ["done@campus.example.ac.jp", HOSTILE_GMAIL],
            }
        )
    )
    (shards / "daily-shard-0-of-1.json").write_text(json.dumps({"day": "2025-12-06", "units": 125.0}))
    admin = AdminSettings(state_dir=state, report_file=tmp_path / "report.csv", project_units_per_day=1000)
    users = [
        UserEntry(2, "done", "done@campus.example.ac.jp"),
        UserEntry(3, HOSTILE_SOURCE, HOSTILE_GMAIL),
        UserEntry(4, "later", "later@campus.example.ac.jp"),  # no state file yet
    ]
    return admin, users


def test_page_is_well_formed_complete_and_escapes_every_outside_string(tmp_path, clock):
    admin, users = campus(tmp_path, clock)
    report = read_campus(admin, users, now=T0 + 3600)
    page = render_campus(report)
    c = check(page)
    # every user has a row, with their address and outcome; the hostile strings are text, never markup
    rows = {cells[0]: cells for cells in c.user_rows}
    assert set(rows) == {u.gmail for u in users}
    assert rows[HOSTILE_GMAIL][1] == HOSTILE_SOURCE
    assert HOSTILE_REASON in rows[HOSTILE_GMAIL][PROBLEMS]
    assert HOSTILE_FOLDER in rows[HOSTILE_GMAIL][PROBLEMS]
    assert "failed 3" in rows[HOSTILE_GMAIL][PROBLEMS]
    assert rows["later@campus.example.ac.jp"][3] == "not started"
    assert rows["done@campus.example.ac.jp"][IMPORTED] == "4"  # imported
    assert c.scripts == 1
    assert 'id="tools" hidden' in page  # the search box shows only where the script runs
    assert c.styles == 1
    assert not [a for a in c.attrs if a[1].startswith("on")]
    assert "<script>alert" not in page
    assert "<b>host" not in page
    assert "&lt;b&gt;host" in page
    # nothing that names another resource: no src at all, links only to the page's own sections
    assert not [a for a in c.attrs if a[1] in ("src", "srcset", "data", "action", "xlink:href")]
    assert all(v.startswith("#") for _t, n, v in c.attrs if n == "href")
    assert not re.search(r"url\(|@import|https?://|//[a-z]", c.style_text, re.IGNORECASE)
    assert not re.search(r"https?://|fetch\(|XMLHttpRequest|\bsrc\b|import\(", c.script_text)
    # the policy lets exactly this style and this script run, and loads nothing
    assert "default-src 'none'" in c.csp
    assert csp_hash(c.style_text) in c.csp
    assert csp_hash(c.script_text) in c.csp
    # the chart: a bar per minute with imports (the first to the last, empty ones included)
    assert page.count('class="bar"') == 4
    # the daily budget of the shard, and the shard itself
    assert "125" in page
    assert "1,000" in page
    assert 'data-group="failed"' in page


def test_page_speaks_japanese_under_a_japanese_locale(tmp_path, clock, monkeypatch):
    admin, users = campus(tmp_path, clock)
    monkeypatch.setenv("LANGUAGE", "ja")
    i18n.reset()
    try:
        page = render_campus(read_campus(admin, users, now=T0 + 3600))
    finally:
        monkeypatch.delenv("LANGUAGE")
        i18n.reset()
    c = check(page)
    assert c.lang == "ja"
    assert "キャンパス" in page
    rows = {cells[0]: cells for cells in c.user_rows}
    assert rows["later@campus.example.ac.jp"][3] == "未開始"


def test_chart_buckets_and_empty_campus():
    assert bucket_minutes(0, 60 * 119) == 1
    assert bucket_minutes(0, 60 * 120) == 2
    assert bucket_minutes(0, 86400 * 3) == 60
    # 121 minutes from the first import to the last: two-minute bars, the empty ones too, every import counted
    per, series = bars({0: (2, 10), 600: (3, 10), 7200: (1, 1)})
    assert per == 2
    assert len(series) == 61
    assert [series[0], series[5], series[60]] == [(0, 2), (600, 3), (7200, 1)]
    assert sum(n for _t, n in series) == 6
    assert [nice_ceiling(x) for x in (36, 2, 101, 0.3)] == [40, 2, 120, 0.32]
    assert "<svg" not in rate_chart({})
    svg = rate_chart({60 * i: (i, 0) for i in range(10)})
    assert svg.count('class="bar"') == 10
    check(svg)
