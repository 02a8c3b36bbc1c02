"""The real command, as a separate process, under LANG=ja_JP.UTF-8 and under LANG=C: Japanese in the one,
English in the other, the same exit code in both. Against the real Dovecot and the Gmail emulator where the
command needs them; the "browser" of `gimport auth --no-browser` is urllib, as in tests/test_auth.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import tomllib
import unicodedata
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from gimport.backends.google.oauth import write_private
from gimport.config.load import load_settings
from gimport.render.text import display_width
from tests.rig.corpus import make_message
from tests.rig.dovecot import SeedMessage
from tests.rig.gmail_emulator import GmailEmulator

JA = "ja_JP.UTF-8"
C = "C"
WAIT = 20.0  # deadline for a process to print or finish (normally well under a second)
AUTH_URL = re.compile(r"(http://\S+/o/oauth2/auth\?\S+)")
_LOCALE_VARS = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


def lang_env(lang: str, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    for var in _LOCALE_VARS:
        env.pop(var, None)
    env["LANG"] = lang
    env["PYTHONUNBUFFERED"] = "1"
    return env


def gimport(*args: str, lang: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gimport", *args],
        env=lang_env(lang, env),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=WAIT * 3,
    )


def has_japanese(text: str) -> bool:
    return any(unicodedata.east_asian_width(c) == "W" for c in text)


def both(*args: str, env: dict[str, str] | None = None):
    """The same command in Japanese and in English; the exit codes must agree."""
    ja, en = gimport(*args, lang=JA, env=env), gimport(*args, lang=C, env=env)
    print("--- LANG=ja_JP.UTF-8", ja.returncode, ja.stdout, ja.stderr, "--- LANG=C", en.stdout, en.stderr, sep="\n")
    assert ja.returncode == en.returncode
    assert not has_japanese(en.stdout + en.stderr)
    return ja, en


# ----------------------------------------------------------------------------------------------- help


def test_help():
    ja, en = both("--help")
    assert ja.returncode == 0
    for words in ("使い方: gimport", "オプション:", "このヘルプを表示して終了する", "コマンド:", "終了コード:"):
        assert words in ja.stdout
    assert "古い IMAP サーバーのメールボックスを、Gmail API を通じて Gmail へ移します。" in ja.stdout
    assert "  130  中断された（Ctrl-C または SIGTERM）" in ja.stdout
    for words in ("usage: gimport", "options:", "show this help message and exit", "exit codes:"):
        assert words in en.stdout


def test_run_help():
    ja, en = both("run", "--help")
    assert ja.returncode == 0
    assert "対象のメッセージをすべて取り込みます" in ja.stdout
    assert "例:\n  gimport --config ~/gimport.toml run" in ja.stdout
    assert "設定ファイル（既定: ./gimport.toml）" in ja.stdout
    assert "import every selected message" in en.stdout


def test_init_writes_its_comments_in_japanese_and_the_same_settings(tmp_path):
    files = {}
    for lang in (JA, C):
        config = tmp_path / lang / "gimport.toml"
        args = ["--host", "mail.example.ac.jp", "--user", "kt12345", "--password-file", "pw.txt"]
        done = gimport("--config", str(config), "init", *args, "--gmail", "kt12345@example.ac.jp", lang=lang)
        assert done.returncode == 0, done.stderr
        files[lang] = config.read_text("utf-8")
    ja, en = files[JA], files[C]
    print(ja, en, sep="\n")
    assert "# 旧 IMAP サーバー（読み取るだけです）" in ja
    assert "the old IMAP server" not in ja
    assert not has_japanese(en)
    # the keys and values, and the commented-out examples, are the same TOML in both: only the comments differ
    toml = re.compile(r" {2,}# .*$")  # a comment after the TOML: two spaces or more, then "# "
    prose = re.compile(r"^# (?!\[|\w+ = )")  # a comment line that is not a commented-out table or key

    def code(text: str) -> list[str]:  # the TOML lines, commented-out examples included
        lines = [toml.sub("", line) for line in text.splitlines()]
        return [line for line in lines if line.strip() and not prose.match(line)]

    assert code(ja) == code(en)
    assert all(display_width(line) <= 80 for line in ja.splitlines()), ja  # an editor in a terminal
    assert tomllib.loads(ja) == tomllib.loads(en)
    examples = re.compile(r"^# (?=\[|\w+ = )", re.MULTILINE)  # every commented-out table and key taken in
    assert tomllib.loads(examples.sub("", ja)) == tomllib.loads(examples.sub("", en))
    assert "quota_units_per_minute" in tomllib.loads(examples.sub("", ja))["gmail"]
    settings = {lang: load_settings(tmp_path / lang / "gimport.toml") for lang in files}
    assert repr(settings[JA]).replace(JA, "LANG") == repr(settings[C]).replace("/C/", "/LANG/")
    assert settings[JA].source.password_file == tmp_path / JA / "pw.txt"


def test_argparse_errors():
    ja, en = both("run", "--bogus")
    assert ja.returncode == 2
    assert "gimport: エラー: 認識できない引数です: --bogus" in ja.stderr
    assert ja.stderr.startswith("使い方: gimport")
    assert "gimport: error: unrecognized arguments: --bogus" in en.stderr
    ja, en = both("frob")
    assert ja.returncode == 2
    assert "引数 COMMAND: 不正な選択肢です: 'frob'" in ja.stderr
    assert "argument COMMAND: invalid choice: 'frob'" in en.stderr
    ja, en = both("auth", "--port", "x")
    assert ja.returncode == 2
    assert "引数 --port: int の値として不正です: 'x'" in ja.stderr
    assert "argument --port: invalid int value: 'x'" in en.stderr


# ------------------------------------------------------------------------------------------- config


def test_config_errors(tmp_path):
    config = tmp_path / "gimport.toml"
    config.write_text('[source]\nhost = "imap.example.ac.jp"\nuser = "s1"\nport = "993"\n', encoding="utf-8")
    ja, en = both("--config", str(config), "run")
    assert ja.returncode == 2
    assert ja.stderr.strip() == "gimport: [source] port は整数にしてください（指定値: '993'）"
    assert en.stderr.strip() == "gimport: [source] port must be a whole number, not '993'"

    ja, en = both("--config", str(tmp_path / "missing.toml"), "status")
    assert ja.returncode == 2
    assert "が見つかりません。作成する（'gimport init' でコメント付きのものを作れます）か" in ja.stderr
    assert "not found: write one" in en.stderr


# ---------------------------------------------------------------------------------- a wrong password


def test_wrong_password(ws):
    write_private(ws.dir / "imap-password.txt", "not the password\n")
    ja, en = both("--config", str(ws.config), "run", env=ws.env())
    assert ja.returncode == 4  # EXIT_SOURCE
    assert "がユーザー" in ja.stderr
    assert "のログインを拒否しました。[source] user とパスワードを確認してください" in ja.stderr
    assert "refused the login for user" in en.stderr


def test_a_run_in_japanese_logs_and_records_in_english(ws, imap_user):
    """What the person reads is Japanese; the log file and the state file stay English."""
    imap_user.seed(
        "INBOX",
        [
            SeedMessage(make_message(subject=f"m{i}", body="hello", sender="a@example.ac.jp", to="s@example.ac.jp"))
            for i in range(3)
        ]
        + [SeedMessage(b"")],
    )
    ja = gimport("--config", str(ws.config), "run", lang=JA, env=ws.env())
    print(ja.stdout, ja.stderr)
    assert ja.returncode in (0, 1), ja.stderr
    assert "サーバー上のメッセージが空です（0 バイト）" in ja.stdout  # the summary's reason
    log = ws.log.read_text("utf-8")
    assert "empty message on the server (0 bytes)" in log
    assert not has_japanese(log)
    status = gimport("--config", str(ws.config), "status", lang=C, env=ws.env())
    assert "empty message on the server (0 bytes)" in status.stdout  # the state file's reason


# -------------------------------------------------------------------------------- gimport auth


@pytest.fixture
def emu():
    emulator = GmailEmulator()
    emulator.start()
    emulator.add_user("alice@example.ac.jp")
    yield emulator
    emulator.stop()


@pytest.fixture
def auth_env(emu, tmp_path):
    env = dict(os.environ)
    env["OAUTHLIB_INSECURE_TRANSPORT"] = "1"  # the emulator speaks http; tests only
    env["GIMPORT_GMAIL_API_URL"] = emu.base_url
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY", "BROWSER"):
        env.pop(var, None)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        env.pop(var, None)
    return env


def _auth_dir(parent: Path, emu: GmailEmulator, name: str) -> Path:
    d = parent / name
    d.mkdir()
    write_private(d / "credentials.json", json.dumps(emu.client_config()))
    (d / "gimport.toml").write_text(
        '[gmail]\nclient_secrets = "credentials.json"\ntoken_file = "token.json"\n', encoding="utf-8"
    )
    return d


_BROWSER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _auth_no_browser(directory: Path, lang: str, env: dict[str, str]) -> tuple[int, str, str, str]:
    """`gimport auth --no-browser` in a process; the user opens the printed URL and consents. Returns
    (exit code, stdout, stderr, the page the browser showed at the end)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gimport",
            "--config",
            str(directory / "gimport.toml"),
            "auth",
            "--no-browser",
            "--port",
            "0",
            "--timeout",
            str(WAIT),
        ],
        env=lang_env(lang, env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if AUTH_URL.search(line):
                found.set()
        found.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert found.wait(WAIT), "no authorization URL printed"
        url = next(AUTH_URL.search(line).group(1) for line in lines if AUTH_URL.search(line))
        with _BROWSER.open(url, timeout=WAIT) as resp:  # the emulator consents and redirects to gimport
            page = resp.read().decode("utf-8")
        rc = proc.wait(WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(WAIT)
    return rc, "".join(lines), proc.stderr.read(), page


def test_auth_no_browser(emu, auth_env, tmp_path):
    rc_ja, out_ja, err_ja, page_ja = _auth_no_browser(_auth_dir(tmp_path, emu, "ja"), JA, auth_env)
    rc_en, out_en, err_en, page_en = _auth_no_browser(_auth_dir(tmp_path, emu, "en"), C, auth_env)
    print(out_ja, err_ja, page_ja, out_en, err_en, page_en, sep="\n---\n")
    assert rc_ja == rc_en == 0
    assert "次のアドレスを Web ブラウザーで開き、取り込み先の Gmail アカウントでログインしてください:" in out_ja
    assert "ポートを転送してください" in out_ja
    assert "ssh -N -L " in out_ja
    assert "Google の応答を最大 20 秒待っています（Ctrl-C で中止）..." in out_ja
    assert "alice@example.ac.jp で gimport を承認しました" in out_ja
    assert "Google の応答を gimport が受け取りました。" in page_ja
    assert "Authorized gimport for alice@example.ac.jp" in out_en
    assert "Google's answer reached gimport." in page_en
    assert not has_japanese(out_en + err_en + page_en)


def test_auth_timeout(emu, auth_env, tmp_path):
    directory = _auth_dir(tmp_path, emu, "t")
    args = ("--config", str(directory / "gimport.toml"), "auth", "--no-browser", "--port", "0", "--timeout", "0.2")
    ja, en = both(*args, env=auth_env)
    assert ja.returncode == 3  # EXIT_AUTH
    assert "gimport: 0.2 秒以内にブラウザーから応答がありませんでした" in ja.stderr
    assert "gimport: no answer from the browser within 0.2 s" in en.stderr
