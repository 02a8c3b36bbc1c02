"""`gimport auth` end to end: the real google-auth-oauthlib flow (PKCE) against the emulator's OAuth endpoints,
the loopback receiver reached through urllib like a browser would, the real Gmail client for the identity.

A "browser" here is urllib without proxies: it GETs the printed authorization URL, and the emulator's 302 sends
it on to gimport's loopback port (or, for --paste, the test stops at the 302 and pastes its Location back).
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import stat
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import google.auth.exceptions
import google.auth.transport.requests
import google.oauth2.credentials
import pytest

from gimport.backends.google import oauth as auth
from gimport.backends.google.gmail import GmailClient
from gimport.backends.google.oauth import SCOPES, load_credentials, write_private
from gimport.cli import main
from gimport.config.load import load_settings
from gimport.errors import AuthError, ConfigError, GmailError
from tests.rig.gmail_emulator import GmailEmulator

EMAIL = "alice@example.ac.jp"
AUTH_URL = re.compile(r"(http://\S+/o/oauth2/auth\?\S+)")
WAIT = 10.0  # generous deadline for conditions that normally hold within milliseconds

# ------------------------------------------------------------------------------------------ helpers


class Terminal(io.TextIOBase):
    """A thread-safe output stream that another thread can wait on."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[str] = []
        self._cond = threading.Condition()

    def write(self, s: str) -> int:
        with self._cond:
            self._parts.append(s)
            self._cond.notify_all()
        return len(s)

    @property
    def text(self) -> str:
        with self._cond:
            return "".join(self._parts)

    def wait_for(self, pattern: re.Pattern[str] | str, timeout: float = WAIT) -> re.Match[str]:
        found: list[re.Match[str]] = []

        def seen() -> bool:
            m = re.search(pattern, "".join(self._parts))
            if m:
                found.append(m)
            return bool(m)

        with self._cond:
            if not self._cond.wait_for(seen, timeout):
                raise AssertionError(f"{pattern!r} never printed; got:\n{''.join(self._parts)}")
        return found[0]


_BROWSER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class _StopAtRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_BROWSER_NO_FOLLOW = urllib.request.build_opener(urllib.request.ProxyHandler({}), _StopAtRedirect())


def browse(url: str) -> tuple[int, str]:
    """GET like a browser (following redirects); (status, body)."""
    try:
        with _BROWSER.open(url, timeout=WAIT) as resp:
            return resp.status, resp.read().decode("utf-8")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8")


def redirect_target(url: str) -> str:
    """Where the authorization server sends the browser (the address a --paste user copies)."""
    with pytest.raises(urllib.error.HTTPError) as info:
        _BROWSER_NO_FOLLOW.open(url, timeout=WAIT)
    assert info.value.code == 302
    return info.value.headers["Location"]


class Consent(threading.Thread):
    """The user at the browser: waits for the printed URL, optionally edits it, opens it.

    `before(term)` runs first (a stray request); `visit(term, url)` replaces opening the URL."""

    def __init__(self, term: Terminal, edit=None, before=None, visit=None) -> None:
        super().__init__(daemon=True)
        self.term, self.edit, self.before = term, edit, before
        self.visit = visit or (lambda _term, url: browse(url))
        self.page: tuple[int, str] | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            url = self.term.wait_for(AUTH_URL).group(1)
            if self.before:
                self.before(self.term)
            self.page = self.visit(self.term, self.edit(url) if self.edit else url)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread by finish()
            self.error = exc

    def finish(self) -> tuple[int, str]:
        self.join(WAIT)
        assert not self.is_alive()
        if self.error:
            raise self.error
        assert self.page is not None
        return self.page


def loopback_port(term: Terminal) -> int:
    return int(term.wait_for(r"sends the browser to http://localhost:(\d+)/").group(1))


def file_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture
def emu():
    emulator = GmailEmulator()
    emulator.start()
    emulator.add_user(EMAIL)
    yield emulator
    emulator.stop()


