"""A Google service account with domain-wide delegation, for `gimport admin`. The only module that imports
google.oauth2.service_account.

The key file is the JSON the Cloud console downloads for a service account (``"type": "service_account"``).
For each Gmail user, gimport asks the key file's ``token_uri`` (Google's, or the emulator's in tests) for an
access token that impersonates that user with exactly gimport.backends.google.scopes.SCOPES (the JWT bearer grant, RFC 7523).
Tokens live in memory only and are minted again when they expire; nothing is written anywhere.

Errors are sorted by whom they concern:
- DelegationError (exit 3): the service account may not impersonate anyone (delegation not granted, scopes
  not allowed, key deleted): every user would fail the same way, so `gimport admin run` stops;
- AuthError (exit 3): Google refuses a token for this one user (no such user, suspended): that user fails;
- ConfigError (exit 2): the key file is missing or not a service-account key.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import google.auth.exceptions
import google_auth_httplib2
import httplib2
from google.oauth2 import service_account

from gimport.backends.google.scopes import SCOPES
from gimport.calls import Caller, RetryPolicy
from gimport.errors import AuthError, ConfigError, DelegationError, RetryableError
from gimport.files import check_secret, refuse_special
from gimport.i18n import _

log = logging.getLogger("gimport.admin")

DELEGATION_PAGE = "Google Admin console > Security > Access and data control > API controls > Domain-wide delegation"
# token endpoint errors that concern the service account, not the user (RFC 6749 section 5.2)
_ACCOUNT_WIDE = ("unauthorized_client", "invalid_client", "invalid_scope", "access_denied")


class ServiceAccount:
    """The key file, loaded once. Thread-safe: credentials_for() returns independent credentials."""

    def __init__(self, path: Path, *, timeout: float = 60.0, key: str = "[admin] service_account_file") -> None:
        self.path, self.key = Path(path), key  # the config key that names the file, for messages
        self._timeout = timeout
        refuse_special(self.path, self.key)
        try:
            info = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                _(
                    "{key} {path} not found: create a key for the service account ('gimport help admin', section 1)"
                ).format(key=self.key, path=self.path)
            ) from None
        except (OSError, ValueError) as exc:
            raise ConfigError(
                _("{key} {path}: cannot read it as JSON ({exc})").format(key=self.key, path=self.path, exc=exc)
            ) from None
        if not isinstance(info, dict) or info.get("type") != "service_account":
            what = "an OAuth client" if isinstance(info, dict) and ("installed" in info or "web" in info) else "JSON"
            raise ConfigError(
                _(
                    "{key} {path} is {what}, not a service-account key: in the Cloud"
                    " console, IAM & Admin > Service accounts > the account > Keys > Add key > Create new key > JSON"
                ).format(key=self.key, path=self.path, what=what)
            )
        missing = [k for k in ("client_email", "private_key", "token_uri") if not info.get(k)]
        if missing:
            raise ConfigError(
                _("{key} {path} lacks {missing}").format(key=self.key, path=self.path, missing=", ".join(missing))
            )
        # the key impersonates every user of the domain: refused when others can read it (group: the
        # Kubernetes Job mounts secrets 0440 with an fsGroup)
        check_secret(self.path, self.key, group_ok=True)
        try:
            # from_service_account_file(...) reads the same info; token_uri comes from the file
            self._base = service_account.Credentials.from_service_account_info(info)
        except ValueError as exc:
            raise ConfigError(
                _("{key} {path}: unusable key ({exc})").format(key=self.key, path=self.path, exc=exc)
            ) from None
        self.client_email: str = info["client_email"]
        self.client_id: str = str(info.get("client_id", "?"))
        self.token_uri: str = info["token_uri"]

    def credentials_for(self, email: str, scopes: tuple[str, ...] = SCOPES) -> service_account.Credentials:
        """Credentials that act as `email` with exactly `scopes` (gimport's; admin verify --exact adds the
        metadata scope) (no token yet)."""
        creds: service_account.Credentials = self._base.with_scopes(list(scopes)).with_subject(email)
        return creds

    def authorize(
        self,
        email: str,
        *,
        attempts: int = 4,
        sleep: Callable[[float], object] = time.sleep,
        scopes: tuple[str, ...] = SCOPES,
    ) -> service_account.Credentials:
        """Credentials for `email` holding a fresh access token: a user Google will not issue a token for
        fails here, before anything else is done for them. Raises DelegationError, AuthError."""
        creds = self.credentials_for(email, scopes)
        last: list[BaseException] = []

        def refresh() -> service_account.Credentials:
            creds.refresh(google_auth_httplib2.Request(httplib2.Http(timeout=self._timeout)))
            return creds

        def classify(exc: BaseException) -> BaseException:
            last[:] = [exc]
            if isinstance(exc, google.auth.exceptions.RefreshError):
                if getattr(exc, "retryable", False):
                    return RetryableError(str(exc))
                return self._refused(email, exc, scopes)
            if isinstance(exc, google.auth.exceptions.TransportError):
                log.warning("token endpoint %s unreachable (%s); retrying", self.token_uri, exc)
                return RetryableError(str(exc), no_answer=True)
            return exc

        caller = Caller(None, RetryPolicy(attempts=attempts, give_up_after=None), sleep=sleep)
        try:
            return caller.call(refresh, classify=classify)
        except RetryableError:
            exc = last[0]
            if isinstance(exc, google.auth.exceptions.RefreshError):
                raise self._refused(email, exc, scopes) from None
            raise AuthError(
                _("cannot reach the token endpoint {token_uri} for {email}: {exc}").format(
                    token_uri=self.token_uri, email=email, exc=exc
                ),
                hint=_("check the network and try again"),
            ) from None

    def _refused(
        self, email: str, exc: google.auth.exceptions.RefreshError, scopes: tuple[str, ...] = SCOPES
    ) -> AuthError | DelegationError:
        details = str(exc.args[0]) if exc.args else str(exc)
        code = details.split(":", 1)[0].strip()
        if code in _ACCOUNT_WIDE or "Invalid JWT" in details:
            err = DelegationError(
                _(
                    "Google refuses to let the service account {client_email} act for users ({details}): in the"
                    " {delegation_page}, add client ID {client_id} with exactly these scopes: {scopes} (changes can"
                    " take some minutes to apply)"
                ).format(
                    client_email=self.client_email,
                    details=details,
                    delegation_page=DELEGATION_PAGE,
                    client_id=self.client_id,
                    scopes=",".join(scopes),
                )
            )
            err.details = details
            return err
        return AuthError(
            _(
                "Google refuses a token for {email} ({details}): the address must be an existing, active user of"
                " the Google Workspace domain (check the spelling, and that the account is not suspended)"
            ).format(email=email, details=details),
            hint="",
        )
