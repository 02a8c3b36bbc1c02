"""A new state file facing a Gmail that already holds this mailbox: stop before importing it twice.

The state file is what tells gimport which messages are in Gmail already. When it is lost (deleted,
emptied, replaced by a fresh one) the next run would import everything again, silently. So a run on a
state that has recorded nothing for this source account yet first asks Gmail (labels.get, with the
scopes gimport has) whether the user labels this run would import into already hold messages; if so it
stops, unless `gimport run --new-state` says that is intended. Mail copied earlier by another tool
(imapsync, an earlier migration procedure) into those labels stops it too: that is the same risk.
Speaks only the contract (Destination, State) and the pure mapping.
"""

from __future__ import annotations

from gimport.config.settings import SYSTEM_LABEL_IDS
from gimport.contract import Destination, State
from gimport.errors import StateError
from gimport.i18n import _
from gimport.mail.mapping import LABELLING, FolderPlan, label_key

EXAMPLES = 3  # labels named in the message


def labels_in_use(plans: list[FolderPlan]) -> list[str]:
    """The user labels the plans import into (system labels such as INBOX always hold mail: not these)."""
    seen: dict[str, str] = {}
    for plan in plans:
        if plan.action in LABELLING:
            for ref in plan.labels:
                if ref not in SYSTEM_LABEL_IDS:
                    seen.setdefault(label_key(ref), ref)
    return list(seen.values())


def check_new_state(gmail: Destination, state: State, account: str, plans: list[FolderPlan]) -> None:
    """Raise StateError (exit 2, one line with the counts) when `state` has recorded nothing for `account`
    while user labels the plans import into already hold messages in Gmail. Returns quietly when the
    state knows this account (it was used before) or those labels are empty or missing. Raises what the
    Destination raises (AuthError, GmailError)."""
    if state.recorded_folders(account):
        return
    wanted = {label_key(name) for name in labels_in_use(plans)}
    if not wanted:
        return
    held: list[tuple[str, int]] = []
    for label in gmail.list_labels():
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