@pytest.fixture
def env(monkeypatch, emu):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the emulator speaks http; tests only
    monkeypatch.setenv("GIMPORT_GMAIL_API_URL", emu.base_url)
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY", "BROWSER"):
        monkeypatch.delenv(var, raising=False)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    return emu


def write_config(directory: Path, emu: GmailEmulator, *, user: str | None = None) -> Path:
    write_private(directory / "credentials.json", json.dumps(emu.client_config()))
    text = '[gmail]\nclient_secrets = "credentials.json"\ntoken_file = "token.json"\n'
    if user:
        text += f'user = "{user}"\n'
    config = directory / "gimport.toml"
    config.write_text(text, encoding="utf-8")
    return config


@pytest.fixture
def config(tmp_path, env):
    return write_config(tmp_path, env)


@pytest.fixture
def gmail(config):
    return load_settings(config, need_source=False).gmail


def authorize_with_consent(gmail, *, edit=None, before=None, **kw):
    term = Terminal()
    consent = Consent(term, edit=edit, before=before)
    consent.start()
    try:
        address = auth.authorize(gmail, mode="no-browser", port=kw.pop("port", 0), timeout=WAIT, out=term, **kw)
    finally:
        consent.join(WAIT)
    return address, term, consent.finish()


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("gimport: ")
    return lines[0]


# ------------------------------------------------------------------------------------- the consent flow


def test_no_browser_flow_saves_a_private_token_and_prints_the_account(gmail, emu):
    old_umask = os.umask(0)  # the token must be 0600 by itself, whatever the umask
    try:
        address, term, page = authorize_with_consent(
            gmail, before=lambda t: browse(f"http://localhost:{loopback_port(t)}/favicon.ico")
        )
    finally:
        os.umask(old_umask)

    assert address == EMAIL
    assert f"Authorized gimport for {EMAIL}" in term.text
    assert page[0] == 200
    assert "reached gimport" in page[1]
    url = urllib.parse.urlsplit(AUTH_URL.search(term.text).group(1))
    query = urllib.parse.parse_qs(url.query)
    assert query["code_challenge_method"] == ["S256"]  # PKCE
    assert query["scope"][0].split() == list(SCOPES)
    assert query["access_type"] == ["offline"]
    assert query["prompt"] == ["consent"]  # Google then always returns a refresh token
    port = loopback_port(term)
    assert port != 0
    assert query["redirect_uri"] == [f"http://localhost:{port}/"]
    assert f"ssh -N -L {port}:localhost:{port} " in term.text  # the real port, ready to copy

    assert file_mode(gmail.token_file) == 0o600
    saved = json.loads(gmail.token_file.read_text())
    assert saved["refresh_token"].startswith("1//")
    assert saved["scopes"] == list(SCOPES)
    assert saved["token_uri"] == emu.client_config()["installed"]["token_uri"]
    assert emu.stats.requests["oauth.token"] == 1


def test_expired_access_token_is_refreshed_at_the_saved_token_uri_and_written_back(gmail, emu):
    authorize_with_consent(gmail)
    before = json.loads(gmail.token_file.read_text())
    creds = load_credentials(gmail.token_file)
    # a token file others can read is refused at load (anyone on a shared server could copy it); the rewrite after a refresh must still set
    # 0600 itself: loosen it after loading, as a careless `cp` would
    gmail.token_file.chmod(0o644)
    assert creds.token_uri == before["token_uri"]  # not Google's: from_authorized_user_info's reset is undone
    client = GmailClient(creds, api_url=gmail.api_url)
    client.list_labels()
    assert emu.stats.requests["oauth.token"] == 1  # the saved access token was still good
    assert emu.expire_access_tokens(EMAIL) >= 1

    labels = client.list_labels()  # 401 -> one refresh -> the same call again

    assert any(lbl["id"] == "INBOX" for lbl in labels)
    assert emu.stats.requests["oauth.token"] == 2
    after = json.loads(gmail.token_file.read_text())
    assert after["token"] != before["token"]
    assert after["token"] == creds.token
    assert after["refresh_token"] == before["refresh_token"]
    assert after["token_uri"] == before["token_uri"]
    assert file_mode(gmail.token_file) == 0o600
    client.get_imap()  # and the calls go on with the new token
    assert emu.stats.requests["oauth.token"] == 2


