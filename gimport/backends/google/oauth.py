"""Gmail authorization: scopes, consent, the token file, refresh, revoke. The only module that imports
google_auth_oauthlib.

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
browser picks for "localhost" reaches it. The code is exchanged with ``flow.fetch_token(code=...)`` after
gimport has checked ``state`` and ``error`` itself, so no http->https rewriting of the redirect is needed.

Endpoints: auth_uri and token_uri come from the client secrets file (Google's, or an emulator's in tests).
The revoke endpoint is derived from the token_uri saved in the token file: Google's
``https://oauth2.googleapis.com/revoke`` for any Google token endpoint, else ``<origin of token_uri>/revoke``.

The token file is a google-auth "authorized_user" JSON, created with mode 0600 (never readable by
others, not even briefly) and rewritten the same way whenever the access token is refreshed.
"""

from __future__ import annotations

import errno
import getpass
import http.server
import json
import os
import queue
import socket
import socketserver
import sys
import threading
import urllib.parse
import webbrowser
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

import google.auth.exceptions
from google.oauth2.credentials import Credentials

from gimport.errors import AuthError, ConfigError, GmailError
from gimport.i18n import N_, _

# The least gimport needs, in one place:
SCOPES = (
    "https://www.googleapis.com/auth/gmail.insert",  # users.messages.import
    "https://www.googleapis.com/auth/gmail.labels",  # list/create labels, label counts for verify
    "https://www.googleapis.com/auth/gmail.settings.basic",  # cleanup: IMAP/forwarding; sendAs: who am I
)
# Opt in (gimport auth --exact-verify, gimport admin verify --exact): message and label ids, never
# contents, so that verify --exact can prove each imported message is in Gmail. A restricted scope.
EXACT_VERIFY_SCOPE = "https://www.googleapis.com/auth/gmail.metadata"
# any of these allows users.messages.list (Gmail's discovery document)
LIST_SCOPES = frozenset(
    {
        EXACT_VERIFY_SCOPE,
        "https://mail.google.com/",
        "https://www.googleapis.com/auth/gmail.modify",
        "https://www.googleapis.com/auth/gmail.readonly",
    }
)
_SCOPE_PURPOSE = {
    SCOPES[0]: N_("add messages to your mailbox"),
    SCOPES[1]: N_("manage labels"),
    SCOPES[2]: N_("read and change basic settings"),
    EXACT_VERIFY_SCOPE: N_("view message ids and labels (verify --exact)"),
}


def scopes_for(exact_verify: bool = False) -> tuple[str, ...]:
    """The scopes gimport asks for: SCOPES, plus the metadata scope for exact verification."""
    return (*SCOPES, EXACT_VERIFY_SCOPE) if exact_verify else SCOPES


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


DEFAULT_PORT = 8765  # fixed, so that `ssh -L 8765:localhost:8765` can be given in advance
DEFAULT_TIMEOUT = 300.0
MODES = ("auto", "no-browser", "paste")
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
GOOGLE_REVOKE_URI = "https://oauth2.googleapis.com/revoke"
_GOOGLE_OAUTH_HOSTS = frozenset({"oauth2.googleapis.com", "accounts.google.com", "www.googleapis.com"})
_NETWORK_TIMEOUT = 60.0
CREATE_CLIENT_HOWTO = N_(
    "create one in the Google Cloud console: APIs & Services > Credentials > Create credentials >"
    " OAuth client ID > Application type: Desktop app > Download JSON (see docs/auth.md)"
)
PERMISSIONS_PAGE = "https://myaccount.google.com/permissions"


# ------------------------------------------------------------------------------------------ token file


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
                super().refresh(request)
            except google.auth.exceptions.RefreshError as exc:
                # google-auth's message is a tuple repr with the whole response; keep "invalid_grant: ..."
                raise google.auth.exceptions.RefreshError(
                    f"{exc.args[0] if exc.args else exc}".split(",")[0], retryable=exc.retryable
                ) from exc
            if self._token_path is not None:
                write_private(self._token_path, self.to_json())


def load_credentials(token_file: Path) -> PersistingCredentials:
    """Read the token file written by `gimport auth`. Raises AuthError with what to do."""
    token_file = Path(token_file)
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
        creds = PersistingCredentials.from_authorized_user_info(info)
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


def browser_available(env: Mapping[str, str] | None = None, platform: str | None = None) -> bool:
    """Whether opening a browser on this machine can work: not over SSH, and on Linux/BSD a display."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if any(env.get(k) for k in ("SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY")):
        return False
    if platform.startswith(("win", "darwin", "cygwin")):
        return True
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


# -------------------------------------------------------------------------------- loopback receiver

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>gimport</title></head>
<body style="font-family: sans-serif; margin: 3em"><h1>gimport</h1><p>{}</p></body></html>"""


