"""Whom a delegation refusal concerns. Google answers `unauthorized_client` both when the service account's
grant is missing (every user fails the same way) and when one address is not a user of the Workspace the
grant belongs to (another domain in the users file). A campus run stops only for the first: when a token is
refused and no token has been issued yet in this run, the run asks for the tokens of a few other users; one
of them granted (or refused for that user alone) means the refusal is about the one user."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from gimport.errors import AuthError, DelegationError, GimportError
from gimport.i18n import _

log = logging.getLogger("gimport.admin")

PROBES = 2  # other users asked before a refusal is taken as everyone's


class DelegationJudge:
    """Thread-safe. `authorize(email)` is the run's token source; `users` the run's addresses in order."""

    def __init__(self, authorize: Callable[[str], Any], users: Sequence[str]) -> None:
        self._authorize = authorize
        self._users = list(users)
        self._lock = threading.Lock()
        self._granted = False
        self._refused: set[str] = set()
        self._everyone: bool | None = None  # the verdict of the probes, once made

    def granted(self) -> None:
        """A token was issued for some user: the grant itself works."""
        with self._lock:
            self._granted = True

    def about_everyone(self, gmail: str) -> bool:
        """Whether the delegation refusal just met for `gmail` concerns every user (the run must stop)."""
        with self._lock:
            self._refused.add(gmail.lower())
            if self._granted:
                return False
            if self._everyone is None:
                self._everyone = not self._probe()
            return self._everyone

    def _probe(self) -> bool:
        """Ask for the tokens of up to PROBES other users; True when one of them shows the grant works."""
        others = [u for u in self._users if u.lower() not in self._refused][:PROBES]
        for other in others:
            try:
                self._authorize(other)
            except DelegationError:
                self._refused.add(other.lower())
                continue
            except GimportError as err:  # an unknown address, the endpoint unreachable: tells nothing
                log.info("delegation probe for %s: %s", other, err)
                continue
            log.info("delegation probe: a token for %s was issued: the refusal is about one user", other)
            self._granted = True
            return True
        return False


def for_one_user(gmail: str, err: DelegationError) -> AuthError:
    """The refusal of one address while the grant works for the others: that user's failure and its fix."""
    domain = gmail.rpartition("@")[2]
    return AuthError(
        _(
            "Google refuses a token for {gmail} ({details}) while the service account acts for the other users:"
            " {gmail} is not a user of the Google Workspace that granted the delegation (another domain: {domain}?)"
            " or not an active one: correct the address in the users file, or migrate {domain} with a service"
            " account of its own Workspace"
        ).format(gmail=gmail, details=err.details or err.detail, domain=domain),
        hint="",
    )
