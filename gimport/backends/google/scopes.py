"""The OAuth scopes gimport asks Gmail for, and what each allows (Gmail's discovery document). Pure: names
only; the token file (gimport.backends.google.tokens) and the Gmail client both read them here."""

from __future__ import annotations

from gimport.i18n import N_

# The least gimport needs, in one place:
SCOPES = (
    "https://www.googleapis.com/auth/gmail.insert",  # users.messages.import
    "https://www.googleapis.com/auth/gmail.labels",  # list/create labels, label counts for verify
    "https://www.googleapis.com/auth/gmail.settings.basic",  # cleanup: IMAP/forwarding; sendAs: who am I
)
# Opt in (gimport auth --exact-verify, gimport admin verify --exact): message and label ids, never
# contents, so that verify --exact can prove each imported message is in Gmail. A restricted scope.
EXACT_VERIFY_SCOPE = "https://www.googleapis.com/auth/gmail.metadata"
# Opt in (gimport auth --label-copies): a copy of an imported message that turns up in another folder at a
# later run gets its labels added to the message in Gmail (users.messages.modify) instead of being imported
# again. A restricted scope, and a broad one (it can also read mail): hence never asked by default.
LABEL_COPIES_SCOPE = "https://www.googleapis.com/auth/gmail.modify"
# any of these allows users.messages.modify (Gmail's discovery document)
MODIFY_SCOPES = frozenset({LABEL_COPIES_SCOPE, "https://mail.google.com/"})
# any of these allows users.messages.list (Gmail's discovery document)
LIST_SCOPES = frozenset(
    {
        EXACT_VERIFY_SCOPE,
        "https://mail.google.com/",
        "https://www.googleapis.com/auth/gmail.modify",
        "https://www.googleapis.com/auth/gmail.readonly",
    }
)
SCOPE_PURPOSE = {
    SCOPES[0]: N_("add messages to your mailbox"),
    SCOPES[1]: N_("manage labels"),
    SCOPES[2]: N_("read and change basic settings"),
    EXACT_VERIFY_SCOPE: N_("view message ids and labels (verify --exact)"),
    LABEL_COPIES_SCOPE: N_("add labels to imported messages (auth --label-copies)"),
    # the source's only scope (gimport auth --source): Gmail's IMAP accepts no narrower one
    "https://mail.google.com/": N_("read the old account's mail over IMAP"),
}


def scopes_for(exact_verify: bool = False, label_copies: bool = False) -> tuple[str, ...]:
    """The scopes gimport asks for: SCOPES, plus the metadata scope for exact verification and the modify
    scope for labelling later copies."""
    return (*SCOPES, *((EXACT_VERIFY_SCOPE,) if exact_verify else ()), *((LABEL_COPIES_SCOPE,) if label_copies else ()))
