"""A new state file facing a Gmail that already holds this mailbox: stop before importing it twice.

The state file is what tells gimport which messages are in Gmail already. When it is lost (deleted,
emptied, replaced by a fresh one) the next run would import everything again, silently. Two checks
stop it, unless `gimport run --new-state` says that is intended:

- the marker: the first run from a source leaves a hidden, empty label in Gmail whose name is a hash of
  the source (user@host, or the local path) and the time of that first run. It lives in Gmail, so it
  survives the state file; a state with no record of the source facing a marker of it means the state
  was lost. It sees a mailbox whose mail all went to INBOX, which the label check below cannot.
- the labels: the user labels this run would import into already hold messages (labels.get, with the
  scopes gimport has). Mail copied earlier by another tool (imapsync, an earlier migration procedure)
  into those labels stops it too: that is the same risk.

Speaks only the contract (Destination, State) and the pure mapping.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gimport.config.settings import SYSTEM_LABEL_IDS, SourceSettings
from gimport.contract import Destination, State
from gimport.errors import Conflict, GimportError, StateError, Unexpected
from gimport.i18n import _
from gimport.mail.mapping import LABELLING, FolderPlan, label_key

log = logging.getLogger("gimport")

EXAMPLES = 3  # labels named in the message
MARKER_PREFIX = "gimport-marker-"
MARKER_META = "marker:"  # + source account: the marker label this state file knows (its name)


def source_identity(source: SourceSettings) -> str:
    """What the marker names: user@host, or for local files the kind and their path (every local source
    of a kind is one account in the state file)."""
    if source.local and source.path is not None:
        return f"{source.account}:{Path(source.path).resolve()}"
    return source.account


def marker_stem(source: str) -> str:
    """The start of the marker label's name for a source: the prefix and a hash of its identity (not
    the identity itself: the label is in the user's Gmail, the source's address or path need not be)."""
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]
    return f"{MARKER_PREFIX}{digest}-"


def marker_name(source: str, when: float) -> str:
    """The marker label for the first run from `source` at `when` (UTC, to the second)."""
    return marker_stem(source) + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when))


def markers_of(labels: list[dict[str, Any]], source: str) -> list[str]:
    """The names of the marker labels of `source` among Gmail's labels, oldest first."""
    stem = marker_stem(source).casefold()
    return sorted(lb["name"] for lb in labels if str(lb.get("name", "")).casefold().startswith(stem))


