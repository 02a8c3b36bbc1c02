"""A message's flags beyond \\Seen and \\Flagged -> Gmail labels: pure functions, no I/O.

- \\Deleted (flagged, not yet expunged: Thunderbird's "mark as deleted", many webmails): the message is left
  out unless `[filters] include_deleted = true`, which imports it with TRASH.
- IMAP keywords (RFC 3501 §2.3.2: flags without a backslash), Thunderbird's tags first:
  `$label1` -> IMPORTANT; `$label2`..`$label5` -> the user labels "Work", "Personal", "To Do", "Later" (the
  names Thunderbird shows); `$Junk`/`Junk` -> SPAM; the keywords mail programs keep for their own
  bookkeeping (BOOKKEEPING: `$NotJunk`, `$Forwarded`, `$MDNSent`, ...) -> nothing; any other keyword -> a
  user label of its name, modified UTF-7 (RFC 3501 §5.1.3, how Thunderbird writes a tag with non-ASCII
  letters) decoded. `[labels.keywords]` maps a keyword to a label (system id or user name), or to "" to
  drop it; keywords compare case-insensitively, as IMAP compares them.
User label names go through the mapping's rules (gimport.mail.mapping.clean_label_name: reserved names get
" (imported)") and get the `[labels] prefix`, as a folder's label does.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Iterable, Mapping

from gimport.config.settings import SYSTEM_LABEL_IDS, LabelSettings
from gimport.mail.mapping import clean_label_name

DELETED = "\\deleted"
TRASH = "TRASH"

# Thunderbird's default tags, and the keywords other programs set for the same meaning
BUILTIN: dict[str, str] = {
    "$label1": "IMPORTANT",
    "$label2": "Work",
    "$label3": "Personal",
    "$label4": "To Do",
    "$label5": "Later",
    "$junk": "SPAM",
    "junk": "SPAM",
    "$important": "IMPORTANT",  # RFC 8457
}
# what clients record for themselves, meaningless as a label (Dovecot sets the attachment ones by itself)
BOOKKEEPING = frozenset(
    k.casefold()
    for k in (
        "$NotJunk",
        "NonJunk",
        "NotJunk",
        "$Forwarded",
        "Forwarded",
        "$MDNSent",
        "$SubmitPending",
        "$Submitted",
        "$HasAttachment",
        "$HasNoAttachment",
        "$Phishing",
        "Redirected",
    )
)


def _names(flags: Iterable[str | bytes]) -> list[str]:
    return [f.decode("utf-8", "replace") if isinstance(f, bytes) else f for f in flags]


def is_deleted(flags: Iterable[str | bytes]) -> bool:
    """Whether the flags hold \\Deleted (any case)."""
    return any(f.casefold() == DELETED for f in _names(flags))


def keywords(flags: Iterable[str | bytes]) -> list[str]:
    """The keywords among `flags` (no leading backslash), in order, each once."""
    return list(dict.fromkeys(f for f in _names(flags) if f and not f.startswith("\\")))


def decode_mutf7(text: str) -> str:
    """Modified UTF-7 (RFC 3501 §5.1.3) -> str; text that is not valid modified UTF-7 comes back as it is."""
    if "&" not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        amp = text.find("&", i)
        if amp < 0:
            out.append(text[i:])
            break
        end = text.find("-", amp)
        if end < 0:
            return text
        out.append(text[i:amp])
        chunk = text[amp + 1 : end]
        if not chunk:
            out.append("&")
        else:
            data = chunk.replace(",", "/")
            try:
                raw = base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
                out.append(raw.decode("utf-16-be"))
            except ValueError:
                return text
        i = end + 1
    return "".join(out)


def _user_label(name: str, settings: LabelSettings) -> str:
    cleaned, _notes = clean_label_name(name)
    return f"{settings.prefix.rstrip('/')}/{cleaned}" if settings.prefix.strip("/") else cleaned


def keyword_label(keyword: str, settings: LabelSettings) -> str | None:
    """The label reference (system id or user label name) a keyword becomes, None for none."""
    folded = keyword.casefold()
    mapped = {k.casefold(): v for k, v in settings.keywords.items()}
    if folded in mapped:
        target = mapped[folded].strip()
        if not target:
            return None
        return target if target in SYSTEM_LABEL_IDS else _user_label(target, settings)
    if folded in BOOKKEEPING:
        return None
    target = BUILTIN.get(folded) or decode_mutf7(keyword)
    return target if target in SYSTEM_LABEL_IDS else _user_label(target, settings)


def flag_labels(flags: Iterable[str | bytes], settings: LabelSettings) -> tuple[str, ...]:
    """The labels a message gets for its keywords and \\Deleted (TRASH; a deleted message reaches the import
    only with `[filters] include_deleted`), beyond its folder's and gimport.mail.mapping.message_labels'."""
    names = _names(flags)
    refs = [label for k in keywords(names) if (label := keyword_label(k, settings))]
    if is_deleted(names):
        refs.append(TRASH)
    return tuple(dict.fromkeys(refs))


def keyword_counts(found: Mapping[str, int], settings: LabelSettings) -> dict[str, int]:
    """Keyword -> messages carrying it (a scan's count) as label -> messages; keywords with no label left out."""
    out: Counter[str] = Counter()
    for keyword, n in found.items():
        label = keyword_label(keyword, settings)
        if label:
            out[label] += n
    return dict(out)


def user_labels(labels: Iterable[str]) -> list[str]:
    """The user label names among label references, parents first, each once (the system ids left out)."""
    seen: dict[str, str] = {}
    for label in labels:
        if label in SYSTEM_LABEL_IDS:
            continue
        parts = label.split("/")
        for depth in range(1, len(parts) + 1):
            name = "/".join(parts[:depth])
            seen.setdefault(name.casefold(), name)
    return sorted(seen.values(), key=lambda n: (n.count("/"), n.casefold()))
