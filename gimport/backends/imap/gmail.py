"""A Gmail account as the old server: its labels kept, each message read once.

Gmail's IMAP shows every label as a folder, so a message with three labels is in three folders (plus
"[Gmail]/All Mail", which holds every message once, Spam and Trash excepted). Read folder by folder, it
would be read, and matched as a copy, three times. When the server announces X-GM-EXT-1 and lists a
folder with the \\All special-use flag, the source is read the way Gmail keeps it instead:

- All Mail is the one folder imported with its messages: each message once, under its All Mail UID (a
  message keeps that UID while it stays in the account), so resume and exactly-once are those of any
  folder. FETCH X-GM-LABELS gives each message's labels; each label becomes the folder that shows it
  (FetchedMessage.also_in), and the engine gives the message that folder's labels, as it does for a
  Google Takeout export (gimport.contract).
- Spam (\\Junk) and Trash (\\Trash), which All Mail leaves out, are imported as their own folders (SPAM,
  TRASH), their messages with their labels too.
- Every other folder is a label: listed with `served_from` (All Mail), so the mapping shows and creates
  its label ([labels] exclude, include, prefix and [labels.map] work on it as on any folder) without
  reading it. The system labels are matched by special-use flag, never by name (Gmail translates the
  names): \\Inbox -> INBOX, \\Sent -> SENT, \\Important -> IMPORTANT, \\Starred (the \\Flagged folder)
  -> STARRED, \\Draft -> a user label named as the folder (an import cannot set DRAFT). A user label is
  the label of the same name, never guessed from its name ("Junk" stays a user label).

A label hidden from IMAP in Gmail's settings is not listed: messages keep their other labels, and the
log names the hidden ones. Without an \\All folder (All Mail hidden from IMAP), the folders are read one
by one as on any server, and a message found in several of them is imported once (gimport.engine.copies).
Pure: the IMAP source (gimport.backends.imap.source) asks and fetches; this module only decides.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from imapclient import imap_utf7

from gimport.contract import Folder

log = logging.getLogger("gimport.imap")

GMAIL = b"X-GM-EXT-1"  # the capability a Gmail server announces
LABELS_ITEM = "X-GM-LABELS"

# special-use flag of the folder -> the X-GM-LABELS name of its label and the Gmail label it becomes
_SYSTEM = {
    "\\Sent": ("\\Sent", ("SENT",)),
    "\\Important": ("\\Important", ("IMPORTANT",)),
    "\\Flagged": ("\\Starred", ("STARRED",)),
}
_OWN_FOLDERS = {"\\Junk": ("SPAM",), "\\Trash": ("TRASH",)}  # imported with their messages, not from All Mail


def _flag(folder: Folder, flags: Iterable[str]) -> str | None:
    lowered = {f.lower() for f in folder.flags}
    return next((f for f in flags if f.lower() in lowered), None)


@dataclass(frozen=True)
class GmailLabels:
    """How one Gmail account's folders are read: `folders` as the mapping gets them, and the label name
    (as X-GM-LABELS gives it, decoded) -> the folder that shows it."""

    all_mail: str
    folders: list[Folder]
    by_label: dict[str, str]
    hidden: set[str] = field(default_factory=set)  # labels of messages that no folder shows (logged once each)

    @classmethod
    def of(cls, folders: list[Folder]) -> GmailLabels | None:
        """The account's folders read as labels; None when no folder has the \\All flag."""
        all_mail = next((f for f in folders if _flag(f, ("\\All",)) and f.selectable), None)
        if all_mail is None:
            log.warning("the server speaks X-GM-EXT-1 but lists no \\All folder: its folders are read one by one")
            return None
        out: list[Folder] = []
        by_label: dict[str, str] = {}
        for f in folders:
            if f is all_mail:
                out.append(replace(f, labels=()))  # no label of its own: a message with no other is archived
                continue
            own = _flag(f, tuple(_OWN_FOLDERS))
            if own is not None:
                out.append(replace(f, labels=_OWN_FOLDERS[own]))
                continue
            out.append(replace(f, labels=_labels(f), served_from=all_mail.name))
            by_label[_key(_label_name(f))] = f.name
        log.info("a Gmail source: %s read once, %d label folders", all_mail.name, len(by_label))
        return cls(all_mail.name, out, by_label)

    def also_in(self, value: object, folder: str) -> tuple[str, ...]:
        """The folders (other than `folder`) whose labels a message with this X-GM-LABELS value gets."""
        out: list[str] = []
        hidden: list[str] = []
        for label in decode_labels(value):
            name = self.by_label.get(_key(label))
            if name is None:
                if not label.startswith("\\") and label not in self.hidden:
                    hidden.append(label)
                continue  # \\Spam, \\Trash (their own folders) and hidden labels
            if name != folder and name not in out:
                out.append(name)
        if hidden:
            self.hidden.update(hidden)
            log.warning("labels not listed over IMAP (hidden in Gmail's settings), not imported: %s", hidden)
        return tuple(out)


def _key(label: str) -> str:
    """System labels (\\Inbox) compare case-insensitively; user labels exactly, as Gmail lists them."""
    return label.lower() if label.startswith("\\") else label


def _label_name(folder: Folder) -> str:
    """The label a folder shows, as X-GM-LABELS names it."""
    if folder.name.upper() == "INBOX":
        return "\\Inbox"
    system = _flag(folder, tuple(_SYSTEM))
    if system is not None:
        return _SYSTEM[system][0]
    if _flag(folder, ("\\Drafts",)):
        return "\\Draft"
    return folder.name


def _labels(folder: Folder) -> tuple[str, ...]:
    """The Gmail labels of a label folder: system ones by flag, else the user label of its name."""
    if folder.name.upper() == "INBOX":
        return ("INBOX",)
    system = _flag(folder, tuple(_SYSTEM))
    if system is not None:
        return _SYSTEM[system][1]
    if _flag(folder, ("\\Drafts",)):
        return (folder.path.split("/")[-1],)  # "[Gmail]/Drafts" -> "Drafts" (a reserved name: renamed)
    return (folder.path,)


def decode_labels(value: object) -> list[str]:
    """An X-GM-LABELS value (as IMAPClient's parser gives it: quoting undone) -> label names, modified
    UTF-7 decoded; a system label keeps its backslash (\\Inbox). A label name that is a number (an atom the
    parser reads as int) is that name; NIL and a name that is not valid modified UTF-7 are kept as sent."""
    if not isinstance(value, (tuple, list)):
        value = () if value is None else (value,)
    out = []
    for item in value:
        if item is None:
            continue
        raw = str(item).encode() if isinstance(item, int) else item if isinstance(item, bytes) else str(item).encode()
        if raw.startswith(b"\\"):
            out.append(raw.decode("ascii", "replace"))
            continue
        try:
            out.append(imap_utf7.decode(raw))
        except (ValueError, UnicodeError):
            out.append(raw.decode("utf-8", "replace"))
    return out
