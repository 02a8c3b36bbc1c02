"""The source's OAuth token ([source] token_file): read, refreshed at its token_uri, rewritten 0600.

The file is an authorized-user JSON, the shape google-auth writes and `gimport auth --source` writes for
every provider: `token` (the access token), `refresh_token`, `token_uri`, `client_id`, `client_secret`
(empty or absent for a public client such as Microsoft's device-code app), `expiry` (ISO 8601, UTC) and
optionally `scopes`. A token past its expiry, or one the IMAP server refused, is refreshed with the OAuth
refresh-token grant (RFC 6749 section 6): a plain form POST that every provider answers, so no provider
library is needed to run. The tokens never reach a log line, an error message, argv or the state file.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from gimport.backends import tls
from gimport.config.settings import SourceSettings
from gimport.errors import ConfigError, SourceError
from gimport.files import check_secret, open_private
from gimport.i18n import _

log = logging.getLogger("gimport.imap")

WHAT = "[source] token_file"
EARLY = 60.0  # seconds before its expiry a token counts as expired: a login must not race the clock
REFRESH_TIMEOUT = 30.0
# what an OAuth server answers (RFC 6749 section 5.2) when the grant itself is no good: sign in again
REFUSED_GRANT = ("invalid_grant", "invalid_client", "unauthorized_client", "interaction_required")


class BearerToken(Protocol):
    """What an IMAP login takes a token from: the token file (SourceToken) or, in admin mode, the
    application's own credentials (gimport.backends.microsoft.app, gimport.backends.google.source_app)."""

    def access_token(self) -> str: ...
    def refused(self, token: str) -> bool:
        """The server refused `token`: True when asking again may bring a better one."""


def source_token(settings: SourceSettings) -> BearerToken | None:
    """Where the login's token comes from; None for a password login. Raises ConfigError."""
    oauth = settings.oauth
    if oauth is None:
        return None
    if oauth.client_secret_file is not None:
        from gimport.backends.microsoft.app import microsoft_app

        return microsoft_app(oauth)
    if oauth.service_account_file is not None:
        from gimport.backends.google.source_app import GoogleSourceToken

        return GoogleSourceToken(oauth, settings.user)
    return SourceToken.load(oauth.token_file)


def sign_in_again() -> str:
    return _("run 'gimport auth --source' to sign in again")


class SourceTokenRefused(SourceError):
    """The OAuth server refused to refresh the source's token (revoked, expired grant, app removed)."""

    def default_hint(self) -> str:
        return sign_in_again()


def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def _expiry(value: Any) -> float | None:
    """Seconds since the epoch of an ISO 8601 `expiry` (naive: UTC, as google-auth writes it); None when absent."""
    if not value:
        return None
    if not isinstance(value, str):
        raise ValueError("expiry")
    when = dt.datetime.fromisoformat(value)
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()