class _AnnouncingLock:
    """Wraps a lock; `waiting` is set once a thread is about to block on it."""

    def __init__(self, lock) -> None:
        self.lock, self.waiting = lock, threading.Event()

    def __enter__(self):
        self.waiting.set()
        return self.lock.__enter__()

    def __exit__(self, *exc):
        return self.lock.__exit__(*exc)


def test_a_thread_that_waited_for_another_threads_refresh_does_not_refresh_again(gmail, emu):
    authorize_with_consent(gmail)
    creds = load_credentials(gmail.token_file)
    creds.expiry = creds.expiry.replace(year=2000)  # expired: every worker thread wants to refresh
    request = google.auth.transport.requests.Request()
    lock = threading.Lock()
    creds._refresh_lock = _AnnouncingLock(lock)
    with lock:  # "thread A" holds the lock while it refreshes
        waiter = threading.Thread(target=creds.refresh, args=(request,))
        waiter.start()  # "thread B": took note of the stale token, now waits for the lock
        assert creds._refresh_lock.waiting.wait(WAIT)
        google.oauth2.credentials.Credentials.refresh(creds, request)  # thread A's refresh
    waiter.join(WAIT)
    assert not waiter.is_alive()
    assert emu.stats.requests["oauth.token"] == 2  # the code exchange and thread A's refresh: B reused it


def test_paste_mode_reads_the_final_address_back(gmail, emu):
    term = Terminal()
    prompts = []

    def paste(prompt: str) -> str:
        prompts.append(prompt)
        url = term.wait_for(AUTH_URL).group(1)
        return "  " + redirect_target(url) + "\n"  # what the address bar shows, with stray blanks

    address = auth.authorize(gmail, mode="paste", out=term, read_line=paste)

    assert address == EMAIL
    assert prompts == ["Address: "]
    assert "http://localhost:8765/" in term.text
    assert json.loads(gmail.token_file.read_text())["refresh_token"]


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda loc: re.sub(r"state=[^&]+", "state=someone-else", loc), "state mismatch"),
        (lambda loc: "http://localhost:8765/", "not the address Google sent"),
        (lambda loc: "", "nothing was pasted"),
    ],
)
def test_paste_mode_refuses_a_wrong_address(gmail, tamper, message):
    term = Terminal()
    with pytest.raises(AuthError, match=message):
        auth.authorize(
            gmail, mode="paste", out=term, read_line=lambda _: tamper(redirect_target(term.wait_for(AUTH_URL)[1]))
        )
    assert not gmail.token_file.exists()


def test_denied_consent_is_one_clear_error(gmail, emu):
    emu.deny_consent = True
    term = Terminal()
    consent = Consent(term)
    consent.start()
    with pytest.raises(AuthError, match="access was not granted"):
        auth.authorize(gmail, mode="no-browser", port=0, timeout=WAIT, out=term)
    status, page = consent.finish()
    assert status == 200
    assert "not granted" in page
    assert not gmail.token_file.exists()
    assert emu.stats.requests.get("oauth.token", 0) == 0


def test_unticked_permission_is_refused_and_its_token_revoked(gmail, emu):
    """Google's granular consent lets the user untick a scope: the token then lacks it."""

    def untick_insert(url: str) -> str:
        return url.replace(urllib.parse.quote_plus(SCOPES[0]) + "+", "")

    with pytest.raises(AuthError, match=r"missing: gmail\.insert \(add messages"):
        authorize_with_consent(gmail, edit=untick_insert)
    assert not gmail.token_file.exists()
    assert emu.stats.requests["oauth.revoke"] == 1


