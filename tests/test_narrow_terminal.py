"""The 80-column terminal of a shared SSH server. Every command runs as its own process on a real
pseudo-terminal of 80 columns (COLUMNS unset; LANG=C, and LANG=ja_JP.UTF-8 where every header and message
is Japanese, two columns a character), against Dovecot and the emulator, with a Japanese folder name of more
than 40 characters; no line may be wider than 80 display columns (wide characters count two). Without a
terminal and without COLUMNS, names stay whole.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

from gimport.render.text import display_width
from tests.rig.corpus import sample_mailbox

LONG = "研究室/二〇二四年度の卒業論文と修士論文の提出版および指導教員からのコメントと修正履歴のまとめ"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_the_long_name_is_long_enough():
    assert len(LONG) >= 40
    assert display_width(LONG) > 80


def run_pty(
    ws, *args: str, cols: int = 80, input_text: str = "", script=(), timeout: float = 120.0, lang: str = "C"
) -> tuple[int, str]:
    """`gimport --config WS ARGS` with stdin, stdout and stderr on a pseudo-terminal `cols` wide, in `lang`.
    `input_text` is typed at once; `script`: (text, answer) pairs, each answer typed once the text shows."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, cols, 0, 0))
    env = ws.env() if ws is not None else dict(os.environ)
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    env["LANG"] = env["LC_ALL"] = lang
    env.pop("LANGUAGE", None)
    argv = [sys.executable, "-m", "gimport", *(["--config", str(ws.config)] if ws is not None else []), *args]
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    if input_text:
        os.write(master, input_text.encode())
    chunks: list[bytes] = []
    pending = list(script)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed its end
                break
            if not data:
                break
            chunks.append(data)
            if pending and pending[0][0] in b"".join(chunks).decode("utf-8", "replace"):
                os.write(master, pending.pop(0)[1].encode())
        elif proc.poll() is not None:
            break
    os.close(master)
    rc = proc.wait(timeout=30)
    return rc, b"".join(chunks).decode("utf-8", "replace")


def screen_lines(text: str) -> list[str]:
    """What the terminal shows line by line: escape sequences out, a carriage return starts over."""
    out = []
    for line in ANSI.sub("", text).split("\n"):
        out += [part for part in line.split("\r")]
    return out


def assert_fits(text: str, cols: int = 80) -> None:
    wide = [(display_width(line), line) for line in screen_lines(text) if display_width(line) > cols]
    assert not wide, "\n".join(f"{w}: {line}" for w, line in wide)


@pytest.fixture
def mailbox(imap_user):
    box = sample_mailbox(n=40, seed=3)
    box[LONG] = box.pop("Projects/gimport/Design")
    for folder, messages in box.items():
        imap_user.seed(folder, messages)
    return box


# what the run summary and verify say when all went well, in each language
DONE_WORDS = {"C": ("message(s) imported in", "VERIFIED"), "ja_JP.UTF-8": ("通を", "検証済み（VERIFIED）")}


@pytest.mark.parametrize("lang", sorted(DONE_WORDS))
def test_every_command_fits_80_columns(ws, mailbox, emulator, lang):
    outputs = {}
    for args in (("plan",), ("check",), ("run",), ("status",), ("verify",), ("cleanup", "--dry-run")):
        rc, text = run_pty(ws, *args, lang=lang)
        outputs[args[0]] = text
        assert rc in (0, 1), (args, rc, text)
        assert_fits(text)
    commands = ("auth", "plan", "run", "status", "verify", "cleanup", "check", "failed", "accept", "report", "help")
    for args in (("--help",), *((c, "--help") for c in commands)):
        rc, text = run_pty(ws, *args, lang=lang)
        assert rc == 0, text
        assert_fits(text)

    # the long name is shortened in the middle: its first and last characters are still there
    plan_lines = [line for line in screen_lines(outputs["plan"]) if line.startswith("研究室/")]
    assert len(plan_lines) == 1, outputs["plan"]
    folder_cell = plan_lines[0].split("  ")[0]
    assert folder_cell.startswith("研究室/")
    assert folder_cell.endswith("まとめ")
    assert "..." in folder_cell
    print(*outputs.values(), sep="\n")  # the captures (shown with -s)
    imported, verified = DONE_WORDS[lang]
    assert imported in outputs["run"]
    assert verified in outputs["verify"]
    if lang != "C":  # the tables are Japanese there, headers and all
        assert "フォルダー" in outputs["plan"], outputs["plan"]
        assert "フォルダー" in outputs["run"], outputs["plan"]


def test_columns_is_honoured_and_pipes_keep_full_names(ws, mailbox, emulator):
    piped = subprocess.run(
        [sys.executable, "-m", "gimport", "--config", str(ws.config), "plan"],
        env={k: v for k, v in ws.env().items() if k != "COLUMNS"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert piped.returncode == 0, piped.stderr
    assert LONG in piped.stdout  # a log or a script gets the whole name
    narrow = subprocess.run(
        [sys.executable, "-m", "gimport", "--config", str(ws.config), "plan"],
        env={**ws.env(), "COLUMNS": "80"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert narrow.returncode == 0
    assert LONG not in narrow.stdout
    assert_fits(narrow.stdout)


def test_help_lists_only_the_commands_own_exit_codes(ws):
    rc, text = run_pty(ws, "status", "--help")
    assert rc == 0
    codes = re.findall(r"^\s+(\d+)\s{2,}", text.split("exit codes:")[1], re.MULTILINE)
    assert codes == ["0", "1", "2", "70"], text  # 70: a bug, which any command can meet
    rc, text = run_pty(ws, "run", "--help")
    codes = re.findall(r"^\s+(\d+)\s{2,}", text.split("exit codes:")[1], re.MULTILINE)
    assert codes == ["0", "1", "2", "3", "4", "5", "70", "130"], text
    assert "--stats SECONDS" in text


def test_help_topics_come_with_the_package(ws, capsys):
    from gimport.cli import main

    assert main(["help", "auth"]) == 0
    out = capsys.readouterr().out
    assert "Desktop app" in out  # docs/auth.md, read from the installed package
    assert main(["help", "config"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("## Configuration reference")
    assert "`[source] host`" in out
    assert main(["help", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "auth" in err


def test_plan_json_is_not_shortened(ws, mailbox, emulator, capsys, monkeypatch):
    from gimport.cli import main

    monkeypatch.setenv("COLUMNS", "40")
    assert main(["--config", str(ws.config), "plan", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert LONG in [f["folder"] for f in data["folders"]]


def test_help_topics_in_japanese_come_from_the_japanese_docs(ws, capsys, monkeypatch):
    from gimport import i18n
    from gimport.cli import main

    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LANG", "ja_JP.UTF-8")
    i18n.reset()
    try:
        assert main(["help", "config"]) == 0
        out = capsys.readouterr().out
        assert out.startswith("## 設定リファレンス")
        assert "`[source] host`" in out  # README.ja.md's section
        assert main(["help", "reboot"]) == 0
        assert capsys.readouterr().out.startswith("## 無人での実行と再起動")
    finally:
        monkeypatch.setenv("LANG", "C")
        i18n.reset()
