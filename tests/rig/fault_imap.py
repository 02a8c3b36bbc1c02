"""A scripted IMAP4rev1 server that misbehaves on request: the hostile servers of issues 11 and 17, on loopback.

    mailbox = Mailbox([
        FaultFolder("INBOX", [FaultMessage(1, raw1, flags=("\\Seen",)), FaultMessage(2, raw2)]),
        FaultFolder("仕事", [FaultMessage(7, raw3, internaldate=when)], uidvalidity=42),
    ])
    with FaultImapServer(mailbox, Faults(fetch_error_uids={2})) as srv:   # a thread per connection
        make_workspace(..., server=srv, user=srv.user, tls=False)        # host, plain_port, password()
        ...
        assert srv.command_names() <= READ_ONLY_COMMANDS                  # every command is recorded

What it serves (enough for gimport, imaplib and IMAPClient): the greeting, CAPABILITY, NOOP, LOGOUT, LOGIN, ID,
ENABLE, NAMESPACE, LIST/LSUB (``*`` and ``%`` patterns; ``""`` asks for the delimiter), STATUS, EXAMINE and SELECT
(both read-only: nothing is ever changed, SELECT just answers ``[READ-WRITE]``), CLOSE, UNSELECT, SEARCH / UID
SEARCH (``ALL``, ``SINCE``, ``BEFORE``, ``ON``, ``UID <set>``, a sequence set, ANDed), FETCH / UID FETCH of ``UID FLAGS INTERNALDATE
RFC822.SIZE BODY[] BODY.PEEK[] BODY.PEEK[HEADER] BODY.PEEK[HEADER.FIELDS (...)] BODY.PEEK[TEXT] BINARY.PEEK[]
RFC822 RFC822.HEADER`` (and Gmail's ``X-GM-LABELS X-GM-MSGID`` when ``X-GM-EXT-1`` is a capability: see
tests/rig/gmail_imap.py). Synchronising and non-synchronising (LITERAL+) literals in commands. No TLS: tests use
``security = "plain"``. Anything else (STORE, EXPUNGE, COPY, APPEND, DELETE, ...) is recorded and answered NO.

Each misbehaviour is a field of ``Faults`` (frozen dataclass, all off by default); the docstring of each field
says exactly what the server does. Message flags and folder names given as ``bytes`` are written to the wire
verbatim (8-bit flags, ``&ZZZ``, ``NIL``); as ``str`` they are encoded properly (modified UTF-7 for names).

Bounded: every socket has a timeout (``idle_timeout``), every trickle waits on the stop event, and the server
stops itself ``lifetime`` seconds after ``start`` (default 120) if the test did not. ``stop`` closes every client
connection and joins every thread, raising RuntimeError if one outlives ``STOP_DEADLINE``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import itertools
import random
import re
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Literal

STOP_DEADLINE = 5.0
MAX_LINE = 1_000_000  # a longer command line is answered BAD and the connection closed
MAX_LITERAL = 50_000_000

DEFAULT_INTERNALDATE = dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
DEFAULT_CAPABILITIES = ("IMAP4rev1", "LITERAL+", "ID", "UNSELECT", "NAMESPACE", "BINARY")
#: The commands a read-only client may send; ``server.command_names() <= READ_ONLY_COMMANDS`` checks it.
READ_ONLY_COMMANDS = frozenset(
    {
        "CAPABILITY", "NOOP", "LOGOUT", "LOGIN", "ID", "ENABLE", "NAMESPACE", "LIST", "LSUB", "STATUS",
        "EXAMINE", "CLOSE", "UNSELECT", "SEARCH", "UID SEARCH", "FETCH", "UID FETCH", "AUTHENTICATE", "STARTTLS",
    }
)  # fmt: skip
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


# --------------------------------------------------------------------------- the mailbox


@dataclasses.dataclass(frozen=True)
class FaultMessage:
    """One message. ``flags``: ``str`` flags are written as given (``\\Seen``, ``$Forwarded``); ``bytes`` ones
    verbatim, so 8-bit or malformed flags can be served. ``internaldate`` must be timezone-aware."""

    uid: int
    raw: bytes
    flags: tuple[str | bytes, ...] = ()
    internaldate: dt.datetime = DEFAULT_INTERNALDATE
    #: Gmail's X-GM-LABELS (served when ``X-GM-EXT-1`` is a capability): ``str`` labels are sent in modified
    #: UTF-7 and quoted as needed (``\\Inbox`` as an atom); ``bytes`` ones verbatim (``b'"\\\\Important"'``).
    labels: tuple[str | bytes, ...] = ()
    #: Gmail's X-GM-MSGID (the same message in several folders has one); None: the UID.
    gm_msgid: int | None = None

    def __post_init__(self) -> None:
        if self.uid < 1:
            raise ValueError(f"uid must be >= 1, got {self.uid}")
        if self.internaldate.utcoffset() is None:
            raise ValueError("internaldate must be timezone-aware")
        object.__setattr__(self, "flags", tuple(self.flags))
        object.__setattr__(self, "labels", tuple(self.labels))


@dataclasses.dataclass
class FaultFolder:
    """A folder. ``name`` as ``str`` is the decoded name (sent in modified UTF-7, quoted when needed); as ``bytes``
    it is written to the wire verbatim in LIST (``b"&ZZZ"``, ``b"NIL"``, ``b'"x"'``) and matched, unquoted,
    against what a client sends. ``attributes`` go into LIST (``\\Sent``, ``\\Noselect``, ...). Messages must have
    strictly increasing UIDs."""

    name: str | bytes
    messages: Sequence[FaultMessage] = ()
    uidvalidity: int = 1
    attributes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.messages = list(self.messages)
        uids = [m.uid for m in self.messages]
        if any(b <= a for a, b in itertools.pairwise(uids)):
            raise ValueError(f"folder {self.name!r}: UIDs must increase strictly")
        self._by_uid = {m.uid: i for i, m in enumerate(self.messages)}

    @property
    def wire_name(self) -> bytes:
        if isinstance(self.name, bytes):
            return self.name
        from imapclient import imap_utf7

        return _astring(imap_utf7.encode(self.name))

    @property
    def match_name(self) -> bytes:
        """The name as a client sends it, unquoted (modified UTF-7 for ``str`` names)."""
        if isinstance(self.name, bytes):
            n = self.name
            return _unquote(n) if n.startswith(b'"') else n
        from imapclient import imap_utf7

        return imap_utf7.encode(self.name)

    def index_of(self, uid: int) -> int | None:
        return self._by_uid.get(uid)

    @property
    def uidnext(self) -> int:
        return (self.messages[-1].uid + 1) if self.messages else 1


@dataclasses.dataclass
class Mailbox:
    """The folders one user sees, in LIST order."""

    folders: list[FaultFolder]

    def find(self, name: bytes) -> FaultFolder | None:
        for f in self.folders:
            if f.match_name == name or (name.upper() == b"INBOX" and f.match_name.upper() == b"INBOX"):
                return f
        return None


def many_messages(count: int, *, first_uid: int = 1, uid_step: int = 1) -> list[FaultMessage]:
    """``count`` small distinct messages (``Message-ID: <n@fault.test>``): for folders large enough that a
    ``UID SEARCH`` answer exceeds imaplib's 1,000,000-byte line limit (~125,000 seven-digit UIDs)."""
    out = []
    for i in range(count):
        uid = first_uid + i * uid_step
        raw = b"Message-ID: <%d@fault.test>\r\nSubject: m%d\r\n\r\nbody %d\r\n" % (uid, uid, uid)
        out.append(FaultMessage(uid, raw))
    return out


