"""A Google source read by the service account of `gimport admin` ([source] service_account_file): with
domain-wide delegation for https://mail.google.com/ in the source's domain, it signs in to each mailbox's
IMAP as that user (the JWT bearer grant, google-auth's Credentials.with_subject). Tokens live in memory only."""

from __future__ import annotations

import threading
from pathlib import Path

from google.oauth2 import service_account

from gimport.backends.google.service_account import ServiceAccount
from gimport.config.settings import SourceOAuth
from gimport.errors import DelegationError, SourceGrantError

_accounts: dict[Path, ServiceAccount] = {}
_accounts_lock = threading.Lock()


class GoogleSourceToken:
    """One mailbox's token, minted by the service account for `user`. Thread-safe."""

    def __init__(self, oauth: SourceOAuth, user: str) -> None:
        assert oauth.service_account_file is not None
        with _accounts_lock:
            path = Path(oauth.service_account_file)
            if path not in _accounts:
                _accounts[path] = ServiceAccount(path, key="[source] service_account_file")
            self._account = _accounts[path]
        self._scopes, self._user = oauth.scopes, user
        self._creds: service_account.Credentials | None = None
        self._lock = threading.Lock()
        self._refused = False

    def access_token(self) -> str:
        """A valid token for the user. Raises SourceGrantError (the delegation is missing: every user would
        fail), AuthError (Google refuses this user)."""
        with self._lock:
            if self._creds is None or not self._creds.valid:
                try:
                    self._creds = self._account.authorize(self._user, scopes=self._scopes)
                except DelegationError as err:  # the grant for the old server, not Gmail's
                    grant = SourceGrantError(str(err))
                    grant.details = err.details
                    raise grant from None
            return str(self._creds.token)

    def refused(self, token: str) -> bool:
        """The IMAP server refused `token`: mint a new one next time, once."""
        with self._lock:
            if self._refused:
                return False
            self._refused, self._creds = True, None
            return True
