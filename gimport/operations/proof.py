"""`gimport verify --exact`: prove, message by message, that what the state file records as imported is in
Gmail now. Speaks the contract only (MessageListing.list_message_ids, Destination.list_labels); never prints.

With the gmail.metadata scope Gmail lists message ids per label (users.messages.list: labelIds,
includeSpamTrash, maxResults 500, pageToken; 5 units a page; `q` and message contents are not allowed).
For every recorded message (its key, its Gmail id, the label ids it was sent with):
- *missing*: its Gmail id is in no listing, not even of the whole mailbox (deleted for good, or never
  stored): a failure;
- *in Trash*: Gmail deletes it for good 30 days after it went there: a failure, unless its folder maps to
  Trash;
- *label gone*: it is in Gmail but no longer carries a label its folder maps to (the user archived or moved
  it, or deleted the label): listed; a failure only with strict_labels. UNREAD and STARRED (the flags) are
  never checked: reading a message changes them.
Several records may share one Gmail id (Gmail answers the re-import of a known Message-ID with the
earlier message's id, and a message in two folders is one Gmail message with two labels): each record is
checked for its own labels, so stable ids and shared ids are both handled. The whole mailbox is listed
only when some id is in none of its labels' listings.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from gimport.contract import MessageKey, MessageListing
from gimport.i18n import N_, _
from gimport.mail.mapping import FLAG_LABEL_IDS
from gimport.mail.quota import cost

TRASH = "TRASH"
# the problems, as --json names them (English) and as people read them (_(problem) where shown)
MISSING = N_("missing")
IN_TRASH = N_("in Trash")
LABEL_GONE = N_("label gone")


@dataclass(frozen=True)
class ProofItem:
    """One message recorded as imported: what Gmail must show for it."""

    key: MessageKey
    message_id: str | None
    gmail_id: str | None
    label_ids: tuple[str, ...]  # as sent (flag labels are ignored)


@dataclass(frozen=True)
class Gap:
    """One message not proven as recorded: its key and what is wrong (never its contents)."""

    key: MessageKey
    message_id: str | None
    gmail_id: str | None
    problem: str  # MISSING | IN_TRASH | LABEL_GONE
    detail: str
    fails: bool  # whether it makes verify fail


@dataclass
class ExactResult:
    checked: int = 0  # records checked
    gmail_messages: int = 0  # distinct Gmail ids among them
    gaps: list[Gap] = field(default_factory=list)
    calls: int = 0  # Gmail calls made
    units: int = 0  # quota units they cost
    seconds: float = 0.0
    strict_labels: bool = False

    @property
    def passed(self) -> bool:
        return not any(g.fails for g in self.gaps)

    def count(self, problem: str) -> int:
        return sum(g.problem == problem for g in self.gaps)


def prove(
    gmail: MessageListing,
    items: Iterable[ProofItem],
    *,
    label_names: dict[str, str] | None = None,
    strict_labels: bool = False,
    clock: Callable[[], float] = time.monotonic,
) -> ExactResult:
    """Check `items` against Gmail's listings (see the module docstring). `label_names` maps label ids to
    the names shown in details. Raises AuthError (no listing scope), GmailError."""
    started = clock()
    items = list(items)
    result = ExactResult(checked=len(items), strict_labels=strict_labels)
    result.gmail_messages = len({i.gmail_id for i in items if i.gmail_id})
    existing = {lbl["id"]: lbl.get("name", lbl["id"]) for lbl in gmail.list_labels()}
    result.calls += 1
    result.units += cost("users.labels.list")
    listings = _Listings(gmail, result, existing, items)
    names = {**existing, **(label_names or {})}
    for item in items:
        gap = listings.gap(item, names)
        if gap is not None:
            result.gaps.append(gap)
    result.seconds = clock() - started
    return result


class _Listings:
    """Gmail's listings of message ids that `items` need: by each label they were sent with (that exists), of
    Trash, and of the whole mailbox only when some id is in none of those. Counts the calls in `result`."""

    def __init__(
        self, gmail: MessageListing, result: ExactResult, existing: dict[str, str], items: list[ProofItem]
    ) -> None:
        self.gmail, self.result, self.existing = gmail, result, existing
        wanted = sorted({lid for i in items for lid in i.label_ids if lid not in FLAG_LABEL_IDS})
        self.by_label = {lid: self._list(lid) for lid in wanted if lid in existing}
        if TRASH not in self.by_label and items:
            self.by_label[TRASH] = self._list(TRASH)
        self.seen: set[str] = set().union(*self.by_label.values()) if self.by_label else set()
        self.everything: set[str] | None = None
        if any(i.gmail_id and i.gmail_id not in self.seen for i in items):
            self.everything = self._list(None)

    def _list(self, label_id: str | None) -> set[str]:
        ids: set[str] = set()
        # includeSpamTrash: a message the user trashed (or Gmail put in Spam) still carries its labels
        for page in self.gmail.list_message_ids(label_id, include_spam_trash=True):
            self.result.calls += 1
            self.result.units += cost("users.messages.list")
            ids.update(page)
        return ids

    def gap(self, item: ProofItem, names: dict[str, str]) -> Gap | None:
        """What is wrong with `item` in Gmail (the first of missing, in Trash, label gone), or None.
        `names`: label id -> the name shown in details."""
        gid = item.gmail_id
        if not gid:
            return Gap(item.key, item.message_id, None, MISSING, _("no Gmail id recorded for it"), True)
        if gid not in self.seen and (self.everything is None or gid not in self.everything):
            detail = _("Gmail id {id} is not in the mailbox (deleted in Gmail?)").format(id=gid)
            return Gap(item.key, item.message_id, gid, MISSING, detail, True)
        if gid in self.by_label.get(TRASH, ()) and TRASH not in item.label_ids:
            detail = _("in Gmail's Trash: deleted for good 30 days after it was put there")
            return Gap(item.key, item.message_id, gid, IN_TRASH, detail, True)
        gone: list[str] = []
        for lid in item.label_ids:
            if lid in FLAG_LABEL_IDS:
                continue
            if lid not in self.existing:
                gone.append(_("{label} (the label no longer exists)").format(label=names.get(lid, lid)))
            elif gid not in self.by_label[lid]:
                gone.append(names.get(lid, lid))
        if not gone:
            return None
        detail = _("in Gmail, but no longer labelled {labels} (archived or moved since the import?)").format(
            labels=", ".join(gone)
        )
        return Gap(item.key, item.message_id, gid, LABEL_GONE, detail, self.result.strict_labels)