def first_run(marker: str) -> str:
    """The time of the first run a marker names, as people read it ("2026-12-07 19:04 UTC")."""
    stamp = marker.rsplit("-", 1)[-1]
    try:
        return time.strftime("%Y-%m-%d %H:%M UTC", time.strptime(stamp, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        return stamp


def labels_in_use(plans: list[FolderPlan]) -> list[str]:
    """The user labels the plans import into (system labels such as INBOX always hold mail: not these)."""
    seen: dict[str, str] = {}
    for plan in plans:
        if plan.action in LABELLING:
            for ref in plan.labels:
                if ref not in SYSTEM_LABEL_IDS:
                    seen.setdefault(label_key(ref), ref)
    return list(seen.values())


def check_new_state(
    gmail: Destination,
    state: State,
    account: str,
    plans: list[FolderPlan],
    *,
    source: str | None = None,
    new_state: bool = False,
    labels: list[dict[str, Any]] | None = None,
) -> list[str]:
    """Raise StateError (exit 2, one line) when `state` has no record of `account` while Gmail holds a
    marker of an earlier run from `source` (source_identity; `account` when None), or while user labels
    the plans import into already hold messages; `new_state` (run --new-state) goes on regardless.
    Returns the markers of `source` in Gmail, oldest first, for leave_marker. `labels`: Gmail's labels when
    the caller has listed them already. Raises what the Destination raises (AuthError, GmailError)."""
    if labels is None:
        labels = gmail.list_labels()
    markers = markers_of(labels, source or account)
    known = state.get_meta(MARKER_META + account) or state.recorded_folders(account)
    if not known and not new_state:
        if markers:
            raise _marker_found(state, markers[0])
        _check_labels(gmail, state, labels, plans)
    return markers


def leave_marker(gmail: Destination, state: State, account: str, source: str, markers: list[str]) -> list[str]:
    """Before the first import: make sure Gmail holds the marker of `source` (a hidden, empty label; the
    oldest of `markers` when there is one) and the state file knows its name. Returns the markers now in
    Gmail (a later pass of the same run, gimport.engine.follow, passes them back: one marker a source)."""
    if markers:
        if state.get_meta(MARKER_META + account) != markers[0]:
            state.set_meta(MARKER_META + account, markers[0])
        return markers
    name = marker_name(source, time.time())
    with contextlib.suppress(Conflict):  # made by a run side by side: it is there, which is what counts
        gmail.create_label(name, "labelHide", "hide")
    log.info("left the marker label %s in Gmail (it tells a lost state file from a first run)", name)
    state.set_meta(MARKER_META + account, name)
    return [name]


def _marker_found(state: State, marker: str) -> StateError:
    return StateError(
        _(
            "the state file {path} has no record of this source, but Gmail holds the marker of a run from it"
            " (first run {when}): was the state file lost or replaced? Going on would import that mail again"
        ).format(path=state.path, when=first_run(marker)),
        hint=_(
            "put the old state file back if you have it, or run 'gimport run --new-state' to import anyway"
            " (messages already in Gmail will then appear twice)"
        ),
    )


def _check_labels(gmail: Destination, state: State, labels: list[dict[str, Any]], plans: list[FolderPlan]) -> None:
    """Raise StateError when user labels the plans import into already hold messages."""
    wanted = {label_key(name) for name in labels_in_use(plans)}
    if not wanted:
        return
    held: list[tuple[str, int]] = []
    for label in labels:
        if label.get("type") == "system" or label_key(label["name"]) not in wanted:
            continue
        total = int(gmail.get_label(label["id"]).get("messagesTotal", 0) or 0)
        if total:
            held.append((label["name"], total))
    if not held:
        return
    held.sort(key=lambda item: -item[1])
    examples = ", ".join(f"'{name}' {total:,}" for name, total in held[:EXAMPLES])
    raise StateError(
        _(
            "the state file {path} has no record of this mailbox, but {labels:,} label(s) this run imports into"
            " already hold {messages:,} message(s) in Gmail ({examples}): was the state file lost or replaced?"
            " Going on would import that mail again"
        ).format(
            path=state.path,
            labels=len(held),
            messages=sum(total for _name, total in held),
            examples=examples,
        ),
        hint=_(
            "put the old state file back if you have it. Mail copied earlier by another tool (imapsync, an"
            " earlier migration procedure) causes this too: then import under new labels ([labels] prefix), or"
            " run 'gimport run --new-state' to import into these labels anyway (messages already there may"
            " then appear twice)"
        ),
    )


class MarkerJob:
    """leave_marker in a thread of its own, for a pass with messages to send: the first messages are read from
    the source meanwhile, and no import leaves before it is done (wait). An error goes to `fatal` (the run
    stops, with nothing imported)."""

    def __init__(self, fatal: Callable[[GimportError], None]) -> None:
        self._fatal = fatal
        self._done = threading.Event()
        self._done.set()
        self._thread: threading.Thread | None = None

    def start(self, leave: Callable[[], object], name: str) -> None:
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(leave,), name=name, daemon=True)
        self._thread.start()

    def _run(self, leave: Callable[[], object]) -> None:
        try:
            leave()
        except GimportError as err:
            self._fatal(err)
        except Exception as err:
            log.exception("unexpected error leaving the marker label")
            self._fatal(Unexpected.of(err))
        finally:
            self._done.set()

    def wait(self) -> None:
        """Until the marker is in Gmail, or making it failed (the run has then been told to stop)."""
        self._done.wait()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
