"""The Gmail labels a run needs: found or created before the first import (used by the engine).

Gmail refuses some names (400 on labels.create): its system labels in every interface language and more,
a list no one has complete. The mapping renames the reserved names it knows ("Archive" -> "Archive
(imported)"); any other name Gmail refuses gets the same visible rename here, when Gmail refuses it, and
its sub-labels go under the renamed one ("Muted/2020" -> "Muted (imported)/2020"). The run goes on. The
state file remembers each such rename (meta RENAMES_KEY), so a later run asks Gmail once, not twice, and
`gimport plan` shows it.

Missing labels are created level by level (parents first), the labels of one level side by side: one call
at a time, 200 folders at 0.3 s a call kept the quota idle for a minute before the first import. The call
path paces them and bounds the calls in flight as it does imports. They are created in a thread of their own
(start, add_later) while the run scans and imports: a message waits (wait) only for its own labels.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from gimport.config.settings import SYSTEM_LABEL_IDS
from gimport.contract import Destination, State
from gimport.errors import AccountError, Conflict, GimportError, GmailError, MessageRejected, Unexpected
from gimport.i18n import _
from gimport.mail.keywords import user_labels
from gimport.mail.mapping import RESERVED_SUFFIX, FolderPlan, label_key, label_limit_problem, user_labels_to_create

log = logging.getLogger("gimport")

RENAMES_KEY = "label_renames"  # meta: JSON {label name as the mapping made it: the name Gmail accepted}
# labels a message may get beyond its folder's: its flags (UNREAD, STARRED), keywords and \Deleted
FLAG_SYSTEM_LABELS = ("UNREAD", "STARRED", "IMPORTANT", "SPAM", "TRASH")
SIDE_BY_SIDE = 16  # label calls at once at most (the call path's concurrency limit may allow fewer)


def remembered_renames(state: State | None) -> dict[str, str]:
    """The renames earlier runs made (label name -> the name Gmail accepted); {} without a state."""
    text = state.get_meta(RENAMES_KEY) if state is not None else None
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


class Labels:
    """Label reference (system id or user name, as the mapping and gimport.mail.keywords make them) -> Gmail
    label id, filled by ensure() (creating what is missing) and read by the import workers through `ids`.
    `renamed`: label name -> the name Gmail accepted, for every name Gmail refused (this run or an earlier
    one), written back to the state."""

    def __init__(
        self,
        gmail: Destination,
        visibility: str,
        state: State | None = None,
        *,
        on_error: Callable[[GimportError], None] | None = None,
        stop: threading.Event | None = None,
        thread_prefix: str = "",
    ) -> None:
        self.gmail, self.visibility, self.state = gmail, visibility, state
        self._on_error, self._stop = on_error, stop or threading.Event()
        self._ready = threading.Condition()  # a label became usable, or the creation failed
        self._pending: dict[str, set[str]] = {}  # label_key -> references waiting for that label
        self.failed: GimportError | None = None
        self._thread_name = f"{thread_prefix}labels-job"
        self._jobs = ThreadPoolExecutor(1, thread_name_prefix=self._thread_name)
        self.ids: dict[str, str] = {system: system for system in FLAG_SYSTEM_LABELS}
        self.renamed: dict[str, str] = remembered_renames(state)
        self._gmail_ids: dict[str, str] = {}  # label_key(Gmail's name) -> id
        self._actual: dict[str, str] = {}  # label_key(Gmail's name) -> Gmail's spelling
        self._effective: dict[str, str] = {}  # label_key(our name) -> Gmail's name for it
        self._lock = threading.Lock()  # the labels of one level are found or created side by side

    def for_plans(self, plans: list[FolderPlan]) -> dict[str, str]:
        """Every label of `plans` (user labels created, parents first, existing ones reused case-insensitively);
        returns `ids`. Raises GmailError (a label Gmail will not create under either name), AccountError (the
        labels would pass Gmail's limit per account) and the Destination's errors."""
        self._existing(plans)
        self._wait_or_raise(self._later(user_labels_to_create(plans), [ref for plan in plans for ref in plan.labels]))
        return self.ids

    def start(self, plans: list[FolderPlan], existing: list[dict[str, Any]] | None = None) -> dict[str, str]:
        """Check the labels of `plans` against Gmail's (`existing`, when the caller has listed them already;
        AccountError: too many) and start creating the missing ones in the labels' thread; returns `ids`, which
        fills as they are made. An error there goes to `on_error` and `failed`."""
        self._existing(plans, existing)
        self._later(user_labels_to_create(plans), [ref for plan in plans for ref in plan.labels])
        return self.ids

    def add_later(self, refs: Iterable[str]) -> None:
        """More label references (a scan's keywords): created like the plans', after them."""
        refs = list(refs)
        self._later(user_labels(refs), refs)

    def add(self, refs: Iterable[str]) -> None:
        """add_later, and wait for them. Raises as for_plans."""
        refs = list(refs)
        self._wait_or_raise(self._later(user_labels(refs), refs))

    def _wait_or_raise(self, job: Future[None]) -> None:
        job.result()
        if self.failed is not None:
            raise self.failed

    def wait(self, refs: Iterable[str]) -> bool:
        """Wait until none of `refs` is still being created; False when the creation failed or a stop came."""
        keys = {label_key(ref) for ref in refs}
        with self._ready:
            while keys & self._pending.keys():
                if self.failed is not None or self._stop.is_set():
                    return False
                self._ready.wait(0.5)
            return self.failed is None

    def finish(self) -> None:
        """Wait for the labels' thread to end its work, and end it (a later pass, gimport.engine.follow, starts
        another when it has labels to make)."""
        self._jobs.shutdown(wait=True)
        self._jobs = ThreadPoolExecutor(1, thread_name_prefix=self._thread_name)

    def _later(self, names: list[str], refs: list[str]) -> Future[None]:
        with self._ready:
            for ref in refs:
                if ref not in SYSTEM_LABEL_IDS and ref not in self.ids:
                    self._pending.setdefault(label_key(ref), set()).add(ref)
        return self._jobs.submit(self._job, names, refs)

    def _job(self, names: list[str], refs: list[str]) -> None:
        try:
            if self.failed is None:
                self._ensure(names)
                for ref in refs:
                    self._ref(ref)
                    self._resolve(label_key(ref))
        except Exception as exc:  # the waiting imports and the run are told
            err = exc if isinstance(exc, GimportError) else Unexpected.of(exc)
            if not isinstance(exc, GimportError):
                log.error("creating labels failed", exc_info=exc)
            with self._ready:
                self.failed = self.failed or err
                self._ready.notify_all()
            if self._on_error is not None and not self._stop.is_set():
                self._on_error(err)

    def _resolve(self, key: str) -> None:
        """The label `key` is made: the references to it get its id, and the imports waiting for it go on."""
        with self._ready:
            for ref in self._pending.pop(key, ()):
                self._ref(ref)
            self._ready.notify_all()

    def _existing(self, plans: list[FolderPlan], existing: list[dict[str, Any]] | None = None) -> None:
        if existing is None:
            existing = self.gmail.list_labels()
        too_many = label_limit_problem(plans, [lbl["name"] for lbl in existing if lbl.get("type") != "system"])
        if too_many:
            raise AccountError(too_many)
        for lbl in existing:
            self._gmail_ids[label_key(lbl["name"])] = lbl["id"]
            self._actual[label_key(lbl["name"])] = lbl["name"]
            if lbl.get("type") == "system":
                self.ids[lbl["id"]] = lbl["id"]

    def _ref(self, ref: str) -> None:
        if ref in SYSTEM_LABEL_IDS or ref in self.ids:
            self.ids.setdefault(ref, ref)
            return
        self.ids[ref] = self._gmail_ids[label_key(self._effective[label_key(ref)])]

    def _ensure(self, names: list[str]) -> None:
        """Find or create each user label of `names` (parents come first): level by level, the labels of one
        level side by side."""
        before = dict(self.renamed)
        levels: dict[int, list[str]] = {}
        for name in names:
            if label_key(name) not in self._effective:
                levels.setdefault(name.count("/"), []).append(name)
        for depth in sorted(levels):
            level = levels[depth]
            if len(level) == 1:
                self._one(level[0])
                continue
            with ThreadPoolExecutor(min(SIDE_BY_SIDE, len(level)), thread_name_prefix="labels") as pool:
                list(pool.map(self._one, level))  # raises the first error, in order
        if self.renamed != before and self.state is not None:
            self.state.set_meta(RENAMES_KEY, json.dumps(self.renamed, ensure_ascii=False, sort_keys=True))

    def _one(self, name: str) -> None:
        """Find or create the user label `name` (its parent is done), renamed when Gmail refuses the name."""
        key = label_key(name)
        parent, _sep, leaf = name.rpartition("/")
        # nest under the parent as Gmail spells it (an existing "Work" for our "work", a renamed one)
        full = f"{self._effective[label_key(parent)]}/{leaf}" if parent else name
        remembered = next((v for k, v in self.renamed.items() if label_key(k) == key), None)
        full = remembered or full
        try:
            self._effective[key] = self._find_or_create(full)
        except MessageRejected as err:
            renamed = full + RESERVED_SUFFIX
            try:
                self._effective[key] = self._find_or_create(renamed)
            except MessageRejected:
                raise GmailError(
                    _(
                        "Gmail rejects the label name {label!r} ({error}), and {renamed!r} too: map that folder"
                        " to another name in [labels.map]"
                    ).format(label=full, error=err, renamed=renamed)
                ) from None
            log.warning("Gmail refuses the label name %r (%s): using %r", full, err, renamed)
            with self._lock:
                self.renamed[name] = renamed
        self._resolve(key)

    def _find_or_create(self, full: str) -> str:
        """Gmail's name of the label `full`, created when missing. Raises MessageRejected (Gmail refuses the
        name), GmailError (a conflict that does not resolve) and the Destination's errors."""
        key = label_key(full)
        with self._lock:
            if key in self._gmail_ids:
                return self._actual[key]
        try:
            created = self.gmail.create_label(full, self.visibility)
            log.info("created label %r (%s)", full, created["id"])
        except Conflict:
            # created meanwhile, or a conflict we did not foresee: look again
            again = {label_key(lbl["name"]): lbl for lbl in self.gmail.list_labels()}
            if key not in again:
                raise GmailError(
                    _("Gmail says label {label!r} conflicts with an existing label").format(label=full)
                ) from None
            created = again[key]
        with self._lock:
            self._gmail_ids[key], self._actual[key] = created["id"], created["name"]
        return str(created["name"])


def ensure_labels(
    gmail: Destination, plans: list[FolderPlan], visibility: str, state: State | None = None
) -> dict[str, str]:
    """Label reference -> label id for every label of `plans` (see Labels.for_plans)."""
    return Labels(gmail, visibility, state).for_plans(plans)
