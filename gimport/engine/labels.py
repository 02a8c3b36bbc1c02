"""The Gmail labels a run needs: found or created before the first import (used by the engine)."""

from __future__ import annotations

import logging

from gimport.contract import Destination
from gimport.errors import AccountError, Conflict, GmailError, MessageRejected
from gimport.i18n import _
from gimport.mail.mapping import FolderPlan, label_key, label_limit_problem, user_labels_to_create

log = logging.getLogger("gimport")


def ensure_labels(gmail: Destination, plans: list[FolderPlan], visibility: str) -> dict[str, str]:
    """Label reference (system id or user name) -> label id, for every label of `plans`; creates the missing
    user labels in Gmail, parents first, reusing existing ones case-insensitively. Raises GmailError (a
    label Gmail will not create), AccountError (the labels would pass Gmail's limit per account) and the
    Destination's errors."""
    existing = gmail.list_labels()
    too_many = label_limit_problem(plans, [lbl["name"] for lbl in existing if lbl.get("type") != "system"])
    if too_many:
        raise AccountError(too_many)
    ids = {label_key(lbl["name"]): lbl["id"] for lbl in existing}
    actual = {label_key(lbl["name"]): lbl["name"] for lbl in existing}
    ids.update({lbl["id"]: lbl["id"] for lbl in existing if lbl.get("type") == "system"})
    refs: dict[str, str] = {}
    for name in user_labels_to_create(plans):  # parents come first
        key = label_key(name)
        if key in ids:
            continue
        parent, _sep, leaf = name.rpartition("/")
        # nest under the parent as Gmail spells it (an existing "Work" for our "work")
        full = f"{actual[label_key(parent)]}/{leaf}" if parent else name
        try:
            created = gmail.create_label(full, visibility)
            log.info("created label %r (%s)", full, created["id"])
        except Conflict:
            # created meanwhile, or a conflict we did not foresee: look again
            again = {label_key(lbl["name"]): lbl for lbl in gmail.list_labels()}
            if key not in again:
                raise GmailError(
                    _("Gmail says label {label!r} conflicts with an existing label").format(label=full)
                ) from None
            created = again[key]
        except MessageRejected as err:
            raise GmailError(
                _(
                    "Gmail rejects the label name {label!r} ({error}): map that folder to another name in [labels.map]"
                ).format(label=full, error=err)
            ) from None
        ids[key], actual[key] = created["id"], created["name"]
    for plan in plans:
        for ref in plan.labels:
            refs[ref] = ids.get(ref) or ids[label_key(ref)]
    for system in ("UNREAD", "STARRED"):
        refs[system] = system
    return refs