class _RedirectHandler(http.server.BaseHTTPRequestHandler):
    server: _LoopbackServer
    timeout = 15  # a connection that sends nothing (a browser preconnect) must not live forever

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        url = urllib.parse.urlsplit(self.path)
        params = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        if url.path != "/" or not ("code" in params or "error" in params):
            self._page(404, _("Nothing here: gimport is waiting for Google's answer."))
            return
        if "error" in params:
            self._page(200, _("Access was not granted. You can close this tab; the terminal says what to do next."))
        else:
            self._page(200, _("Google's answer reached gimport. You can close this tab and go back to the terminal."))
        # only after the page is written: the caller may close the server as soon as it has the answer
        self.server.answers.put(params)

    def _page(self, status: int, text: str) -> None:
        body = _PAGE.format(text).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


class _LoopbackServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    # SO_REUSEADDR lets a port in TIME_WAIT be reused but never one with a listener (Linux, macOS); on
    # Windows it would let two servers share the port, so there the default exclusive bind is kept.
    allow_reuse_address = sys.platform != "win32"

    def __init__(self, address: tuple[str, int], answers: queue.Queue[dict[str, str]]) -> None:
        self.answers = answers
        super().__init__(address, _RedirectHandler)


class _LoopbackServer6(_LoopbackServer):
    address_family = socket.AF_INET6


class _Receiver:
    """Listens on localhost:`port` (127.0.0.1 and ::1) until closed; answers arrive on `answers`."""

    def __init__(self, port: int) -> None:
        if not 0 <= port <= 65535:
            raise ConfigError(
                _("--port must be between 1 and 65535 (or 0 for any free port), not {port}").format(port=port)
            )
        self.answers: queue.Queue[dict[str, str]] = queue.Queue()
        self._servers: list[_LoopbackServer] = []
        for _attempt in range(5):  # with port 0, ::1 may hold the port 127.0.0.1 got: pick again
            try:
                self._bind(port)
                break
            except OSError as exc:
                self._close_servers()
                if exc.errno != errno.EADDRINUSE or port != 0:
                    why = (
                        _("in use: another 'gimport auth' running?") if exc.errno == errno.EADDRINUSE else exc.strerror
                    )
                    raise ConfigError(
                        _(
                            "cannot listen on localhost port {port} for Google's answer ({why}): choose another"
                            " port with --port, e.g. --port {other} (and use that number in ssh -L)"
                        ).format(port=port, why=why, other=port + 1 if 0 < port < 65535 else DEFAULT_PORT + 1)
                    ) from None
        else:
            raise ConfigError(_("cannot find a free localhost port: pass one with --port"))
        self._threads = [
            threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="gimport-auth")
            for s in self._servers
        ]
        for t in self._threads:
            t.start()

    def _bind(self, port: int) -> None:
        v4 = _LoopbackServer(("127.0.0.1", port), self.answers)
        self._servers.append(v4)
        self.port = v4.server_address[1]
        if socket.has_ipv6:
            try:
                self._servers.append(_LoopbackServer6(("::1", self.port), self.answers))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise
                # no IPv6 loopback here: browsers then use 127.0.0.1

    def wait(self, timeout: float) -> dict[str, str]:
        try:
            return self.answers.get(timeout=timeout)
        except queue.Empty:
            raise AuthError(
                _(
                    "no answer from the browser within {timeout:g} s (--timeout to wait longer, --paste if the"
                    " browser cannot reach this machine)"
                ).format(timeout=timeout),
                hint="",
            ) from None

    def _close_servers(self) -> None:
        for s in self._servers:
            s.server_close()
        self._servers = []

    def close(self) -> None:
        for s in self._servers:
            s.shutdown()
        for t in self._threads:
            t.join()
        self._close_servers()


# --------------------------------------------------------------------------------------- the flow


def _new_flow(client_config: dict[str, Any], redirect_uri: str, scopes: tuple[str, ...] = SCOPES) -> Any:
    from google_auth_oauthlib.flow import InstalledAppFlow

    flow = InstalledAppFlow.from_client_config(client_config, scopes=list(scopes))
    flow.redirect_uri = redirect_uri
    return flow


def _authorization_url(flow: Any) -> tuple[str, str]:
    from oauthlib.oauth2 import InsecureTransportError

    try:
        # prompt=consent: Google then always returns a refresh token, also for an account that consented before
        return flow.authorization_url(access_type="offline", prompt="consent")
    except InsecureTransportError:
        raise ConfigError(
            _("auth_uri {client_config} in [gmail] client_secrets must start with https://").format(
                client_config=flow.client_config["auth_uri"]
            )
        ) from None


