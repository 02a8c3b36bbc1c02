"""What every IMAP server rig offers (Dovecot in ``dovecot.py``, Cyrus in ``cyrus.py``), so integration tests can
be parametrised over servers.

    @pytest.fixture(params=["dovecot_server", "cyrus_server"])
    def server(request) -> ImapServerRig: ...

    server.add_user("alice", "secret", separator=server.default_separator)
    server.seed("alice", "仕事/報告書", [SeedMessage(raw, flags=("\\Seen",))])   # logical "/" path
    server.imap_name("alice", "仕事/報告書")   # "仕事/報告書" on Dovecot, "INBOX.仕事.報告書" on classic Cyrus

Folders are named by a *logical path*: levels joined by ``/`` whatever the server shows; ``imap_name`` gives the
name a client sees. What each server then *serves* can differ from what was seeded (Cyrus refuses NUL bytes
and turns 8-bit header bytes into ``X``): ``can_store`` says whether a message is accepted at all, ``snapshot``
reads back what is served. tests/rig/README.md lists the differences, each measured by a test.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import signal
import socket
import ssl
import subprocess
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from tests.rig.dovecot import ImapUser, SeedMessage, SnapshotEntry

OPENSSL = "openssl"
STOP_DEADLINE = 10.0  # seconds a stopping server's processes get before SIGKILL


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a log, for an error message."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} not readable)"
    return "\n".join(text.splitlines()[-lines:]) or f"({path} empty)"


def proc_children() -> dict[int, list[int]]:
    """ppid -> [pid] for every process visible in /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # comm may contain spaces and parentheses: the fields after the last ')' are safe to split.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


_running: weakref.WeakSet[ServerProcess] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for server in list(_running):
        with contextlib.suppress(Exception):
            server.stop()


