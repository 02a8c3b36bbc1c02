"""The Gmail token file and the OAuth client file: reading, writing (0600), refresh, revoke (the scopes:
gimport.backends.google.scopes).

The token file is a google-auth "authorized_user" JSON, created with mode 0600 (never readable by
others, not even briefly) and rewritten the same way whenever the access token is refreshed.

The revoke endpoint is derived from the token_uri saved in the token file: Google's
``https://oauth2.googleapis.com/revoke`` for any Google token endpoint, else ``<origin of token_uri>/revoke``.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import sys
import threading
import urllib.parse
from pathlib import Path
from typing import Any, TextIO

import google.auth.exceptions
from google.oauth2.credentials import Credentials

from gimport.backends.google.scopes import SCOPES, scopes_for
from gimport.config.settings import GmailSettings
from gimport.errors import AuthError, ConfigError, GmailError, MessageRejected, RetryableError
from gimport.files import check_secret, refuse_special
from gimport.i18n import N_, _


def granted_scopes(token_file: Path) -> frozenset[str]:
    """The scopes the token file says were granted (empty when it cannot be read)."""
    try:
        info = json.loads(Path(token_file).read_text("utf-8"))
    except (OSError, ValueError):
        return frozenset()
    scopes = info.get("scopes") if isinstance(info, dict) else None
    if isinstance(scopes, str):
        scopes = scopes.split()
    return frozenset(scopes or ())


GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
GOOGLE_REVOKE_URI = "https://oauth2.googleapis.com/revoke"
_GOOGLE_OAUTH_HOSTS = frozenset({"oauth2.googleapis.com", "accounts.google.com", "www.googleapis.com"})
NETWORK_TIMEOUT = 60.0
CREATE_CLIENT_HOWTO = N_(
    "create one in the Google Cloud console: APIs & Services > Credentials > Create credentials >"
    " OAuth client ID > Application type: Desktop app > Download JSON (see 'gimport help auth')"
)
PERMISSIONS_PAGE = "https://myaccount.google.com/permissions"


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` atomically with mode 0600 from the moment the file exists."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class PersistingCredentials(Credentials):
    """Credentials that write themselves back to the token file after every refresh.

    Thread-safe: concurrent 401s in several worker threads cause one refresh, not one per thread."""

    _token_path: Path | None = None
    _refresh_lock = threading.Lock()

    def refresh(self, request: Any) -> None:
        stale = self.token
        with self._refresh_lock:
            if self.token != stale and self.valid:
                return  # another thread refreshed while this one waited for the lock
            try:
                super().refresh(request)  # type: ignore[no-untyped-call]  # google-auth leaves it unannotated
            except google.auth.exceptions.RefreshError as exc:
                # google-auth's message is a tuple repr with the whole response; keep "invalid_grant: ..."
                raise google.auth.exceptions.RefreshError(
                    f"{exc.args[0] if exc.args else exc}".split(",")[0], retryable=exc.retryable
                ) from exc
            if self._token_path is not None:
                write_private(self._token_path, self.to_json())  # type: ignore[no-untyped-call]  # as refresh


def load_credentials(token_file: Path) -> PersistingCredentials:
    """Read the token file written by `gimport auth`. Raises AuthError with what to do, ConfigError when
    its group or others can read it (chmod 600)."""
    token_file = Path(token_file)
    # whoever reads the token reads nothing of the mail, but may import into it and change its settings
    check_secret(token_file, "[gmail] token_file")
    try:
        info = json.loads(token_file.read_text("utf-8"))
    except FileNotFoundError:
        raise AuthError(
            _("no Gmail token at {token_file}").format(token_file=token_file), hint=_("run 'gimport auth' first")
        ) from None
    except (OSError, ValueError) as exc:
        raise AuthError(
            _("cannot read the Gmail token {token_file} ({exc})").format(token_file=token_file, exc=exc)
        ) from None
    if not isinstance(info, dict) or not info.get("refresh_token"):
        raise AuthError(_("{token_file} holds no refresh token").format(token_file=token_file))
    try:
        # google-auth leaves it unannotated; it returns an instance of the class it is called on
        creds: PersistingCredentials = PersistingCredentials.from_authorized_user_info(info)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise AuthError(
            _("{token_file} is not a gimport token ({exc})").format(token_file=token_file, exc=exc)
        ) from None
    if info.get("token_uri"):
        # from_authorized_user_info forgets the saved token_uri; honour it (with_token_uri() would drop expiry)
        creds._token_uri = info["token_uri"]
    creds._token_path = token_file
    return creds


# ------------------------------------------------------------------------------------ client secrets


def load_client_config(path: Path) -> dict[str, Any]:
    """Read and check a Desktop ("installed") OAuth client JSON. Raises ConfigError saying how to fix it."""
    path = Path(path)
    where = f"[gmail] client_secrets {path}"
    refuse_special(path, "[gmail] client_secrets")
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError(
            _("no OAuth client file at {where}: {create_client_howto}, and save it there").format(
                where=where, create_client_howto=_(CREATE_CLIENT_HOWTO)
            )
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            _("cannot read {where}: {reason}").format(where=where, reason=getattr(exc, "strerror", None) or exc)
        ) from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(
            _(
                "{where} is not valid JSON ({exc}): download the Desktop client's JSON again from the Google Cloud"
                " console (APIs & Services > Credentials)"
            ).format(where=where, exc=exc)
        ) from None
    if isinstance(data, dict) and "installed" not in data:
        if "web" in data:
            raise ConfigError(
                _(
                    "{where} is for a 'Web application' OAuth client; gimport needs a 'Desktop app' client: {howto}"
                ).format(where=where, howto=_(CREATE_CLIENT_HOWTO))
            )
        if data.get("type") == "service_account":
            raise ConfigError(
                _("{where} is a service account key, not an OAuth client: {howto}").format(
                    where=where, howto=_(CREATE_CLIENT_HOWTO)
                )
            )
    client = data.get("installed") if isinstance(data, dict) else None
    if not isinstance(client, dict):
        raise ConfigError(
            _("{where} is not an OAuth client file (no 'installed' section): {howto}").format(
                where=where, howto=_(CREATE_CLIENT_HOWTO)
            )
        )
    missing = [k for k in ("client_id", "client_secret", "auth_uri", "token_uri") if not client.get(k)]
    if missing:
        raise ConfigError(
            _("{where} lacks {missing}: download the Desktop client's JSON again").format(
                where=where, missing=", ".join(missing)
            )
        )
    return {"installed": client}


def revoke_uri_for(token_uri: str) -> str:
    """Google's revoke endpoint for Google's token endpoints, else ``<origin of token_uri>/revoke``."""
    parts = urllib.parse.urlsplit(token_uri)
    if (parts.hostname or "").lower() in _GOOGLE_OAUTH_HOSTS:
        return GOOGLE_REVOKE_URI
    return f"{parts.scheme}://{parts.netloc}/revoke"


def revoke(token_file: Path, *, out: TextIO | None = None) -> None:
    """`gimport auth --revoke`: revoke the saved grant at the revoke endpoint and delete the token file.

    The file is deleted also when the endpoint says the token is already invalid; it is kept (GmailError)
    when the endpoint cannot be reached or fails, so that revoking can be tried again."""
    import requests

    out = sys.stdout if out is None else out
    token_file = Path(token_file)
    problem = _("no token in it")
    try:
        info = json.loads(token_file.read_text("utf-8"))
    except FileNotFoundError:
        _print(out, _("No token at {token_file}: nothing to revoke.").format(token_file=token_file))
        return
    except OSError as exc:
        raise ConfigError(
            _("cannot read [gmail] token_file {token_file}: {strerror}").format(
                token_file=token_file, strerror=exc.strerror
            )
        ) from None
    except ValueError as exc:
        info, problem = None, _("not JSON: {exc}").format(exc=exc)
    token = info.get("refresh_token") or info.get("token") if isinstance(info, dict) else None
    if not token:
        _delete(token_file)
        _print(
            out,
            _("{token_file} held no usable token ({problem}): deleted it.").format(
                token_file=token_file, problem=problem
            ),
        )
        _print(
            out,
            _("If gimport still has access, remove it at {permissions_page}").format(permissions_page=PERMISSIONS_PAGE),
        )
        return
    uri = revoke_uri_for(info.get("token_uri") or GOOGLE_TOKEN_URI)
    try:
        resp = requests.post(uri, data={"token": token}, timeout=NETWORK_TIMEOUT)
    except requests.RequestException as exc:
        raise GmailError(
            _(
                "cannot reach {uri} to revoke the token ({name}): {token_file} is kept; try again, or remove"
                " gimport's access at {permissions_page} and delete the file"
            ).format(uri=uri, name=exc.__class__.__name__, token_file=token_file, permissions_page=PERMISSIONS_PAGE)
        ) from None
    if resp.status_code == 200:
        _delete(token_file)
        _print(out, _("Revoked gimport's access to Gmail and deleted {token_file}.").format(token_file=token_file))
        return
    error = ""
    with contextlib.suppress(ValueError):
        error = str(resp.json().get("error", ""))
    if resp.status_code == 400 and error in ("invalid_token", "invalid_request", ""):
        _delete(token_file)
        _print(
            out,
            _("The token was already invalid (expired or revoked): nothing to revoke; deleted {token_file}.").format(
                token_file=token_file
            ),
        )
        return
    raise GmailError(
        _(
            "revoking at {uri} failed (HTTP {status_code} {error}): {token_file} is kept; try again, or remove"
            " gimport's access at {permissions_page} and delete the file"
        ).format(
            uri=uri, status_code=resp.status_code, error=error, token_file=token_file, permissions_page=PERMISSIONS_PAGE
        )
    )


def _delete(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ConfigError(_("cannot delete {path}: {strerror}").format(path=path, strerror=exc.strerror)) from None


def token_status(gmail: GmailSettings, *, out: TextIO | None = None) -> str:
    """`gimport auth --status`: the account, the scopes and whether the token still refreshes. Refreshes it
    now (and saves the new access token, as every command does); changes nothing else. Returns the
    account. Raises AuthError (no token, it no longer refreshes, a scope missing, another account than
    [gmail] user), ConfigError (the token file is readable by others) and GmailError (Gmail unreachable)."""
    import google.auth.exceptions
    import google.auth.transport.requests
    import requests

    from gimport.backends.google.gmail import GmailClient

    out = sys.stdout if out is None else out
    creds = load_credentials(gmail.token_file)
    try:
        creds.refresh(google.auth.transport.requests.Request())
    except google.auth.exceptions.RefreshError as exc:
        raise AuthError(
            _("the token in {token_file} no longer refreshes ({exc}); Testing-mode grants expire after 7 days").format(
                token_file=gmail.token_file, exc=exc
            )
        ) from None
    except (requests.RequestException, google.auth.exceptions.TransportError) as exc:
        raise GmailError(_("cannot reach Google's token endpoint ({name})").format(name=type(exc).__name__)) from None
    try:
        address = GmailClient(creds, api_url=gmail.api_url).primary_address()
    except (RetryableError, MessageRejected) as exc:
        raise GmailError(_("Gmail did not say which account the token is for: {exc}").format(exc=exc)) from None
    granted = set(creds.scopes or ())
    _print(out, _("Account: {address}").format(address=address))
    _print(out, _("Token file: {path}").format(path=gmail.token_file))
    names = (
        ", ".join(s.rsplit("/", 1)[-1] for s in scopes_for(exact_verify=True, label_copies=True) if s in granted) or "?"
    )
    _print(out, _("Scopes: {names}").format(names=names))
    expiry = creds.expiry.replace(tzinfo=datetime.UTC).astimezone() if creds.expiry else None
    until = _(", access token good until {clock}").format(clock=expiry.strftime("%H:%M")) if expiry else ""
    _print(out, _("Token: refreshes{until}").format(until=until))
    missing = [s for s in SCOPES if granted and s not in granted]
    if missing:
        raise AuthError(_("the token lacks {scopes}").format(scopes=", ".join(s.rsplit("/", 1)[-1] for s in missing)))
    if gmail.user and address.lower() != gmail.user.lower():
        raise AuthError(
            _("the token is for {address}, but [gmail] user is {user}").format(address=address, user=gmail.user)
        )
    return address


def _print(out: TextIO, text: str = "") -> None:
    out.write(text + "\n")
    out.flush()