# --------------------------------------------------------------------------- the faults


@dataclasses.dataclass(frozen=True)
class Faults:
    """What to get wrong. Every field is off by default; a UID set names the messages affected."""

    #: Greet with ``* PREAUTH`` (already authenticated); a LOGIN is then answered ``BAD``.
    preauth: bool = False
    #: Capabilities in the greeting and in CAPABILITY answers.
    capabilities: tuple[str, ...] = DEFAULT_CAPABILITIES
    #: Close the connection, without an answer, when the Nth command of a connection has been read.
    drop_after_commands: int | None = None
    #: Only in these sessions (1 = the first connection); None = every session.
    drop_in_sessions: frozenset[int] | None = None
    #: Close the connection, without an answer, when one of these commands (``"LOGIN"``, ``"UID FETCH"``) is read,
    #: in the sessions of ``drop_commands_in_sessions`` (None = every session).
    drop_commands: frozenset[str] = frozenset()
    drop_commands_in_sessions: frozenset[int] | None = None
    #: Close the connection, without an answer, after reading each command with this probability (one random
    #: draw per command, over all sessions, seeded by ``drop_seed``): a LOGIN is as likely to be lost as a FETCH.
    #: ``server.dropped`` counts them.
    drop_rate: float = 0.0
    drop_seed: int = 0
    #: Each UID in SEARCH answers this many times (``1 1 2 2``). The answer is always one line.
    search_repeat: int = 1
    #: A FETCH of these UIDs' bodies (or of anything, with ``fetch_error_on="any"``) answers the messages before
    #: them, then ``NO FETCH failed: Internal error``, then (``fetch_error_bye``) ``* BYE`` and closes: Dovecot
    #: on an unreadable message.
    fetch_error_uids: frozenset[int] = frozenset()
    fetch_error_on: Literal["body", "any"] = "body"
    fetch_error_bye: bool = True
    #: FETCH answers for these UIDs leave out BODY[] / BINARY[] / RFC822 (the other items are sent).
    omit_body_uids: frozenset[int] = frozenset()
    #: FETCH answers carry no UID item, even for UID FETCH.
    omit_uid: bool = False
    #: The body literal of these UIDs is sent one byte every ``trickle_interval`` seconds.
    trickle_literal_uids: frozenset[int] = frozenset()
    #: LIST answers are sent one byte every ``trickle_interval`` seconds.
    trickle_list: bool = False
    trickle_interval: float = 1.0
    #: The hierarchy delimiter in LIST (bytes, sent inside quotes; 8-bit allowed); None sends NIL.
    delimiter: bytes | None = b"/"
    #: The personal namespace's prefix in the NAMESPACE answer (``b"INBOX."``, ``b"mail/"``); folders are not renamed.
    namespace_prefix: bytes = b""
    #: UIDVALIDITY in EXAMINE/SELECT/STATUS: "fixed" (the folder's), "per_session" (the folder's + the session
    #: number: new at each connection, stable within it), "per_examine" (new at every EXAMINE/SELECT, even in
    #: one session; the UIDs stay), "missing" (not sent), "non_numeric" (``abc``).
    uidvalidity: Literal["fixed", "per_session", "per_examine", "missing", "non_numeric"] = "fixed"
    #: From this session number on, UIDVALIDITY is the folder's + 1000 (a server rebuilding its indexes
    #: between two connections, e.g. at a reconnect during a scan).
    uidvalidity_change_from_session: int | None = None
    #: RFC822.SIZE in FETCH answers: "true", "missing" (item left out), "non_numeric" (``abc``), "huge" (10^20),
    #: "under" (``under_reported_size`` whatever the real size). ``size_uids`` limits it (None = every message).
    size: Literal["true", "missing", "non_numeric", "huge", "under"] = "true"
    under_reported_size: int = 1000
    size_uids: frozenset[int] | None = None
    #: The body literal of these UIDs is announced as {10^15}; 100 bytes follow, then the connection closes.
    huge_literal_uids: frozenset[int] = frozenset()
    #: In a FETCH of sizes (the metadata FETCH, with or without a header field), these UIDs' INTERNALDATE comes as a literal
    #: announced as {10^15}; 100 bytes follow, then the connection closes.
    huge_literal_meta_uids: frozenset[int] = frozenset()
    #: The first folder of a LIST answer is sent as a literal announced as {10^15}; 100 bytes, then close.
    huge_literal_in_list: bool = False
    #: Each folder line of a LIST answer is sent this many times (a server listing a folder twice).
    list_repeat: int = 1

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if (
                f.name.endswith("_uids") or f.name in ("drop_in_sessions", "drop_commands", "drop_commands_in_sessions")
            ) and v is not None:
                object.__setattr__(self, f.name, frozenset(v))
        if self.search_repeat < 1:
            raise ValueError("search_repeat must be >= 1")


