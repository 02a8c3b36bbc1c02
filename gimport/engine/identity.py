"""Which Gmail account a token is for, checked against the config and the state file (one place for
run, verify and cleanup)."""

from __future__ import annotations

from gimport.contract import Destination, State
from gimport.errors import AuthError, StateError
from gimport.i18n import _


def check_account(address: str, expected: str | None) -> None:
    """Refuse a token for another account than [gmail] user (AuthError, exit 3)."""
    if expected and address.lower() != expected.lower():
        raise AuthError(
            _("the token is for {address}, but [gmail] user is {expected}").format(address=address, expected=expected),
            hint=_("run 'gimport auth' and sign in as {expected}").format(expected=expected),
        )


def identify(gmail: Destination, expected: str | None, state: State | None = None, *, bind: bool = False) -> str:
    """The token's account (one call). Refuses one that differs from `expected` ([gmail] user) or from
    the account the state file records; with `bind`, records it in a new state file.
    Raises AuthError, GmailError, StateError."""
    address = gmail.primary_address()
    check_account(address, expected)
    if state is None:
        return address
    if bind:
        state.bind_destination(address)
        return address
    recorded = state.get_meta("gmail_account")
    if recorded and recorded.lower() != address.lower():
        raise StateError(
            _("state file {path} records a migration into {recorded}, but the token is for {address}").format(
                path=state.path, recorded=recorded, address=address
            ),
            hint=_("use the matching token or config"),
        )
    return address
