"""A throwaway Dovecot IMAP server on loopback, for tests, demos and benchmarks.

Plain library code (no pytest): ``tests/conftest.py``, ``scripts/demo`` and ``scripts/bench`` all use it.

    with Dovecot(workdir) as dv:                      # starts it; everything lives under workdir
        dv.add_user("alice", "secret", separator="/")  # before or after start
        dv.seed("alice", "仕事/報告書", [SeedMessage(raw, flags=("\\Seen",))])
        with dv.connect("alice", tls=True) as client:  # imapclient, verifying dv.ca_file
            ...

Needs ``/usr/sbin/dovecot`` (Debian package dovecot-imapd), ``doveadm``, the ``openssl`` CLI, and root: Dovecot
runs its mail processes as ``nobody:nogroup``, so the workdir and its parents must be traversable by others.

Folder model (Maildir++ on disk, one namespace with ``inbox = yes`` and an empty prefix):

- A folder is named by a *logical path* with ``/`` between levels whatever the user's IMAP separator is:
  ``"INBOX"``, ``"Work/2024"``, ``"仕事/報告"``. A level may not contain ``/`` or ``.`` (Maildir++ stores the
  hierarchy with dots) and may not be empty. ``imap_name`` gives the name a client sees.
- ``seed``/``create_folder`` create only the folder named, never its parents. A parent that was not created
  explicitly is listed as ``\\Noselect \\HasChildren`` (what Dovecot itself does after ``CREATE a/b``);
  ``create_folder(user, "a")`` makes it an ordinary, selectable, empty folder.
- ``Sent``, ``Drafts``, ``Junk`` and ``Trash`` carry the RFC 6154 special-use flags of their names (LIST shows
  ``\\Sent`` etc.); nothing is created automatically. Localised names (送信済み, ...) carry no flag.
- Changes made on disk while the server runs (new or deleted folders) are visible to open sessions at their
  next LIST; new messages at their next command.

Dovecot behaviours worth knowing when writing tests against it:

- BODY[] of a message holding a NUL byte comes back with 0x80 in its place (Dovecot never sends NULs).
- A failed LOGIN is answered after up to 0.5 s (Dovecot answers failures from a 500 ms timer even with
  ``auth_failure_delay = 0``); the per-IP penalty that would grow to 15 s is disabled.
- At most 10 concurrent sessions per user and IP (Dovecot's default ``mail_max_userip_connections``).
"""

from __future__ import annotations

import ctypes
import dataclasses
import datetime as dt
import grp
import itertools
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from tests.rig.imap_server import STOP_DEADLINE, ServerProcess, pid_alive, tail

DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"

START_DEADLINE = 10.0

#: Maildir info letters for the IMAP system flags (RFC 3501), as Dovecot writes them.
FLAG_LETTERS = {
    "\\flagged": "F",
    "\\answered": "R",
    "\\seen": "S",
    "\\deleted": "T",
    "\\draft": "D",
}
#: The special-use folders configured on every instance (RFC 6154 flag per folder name).
SPECIAL_USE = {"Sent": "\\Sent", "Drafts": "\\Drafts", "Junk": "\\Junk", "Trash": "\\Trash"}

DEFAULT_INTERNALDATE = dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=dt.UTC)

_USER_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(@[A-Za-z0-9-][A-Za-z0-9.-]*)?")
_KEYWORD_RE = re.compile(r"[!#$&'+\-.0-9A-Z^_`a-z|~]+")  # IMAP atom without list/quoted specials
_MAX_KEYWORDS = 26  # Maildir stores keywords as the letters a..z


class DovecotError(RuntimeError):
    """The rig could not start, stop or drive Dovecot; the message carries the tail of Dovecot's log."""


