"""Ten folders of ordinary length (up to 24 columns, some Japanese, nested) on an 80-column pseudo-terminal:
`plan`, `run`, `status` and `verify` show every name whole and never cut a header, in English and in
Japanese, against the real Dovecot and the Gmail API emulator.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from gimport.render.text import display_width
from tests.rig.corpus import sample_mailbox
from tests.test_narrow_terminal import assert_fits, run_pty, screen_lines

# the longest is 24 columns wide: what a folder name is in ordinary use
RENAMED = {
    "仕事": "研究室/論文/二〇二四年度",
    "Trash": "Newsletters/Engineering",
    "Junk": "Receipts/2024/Travel",
}
FOLDERS = [
    "INBOX",
    "Sent",
    "Archive/2020",
    "Archive/2021",
    "Projects/gimport/Design",
    "仕事/報告書",
    "個人/旅行 2024",
    *RENAMED.values(),
]
COMMANDS = ("plan", "run", "status", "verify")
# the words of the headers each table keeps with these folders (the all-zero columns are left out, said so)
HEADER_WORDS = {
    "C": {
        "plan": ["folder", "messages", "size", "labels", "action"],
        "run": ["folder", "labels", "found", "imported", "now", "already", "there", "bytes"],
        "status": ["folder", "labels", "found", "selected", "imported"],
        "verify": ["folder", "labels", "on", "source", "recorded/", "selected", "Gmail", "label", "count"],
    },
    "ja_JP.UTF-8": {
        "plan": ["フォルダー", "件数", "サイズ", "ラベル", "処理"],
        "run": ["フォルダー", "ラベル", "件数", "今回", "取込", "取込済", "サイズ"],
        "status": ["フォルダー", "ラベル", "件数", "対象", "取込済"],
        "verify": ["フォルダー", "ラベル", "移行元", "記録済/", "対象", "Gmail", "ラベル件数"],
    },
}


def test_the_names_are_ordinary():
    assert len(FOLDERS) == 10
    assert max(display_width(f) for f in FOLDERS) == 24


@pytest.fixture
def ten_folders(imap_user):
    box = sample_mailbox(n=60, seed=5)
    for old, new in RENAMED.items():
        box[new] = box.pop(old)
    for folder in FOLDERS:
        imap_user.seed(folder, box[folder])
    return FOLDERS


def sorted_rows() -> list[str]:
    """The folders in the order of the tables: INBOX first, then by name."""
    return ["INBOX", *sorted(f for f in FOLDERS if f != "INBOX")]


def table_lines(text: str) -> list[str]:
    """The lines of the first table in `text`: its header lines, the dashes and its rows (to a blank line)."""
    lines = screen_lines(text.replace("\r\n", "\n"))
    dashes = next(i for i, line in enumerate(lines) if line.strip() and set(line.strip()) <= {"-", " "})
    start = dashes
    while start > 0 and lines[start - 1].strip() and not any(x in lines[start - 1] for x in ("gimport", "%|")):
        start -= 1
    end = dashes + 1
    while end < len(lines) and lines[end].strip():
        end += 1
    return lines[start:end]


def shortened(outputs: dict[str, str]) -> list[tuple[str, str]]:
    """(command, folder) for every folder whose row in the command's table does not start with its whole name."""
    return [
        (cmd, f)
        for cmd, text in outputs.items()
        for f in FOLDERS
        if not any(line.startswith(f + "  ") or line == f for line in table_lines(text))
    ]


@pytest.mark.parametrize("lang", ["C", "ja_JP.UTF-8"])
def test_names_and_headers_whole_at_80_columns(ws, ten_folders, emulator, lang):
    outputs = {}
    for cmd in COMMANDS:
        rc, text = run_pty(ws, cmd, lang=lang)
        assert rc == 0, (cmd, text)
        assert_fits(text)
        outputs[cmd] = text
    print(*outputs.values(), sep="\n")  # the captures (shown with -s)
    cut = shortened(outputs)
    print(
        "shortened:",
        len(cut),
        "elided cells:",
        sum(line.count("...") for t in outputs.values() for line in table_lines(t)),
    )
    assert cut == []
    for cmd, text in outputs.items():
        rows = "\n".join(table_lines(text))
        assert "..." not in rows, (cmd, rows)  # nothing elided: no name, no header, no value
        table = table_lines(text)
        dashes = next(i for i, line in enumerate(table) if set(line.strip()) <= {"-", " "})
        words = " ".join(table[:dashes]).split()
        for word in HEADER_WORDS[lang][cmd]:  # every header there, whole (on one line or two)
            assert word in words, (cmd, word, table[:dashes])


def test_a_wide_terminal_and_json_keep_full_detail(ws, ten_folders, emulator):
    rc, _ = run_pty(ws, "run")
    assert rc == 0
    rc, text = run_pty(ws, "status", cols=160)
    assert rc == 0
    table = table_lines(text)
    header = table[0]
    for word in ("labels", "found", "selected", "imported", "in flight", "failed", "skipped", "to do"):
        assert word in header, (word, header)  # every column, each header on one line
    assert [line.split("  ")[0] for line in table[2 : 3 + len(FOLDERS)]] == [*sorted_rows(), "total"]  # a line each
    assert "Not shown" not in text
    assert "Blank in" not in text
    rows = {line.split("  ")[0]: line for line in table[2:]}
    assert rows["INBOX"].split()[:2] == ["INBOX", "INBOX"]  # the label shown even where it is the folder's name
    for cmd in ("plan", "verify"):  # --json is never fitted, however narrow the terminal
        out = subprocess.run(
            [sys.executable, "-m", "gimport", "--config", str(ws.config), cmd, "--json"],
            env={**ws.env(), "COLUMNS": "40"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        names = {f["folder"] for f in json.loads(out.stdout)["folders"]}
        assert set(FOLDERS) <= names


class _AdminShim:
    """What run_pty needs of a workspace: the config and the environment."""

    def __init__(self, config):
        self.config = config

    def env(self) -> dict[str, str]:
        return dict(os.environ)


@pytest.mark.parametrize("lang", ["C", "ja_JP.UTF-8"])
def test_admin_status_keeps_addresses_whole_at_80_columns(tmp_path, dovecot_server, campus_emulator, lang):
    from gimport.cli import main
    from tests.rig.admin_workspace import Person, make_admin_workspace
    from tests.test_admin import DOMAIN, new_user

    users = [new_user(dovecot_server, n) for n in (6, 9, 3)]
    people = [Person(name, f"{name}@{DOMAIN}", pw) for name, pw, _ in users[:2]]
    people.append(Person(users[2][0], f"lab.{users[2][0]}@{DOMAIN}", "wrong password"))  # 34 columns, fails
    for p in people:
        campus_emulator.add_user(p.gmail)
    ws = make_admin_workspace(tmp_path, server=dovecot_server, emulator_url=campus_emulator.base_url, people=people)
    assert main(["--config", str(ws.config), "admin", "run"]) == 1
    rc, text = run_pty(_AdminShim(ws.config), "admin", "status", lang=lang)
    assert rc == 1, text
    print(text)
    assert_fits(text)
    table = table_lines(text)
    assert "..." not in "\n".join(table)
    for p in people:
        assert any(line.startswith(p.gmail + "  ") for line in table), (p.gmail, text)
    assert any(people[2].source_user in line for line in table)  # a login that is not the address's is shown
