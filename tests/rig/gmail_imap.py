"""A Gmail account over IMAP, as the scripted server of tests/rig/fault_imap.py serves it: every label a folder,
every message (Spam and Trash excepted) in "[Gmail]/All Mail" once, X-GM-EXT-1 in CAPABILITY, RFC 6154
special-use flags in LIST, X-GM-LABELS and X-GM-MSGID in FETCH.

    box = gmail_mailbox([
        GmailMessage(raw1, ("\\\\Inbox", "Work", "仕事/報告")),     # three labels
        GmailMessage(raw2, (), flags=("\\\\Seen",)),             # archived: All Mail only
        GmailMessage(raw3, ("Work",), where="spam"),           # in [Gmail]/Spam
    ])
    with FaultImapServer(box, Faults(capabilities=GMAIL_CAPABILITIES)) as srv: ...

Each folder numbers its messages from 1 in the order given (as Gmail does, a message has another UID in each
folder); X-GM-MSGID is the same in all of them. The names are the English ones Gmail gives; `names` changes
them (a Japanese account: {"All Mail": "すべてのメール"}), the flags stay.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from tests.rig.fault_imap import DEFAULT_CAPABILITIES, DEFAULT_INTERNALDATE, FaultFolder, FaultMessage, Mailbox

GMAIL_CAPABILITIES = (*DEFAULT_CAPABILITIES, "X-GM-EXT-1", "SPECIAL-USE")

# system label -> (folder under [Gmail], its special-use flag); \\Inbox is INBOX
SYSTEM = {
    "\\Sent": ("Sent Mail", "\\Sent"),
    "\\Important": ("Important", "\\Important"),
    "\\Starred": ("Starred", "\\Flagged"),
    "\\Draft": ("Drafts", "\\Drafts"),
}


@dataclasses.dataclass(frozen=True)
class GmailMessage:
    """One message: its labels as X-GM-LABELS names them (``\\Inbox``, ``\\Sent``, ``Work/2024``) and where it
    is: "mail" (All Mail and a folder per label), "spam" or "trash"."""

    raw: bytes
    labels: tuple[str | bytes, ...] = ()
    flags: tuple[str, ...] = ()
    where: str = "mail"
    internaldate: dt.datetime = DEFAULT_INTERNALDATE


def gmail_mailbox(
    messages: Sequence[GmailMessage], *, names: dict[str, str] | None = None, uidvalidity: int = 600
) -> Mailbox:
    """The folders Gmail lists for these messages (a label folder for every label any message has)."""
    names = names or {}

    def gmail(name: str) -> str:
        return "[Gmail]/" + names.get(name, name)

    folders: dict[str, FaultFolder] = {}

    def folder(name: str, attributes: tuple[str, ...] = ()) -> FaultFolder:
        if name not in folders:
            folders[name] = FaultFolder(name, [], uidvalidity + len(folders), (*attributes, "\\HasNoChildren"))
        return folders[name]

    folder("INBOX")
    folders["[Gmail]"] = FaultFolder("[Gmail]", [], 1, ("\\Noselect", "\\HasChildren"))
    all_mail = folder(gmail("All Mail"), ("\\All",))
    for name, flag in SYSTEM.values():
        folder(gmail(name), (flag,))
    spam, trash = folder(gmail("Spam"), ("\\Junk",)), folder(gmail("Trash"), ("\\Trash",))
    for msgid, m in enumerate(messages, 1000):
        homes = {"mail": [all_mail], "spam": [spam], "trash": [trash]}[m.where]
        if m.where == "mail":
            for label in m.labels:
                text = label.decode() if isinstance(label, bytes) else label
                text = text.strip('"').replace("\\\\", "\\")
                if text.lower() == "\\inbox":
                    homes.append(folders["INBOX"])
                elif text in SYSTEM:
                    homes.append(folder(gmail(SYSTEM[text][0])))
                else:
                    homes.append(folder(text))
        for f in homes:
            uid = len(f.messages) + 1
            f.messages.append(FaultMessage(uid, m.raw, m.flags, m.internaldate, labels=m.labels, gm_msgid=msgid))
    for f in folders.values():
        f.__post_init__()  # the index by UID
    return Mailbox(list(folders.values()))
