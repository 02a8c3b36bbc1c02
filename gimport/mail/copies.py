"""The labels of one message found in several folders, imported once (gimport.engine.copies). Pure.

Gmail stores one message with every folder's label. A label that says where the message *is* follows the
copies that are there: INBOX when any copy is in INBOX; TRASH and SPAM only when every copy is there
(Gmail deletes Trash and Spam for good after 30 days: a message kept in some other folder must not go with
them); UNREAD only when no copy was read. Every other label (user labels, SENT, STARRED, IMPORTANT, a
keyword's) is the union.
"""

from __future__ import annotations

from collections.abc import Sequence

# labels a message keeps only when every copy has them
EVERY_COPY = ("TRASH", "SPAM", "UNREAD")


def merged_labels(copies: Sequence[Sequence[str]]) -> tuple[str, ...]:
    """The label references of one message whose copies carry `copies` (each copy's references, home copy
    first), in first-seen order, each once."""
    if not copies:
        return ()
    union = list(dict.fromkeys(ref for refs in copies for ref in refs))
    return tuple(ref for ref in union if ref not in EVERY_COPY or all(ref in refs for refs in copies))