def test_more_scopes_than_asked_for_are_accepted(gmail):
    """Google may add scopes granted earlier; every scope gimport needs is there, so that is fine."""
    extra = urllib.parse.quote_plus("https://www.googleapis.com/auth/gmail.readonly")
    address, _term, _ = authorize_with_consent(gmail, edit=lambda url: url.replace("&scope=", f"&scope={extra}+"))
    assert address == EMAIL
    assert json.loads(gmail.token_file.read_text())["scopes"] == list(SCOPES)


def test_state_mismatch_on_the_loopback_port(gmail):
    term = Terminal()

    def forged(t: Terminal, _url: str) -> tuple[int, str]:  # a redirect gimport did not ask for
        return browse(f"http://localhost:{loopback_port(t)}/?state=forged&code=4/whatever")

    consent = Consent(term, visit=forged)
    consent.start()
    with pytest.raises(AuthError, match="state mismatch"):
        auth.authorize(gmail, mode="no-browser", port=0, timeout=WAIT, out=term)
    assert consent.finish()[0] == 200
    assert not gmail.token_file.exists()


def test_wrong_account_is_refused_and_its_token_not_saved(tmp_path, env):
    # with [gmail] user set, a token for another account is not kept (it used to be, with a warning)
    config = write_config(tmp_path, env, user="bob@example.ac.jp")
    gmail = load_settings(config, need_source=False).gmail
    with pytest.raises(AuthError) as info:
        authorize_with_consent(gmail)
    assert info.value.exit_code == 3
    text = str(info.value)
    assert "alice@example.ac.jp" in text
    assert "bob@example.ac.jp" in text
    assert "not saved" in text
    assert "\n" not in text  # one line
    assert not gmail.token_file.exists()


# ------------------------------------------------------------------------------------- through the CLI


def test_cli_auth_on_a_desktop_opens_the_browser(config, capsys, monkeypatch):
    monkeypatch.setenv("DISPLAY", ":0")
    opened = []

    def fake_browser(url, *args, **kwargs):  # the user's browser: consents at once
        opened.append(url)
        assert browse(url)[0] == 200
        return True

    monkeypatch.setattr("webbrowser.open", fake_browser)
    rc, out, err = run_cli(capsys, "--config", str(config), "auth", "--port", "0")

    assert (rc, err) == (0, "")
    assert len(opened) == 1
    assert opened[0] in out
    assert "Opening your browser" in out
    assert "ssh -N -L" not in out  # a desktop needs no port forwarding advice
    assert f"Authorized gimport for {EMAIL}\n" in out
    assert file_mode(config.parent / "token.json") == 0o600


def test_cli_auth_over_ssh_does_not_open_a_browser(config, capsys, monkeypatch):
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setenv("SSH_CONNECTION", "10.0.0.2 50000 10.0.0.1 22")
    monkeypatch.setattr("webbrowser.open", lambda *a, **k: pytest.fail("no browser over SSH"))
    term = Terminal()
    monkeypatch.setattr("sys.stdout", term)
    consent = Consent(term)
    consent.start()
    rc = main(["--config", str(config), "auth", "--port", "0", "--timeout", str(WAIT)])
    consent.finish()
    assert rc == 0
    assert "ssh -N -L" in term.text
    assert f"Authorized gimport for {EMAIL}" in term.text


def test_cli_timeout(config, capsys):
    rc, out, err = run_cli(capsys, "--config", str(config), "auth", "--no-browser", "--port", "0", "--timeout", "0.2")
    assert rc == 3
    assert "no answer from the browser within 0.2 s" in one_line_error(err)
    assert "--timeout" in err
    assert AUTH_URL.search(out)
    assert not (config.parent / "token.json").exists()


