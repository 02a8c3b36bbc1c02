"""Microsoft 365 app-only access for `gimport admin`: the client-credentials grant with MSAL's
ConfidentialClientApplication, scope https://outlook.office365.com/.default (the IMAP.AccessAsApp
permission granted to the app), one token for every mailbox the app's Exchange service principal may read.

The secret comes from [source] client_secret_file (refused when others can read it) and goes nowhere else:
not to a log line, argv or the state. Tokens live in memory only (MSAL's cache), shared by every mailbox of
the process, and are fetched again as they expire. What Microsoft says about the setup (the app registration,
the permission, New-ServicePrincipal and Add-MailboxPermission) is in docs/admin.md.
"""

from __future__ import annotations

import logging
import threading
import urllib.parse
from typing import Any

import msal
import msal.authority
import requests

from gimport.config.settings import SourceOAuth
from gimport.errors import ConfigError, SourceError, SourceGrantError
from gimport.files import read_secret
from gimport.i18n import _

log = logging.getLogger("gimport.imap")

_apps: dict[tuple[str, str, str], MicrosoftApp] = {}
_apps_lock = threading.Lock()


def microsoft_app(oauth: SourceOAuth) -> MicrosoftApp:
    """The process's one app for these settings (every mailbox shares its token). Raises ConfigError."""
    assert oauth.client_secret_file is not None
    key = (str(oauth.authority), str(oauth.client_id), str(oauth.client_secret_file))
    with _apps_lock:
        if key not in _apps:
            _apps[key] = MicrosoftApp(oauth)
        return _apps[key]


class MicrosoftApp:
    """The app's access token for IMAP (XOAUTH2 with user = the mailbox). Thread-safe."""

    def __init__(self, oauth: SourceOAuth) -> None:
        assert oauth.client_secret_file is not None
        self.oauth = oauth
        # group-readable is fine, as for [admin] master_password_file: a Kubernetes Secret is mounted 0440
        self._secret = read_secret(oauth.client_secret_file, "[source] client_secret_file", group_ok=True)
        self._lock = threading.Lock()
        self._app = self._new()
        self._refused: str | None = None

    def _new(self) -> msal.ConfidentialClientApplication:
        host = urllib.parse.urlsplit(self.oauth.authority or "").hostname or ""
        try:
            return msal.ConfidentialClientApplication(
                self.oauth.client_id,
                client_credential=self._secret,
                authority=self.oauth.authority,
                # Microsoft's own hosts are known to MSAL; another (a sovereign cloud's proxy, the test rig) is
                # taken as written
                instance_discovery=host in msal.authority.WELL_KNOWN_AUTHORITY_HOSTS,
            )
        except ValueError as exc:
            raise ConfigError(
                _("[source] authority {authority}: {exc}").format(authority=self.oauth.authority, exc=exc)
            ) from None
        except requests.RequestException as exc:
            raise SourceError(
                _("cannot reach {authority} ({name})").format(authority=self.oauth.authority, name=type(exc).__name__)
            ) from None

    def access_token(self) -> str:
        """The app's token (MSAL's cached one until it nears its expiry). Raises SourceGrantError (the tenant
        refuses the app: every mailbox would fail the same way), SourceError (unreachable)."""
        with self._lock:
            token = self._acquire()
            if token == self._refused:  # the server refused it: a fresh cache asks Microsoft again
                self._app = self._new()
                token = self._acquire()
            return token

    def refused(self, token: str) -> bool:
        """The IMAP server refused `token`: the next access_token asks for a new one. False when it was
        refused once already (a new one would not help)."""
        with self._lock:
            if token == self._refused:
                return False
            self._refused = token
            return True

    def _acquire(self) -> str:
        try:
            result: dict[str, Any] = self._app.acquire_token_for_client(scopes=list(self.oauth.scopes))
        except requests.RequestException as exc:
            raise SourceError(
                _("cannot reach {authority} ({name})").format(authority=self.oauth.authority, name=type(exc).__name__)
            ) from None
        token = result.get("access_token")
        if not isinstance(token, str) or not token:
            error = str(result.get("error") or "no token")
            description = str(result.get("error_description") or "").strip().splitlines()
            raise SourceGrantError(
                _(
                    "Microsoft refuses the app {client_id} a token for IMAP ({error}): check the app's client"
                    " secret, the IMAP.AccessAsApp permission and its admin consent (docs/admin.md)"
                ).format(client_id=self.oauth.client_id, error=f"{error}: {description[0]}" if description else error)
            )
        if result.get("token_source") == "identity_provider":
            log.info("got an app-only token for IMAP from %s", self.oauth.authority)
        return token