def _check_answer(params: Mapping[str, str], state: str) -> str:
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

    try:
        requests.post(revoke_uri_for(token_uri), data={"token": token}, timeout=_NETWORK_TIMEOUT)
    except requests.RequestException:
        pass


def _fetch_token(flow: Any, code: str) -> Credentials:
    """Exchange the code (PKCE verifier included) for tokens; insist on every scope asked for."""
    import requests
    from oauthlib.oauth2 import InsecureTransportError, OAuth2Error

    token_uri = flow.client_config["token_uri"]
    try:
        flow.fetch_token(code=code, timeout=_NETWORK_TIMEOUT)
    except Warning as w:
        # oauthlib raises Warning when the granted scopes differ from the requested ones: the user unticked
        # a permission on Google's consent screen (granular consent)
        if not hasattr(w, "new_scope"):
            raise
        granted = set(w.new_scope or ())
        missing = [s for s in flow.oauth2session.scope or SCOPES if s not in granted]
        if missing:
            _revoke_quietly(token_uri, w.token.get("refresh_token") or w.token.get("access_token"))
            what = ", ".join(f"{s.rsplit('/', 1)[-1]} ({_(_SCOPE_PURPOSE[s])})" for s in missing)
            raise AuthError(
                _(
                    "gimport was not given every permission it needs (missing: {what}): run 'gimport auth' again"
                    " and tick every box on Google's consent screen"
                ).format(what=what)
            ) from None
        flow.oauth2session.token = w.token  # more than asked for (earlier grants): fine
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
    creds = flow.credentials
    if not creds.refresh_token:
        raise AuthError(_("the token endpoint {token_uri} returned no refresh token").format(token_uri=token_uri))
    return creds


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


def _loopback_flow(
    client_config: dict[str, Any],
    *,
    use_browser: bool,
    port: int,
    timeout: float,
    out: TextIO,
    open_browser: Callable[[str], bool],
    scopes: tuple[str, ...] = SCOPES,
) -> Credentials:
    receiver = _Receiver(port)
    try:
        flow = _new_flow(client_config, f"http://localhost:{receiver.port}/", scopes)
        url, state = _authorization_url(flow)
        opened = False
        if use_browser:
            _print(out, _("Opening your browser to authorize gimport. If it does not open, visit this address:"))
            _print(out, f"\n    {url}\n")
            try:
                opened = bool(open_browser(url))
            except webbrowser.Error:
                opened = False
            if not opened:
                _print(out, _("(No browser could be started here: open the address above yourself.)"))
        if not opened:
            if not use_browser:
                _print(out, _("Open this address in a web browser and sign in with the Gmail account to import into:"))
                _print(out, f"\n    {url}\n")
            p = receiver.port
            _print(
                out,
                _(
                    "After you allow access, Google sends the browser to http://localhost:{port}/ where gimport\n"
                    "is waiting. If the browser runs on another computer (an SSH session), forward that port\n"
                    "first: on the computer with the browser, run this in a new terminal and keep it open:"
                ).format(port=p),
            )
            _print(out, f"\n    ssh -N -L {p}:localhost:{p} {_ssh_target()}\n")  # i18n-ok: a command to copy
            _print(
                out,
                _(
                    "(use the host name you log in to this machine with). Or press Ctrl-C and run\n"
                    "'gimport auth --paste' to copy the final address back by hand instead."
                ),
            )
        _print(out, _("Waiting up to {timeout:g} s for Google's answer (Ctrl-C to stop)...").format(timeout=timeout))
        params = receiver.wait(timeout)
    finally:
        receiver.close()
    return _fetch_token(flow, _check_answer(params, state))


def _parse_pasted(text: str, redirect_uri: str) -> dict[str, str]:
    text = text.strip().strip("'\"<>").strip()
    if not text:
        raise AuthError(_("nothing was pasted"), hint=_("run 'gimport auth --paste' again and paste the whole address"))
    parts = urllib.parse.urlsplit(text)
    params = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    if parts.scheme not in ("http", "https") or "code" not in params and "error" not in params:
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
    port: int,
    out: TextIO,
    read_line: Callable[[str], str],
    scopes: tuple[str, ...] = SCOPES,
) -> Credentials:
    port = port or DEFAULT_PORT
    if not 0 < port <= 65535:
        raise ConfigError(_("--port must be between 1 and 65535, not {port}").format(port=port))
    redirect_uri = f"http://localhost:{port}/"
    flow = _new_flow(client_config, redirect_uri, scopes)
    url, state = _authorization_url(flow)
    _print(
        out,
        _(
            "1. Open this address in a web browser (on any computer) and sign in with the Gmail account\n"
            "   to import into:"
        ),
    )
    _print(out, f"\n    {url}\n")
    _print(
        out,
        _(
            "2. After you allow access, the browser goes to an address starting with {redirect_uri}\n"
            '   and shows an error such as "This site can\'t be reached". That is expected: copy the\n'
            "   whole address from the browser's address bar.\n"
            "3. Paste it here and press Enter."
        ).format(redirect_uri=redirect_uri),
    )
    try:
        pasted = read_line(_("Address: "))
    except EOFError:
        pasted = ""
    params = _parse_pasted(pasted, redirect_uri)
    return _fetch_token(flow, _check_answer(params, state))


