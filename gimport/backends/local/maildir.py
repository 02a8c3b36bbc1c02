"""Maildir and Maildir++, read-only: [source] type = "maildir", path = the Maildir (holding cur/ new/).

Folders: the Maildir itself is INBOX; Maildir++ subfolders are the directories ".Name" and ".Name.Sub"
beside cur/ (as Dovecot and Courier keep them), names in IMAP's modified UTF-7 decoded ("&ZeVnLIqe-"
-> "日本語"), "." between levels. The standard library's mailbox.Maildir lists them; the messages are
listed here from cur/ and new/ directly, because the flags are in the file names (mailbox would parse
every message to give them) and the internal date is each file's modification time.

Flags from the name's ":2,<letters>" part: S \\Seen, R \\Answered, F \\Flagged, D \\Draft, T \\Deleted
(trashed, waiting for expunge: left out unless [filters] include_deleted); the letters a..z are keywords,
named in the folder's dovecot-keywords file (Dovecot's "N keyword" lines: a is 0); new/ holds unseen messages. Internal date:
the file's modification time (what Dovecot reports as INTERNALDATE; it dates a message that has no
Date header).

What identifies a message (its uid): the file's unique name, the part before ":" (the Maildir spec
keeps it when a program changes the flags, which renames the file, or moves it from new/ to cur/). It
is never re-used for another message, so two identical messages have two names and two keys.
"""

from __future__ import annotations

import mailbox
import os
from pathlib import Path
from typing import Any

from gimport.backends.local.common import (
    ANSWERED,
    DELETED,
    DRAFT,
    FLAGGED,
    SEEN,
    Entry,
    LocalSource,
    decode_modified_utf7,
    file_time,
    log,
    make_uid,
)
from gimport.contract import Folder, SourceBackend
from gimport.errors import SourceError
from gimport.i18n import _

_FLAG_LETTERS = {"S": SEEN, "R": ANSWERED, "F": FLAGGED, "D": DRAFT, "T": DELETED}


def keyword_letters(folder: Path) -> dict[str, str]:
    """Dovecot's dovecot-keywords file of a Maildir folder: letter (a..z) -> keyword; {} without one."""
    try:
        text = (folder / "dovecot-keywords").read_text("utf-8", "replace")
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in text.splitlines():
        number, _sep, keyword = line.strip().partition(" ")
        if number.isdigit() and int(number) < 26 and keyword:
            out[chr(ord("a") + int(number))] = keyword
    return out


def parse_name(name: str) -> tuple[str, str | None]:
    """(unique part, flag letters or None when the name has no ":2," info)."""
    unique, sep, info = name.partition(":")
    if not sep:  # some copies made on filesystems without ":" use "!" or ";" instead
        for alt in ("!", ";"):
            unique, sep, info = name.partition(alt)
            if sep:
                break
    if sep and info.startswith("2,"):
        return unique, info[2:]
    return (unique if sep else name), None


class MaildirSource(LocalSource):
    kind = "maildir"

    def __init__(self, path: Path, account: str) -> None:
        super().__init__(path, account)
        self._renamed: dict[Path, dict[str, Path]] = {}

    def _list(self) -> list[tuple[Folder, Any]]:
        root = self.path
        if not (root / "cur").is_dir() and not (root / "new").is_dir():
            raise SourceError(
                _("[source] path {path} is not a Maildir (it has no cur/ or new/ folder)").format(path=root)
            )
        # create=False: mailbox.Maildir then only reads
        box = mailbox.Maildir(str(root), factory=None, create=False)
        out: list[tuple[Folder, Any]] = [(Folder("INBOX", "."), root)]
        for raw_name in sorted(box.list_folders()):
            name = ".".join(decode_modified_utf7(part) for part in raw_name.split("."))
            if name.upper() == "INBOX":
                continue
            out.append((Folder(name, "."), root / ("." + raw_name)))
        return out

    def _stamp(self, where: Path) -> Any:
        # a directory's mtime changes when a file in it is added, removed or renamed
        return tuple(os.stat(where / d).st_mtime_ns for d in ("cur", "new") if (where / d).is_dir())

    def _index(self, folder: Folder, where: Path) -> list[Entry]:
        self._renamed.pop(where, None)
        entries = []
        tags = keyword_letters(where)
        for sub in ("cur", "new"):
            d = where / sub
            if not d.is_dir():
                continue
            with os.scandir(d) as it:
                files = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
            for f in files:
                unique, letters = parse_name(f.name)
                try:
                    st = f.stat()
                except FileNotFoundError:
                    continue  # renamed or removed by a mail program meanwhile
                if not f.is_file():
                    continue
                flags = tuple(_FLAG_LETTERS[c] for c in sorted(set(letters or "")) if c in _FLAG_LETTERS)
                flags += tuple(tags[c] for c in sorted(set(letters or "")) if c in tags)
                entries.append(
                    Entry(make_uid(unique.encode(), 0), st.st_size, flags, file_time(st), (where, d / f.name, unique))
                )
        log.info("indexed %s: %d messages", folder.name, len(entries))
        return entries

    def _read(self, entry: Entry) -> bytes | None:
        where, path, unique = entry.where
        try:
            with open(path, "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            pass
        # renamed since the index was made (its flags changed, or it moved from new/ to cur/)
        renamed = self._renamed.get(where)
        if renamed is None:
            renamed = self._renamed[where] = _by_unique(where)
        path = renamed.get(unique)
        if path is None:
            return None  # removed since
        with open(path, "rb") as fh:
            return fh.read()

    def close(self) -> None:
        self._renamed.clear()
        super().close()


def _by_unique(where: Path) -> dict[str, Path]:
    found = {}
    for sub in ("cur", "new"):
        try:
            with os.scandir(where / sub) as it:
                for e in it:
                    found[parse_name(e.name)[0]] = where / sub / e.name
        except FileNotFoundError:
            pass
    return found


# mypy proves here that MaildirSource offers every part of the contract (as rclone's `var _ fs.Fs = &Fs{}`)
_fits_the_contract: type[SourceBackend] = MaildirSource
