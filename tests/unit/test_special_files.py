"""Files that are not regular files where gimport expects one: a folder as the password file (never answered with
"chmod 600" on it), a FIFO as the log file, the state file, a secret. Each is refused before it is opened: an open
of a FIFO waits for a writer that never comes (and SQLite's, deaf to Ctrl-C, for ever). Every call runs in a thread
with a deadline, so a regression fails the test instead of hanging it."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from gimport.backends.google.tokens import load_client_config, load_credentials
from gimport.backends.state.store import StateLock, StateStore
from gimport.errors import ConfigError, StateError
from gimport.files import read_secret
from gimport.logs import private_log_handler


def _returns_within(fn: Callable[[], object], seconds: float = 5.0) -> ConfigError | StateError | OSError | None:
    """Run `fn` in a thread; the exception it raised (None if none). Fails when it is still running after
    `seconds` (blocked, e.g. opening a FIFO)."""
    outcome: list[ConfigError | StateError | OSError | None] = []

    def target() -> None:
        try:
            fn()
            outcome.append(None)
        except (ConfigError, StateError, OSError) as exc:  # the refusals the tests look for
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{fn} was still waiting after {seconds} s"
    return outcome[0]


@pytest.fixture
def fifo(tmp_path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path, 0o600)
    yield path
    # unblock a reader or writer a regression left waiting (a daemon thread), so nothing lingers
    for flags in (os.O_RDONLY, os.O_WRONLY):
        with contextlib.suppress(OSError):
            os.close(os.open(path, flags | os.O_NONBLOCK))


def test_a_folder_as_password_file_is_refused_without_a_chmod_hint():
    err = _returns_within(lambda: read_secret(Path("/tmp"), "[source] password_file"))
    assert isinstance(err, ConfigError)
    assert "chmod" not in str(err)
    assert "is a folder, not a file" in str(err)


def test_a_fifo_as_password_file_is_refused_before_it_is_opened(fifo):
    err = _returns_within(lambda: read_secret(fifo, "[source] password_file"))
    assert isinstance(err, ConfigError)
    assert "FIFO" in str(err)
    assert "chmod" not in str(err)


def test_a_fifo_as_token_or_client_file_is_refused(fifo):
    assert isinstance(_returns_within(lambda: load_credentials(fifo)), ConfigError)
    assert isinstance(_returns_within(lambda: load_client_config(fifo)), ConfigError)


def test_a_fifo_as_log_file_is_refused_before_it_is_opened(fifo):
    err = _returns_within(lambda: private_log_handler(fifo))
    assert isinstance(err, ConfigError)
    assert "FIFO" in str(err)


def test_a_fifo_as_state_file_is_refused_by_run_and_status(fifo):
    for open_it in (
        lambda: StateStore(fifo),
        lambda: StateStore(fifo, readonly=True),
        lambda: StateLock(fifo).acquire(),
    ):
        err = _returns_within(open_it)
        assert isinstance(err, StateError | OSError), err
        assert "FIFO" in str(err) or "regular file" in str(err)
    assert _returns_within(lambda: StateLock.held(fifo)) is None