@dataclasses.dataclass(frozen=True)
class SeedMessage:
    """One message to put in a folder.

    ``flags`` are IMAP flags: system flags (``\\Seen``, ``\\Answered``, ``\\Flagged``, ``\\Deleted``, ``\\Draft``,
    any case) or keywords (``$Forwarded``, ``$Junk``, ...; at most 26 distinct keywords per folder).
    ``internaldate`` must be timezone-aware; it becomes the file's mtime, which Dovecot reports as INTERNALDATE
    (whole seconds).
    """

    raw: bytes
    flags: tuple[str, ...] = ()
    internaldate: dt.datetime = DEFAULT_INTERNALDATE

    def __post_init__(self) -> None:
        if not isinstance(self.raw, bytes):
            raise TypeError(f"SeedMessage.raw must be bytes, not {type(self.raw).__name__}")
        if self.internaldate.tzinfo is None or self.internaldate.utcoffset() is None:
            raise ValueError("SeedMessage.internaldate must be timezone-aware")
        object.__setattr__(self, "flags", tuple(self.flags))


@dataclasses.dataclass(frozen=True)
class SnapshotEntry:
    """One message as seen through IMAP: comparable across sessions (no \\Recent)."""

    uid: int
    flags: tuple[str, ...]
    sha256: str
    internaldate: dt.datetime


@dataclasses.dataclass(frozen=True)
class ImapUser:
    """One account on a Dovecot instance, with shortcuts to the instance's per-user methods."""

    name: str
    password: str
    separator: str
    server: Dovecot  # or any ImapServerRig (tests/rig/imap_server.py): the Cyrus rig hands out ImapUsers too

    def folder_name(self, folder: str) -> str:
        """The IMAP name of a logical folder path for this user: ``"A/B"`` -> ``"A.B"`` with a "." separator."""
        return self.server.imap_name(self.name, folder)

    def connect(self, *, tls: bool = False, **kwargs):
        """A logged-in ``imapclient.IMAPClient``; see ``Dovecot.connect``."""
        return self.server.connect(self.name, tls=tls, **kwargs)

    def seed(self, folder: str, messages: Sequence[SeedMessage]) -> None:
        self.server.seed(self.name, folder, messages)

    def create_folder(self, folder: str) -> Path:
        return self.server.create_folder(self.name, folder)

    def create_folders(self, folders: Sequence[str]) -> None:
        self.server.create_folders(self.name, folders)

    def delete_folder(self, folder: str, *, recursive: bool = False) -> None:
        self.server.delete_folder(self.name, folder, recursive=recursive)

    def reset_uidvalidity(self, folder: str) -> int | None:
        return self.server.reset_uidvalidity(self.name, folder)

    def snapshot(self) -> dict[str, list[SnapshotEntry]]:
        return self.server.snapshot(self.name)


@dataclasses.dataclass(frozen=True)
class _User:
    name: str
    password: str
    separator: str


def _split_folder(folder: str) -> list[str]:
    """``"A/B"`` -> ``["A", "B"]``; ``"INBOX"`` (any case) -> ``[]``. Raises ValueError on unusable names."""
    if not isinstance(folder, str) or not folder:
        raise ValueError(f"folder must be a non-empty str, got {folder!r}")
    if folder.upper() == "INBOX":
        return []
    parts = folder.split("/")
    for part in parts:
        if not part or "." in part or part in (".", ".."):
            raise ValueError(f"folder {folder!r}: levels must be non-empty and contain no '.'")
    if parts[0].upper() == "INBOX":
        parts[0] = "INBOX"  # Dovecot treats the INBOX prefix case-insensitively; Maildir++ stores it as .INBOX.x
    return parts


def _flag_info(flags: Iterable[str], keyword_letter) -> str:
    letters = set()
    for flag in flags:
        if isinstance(flag, bytes):
            flag = flag.decode("ascii")
        low = flag.lower()
        if low == "\\recent":
            continue  # session state, not storable
        if low in FLAG_LETTERS:
            letters.add(FLAG_LETTERS[low])
        elif flag.startswith("\\"):
            raise ValueError(f"unknown system flag {flag!r}")
        else:
            letters.add(keyword_letter(flag))
    # Dovecot wants the info letters sorted; system flags (upper case) sort before keywords (a..z).
    return "".join(sorted(letters))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent (thread) dies, e.g. a test runner killed with -9."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