@dataclasses.dataclass(frozen=True)
class ReceivedCommand:
    """One command as the server parsed it: ``raw`` is every byte of it, literals included, without the final
    CRLF. ``name`` is upper case, ``"UID FETCH"`` for UID commands; ``""`` for a line without one."""

    session: int
    tag: str
    name: str
    raw: bytes


# --------------------------------------------------------------------------- wire helpers


def _astring(s: bytes) -> bytes:
    if s and re.fullmatch(rb"[!#$&'+,\-./0-9:;<=>?@A-Z\[^_`a-z|}~]+", s) and s.upper() != b"NIL":
        return s
    return b'"' + s.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _unquote(s: bytes) -> bytes:
    return re.sub(rb"\\(.)", rb"\1", s[1:-1])


def _imap_date(when: dt.datetime) -> bytes:
    off = int(when.utcoffset().total_seconds()) // 60  # type: ignore[union-attr]
    sign = "+" if off >= 0 else "-"
    off = abs(off)
    return (
        f'"{when.day:02d}-{_MONTHS[when.month - 1]}-{when.year:04d} {when.hour:02d}:{when.minute:02d}:'
        f'{when.second:02d} {sign}{off // 60:02d}{off % 60:02d}"'
    ).encode()


def _parse_date(token: bytes) -> dt.date:
    day, mon, year = token.decode().split("-")
    return dt.date(int(year), _MONTHS.index(mon.capitalize()) + 1, int(day))


