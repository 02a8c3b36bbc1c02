"""A Google Takeout export of Gmail, read-only: [source] type = "takeout", path = the .zip or .tgz
Takeout delivers (read in place: nothing is unpacked to disk), the folder it was unpacked into, or the
.mbox file itself.

Takeout's mbox files give every message an X-Gmail-Labels header ("Inbox,Important,Opened,Work/2024").
Gmail has labels, not folders, so this source lists one folder per label and serves each message in
ONE of them (its home), naming the others in FetchedMessage.also_in: the engine imports it once, with
the labels of all of them, after the usual mapping ([labels] exclude/include/prefix and [labels.map]
work on these folder names).
- System labels are recognised by name in English and in the forms an account set to Japanese exports
  (Inbox/受信トレイ, Sent/送信済みメール, Important/重要, Spam/迷惑メール, Trash/ゴミ箱, Drafts/下書き,
  Category Social/カテゴリ: ソーシャル, ...) and listed under one English name each: INBOX, Sent,
  Important, Spam, Trash, Drafts, "Category Personal|Social|Promotions|Updates|Forums", and "Archived"
  for messages with no other label (imported with no label: archived).
- Starred/スター付き and Unread/未読 (or Opened/開封済み) are flags (STARRED, UNREAD), not folders; a
  message that is neither Unread nor Opened counts as read.
- Chat messages (label Chat/チャット) are skipped: Gmail refuses CHAT on import.
- Every other label is a user label, nested at "/".
The home is the first of a message's folders, in the order INBOX, Sent, Drafts, user labels (by name),
Important, categories, Spam, Trash, Archived, that the mapping imports: a label excluded in [labels]
still leaves its messages imported under their other labels, and a message is left out only when all
its labels are excluded. Which labels are imported comes from [labels] (SourceSettings.labels).

What identifies a message: as for mbox (its bytes without volatile headers, X-Gmail-Labels included,
numbered among identical ones in its mbox file; the same message in a second mbox of the export, as
when Takeout writes one file per label, is that message again and read once) under its home folder; changing [labels] exclude/include between runs,
or importing a newer export in which a message's labels changed, can move a message to another home,
and so import it again.
Reading: the archive is read once to list the labels, then once per folder that has messages (forward
only; a .zip member or a .tgz is decompressed as it is read, never unpacked to disk).
"""

from __future__ import annotations

import contextlib
import csv
import email.header
import gzip
import os
import re
import tarfile
import unicodedata
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from gimport.backends.local.common import FLAGGED, SEEN, Entry, Occurrences, date_header, file_time, header_fields, log
from gimport.backends.local.mbox import MboxSource, looks_like_mbox, open_buffered, wrap
from gimport.backends.local.mboxscan import NotMbox, read_message, scan, separator_date
from gimport.config.settings import LabelSettings
from gimport.contract import Folder, SourceBackend
from gimport.errors import SourceError
from gimport.i18n import _
from gimport.mail.mapping import IMPORT, plan_folder

INBOX, SENT, DRAFTS, IMPORTANT, SPAM, TRASH, ARCHIVED = (
    "INBOX",
    "Sent",
    "Drafts",
    "Important",
    "Spam",
    "Trash",
    "Archived",
)
CATEGORIES = {
    "Category Personal": "CATEGORY_PERSONAL",
    "Category Social": "CATEGORY_SOCIAL",
    "Category Promotions": "CATEGORY_PROMOTIONS",
    "Category Updates": "CATEGORY_UPDATES",
    "Category Forums": "CATEGORY_FORUMS",
}
SYSTEM_FOLDERS: dict[str, tuple[str, ...]] = {
    INBOX: ("INBOX",),
    SENT: ("SENT",),
    IMPORTANT: ("IMPORTANT",),
    SPAM: ("SPAM",),
}
SYSTEM_FOLDERS.update({TRASH: ("TRASH",), ARCHIVED: (), **{k: (v,) for k, v in CATEGORIES.items()}})
_ORDER = [INBOX, SENT, DRAFTS]  # then user labels, then:
_LATE = [IMPORTANT, *CATEGORIES, SPAM, TRASH, ARCHIVED]