class Dovecot(ServerProcess):
    """One Dovecot instance listening on two free loopback ports (plain IMAP and IMAP over TLS).

    Not thread-safe. ``add_user`` works before and after ``start`` (one passwd-file per user, read at the
    user's first login). ``seed``, ``create_folder``, ``delete_folder`` and ``reset_uidvalidity`` write the
    Maildir++ tree directly and work whether or not the server runs. A running instance is stopped at
    interpreter exit, and Dovecot gets SIGTERM if the thread that started it dies (PR_SET_PDEATHSIG), so a
    crashed test run leaves no daemon behind.

    ``master_user_separator`` (e.g. ``"*"``) turns on Dovecot master users: ``add_master_user`` adds one, and
    ``alice*admin`` with admin's password then logs in as alice. Off by default (the config is unchanged).

    ``oauth2_introspection`` (an RFC 7662 introspection URL, e.g. tests/rig/oauth_server.py's) turns on SASL
    XOAUTH2 and OAUTHBEARER: an ``oauth2`` passdb asks that URL about each bearer token and logs the user in
    when it answers ``"active": true`` with a ``username`` (the user must exist: the userdb is unchanged).
    ``oauth2_username_format`` is how both names are compared: ``%d`` (the domain) makes a token whose username
    is ``app@campus.test`` good for every ``...@campus.test`` mailbox (app-only access, as Exchange's).
    """

    #: ``tests.rig.imap_server.ImapServerRig``: which server this is
    kind = "dovecot"
    error = DovecotError
    host = "127.0.0.1"
    #: a separator ``add_user`` accepts (any user may also have ".")
    default_separator = "/"

    def __init__(
        self,
        workdir: Path | str,
        *,
        master_user_separator: str | None = None,
        oauth2_introspection: str | None = None,
        oauth2_username_format: str = "%u",
    ) -> None:
        self.workdir = Path(workdir).absolute()
        self.master_user_separator = master_user_separator
        self.oauth2_introspection = oauth2_introspection
        self.oauth2_username_format = oauth2_username_format
        self._masters: dict[str, str] = {}
        self.plain_port: int | None = None
        self.tls_port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._users: dict[str, _User] = {}
        self._counter = itertools.count()
        self._nobody_uid = pwd.getpwnam("nobody").pw_uid
        self._nogroup_gid = grp.getgrnam("nogroup").gr_gid
        self._make_dirs(self.workdir)
        self._check_traversable(self.workdir)
        self.mail_root.mkdir(exist_ok=True)
        os.chown(self.mail_root, self._nobody_uid, self._nogroup_gid)
        os.chmod(self.mail_root, 0o755)
        self.users_dir.mkdir(exist_ok=True)
        os.chmod(self.users_dir, 0o755)

    # ----------------------------------------------------------------- paths

    @property
    def config_path(self) -> Path:
        return self.workdir / "dovecot.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "dovecot.log"

    @property
    def stderr_path(self) -> Path:
        """Dovecot's own stdout/stderr (startup errors land here before the log process runs)."""
        return self.workdir / "dovecot.stderr"

    @property
    def ca_file(self) -> Path:
        """The certificate to trust (self-signed; SAN ``DNS:localhost, IP:127.0.0.1``)."""
        return self.workdir / "cert.pem"

    @property
    def key_file(self) -> Path:
        return self.workdir / "key.pem"

    @property
    def users_dir(self) -> Path:
        """One passwd-file per user (``users/<name>``), see ``_write_passwd``."""
        return self.workdir / "users"

    @property
    def mail_root(self) -> Path:
        return self.workdir / "mail"

    def maildir(self, user: str) -> Path:
        """The user's Maildir++ root (INBOX lives directly in it)."""
        return self.mail_root / user / "Maildir"

    def folder_path(self, user: str, folder: str) -> Path:
        """Directory of ``folder`` (logical ``/`` path) for ``user``, on-disk names in modified UTF-7."""
        from imapclient import imap_utf7

        parts = _split_folder(folder)
        root = self.maildir(self._user(user).name)
        if not parts:
            return root
        return root / ("." + ".".join(imap_utf7.encode(p).decode("ascii") for p in parts))

    def imap_name(self, user: str, folder: str) -> str:
        """The IMAP (decoded) name of a logical folder path for ``user``: ``"A/B"`` -> ``"A.B"`` for a "."
        user; ``"INBOX"`` for the inbox."""
        parts = _split_folder(folder)
        return self._user(user).separator.join(parts) if parts else "INBOX"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # ----------------------------------------------------------------- users

    def add_user(self, name: str, password: str | None = None, *, separator: str = "/") -> str:
        """Add a user whose IMAP hierarchy separator is ``separator`` ("/" or "."). Returns the password
        (a random one when ``password`` is None). Raises ValueError for a duplicate or malformed user."""
        if not _USER_RE.fullmatch(name):
            raise ValueError(f"user name {name!r}: use letters, digits, '.', '_' and '-' (and one @domain)")
        if name in self._users:
            raise ValueError(f"user {name!r} exists already")
        if separator not in ("/", "."):
            raise ValueError(f"separator must be '/' or '.', got {separator!r}")
        if password is None:
            password = secrets.token_urlsafe(12)
        if any(c in password for c in ":\n\r\0"):
            raise ValueError("password may not contain ':', NUL or line breaks (passwd-file format)")
        self._users[name] = _User(name, password, separator)
        home = self.mail_root / name
        for d in (home, self.maildir(name), *(self.maildir(name) / s for s in ("cur", "new", "tmp"))):
            d.mkdir(exist_ok=True)
            os.chown(d, self._nobody_uid, self._nogroup_gid)
            os.chmod(d, 0o700)
        self._write_passwd(self._users[name])
        return password

    def user(self, name: str) -> ImapUser:
        """The handle of an existing user. Raises KeyError."""
        u = self._user(name)
        return ImapUser(u.name, u.password, u.separator, self)

    def password(self, user: str) -> str:
        return self._user(user).password

    def separator(self, user: str) -> str:
        return self._user(user).separator

    def can_store(self, raw: bytes) -> bool:
        """Always True: Dovecot stores any bytes (it serves a NUL as 0x80, see the module docstring)."""
        return True

    def _user(self, name: str) -> _User:
        try:
            return self._users[name]
        except KeyError:
            raise KeyError(f"no such user {name!r}; add_user() first") from None

    def _write_passwd(self, user: _User) -> None:
        # One file per user, written once: Dovecot checks a passwd-file for changes at most once a second, so
        # a user appended to a shared file right after another login would stay unknown for up to a second.
        # A file that did not exist at the previous lookup is read fresh.
        extra = "userdb_namespace/inbox/separator=." if user.separator == "." else ""
        path = self.users_dir / user.name
        tmp = path.with_name(f".{user.name}.tmp")
        tmp.write_text(f"{user.name}:{{PLAIN}}{user.password}::::::{extra}\n")
        os.chmod(tmp, 0o644)  # read by the auth process, which runs as nobody
        os.replace(tmp, path)

    def add_master_user(self, name: str, password: str | None = None) -> str:
        """Add a master user (needs ``master_user_separator``); returns the password. Add master users before
        the first master login: Dovecot re-reads the master passwd-file at most once a second."""
        if self.master_user_separator is None:
            raise ValueError("master users need Dovecot(..., master_user_separator='*')")
        if not _USER_RE.fullmatch(name):
            raise ValueError(f"master user name {name!r}: use letters, digits, '.', '_' and '-' (and one @domain)")
        if password is None:
            password = secrets.token_urlsafe(12)
        if any(c in password for c in ":\n\r\0"):
            raise ValueError("password may not contain ':', NUL or line breaks (passwd-file format)")
        self._masters[name] = password
        path = self.workdir / "master-users"
        tmp = path.with_name(".master-users.tmp")
        tmp.write_text("".join(f"{n}:{{PLAIN}}{pw}::::::\n" for n, pw in self._masters.items()))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        return password

    # ----------------------------------------------------------------- clients

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts only this instance's certificate, hostname checking on (connect to
        ``localhost`` or ``127.0.0.1``)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start Dovecot in the foreground and wait until both ports greet with ``* OK``. No-op if running.

        The first start picks two free loopback ports; a restart after ``stop`` reuses them, so clients can
        reconnect to the same address. Raises DovecotError (with the log tail) if Dovecot exits or does not
        greet within START_DEADLINE seconds.
        """
        if self.running:
            return
        for d in ("run", "state"):
            (self.workdir / d).mkdir(exist_ok=True)
        if not self.ca_file.exists() or not self.key_file.exists():
            self._make_cert()
        restart = self.plain_port is not None
        for attempt in range(1 if restart else 3):  # a probed free port can be taken before Dovecot binds it
            if not restart:
                self.plain_port = _free_port()
                self.tls_port = _free_port()
                while self.tls_port == self.plain_port:
                    self.tls_port = _free_port()
            self.config_path.write_text(self._config())
            log_size = self.log_path.stat().st_size if self.log_path.exists() else 0
            with open(self.stderr_path, "ab") as out:
                try:
                    self._proc = subprocess.Popen(
                        [DOVECOT, "-F", "-c", str(self.config_path)],
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=out,
                        cwd=self.workdir,
                        # Own process group: stop() signals the whole group, and a Ctrl-C in the terminal
                        # reaches the test runner only.
                        start_new_session=True,
                        preexec_fn=_die_with_parent,
                    )
                except FileNotFoundError as e:
                    raise DovecotError(f"{DOVECOT} not found: install the Debian package dovecot-imapd") from e
            self._started()
            try:
                self._wait_ready(time.monotonic() + START_DEADLINE)
                return
            except DovecotError:
                self._terminate(signal.SIGKILL)  # nothing to shut down gracefully
                if restart or attempt == 2 or "in use" not in self._log_since(log_size):
                    raise

    def kill_connections(self, user: str | None = None) -> int:
        """Drop the IMAP sessions of ``user`` (of every user when None) as an admin would with ``doveadm
        kick``: the client gets ``* BYE`` and the connection closes. Returns once those imap processes are
        gone, with how many there were. Raises DovecotError if doveadm fails or a process outlives the
        deadline."""
        if user is not None:
            self._user(user)
        who = self.doveadm("who", "-1", *([user] if user is not None else []))
        pids = {int(fields[2]) for line in who.splitlines()[1:] if len(fields := line.split()) >= 3}
        if not pids:
            return 0
        self.doveadm("kick", user if user is not None else "*")
        deadline = time.monotonic() + STOP_DEADLINE
        while any(pid_alive(p) for p in pids):
            if time.monotonic() > deadline:
                raise DovecotError(f"imap processes {sorted(p for p in pids if pid_alive(p))} survived kick")
            time.sleep(0.005)
        return len(pids)

    def doveadm(self, *args: str, timeout: float = STOP_DEADLINE) -> str:
        """Run ``doveadm -c CONF ARGS`` against this instance; returns stdout. Raises DovecotError."""
        if not self.running:
            raise DovecotError("not running")
        res = subprocess.run(
            [DOVEADM, "-c", str(self.config_path), *args], capture_output=True, text=True, timeout=timeout
        )
        if res.returncode != 0:
            raise DovecotError(f"doveadm {' '.join(args)} failed ({res.returncode}): {res.stderr.strip()}")
        return res.stdout

    def _log_since(self, offset: int) -> str:
        return _read_from(self.log_path, offset)

    def _diagnostics(self) -> str:
        return (
            f"--- {self.log_path} (tail)\n{tail(self.log_path)}\n"
            f"--- {self.stderr_path} (tail)\n{tail(self.stderr_path)}"
        )

    def _config(self) -> str:
        w = self.workdir
        mailboxes = "".join(
            f"  mailbox {name} {{\n    special_use = {flag}\n    auto = no\n  }}\n"
            for name, flag in SPECIAL_USE.items()
        )
        return f"""\
