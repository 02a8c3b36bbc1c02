"""Config mistakes and hostile values (deep nesting, huge numbers, odd host names): each is one line on stderr and exit 2,
never a traceback, as a person sees it from `python -m gimport`."""

from __future__ import annotations

import subprocess
import sys

import pytest

BASE = """
[source]
host = "{host}"
user = "{user}"
password_file = "pw.txt"
{source}
[gmail]
client_secrets = "credentials.json"
{gmail}
[state]
path = "{path}"
log_file = "{log}"
{extra}
"""


def gimport(
    tmp_path,
    *args,
    host="mail.example.ac.jp",
    user="kt12345",
    source="",
    gmail="",
    path="s.sqlite",
    log="g.log",
    extra="",
    raw: bytes | None = None,
    password: bytes = b"secret\n",
):
    """`python -m gimport --config <tmp>/gimport.toml ARGS` (default: status); (exit code, stdout, stderr)."""
    config = tmp_path / "gimport.toml"
    if raw is None:
        text = BASE.format(host=host, user=user, source=source, gmail=gmail, path=path, log=log, extra=extra)
        config.write_text(text, encoding="utf-8")
    else:
        config.write_bytes(raw)
    (tmp_path / "pw.txt").write_bytes(password)
    (tmp_path / "pw.txt").chmod(0o600)
    proc = subprocess.run(
        [sys.executable, "-m", "gimport", "--config", str(config), *(args or ("status",))],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    return proc.returncode, proc.stdout, proc.stderr


def assert_one_line(rc, err, *fragments):
    assert rc == 2, err
    assert "Traceback" not in err, err
    assert "unexpected error" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], err


@pytest.mark.parametrize(
    ("gmail", "fragment"),
    [
        ("workers = 100000000000000000000", "[gmail] workers must be at most 64, not 100000000000000000000"),
        ("workers = 65", "[gmail] workers must be at most 64"),
        ("workers = 0", "[gmail] workers must be at least 1"),
        ("quota_units_per_minute = 100000000000000000000", "[gmail] quota_units_per_minute must be at most"),
        ("give_up_after = 100000000000000000000", "[gmail] give_up_after must be at most"),
    ],
)
def test_numeric_gmail_values_are_bounded(tmp_path, gmail, fragment):
    assert_one_line(*gimport(tmp_path, gmail=gmail)[::2], fragment)


@pytest.mark.parametrize("value", ["nan", "inf", "+inf", "-inf", "1e308", "3601"])
def test_timeout_must_be_finite_and_bounded(tmp_path, value):
    rc, _, err = gimport(tmp_path, source=f"timeout = {value}")
    assert_one_line(rc, err, "[source] timeout must be greater than 0 and at most 3,600")


@pytest.mark.parametrize("value", ["nan", "inf", "1e308"])
def test_max_size_mb_must_be_finite(tmp_path, value):
    rc, _, err = gimport(tmp_path, extra=f"[filters]\nmax_size_mb = {value}\n")
    assert_one_line(rc, err, "[filters] max_size_mb must be greater than 0 and at most")


def test_admin_numbers_are_bounded(tmp_path):
    rc, _, err = gimport(tmp_path, extra="[admin]\nparallel_users = 100000000000000000000\n")
    assert_one_line(rc, err, "[admin] parallel_users must be at most 1,024")


def test_a_config_that_is_not_utf8(tmp_path):
    raw = BASE.format(host="h", user="kt12345", source="", gmail="", path="s", log="g", extra="").encode()
    rc, _, err = gimport(tmp_path, raw=raw.replace(b"kt12345", "kt12345 \u00e9".encode("latin-1")))
    assert_one_line(rc, err, "not UTF-8 text", "save the config file as UTF-8")


def test_a_password_file_that_is_not_utf8(tmp_path):
    rc, _, err = gimport(tmp_path, "plan", password="pässword\n".encode("latin-1"))
    assert_one_line(rc, err, "[source] password_file", "is not UTF-8 text")


@pytest.mark.parametrize(
    ("user", "says"),
    [
        ("学生", "[source] user must be plain ASCII"),
        ("kt\u00e912345", "[source] user must be plain ASCII"),
        ("kt 12345", "[source] user must be plain ASCII"),
        # a line break is refused by its own check first (it would be a second IMAP command)
        ("kt\\r\\nX1 DELETE INBOX", "[source] user holds a line break"),
    ],
)
def test_source_user_must_be_plain_ascii(tmp_path, user, says):
    rc, _, err = gimport(tmp_path, user=user)
    assert_one_line(rc, err, says)


@pytest.mark.parametrize("host", ["a" * 300, ("b" * 60 + ".") * 5 + "jp", "a" * 64 + ".example.jp", "bad host", "x..y"])
def test_source_host_must_be_a_host_name(tmp_path, host):
    rc, _, err = gimport(tmp_path, host=host)
    assert_one_line(rc, err, "[source] host must be a host name")


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "::1", "mail.example.ac.jp", "メール.example.jp"])
def test_good_hosts_are_accepted(tmp_path, host):
    rc, _, err = gimport(tmp_path, host=host)
    assert rc == 2, err
    assert "no state file" in err, err  # got past the config to the command itself


def test_a_list_nested_3000_deep(tmp_path):
    rc, _, err = gimport(tmp_path, extra="[labels]\nexclude = " + "[" * 3000 + "]" * 3000 + "\n")
    assert_one_line(rc, err, "not valid TOML")


def test_log_file_that_cannot_be_written(tmp_path):
    rc, _, err = gimport(tmp_path, "run", log="/dev/full")
    assert_one_line(rc, err, "cannot write the log file /dev/full: No space left on device")
