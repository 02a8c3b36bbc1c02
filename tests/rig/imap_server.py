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

import hashlib
import ssl
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from tests.rig.dovecot import ImapUser, SeedMessage, SnapshotEntry


class ServerProcess:
    """What both server rigs (Dovecot, Cyrus) share once started: a logged-in IMAPClient, the context
    manager and the process tree. Needs `_proc`, `running`, `start()`, `stop()`, `host`, `plain_port`,
    `tls_port`, `ssl_context()` and `password(user)` from the rig."""

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
        rig: Any = self
        rig.stop()

    def process_ids(self) -> set[int]:
        """The server's first process and every process under it."""
        from tests.rig.dovecot import _proc_children

        proc = getattr(self, "_proc", None)
        if proc is None or proc.poll() is not None:
            return set()
        children = _proc_children()
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
