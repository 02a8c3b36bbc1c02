"""Thunderbird's folders, read-only: [source] type = "thunderbird", path = a profile folder, its Mail/
or ImapMail/ folder, or one account's folder in them (e.g. "Mail/Local Folders").

A Thunderbird folder is an mbox file without an extension; its subfolders are in "<name>.sbd/". The
.msf files (Mork summaries, rebuilt by Thunderbird) and every other file are ignored. Read as mbox
(gimport.backends.local.mbox: the same streaming, escaping and identity), with:
- X-Mozilla-Status: 0x0001 read (\\Seen), 0x0002 replied (\\Answered), 0x0004 marked (\\Flagged), 0x0008
  expunged (\\Deleted: deleted, not yet compacted away; left out unless [filters] include_deleted);
- X-Mozilla-Keys: the message's tags, as IMAP keywords ($label1.., custom ones): they become labels;
- a message marked partial (0x0400: POP "download headers only") is imported as stored, with a warning
  in the log: Thunderbird never had the rest of it;
- X-Mozilla-Status, X-Mozilla-Status2 and X-Mozilla-Keys are removed from what is imported (they are
  Thunderbird's bookkeeping, rewritten in place), and are not part of a message's identity, so marking
  a message read or compacting the folder between two runs changes no key.
A folder that holds no message (an empty file such as "Unsent Messages", a parent kept for its
subfolders, one whose messages are all expunged) is listed as \\Noselect: it makes no empty label.
Folder names: the path below the root with "/" between levels; with a profile or Mail/ as the root,
the account folder is the first level ("Local Folders/Archives/2020").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gimport.backends.local.common import ANSWERED, DELETED, FLAGGED, SEEN, FolderIndex, log
from gimport.backends.local.mbox import MboxFile, MboxSource, looks_like_mbox, status_flags
from gimport.backends.local.mboxscan import SERVER_FIELDS
from gimport.contract import Folder, SourceBackend
from gimport.errors import SourceError
from gimport.i18n import _

READ, REPLIED, MARKED, EXPUNGED, PARTIAL = 0x0001, 0x0002, 0x0004, 0x0008, 0x0400
_IGNORED_EXT = (".msf", ".dat", ".json", ".sqlite", ".html", ".js", ".txt", ".lock", ".bak", ".mab", ".log")


class ThunderbirdSource(MboxSource):
    kind = "thunderbird"
    strip_fields = SERVER_FIELDS | {b"x-mozilla-status", b"x-mozilla-status2", b"x-mozilla-keys"}

    def _list(self) -> list[tuple[Folder, Any]]:
        root = self.path
        if not root.is_dir():
            raise SourceError(
                _("[source] path {path} is not a folder (a Thunderbird profile or a folder in it)").format(path=root)
            )
        out: list[tuple[Folder, Any]] = []
        stores = [root / d for d in ("Mail", "ImapMail") if (root / d).is_dir()]
        if stores:  # a profile: every account of Mail/ and ImapMail/
            for store in stores:
                for account in sorted(p for p in store.iterdir() if p.is_dir()):
                    _walk(account, account.name + "/", out)
        elif _has_folders(root):  # one account's folder
            _walk(root, "", out)
        else:  # Mail/ or ImapMail/ itself
            for account in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.endswith(".sbd")):
                _walk(account, account.name + "/", out)
        if not out:
            raise SourceError(
                _(
                    "[source] path {path}: no Thunderbird mail folders found (point it at the profile, or at"
                    " Mail/Local Folders)"
                ).format(path=root)
            )
        return [self._unless_empty(folder, where) for folder, where in out]

    def _unless_empty(self, folder: Folder, where: MboxFile | None) -> tuple[Folder, MboxFile | None]:
        """A folder that holds no message (Unsent Messages, Templates, a parent kept for its subfolders,
        one whose messages are all expunged but not compacted: Thunderbird shows it empty) as \\Noselect: it
        makes no empty label. Indexed here, once: the index is kept for examine()."""
        if where is None:
            return folder, where
        try:
            if where.path.stat().st_size:
                stamp = self._stamp(where)
                entries = self._index(folder, where)
                self._indexes[folder.name] = FolderIndex(folder, entries, stamp)
                if any(DELETED not in e.flags for e in entries):
                    return folder, where
        except (OSError, SourceError):
            return folder, where  # examine() says what is wrong with it
        return Folder(folder.name, flags=frozenset({"\\Noselect"})), None

    def _flags(self, fields: dict[str, str]) -> tuple[str, ...] | None:
        value = fields.get("x-mozilla-status")
        if value is None:
            return status_flags(fields)
        try:
            bits = int(value.strip()[:4], 16)
        except ValueError:
            return status_flags(fields)
        if bits & PARTIAL:
            # POP "headers only": Thunderbird never had the rest; imported as it is, and said in the log
            log.warning("a message marked partial (headers only) in Thunderbird is imported as Thunderbird has it")
        flags = []
        if bits & READ:
            flags.append(SEEN)
        if bits & REPLIED:
            flags.append(ANSWERED)
        if bits & MARKED:
            flags.append(FLAGGED)
        if bits & EXPUNGED:
            flags.append(DELETED)
        flags += fields.get("x-mozilla-keys", "").split()
        return tuple(flags)


def _is_folder_file(p: Path) -> bool:
    if p.name.startswith(".") or p.name.lower().endswith(_IGNORED_EXT) or not p.is_file():
        return False
    # an empty folder is an empty file with its summary next to it
    return looks_like_mbox(p) or (p.stat().st_size == 0 and p.with_name(p.name + ".msf").exists())


def _has_folders(d: Path) -> bool:
    return any(_is_folder_file(p) or (p.is_dir() and p.name.endswith(".sbd")) for p in d.iterdir())


def _walk(d: Path, prefix: str, out: list[tuple[Folder, Any]]) -> None:
    for p in sorted(d.iterdir()):
        if _is_folder_file(p):
            out.append((Folder(prefix + p.name), MboxFile(p)))
    for p in sorted(d.iterdir()):
        if p.is_dir() and p.name.endswith(".sbd"):
            name = p.name[:-4]
            if not (d / name).is_file():  # a subfolder's parent that is no folder itself
                out.append((Folder(prefix + name, flags=frozenset({"\\Noselect"})), None))
            _walk(p, prefix + name + "/", out)


# mypy proves here that ThunderbirdSource offers every part of the contract (as rclone's `var _ fs.Fs = &Fs{}`)
_fits_the_contract: type[SourceBackend] = ThunderbirdSource