def _tokens(data: bytes, pos: int = 0, *, until: bytes | None = None) -> tuple[list, int]:
    """IMAP command arguments -> nested lists of bytes (atoms, quoted strings and literals alike; a bracketed
    section such as ``BODY.PEEK[HEADER.FIELDS (A B)]`` stays one atom). Returns (tokens, end position)."""
    out: list = []
    n = len(data)
    while pos < n:
        c = data[pos : pos + 1]
        if c == b" ":
            pos += 1
        elif until is not None and c == until:
            return out, pos + 1
        elif c == b"(":
            sub, pos = _tokens(data, pos + 1, until=b")")
            out.append(sub)
        elif c == b'"':
            end = pos + 1
            buf = bytearray()
            while end < n and data[end : end + 1] != b'"':
                if data[end : end + 1] == b"\\":
                    end += 1
                buf += data[end : end + 1]
                end += 1
            out.append(bytes(buf))
            pos = end + 1
        elif c in (b"{", b"~") and (m := re.match(rb"~?\{(\d+)\+?\}\r\n", data[pos:])):
            start = pos + m.end()
            out.append(data[start : start + int(m.group(1))])
            pos = start + int(m.group(1))
        else:
            end = pos
            depth = 0
            while end < n:
                ch = data[end : end + 1]
                if ch == b"[":
                    depth += 1
                elif ch == b"]":
                    depth -= 1
                elif depth == 0 and (ch == b" " or ch == b")" or ch == b"("):
                    break
                end += 1
            out.append(data[pos:end])
            pos = end
    return out, pos


def _seq_set(spec: bytes, largest: int) -> list[tuple[int, int]]:
    ranges = []
    for part in spec.split(b","):
        lo, _, hi = part.partition(b":")
        a = largest if lo == b"*" else int(lo)
        b = a if not hi else (largest if hi == b"*" else int(hi))
        ranges.append((min(a, b), max(a, b)))
    return ranges


def _in_set(value: int, ranges: Iterable[tuple[int, int]]) -> bool:
    return any(a <= value <= b for a, b in ranges)


def _header_fields(raw: bytes, names: Iterable[bytes]) -> bytes:
    head = raw.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    wanted = {n.lower() for n in names}
    out, keep = [], False
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if keep:
                out.append(line)
            continue
        keep = line.split(b":", 1)[0].strip().lower() in wanted
        if keep:
            out.append(line)
    return b"".join(out) + b"\r\n"


class _Closed(Exception):
    """The connection is over (client gone, a fault closed it, or the server stops)."""


# --------------------------------------------------------------------------- the server


class FaultImapServer:
    """The server: ``start``/``stop`` or ``with``. ``host``/``plain_port`` once started; ``user``/``password(user)``
    for the one account (any user name with a wrong password is refused). ``commands`` lists every command
    received, in order, over all sessions; ``sessions`` counts connections."""

    kind = "fault"
    host = "127.0.0.1"
    tls_port = None
    ca_file = None

    def __init__(
        self,
        mailbox: Mailbox,
        faults: Faults | None = None,
        *,
        user: str = "alice",
        password: str = "secret",
        lifetime: float = 120.0,
        idle_timeout: float = 30.0,
    ) -> None:
        self.mailbox = mailbox
        self.faults = faults or Faults()
        self.user = user
        self._password = password
        self.lifetime = lifetime
        self.idle_timeout = idle_timeout
        self.plain_port: int | None = None
        self.commands: list[ReceivedCommand] = []
        self.sessions = 0
        self.dropped = 0  # connections closed by drop_rate
        self._random = random.Random(self.faults.drop_seed)
        self.errors: list[str] = []  # handler exceptions that were not a client going away
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._conns: set[socket.socket] = set()

    # ----------------------------------------------------------------- lifecycle

    def password(self, user: str) -> str:
        return self._password

    @property
    def running(self) -> bool:
        return self._listener is not None and not self._stop.is_set()

    def start(self) -> None:
        """Listen on a free loopback port and serve in background threads. Idempotent."""
        if self._listener is not None:
            return
        self._stop.clear()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        sock.listen(16)
        sock.settimeout(0.1)  # the accept loop looks at the stop event this often
        self._listener = sock
        self.plain_port = sock.getsockname()[1]
        self._started = time.monotonic()
        t = threading.Thread(target=self._accept_loop, name="fault-imap-accept", daemon=True)
        self._threads.append(t)
        t.start()

    def stop(self) -> None:
        """Close the listener and every connection, join every thread. Raises RuntimeError if a thread outlives
        STOP_DEADLINE. Idempotent."""
        self._stop.set()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                c.close()
        deadline = time.monotonic() + STOP_DEADLINE
        for t in list(self._threads):
            if t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive() and t is not threading.current_thread()]
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
            self._listener = None
        if alive:
            raise RuntimeError(f"fault IMAP threads still running after {STOP_DEADLINE}s: {alive}")

    def __enter__(self) -> FaultImapServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- what the tests read

    def command_names(self, session: int | None = None) -> set[str]:
        """The distinct command names received (of one session, or of all)."""
        with self._lock:
            return {c.name for c in self.commands if session is None or c.session == session}

    def commands_named(self, name: str) -> list[ReceivedCommand]:
        with self._lock:
            return [c for c in self.commands if c.name == name.upper()]

    def wait_for_sessions(self, count: int, timeout: float = 10.0) -> bool:
        """Poll (with a deadline) until ``count`` connections were accepted."""
        deadline = time.monotonic() + timeout
        while self.sessions < count and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.sessions >= count

    # ----------------------------------------------------------------- serving

    def _accept_loop(self) -> None:
        assert self._listener is not None
        listener = self._listener
        while not self._stop.is_set():
            if time.monotonic() - self._started > self.lifetime:
                self.errors.append(f"lifetime of {self.lifetime}s reached: stopped by itself")
                threading.Thread(target=self.stop, daemon=True).start()
                return
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(self.idle_timeout)
            with self._lock:
                self.sessions += 1
                session = self.sessions
                self._conns.add(conn)
            t = threading.Thread(target=self._serve, args=(conn, session), name=f"fault-imap-{session}", daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket, session: int) -> None:
        s = _Session(self, conn, session)
        try:
            s.run()
        except (_Closed, OSError):
            pass
        except Exception as e:  # noqa: BLE001 - a rig bug must show in the test, not kill the thread silently
            self.errors.append(f"session {session}: {type(e).__name__}: {e}")
        finally:
            with self._lock:
                self._conns.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()


