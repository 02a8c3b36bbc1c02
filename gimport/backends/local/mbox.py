"""mbox files, read-only and streamed: [source] type = "mbox", path = a file or a folder of files.

Why not the standard library's mailbox.mbox: it opens the file for writing when it can ("rb+"), it
counts every line starting with "From " as a separator, it does not undo the ">From " escaping, and
its table of contents knows nothing of what gimport needs per message (an identity that survives flag
changes, the flags, a date). So the file is read here: once, line by line, without holding more than
one header block (the index keeps offsets), and each message again when it is imported.

The mbox variants: a message starts at a line "From " at the start of the file or after a blank line
(or at any line that looks like a full "From sender date" separator), and ends before the blank line
that precedes the next one (or the end of the file). Lines ">From ", ">>From ", ... lose one ">"
(mboxrd; for mboxo this also restores its escaped lines, and a body line that really began with
">From " cannot be told apart in mboxo anyway).

What identifies a message (its uid): a hash of its bytes as imported, without the separator line and
without the header fields mail programs rewrite in place when flags change (Status, X-Status,
X-Keywords, X-UID, X-IMAP, X-IMAPbase, X-Mozilla-Status, X-Mozilla-Status2, X-Mozilla-Keys,
X-Gmail-Labels), numbered among identical ones. Offsets are not part of it: an mbox growing at its
end, or compacted (deleted messages removed), keeps the keys of the messages it still has.

Flags: Status "R" = \\Seen, X-Status "F" = \\Flagged, "A" = \\Answered. A file in which no message
has a Status header carries no read state at all (an export): its messages count as read.
Internal date: the separator line's date, else the Date header, else the file's modification time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from gimport.backends.local.common import (
    ANSWERED,
    FLAGGED,
    SEEN,
    Entry,
    LocalSource,
    Occurrences,
    date_header,
    file_time,
    header_fields,
    log,
    remove_fields,
)
from gimport.contract import Folder, SourceBackend
from gimport.errors import FolderChanged, SourceError
from gimport.i18n import _

# header fields rewritten in place when a message's flags change: not part of its identity
VOLATILE = frozenset(
    b"status x-status x-keywords x-uid x-imap x-imapbase x-mozilla-status x-mozilla-status2 x-mozilla-keys"
    b" x-gmail-labels".split()
)
MAX_HEAD = 256 * 1024  # header bytes kept per message while scanning (for Date, Status, labels)
_SEPARATOR = re.compile(
    rb"From \S+ +(?:[A-Z][a-z]{2},? +)?(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +(\d{1,2}) +"
    rb"(\d{1,2}):(\d\d)(?::(\d\d))?(?: +([+-]\d{4}|[A-Z]{1,5}))? +(\d{4})(?: +([+-]\d{4}))?"
)
_MONTHS = {m: i for i, m in enumerate(b"Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}
_ESCAPED = re.compile(rb">+From ")
_UNESCAPE = re.compile(rb"(?m)^>(>*From )")
_NOT_MBOX_EXT = (".msf", ".dat", ".json", ".sqlite", ".html", ".js", ".txt", ".lock", ".bak", ".db", ".zip", ".gz")


class NotMbox(ValueError):
    """The file does not start with a "From " line."""


@dataclass(frozen=True)
class Scanned:
    """One message found by scan(): bytes [start, end) of the file, the first line being the separator."""

    start: int
    end: int
    separator: bytes
    identity: bytes
    head: bytes  # the header block (at most MAX_HEAD bytes), unescaped

    @property
    def size(self) -> int:
        return self.end - self.start - len(self.separator)


class _Message:
    """One message being read: its identity (a hash of its unescaped lines, volatile headers left out) and
    the first MAX_HEAD bytes of its header."""

    def __init__(self) -> None:
        self.h = hashlib.blake2b(digest_size=16)
        self.in_head = True
        self.dropping = False
        self.head: list[bytes] = []
        self.head_len = 0

    def feed(self, line: bytes) -> None:
        if line[:1] == b">" and _ESCAPED.match(line):
            line = line[1:]
        if self.in_head:
            if line == b"\n" or line == b"\r\n":
                self.in_head = False
            elif line[:1] not in (b" ", b"\t"):
                self.dropping = line.split(b":", 1)[0].strip().lower() in VOLATILE
            if self.head_len < MAX_HEAD:
                self.head.append(line)
                self.head_len += len(line)
            if self.dropping and self.in_head:
                return
        self.h.update(line)

    def scanned(self, start: int, end: int, separator: bytes) -> Scanned:
        return Scanned(start, end, separator, self.h.digest(), b"".join(self.head))


def scan(fh: IO[bytes]) -> Iterator[Scanned]:
    """The messages of an mbox stream, in order, reading it once line by line. Raises NotMbox when the
    first line that is not blank is not a "From " line."""
    pos = 0
    start = -1
    prev_blank = True
    pending = b""  # a blank line not yet fed: it belongs to the separator if a "From " line follows
    separator = b""
    message = _Message()
    for line in fh:
        blank = line == b"\n" or line == b"\r\n"
        if line[:5] == b"From " and (prev_blank or _SEPARATOR.match(line)):
            if start >= 0:
                yield message.scanned(start, pos - len(pending), separator)
            start, separator, pending = pos, line, b""
            message = _Message()
        elif start < 0:
            if not blank:
                raise NotMbox(
                    _("not an mbox file: byte {pos} is not in a message (no 'From ' line before it)").format(pos=pos)
                )
        else:
            if pending:
                message.feed(pending)
                pending = b""
            if blank:
                pending = line
            else:
                message.feed(line)
        prev_blank = blank
        pos += len(line)
    if start >= 0:
        yield message.scanned(start, pos - len(pending), separator)


def identity_of(content: bytes) -> bytes:
    """The identity scan() computes, from a message's unescaped bytes (separator line not included)."""
    h = hashlib.blake2b(digest_size=16)
    i, n, dropping = 0, len(content), False
    while i < n:
        j = content.find(b"\n", i)
        j = n if j < 0 else j + 1
        line = content[i:j]
        if line == b"\n" or line == b"\r\n":
            break
        if line[:1] not in (b" ", b"\t"):
            dropping = line.split(b":", 1)[0].strip().lower() in VOLATILE
        if not dropping:
            h.update(line)
        i = j
    h.update(content[i:])
    return h.digest()


