"""Folder -> Gmail labels: pure functions, no I/O.

Inputs are what the IMAP server reports (folder name, hierarchy delimiter, LIST flags) and the message
flags; the output is a set of label references: Gmail system label ids (INBOX, SENT, SPAM, TRASH,
UNREAD, STARRED, ...) or user label names with "/" for nesting.

Default rules, in order:
1. `[labels] exclude` globs (exclude always wins), then `include` (when non-empty, only those folders).
2. `[labels.map]` entries: folder path -> label name(s) and/or system label id(s); then the labels a
   source gives with the folder (Folder.labels: Takeout's Important, Category ...; a Gmail source's).
3. INBOX -> INBOX. Folders below INBOX (Courier/Cyrus style "INBOX.Sent") are treated as top-level.
4. Special folders, by RFC 6154 special-use flag or well-known name (English and Japanese):
   Sent -> SENT, Junk/Spam -> SPAM, Trash/Deleted -> TRASH, Drafts -> the user label "<name> (imported)"
   (an import cannot set DRAFT). Virtual \\All and \\Flagged folders are excluded (their messages are in
   other folders already).
5. Any other folder -> a user label of the same path with "/" nesting.
Gmail reserves some names (Inbox, Sent, Drafts, Archive, ... and their Japanese forms); a reserved
top-level name gets " (imported)" appended: "Archive/2020" -> "Archive (imported)/2020".
Messages without \\Seen also get UNREAD; \\Flagged ones STARRED.
A folder that is a label only (Folder.served_from: a Gmail source's) gets LABEL instead of IMPORT: the same
labels, its messages read from the folder that serves them.
"""

from __future__ import annotations

import fnmatch
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from gimport.config.settings import SYSTEM_LABEL_IDS, LabelSettings
from gimport.contract import Folder, logical_path  # noqa: F401 - part of the mapping API
from gimport.i18n import _

# Labels a message carries for its flags: the user changes them by reading; never checked by verify --exact.
FLAG_LABEL_IDS = frozenset({"UNREAD", "STARRED"})

IMPORT, EXCLUDE, NOT_INCLUDED, NOSELECT = "import", "exclude", "not included", "noselect"
# a label only (Folder.served_from): its messages are imported once, from another folder, with its labels
LABEL = "label"
LABELLING = frozenset({IMPORT, LABEL})  # the actions whose labels messages get (created in Gmail)
RESERVED_SUFFIX = " (imported)"
MAX_LABEL_LENGTH = 225
MAX_USER_LABELS = 10_000  # Gmail's limit of labels per account (user labels; nested ones count one each)

# Gmail rejects these names for user labels (compared case-insensitively, whole name).
RESERVED_NAMES = frozenset(
    n.casefold()
    for n in [
        *"inbox spam trash unread starred important sent draft drafts chat chats migrated todo todos buzz bin"
        " allmail archive archived muted".split(),
        "all mail",
        "sent mail",
        "受信トレイ",
        "迷惑メール",
        "ゴミ箱",
        "未読",
        "スター付き",
        "重要",
        "送信済み",
        "送信済みメール",
        "下書き",
        "チャット",
        "すべてのメール",
        "アーカイブ",
    ]
)

