"""Gmail authorization, `gimport auth`: the consent flows at the terminal, and saving the token.

`gimport auth` runs Google's installed-app flow with PKCE (google_auth_oauthlib.flow.InstalledAppFlow) for the
"Desktop app" OAuth client named by ``[gmail] client_secrets``. Google's answer (``?state=..&code=..``) comes
back through the browser to ``http://localhost:PORT/`` in one of three ways:

- desktop: gimport opens the browser and waits on the loopback port;
- ``--no-browser`` (also chosen when there is no display or when running over SSH): gimport prints the URL and
  waits on a fixed port (8765), so that ``ssh -N -L 8765:localhost:8765 host`` carries the answer back;
- ``--paste``: nothing listens; the user copies the final ``http://localhost:8765/?...code=...`` address from
  the browser's address bar and pastes it into the terminal.

Out-of-band flows are gone (Google blocked them in 2023).

The loopback receiver is gimport's own (not ``InstalledAppFlow.run_local_server``): it writes to a given
stream instead of stdout, keeps waiting when the browser asks for something else (``/favicon.ico``), shows an
honest page when consent was denied, and listens on both 127.0.0.1 and ::1 so that whichever address the
browser picks for "localhost" reaches it.

Endpoints: auth_uri and token_uri come from the client secrets file (Google's, or an emulator's in tests).
The revoke endpoint is derived from the token_uri saved in the token file: Google's
``https://oauth2.googleapis.com/revoke`` for any Google token endpoint, else ``<origin of token_uri>/revoke``.

The token file, the client file and revoking are gimport.backends.google.tokens; the listener is
gimport.backends.google.loopback; building the flow, checking Google's answer and trading the code for
tokens is gimport.backends.google.exchange, the only module that imports google_auth_oauthlib.
"""

from __future__ import annotations

import getpass
import os
import socket
import sys
import urllib.parse
import webbrowser
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

from google.oauth2.credentials import Credentials

from gimport.backends.google.exchange import authorization_url, check_answer, fetch_token, new_flow
from gimport.backends.google.loopback import DEFAULT_PORT, Receiver
from gimport.backends.google.scopes import (  # noqa: F401 - re-exported: `gimport auth` is this module
    EXACT_VERIFY_SCOPE,
    LIST_SCOPES,
    SCOPES,
    scopes_for,
)
from gimport.backends.google.tokens import (  # noqa: F401 - re-exported: `gimport auth` is this module
    GOOGLE_REVOKE_URI,
    GOOGLE_TOKEN_URI,
    PERMISSIONS_PAGE,
    granted_scopes,
    load_client_config,
    load_credentials,
    revoke,
    revoke_uri_for,
    write_private,
)
from gimport.config.settings import GmailSettings
from gimport.errors import AuthError, ConfigError, GmailError, MessageRejected, RetryableError
from gimport.i18n import _

DEFAULT_TIMEOUT = 300.0
MODES = ("auto", "no-browser", "paste")


