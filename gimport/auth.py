"""Gmail authorization: scopes, the token file, refresh. The only module that imports google_auth_oauthlib.

The token file is a google-auth "authorized_user" JSON, created with mode 0600 (never readable by
others, not even briefly) and rewritten the same way whenever the access token is refreshed.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import google.auth.exceptions
from google.oauth2.credentials import Credentials

from gimport.errors import AuthError

# The least gimport needs, in one place:
SCOPES = (
    "https://www.googleapis.com/auth/gmail.insert",  # users.messages.import
    "https://www.googleapis.com/auth/gmail.labels",  # list/create labels, label counts for verify
    "https://www.googleapis.com/auth/gmail.settings.basic",  # cleanup: IMAP/forwarding; sendAs: who am I
)


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
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class PersistingCredentials(Credentials):
    """Credentials that write themselves back to the token file after every refresh."""

    _token_path: Path | None = None
    _refresh_lock = threading.Lock()

    def refresh(self, request: Any) -> None:
        with self._refresh_lock:
            try:
                super().refresh(request)
            except google.auth.exceptions.RefreshError as exc:
                raise google.auth.exceptions.RefreshError(f"{exc.args[0] if exc.args else exc}".split(",")[0]) from exc
            if self._token_path is not None:
                write_private(self._token_path, self.to_json())


def load_credentials(token_file: Path) -> PersistingCredentials:
    """Read the token file written by `gimport auth`. Raises AuthError with what to do."""
    token_file = Path(token_file)
    try:
        info = json.loads(token_file.read_text("utf-8"))
    except FileNotFoundError:
        raise AuthError(f"no Gmail token at {token_file}: run 'gimport auth' first") from None
    except (OSError, ValueError) as exc:
        raise AuthError(f"cannot read the Gmail token {token_file} ({exc}): run 'gimport auth' again") from None
    if not isinstance(info, dict) or not info.get("refresh_token"):
        raise AuthError(f"{token_file} holds no refresh token: run 'gimport auth' again")
    try:
        creds = PersistingCredentials.from_authorized_user_info(info)
    except ValueError as exc:
        raise AuthError(f"{token_file} is not a gimport token ({exc}): run 'gimport auth' again") from None
    if info.get("token_uri"):
        # from_authorized_user_info forgets the saved token_uri; honour it
        creds._token_uri = info["token_uri"]
    creds._token_path = token_file
    return creds