STARRED, UNREAD, OPENED, CHAT = "+starred", "+unread", "+opened", "+chat"  # not folders
_NAMES = {
    INBOX: "inbox|受信トレイ",
    SENT: "sent|sent mail|送信済みメール|送信済み",
    DRAFTS: "drafts|draft|下書き",
    IMPORTANT: "important|重要",
    SPAM: "spam|迷惑メール",
    TRASH: "trash|bin|ゴミ箱|ごみ箱",
    ARCHIVED: "archived|アーカイブ",
    STARRED: "starred|スター付き",
    UNREAD: "unread|未読",
    OPENED: "opened|開封済み|既読",
    CHAT: "chat|chats|チャット",
}
_CATEGORY = re.compile(r"^(?:category|カテゴリー?)[\s:：_/-]*(.+)$")
_CATEGORY_NAMES = {
    "Category Personal": "personal|primary|メイン|個人",
    "Category Social": "social|ソーシャル",
    "Category Promotions": "promotions|プロモーション",
    "Category Updates": "updates|新着|更新",
    "Category Forums": "forums|フォーラム",
}


def _key(name: str) -> str:
    return unicodedata.normalize("NFKC", name).strip().casefold()


_BY_NAME = {_key(n): canon for canon, names in _NAMES.items() for n in names.split("|")}
_CATEGORY_BY_NAME = {_key(n): canon for canon, names in _CATEGORY_NAMES.items() for n in names.split("|")}


def classify(label: str) -> str:
    """A Takeout label -> the folder name it is listed as, or STARRED/UNREAD/OPENED/CHAT."""
    key = _key(label)
    if key in _BY_NAME:
        return _BY_NAME[key]
    m = _CATEGORY.match(key)
    if m and _key(m.group(1)) in _CATEGORY_BY_NAME:
        return _CATEGORY_BY_NAME[_key(m.group(1))]
    return label.strip()


def parse_labels(value: str) -> list[str]:
    """The X-Gmail-Labels value (raw header, latin-1 decoded) -> label names. Takeout writes UTF-8 (or
    RFC 2047 words), separates with commas and quotes a label that holds one."""
    text = value.encode("latin-1").decode("utf-8", "replace")
    if "=?" in text:
        with contextlib.suppress(ValueError, LookupError, UnicodeDecodeError):
            text = str(email.header.make_header(email.header.decode_header(text)))
    row = next(csv.reader([text], skipinitialspace=True), [])
    return [label.strip() for label in row if label.strip()]


def _rank(name: str) -> tuple[int, str]:
    if name in _ORDER:
        return _ORDER.index(name), ""
    if name in _LATE:
        return 100 + _LATE.index(name), ""
    return 50, _key(name)


@dataclass(frozen=True)
class Stream:
    """One mbox in the export: a file, or a member of a .zip or of a tar (at `offset` in the
    decompressed tar stream)."""

    file: Path
    member: str | None = None
    kind: str = "file"  # file | zip | tar
    offset: int = 0

    def open(self) -> IO[bytes]:
        if self.kind == "zip":
            assert self.member is not None
            return wrap(zipfile.ZipFile(self.file).open(self.member))
        if self.kind == "tar":
            return cast(IO[bytes], _Window(_tar_stream(self.file), self.offset))  # the part of IO it is read by
        return open_buffered(self.file)

    def __str__(self) -> str:
        return f"{self.file}:{self.member}" if self.member else str(self.file)


def _tar_stream(path: Path) -> IO[bytes]:
    name = path.name.lower()
    if name.endswith((".tgz", ".tar.gz")):
        return cast(IO[bytes], gzip.open(path, "rb"))
    return open(path, "rb")


class _Window:
    """A tar member as a file of its own: offsets relative to its first byte."""

    def __init__(self, fh: IO[bytes], base: int) -> None:
        self._fh, self._base = fh, base

    def seek(self, pos: int) -> int:
        return self._fh.seek(self._base + pos) - self._base

    def read(self, n: int = -1) -> bytes:
        return self._fh.read(n)

    def close(self) -> None:
        self._fh.close()