@pytest.mark.parametrize(("family", "address"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_cli_port_busy(config, capsys, family, address):
    if family == socket.AF_INET6 and not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    with socket.socket(family, socket.SOCK_STREAM) as busy:
        busy.bind((address, 0))
        busy.listen()
        port = busy.getsockname()[1]
        rc, out, err = run_cli(
            capsys, "--config", str(config), "auth", "--no-browser", "--port", str(port), "--timeout", "2"
        )
    assert rc == 2
    line = one_line_error(err)
    assert f"port {port}" in line
    assert f"--port {port + 1}" in line
    assert out == ""


def test_cli_no_traceback_when_the_token_endpoint_is_down(tmp_path, env, capsys):
    config = write_config(tmp_path, env)
    client = json.loads((tmp_path / "credentials.json").read_text())
    with socket.socket() as s:  # a port with nothing behind it
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    client["installed"]["token_uri"] = f"http://127.0.0.1:{dead}/token"
    (tmp_path / "credentials.json").write_text(json.dumps(client))
    term = Terminal()
    consent = Consent(term)
    consent.start()
    with pytest.raises(AuthError, match=f"cannot reach the token endpoint http://127.0.0.1:{dead}/token"):
        auth.authorize(load_settings(config, need_source=False).gmail, mode="no-browser", port=0, out=term)
    consent.finish()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no OAuth client file at .*Create credentials > OAuth client ID > Application type: Desktop app"),
        ('{"web": {"client_id": "x"}}', "'Web application' OAuth client; gimport needs a 'Desktop app' client"),
        ('{"installed": {"client_id": "x",', "is not valid JSON"),
        ('{"type": "service_account", "private_key": "..."}', "service account key, not an OAuth client"),
        ('{"installed": {"client_id": "x", "auth_uri": "https://a", "token_uri": "https://t"}}', "lacks client_secret"),
    ],
)
def test_cli_bad_client_secrets(tmp_path, env, capsys, content, message):
    config = write_config(tmp_path, env)
    secrets = tmp_path / "credentials.json"
    if content is None:
        secrets.unlink()
    else:
        secrets.write_text(content)
    rc, out, err = run_cli(capsys, "--config", str(config), "auth", "--no-browser")
    assert rc == 2
    assert re.search(message, one_line_error(err))
    assert out == ""  # failed before printing any URL


# --------------------------------------------------------------------------------------------- a shared server


def test_a_busy_default_port_falls_back_to_a_free_one_and_the_ssh_line_names_it(gmail, emu):
    blocker: socket.socket | None = socket.socket()
    try:
        blocker.bind(("127.0.0.1", 8765))
        blocker.listen()
    except OSError:  # another user holds it already: busy all the same
        blocker.close()
        blocker = None
    try:
        address, term, _page = authorize_with_consent(gmail, port=None)
    finally:
        if blocker is not None:
            blocker.close()
    assert address == EMAIL
    port = loopback_port(term)
    assert port != 8765
    assert f"ssh -N -L {port}:localhost:{port} " in term.text
    assert "Port 8765 is taken" in term.text
    url_lines = [line for line in term.text.splitlines() if "code_challenge=" in line]
    assert len(url_lines) == 1
    assert url_lines[0].startswith("http")  # unwrapped, alone on its line


def test_auth_status_shows_the_account_and_scopes_and_refreshes(gmail, emu, config, capsys):
    authorize_with_consent(gmail)
    before = json.loads(gmail.token_file.read_text())
    calls = emu.stats.requests["oauth.token"]
    rc, out, err = run_cli(capsys, "--config", str(config), "auth", "--status")
    assert (rc, err) == (0, "")
    assert f"Account: {EMAIL}" in out
    assert "Scopes: gmail.insert, gmail.labels, gmail.settings.basic" in out
    assert "Token: refreshes" in out
    assert emu.stats.requests["oauth.token"] == calls + 1  # it really tried the refresh token
    after = json.loads(gmail.token_file.read_text())
    assert after["token"] != before["token"]  # the refreshed access token is saved, as every command does
    assert {k: v for k, v in after.items() if k not in ("token", "expiry")} == {
        k: v for k, v in before.items() if k not in ("token", "expiry")
    }
    assert file_mode(gmail.token_file) == 0o600

    emu.revoke_refresh_tokens(EMAIL)
    rc, out, err = run_cli(capsys, "--config", str(config), "auth", "--status")
    assert rc == 3
    assert "no longer refreshes" in one_line_error(err)


