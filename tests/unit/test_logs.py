"""gimport.logs: one logging setup for both CLIs. --verbose shows gimport's lines on stderr, and the loggers
that carry secrets are muted below WARNING in the single-user and the admin path alike."""

from __future__ import annotations

import logging
import stat

import pytest

from gimport.logs import SECRET_LOGGERS, admin_logging, logging_to


def _sessions(tmp_path):
    return {
        "single-user": lambda verbose: logging_to(tmp_path / "run.log", verbose),
        "admin": lambda verbose: admin_logging(tmp_path / "admin.log", verbose),
    }


@pytest.mark.parametrize("path", ["single-user", "admin"])
@pytest.mark.parametrize("verbose", [False, True])
def test_secret_loggers_are_muted_and_levels_restored(tmp_path, capsys, path, verbose):
    before = {name: logging.getLogger(name).level for name in (*SECRET_LOGGERS, "gimport")}
    log_file = tmp_path / ("run.log" if path == "single-user" else "admin.log")
    with _sessions(tmp_path)[path](verbose):
        for name in SECRET_LOGGERS:
            assert logging.getLogger(name).getEffectiveLevel() >= logging.WARNING, name
            logging.getLogger(name).info("Bearer ya29.SECRET-%s", name)
            logging.getLogger(name).debug("refresh_token=1//SECRET-%s", name)
        logging.getLogger("gimport.admin").info("admin line")
        logging.getLogger("gimport.engine.migration").debug("engine detail")
    err = capsys.readouterr().err
    text = log_file.read_text("utf-8")
    assert "SECRET" not in err
    assert "SECRET" not in text
    assert "admin line" in text
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
    if verbose:
        assert "INFO gimport.admin: admin line" in err
        assert "DEBUG gimport.engine.migration: engine detail" in err
    else:
        assert "admin line" not in err
    assert {name: logging.getLogger(name).level for name in before} == before
    assert not logging.getLogger("gimport").handlers


def test_admin_user_lines_go_to_the_users_log(tmp_path):
    import threading

    with admin_logging(tmp_path / "admin.log") as router:
        router.open("a@x.jp", tmp_path / "a.log")

        def user_thread():
            logging.getLogger("gimport.engine.migration").info("imported INBOX UID 1")
            logging.getLogger("gimport.engine.migration").warning("INBOX UID 2 failed")

        t = threading.Thread(target=user_thread, name="a@x.jp:worker-0")
        t.start()
        t.join()
        router.close("a@x.jp")
    user_log, run_log = (tmp_path / "a.log").read_text(), (tmp_path / "admin.log").read_text()
    assert "imported INBOX UID 1" in user_log
    assert "UID 2 failed" in user_log
    assert "imported INBOX UID 1" not in run_log
    assert "[a@x.jp:worker-0] INBOX UID 2 failed" in run_log