def browser_available(env: Mapping[str, str] | None = None, platform: str | None = None) -> bool:
    """Whether opening a browser on this machine can work: not over SSH, and on Linux/BSD a display."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if any(env.get(k) for k in ("SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY")):
        return False
    if platform.startswith(("win", "darwin", "cygwin")):
        return True
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


# -------------------------------------------------------------------- the consent at the terminal


def _ssh_target() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in this environment is fine
        user = ""
    host = socket.gethostname() or "this-host"
    return f"{user}@{host}" if user else host


def _print(out: TextIO, text: str = "") -> None:
    out.write(text + "\n")
    out.flush()


# How a paragraph meets the person: (text, the stream, the indent of its continuation lines) -> the text to
# print. Fitting text to a terminal is the command line's business, not a backend's: `gimport auth` passes
# gimport.render's wrapping; called directly, the flows print each paragraph as it is, on one line.
Paragraph = Callable[[str, TextIO, str], str]


def as_is(text: str, out: TextIO, indent: str) -> str:
    """The default Paragraph: `text` unchanged."""
    return text


def _say(out: TextIO, text: str, paragraph: Paragraph) -> None:
    """A paragraph for the person at the terminal, through `paragraph` (the numbered steps of --paste indent
    their continuation lines under the text)."""
    _print(out, paragraph(text, out, "   " if text[:2] in ("1.", "2.", "3.") else ""))


def _loopback_flow(
    client_config: dict[str, Any],
    *,
    use_browser: bool,
    port: int | None,
    timeout: float,
    out: TextIO,
    open_browser: Callable[[str], bool],
    scopes: tuple[str, ...] = SCOPES,
    paragraph: Paragraph = as_is,
) -> Credentials:
    receiver = Receiver(port)
    try:
        flow = new_flow(client_config, f"http://localhost:{receiver.port}/", scopes)
        url, state = authorization_url(flow)
        opened = False
        if use_browser:
            _say(
                out, _("Opening your browser to authorize gimport. If it does not open, visit this address:"), paragraph
            )
            _print(out)
            _print(out, url)  # unwrapped, alone on its line: a terminal wraps it, copying keeps it whole
            _print(out)
            try:
                opened = bool(open_browser(url))
            except webbrowser.Error:
                opened = False
            if not opened:
                _say(out, _("(No browser could be started here: open the address above yourself.)"), paragraph)
        if not opened:
            if not use_browser:
                _say(
                    out,
                    _("Open this address in a web browser and sign in with the Gmail account to import into:"),
                    paragraph,
                )
                _print(out)
                _print(out, url)  # unwrapped, alone on its line: a terminal wraps it, copying keeps it whole
                _print(out)
            p = receiver.port
            if port is None and p != DEFAULT_PORT:
                _say(
                    out,
                    _("(Port {default} is taken on this machine, so gimport listens on {port} this time.)").format(
                        default=DEFAULT_PORT, port=p
                    ),
                    paragraph,
                )
            _say(
                out,
                _(
                    "After you allow access, Google sends the browser to http://localhost:{port}/ where gimport is"
                    " waiting. If the browser runs on another computer (an SSH session), forward that port first: on"
                    " the computer with the browser, run this in a new terminal and keep it open:"
                ).format(port=p),
                paragraph,
            )
            _print(out, f"\n    ssh -N -L {p}:localhost:{p} {_ssh_target()}\n")  # i18n-ok: a command to copy
            _say(
                out,
                _(
                    "(use the host name you log in to this machine with). Or press Ctrl-C and run 'gimport auth"
                    " --paste' to copy the final address back by hand instead."
                ),
                paragraph,
            )
        _say(
            out,
            _("Waiting up to {timeout:g} s for Google's answer (Ctrl-C to stop)...").format(timeout=timeout),
            paragraph,
        )
        params = receiver.wait(timeout)
    finally:
        receiver.close()
    return fetch_token(flow, check_answer(params, state))


def _parse_pasted(text: str, redirect_uri: str) -> dict[str, str]:
    text = text.strip().strip("'\"<>").strip()
    if not text:
        raise AuthError(_("nothing was pasted"), hint=_("run 'gimport auth --paste' again and paste the whole address"))
    parts = urllib.parse.urlsplit(text)
    params = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    if parts.scheme not in ("http", "https") or ("code" not in params and "error" not in params):
        redirect_host = urllib.parse.urlsplit(redirect_uri).netloc
        raise AuthError(
            _(
                "that is not the address Google sent the browser to (it starts with http://{redirect_host}/ and"
                " holds code=...)"
            ).format(redirect_host=redirect_host),
            hint=_("run 'gimport auth --paste' again and copy the whole address from the address bar"),
        )
    return params


def _paste_flow(
    client_config: dict[str, Any],
    *,
    port: int | None,
    out: TextIO,
    read_line: Callable[[str], str],
    scopes: tuple[str, ...] = SCOPES,
    paragraph: Paragraph = as_is,
) -> Credentials:
    port = port or DEFAULT_PORT
    if not 0 < port <= 65535:
        raise ConfigError(_("--port must be between 1 and 65535, not {port}").format(port=port))
    redirect_uri = f"http://localhost:{port}/"
    flow = new_flow(client_config, redirect_uri, scopes)
    url, state = authorization_url(flow)
    _say(
        out,
        _("1. Open this address in a web browser (on any computer) and sign in with the Gmail account to import into:"),
        paragraph,
    )
    _print(out)
    _print(out, url)  # unwrapped, alone on its line
    _print(out)
    _say(
        out,
        _(
            "2. After you allow access, the browser goes to an address starting with {redirect_uri} and shows an"
            ' error such as "This site can\'t be reached". That is expected: copy the whole address from the'
            " browser's address bar."
        ).format(redirect_uri=redirect_uri),
        paragraph,
    )
    _say(out, _("3. Paste it here and press Enter."), paragraph)
    try:
        pasted = read_line(_("Address: "))
    except EOFError:
        pasted = ""
    params = _parse_pasted(pasted, redirect_uri)
    return fetch_token(flow, check_answer(params, state))


def obtain_credentials(
    client_config: dict[str, Any],
    *,
    mode: str = "auto",
    port: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    out: TextIO | None = None,
    read_line: Callable[[str], str] = input,
    open_browser: Callable[[str], bool] | None = None,
    env: Mapping[str, str] | None = None,
    scopes: tuple[str, ...] = SCOPES,
    paragraph: Paragraph = as_is,
) -> Credentials:
    """Run the consent flow (PKCE) for `scopes` (SCOPES, or scopes_for(exact_verify=True)) and return
    credentials holding a refresh token.

    mode: "auto" (open a browser when this machine can show one, else as "no-browser"), "no-browser" (print
    the URL, wait on localhost:`port`), "paste" (print the URL, read the final redirect address with
    `read_line`). `port` 0 picks a free port (loopback modes). `paragraph` fits each paragraph of guidance to
    `out` (default: printed as it is). Raises ConfigError (port busy, bad client file)
    and AuthError (consent denied, timeout, a permission unticked, token endpoint refusal)."""
    out = sys.stdout if out is None else out
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")  # a bug, not a user error
    if not timeout > 0:
        raise ConfigError(_("--timeout must be more than 0 seconds, not {timeout:g}").format(timeout=timeout))
    if mode == "paste":
        return _paste_flow(client_config, port=port, out=out, read_line=read_line, scopes=scopes, paragraph=paragraph)
    use_browser = mode == "auto" and browser_available(env)
    return _loopback_flow(
        client_config,
        use_browser=use_browser,
        port=port,
        timeout=timeout,
        out=out,
        open_browser=open_browser or webbrowser.open,
        scopes=scopes,
        paragraph=paragraph,
    )


# ------------------------------------------------------------------------------------ the commands


def _check_token_dir(token_file: Path) -> None:
    directory = Path(token_file).parent
    if not directory.is_dir():
        raise ConfigError(
            _("[gmail] token_file {token_file}: the folder {directory} does not exist").format(
                token_file=token_file, directory=directory
            )
        )
    if not os.access(directory, os.W_OK):
        raise ConfigError(
            _("[gmail] token_file {token_file}: cannot write in {directory}").format(
                token_file=token_file, directory=directory
            )
        )


def authorize(
    gmail: GmailSettings,
    *,
    mode: str = "auto",
    port: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    out: TextIO | None = None,
    read_line: Callable[[str], str] = input,
    open_browser: Callable[[str], bool] | None = None,
    env: Mapping[str, str] | None = None,
    exact_verify: bool = False,
    label_copies: bool = False,
    paragraph: Paragraph = as_is,
) -> str:
    """`gimport auth`: consent, save the token (0600), print and return the account's primary address.
    With `exact_verify`, the grant also holds the metadata scope (gimport verify --exact); with
    `label_copies`, the modify scope (later copies: gimport.engine.copies.later_copy).

    `gmail`: client_secrets, token_file, user, api_url are read. Warns on `out` when the account is not
    `gmail.user`. `paragraph`: as in obtain_credentials. Raises ConfigError, AuthError or GmailError (see
    obtain_credentials)."""
    from gimport.backends.google.gmail import GmailClient

    out = sys.stdout if out is None else out
    client_config = load_client_config(gmail.client_secrets)
    _check_token_dir(gmail.token_file)
    creds = obtain_credentials(
        client_config,
        mode=mode,
        port=port,
        timeout=timeout,
        out=out,
        read_line=read_line,
        open_browser=open_browser,
        env=env,
        scopes=scopes_for(exact_verify, label_copies),
        paragraph=paragraph,
    )
    try:
        # which account, before anything is saved: a token for another account is never kept
        address = GmailClient(creds, api_url=gmail.api_url).primary_address()
    except (RetryableError, MessageRejected, GmailError) as exc:
        raise GmailError(
            _("authorized, but Gmail did not say which account it is for (nothing saved): {exc}").format(exc=exc)
        ) from None
    if gmail.user and address.lower() != gmail.user.lower():
        raise AuthError(
            _("you signed in as {address}, but [gmail] user is {user}: the token was not saved").format(
                address=address, user=gmail.user
            ),
            hint=_(
                "run 'gimport auth' again and choose {user} in the browser (a private window helps), or change"
                " [gmail] user"
            ).format(user=gmail.user),
        )
    try:
        write_private(gmail.token_file, creds.to_json())
    except OSError as exc:
        raise ConfigError(
            _("cannot write [gmail] token_file {token_file}: {strerror}").format(
                token_file=gmail.token_file, strerror=exc.strerror
            )
        ) from None
    _print(out, _("Authorized gimport for {address}").format(address=address))
    _print(out, _("Token saved to {token_file} (readable only by you).").format(token_file=gmail.token_file))
    if exact_verify:
        _print(out, _("The token may also list message and label ids (never contents): 'gimport verify --exact'."))
    if label_copies:
        _print(out, _("The token may also add labels to imported messages: a copy filed later is labelled, not sent."))
    return address
