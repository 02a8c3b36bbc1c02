"""Shared fixtures. Each external service gets a session-scoped server fixture and cheap per-test handles on it.

IMAP: ``dovecot_server`` (one real Dovecot for the session), ``imap_user`` / ``imap_user_dot`` (a fresh account
per test with "/" or "." as hierarchy separator). See tests/rig/dovecot.py.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rig import dovecot as rig_dovecot
from tests.rig.dovecot import Dovecot, ImapUser

# --------------------------------------------------------------------------- IMAP (Dovecot)

_user_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def dovecot_server() -> Iterator[Dovecot]:
    """One Dovecot on loopback for the whole session; its files live in a temp dir that is removed at the
    end (kept when GIMPORT_KEEP_RIG=1, for reading dovecot.log)."""
    for tool in (rig_dovecot.DOVECOT, rig_dovecot.DOVEADM):
        if not os.access(tool, os.X_OK):
            pytest.fail(f"{tool} not found: run scripts/test, which installs dovecot-imapd", pytrace=False)
    if os.geteuid() != 0:
        pytest.fail(
            "the Dovecot rig needs root (its mail processes run as nobody): run scripts/test as root", pytrace=False
        )
    workdir = Path(tempfile.mkdtemp(prefix="gimport-dovecot-"))
    workdir.chmod(0o755)  # Dovecot's mail processes run as nobody
    server = Dovecot(workdir)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if os.environ.get("GIMPORT_KEEP_RIG") != "1":
            shutil.rmtree(workdir, ignore_errors=True)


def _new_user(server: Dovecot, separator: str) -> ImapUser:
    name = f"u{next(_user_numbers)}"
    server.add_user(name, separator=separator)  # random password
    return server.user(name)


@pytest.fixture
def imap_user(dovecot_server: Dovecot) -> ImapUser:
    """A fresh, empty account (INBOX only) whose hierarchy separator is "/"."""
    return _new_user(dovecot_server, "/")


@pytest.fixture
def imap_user_dot(dovecot_server: Dovecot) -> ImapUser:
    """A fresh, empty account (INBOX only) whose hierarchy separator is "."."""
    return _new_user(dovecot_server, ".")


# --------------------------------------------------------------------------- Gmail (the emulator) + a workspace


@pytest.fixture
def emulator():
    """A Gmail API emulator in this process with one account, EMAIL. merge_duplicates is off, so every
    re-send is a separate stored message the tests can count."""
    from tests.rig.gmail_emulator import GmailEmulator
    from tests.rig.workspace import EMAIL

    emu = GmailEmulator(merge_duplicates=False)
    emu.start()
    emu.add_user(EMAIL)
    yield emu
    emu.stop()


@pytest.fixture
def ws(tmp_path, imap_user, emulator, monkeypatch):
    """gimport.toml, password file and token for `imap_user` -> EMAIL on `emulator`; GIMPORT_GMAIL_API_URL set."""
    from tests.rig.workspace import EMAIL, make_workspace

    w = make_workspace(tmp_path, server=imap_user.server, user=imap_user.name, emulator=emulator, email=EMAIL)
    monkeypatch.setenv("GIMPORT_GMAIL_API_URL", emulator.base_url)
    return w
