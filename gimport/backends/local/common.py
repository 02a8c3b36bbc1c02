"""What the local sources share: a read-only MailSource over an index built from files, message keys
that survive what mail programs do to files between runs, and small header helpers.

Keys (see gimport.contract): every folder of a local source has the generation KEY_SCHEME (fixed: the
uids themselves are stable, there is nothing like a UIDVALIDITY to change), and a message's uid is a
63-bit number derived from what identifies the message in that source (each source module says what)
plus its occurrence number among messages identical in that respect, so two identical messages in one
folder still get two keys. Nothing here writes, renames, locks or touches a file: files are opened
"rb" only.
"""

from __future__ import annotations

import codecs
import datetime as dt
import email.utils
import hashlib
import logging
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from gimport.contract import FetchedMessage, Folder, MessageMeta
from gimport.errors import FolderGone, SourceError
from gimport.i18n import _
from gimport.mail import rfc822

log = logging.getLogger("gimport.local")

KEY_SCHEME = 1  # the generation of every local folder; a new way of making uids would be 2
UID_MASK = (1 << 63) - 1  # SQLite integers are signed 64-bit

SEEN, ANSWERED, FLAGGED, DELETED, DRAFT = "\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"


def make_uid(identity: bytes, occurrence: int) -> int:
    """The uid of the `occurrence`-th (0-based) message with this identity in its folder."""
    digest = hashlib.blake2b(identity + b"\x00" + str(occurrence).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & UID_MASK or 1


class Occurrences:
    """Counts identities seen in one folder, to number identical messages 0, 1, 2, ..."""

    def __init__(self) -> None:
        self._seen: dict[bytes, int] = {}

    def uid(self, identity: bytes) -> int:
        n = self._seen.get(identity, 0)
        self._seen[identity] = n + 1
        return make_uid(identity, n)


@dataclass(frozen=True)
class Entry:
    """One message of a folder's index: its key, what MessageMeta says, and where its bytes are
    (`where` is the source module's own locator)."""

    uid: int
    size: int
    flags: tuple[str, ...]
    internaldate: dt.datetime | None
    where: Any
    also_in: tuple[str, ...] = ()


@dataclass
class FolderIndex:
    folder: Folder
    entries: list[Entry]
    stamp: Any = None  # what the index was built from (e.g. file sizes and mtimes): rebuilt when it changes

    def __post_init__(self) -> None:
        self.by_uid = {e.uid: e for e in self.entries}


class LocalSource:
    """A MailSource over files (read-only; one thread uses it). Subclasses list folders and index them
    (`_list`, `_index`, `_stamp`) and read one message's bytes (`_read`, returning None when the message
    is gone since the index was made). Raises SourceError (the path cannot be read) and FolderGone."""

    kind = "local"

    def __init__(self, path: Path, account: str) -> None:
        self.path = Path(path)
        self._account = account
        self.reconnects = 0
        self._folders: dict[str, Any] | None = None  # folder name -> the subclass's locator
        self._listed: dict[str, Folder] = {}
        self._indexes: dict[str, FolderIndex] = {}
        self._current: FolderIndex | None = None

    @property
    def account(self) -> str:
        return self._account

    # -- to be provided by a source -----------------------------------------------------------------
    def _list(self) -> list[tuple[Folder, Any]]:
        raise NotImplementedError

    def _stamp(self, where: Any) -> Any:
        raise NotImplementedError

    def _index(self, folder: Folder, where: Any) -> list[Entry]:
        raise NotImplementedError

    def _read(self, entry: Entry) -> bytes | None:
        raise NotImplementedError

    # -- MailSource ---------------------------------------------------------------------------------
    def connect(self) -> None:
        """Check that the path can be read. Raises SourceError saying what is wrong."""
        try:
            os.stat(self.path)
        except FileNotFoundError:
            raise SourceError(_("[source] path {path} does not exist").format(path=self.path)) from None
        except OSError as exc:
            raise SourceError(_("[source] path {path}: {error}").format(path=self.path, error=exc.strerror)) from None
        if not os.access(self.path, os.R_OK):
            raise SourceError(_("[source] path {path} cannot be read (permissions)").format(path=self.path))

    def close(self) -> None:
        self._indexes.clear()
        self._current = None

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def list_folders(self) -> list[Folder]:
        try:
            listed = self._list()
        except OSError as exc:
            raise SourceError(_("cannot read {path}: {error}").format(path=self.path, error=exc)) from None
        self._folders = {f.name: where for f, where in listed}
        self._listed = {f.name: f for f, _where in listed}
        return [f for f, _where in listed]

    def examine(self, folder: str) -> tuple[int, int]:
        """Index `folder` (again only if its files changed): (KEY_SCHEME, message count). FolderGone."""
        if self._folders is None:
            self.list_folders()
        assert self._folders is not None
        if folder not in self._folders:
            raise FolderGone(_("{folder}: no such folder in {path}").format(folder=folder, path=self.path))
        where = self._folders[folder]
        try:
            stamp = self._stamp(where)
            cached = self._indexes.get(folder)
            if cached is None or cached.stamp != stamp:
                cached = FolderIndex(self._listed[folder], self._index(self._listed[folder], where), stamp)
                self._indexes[folder] = cached
        except FileNotFoundError as exc:
            raise FolderGone(f"{folder}: {exc}") from None
        except OSError as exc:
            raise FolderGone(_("{folder}: cannot read it ({error})").format(folder=folder, error=exc)) from None
        self._current = cached
        return KEY_SCHEME, len(cached.entries)

    def _open(self) -> FolderIndex:
        if self._current is None:
            raise SourceError(_("no folder is open (examine one first)"))
        return self._current

    def search(self, since: dt.date | None = None, before: dt.date | None = None) -> list[int]:
        """The open folder's uids in the order of its files (reading them then goes forward), by internal
        date like IMAP SEARCH SINCE/BEFORE (the day, in the date's own time zone)."""
        out = []
        for e in self._open().entries:
            day = e.internaldate.date() if e.internaldate else None
            if day is not None and ((since and day < since) or (before and day >= before)):
                continue
            out.append(e.uid)
        return out

    def fetch_meta(self, uids: Sequence[int]) -> Iterator[MessageMeta]:
        index = self._open().by_uid
        for uid in uids:
            e = index.get(uid)
            if e is not None:
                yield MessageMeta(uid, e.size, e.flags, e.internaldate)

    def fetch_message_ids(self, uids: Sequence[int]) -> dict[int, str | None]:
        out: dict[int, str | None] = {}
        for uid in uids:  # one message in memory at a time, whatever the folder holds
            for m in self.fetch_bodies([uid]):
                out[m.uid] = rfc822.message_id(m.raw)
        return out

    def fetch_date_headers(self, uids: Sequence[int], chunk: int = 200) -> dict[int, bytes]:
        """The header of each message (read from its file, a chunk at a time): `gimport plan` counts the
        dates a run will fix from its Date lines, and the messages without a Message-ID."""
        out: dict[int, bytes] = {}
        for i in range(0, len(uids), chunk):
            out.update((m.uid, rfc822.header_block(m.raw)) for m in self.fetch_bodies(uids[i : i + chunk]))
        return out

    def fetch_identities(self, uids: Sequence[int]) -> Iterator[MessageMeta]:
        """fetch_meta plus each message's Message-ID, read from the file message by message (a run's scan
        asks for them to find copies of one message in several folders: gimport.engine.copies)."""
        ids = self.fetch_message_ids(uids)
        for meta in self.fetch_meta(uids):
            yield MessageMeta(meta.uid, meta.size, meta.flags, meta.internaldate, message_id=ids.get(meta.uid))

    def interrupt(self) -> None:
        """Nothing to cut short: reading local files is bounded by the files themselves."""

    def fetch_bodies(self, uids: Sequence[int], expected_bytes: int | None = None) -> list[FetchedMessage]:
        """The messages' bytes, in the order asked; those gone since the index was made are left out.
        Raises FolderChanged when the files changed so that the index no longer holds (run again)."""
        index = self._open().by_uid
        out = []
        for uid in uids:
            e = index.get(uid)
            if e is None:
                continue
            try:
                raw = self._read(e)
            except FileNotFoundError:
                raw = None
            except OSError as exc:
                raise FolderGone(
                    _("{folder}: cannot read it ({error})").format(folder=self._open().folder.name, error=exc)
                ) from None
            if raw is not None:
                out.append(FetchedMessage(uid, raw, e.flags, e.internaldate, e.also_in))
        return out


# ------------------------------------------------------------------------------------------- helpers


def header_fields(block: bytes, names: Iterable[str]) -> dict[str, str]:
    """The first value of each of `names` (lower case) in a header block, unfolded, latin-1."""
    wanted = {n.lower() for n in names}
    out: dict[str, str] = {}
    for name in wanted:
        values = rfc822.header_values(block, name)
        if values:
            out[name] = values[0]
    return out


def date_header(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None or not 1970 <= parsed.year <= 9999:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def file_time(st: os.stat_result) -> dt.datetime:
    return dt.datetime.fromtimestamp(st.st_mtime, dt.UTC)


_HEADER_END = re.compile(rb"\r?\n\r?\n")


def remove_fields(raw: bytes, names: frozenset[bytes]) -> bytes:
    """`raw` without the header fields `names` (lower case; continuation lines included). The body and
    every other byte stay as they are."""
    m = _HEADER_END.search(raw)
    cut = len(raw) if m is None else m.start() + (2 if raw[m.start()] == 13 else 1)
    kept, dropping, changed = [], False, False
    for line in raw[:cut].splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if dropping:
                continue
        else:
            dropping = line.split(b":", 1)[0].strip().lower() in names
            if dropping:
                changed = True
                continue
        kept.append(line)
    return b"".join(kept) + raw[cut:] if changed else raw


_B64 = re.compile(r"&([A-Za-z0-9+,]*)-")


def decode_modified_utf7(name: str) -> str:
    """IMAP's modified UTF-7 (RFC 3501 5.1.3), as Maildir++ and Dovecot store folder names on disk:
    "&ZeVnLIqe-" -> "日本語", "&-" -> "&". A name that is not valid modified UTF-7 is kept as it is."""

    def one(m: re.Match[str]) -> str:
        b64 = m.group(1)
        if not b64:
            return "&"
        b64 = b64.replace(",", "/")
        b64 += "=" * (-len(b64) % 4)
        return codecs.decode(codecs.decode(b64.encode("ascii"), "base64"), "utf-16-be")

    try:
        return _B64.sub(one, name)
    except (ValueError, UnicodeDecodeError):
        return name
