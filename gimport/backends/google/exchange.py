"""The OAuth code exchange with Google, for gimport.backends.google.oauth's consent flows: the flow object
(google_auth_oauthlib's InstalledAppFlow, PKCE), the address that asks for consent, Google's answer checked,
and the code traded for tokens that hold every scope asked for.

gimport checks the answer's ``state`` and ``error`` itself, then exchanges the code with
``flow.fetch_token(code=...)``, so no http->https rewriting of the redirect is needed. A token that is not
kept (a permission was unticked) is revoked. Nothing here prints, reads the terminal or listens: that is
gimport.backends.google.oauth's and gimport.backends.google.loopback's. Raises AuthError and ConfigError.
The only module that imports google_auth_oauthlib.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from google.oauth2.credentials import Credentials

from gimport.backends.google.scopes import SCOPE_PURPOSE, SCOPES
from gimport.backends.google.tokens import NETWORK_TIMEOUT, revoke_uri_for
from gimport.errors import AuthError, ConfigError
from gimport.i18n import _


def new_flow(client_config: dict[str, Any], redirect_uri: str, scopes: tuple[str, ...] = SCOPES) -> Any:
    from google_auth_oauthlib.flow import InstalledAppFlow

    flow = InstalledAppFlow.from_client_config(client_config, scopes=list(scopes))
    flow.redirect_uri = redirect_uri
    return flow


def authorization_url(flow: Any) -> tuple[str, str]:
    from oauthlib.oauth2 import InsecureTransportError

    try:
        # prompt=consent: Google then always returns a refresh token, also for an account that consented before
        url_and_state: tuple[str, str] = flow.authorization_url(access_type="offline", prompt="consent")
        return url_and_state
    except InsecureTransportError:
        raise ConfigError(
            _("auth_uri {client_config} in [gmail] client_secrets must start with https://").format(
                client_config=flow.client_config["auth_uri"]
            )
        ) from None


def check_answer(params: Mapping[str, str], state: str) -> str:
    """The code from Google's redirect parameters, or AuthError (denied, wrong attempt)."""
    error = params.get("error")
    if error == "access_denied":
        raise AuthError(
            _(
                "access was not granted (you pressed Cancel, or the account is not allowed to use this app: in"
                " Testing mode add it as a test user on the OAuth consent screen)"
            ),
            hint="",
        )
    if error:
        detail = params.get("error_description") or ""
        raise AuthError(
            _("Google refused the authorization: {reason}").format(reason=f"{error} {detail}".rstrip()),
            hint=_("see 'gimport help auth'"),
        )
    if params.get("state") != state:
        raise AuthError(
            _(
                "the answer does not belong to this sign-in (state mismatch; a tab from an earlier attempt?): run"
                " 'gimport auth' again"
            )
        )
    code = params.get("code")
    if not code:
        raise AuthError(_("Google's answer holds no code"))
    return code


def _revoke_quietly(token_uri: str, token: str | None) -> None:
    """Best effort: a token gimport will not keep should not stay valid."""
    if not token:
        return
    import requests

    with contextlib.suppress(requests.RequestException):
        requests.post(revoke_uri_for(token_uri), data={"token": token}, timeout=NETWORK_TIMEOUT)


def fetch_token(flow: Any, code: str) -> Credentials:
    """Exchange the code (PKCE verifier included) for tokens; insist on every scope asked for."""
    import requests
    from oauthlib.oauth2 import InsecureTransportError, OAuth2Error

    token_uri = flow.client_config["token_uri"]
    try:
        flow.fetch_token(code=code, timeout=NETWORK_TIMEOUT)
    except Warning as w:
        # oauthlib raises Warning when the granted scopes differ from the requested ones: the user unticked
        # a permission on Google's consent screen (granular consent)
        if not hasattr(w, "new_scope"):
            raise
        token: dict[str, Any] = getattr(w, "token", None) or {}
        granted = set(getattr(w, "new_scope", None) or ())
        missing = [s for s in flow.oauth2session.scope or SCOPES if s not in granted]
        if missing:
            _revoke_quietly(token_uri, token.get("refresh_token") or token.get("access_token"))
            what = ", ".join(f"{s.rsplit('/', 1)[-1]} ({_(SCOPE_PURPOSE[s])})" for s in missing)
            raise AuthError(
                _(
                    "gimport was not given every permission it needs (missing: {what}): run 'gimport auth' again"
                    " and tick every box on Google's consent screen"
                ).format(what=what)
            ) from None
        flow.oauth2session.token = token  # more than asked for (earlier grants): fine
    except InsecureTransportError:
        raise ConfigError(
            _("token_uri {token_uri} in [gmail] client_secrets must start with https://").format(token_uri=token_uri)
        ) from None
    except OAuth2Error as exc:
        hint = ""
        if exc.error == "invalid_client":
            hint = _(" (was the OAuth client deleted or its secret reset? download its JSON again)")
        raise AuthError(
            _("the token endpoint {token_uri} refused the code: {error}{description}{hint}").format(
                token_uri=token_uri,
                error=exc.error,
                description=": " + exc.description if exc.description else "",
                hint=hint,
            ),
            hint="" if hint else None,
        ) from None
    except requests.RequestException as exc:
        raise AuthError(
            _("cannot reach the token endpoint {token_uri} ({name})").format(
                token_uri=token_uri, name=type(exc).__name__
            ),
            hint=_("check the network and try again"),
        ) from None
    except ValueError as exc:  # not an OAuth answer at all (an HTML error page, ...)
        raise AuthError(
            _("unexpected answer from the token endpoint {token_uri}: {exc}").format(token_uri=token_uri, exc=exc)
        ) from None
    creds: Credentials = flow.credentials
    if not creds.refresh_token:
        raise AuthError(_("the token endpoint {token_uri} returned no refresh token").format(token_uri=token_uri))
    return creds