# Written by tests/rig/dovecot.py; nothing under /etc/dovecot is read.
base_dir = {w}/run
state_dir = {w}/state
log_path = {self.log_path}
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{self.ca_file}
ssl_key = <{self.key_file}
disable_plaintext_auth = no
# Tests provoke failed logins: no 2 s delay per failure, and (anvil-auth-penalty below) no penalty growing
# to 15 s per client IP.
auth_failure_delay = 0
auth_mechanisms = plain login{" xoauth2 oauthbearer" if self.oauth2_introspection else ""}
default_internal_user = nobody
default_login_user = nobody
mail_uid = nobody
mail_gid = nogroup
mail_home = {self.mail_root}/%u
mail_location = maildir:~/Maildir
# Dovecot's default, spelled out: with the list index, parents that exist only through their children list
# as \\Noselect (without it, LIST "*" omits them). The rig refreshes it after changing folders on disk.
mailbox_list_index = yes
{self._master_config()}{self._oauth2_config()}passdb {{
  driver = passwd-file
{"  mechanisms = plain login" + chr(10) if self.oauth2_introspection else ""}  args = scheme=PLAIN username_format=%u {self.users_dir}/%u
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {self.users_dir}/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
{mailboxes}}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.plain_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.tls_port}
    ssl = yes
  }}
}}
"""

    def _master_config(self) -> str:
        if self.master_user_separator is None:
            return ""
        path = self.workdir / "master-users"
        if not path.exists():
            path.write_text("")
            os.chmod(path, 0o644)
        return f"""\
