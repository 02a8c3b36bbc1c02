"""`gimport auth --source`: sign in to the old mail server's provider and save [source] token_file (0600).

Microsoft 365 signs in with the device-code flow (gimport.backends.microsoft.device, MSAL), Google with the
consent flows of `gimport auth` (gimport.backends.google.source). A plain imap provider has no sign-in that
gimport could know: its token file is made with the server's own tools, in the same format.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from gimport.backends.imap.oauth import write_token_file
from gimport.config.settings import Settings
from gimport.errors import ConfigError
from gimport.i18n import _


def sign_in(
    settings: Settings,
    *,
    mode: str,
    port: int | None,
    timeout: float,
    out: TextIO,
    paragraph: Callable[[str, TextIO, str], str],
) -> Path:
    """Run the provider's sign-in and save the token file; returns its path. Raises ConfigError (no OAuth
    configured, an unknown provider's sign-in, a file that cannot be written) and AuthError (sign-in failed)."""
    oauth = settings.source.oauth
    if oauth is None:
        raise ConfigError(
            _("[source] logs in with a password: 'gimport auth --source' is for OAuth"),
            hint=_('set [source] provider = "microsoft" or "google" (or auth = "xoauth2") first'),
        )
    if oauth.provider == "microsoft":
        from gimport.backends.microsoft.device import device_code_grant

        data = device_code_grant(oauth, out=out, timeout=timeout, paragraph=paragraph)
    elif oauth.provider == "google":
        from gimport.backends.google.source import mail_grant

        data = mail_grant(
            oauth, settings.gmail.client_secrets, mode=mode, port=port, timeout=timeout, out=out, paragraph=paragraph
        )
    else:
        raise ConfigError(
            _('[source] provider = "imap": gimport knows no sign-in for {host}').format(host=settings.source.host),
            hint=_(
                "get a token from the server's own tools and write it to [source] token_file (token, refresh_token,"
                ' token_uri, client_id, client_secret, expiry), or set provider = "microsoft" or "google"'
            ),
        )
    try:
        write_token_file(oauth.token_file, data)
    except OSError as exc:
        raise ConfigError(
            _("cannot write [source] token_file {path}: {strerror}").format(
                path=oauth.token_file, strerror=exc.strerror
            )
        ) from None
    print(_("Token saved to {path} (readable only by you).").format(path=oauth.token_file), file=out)
    print(_("Next: 'gimport check' logs in to {host} with it.").format(host=settings.source.host), file=out)
    return oauth.token_file
