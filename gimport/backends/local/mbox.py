"""mbox files, read-only and streamed: [source] type = "mbox", path = a file or a folder of files.

Why not the standard library's mailbox.mbox: it opens the file for writing when it can ("rb+"), it
counts every line starting with "From " as a separator, it does not undo the ">From " escaping, knows
nothing of Content-Length, and its table of contents knows nothing of what gimport needs per message (an
identity that survives flag changes, the flags, a date). So the file is read here
(gimport.backends.local.mboxscan: once, line by line, without holding more than one header block; the
index keeps offsets), and each message again when it is imported. Each file's variant (mboxo, mboxrd,
mboxcl, mboxcl2) is found as it is read; `folder_format` names it for `gimport plan`.

What identifies a message (its uid): a hash of its bytes as read, without the separator line and
without the header fields mail programs rewrite in place when flags change (Status, X-Status,
X-Keywords, X-UID, X-IMAP, X-IMAPbase, X-Mozilla-Status, X-Mozilla-Status2, X-Mozilla-Keys,
X-Gmail-Labels), numbered among identical ones. Offsets are not part of it: an mbox growing at its
end, or compacted (deleted messages removed), keeps the keys of the messages it still has.

What is imported: the message as the mbox's IMAP server (UW-IMAP, Dovecot) would serve it: without the
fields it keeps for itself (Status, X-Status, X-Keywords, X-UID, X-IMAP, X-IMAPbase, and the
Content-Length that framed a message), whose flags are kept as flags.
Flags: Status "R" = \\Seen; X-Status "A" = \\Answered, "F" = \\Flagged, "T" = \\Draft, "D" = deleted (the
message is skipped, as a Maildir "T"); X-Keywords = keywords. A file in which no message has a Status
header carries no read state at all (an export): its messages count as read.
Internal date: the separator line's date, else the Date header, else the file's modification time.
"""

from __future__ import annotations

import datetime as dt
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from gimport.backends.local.common import (
    ANSWERED,
    DELETED,
    DRAFT,
    FLAGGED,
    SEEN,
    Entry,
    LocalSource,
    Occurrences,
    date_header,
    decode_modified_utf7,
    file_time,
    header_fields,
    log,
    remove_fields,
)
from gimport.backends.local.mboxscan import SERVER_FIELDS, NotMbox, Variant, read_message, scan, separator_date
from gimport.contract import Folder, SourceBackend
from gimport.errors import SourceError
from gimport.i18n import _, english

_NOT_MBOX_EXT = (".msf", ".dat", ".json", ".sqlite", ".html", ".js", ".txt", ".lock", ".bak", ".db", ".zip", ".gz")
_CONTENT_LENGTH = frozenset({b"content-length"})


def status_flags(fields: dict[str, str]) -> tuple[str, ...] | None:
    """Flags from the Status, X-Status and X-Keywords headers an mbox's IMAP server or mail program
    writes (X-Status "D": marked deleted, gone at the next expunge, as \\Deleted)."""
    xs = fields.get("x-status", "")
    flags = [SEEN] if "R" in fields.get("status", "") else []
    flags += [f for letter, f in (("A", ANSWERED), ("F", FLAGGED), ("T", DRAFT), ("D", DELETED)) if letter in xs]
    # keywords: space-separated (UW-IMAP, Dovecot pads with spaces), some writers use commas
    flags += [k for k in fields.get("x-keywords", "").replace(",", " ").split() if not k.startswith("\\")]
    return tuple(dict.fromkeys(flags))


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
    strip_fields: frozenset[bytes] = SERVER_FIELDS  # header fields left out of what is imported

    def __init__(self, path: Path, account: str) -> None:
        super().__init__(path, account)
        self._handles: dict[Path, IO[bytes]] = {}
        self._variants: dict[str, Variant] = {}  # folder name -> what its file turned out to be

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
                # Dovecot and UW-IMAP name the files and folders of an mbox tree in modified UTF-7
                name = "/".join([*map(decode_modified_utf7, rel.parts[:-1]), _folder_name(rel.name)])
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

    def folder_format(self, folder: str) -> tuple[str, list[str]] | None:
        """The mbox variant of an examined folder's file and what it leaves open (for `gimport plan`)."""
        variant = self._variants.get(folder)
        if variant is None:
            return None
        return variant.name, variant.doubts()

    def _entries(self, folder: Folder, fh: IO[bytes], mtime: dt.datetime) -> list[Entry]:
        occurrences = Occurrences()
        entries, any_status = [], False
        variant = self._variants[folder.name] = Variant()
        for m in scan(fh, content_length=True, variant=variant):
            fields = header_fields(
                m.head, ("date", "status", "x-status", "x-keywords", "x-mozilla-status", "x-mozilla-keys")
            )
            any_status = any_status or "status" in fields or "x-mozilla-status" in fields
            flags = self._flags(fields)
            if flags is None:
                continue  # deleted, not yet expunged: not a message any more
            when = separator_date(m.separator) or date_header(fields.get("date")) or mtime
            uid = occurrences.uid(m.identity)
            entries.append(Entry(uid, m.size, flags, when, (m.start, m.end, m.identity, m.quoted)))
        if entries and not any_status:
            # no message says whether it was read: an export without read state, not an unread spool
            entries = [Entry(e.uid, e.size, (*e.flags, SEEN), e.internaldate, e.where) for e in entries]
        log.info("indexed %s: %d messages (%s)", folder.name, len(entries), variant.name)
        if variant.pseudo:
            log.info("%s: the mail server's folder-data message (FOLDER INTERNAL DATA) is left out", folder.name)
        for doubt in variant.doubts():
            log.warning("%s: %s", folder.name, english(doubt))
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
        start, end, identity, quoted = entry.where
        name = self._open().folder.name
        assert self._folders is not None  # listed by _open
        where = self._folders[name]
        raw = read_message(self._handle(where.path), start, end, identity, str(where.path), quoted=quoted)
        # a Content-Length that framed the message is the mbox's, not the message's
        return remove_fields(raw, self.strip_fields if quoted else self.strip_fields | _CONTENT_LENGTH)


def _folder_name(filename: str) -> str:
    name = filename[:-5] if filename.lower().endswith(".mbox") and len(filename) > 5 else filename
    return decode_modified_utf7(name)


def wrap(stream: Any) -> IO[bytes]:
    """A fast line reader over any readable binary stream (zip and tar members)."""
    return io.BufferedReader(stream, buffer_size=1 << 20)


# mypy proves here that MboxSource offers every part of the contract (as rclone's `var _ fs.Fs = &Fs{}`)
_fits_the_contract: type[SourceBackend] = MboxSource
