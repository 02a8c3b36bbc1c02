"""A throwaway Cyrus IMAP server on loopback, for tests: the second real server next to ``dovecot.py``.

    with Cyrus(workdir) as cy:                          # starts it; everything lives under workdir
        cy.add_user("alice", "secret")                   # before or after start
        cy.seed("alice", "仕事/報告書", [SeedMessage(raw, flags=("\\Seen",))])
        cy.imap_name("alice", "仕事/報告書")              # "INBOX.仕事.報告書"
        with cy.connect("alice", tls=True) as client:    # imapclient, verifying cy.ca_file
            ...

Same surface as the Dovecot rig (``tests.rig.imap_server.ImapServerRig``). Needs Debian's ``cyrus-common`` (master,
ctl_cyrusdb, the ``cyrus`` user), imapd from the ``cyrus-imapd`` package *extracted* into ``GIMPORT_CYRUS_DIR``
(default /var/cache/gimport-test/cyrus; installing it would remove dovecot-imapd: both conflict on imap-server;
scripts/test does the extraction), ``sasl2-bin`` (saslpasswd2), ``libsasl2-modules`` (PLAIN, LOGIN) and
``libsasl2-modules-db`` (sasldb), the ``openssl`` CLI, and root: Cyrus's master drops to the ``cyrus`` user, so
the workdir and its parents must be traversable by others. Nothing under /etc is read: master, imapd and
ctl_cyrusdb get ``-C workdir/imapd.conf`` and ``-M workdir/cyrus.conf``.

Server model:

- Passwords live in a sasldb in the workdir (``sasl_pwcheck_method: auxprop``, ``sasl_auxprop_plugin: sasldb``):
  a wrong password is refused; no saslauthd. ``failedloginpause: 0``: a refusal is immediate.
- The hierarchy separator and namespace are per instance, not per user: ``Cyrus(separator=".")`` (default, the
  classic Cyrus look, ``unixhierarchysep: no``) or ``"/"``; ``altnamespace=False`` (default) shows every folder
  under ``INBOX.`` (``INBOX.Work.2024``), ``True`` shows them at the top level (``Work/2024``). ``add_user``
  refuses any other separator.
- Logical folder paths are as in the Dovecot rig (levels joined by ``/``, no ``.``/``/`` inside a level). Without
  altnamespace every folder is below INBOX already, so a logical path starting ``INBOX/`` is refused there.
- ``seed`` APPENDs through IMAP as the user (MULTIAPPEND with LITERAL+, one command per ~500 messages or
  16 MB): flags (``\\Seen`` is per user in Cyrus, hence the user) and INTERNALDATE as given. Cyrus refuses NUL
  bytes and bare LF (``can_store`` is False; ``seed`` raises ValueError before sending) and turns 8-bit header
  bytes into ``X``: read what is served back with ``snapshot``.
- Creating ``Sent``, ``Drafts``, ``Junk`` or ``Trash`` (top level) sets the RFC 6154 flag of that name, as the
  Dovecot rig does. Unlike Dovecot, Cyrus itself creates the missing parents of a folder as ordinary, empty,
  selectable folders (``INBOX.A`` for ``INBOX.A.B``), not ``\\Noselect`` ones.
- Syslog is the only log Cyrus has; there is none here. Failures raise CyrusError with the server's answer.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import grp
import os
import pwd
import re
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tests.rig.dovecot import SPECIAL_USE, ImapUser, SeedMessage, SnapshotEntry
from tests.rig.imap_server import STOP_DEADLINE, ServerProcess, pid_alive, snapshot_via_imap

CYRUS_BIN = Path("/usr/lib/cyrus/bin")
MASTER = CYRUS_BIN / "master"  # from cyrus-common, like ctl_cyrusdb
#: Where scripts/test extracts the cyrus-imapd package (never installed: it conflicts with dovecot-imapd).
CYRUS_DIR = Path(os.environ.get("GIMPORT_CYRUS_DIR", "/var/cache/gimport-test/cyrus"))


def imapd_path() -> Path:
    """imapd from the private extraction, else a system one (an installed cyrus-imapd)."""
    private = CYRUS_DIR / "usr/lib/cyrus/bin/imapd"
    return private if private.exists() else CYRUS_BIN / "imapd"


SASLPASSWD2 = "/usr/sbin/saslpasswd2"

START_DEADLINE = 20.0
OP_TIMEOUT = 60.0  # one IMAP command of the rig's own client (a 16 MB APPEND included)

ADMIN = "cyrusadmin"
REALM = "localhost"  # servername; sasldb entries are user@realm

_USER_RE = re.compile(r"[a-z0-9_][a-z0-9_-]*")
_KEYWORD_RE = re.compile(r"[!#$&'+\-.0-9A-Z^_`a-z|~]+")
_SYSTEM_FLAGS = {"\\seen", "\\answered", "\\flagged", "\\deleted", "\\draft"}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_APPEND_BATCH = 500
_APPEND_BYTES = 16_000_000

# A root process between the rig and Cyrus's master: it stops the whole process group when its stdin (a pipe
# whose write end only the rig's process holds) reaches EOF, i.e. when the test process dies, even by SIGKILL.
# Not PR_SET_PDEATHSIG: master's switch to the cyrus user clears it, and it fires when the *thread* that
# started the child ends, which a fixture run in a worker thread would do.
_SUPERVISOR = r"""
import os, signal, subprocess, sys, threading
master = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL)
def stop(*_):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.killpg(0, signal.SIGTERM)
signal.signal(signal.SIGTERM, stop)
def watch():
    sys.stdin.buffer.read()
    os.kill(os.getpid(), signal.SIGTERM)  # handled in the main thread: signal.signal() works only there