# ------------------------------------------------------------------------------------------- revoke


def test_cli_revoke_revokes_and_deletes(gmail, emu, config, capsys):
    authorize_with_consent(gmail)
    copy = gmail.token_file.with_name("copy.json")
    write_private(copy, gmail.token_file.read_text())  # 0600: a token others can read is refused

    rc, out, err = run_cli(capsys, "--config", str(config), "auth", "--revoke")

    assert (rc, err) == (0, "")
    assert "Revoked gimport's access" in out
    assert not gmail.token_file.exists()
    assert emu.stats.requests["oauth.revoke"] == 1
    emu.expire_access_tokens()
    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_grant"):
        load_credentials(copy).refresh(google.auth.transport.requests.Request())

    # revoking an already invalid token still deletes the file, and says so
    copy.replace(gmail.token_file)
    rc, out, err = run_cli(capsys, "--config", str(config), "auth", "--revoke")
    assert (rc, err) == (0, "")
    assert "already invalid" in out
    assert not gmail.token_file.exists()

    rc, out, err = run_cli(capsys, "--config", str(config), "auth", "--revoke")
    assert rc == 0
    assert "nothing to revoke" in out


def test_revoke_keeps_the_file_when_the_endpoint_is_unreachable(gmail):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    write_private(
        gmail.token_file, json.dumps({"refresh_token": "1//x", "token_uri": f"http://127.0.0.1:{dead}/token"})
    )
    with pytest.raises(GmailError, match=f"cannot reach http://127.0.0.1:{dead}/revoke.*is kept"):
        auth.revoke(gmail.token_file, out=Terminal())
    assert gmail.token_file.exists()


def test_revoke_endpoint():
    assert auth.revoke_uri_for("https://oauth2.googleapis.com/token") == "https://oauth2.googleapis.com/revoke"
    assert auth.revoke_uri_for("https://accounts.google.com/o/oauth2/token") == auth.GOOGLE_REVOKE_URI
    assert auth.revoke_uri_for("http://127.0.0.1:4242/token") == "http://127.0.0.1:4242/revoke"
    assert auth.revoke_uri_for("https://sso.example.org/oauth/token") == "https://sso.example.org/revoke"


@pytest.mark.parametrize(
    ("env", "platform", "expected"),
    [
        ({}, "linux", False),
        ({"DISPLAY": ":0"}, "linux", True),
        ({"WAYLAND_DISPLAY": "wayland-0"}, "linux", True),
        ({"DISPLAY": "localhost:10.0", "SSH_CONNECTION": "a 1 b 22"}, "linux", False),  # X forwarding: still SSH
        ({}, "darwin", True),
        ({"SSH_TTY": "/dev/pts/1"}, "darwin", False),
        ({}, "win32", True),
    ],
)
def test_browser_available(env, platform, expected):
    assert auth.browser_available(env, platform) is expected


def test_bad_port_and_timeout_values(gmail):
    with pytest.raises(ConfigError, match="--port must be between"):
        auth.authorize(gmail, mode="no-browser", port=70000, out=Terminal())
    with pytest.raises(ConfigError, match="--timeout must be more than 0"):
        auth.authorize(gmail, mode="no-browser", port=0, timeout=0, out=Terminal())


# ------------------------------------------------------------------------------- scopes and the run


