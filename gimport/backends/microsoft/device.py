"""The device-code flow (RFC 8628) with MSAL: made for machines without a browser, such as a server
reached over SSH. gimport prints a short address and a code; the person opens the address on any device
(a phone will do), types the code and signs in; MSAL polls the token endpoint until they have.

The result is the authorized-user JSON of gimport.backends.imap.oauth (a public client: no secret), so
the runs refresh it with the plain refresh-token grant and need no MSAL. The tokens are never printed.
"""

from __future__ import annotations

import datetime as dt
import time
import urllib.parse
from collections.abc import Callable
from typing import Any, TextIO

import msal
import msal.authority
import requests

from gimport.config.settings import SourceOAuth
from gimport.errors import AuthError, ConfigError
from gimport.i18n import _


def _app(oauth: SourceOAuth) -> msal.PublicClientApplication:
    if not oauth.client_id:
        raise ConfigError(
            _('[source] client_id is required with provider = "microsoft": the Application (client) ID of your app'),
            hint=_("see 'Moving from Microsoft 365' in README.md for the app registration"),
        )
    host = urllib.parse.urlsplit(oauth.authority or "").hostname or ""
    try:
        return msal.PublicClientApplication(
            oauth.client_id,
            authority=oauth.authority,
            # Microsoft's own sign-in hosts are known to MSAL; another one (a sovereign cloud's proxy, the test
            # rig) is taken as written instead of being looked up at login.microsoftonline.com
            instance_discovery=host in msal.authority.WELL_KNOWN_AUTHORITY_HOSTS,
        )
    except ValueError as exc:  # MSAL's word for "that authority's discovery document is not there"
        raise ConfigError(
            _("[source] authority {authority}: {exc}").format(authority=oauth.authority, exc=exc)
        ) from None
    except requests.RequestException as exc:
        raise AuthError(
            _("cannot reach {authority} ({name})").format(authority=oauth.authority, name=type(exc).__name__),
            hint=_("check the network and try again"),
        ) from None


def device_code_grant(
    oauth: SourceOAuth,
    *,
    out: TextIO,
    timeout: float,
    paragraph: Callable[[str, TextIO, str], str] = lambda text, out, indent: text,
    now: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """Sign in with the device code for `oauth.scopes`; the authorized-user JSON of the grant. Gives up after
    `timeout` seconds (or the code's own life, if shorter). Raises ConfigError (no client_id, a bad
    authority), AuthError (declined, expired, refused)."""
    app = _app(oauth)
    try:
        flow = app.initiate_device_flow(scopes=list(oauth.scopes))
    except requests.RequestException as exc:
        raise AuthError(
            _("cannot reach {authority} ({name})").format(authority=oauth.authority, name=type(exc).__name__),
            hint=_("check the network and try again"),
        ) from None
    if "user_code" not in flow:
        raise AuthError(_("Microsoft refused to start the sign-in: {error}").format(error=_describe(flow)))
    print(
        paragraph(
            _("On any device, open {url} and enter the code {code}, then sign in as the old mailbox's owner.").format(
                url=flow["verification_uri"], code=flow["user_code"]
            ),
            out,
            "",
        ),
        file=out,
        flush=True,
    )
    # MSAL checks the deadline only while it waits `interval` seconds between polls: a server saying 0 would
    # have it poll as fast as it can, forever
    flow["interval"] = max(1, int(flow.get("interval") or 0))
    flow["expires_at"] = min(float(flow.get("expires_at") or now() + timeout), now() + timeout)
    try:
        result = app.acquire_token_by_device_flow(flow)
    except requests.RequestException as exc:
        raise AuthError(
            _("cannot reach {authority} ({name})").format(authority=oauth.authority, name=type(exc).__name__),
            hint=_("check the network and try again"),
        ) from None
    if "access_token" not in result or not result.get("refresh_token"):
        raise AuthError(_("the sign-in did not complete: {error}").format(error=_describe(result)))
    expiry = dt.datetime.fromtimestamp(now() + float(result.get("expires_in") or 3600), dt.UTC)
    return {
        "token": result["access_token"],
        "refresh_token": result["refresh_token"],
        "token_uri": app.authority.token_endpoint,
        "client_id": oauth.client_id,
        "client_secret": "",  # a public client: Microsoft refuses a secret from one
        "expiry": expiry.replace(tzinfo=None).isoformat(timespec="seconds") + "Z",
        "scopes": [*oauth.scopes, "offline_access"],
    }


def _describe(answer: dict[str, Any]) -> str:
    """An MSAL error answer in one line: its code and the first line of its description (no token there)."""
    error = str(answer.get("error") or "no answer")
    description = str(answer.get("error_description") or "").strip().splitlines()
    return f"{error} ({description[0]})" if description else error
