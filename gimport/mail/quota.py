"""What Gmail's calls cost and how large a message may be: the one table of Gmail's quota units, keyed by
the API's real method names (https://developers.google.com/gmail/api/reference/quota). The Gmail backend
charges every call from it; plan and admin plan estimate from it."""

from __future__ import annotations

from gimport.i18n import _

MAX_MESSAGE_BYTES = 157_286_400  # Gmail's 150 MiB limit for one message

COSTS: dict[str, int] = {
    "users.messages.import": 25,
    "users.messages.insert": 25,
    "users.messages.list": 5,
    "users.messages.get": 5,
    "users.messages.modify": 5,
    "users.labels.list": 1,
    "users.labels.get": 1,
    "users.labels.create": 5,
    "users.getProfile": 1,
    "users.settings.sendAs.list": 1,
    "users.settings.getImap": 1,
    "users.settings.updateImap": 5,
    "users.settings.getAutoForwarding": 1,
    "users.settings.forwardingAddresses.list": 1,
    "users.settings.filters.list": 1,
}


def too_large(size: int, limit: int) -> str:
    """The reason a message over Gmail's limit is skipped, in the reader's language."""
    return _("too large for Gmail: {size:,} bytes (limit {limit:,})").format(size=size, limit=limit)


def cost(method: str) -> int:
    """Units for one call of `method` (a method name of Gmail's discovery document)."""
    return COSTS[method]