def calls_gimport_makes(client: GmailClient) -> dict:
    """Every Gmail method gimport calls, in an order where each one's input exists."""
    raw = b"From: a@example.org\r\nTo: alice@example.ac.jp\r\nSubject: hi\r\nMessage-ID: <1@x>\r\n\r\nbody\r\n"
    created: dict = {}
    return {
        "settings.sendAs.list": client.primary_address,
        "labels.list": client.list_labels,
        "labels.create": lambda: created.setdefault("label", client.create_label("Imported 2020")),
        "labels.get": lambda: client.get_label(created["label"]["id"] if created else "INBOX"),
        "messages.import": lambda: client.import_message(raw, ["INBOX"]),
        "settings.getImap": client.get_imap,
        "settings.updateImap": lambda: client.update_imap({"enabled": False}),
        "settings.getAutoForwarding": client.get_auto_forwarding,
        "settings.forwardingAddresses.list": client.list_forwarding_addresses,
        "settings.filters.list": client.list_filters,
    }


def client_with_scopes(emu: GmailEmulator, tmp_path: Path, scopes) -> GmailClient:
    token = tmp_path / "scoped-token.json"
    write_private(token, json.dumps(emu.authorized_user_info(EMAIL, list(scopes))))
    return GmailClient(load_credentials(token), api_url=emu.base_url)


def test_product_scopes_allow_every_call_gimport_makes(env, tmp_path):
    client = client_with_scopes(env, tmp_path, SCOPES)
    for _name, call in calls_gimport_makes(client).items():
        call()
    assert env.label_by_name(EMAIL, "Imported 2020") is not None
    assert len(env.user(EMAIL).messages) == 1


@pytest.mark.parametrize("dropped", SCOPES)
def test_every_product_scope_is_needed(env, tmp_path, dropped):
    client = client_with_scopes(env, tmp_path, [s for s in SCOPES if s != dropped])
    refused = []
    for name, call in calls_gimport_makes(client).items():
        try:
            call()
        except AuthError as err:
            assert "lacks a permission" in str(err)  # noqa: PT017 - only the calls needing the scope raise
            refused.append(name)
    assert refused, f"nothing needs {dropped}"


def test_token_without_insert_gets_auth_error_on_import(env, tmp_path):
    client = client_with_scopes(env, tmp_path, SCOPES[1:])
    with pytest.raises(AuthError, match=r"lacks a permission gimport needs \(import\): run 'gimport auth' again"):
        client.import_message(b"Subject: x\r\n\r\nx\r\n", ["INBOX"])


def test_run_stops_with_exit_3_when_the_refresh_token_is_revoked(tmp_path, env, imap_user, capsys):
    from tests.rig.workspace import make_workspace

    ws = make_workspace(tmp_path, server=imap_user.server, user=imap_user.name, emulator=env, email=EMAIL)
    info = json.loads((tmp_path / "token.json").read_text())
    info["token"] = env.issue_access_token(EMAIL, SCOPES)  # a run that starts with a (soon dead) access token
    write_private(tmp_path / "token.json", json.dumps(info))
    env.revoke_refresh_tokens(EMAIL)
    env.expire_access_tokens(EMAIL)

    rc, _out, err = run_cli(capsys, "--config", str(ws.config), "run")

    assert rc == 3
    assert "Traceback" not in err
    assert re.search(r"gimport: Gmail authorization is no longer valid \(invalid_grant: .*\): run 'gimport auth'", err)
    assert env.user(EMAIL).messages == []


# ------------------------------------------------------------------------------------- auth --exact-verify


def test_exact_verify_adds_the_metadata_scope_and_the_token_remembers_it(gmail, emu):
    address, term, _ = authorize_with_consent(gmail, exact_verify=True)
    assert address == EMAIL
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(AUTH_URL.search(term.text).group(1)).query)
    assert query["scope"][0].split() == [*SCOPES, auth.EXACT_VERIFY_SCOPE]
    assert auth.granted_scopes(gmail.token_file) == {*SCOPES, auth.EXACT_VERIFY_SCOPE}
    assert "gimport verify --exact" in term.text
    from gimport.backends.google.gmail import GmailClient

    assert GmailClient(auth.load_credentials(gmail.token_file), api_url=emu.base_url).can_list_messages()
    authorize_with_consent(gmail)  # without the flag: back to the three scopes
    assert auth.granted_scopes(gmail.token_file) == set(SCOPES)
    assert not GmailClient(auth.load_credentials(gmail.token_file), api_url=emu.base_url).can_list_messages()


