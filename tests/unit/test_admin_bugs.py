"""Admin mode and unexpected errors: a bug in gimport that stops a user is recorded in English
and gives the admin command its own exit code (70), not 1 (some users incomplete) or 2 (usage)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from gimport import i18n
from gimport.admin.paths import user_paths
from gimport.admin.run import AdminRun
from gimport.admin.users import UserEntry
from gimport.backends.google.service_account import ServiceAccount
from gimport.cli import main
from gimport.config.load import load_settings
from gimport.errors import EXIT_BUG, EXIT_SOME_FAILED, AuthError
from tests.rig.admin_workspace import write_service_account


@pytest.fixture
def japanese(monkeypatch):
    """The process speaks Japanese."""
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LANG", "ja_JP.UTF-8")
    i18n.reset()
    assert i18n.is_japanese()
    yield
    i18n.reset()


def _workspace(tmp_path: Path) -> tuple[Path, Path]:
    write_service_account(tmp_path / "sa.json", "http://127.0.0.1:9/token")
    config = tmp_path / "gimport.toml"
    config.write_text(
        '[source]\nhost = "127.0.0.1"\n[state]\nlog_file = "admin.log"\n'
        '[admin]\nservice_account_file = "sa.json"\nstate_dir = "state"\nreport_file = "report.csv"\n'
        "parallel_users = 2\n"
    )
    users = tmp_path / "users.csv"
    users.write_text("source_user,gmail_address,password\n" + "".join(f"u{i},u{i}@x.jp,pw{i}\n" for i in range(3)))
    users.chmod(0o600)
    return config, users


def test_a_bug_in_one_users_migration_is_recorded_in_english_and_counted(tmp_path, japanese):
    config, _users = _workspace(tmp_path)
    settings = load_settings(config, admin=True)
    entries = [UserEntry(i + 2, f"u{i}", f"u{i}@x.jp", password="pw") for i in range(3)]

    def authorize(email):
        raise RuntimeError(f"boom for {email}")

    summary = AdminRun(settings, entries, authorize=authorize).run()
    assert summary.fatal is None  # a bug stops that user only
    assert summary.bugs == 3
    for row in summary.rows:
        assert row.outcome == "failed"
        # the report and the state file keep the English, whatever the terminal's language
        assert row.error.startswith("unexpected error: RuntimeError('boom for"), row.error
        assert "this is a bug in gimport" in row.error
    state = user_paths(settings.admin.state_dir, "u0@x.jp").state
    assert state.exists()


@pytest.mark.parametrize(
    ("raised", "code"),
    [(RuntimeError("a bug"), EXIT_BUG), (AuthError("Google refuses a token for this user"), EXIT_SOME_FAILED)],
)
def test_admin_run_exits_70_for_a_bug_and_1_for_a_users_error(tmp_path, monkeypatch, capsys, raised, code):
    config, users = _workspace(tmp_path)

    def authorize(self, email, **kwargs):
        raise raised

    monkeypatch.setattr(ServiceAccount, "authorize", authorize)
    rc = main(["admin", "run", "--config", str(config), "--users", str(users), "--shard", "0/1"])
    assert rc == code
    with open(tmp_path / "report.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["outcome"] for r in rows] == ["failed"] * 3
    err = capsys.readouterr().err
    assert ("stopped by an unexpected error" in err) == (code == EXIT_BUG)
