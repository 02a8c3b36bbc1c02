"""A Gmail or Workspace account as the source ([source] provider = "google"): the same consent flows as
`gimport auth` (browser, loopback over SSH, paste), for the one scope Gmail's IMAP accepts. The grant is
saved as the source's token file (gimport.backends.imap.oauth), which google-auth's JSON already is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

from gimport.backends.google.oauth import Paragraph, as_is, obtain_credentials
from gimport.backends.google.tokens import load_client_config
from gimport.config.settings import SourceOAuth


def mail_grant(
    oauth: SourceOAuth,
    client_secrets: Path,
    *,
    mode: str,
    port: int | None,
    timeout: float,
    out: TextIO,
    paragraph: Paragraph = as_is,
) -> dict[str, Any]:
    """Consent for `oauth.scopes` with the OAuth client of [source] client_secrets (else `client_secrets`,
    [gmail]'s); the authorized-user JSON of the grant. Raises as obtain_credentials."""
    client_config = load_client_config(oauth.client_secrets or client_secrets)
    creds = obtain_credentials(
        client_config, mode=mode, port=port, timeout=timeout, out=out, scopes=oauth.scopes, paragraph=paragraph
    )
    data: dict[str, Any] = json.loads(creds.to_json())
    return data