class ServerProcess:
    """What both server rigs (Dovecot, Cyrus) share: the certificate, waiting for the greetings, stopping the
    process tree, a logged-in IMAPClient and the context manager. Needs `_proc`, `running`, `start()` (which
    calls `_started()` once the process is spawned), `kind`, `host`, `plain_port`, `tls_port`, `key_file`,
    `ca_file`, `stderr_path`, `ssl_context()` and `password(user)` from the rig, and its `error` class."""

    error: type[RuntimeError] = RuntimeError
    greeting_word = b""  # besides "* OK", what the greeting must name (Cyrus: b"Cyrus")
    _proc: subprocess.Popen | None = None

    def _diagnostics(self) -> str:
        """What an error about the server process shows: its output's tail."""
        rig: Any = self
        return tail(rig.stderr_path)

    def _make_cert(self) -> None:
        """A self-signed certificate for localhost and 127.0.0.1 (ca_file) and its key (key_file)."""
        rig: Any = self
        cmd = [
            OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(rig.key_file), "-out", str(rig.ca_file), "-days", "7", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext", "keyUsage=critical,digitalSignature,keyCertSign",
            "-addext", "extendedKeyUsage=serverAuth",
        ]  # fmt: skip
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise self.error(f"openssl failed: {res.stderr.strip()}")

    def _started(self) -> None:
        """The process is spawned: stop it at interpreter exit if nobody else does."""
        _running.add(self)

    def _wait_ready(self, deadline: float) -> None:
        """Until both ports greet ("* OK", plus greeting_word), or raise `error` past `deadline` or when the
        process exits."""
        rig: Any = self
        ctx = rig.ssl_context()
        pending = {"plain": rig.plain_port, "tls": rig.tls_port}
        last = "no attempt"
        while pending:
            if self._proc is not None and self._proc.poll() is not None:
                raise self.error(f"{rig.kind} exited with {self._proc.returncode}\n{self._diagnostics()}")
            if time.monotonic() > deadline:
                raise self.error(f"no {rig.kind} greeting on {pending} ({last})\n{self._diagnostics()}")
            for kind, port in list(pending.items()):
                try:
                    with socket.create_connection((rig.host, port), timeout=2) as raw:
                        sock = ctx.wrap_socket(raw, server_hostname="localhost") if kind == "tls" else raw
                        greeting = sock.makefile("rb").readline()
                        if not (greeting.startswith(b"* OK") and self.greeting_word in greeting):
                            raise self.error(f"unexpected greeting on {kind} port {port}: {greeting!r}")
                        del pending[kind]
                except (ConnectionError, TimeoutError, ssl.SSLError, OSError) as e:
                    last = f"{kind}: {e}"
            if pending:
                time.sleep(0.01)

    def stop(self) -> None:
        """SIGTERM the whole process group, wait for every process; SIGKILL what is left at the deadline.
        Raises `error` if one survives even that. Idempotent. The mail stays: ``start`` again serves it."""
        if self._proc is None:
            return
        self._terminate()

    def _terminate(self, sig: signal.Signals = signal.SIGTERM) -> None:
        proc = self._proc
        assert proc is not None
        pids = self.process_ids()
        # SIGTERM to the whole process group (the master leads it, start_new_session=True): every process
        # stops at once. SIGTERM to the master alone takes ~1 s, and imap processes serving a client
        # outlive it by ~10 s as orphans.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        deadline = time.monotonic() + STOP_DEADLINE
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(STOP_DEADLINE)
        while (alive := {p for p in pids if pid_alive(p)}) and time.monotonic() < deadline:
            time.sleep(0.01)
        for p in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        if proc.poll() is None:
            proc.wait(STOP_DEADLINE)
        if proc.stdin is not None:  # Cyrus's supervisor pipe
            with contextlib.suppress(OSError):
                proc.stdin.close()
        self._proc = None
        _running.discard(self)
        kill_deadline = time.monotonic() + 2
        while (alive := {p for p in alive if pid_alive(p)}) and time.monotonic() < kill_deadline:
            time.sleep(0.01)
        if alive:
            rig: Any = self
            raise self.error(f"{rig.kind} processes {sorted(alive)} survived SIGKILL")

    def connect(self, user: str, *, tls: bool = False, **kwargs: Any) -> Any:
        """A logged-in ``imapclient.IMAPClient`` on the plain port, or on the TLS port with ``ssl_context()``.
        ``normalise_times=False`` makes INTERNALDATEs timezone-aware; other ``kwargs`` go to IMAPClient.
        The caller logs out (``with rig.connect(user) as client:``)."""
        from imapclient import IMAPClient

        rig: Any = self
        normalise_times = kwargs.pop("normalise_times", True)
        kwargs.setdefault("timeout", 30)
        if tls:
            client = IMAPClient("localhost", port=rig.tls_port, ssl=True, ssl_context=rig.ssl_context(), **kwargs)
        else:
            client = IMAPClient(rig.host, port=rig.plain_port, ssl=False, **kwargs)
        client.normalise_times = normalise_times
        try:
            client.login(user, rig.password(user))
        except BaseException:
            client.shutdown()
            raise
        return client

    def __enter__(self) -> Any:
        rig: Any = self
        if not rig.running:
            rig.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def process_ids(self) -> set[int]:
        """The server's first process and every process under it."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return set()
        children = proc_children()
        found, todo = set(), [proc.pid]
        while todo:
            pid = todo.pop()
            found.add(pid)
            todo.extend(children.get(pid, ()))
        return found


@runtime_checkable
class ImapServerRig(Protocol):
    """The common surface of the server rigs. Every method raises the rig's own error type (a RuntimeError
    subclass) when the server misbehaves, ValueError for arguments the server model cannot represent."""

    #: "dovecot" or "cyrus": for ``pytest.param(..., id=...)`` and for the rare test that must branch.
    kind: str
    host: str
    plain_port: int | None
    tls_port: int | None

    @property
    def ca_file(self) -> Path: ...

    @property
    def running(self) -> bool: ...

    @property
    def default_separator(self) -> str:
        """A separator ``add_user`` accepts on this instance ("/" on Dovecot; the instance's one on Cyrus)."""
        ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def add_user(self, name: str, password: str | None = None, *, separator: str = "/") -> str: ...

    def user(self, name: str) -> ImapUser: ...

    def password(self, user: str) -> str: ...

    def separator(self, user: str) -> str: ...

    def imap_name(self, user: str, folder: str) -> str: ...

    def can_store(self, raw: bytes) -> bool:
        """False for a message this server refuses on delivery (``seed`` would raise ValueError)."""
        ...

    def create_folder(self, user: str, folder: str) -> Any: ...

    def seed(self, user: str, folder: str, messages: Sequence[SeedMessage]) -> None: ...

    def delete_folder(self, user: str, folder: str, *, recursive: bool = False) -> None: ...

    def reset_uidvalidity(self, user: str, folder: str) -> int | None: ...

    def message_count(self, user: str, folder: str) -> int: ...

    def snapshot(self, user: str) -> dict[str, list[SnapshotEntry]]: ...

    def ssl_context(self) -> ssl.SSLContext: ...

    def connect(self, user: str, *, tls: bool = False, **kwargs: Any) -> Any: ...

    def kill_connections(self, user: str | None = None) -> int: ...


def snapshot_via_imap(connect: Callable[..., Any]) -> dict[str, list[SnapshotEntry]]:
    """Every selectable folder through IMAP, read-only (EXAMINE, BODY.PEEK[]): folder name as listed (decoded)
    -> messages in UID order. ``connect(normalise_times=False)`` returns a logged-in IMAPClient."""
    from tests.rig.dovecot import SnapshotEntry

    snap: dict[str, list[SnapshotEntry]] = {}
    with connect(normalise_times=False) as c:
        for flags, _delim, name in c.list_folders():
            if any(f.lower() in (b"\\noselect", b"\\nonexistent") for f in flags):
                continue
            c.select_folder(name, readonly=True)
            entries = []
            uids = c.search("ALL")
            for start in range(0, len(uids), 500):
                chunk = uids[start : start + 500]
                data = c.fetch(chunk, ["FLAGS", "INTERNALDATE", "BODY.PEEK[]"])
                for uid in chunk:
                    item = data[uid]
                    fl = tuple(sorted(f.decode() for f in item[b"FLAGS"] if f.lower() != b"\\recent"))
                    digest = hashlib.sha256(item[b"BODY[]"]).hexdigest()
                    entries.append(SnapshotEntry(uid, fl, digest, item[b"INTERNALDATE"]))
            snap[name] = entries
            c.unselect_folder()
    return snap