def obtain_credentials(
    client_config: dict[str, Any],
    *,
    mode: str = "auto",
    port: int = DEFAULT_PORT,
    timeout: float = DEFAULT_TIMEOUT,
    out: TextIO | None = None,
    read_line: Callable[[str], str] = input,
    open_browser: Callable[[str], bool] | None = None,
    env: Mapping[str, str] | None = None,
    scopes: tuple[str, ...] = SCOPES,
) -> Credentials:
    """Run the consent flow (PKCE) for `scopes` (SCOPES, or scopes_for(exact_verify=True)) and return
    credentials holding a refresh token.

    mode: "auto" (open a browser when this machine can show one, else as "no-browser"), "no-browser" (print
    the URL, wait on localhost:`port`), "paste" (print the URL, read the final redirect address with
    `read_line`). `port` 0 picks a free port (loopback modes). Raises ConfigError (port busy, bad client file)
    and AuthError (consent denied, timeout, a permission unticked, token endpoint refusal)."""
    out = sys.stdout if out is None else out
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")  # a bug, not a user error
    if not timeout > 0:
        raise ConfigError(_("--timeout must be more than 0 seconds, not {timeout:g}").format(timeout=timeout))
    if mode == "paste":
        return _paste_flow(client_config, port=port, out=out, read_line=read_line, scopes=scopes)
    use_browser = mode == "auto" and browser_available(env)
    return _loopback_flow(
        client_config,
        use_browser=use_browser,
        port=port,
        timeout=timeout,
        out=out,
        open_browser=open_browser or webbrowser.open,
        scopes=scopes,
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
    gmail: Any,
    *,
    mode: str = "auto",
    port: int = DEFAULT_PORT,
    timeout: float = DEFAULT_TIMEOUT,
    out: TextIO | None = None,
    read_line: Callable[[str], str] = input,
    open_browser: Callable[[str], bool] | None = None,
    env: Mapping[str, str] | None = None,
    exact_verify: bool = False,
) -> str:
    """`gimport auth`: consent, save the token (0600), print and return the account's primary address.
    With `exact_verify`, the grant also holds the metadata scope (gimport verify --exact).

    `gmail` is config.GmailSettings (client_secrets, token_file, user, api_url). Warns on `out` when the
    account is not `gmail.user`. Raises ConfigError, AuthError or GmailError (see obtain_credentials)."""
    from gimport.backends.google.gmail import GmailClient, MessageRejected, RetryableError

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
        scopes=scopes_for(exact_verify),
    )
    try:
        write_private(gmail.token_file, creds.to_json())
    except OSError as exc:
        raise ConfigError(
            _("cannot write [gmail] token_file {token_file}: {strerror}").format(
                token_file=gmail.token_file, strerror=exc.strerror
            )
        ) from None
    try:
        address = GmailClient(load_credentials(gmail.token_file), api_url=gmail.api_url).primary_address()
    except (RetryableError, MessageRejected, GmailError) as exc:
        raise GmailError(
            _(
                "authorized and saved the token to {token_file}, but Gmail did not say which account it is for: {exc}"
            ).format(token_file=gmail.token_file, exc=exc)
        ) from None
    _print(out, _("Authorized gimport for {address}").format(address=address))
    _print(out, _("Token saved to {token_file} (readable only by you).").format(token_file=gmail.token_file))
    if exact_verify:
        _print(out, _("The token may also list message and label ids (never contents): 'gimport verify --exact'."))
    if gmail.user and address.lower() != gmail.user.lower():
        _print(
            out,
            _(
                "Warning: [gmail] user is {user}, but you signed in as {address}; 'gimport run' will refuse this"
                " token. Run 'gimport auth' again and choose {user} in the browser (a private window helps), or"
                " change [gmail] user."
            ).format(user=gmail.user, address=address),
        )
    return address


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
        resp = requests.post(uri, data={"token": token}, timeout=_NETWORK_TIMEOUT)
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
    try:
        error = str(resp.json().get("error", ""))
    except ValueError:
        pass
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