class _Session:
    def __init__(self, server: FaultImapServer, conn: socket.socket, number: int) -> None:
        self.srv = server
        self.f = server.faults
        self.conn = conn
        self.number = number
        self.file = conn.makefile("rb")
        self.authenticated = self.f.preauth
        self.folder: FaultFolder | None = None
        self.count = 0
        self.examines = 0  # EXAMINE/SELECT answered in this session

    # -- io

    def send(self, data: bytes) -> None:
        if self.srv._stop.is_set():
            raise _Closed()
        self.conn.sendall(data)

    def trickle(self, data: bytes) -> None:
        for i in range(len(data)):
            self.send(data[i : i + 1])
            if self.srv._stop.wait(self.f.trickle_interval):
                raise _Closed()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.shutdown(socket.SHUT_RDWR)
        raise _Closed()

    def read_command(self) -> bytes:
        """One command, literals included (a synchronising literal gets its ``+`` first)."""
        buf = bytearray()
        while True:
            line = self.file.readline(MAX_LINE + 1)
            if not line:
                raise _Closed()
            if len(line) > MAX_LINE:
                self.send(b"* BAD line too long\r\n")
                self.close()
            buf += line
            m = re.search(rb"\{(\d+)(\+?)\}\r\n$", line)
            if not m:
                return bytes(buf).rstrip(b"\r\n")
            size = int(m.group(1))
            if size > MAX_LITERAL:
                self.send(b"* BAD literal too large\r\n")
                self.close()
            if not m.group(2):
                self.send(b"+ go ahead\r\n")
            data = self.file.read(size)
            if len(data) < size:
                raise _Closed()
            buf += data

    # -- the loop

    def run(self) -> None:
        caps = " ".join(self.f.capabilities).encode()
        if self.f.preauth:
            self.send(b"* PREAUTH [CAPABILITY " + caps + b"] fault-imap: logged in already\r\n")
        else:
            self.send(b"* OK [CAPABILITY " + caps + b"] fault-imap ready\r\n")
        while True:
            raw = self.read_command()
            self.count += 1
            toks, _ = _tokens(raw)
            tag = toks[0].decode("latin-1") if toks and isinstance(toks[0], bytes) else "*"
            name = toks[1].decode("latin-1").upper() if len(toks) > 1 and isinstance(toks[1], bytes) else ""
            args = toks[2:]
            if name == "UID" and args and isinstance(args[0], bytes):
                name = "UID " + args[0].decode("latin-1").upper()
                args = args[1:]
            with self.srv._lock:
                self.srv.commands.append(ReceivedCommand(self.number, tag, name, raw))
            f = self.f
            in_session = f.drop_in_sessions is None or self.number in f.drop_in_sessions
            if in_session and f.drop_after_commands is not None and self.count >= f.drop_after_commands:
                self.close()
            if name in f.drop_commands and (
                f.drop_commands_in_sessions is None or self.number in f.drop_commands_in_sessions
            ):
                self.close()
            if f.drop_rate:
                with self.srv._lock:
                    drop = self.srv._random.random() < f.drop_rate
                    self.srv.dropped += drop
                if drop:
                    self.close()
            self.dispatch(tag.encode("latin-1"), name, args)

    def dispatch(self, tag: bytes, name: str, args: list) -> None:
        ok = tag + b" OK " + name.encode() + b" completed\r\n"
        if name == "CAPABILITY":
            self.send(b"* CAPABILITY " + " ".join(self.f.capabilities).encode() + b"\r\n" + ok)
        elif name in ("NOOP", "CHECK"):
            self.send(ok)
        elif name == "LOGOUT":
            self.send(b"* BYE fault-imap logging out\r\n" + ok)
            self.close()
        elif name == "LOGIN":
            if self.authenticated:
                self.send(tag + b" BAD already authenticated\r\n")
            elif len(args) == 2 and args[1] == self.srv._password.encode() and args[0] == self.srv.user.encode():
                self.authenticated = True
                self.send(tag + b" OK LOGIN completed\r\n")
            else:
                self.send(tag + b" NO [AUTHENTICATIONFAILED] Authentication failed.\r\n")
        elif not self.authenticated:
            self.send(tag + b" BAD " + name.encode() + b" needs LOGIN first\r\n")
        elif name == "ID":
            self.send(b'* ID ("name" "fault-imap")\r\n' + ok)
        elif name == "ENABLE":
            self.send(b"* ENABLED\r\n" + ok)
        elif name == "NAMESPACE":
            prefix = _astring(self.f.namespace_prefix) if self.f.namespace_prefix else b'""'
            self.send(b"* NAMESPACE ((" + prefix + b" " + self.delim() + b")) NIL NIL\r\n" + ok)
        elif name in ("LIST", "LSUB"):
            self.list(tag, name, args)
        elif name == "STATUS":
            self.status(tag, args)
        elif name in ("EXAMINE", "SELECT"):
            self.select(tag, name, args)
        elif name in ("CLOSE", "UNSELECT"):
            self.folder = None
            self.send(ok)
        elif name in ("SEARCH", "UID SEARCH"):
            self.search(tag, name, args)
        elif name in ("FETCH", "UID FETCH"):
            self.fetch(tag, name, args)
        else:
            self.send(tag + b" NO [CANNOT] " + name.encode() + b" is not served by fault-imap\r\n")

    # -- folders

    def delim(self) -> bytes:
        d = self.f.delimiter
        return b"NIL" if d is None else b'"' + d.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'

    def uidvalidity(self, folder: FaultFolder) -> bytes | None:
        mode = self.f.uidvalidity
        if mode == "missing":
            return None
        if mode == "non_numeric":
            return b"abc"
        value = folder.uidvalidity
        if mode == "per_session":
            value += self.number
        elif mode == "per_examine":
            value += 1000 * self.number + self.examines
        if self.f.uidvalidity_change_from_session is not None and self.number >= self.f.uidvalidity_change_from_session:
            value += 1000
        return str(value).encode()

    def list(self, tag: bytes, name: str, args: list) -> None:
        if len(args) != 2 or not all(isinstance(a, bytes) for a in args):
            self.send(tag + b" BAD LIST needs a reference and a pattern\r\n")
            return
        pattern = args[0] + args[1]
        out = bytearray()
        if not pattern:
            out += b"* " + name.encode() + b" (\\Noselect) " + self.delim() + b' ""\r\n'
        else:
            d = re.escape(self.f.delimiter or b"/")
            rx = re.compile(
                b"".join(b".*" if ch == b"*" else b"[^" + d + b"]*" if ch == b"%" else re.escape(ch)
                         for ch in (pattern[i : i + 1] for i in range(len(pattern)))),
                re.DOTALL,
            )  # fmt: skip
            for folder in self.srv.mailbox.folders:
                if rx.fullmatch(folder.match_name):
                    attrs = " ".join(folder.attributes).encode()
                    head = b"* " + name.encode() + b" (" + attrs + b") " + self.delim() + b" "
                    if self.f.huge_literal_in_list:
                        self.send(bytes(out) + head + b"{%d}\r\n" % 10**15 + folder.wire_name * 100)
                        self.close()
                    out += (head + folder.wire_name + b"\r\n") * self.f.list_repeat
        out += tag + b" OK " + name.encode() + b" completed\r\n"
        if self.f.trickle_list:
            self.trickle(bytes(out))
        else:
            self.send(bytes(out))

    def find(self, tag: bytes, arg: object) -> FaultFolder | None:
        folder = self.srv.mailbox.find(arg) if isinstance(arg, bytes) else None
        if folder is None:
            self.send(tag + b" NO [NONEXISTENT] Mailbox doesn't exist\r\n")
        return folder

    def status(self, tag: bytes, args: list) -> None:
        if len(args) != 2 or not isinstance(args[1], list):
            self.send(tag + b" BAD STATUS needs a mailbox and a list\r\n")
            return
        folder = self.find(tag, args[0])
        if folder is None:
            return
        items = []
        for item in (i.upper() for i in args[1]):
            if item == b"MESSAGES":
                items.append(b"MESSAGES %d" % len(folder.messages))
            elif item == b"UIDNEXT":
                items.append(b"UIDNEXT %d" % folder.uidnext)
            elif item == b"UIDVALIDITY":
                uv = self.uidvalidity(folder)
                if uv is not None:
                    items.append(b"UIDVALIDITY " + uv)
            elif item == b"UNSEEN":
                unseen = sum(1 for m in folder.messages if b"\\seen" not in {_flag_bytes(x).lower() for x in m.flags})
                items.append(b"UNSEEN %d" % unseen)
            elif item == b"RECENT":
                items.append(b"RECENT 0")
        self.send(
            b"* STATUS " + folder.wire_name + b" (" + b" ".join(items) + b")\r\n" + tag + b" OK STATUS completed\r\n"
        )

    def select(self, tag: bytes, name: str, args: list) -> None:
        folder = self.find(tag, args[0] if args else None)
        if folder is None:
            self.folder = None
            return
        if "\\noselect" in {a.lower() for a in folder.attributes}:
            self.folder = None
            self.send(tag + b" NO [CANNOT] not selectable\r\n")
            return
        self.folder = folder
        self.examines += 1
        flags = sorted({_flag_bytes(x) for m in folder.messages for x in m.flags} | {b"\\Seen", b"\\Flagged"})
        out = [
            b"* FLAGS (" + b" ".join(flags) + b")",
            b"* OK [PERMANENTFLAGS ()] Read-only mailbox.",
            b"* %d EXISTS" % len(folder.messages),
            b"* 0 RECENT",
        ]
        uv = self.uidvalidity(folder)
        if uv is not None:
            out.append(b"* OK [UIDVALIDITY " + uv + b"] UIDs valid")
        out.append(b"* OK [UIDNEXT %d] Predicted next UID" % folder.uidnext)
        mode = b"[READ-ONLY]" if name == "EXAMINE" else b"[READ-WRITE]"
        out.append(tag + b" OK " + mode + b" " + name.encode() + b" completed")
        self.send(b"\r\n".join(out) + b"\r\n")

    # -- messages

    def search(self, tag: bytes, name: str, args: list) -> None:
        folder = self.folder
        if folder is None:
            self.send(tag + b" BAD no folder selected\r\n")
            return
        keys = [a.upper() if isinstance(a, bytes) else a for a in args]
        if keys[:1] == [b"CHARSET"]:
            keys = keys[2:]
        preds = []
        i = 0
        try:
            while i < len(keys):
                k = keys[i]
                if k == b"ALL":
                    i += 1
                elif k in (b"SINCE", b"BEFORE", b"ON"):
                    day = _parse_date(keys[i + 1])
                    op = {b"SINCE": lambda a, b: a >= b, b"BEFORE": lambda a, b: a < b, b"ON": lambda a, b: a == b}[k]
                    preds.append(lambda seq, m, day=day, op=op: op(m.internaldate.date(), day))
                    i += 2
                elif k == b"UID":
                    ranges = _seq_set(keys[i + 1], folder.messages[-1].uid if folder.messages else 0)
                    preds.append(lambda seq, m, r=ranges: _in_set(m.uid, r))
                    i += 2
                elif isinstance(k, bytes) and re.fullmatch(rb"[0-9*:,]+", k):  # a message sequence set
                    ranges = _seq_set(k, len(folder.messages))
                    preds.append(lambda seq, m, r=ranges: _in_set(seq, r))
                    i += 1
                else:
                    raise ValueError(k)
        except (ValueError, IndexError, TypeError):
            self.send(tag + b" BAD unsupported search criteria\r\n")
            return
        hits = [(seq, m) for seq, m in enumerate(folder.messages, 1) if all(p(seq, m) for p in preds)]
        values = [m.uid if name == "UID SEARCH" else seq for seq, m in hits]
        nums = b" ".join(b"%d" % v for v in values for _ in range(self.f.search_repeat))
        self.send(b"* SEARCH" + (b" " + nums if nums else b"") + b"\r\n" + tag + b" OK SEARCH completed\r\n")

    def fetch(self, tag: bytes, name: str, args: list) -> None:
        folder = self.folder
        if folder is None:
            self.send(tag + b" BAD no folder selected\r\n")
            return
        if len(args) != 2:
            self.send(tag + b" BAD FETCH needs a set and items\r\n")
            return
        items = [i.upper() for i in (args[1] if isinstance(args[1], list) else [args[1]])]
        msgs = folder.messages
        try:
            if name == "UID FETCH":
                ranges = _seq_set(args[0], msgs[-1].uid if msgs else 0)
                chosen = [(seq, m) for seq, m in enumerate(msgs, 1) if _in_set(m.uid, ranges)]
            else:
                ranges = _seq_set(args[0], len(msgs))
                chosen = [(seq, m) for seq, m in enumerate(msgs, 1) if _in_set(seq, ranges)]
        except ValueError:
            self.send(tag + b" BAD bad sequence set\r\n")
            return
        wants_body = any(i.startswith((b"BODY", b"BINARY", b"RFC822")) and i != b"RFC822.SIZE" for i in items)
        for seq, m in chosen:
            if m.uid in self.f.fetch_error_uids and (wants_body or self.f.fetch_error_on == "any"):
                self.send(
                    tag + b" NO FETCH failed: Internal error occurred. Refer to server log for more information.\r\n"
                )
                if self.f.fetch_error_bye:
                    self.send(b"* BYE Internal error occurred. Refer to server log for more information.\r\n")
                    self.close()
                return
            self.fetch_one(seq, m, items, uid_command=name == "UID FETCH")
        self.send(tag + b" OK FETCH completed\r\n")

    def fetch_one(self, seq: int, m: FaultMessage, items: list[bytes], *, uid_command: bool) -> None:
        f = self.f
        parts: list[tuple[bytes, bytes | None]] = []  # (item text, literal or None)
        if (uid_command or b"UID" in items) and not f.omit_uid:
            parts.append((b"UID %d" % m.uid, None))
        for item in items:
            if item == b"UID":
                continue
            if item == b"FLAGS":
                parts.append((b"FLAGS (" + b" ".join(_flag_bytes(x) for x in m.flags) + b")", None))
            elif item == b"INTERNALDATE" and m.uid in f.huge_literal_meta_uids and b"RFC822.SIZE" in items:
                self.send(b"* %d FETCH (INTERNALDATE {%d}\r\n" % (seq, 10**15) + b"x" * 100)
                self.close()
            elif item == b"INTERNALDATE":
                parts.append((b"INTERNALDATE " + _imap_date(m.internaldate), None))
            elif item == b"RFC822.SIZE":
                size = self.size_token(m)
                if size is not None:
                    parts.append((b"RFC822.SIZE " + size, None))
            elif item == b"X-GM-LABELS" and "X-GM-EXT-1" in f.capabilities:
                parts.append((b"X-GM-LABELS (" + b" ".join(_label_bytes(x) for x in m.labels) + b")", None))
            elif item == b"X-GM-MSGID" and "X-GM-EXT-1" in f.capabilities:
                parts.append((b"X-GM-MSGID %d" % (m.gm_msgid or m.uid), None))
            else:
                section = self.section(item, m)
                if section is None:
                    continue
                if m.uid in f.omit_body_uids and _is_full_body(section[0]):
                    continue
                parts.append(section)
        out = bytearray(b"* %d FETCH (" % seq)
        for i, (text, literal) in enumerate(parts):
            if i:
                out += b" "
            out += text
            if literal is None:
                continue
            self.send(bytes(out))
            out = bytearray()
            if m.uid in f.huge_literal_uids and _is_full_body(text):
                self.send(b" {%d}\r\n" % 10**15 + literal[:100])
                self.close()
            literal8 = text.startswith(b"BINARY[") and b"\0" in literal
            self.send((b" ~{%d}\r\n" if literal8 else b" {%d}\r\n") % len(literal))
            if m.uid in f.trickle_literal_uids and _is_full_body(text):
                self.trickle(literal)
            else:
                self.send(literal)
        out += b")\r\n"
        self.send(bytes(out))

    def size_token(self, m: FaultMessage) -> bytes | None:
        f = self.f
        mode = f.size if f.size_uids is None or m.uid in f.size_uids else "true"
        return {
            "true": b"%d" % len(m.raw),
            "missing": None,
            "non_numeric": b"abc",
            "huge": b"%d" % 10**20,
            "under": b"%d" % f.under_reported_size,
        }[mode]

    def section(self, item: bytes, m: FaultMessage) -> tuple[bytes, bytes | None] | None:
        raw = m.raw
        head = raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n" if b"\r\n\r\n" in raw else raw
        if item == b"RFC822":
            return b"RFC822", raw
        if item == b"RFC822.HEADER":
            return b"RFC822.HEADER", head
        mm = re.fullmatch(rb"(BODY|BINARY)(\.PEEK)?\[(.*)\]", item, re.DOTALL)
        if not mm:
            return None
        kind, spec = mm.group(1), mm.group(3)
        label = kind + b"[" + spec + b"]"
        if spec == b"":
            return label, raw
        if spec == b"HEADER":
            return label, head
        if spec == b"TEXT":
            return label, raw[len(head) :] if b"\r\n\r\n" in raw else b""
        hf = re.fullmatch(rb"HEADER\.FIELDS \((.*)\)", spec)
        if hf:
            return label, _header_fields(raw, hf.group(1).split())
        return None


def _is_full_body(label: bytes) -> bool:
    """The whole message: what the body faults (omit, trickle, huge literal) apply to."""
    return label in (b"BODY[]", b"BINARY[]", b"RFC822")


def _label_bytes(label: str | bytes) -> bytes:
    if isinstance(label, bytes):
        return label
    if label.startswith("\\"):
        return label.encode("ascii")
    from imapclient import imap_utf7

    return _astring(imap_utf7.encode(label))


def _flag_bytes(flag: str | bytes) -> bytes:
    return flag if isinstance(flag, bytes) else flag.encode("ascii")