def test_an_unticked_metadata_scope_is_refused(gmail, emu):
    def untick(url: str) -> str:
        return url.replace("+" + urllib.parse.quote_plus(auth.EXACT_VERIFY_SCOPE), "")

    with pytest.raises(AuthError, match=r"missing: gmail\.metadata \(view message ids"):
        authorize_with_consent(gmail, edit=untick, exact_verify=True)
    assert not gmail.token_file.exists()


def test_cli_auth_exact_verify(config, capsys, monkeypatch):
    seen = {}

    def fake_authorize(gmail, **kw):
        seen.update(kw)
        return EMAIL

    monkeypatch.setattr(auth, "authorize", fake_authorize)
    assert main(["--config", str(config), "auth", "--exact-verify", "--no-browser"]) == 0
    assert seen["exact_verify"] is True
    assert seen["mode"] == "no-browser"


def test_cli_auth_fits_the_guidance_to_the_terminal(config, monkeypatch):
    # the flows are a backend's and print paragraphs as they are; `gimport auth` hands them the wrapping
    seen = {}

    def fake_authorize(gmail, **kw):
        seen.update(kw)
        return EMAIL

    monkeypatch.setattr(auth, "authorize", fake_authorize)
    assert main(["--config", str(config), "auth", "--paste"]) == 0
    monkeypatch.setenv("COLUMNS", "30")
    text = "3. " + "word " * 20
    lines = seen["paragraph"](text.strip(), io.StringIO(), "   ").splitlines()
    assert len(lines) > 1
    assert all(len(line) <= 30 for line in lines)
    assert all(line.startswith("   word") for line in lines[1:])
    assert auth.as_is(text, io.StringIO(), "   ") == text


# ------------------------------------------------------------------------ gimport auth --source (Google)


def test_source_sign_in_with_google_asks_for_the_imap_scope_only(tmp_path, env):
    # a Gmail account as the old server: the same loopback flow, the one scope IMAP takes, saved to
    # [source] token_file (the run's login and refresh are tested in tests/test_source_oauth.py)
    from gimport.backends.imap.signin import sign_in

    config = write_config(tmp_path, env)
    config.write_text(config.read_text() + f'[source]\nprovider = "google"\nuser = "{EMAIL}"\n', encoding="utf-8")
    settings = load_settings(config)
    term = Terminal()
    consent = Consent(term)
    consent.start()
    try:
        saved = sign_in(settings, mode="no-browser", port=0, timeout=WAIT, out=term, paragraph=auth.as_is)
    finally:
        consent.join(WAIT)
    assert consent.finish()[0] == 200
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(AUTH_URL.search(term.text).group(1)).query)
    assert query["scope"] == ["https://mail.google.com/"]
    assert saved == tmp_path / "source-token.json"
    assert file_mode(saved) == 0o600
    data = json.loads(saved.read_text())
    assert data["scopes"] == ["https://mail.google.com/"]
    assert data["refresh_token"]
    assert data["token_uri"] == env.client_config()["installed"]["token_uri"]
    assert data["token"] not in term.text
    assert not (tmp_path / "token.json").exists()  # the Gmail destination's token is another file


def test_source_sign_in_needs_a_provider_it_knows(tmp_path, env, capsys):
    config = write_config(tmp_path, env)
    text = config.read_text() + '[source]\nhost = "imap.example.ac.jp"\nuser = "a"\nauth = "oauthbearer"\n'
    config.write_text(text, encoding="utf-8")
    rc, _, err = run_cli(capsys, "--config", str(config), "auth", "--source")
    assert rc == 2
    assert "knows no sign-in for imap.example.ac.jp" in one_line_error(err)