class TakeoutSource(MboxSource):
    kind = "takeout"

    def __init__(self, path: Path, account: str, labels: LabelSettings | None) -> None:
        super().__init__(path, account)
        self._rules = labels or LabelSettings()
        self._homes: dict[str, list[Entry]] = {}
        self._streams: dict[str, Stream] = {}

    # -- listing: one pass over every mbox of the export --------------------------------------------
    def _list(self) -> list[tuple[Folder, Any]]:
        messages = []  # (folders by rank, Entry without also_in)
        taken: set[int] = set()  # uids of earlier mbox files of the export
        mtime = file_time(os.stat(self.path))
        found = False
        for stream, fh in self._each_stream():
            found = True
            occurrences, mine = Occurrences(), set()
            try:
                for m in scan(fh):
                    fields = header_fields(m.head, ("x-gmail-labels", "date"))
                    names = {classify(label) for label in parse_labels(fields.get("x-gmail-labels", ""))}
                    if CHAT in names:
                        continue
                    flags = (*(() if UNREAD in names else (SEEN,)), *((FLAGGED,) if STARRED in names else ()))
                    folders = sorted(names - {STARRED, UNREAD, OPENED, ARCHIVED}, key=_rank) or [ARCHIVED]
                    when = separator_date(m.separator) or date_header(fields.get("date")) or mtime
                    uid = occurrences.uid(m.identity)
                    if uid in taken:
                        continue  # in an earlier mbox of the export too (one per label): the same message
                    mine.add(uid)
                    messages.append(
                        (folders, Entry(uid, m.size, flags, when, (str(stream), m.start, m.end, m.identity)))
                    )
            except NotMbox as exc:
                raise SourceError(f"{stream}: {exc}") from None
            finally:
                fh.close()
            taken |= mine
        if not found:
            raise SourceError(
                _("[source] path {path}: no .mbox file found in this Takeout export").format(path=self.path)
            )
        listed: dict[str, Folder] = {}
        for folders, _entry in messages:
            for name in folders:
                if name not in listed:
                    listed[name] = Folder(name, "/", labels=SYSTEM_FOLDERS.get(name))
        importing = {n for n, f in listed.items() if plan_folder(f, self._rules).action == IMPORT}
        self._homes = {name: [] for name in listed}
        for folders, e in messages:
            home = next((n for n in folders if n in importing), None)
            if home is None:
                continue  # every label it has is excluded
            others = tuple(n for n in folders if n != home)
            self._homes[home].append(Entry(e.uid, e.size, e.flags, e.internaldate, e.where, others))
        log.info("indexed the Takeout export %s: %d messages, %d labels", self.path, len(messages), len(listed))
        return [(listed[n], n) for n in sorted(listed, key=_rank)]

    def _each_stream(self) -> Iterator[tuple[Stream, IO[bytes]]]:
        for archive in self._archives():
            name = archive.name.lower()
            if name.endswith(".zip"):
                with zipfile.ZipFile(archive) as zf:
                    for info in zf.infolist():
                        if info.filename.lower().endswith(".mbox") and not info.is_dir():
                            stream = self._streams.setdefault(
                                str(archive) + ":" + info.filename, Stream(archive, info.filename, "zip")
                            )
                            yield stream, wrap(zf.open(info))
            elif name.endswith((".tgz", ".tar.gz", ".tar")):
                with tarfile.open(archive, "r|*") as tf:  # one forward pass over the compressed stream
                    for tinfo in tf:
                        if tinfo.isfile() and tinfo.name.lower().endswith(".mbox"):
                            key = str(archive) + ":" + tinfo.name
                            stream = self._streams.setdefault(
                                key, Stream(archive, tinfo.name, "tar", tinfo.offset_data)
                            )
                            member = tf.extractfile(tinfo)
                            assert member is not None
                            yield stream, member
            else:
                stream = self._streams.setdefault(str(archive), Stream(archive))
                yield stream, open_buffered(archive)

    def _archives(self) -> list[Path]:
        p = self.path
        if p.is_file():
            if p.name.lower().endswith((".zip", ".tgz", ".tar.gz", ".tar")) or looks_like_mbox(p):
                return [p]
            raise SourceError(_("[source] path {path} is not a Takeout .zip, .tgz or .mbox file").format(path=p))
        if not p.is_dir():
            raise SourceError(_("[source] path {path} is neither a file nor a folder").format(path=p))
        return sorted(
            f
            for f in p.rglob("*")
            if f.is_file()
            and f.name.lower().endswith((".mbox", ".zip", ".tgz", ".tar.gz"))
            and not f.name.startswith(".")
        )

    # -- folders and messages -----------------------------------------------------------------------
    def _stamp(self, where: str) -> Any:
        return id(self._homes)  # indexed when listed

    def _index(self, folder: Folder, where: str) -> list[Entry]:
        return self._homes.get(where, [])

    def _read(self, entry: Entry) -> bytes | None:
        key, start, end, identity = entry.where
        stream = self._streams[key]
        fh = self._handles.get(Path(key))
        if fh is None:
            fh = self._handles[Path(key)] = stream.open()
        return read_message(fh, start, end, identity, str(stream))


# mypy proves here that TakeoutSource offers every part of the contract (as rclone's `var _ fs.Fs = &Fs{}`)
_fits_the_contract: type[SourceBackend] = TakeoutSource
