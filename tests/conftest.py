"""Shared fixtures. Each external service gets a session-scoped server fixture and cheap per-test handles on it.

IMAP: ``dovecot_server`` (one real Dovecot for the session), ``imap_user`` / ``imap_user_dot`` (a fresh account
per test with "/" or "." as hierarchy separator). See tests/rig/dovecot.py. ``cyrus_server`` / ``cyrus_user``: the
same on Cyrus (tests/rig/cyrus.py); ``any_imap_server`` / ``any_server_user`` run a test on both servers.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.rig import cyrus as rig_cyrus
from tests.rig import dovecot as rig_dovecot
from tests.rig.cyrus import Cyrus
from tests.rig.dovecot import Dovecot, ImapUser
from tests.rig.imap_server import ImapServerRig

# --------------------------------------------------------------------------- IMAP (Dovecot)


@pytest.fixture(autouse=True)
def _signal_dispositions_kept() -> Iterator[None]:
    """What a test leaves of SIGTERM/SIGINT handling in pytest's own process is put back after it. A command run
    in-process that was stopped leaves SIGTERM ignored (gimport.cli.terminal: a late SIGTERM is the same stop),
    and an ignored signal is inherited by every child process a later test starts."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for s, handler in saved.items():
        if signal.getsignal(s) != handler:
            signal.signal(s, handler)


_user_numbers = itertools.count(1)
S = TypeVar("S", bound=ImapServerRig)


def _session_server(rig: type[S], prefix: str, *, needs_root: str) -> Iterator[S]:
    """Start one server of the rig for the session in a temp dir, stop it and remove the dir at the end
    (kept when GIMPORT_KEEP_RIG=1, for reading its logs). `needs_root`: why, said when not root."""
    if os.geteuid() != 0:
        pytest.fail(f"{needs_root}: run scripts/test as root", pytrace=False)
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    workdir.chmod(0o755)  # the servers' own processes run as another user (nobody, cyrus)
    server = rig(workdir)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if os.environ.get("GIMPORT_KEEP_RIG") != "1":
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def dovecot_server() -> Iterator[Dovecot]:
    """One Dovecot on loopback for the whole session (see _session_server)."""
    for tool in (rig_dovecot.DOVECOT, rig_dovecot.DOVEADM):
        if not os.access(tool, os.X_OK):
            pytest.fail(f"{tool} not found: run scripts/test, which installs dovecot-imapd", pytrace=False)
    yield from _session_server(
        Dovecot, "gimport-dovecot-", needs_root="the Dovecot rig needs root (its mail processes run as nobody)"
    )


def _new_user(server: ImapServerRig, separator: str) -> ImapUser:
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


# --------------------------------------------------------------------------- IMAP (Cyrus), and both servers


@pytest.fixture(scope="session")
def cyrus_server() -> Iterator[Cyrus]:
    """One Cyrus on loopback for the whole session, classic namespace: "." separator, folders under ``INBOX.``
    (tests/rig/cyrus.py; see _session_server)."""
    if (
        not rig_cyrus.MASTER.exists()
        or not rig_cyrus.imapd_path().exists()
        or not os.access(rig_cyrus.SASLPASSWD2, os.X_OK)
    ):
        pytest.fail(
            "Cyrus not found: run scripts/test, which installs cyrus-common and sasl2-bin and extracts cyrus-imapd",
            pytrace=False,
        )
    yield from _session_server(
        Cyrus, "gimport-cyrus-", needs_root="the Cyrus rig needs root (master drops to the cyrus user)"
    )


@pytest.fixture
def cyrus_user(cyrus_server: Cyrus) -> ImapUser:
    """A fresh, empty account (INBOX only) on the session's Cyrus ("." separator, ``INBOX.`` prefix)."""
    return _new_user(cyrus_server, ".")


@pytest.fixture(params=["dovecot_server", "cyrus_server"], ids=["dovecot", "cyrus"])
def any_imap_server(request: pytest.FixtureRequest) -> ImapServerRig:
    """The test runs once against Dovecot and once against Cyrus (see tests/rig/imap_server.py)."""
    return request.getfixturevalue(request.param)


@pytest.fixture
def any_server_user(any_imap_server: ImapServerRig) -> ImapUser:
    """A fresh, empty account on Dovecot ("/") and, in a second run of the test, on Cyrus (".", ``INBOX.``)."""
    return _new_user(any_imap_server, any_imap_server.default_separator)


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
def campus_emulator(monkeypatch):
    """A Gmail API emulator for `gimport admin` tests: no accounts (each test adds its users'), every re-send
    stored apart (merge_duplicates off), GIMPORT_GMAIL_API_URL set to it and no shard taken from the
    environment. Test modules about admin runs name it `emulator`."""
    from tests.rig.gmail_emulator import GmailEmulator

    emu = GmailEmulator(merge_duplicates=False)
    emu.start()
    monkeypatch.setenv("GIMPORT_GMAIL_API_URL", emu.base_url)
    for k in ("JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID", "GIMPORT_SHARD", "GIMPORT_SHARD_COUNT"):
        monkeypatch.delenv(k, raising=False)
    yield emu
    emu.stop()


@pytest.fixture
def ws(tmp_path, imap_user, emulator, monkeypatch):
    """gimport.toml, password file and token for `imap_user` -> EMAIL on `emulator`; GIMPORT_GMAIL_API_URL set."""
    from tests.rig.workspace import EMAIL, make_workspace

    w = make_workspace(tmp_path, server=imap_user.server, user=imap_user.name, emulator=emulator, email=EMAIL)
    monkeypatch.setenv("GIMPORT_GMAIL_API_URL", emulator.base_url)
    return w