def read_message(fh: IO[bytes], start: int, end: int, identity: bytes, where: str) -> bytes:
    """The message at [start, end), unescaped, separator line removed; FolderChanged when the bytes
    there are not that message any more (the file was rewritten since it was scanned)."""
    fh.seek(start)
    data = fh.read(end - start)
    nl = data.find(b"\n")
    if not data.startswith(b"From ") or nl < 0:
        raise FolderChanged(_("{where}: the file changed since it was read (run again)").format(where=where))
    content = data[nl + 1 :]
    del data  # a large message is held once, not twice
    if _UNESCAPE.search(content):
        content = _UNESCAPE.sub(rb"\1", content)
    if identity_of(content) != identity:
        raise FolderChanged(_("{where}: the file changed since it was read (run again)").format(where=where))
    return content


def separator_date(line: bytes) -> dt.datetime | None:
    """The date of a "From sender Tue Dec  1 09:00:00 2026" line (UTC unless it names an offset)."""
    m = _SEPARATOR.match(line)
    if not m:
        return None
    mon, day, hh, mm, ss, tz1, year, tz2 = m.groups()
    offset = next((z for z in (tz1, tz2) if z and z[:1] in b"+-"), None)
    tz = dt.UTC
    if offset:
        sign = -1 if offset[:1] == b"-" else 1
        tz = dt.timezone(sign * dt.timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
    try:
        return dt.datetime(int(year), _MONTHS[mon], int(day), int(hh), int(mm), int(ss or 0), tzinfo=tz)
    except ValueError:
        return None


def status_flags(fields: dict[str, str]) -> tuple[str, ...]:
    """Flags from mbox Status / X-Status headers."""
    flags = []
    if "R" in fields.get("status", ""):
        flags.append(SEEN)
    xs = fields.get("x-status", "")
    if "A" in xs:
        flags.append(ANSWERED)
    if "F" in xs:
        flags.append(FLAGGED)
    return tuple(flags)


def open_buffered(path: Path) -> IO[bytes]:
    return open(path, "rb", buffering=1 << 20)


def looks_like_mbox(path: Path) -> bool:
    """A regular file whose first bytes are "From " (an empty file holds no mail)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(5) == b"From "
    except OSError:
        return False


@dataclass(frozen=True)
class MboxFile:
    """Where a folder's messages are: one mbox file."""

    path: Path


class MboxSource(LocalSource):
    """mbox files (see the module docstring). Subclasses change `_listing`, `_flags` and `_keep`."""

    kind = "mbox"
    strip_fields: frozenset[bytes] = frozenset()  # header fields left out of what is imported

    def __init__(self, path: Path, account: str) -> None:
        super().__init__(path, account)
        self._handles: dict[Path, IO[bytes]] = {}

    def close(self) -> None:
        for fh in self._handles.values():
            fh.close()
        self._handles.clear()
        super().close()

    def _list(self) -> list[tuple[Folder, Any]]:
        if self.path.is_file():
            if not looks_like_mbox(self.path) and self.path.stat().st_size:
                raise SourceError(
                    _("[source] path {path} is not an mbox file (it does not start with 'From ')").format(
                        path=self.path
                    )
                )
            return [(Folder(_folder_name(self.path.name)), MboxFile(self.path))]
        if not self.path.is_dir():
            raise SourceError(_("[source] path {path} is neither a file nor a folder").format(path=self.path))
        out = []
        for file in sorted(self.path.rglob("*")):
            rel = file.relative_to(self.path)
            if any(p.startswith(".") for p in rel.parts) or file.name.lower().endswith(_NOT_MBOX_EXT):
                continue
            if file.is_file() and looks_like_mbox(file):
                name = "/".join([*rel.parts[:-1], _folder_name(rel.name)])
                out.append((Folder(name), MboxFile(file)))
        return out

    def _stamp(self, where: Any) -> Any:  # an MboxFile (a subclass may locate folders otherwise)
        st = os.stat(where.path)
        return st.st_size, st.st_mtime_ns, st.st_ino

    def _index(self, folder: Folder, where: Any) -> list[Entry]:
        st = os.stat(where.path)
        with open_buffered(where.path) as fh:
            try:
                return self._entries(folder, fh, file_time(st))
            except NotMbox as exc:
                raise SourceError(f"{where.path}: {exc}") from None

    def _entries(self, folder: Folder, fh: IO[bytes], mtime: dt.datetime) -> list[Entry]:
        occurrences = Occurrences()
        entries, any_status = [], False
        for m in scan(fh):
            fields = header_fields(m.head, ("date", "status", "x-status", "x-mozilla-status", "x-mozilla-keys"))
            any_status = any_status or "status" in fields or "x-mozilla-status" in fields
            flags = self._flags(fields)
            if flags is None:
                continue  # deleted (Thunderbird's expunged bit): not a message any more
            when = separator_date(m.separator) or date_header(fields.get("date")) or mtime
            uid = occurrences.uid(m.identity)
            entries.append(Entry(uid, m.size, flags, when, (m.start, m.end, m.identity)))
        if entries and not any_status:
            # no message says whether it was read: an export without read state, not an unread spool
            entries = [Entry(e.uid, e.size, (*e.flags, SEEN), e.internaldate, e.where) for e in entries]
        log.info("indexed %s: %d messages", folder.name, len(entries))
        return entries

    def _flags(self, fields: dict[str, str]) -> tuple[str, ...] | None:
        """The message's flags, or None to leave it out."""
        return status_flags(fields)

    def _handle(self, path: Path, opener: Callable[[], IO[bytes]] | None = None) -> IO[bytes]:
        fh = self._handles.get(path)
        if fh is None:
            fh = self._handles[path] = (opener or (lambda: open_buffered(path)))()
        return fh

    def _read(self, entry: Entry) -> bytes | None:
        start, end, identity = entry.where
        name = self._open().folder.name
        assert self._folders is not None  # listed by _open
        where = self._folders[name]
        raw = read_message(self._handle(where.path), start, end, identity, str(where.path))
        if self.strip_fields:
            raw = remove_fields(raw, self.strip_fields)
        return raw


def _folder_name(filename: str) -> str:
    return filename[:-5] if filename.lower().endswith(".mbox") and len(filename) > 5 else filename


def wrap(stream: Any) -> IO[bytes]:
    """A fast line reader over any readable binary stream (zip and tar members)."""
    return io.BufferedReader(stream, buffer_size=1 << 20)


# mypy proves here that MboxSource offers every part of the contract (as rclone's `var _ fs.Fs = &Fs{}`)
_fits_the_contract: type[SourceBackend] = MboxSource