_SENT = {"sent", "sent items", "sent messages", "sent mail", "送信済み", "送信済みアイテム", "送信済みメール", "送信箱"}
_JUNK = {"junk", "spam", "junk e-mail", "junk email", "junk mail", "bulk mail", "迷惑メール"}
_TRASH = {"trash", "deleted", "deleted items", "deleted messages", "bin", "ゴミ箱", "ごみ箱", "削除済みアイテム"}
_DRAFTS = {"drafts", "draft", "下書き"}
SPECIAL_USE = {"\\Sent": "SENT", "\\Junk": "SPAM", "\\Trash": "TRASH"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class FolderPlan:
    folder: Folder
    action: str  # IMPORT | EXCLUDE | NOT_INCLUDED | NOSELECT
    labels: tuple[str, ...] = ()  # system ids and user label names (prefix and renames applied)
    notes: tuple[str, ...] = field(default=())

    @property
    def path(self) -> str:
        return self.folder.path


def _key(path: str) -> str:
    return unicodedata.normalize("NFKC", path).strip().casefold()


def _strip_inbox(path: str) -> str:
    """ "INBOX/Sent" -> "Sent": servers that nest every folder under INBOX."""
    if path.upper().startswith("INBOX/") and len(path) > 6:
        return path[6:]
    return path


def clean_label_name(name: str) -> tuple[str, list[str]]:
    """Make a user label name Gmail accepts. Returns (name, notes on what changed)."""
    notes: list[str] = []
    parts = [_CONTROL.sub("", p).strip() for p in name.split("/")]
    parts = [p for p in parts if p]
    cleaned = "/".join(parts) or "(unnamed)"
    if cleaned != name:
        notes.append(_("label name {name!r} cleaned to {cleaned!r}").format(name=name, cleaned=cleaned))
    if _key(parts[0] if parts else cleaned) in RESERVED_NAMES:
        top = parts[0] if parts else cleaned
        renamed = "/".join([top + RESERVED_SUFFIX, *parts[1:]])
        notes.append(_("{top!r} is a name Gmail reserves: label {renamed!r}").format(top=top, renamed=renamed))
        cleaned = renamed
    if len(cleaned) > MAX_LABEL_LENGTH:
        cleaned = cleaned[:MAX_LABEL_LENGTH].rstrip("/ ")
        notes.append(_("label name shortened to {n} characters").format(n=MAX_LABEL_LENGTH))
    return cleaned, notes


def _matches(path: str, globs: Iterable[str]) -> str | None:
    for g in globs:
        if fnmatch.fnmatchcase(path, g) or (g.upper().startswith("INBOX") and fnmatch.fnmatch(path, g)):
            return g
    return None


def _user_label(name: str, settings: LabelSettings, notes: list[str]) -> str:
    cleaned, why = clean_label_name(name)
    notes.extend(why)
    return f"{settings.prefix.rstrip('/')}/{cleaned}" if settings.prefix.strip("/") else cleaned


def _default_labels(folder: Folder, settings: LabelSettings, notes: list[str]) -> tuple[str, ...] | None:
    path = folder.path
    if path.upper() == "INBOX":
        return ("INBOX",)
    flags = set(folder.flags)
    if flags & {"\\All", "\\Flagged"}:
        return None  # virtual folders: every message is in another folder too
    for flag, label in SPECIAL_USE.items():
        if flag in flags:
            return (label,)
    # the personal namespace's prefix (NAMESPACE: Cyrus's "INBOX.", UW's "mail/") is no part of a label; without
    # one, a leading "INBOX/" is taken for one (a child of INBOX is better off as a top-level label)
    inner = (folder.label_path if folder.prefix else None) or _strip_inbox(path)
    key = _key(inner)
    if key in _SENT:
        return ("SENT",)
    if key in _JUNK:
        return ("SPAM",)
    if key in _TRASH:
        return ("TRASH",)
    if "\\Drafts" in flags or key in _DRAFTS:
        notes.append(_("an import cannot set DRAFT: drafts land under a user label"))
        return (_user_label(inner, settings, notes),)
    return (_user_label(inner, settings, notes),)


def plan_folder(folder: Folder, settings: LabelSettings) -> FolderPlan:
    """Decide what happens to one folder, and with which labels."""
    if not folder.selectable:
        return FolderPlan(folder, NOSELECT, notes=(_("holds no messages (\\Noselect)"),))
    path = folder.path
    excluded = _matches(path, settings.exclude)
    if excluded:
        notes: list[str] = [_("excluded by {glob!r}").format(glob=excluded)]
        if path in settings.map:
            notes.append(_("[labels.map] entry for {path!r} ignored: exclude wins").format(path=path))
        return FolderPlan(folder, EXCLUDE, notes=tuple(notes))
    if settings.include and not _matches(path, settings.include):
        return FolderPlan(folder, NOT_INCLUDED, notes=(_("not matched by [labels] include"),))
    said: list[str] = []
    # [labels.map] first, then what the source knows the folder stands for, then the default rules
    given = settings.map.get(path, folder.labels)
    if given is not None:
        mapped = tuple(t if t in SYSTEM_LABEL_IDS else _user_label(t, settings, said) for t in given)
        return _importing(folder, mapped, said)
    labels = _default_labels(folder, settings, said)
    if labels is None:
        return FolderPlan(
            folder, EXCLUDE, notes=(_("virtual folder (\\All or \\Flagged): its messages are elsewhere"),)
        )
    return _importing(folder, labels, said)


def _importing(folder: Folder, labels: tuple[str, ...], notes: list[str]) -> FolderPlan:
    """IMPORT, or LABEL for a folder whose messages another one serves (a Gmail source's labels)."""
    if folder.served_from is None:
        return FolderPlan(folder, IMPORT, labels, tuple(notes))
    why = _("a label: its messages are imported once, from {folder}, with it").format(folder=folder.served_from)
    return FolderPlan(folder, LABEL, labels, (why, *notes))


def plan_folders(folders: Iterable[Folder], settings: LabelSettings) -> list[FolderPlan]:
    return [plan_folder(f, settings) for f in folders]


def unused_map_entries(folders: Iterable[Folder], settings: LabelSettings) -> list[str]:
    """[labels.map] keys that name no folder on the server (a typo, usually)."""
    paths = {f.path for f in folders}
    return [k for k in settings.map if k not in paths]


def message_labels(plan: FolderPlan, flags: Iterable[str | bytes]) -> tuple[str, ...]:
    """The folder's labels plus UNREAD (no \\Seen) and STARRED (\\Flagged)."""
    names = {f.decode() if isinstance(f, bytes) else f for f in flags}
    names = {n.lower() for n in names}
    labels = list(plan.labels)
    if "\\seen" not in names:
        labels.append("UNREAD")
    if "\\flagged" in names:
        labels.append("STARRED")
    return tuple(dict.fromkeys(labels))


def user_labels_to_create(plans: Iterable[FolderPlan]) -> list[str]:
    """Every user label the plans need, parents included, parents first, case-insensitively unique."""
    seen: dict[str, str] = {}
    for plan in plans:
        if plan.action not in LABELLING:
            continue
        for label in plan.labels:
            if label in SYSTEM_LABEL_IDS:
                continue
            parts = label.split("/")
            for depth in range(1, len(parts) + 1):
                name = "/".join(parts[:depth])
                seen.setdefault(_key(name), name)
    return sorted(seen.values(), key=lambda n: (n.count("/"), _key(n)))


def label_key(name: str) -> str:
    """How Gmail compares label names (case-insensitively)."""
    return _key(name)


def label_limit_problem(plans: Iterable[FolderPlan], existing_user_labels: Iterable[str] = ()) -> str | None:
    """None when the user labels the plans need, with those the account has already (`existing_user_labels`;
    none known to `gimport plan`), fit in Gmail's MAX_USER_LABELS; otherwise one line for a person: the
    count, and the folders whose sub-folders need the most labels, to merge with [labels.map] or leave
    out with [labels] exclude."""
    plans = list(plans)
    have = {_key(n) for n in existing_user_labels}
    new = [n for n in user_labels_to_create(plans) if _key(n) not in have]
    total = len(have) + len(new)
    if total <= MAX_USER_LABELS:
        return None
    # where the labels come from: the top-level folders, by the number of labels their sub-folders need
    by_top: Counter[str] = Counter()
    for plan in plans:
        if plan.action in LABELLING and any(label not in SYSTEM_LABEL_IDS for label in plan.labels):
            by_top[plan.path.split("/")[0]] += 1
    examples = ", ".join(f"'{top}' ({count:,} folders)" for top, count in by_top.most_common(3))
    first = next((top for top, _count in by_top.most_common(1)), "Lists")
    return _(
        "this mailbox needs {total:,} Gmail labels ({new:,} new, {have:,} there already), more than the"
        " {limit:,} Gmail allows: merge folders into fewer labels with [labels.map] (for example"
        ' "{first}/a" = "{first}") or leave some out with [labels] exclude (for example "{first}/*");'
        " most come from {examples}"
    ).format(total=total, new=len(new), have=len(have), limit=MAX_USER_LABELS, first=first, examples=examples)