threading.Thread(target=watch, daemon=True).start()
sys.exit(master.wait())
"""


class CyrusError(RuntimeError):
    """The rig could not start, stop or drive Cyrus; the message carries the server's answer or output."""


def _imap_date(when: dt.datetime) -> str:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("internaldate must be timezone-aware")
    off = when.utcoffset()
    assert off is not None
    minutes = int(off.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return (
        f"{when.day:02d}-{_MONTHS[when.month - 1]}-{when.year:04d} "
        f"{when.hour:02d}:{when.minute:02d}:{when.second:02d} {sign}{minutes // 60:02d}{minutes % 60:02d}"
    )


def _flag_list(flags: Sequence[str]) -> str:
    out = []
    for flag in flags:
        if isinstance(flag, bytes):
            flag = flag.decode("ascii")
        low = flag.lower()
        if low == "\\recent":
            continue
        if flag.startswith("\\"):
            if low not in _SYSTEM_FLAGS:
                raise ValueError(f"unknown system flag {flag!r}")
        elif not _KEYWORD_RE.fullmatch(flag):
            raise ValueError(f"not a valid IMAP keyword: {flag!r}")
        out.append(flag)
    return " ".join(out)


def _quote(s: str) -> bytes:
    """An IMAP astring for a (modified-UTF-7 encoded) name: quoted, with \\ and " escaped."""
    return b'"' + s.encode("ascii").replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


class _RawImap:
    """The rig's own minimal client (plain port, LITERAL+), for admin commands and fast MULTIAPPEND."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=OP_TIMEOUT)
        self.file = self.sock.makefile("rb")
        self.n = 0
        greeting = self.file.readline()
        if not greeting.startswith(b"* OK"):
            self.close()
            raise CyrusError(f"unexpected greeting {greeting!r}")

    def command(self, *parts: bytes) -> tuple[bytes, list[bytes]]:
        """Send one command (``parts`` joined by spaces; ``bytes`` literals pre-encoded by the caller); return
        (tagged status line, untagged lines). Raises CyrusError unless the status is OK."""
        self.n += 1
        tag = b"R%d" % self.n
        self.sock.sendall(tag + b" " + b" ".join(parts) + b"\r\n")
        untagged = []
        while True:
            line = self.file.readline()
            if not line:
                raise CyrusError("Cyrus closed the connection")
            m = re.search(rb"\{(\d+)\}\r\n$", line)
            if m:  # a literal in a response: keep it with its line
                line += self.file.read(int(m.group(1))) + self.file.readline()
            if line.startswith(tag + b" "):
                status = line[len(tag) + 1 :].rstrip(b"\r\n")
                if not status.startswith(b"OK"):
                    raise CyrusError(f"{parts[0].decode(errors='replace')} failed: {status.decode(errors='replace')}")
                return status, untagged
            untagged.append(line)

    def login(self, user: str, password: str) -> None:
        u, p = user.encode(), password.encode()
        self.command(b"LOGIN", b"{%d+}\r\n%s" % (len(u), u), b"{%d+}\r\n%s" % (len(p), p))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(b"Z LOGOUT\r\n")
        self.file.close()
        self.sock.close()

    def __enter__(self) -> _RawImap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cyrus(ServerProcess):
    """One Cyrus instance on two free loopback ports (plain IMAP with STARTTLS, and IMAP over TLS).

    Not thread-safe. ``add_user`` before ``start`` is recorded and applied at start; after, at once. Every mail
    operation goes through IMAP, so it needs the server running. A running instance is stopped at interpreter
    exit and when the process that started it dies, even by SIGKILL (see ``_SUPERVISOR``).
    """

    kind = "cyrus"
    error = CyrusError
    greeting_word = b"Cyrus"
    host = "127.0.0.1"

    def __init__(self, workdir: Path | str, *, separator: str = ".", altnamespace: bool = False) -> None:
        if separator not in (".", "/"):
            raise ValueError(f"separator must be '.' or '/', got {separator!r}")
        self.workdir = Path(workdir).absolute()
        self.hierarchy_separator = separator
        self.altnamespace = altnamespace
        self.plain_port: int | None = None
        self.tls_port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._users: dict[str, str] = {}
        self._created: set[str] = set()  # users whose mailbox exists on the server
        self._admin_password = secrets.token_urlsafe(16)
        self._uid = pwd.getpwnam("cyrus").pw_uid
        self._gid = grp.getgrnam("mail").gr_gid
        self.workdir.mkdir(parents=True, exist_ok=True)
        for p in (self.workdir, *self.workdir.parents):
            if not p.stat().st_mode & 0o001 and p.stat().st_uid != self._uid:
                raise CyrusError(f"{p} is not traversable by 'cyrus'; use a workdir whose parents all have o+x")
        for d in ("config", "spool", "run", "run/proc", "run/lock", "run/socket"):
            (self.workdir / d).mkdir(exist_ok=True)
            os.chown(self.workdir / d, self._uid, self._gid)
            os.chmod(self.workdir / d, 0o750)

    # ----------------------------------------------------------------- paths and names

    @property
    def config_path(self) -> Path:
        return self.workdir / "imapd.conf"

    @property
    def cyrus_conf_path(self) -> Path:
        return self.workdir / "cyrus.conf"

    @property
    def sasldb_path(self) -> Path:
        return self.workdir / "sasldb2"

    @property
    def stderr_path(self) -> Path:
        """master's stdout/stderr (startup errors); everything else goes to syslog, i.e. nowhere here."""
        return self.workdir / "cyrus.stderr"

    @property
    def ca_file(self) -> Path:
        """The certificate to trust (self-signed; SAN ``DNS:localhost, IP:127.0.0.1``)."""
        return self.workdir / "cert.pem"

    @property
    def key_file(self) -> Path:
        return self.workdir / "key.pem"

    @property
    def default_separator(self) -> str:
        return self.hierarchy_separator

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _levels(self, folder: str) -> list[str]:
        if not isinstance(folder, str) or not folder:
            raise ValueError(f"folder must be a non-empty str, got {folder!r}")
        if folder.upper() == "INBOX":
            return []
        parts = folder.split("/")
        if parts[0].upper() == "INBOX":
            if not self.altnamespace:
                raise ValueError(f"folder {folder!r}: without altnamespace every folder is below INBOX; drop 'INBOX/'")
            parts[0] = "INBOX"
        for part in parts:
            if not part or "." in part or "/" in part:
                raise ValueError(f"folder {folder!r}: levels must be non-empty and contain no '.'")
        return parts

    def imap_name(self, user: str, folder: str) -> str:
        """The IMAP (decoded) name ``user`` sees for a logical path: ``"A/B"`` -> ``"INBOX.A.B"`` (classic),
        ``"A/B"`` with altnamespace and "/"; ``"INBOX"`` for the inbox."""
        self._user(user)
        parts = self._levels(folder)
        if not parts:
            return "INBOX"
        sep = self.hierarchy_separator
        return sep.join(parts if self.altnamespace else ["INBOX", *parts])

    def _wire_name(self, user: str, folder: str) -> bytes:
        from imapclient import imap_utf7

        return _quote(imap_utf7.encode(self.imap_name(user, folder)).decode("ascii"))

    def can_store(self, raw: bytes) -> bool:
        """Cyrus refuses on APPEND a message holding a NUL byte ("Message contains NUL characters") or a LF not
        preceded by CR ("Message contains bare newlines"); a bare CR is accepted."""
        return b"\0" not in raw and raw.count(b"\n") == raw.count(b"\r\n")

    # ----------------------------------------------------------------- users

    def add_user(self, name: str, password: str | None = None, *, separator: str | None = None) -> str:
        """Add a user (an empty INBOX). ``separator`` must be None or the instance's. Returns the password (random
        when None). Raises ValueError for a duplicate or malformed user, CyrusError if Cyrus refuses."""
        if not _USER_RE.fullmatch(name) or name == ADMIN:
            raise ValueError(f"user name {name!r}: use lower-case letters, digits, '_' and '-'")
        if name in self._users:
            raise ValueError(f"user {name!r} exists already")
        if separator is not None and separator != self.hierarchy_separator:
            raise ValueError(
                f"this Cyrus instance uses {self.hierarchy_separator!r} for every user; "
                f"start another with Cyrus(separator={separator!r})"
            )
        if password is None:
            password = secrets.token_urlsafe(12)
        if any(c in password for c in "\n\r\0"):
            raise ValueError("password may not contain NUL or line breaks")
        self._users[name] = password
        self._set_password(name, password)
        if self.running:
            self._create_mailbox(name)
        return password

    def user(self, name: str) -> ImapUser:
        """The handle of an existing user (the Dovecot rig's ``ImapUser``, pointing at this instance)."""
        return ImapUser(name, self._user(name), self.hierarchy_separator, self)  # type: ignore[arg-type]

    def password(self, user: str) -> str:
        return self._user(user)

    def separator(self, user: str) -> str:
        self._user(user)
        return self.hierarchy_separator

    def _user(self, name: str) -> str:
        try:
            return self._users[name]
        except KeyError:
            raise KeyError(f"no such user {name!r}; add_user() first") from None

    def _set_password(self, name: str, password: str) -> None:
        # The password goes through a pipe (-p), never the command line.
        res = subprocess.run(
            [SASLPASSWD2, "-f", str(self.sasldb_path), "-p", "-c", "-u", REALM, name],
            input=password.encode(),
            capture_output=True,
            timeout=STOP_DEADLINE,
        )
        if res.returncode != 0:
            raise CyrusError(f"saslpasswd2 {name} failed: {res.stderr.decode(errors='replace').strip()}")
        os.chown(self.sasldb_path, self._uid, self._gid)
        os.chmod(self.sasldb_path, 0o600)

    def _create_mailbox(self, name: str) -> None:
        sep = self.hierarchy_separator
        with self._admin() as c:
            c.command(b"CREATE", _quote(f"user{sep}{name}"))
        self._created.add(name)

    def _admin(self) -> _RawImap:
        c = self._raw()
        try:
            c.login(ADMIN, self._admin_password)
        except BaseException:
            c.close()
            raise
        return c

    def _as_user(self, user: str) -> _RawImap:
        c = self._raw()
        try:
            c.login(user, self._user(user))
        except BaseException:
            c.close()
            raise
        return c

    def _raw(self) -> _RawImap:
        if not self.running:
            raise CyrusError("not running")
        assert self.plain_port is not None
        return _RawImap(self.host, self.plain_port)

    # ----------------------------------------------------------------- clients

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting only this instance's certificate, hostname checking on."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    # ----------------------------------------------------------------- mail

    def create_folder(self, user: str, folder: str) -> str:
        """Create ``folder`` (empty, selectable) if missing, with the special-use flag of its name for a top-level
        Sent/Drafts/Junk/Trash. Parents are not created. Returns its IMAP name."""
        with self._as_user(user) as c:
            self._ensure_folder(c, user, folder)
        return self.imap_name(user, folder)

    def _ensure_folder(self, c: _RawImap, user: str, folder: str) -> None:
        parts = self._levels(folder)
        if not parts:
            return
        wire = self._wire_name(user, folder)
        _, listed = c.command(b"LIST", b'""', wire)
        if listed and not any(b"\\noselect" in line.lower() or b"\\nonexistent" in line.lower() for line in listed):
            return
        use = SPECIAL_USE.get(parts[0]) if len(parts) == 1 else None
        if use:
            c.command(b"CREATE", wire, f"(USE ({use}))".encode())
        else:
            c.command(b"CREATE", wire)

    def seed(self, user: str, folder: str, messages: Sequence[SeedMessage]) -> None:
        """Append ``messages`` to ``folder`` (created if missing) in order, as ``user``: increasing UIDs in list
        order after any messages already there. Raises ValueError for a message ``can_store`` refuses (nothing
        of this call is appended then), CyrusError if Cyrus refuses the APPEND."""
        for i, msg in enumerate(messages):
            if not self.can_store(msg.raw):
                raise ValueError(f"message {i}: Cyrus refuses NUL bytes and bare LF; filter with can_store()")
        items = [(_flag_list(m.flags), _imap_date(m.internaldate), m.raw) for m in messages]
        with self._as_user(user) as c:
            self._ensure_folder(c, user, folder)
            self._append(c, self._wire_name(user, folder), items)

    def _append(self, c: _RawImap, wire: bytes, items: Sequence[tuple[str, str, bytes]]) -> None:
        batch: list[bytes] = []
        size = 0
        for flags, date, raw in items:
            batch.append(b'(%s) "%s" {%d+}\r\n%s' % (flags.encode(), date.encode(), len(raw), raw))
            size += len(raw)
            if len(batch) >= _APPEND_BATCH or size >= _APPEND_BYTES:
                c.command(b"APPEND", wire, *batch)
                batch, size = [], 0
        if batch:
            c.command(b"APPEND", wire, *batch)

    def delete_folder(self, user: str, folder: str, *, recursive: bool = False) -> None:
        """IMAP DELETE of ``folder`` (messages gone at once: ``delete_mode: immediate``). Raises ValueError for
        INBOX or a folder with subfolders unless ``recursive``, CyrusError if it does not exist."""
        if not self._levels(folder):
            raise ValueError("cannot delete INBOX")
        sep = self.hierarchy_separator.encode()
        with self._as_user(user) as c:
            wire = self._wire_name(user, folder)
            _, children = c.command(b"LIST", b'""', wire[:-1] + sep + b'*"')
            if children and not recursive:
                raise ValueError(f"{user}: folder {folder!r} has subfolders; pass recursive=True")
            # the deepest first: Cyrus refuses nothing here, but a parent deleted first would leave
            # its children as \\Noselect intermediates
            names = sorted((_list_name(line) for line in children), key=len, reverse=True)
            for name in names:
                c.command(b"DELETE", name)
            c.command(b"DELETE", wire)

    def reset_uidvalidity(self, user: str, folder: str) -> int:
        """Give ``folder`` a new UIDVALIDITY (messages renumbered from 1) keeping the messages, their flags and
        INTERNALDATEs: read everything, DELETE, CREATE, APPEND. Returns the new value. Sessions that have the
        folder selected are undefined: ``kill_connections`` first. Raises CyrusError if the folder is missing."""
        if not self._levels(folder):
            raise ValueError("Cyrus cannot re-create INBOX; use another folder")
        with self.connect(user, normalise_times=False) as client:
            name = self.imap_name(user, folder)
            old = client.folder_status(name, [b"UIDVALIDITY"])[b"UIDVALIDITY"]
            client.select_folder(name, readonly=True)
            uids = client.search("ALL")
            data = client.fetch(uids, ["FLAGS", "INTERNALDATE", "BODY.PEEK[]"]) if uids else {}
            client.unselect_folder()
        items = []
        for uid in uids:
            d = data[uid]
            flags = [f.decode() for f in d[b"FLAGS"] if f.lower() != b"\\recent"]
            items.append((" ".join(flags), _imap_date(d[b"INTERNALDATE"]), d[b"BODY[]"]))
        with self._as_user(user) as c:
            wire = self._wire_name(user, folder)
            c.command(b"DELETE", wire)
            self._ensure_folder(c, user, folder)
            self._append(c, wire, items)
            _, status = c.command(b"STATUS", wire, b"(UIDVALIDITY)")
        new = int(re.search(rb"UIDVALIDITY (\d+)", b"".join(status)).group(1))  # type: ignore[union-attr]
        if new == old:
            raise CyrusError(f"UIDVALIDITY of {folder!r} stayed {old} after re-creation")
        return new

    def message_count(self, user: str, folder: str) -> int:
        """STATUS MESSAGES of ``folder``."""
        with self._as_user(user) as c:
            _, status = c.command(b"STATUS", self._wire_name(user, folder), b"(MESSAGES)")
        return int(re.search(rb"MESSAGES (\d+)", b"".join(status)).group(1))  # type: ignore[union-attr]

    def snapshot(self, user: str) -> dict[str, list[SnapshotEntry]]:
        """Every selectable folder of ``user`` through IMAP, read-only; see ``Dovecot.snapshot``."""
        return snapshot_via_imap(lambda **kw: self.connect(user, **kw))

    def kill_connections(self, user: str | None = None) -> int:
        """Drop the logged-in IMAP sessions of ``user`` (every user when None): SIGTERM to the imapd processes
        Cyrus lists for them in ``run/proc``; returns once they are gone, with how many there were."""
        if user is not None:
            self._user(user)
        pids = set()
        for entry in os.scandir(self.workdir / "run" / "proc"):
            try:
                fields = Path(entry.path).read_text(errors="replace").split("\t")
            except OSError:
                continue
            # "imap\t<client host>\t<user>\t<mailbox>\t<command>" once logged in; the rig's admin is left alone
            if len(fields) >= 3 and fields[2] and fields[2] != ADMIN and (user is None or fields[2] == user):
                pids.add(int(entry.name))
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_DEADLINE
        while any(_is_imapd(p) for p in pids):
            if time.monotonic() > deadline:
                raise CyrusError(f"imapd processes {sorted(pids)} survived SIGTERM")
            time.sleep(0.005)
        return len(pids)

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start master (through the supervisor), wait until both ports greet with ``* OK ... Cyrus``, create the
        users added so far. No-op if running. The first start picks free ports; a restart reuses them. Raises
        CyrusError (with master's output) if it exits or does not greet within START_DEADLINE seconds."""
        if self.running:
            return
        if not self.ca_file.exists() or not self.key_file.exists():
            self._make_cert()
        if not self.sasldb_path.exists() or ADMIN not in self._sasl_users():
            self._set_password(ADMIN, self._admin_password)
        restart = self.plain_port is not None
        for attempt in range(1 if restart else 3):  # a probed free port can be taken before master binds it
            if not restart:
                self.plain_port = _free_port()
                self.tls_port = _free_port()
                while self.tls_port == self.plain_port:
                    self.tls_port = _free_port()
            self.config_path.write_text(self._imapd_conf())
            self.cyrus_conf_path.write_text(self._cyrus_conf())
            if not MASTER.exists():
                raise CyrusError(f"{MASTER} not found: run scripts/test, which installs cyrus-common")
            if not imapd_path().exists():
                raise CyrusError(
                    f"no imapd in {CYRUS_DIR} or {CYRUS_BIN}: run scripts/test, which extracts cyrus-imapd"
                )
            with open(self.stderr_path, "ab") as out:
                self._proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        _SUPERVISOR,
                        str(MASTER),
                        "-C",
                        str(self.config_path),
                        "-M",
                        str(self.cyrus_conf_path),
                        "-p",
                        str(self.workdir / "run" / "master.pid"),
                        "-D",
                    ],
                    stdin=subprocess.PIPE,
                    stdout=out,
                    stderr=out,
                    cwd=self.workdir,
                    start_new_session=True,  # own process group: stop() signals all of it
                )
            self._started()
            try:
                self._wait_ready(time.monotonic() + START_DEADLINE)
                break
            except CyrusError:
                self._terminate(signal.SIGKILL)
                if restart or attempt == 2:
                    raise
        for name in self._users:
            if name not in self._created:
                self._create_mailbox(name)

    def _sasl_users(self) -> set[str]:
        res = subprocess.run(
            ["/usr/sbin/sasldblistusers2", "-f", str(self.sasldb_path)], capture_output=True, text=True, timeout=10
        )
        return {line.split("@", 1)[0] for line in res.stdout.splitlines() if "@" in line}

    def _make_cert(self) -> None:
        super()._make_cert()
        for p in (self.key_file, self.ca_file):
            os.chown(p, self._uid, self._gid)
        os.chmod(self.key_file, 0o600)
        os.chmod(self.ca_file, 0o644)

    def _imapd_conf(self) -> str:
        w = self.workdir
        return f"""\
# Written by tests/rig/cyrus.py; nothing under /etc is read (every program gets -C this file).
configdirectory: {w}/config
defaultpartition: default
partition-default: {w}/spool
proc_path: {w}/run/proc
mboxname_lockpath: {w}/run/lock
lmtpsocket: {w}/run/socket/lmtp
idlesocket: {w}/run/socket/idle
notifysocket: {w}/run/socket/notify
servername: {REALM}
cyrus_user: cyrus
cyrus_group: mail
admins: {ADMIN}
altnamespace: {"yes" if self.altnamespace else "no"}
unixhierarchysep: {"yes" if self.hierarchy_separator == "/" else "no"}
allowplaintext: yes
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: {self.sasldb_path}
sasl_mech_list: PLAIN LOGIN
sasl_auto_transition: no
# tests provoke failed logins: answer them at once (default: 3 s pause)
failedloginpause: 0
tls_server_cert: {self.ca_file}
tls_server_key: {self.key_file}
delete_mode: immediate
# the default protects Sent/Drafts/Junk/Trash/Archive from DELETE, which delete_folder/reset_uidvalidity need
specialuse_protect: \\Important
expunge_mode: immediate
specialusealways: yes
syslog_prefix: cyrus-rig
"""

    def _cyrus_conf(self) -> str:
        c = self.config_path
        imapd = imapd_path()
        return f"""\
# Written by tests/rig/cyrus.py.
START {{
  recover cmd="ctl_cyrusdb -C {c} -r"
}}
SERVICES {{
  imap  cmd="{imapd} -C {c}" listen="{self.host}:{self.plain_port}" prefork=1
  imaps cmd="{imapd} -s -C {c}" listen="{self.host}:{self.tls_port}" prefork=1
}}
EVENTS {{
}}
"""


def _is_imapd(pid: int) -> bool:
    """True while ``pid`` is a live imapd (the pid may be reused by then: compare the command)."""
    try:
        return pid_alive(pid) and Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"imapd")
    except OSError:
        return False


def _list_name(line: bytes) -> bytes:
    """The (still encoded, quoted) mailbox name at the end of an untagged LIST line."""
    line = line.rstrip(b"\r\n")
    if line.endswith(b'"'):
        start = line.rindex(b' "', 0, len(line) - 1)
        return line[start + 1 :]
    return _quote(line.rsplit(b" ", 1)[1].decode("ascii"))