class SourceToken:
    """The access token of [source] token_file for IMAP logins; thread-safe (the fetch threads share one).

    Built by `load`, which refuses (ConfigError, exit 2) a file others can read, a missing or malformed one."""

    def __init__(self, path: Path, data: dict[str, Any], *, now: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._data = data
        self._now = now
        self._lock = threading.Lock()
        self.refreshes = 0

    @classmethod
    def load(cls, path: Path, *, now: Callable[[], float] = time.time) -> SourceToken:
        check_secret(path, WHAT)
        try:
            data = json.loads(Path(path).read_text("utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                _("{what} {path} does not exist").format(what=WHAT, path=path), hint=_("run 'gimport auth --source'")
            ) from None
        except OSError as exc:
            raise ConfigError(
                _("{what} {path}: {strerror}").format(what=WHAT, path=path, strerror=exc.strerror)
            ) from None
        except (UnicodeDecodeError, ValueError):
            data = None
        problem = cls._problem(data)
        if problem:
            raise ConfigError(
                _("{what} {path} is not an OAuth token file ({problem})").format(what=WHAT, path=path, problem=problem),
                hint=_("run 'gimport auth --source' to write it again"),
            )
        return cls(path, data, now=now)

    @staticmethod
    def _problem(data: Any) -> str:
        """What is wrong with the file's JSON, "" when nothing (never quoting a token)."""
        if not isinstance(data, dict):
            return "not a JSON object"
        for key in ("refresh_token", "token_uri", "client_id"):
            if not isinstance(data.get(key), str) or not data[key]:
                return f"no {key}"
        uri = urllib.parse.urlsplit(data["token_uri"])
        if uri.scheme != "https" and not (uri.scheme == "http" and _loopback(uri.hostname)):
            return "token_uri is not https"
        try:
            _expiry(data.get("expiry"))
        except ValueError:
            return "expiry is not an ISO 8601 time"
        return ""

    def _expired(self) -> bool:
        expiry = _expiry(self._data.get("expiry"))
        return not self._data.get("token") or (expiry is not None and expiry - EARLY <= self._now())

    def access_token(self) -> str:
        """A token to log in with, refreshed first when it has expired. Raises SourceTokenRefused (exit 4,
        sign in again) or SourceError (the token server unreachable)."""
        with self._lock:
            if self._expired():
                self._refresh()
            return str(self._data["token"])

    def refused(self, token: str) -> bool:
        """The server refused `token`: refresh it (unless another thread has already). False when `token` came
        from a refresh moments ago (refreshing again would not help). Raises as access_token."""
        with self._lock:
            if self._data.get("token") != token:
                return True  # replaced meanwhile
            refreshed_at = self._data.get("refreshed_at")
            if refreshed_at is not None and self._now() - refreshed_at < EARLY:
                return False
            self._refresh()
            return True

    def _refresh(self) -> None:
        data = self._data
        form = {"grant_type": "refresh_token", "refresh_token": data["refresh_token"], "client_id": data["client_id"]}
        if data.get("client_secret"):
            form["client_secret"] = data["client_secret"]
        scopes = data.get("scopes")
        if isinstance(scopes, list) and scopes:
            form["scope"] = " ".join(str(s) for s in scopes)
        answer = self._post(data["token_uri"], form)
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise SourceError(
                _("the OAuth server {host} answered the token refresh without a token").format(host=self._host())
            )
        try:
            lifetime = float(answer.get("expires_in", 3600))
        except (TypeError, ValueError):
            lifetime = 3600.0
        expiry = dt.datetime.fromtimestamp(self._now() + lifetime, dt.UTC).replace(tzinfo=None)
        data = {**data, "token": token, "expiry": expiry.isoformat(timespec="seconds") + "Z"}
        if isinstance(answer.get("refresh_token"), str) and answer["refresh_token"]:
            data["refresh_token"] = answer["refresh_token"]  # a rotating grant (Microsoft): the old one is spent
        self._save(data)
        self._data = {**data, "refreshed_at": self._now()}
        self.refreshes += 1
        log.info("refreshed the source's OAuth token at %s: valid for %d s", self._host(), lifetime)

    def _host(self) -> str:
        return urllib.parse.urlsplit(str(self._data["token_uri"])).netloc

    def _post(self, url: str, form: dict[str, str]) -> dict[str, Any]:
        request = urllib.request.Request(
            url,
            data=urllib.parse.urlencode(form).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=REFRESH_TIMEOUT, context=tls.system_and()) as r:
                answer = json.loads(r.read())
        except urllib.error.HTTPError as exc:
            error = self._error_of(exc)
            if exc.code in (400, 401) and error in REFUSED_GRANT:
                raise SourceTokenRefused(
                    _("the OAuth server {host} refused to refresh the token in {path} ({error})").format(
                        host=self._host(), path=self.path, error=error
                    )
                ) from None
            raise SourceError(
                _("the OAuth server {host} failed the token refresh: HTTP {status} {error}").format(
                    host=self._host(), status=exc.code, error=error
                )
            ) from None
        except (OSError, ValueError) as exc:
            raise SourceError(
                _("cannot refresh the source's OAuth token at {host}: {exc}").format(host=self._host(), exc=exc)
            ) from None
        if not isinstance(answer, dict):
            raise SourceError(
                _("the OAuth server {host} answered the token refresh with no JSON object").format(host=self._host())
            )
        return answer

    @staticmethod
    def _error_of(exc: urllib.error.HTTPError) -> str:
        """The `error` code of an OAuth error answer (a short word, never a token), "" when none."""
        try:
            error = json.loads(exc.read(4096)).get("error", "")
        except (OSError, ValueError, AttributeError):
            return ""
        return error if isinstance(error, str) and error.replace("_", "").isalnum() else ""

    def _save(self, data: dict[str, Any]) -> None:
        try:
            write_token_file(self.path, data)
        except OSError as exc:
            raise SourceError(
                _("cannot save the refreshed token to {path}: {strerror}").format(path=self.path, strerror=exc.strerror)
            ) from None


def write_token_file(path: Path, data: dict[str, Any]) -> None:
    """Write the token file, 0600, in one step: a crash leaves the old file or the new one, never half.
    Raises OSError (PrivateFileError for a file of another user or a link planted there)."""
    tmp = Path(path).with_name(f".{Path(path).name}.tmp")
    fd = open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({k: v for k, v in data.items() if k != "refreshed_at"}, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