auth_master_user_separator = {self.master_user_separator}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {path}
  master = yes
}}
"""

    def _oauth2_config(self) -> str:
        """Dovecot 2.3's oauth2 passdb: the bearer token is POSTed (token=...) to the introspection URL,
        and only an answer with "active": true counts; `mechanisms` keeps it out of password logins."""
        if self.oauth2_introspection is None:
            return ""
        path = self.workdir / "dovecot-oauth2.conf.ext"
        path.write_text(
            f"introspection_mode = post\n"
            f"introspection_url = {self.oauth2_introspection}\n"
            "force_introspection = yes\n"
            "username_attribute = username\n"
            "active_attribute = active\n"
            "active_value = true\n"
            f"username_format = {self.oauth2_username_format}\n"
        )
        os.chmod(path, 0o644)
        return f"""\
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {path}
}}
"""

    # ----------------------------------------------------------------- mail

    def create_folders(self, user: str, folders: Sequence[str]) -> None:
        """``create_folder`` for many folders at once (thousands: the folder list is rebuilt once)."""
        created = [self._ensure_folder(self.folder_path(user, f)) for f in folders]
        if any(created) and self.running:
            self.doveadm("mailbox", "list", "-u", user, timeout=300)  # see _refresh_list

    def create_folder(self, user: str, folder: str) -> Path:
        """Create ``folder`` (empty, selectable) if missing; its parents are not created (they list as
        ``\\Noselect`` until created themselves). Returns its directory."""
        path = self.folder_path(user, folder)
        if self._ensure_folder(path):
            self._refresh_list(user)
        return path

    def seed(self, user: str, folder: str, messages: Sequence[SeedMessage]) -> None:
        """Append ``messages`` to ``folder`` (created if missing, see ``create_folder``) in order: Dovecot
        gives them increasing UIDs in list order, after any messages already there. Writes the Maildir++
        files directly (tmp/, then rename into cur/), so it is fast and works with the server running or
        not; a session with the folder selected sees the new messages at its next NOOP/command."""
        path = self.create_folder(user, folder)
        uid, gid = self._nobody_uid, self._nogroup_gid
        keywords = _Keywords(path / "dovecot-keywords", uid, gid)
        infos = [_flag_info(msg.flags, keywords.letter) for msg in messages]
        keywords.save()  # before any file that uses a new letter becomes visible
        # One timestamp per call plus a per-instance counter: Dovecot orders new files by the time and then
        # the M (microseconds) field numerically, so UIDs follow list order, also across calls.
        ts = int(time.time())
        pid = os.getpid()
        tmp_dir, cur_dir = path / "tmp", path / "cur"
        for msg, info in zip(messages, infos, strict=True):
            raw = msg.raw
            base = f"{ts}.M{next(self._counter)}P{pid}.gimport,S={len(raw)}"
            tmp = tmp_dir / base
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                _write_all(fd, raw)
                os.fchown(fd, uid, gid)
                mtime = msg.internaldate.timestamp()
                os.utime(fd, (mtime, mtime))
            finally:
                os.close(fd)
            os.rename(tmp, cur_dir / f"{base}:2,{info}")

    def delete_folder(self, user: str, folder: str, *, recursive: bool = False) -> None:
        """Remove ``folder`` and its messages from disk, behind Dovecot's back: for "the folder vanished
        mid-run" tests. Open sessions see it gone at their next LIST; SELECT/STATUS answer NO; a session
        that has it selected is disconnected by Dovecot at its next command ("IMAP session state is
        inconsistent"). Raises FileNotFoundError if missing, ValueError for INBOX or for a folder with
        subfolders unless ``recursive`` (IMAP DELETE refuses those too)."""
        path = self.folder_path(user, folder)
        if path == self.maildir(user):
            raise ValueError("cannot delete INBOX")
        if not path.is_dir():
            raise FileNotFoundError(f"{user}: no folder {folder!r} ({path})")
        children = [p for p in path.parent.iterdir() if p.name.startswith(path.name + ".")]
        if children and not recursive:
            raise ValueError(f"{user}: folder {folder!r} has subfolders; pass recursive=True")
        for p in (path, *children):
            shutil.rmtree(p)
        self._refresh_list(user)

    def reset_uidvalidity(self, user: str, folder: str) -> int | None:
        """Make Dovecot give ``folder`` a new UIDVALIDITY (and renumber its messages from 1) while keeping the
        messages, their flags and INTERNALDATEs: drops the folder's dovecot-uidlist and index files.

        Returns the new UIDVALIDITY when the server runs (it is assigned at once through doveadm), None
        otherwise (assigned at the next access). Sessions that have the folder selected at that moment are
        undefined; ``kill_connections`` first. Raises FileNotFoundError if the folder does not exist.
        """
        path = self.folder_path(user, folder)
        if not (path / "cur").is_dir():
            raise FileNotFoundError(f"{user}: no folder {folder!r} ({path})")
        for entry in path.iterdir():
            if entry.name == "dovecot-uidlist" or entry.name.startswith("dovecot.index"):
                entry.unlink()
        if not self.running:
            return None
        out = self.doveadm("mailbox", "status", "-u", user, "uidvalidity", self.imap_name(user, folder))
        return int(out.strip().partition("=")[2])

    def message_count(self, user: str, folder: str) -> int:
        """Messages on disk in ``folder`` (cur/ and new/), without asking Dovecot."""
        path = self.folder_path(user, folder)
        return sum(1 for d in ("cur", "new") for e in os.scandir(path / d) if not e.name.startswith("."))

    def snapshot(self, user: str) -> dict[str, list[SnapshotEntry]]:
        """Every selectable folder of ``user`` through IMAP (read-only: EXAMINE and BODY.PEEK[]).

        Returns folder name as the server lists it (decoded, with the user's separator) -> messages in UID
        order. For "the source is unchanged" assertions: compare two snapshots with ``==``.
        """
        from tests.rig.imap_server import snapshot_via_imap

        return snapshot_via_imap(lambda **kw: self.connect(user, **kw))

    # ----------------------------------------------------------------- helpers

    def _ensure_folder(self, path: Path) -> bool:
        """Create the Maildir++ folder at ``path`` if needed; True if it did not exist."""
        uid, gid = self._nobody_uid, self._nogroup_gid
        created = not path.is_dir()
        for d in (path, path / "cur", path / "new", path / "tmp"):
            if not d.is_dir():
                d.mkdir()
                os.chown(d, uid, gid)
                os.chmod(d, 0o700)
        if path.name.startswith("."):  # a folder, not the INBOX/root
            marker = path / "maildirfolder"
            if not marker.exists():
                marker.touch()
                os.chown(marker, uid, gid)
        return created

    def _refresh_list(self, user: str) -> None:
        # Dovecot caches the folder list in an index that it re-reads from disk lazily; one listing through
        # doveadm rebuilds it, and open sessions pick the new state up at their next LIST.
        if self.running:
            self.doveadm("mailbox", "list", "-u", user)

    def _make_dirs(self, path: Path) -> None:
        """mkdir -p, chmod 0755 on the components created here (Dovecot's mail processes run as nobody)."""
        missing = []
        p = path
        while not p.exists():
            missing.append(p)
            p = p.parent
        for d in reversed(missing):
            d.mkdir()
            os.chmod(d, 0o755)

    def _check_traversable(self, path: Path) -> None:
        for p in (path, *path.parents):
            st = p.stat()
            if not st.st_mode & 0o001 and st.st_uid != self._nobody_uid:
                raise DovecotError(
                    f"{p} is not traversable by 'nobody' (mode {st.st_mode & 0o7777:o}), which Dovecot's mail "
                    f"processes run as; use a workdir whose parents all have the o+x bit"
                )


class _Keywords:
    """The folder's ``dovecot-keywords`` file: keyword <-> Maildir letter (a = 0, b = 1, ...)."""

    def __init__(self, path: Path, uid: int, gid: int) -> None:
        self.path, self.uid, self.gid = path, uid, gid
        self.by_name: dict[str, int] = {}
        self.dirty = False
        if path.exists():
            for line in path.read_text().splitlines():
                idx, _, name = line.partition(" ")
                if idx.isdigit() and name:
                    self.by_name[name] = int(idx)

    def letter(self, keyword: str) -> str:
        if not _KEYWORD_RE.fullmatch(keyword):
            raise ValueError(f"not a valid IMAP keyword: {keyword!r}")
        for name, idx in self.by_name.items():
            if name.lower() == keyword.lower():
                return chr(ord("a") + idx)
        used = set(self.by_name.values())
        idx = next((i for i in range(_MAX_KEYWORDS) if i not in used), None)
        if idx is None:
            raise ValueError(f"more than {_MAX_KEYWORDS} keywords in one folder")
        self.by_name[keyword] = idx
        self.dirty = True
        return chr(ord("a") + idx)

    def save(self) -> None:
        if not self.dirty:
            return
        tmp = self.path.with_name("dovecot-keywords.gimport-tmp")
        tmp.write_text("".join(f"{i} {n}\n" for n, i in sorted(self.by_name.items(), key=lambda kv: kv[1])))
        os.chown(tmp, self.uid, self.gid)
        os.replace(tmp, self.path)
        self.dirty = False


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
