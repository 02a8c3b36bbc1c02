"""[source] provider and auth: how gimport logs in to the old server, and what a named provider fills in.

`provider = "microsoft"` (Exchange Online) or `"google"` (a Gmail or Workspace account) sets the server
(host, port, security) and the OAuth login (auth, scopes, the token endpoints and, for Microsoft, the
tenant); every one of them can still be written in [source] to override it. `provider = "imap"` (the
default) is any server: password login unless `auth` says "xoauth2" or "oauthbearer", with a token file
made elsewhere. Pure reading of the table: gimport.config.load calls it for an IMAP source.
"""

from __future__ import annotations

from typing import Any

from gimport.config.settings import SourceOAuth
from gimport.config.values import Table
from gimport.errors import ConfigError
from gimport.i18n import _

PROVIDERS = ("imap", "microsoft", "google")
APP_KEYS = ("client_secret_file", "service_account_file")  # gimport admin: the app's own credentials
AUTH_MODES = ("password", "xoauth2", "oauthbearer")
OAUTH_KEYS = ("token_file", "client_id", "tenant", "authority", "client_secrets", *APP_KEYS)
DEFAULT_TOKEN_FILE = "source-token.json"

MICROSOFT_LOGIN = "https://login.microsoftonline.com"
# "organizations": any work or school account; a university writes its own tenant (domain or id)
MICROSOFT_TENANT = "organizations"
# Exchange Online's delegated IMAP permission; MSAL adds openid, profile and offline_access itself
MICROSOFT_SCOPES = ("https://outlook.office365.com/IMAP.AccessAsUser.All",)
GOOGLE_SCOPES = ("https://mail.google.com/",)  # the only scope Gmail's IMAP accepts
# app-only access to Exchange Online (client credentials): every permission granted to the app, IMAP.AccessAsApp
MICROSOFT_APP_SCOPES = ("https://outlook.office365.com/.default",)

SERVERS: dict[str, dict[str, Any]] = {
    "microsoft": {"host": "outlook.office365.com", "port": 993, "security": "ssl", "auth": "xoauth2"},
    "google": {"host": "imap.gmail.com", "port": 993, "security": "ssl", "auth": "xoauth2"},
}


def provider_defaults(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The provider named in the raw [source] table, and the table with the provider's server and auth
    filled in where the table does not set them. Raises ConfigError for an unknown provider."""
    provider = data.get("provider", "imap")
    if provider not in PROVIDERS:
        raise ConfigError(
            _("[{name}] {key} must be one of {choices}, not {value!r}").format(
                name="source", key="provider", choices=", ".join(PROVIDERS), value=provider
            )
        )
    return provider, {**SERVERS.get(provider, {}), **data}


def read_auth(src: Table, provider: str) -> tuple[str, SourceOAuth | None]:
    """[source] auth and, with OAuth, the token file and sign-in settings. Raises ConfigError for a key that
    does not go with the chosen login (a password with OAuth, a token file with a password)."""
    src.used.add("provider")
    auth: str = src.str("auth", "password", choices=AUTH_MODES)
    if auth == "password":
        for key in OAUTH_KEYS:
            if key in src.data:
                raise ConfigError(
                    _('[source] {key} is for auth = "xoauth2" or "oauthbearer", not a password login').format(key=key)
                )
        return auth, None
    for key in ("password_file", "password_env"):
        if key in src.data:
            raise ConfigError(
                _(
                    "[source] {key} is not used with auth = {auth!r}: the login uses the token in [source] token_file"
                ).format(key=key, auth=auth)
            )
    token_file = src.path("token_file", DEFAULT_TOKEN_FILE)
    client_id = src.str("client_id")
    client_secrets = src.path("client_secrets")
    tenant = src.str("tenant")
    authority = src.str("authority")
    if tenant and authority:
        raise ConfigError(_("[source] set tenant or authority, not both (authority holds the tenant)"))
    if provider != "microsoft" and (tenant or authority):
        raise ConfigError(_('[source] tenant and authority are for provider = "microsoft"'))
    if provider == "microsoft":
        authority = (authority or f"{MICROSOFT_LOGIN}/{tenant or MICROSOFT_TENANT}").rstrip("/")
        if not authority.startswith("https://") or authority.count("/") < 3:
            raise ConfigError(
                _("[source] authority must be an https address with the tenant, like {example}, not {value!r}").format(
                    example=f"{MICROSOFT_LOGIN}/{MICROSOFT_TENANT}", value=authority
                )
            )
    scopes = MICROSOFT_SCOPES if provider == "microsoft" else GOOGLE_SCOPES if provider == "google" else ()
    secret_file, key_file = _app_credentials(src, provider, client_id, tenant or authority)
    if secret_file is not None:
        scopes = MICROSOFT_APP_SCOPES
    oauth = SourceOAuth(
        token_file=token_file,
        provider=provider,
        scopes=scopes,
        client_id=client_id,
        authority=authority,
        client_secrets=client_secrets,
        client_secret_file=secret_file,
        service_account_file=key_file,
    )
    return auth, oauth


def _app_credentials(src: Table, provider: str, client_id: str | None, tenant: str | None) -> tuple[Any, Any]:
    """[source] client_secret_file (Microsoft app-only) and service_account_file (Google): each only with its
    provider, client_secret_file only with client_id and a tenant of one organisation."""
    secret_file, key_file = src.path("client_secret_file"), src.path("service_account_file")
    if secret_file is not None and (provider != "microsoft" or not client_id or not tenant):
        raise ConfigError(
            _('[source] client_secret_file (app-only access) needs provider = "microsoft", client_id and tenant')
        )
    if key_file is not None and provider != "google":
        raise ConfigError(_('[source] service_account_file needs provider = "google"'))
    shared = tenant and tenant.rstrip("/").rsplit("/", 1)[-1] in ("organizations", "common", "consumers")
    if shared and secret_file is not None:
        raise ConfigError(_("[source] tenant: app-only access needs the organisation's own tenant (its domain)"))
    return secret_file, key_file
