"""OAuth 2.0 login on the source: SASL XOAUTH2 and OAUTHBEARER against a real Dovecot whose oauth2 passdb
asks the rig's OAuth server (tests/rig/oauth_server.py) about each token, and gimport refreshing the token
at that server when it expires or the server refuses it."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import imapclient
import pytest
from imapclient.exceptions import LoginError

from tests.helpers import run
from tests.rig.corpus import make_message
from tests.rig.dovecot import Dovecot, SeedMessage
from tests.rig.oauth_server import CLIENT_ID, CLIENT_SECRET, OAuthServer
from tests.rig.workspace import EMAIL, make_workspace


@pytest.fixture(scope="module")
def oauth_rig():
    """An OAuth server and a Dovecot that logs users in by asking it (XOAUTH2, OAUTHBEARER; passwords
    only through PLAIN and LOGIN)."""
    if os.geteuid() != 0:
        pytest.fail("the Dovecot rig needs root", pytrace=False)
    workdir = Path(tempfile.mkdtemp(prefix="gimport-oauth-"))
    workdir.chmod(0o755)
    oauth = OAuthServer(workdir / "oauth")
    oauth.start()
    dovecot = Dovecot(workdir / "dovecot", oauth2_introspection=oauth.introspection_url)
    try:
        dovecot.start()
        yield oauth, dovecot
    finally:
        dovecot.stop()
        oauth.stop()
        shutil.rmtree(workdir, ignore_errors=True)


_users = iter(range(1, 10_000))


@pytest.fixture
def oauth(oauth_rig):
    oauth_rig[0].rotate = False
    return oauth_rig[0]


@pytest.fixture
def user(oauth_rig):
    """A fresh Dovecot user with three messages in INBOX."""
    dovecot = oauth_rig[1]
    name = f"o{next(_users)}"
    dovecot.add_user(name)
    dovecot.seed(
        name,
        "INBOX",
        [
            SeedMessage(
                make_message(subject=f"m{i}", body=f"body {i}", sender="a@old.example", to=f"{name}@old.example")
            )
            for i in range(3)
        ],
    )
    return dovecot.user(name)


def _login(dovecot, user, token, mech="XOAUTH2"):
    client = imapclient.IMAPClient("127.0.0.1", port=dovecot.plain_port, ssl=False)
    try:
        if mech == "OAUTHBEARER":
            client.oauthbearer_login(user, token)
        else:
            client.oauth2_login(user, token)
    finally:
        client.shutdown()


def test_dovecot_itself_refuses_a_bad_token(oauth_rig, user):
    # the rig proves something only if Dovecot asks the OAuth server: a good token logs in, the rest do not
    oauth, dovecot = oauth_rig
    access, _ = oauth.issue(user.name)
    _login(dovecot, user.name, access)
    _login(dovecot, user.name, access, "OAUTHBEARER")
    someone_else, _ = oauth.issue("o-other")
    expired, _ = oauth.issue(user.name)
    oauth.expire(expired)
    for token in ("at-made-up", expired, someone_else, user.password):
        for mech in ("XOAUTH2", "OAUTHBEARER"):
            with pytest.raises(LoginError):
                _login(dovecot, user.name, token, mech)
    assert len(oauth.asked("/introspect")) >= 10


def _expiry(seconds_from_now):
    when = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(seconds=seconds_from_now)
    return when.isoformat() + "Z"


def _workspace(tmp_path, emulator, monkeypatch, dovecot, user, oauth, *, auth="xoauth2", expires_in=3000):
    """A workspace logging in with an OAuth token file (0600) instead of a password; returns (ws, access,
    refresh)."""
    ws = make_workspace(tmp_path, server=dovecot, user=user.name, emulator=emulator, email=EMAIL, tls=False)
    monkeypatch.setenv("GIMPORT_GMAIL_API_URL", emulator.base_url)
    (tmp_path / "imap-password.txt").unlink()
    text = ws.config.read_text().replace(
        'password_file = "imap-password.txt"', f'auth = "{auth}"\ntoken_file = "source-token.json"'
    )
    ws.config.write_text(text)
    access, refresh = oauth.issue(user.name)
    token = {
        "token": access,
        "refresh_token": refresh,
        "token_uri": oauth.token_uri,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "expiry": _expiry(expires_in),
    }
    path = tmp_path / "source-token.json"
    path.write_text(json.dumps(token))
    path.chmod(0o600)
    return ws, access, refresh


def _no_secret_anywhere(ws, out, *secrets):
    """No token reaches the log, the state file or the terminal."""
    places = {"log": ws.log.read_bytes(), "state": ws.state.read_bytes(), "out": (out.out + out.err).encode()}
    for secret in secrets:
        for where, data in places.items():
            assert secret.encode() not in data, f"a token is in the {where}"


def test_a_run_logs_in_with_xoauth2(oauth_rig, user, emulator, tmp_path, monkeypatch, capsys):
    oauth, dovecot = oauth_rig
    ws, access, refresh = _workspace(tmp_path, emulator, monkeypatch, dovecot, user, oauth)
    rc, out = run(ws, "run", capsys=capsys)
    assert rc == 0, out.err
    assert len(emulator.user(EMAIL).messages) == 3
    assert oauth.asked("/token") == []  # the token was good: no refresh
    assert f"user=<{user.name}>, method=XOAUTH2" in dovecot.log_path.read_text()
    _no_secret_anywhere(ws, out, access, refresh)


def test_oauthbearer(oauth_rig, user, emulator, tmp_path, monkeypatch, capsys):
    oauth, dovecot = oauth_rig
    ws, access, refresh = _workspace(tmp_path, emulator, monkeypatch, dovecot, user, oauth, auth="oauthbearer")
    rc, out = run(ws, "run", capsys=capsys)
    assert rc == 0, out.err
    assert len(emulator.user(EMAIL).messages) == 3
    assert f"user=<{user.name}>, method=OAUTHBEARER" in dovecot.log_path.read_text()
    _no_secret_anywhere(ws, out, access, refresh)


def _refreshes(oauth, refresh):
    return [f for f in oauth.asked("/token") if f.get("grant_type") == "refresh_token" and f["client_id"] == CLIENT_ID]


@pytest.mark.parametrize("rotate", [False, True], ids=["same-refresh-token", "rotating"])
def test_an_expired_token_is_refreshed_and_saved(oauth_rig, user, emulator, tmp_path, monkeypatch, capsys, rotate):
    oauth, dovecot = oauth_rig
    oauth.rotate = rotate
    ws, access, refresh = _workspace(tmp_path, emulator, monkeypatch, dovecot, user, oauth, expires_in=-10)
    oauth.expire(access)
    before = len(oauth.asked("/token"))
    rc, out = run(ws, "run", capsys=capsys)
    assert rc == 0, out.err
    assert len(emulator.user(EMAIL).messages) == 3
    assert len(oauth.asked("/token")) == before + 1  # by its expiry: refreshed before the first login, once
    path = tmp_path / "source-token.json"
    assert path.stat().st_mode & 0o777 == 0o600
    saved = json.loads(path.read_text())
    assert saved["token"] != access
    assert oauth.active(saved["token"]) == user.name
    assert dt.datetime.fromisoformat(saved["expiry"]) > dt.datetime.now(dt.UTC)
    assert (saved["refresh_token"] != refresh) is rotate  # a rotated refresh token is kept: the old one is spent
    assert saved["client_secret"] == CLIENT_SECRET
    _no_secret_anywhere(ws, out, access, refresh, saved["token"], saved["refresh_token"])


def test_a_token_the_server_refuses_is_refreshed(oauth_rig, user, emulator, tmp_path, monkeypatch, capsys):
    # the file says an hour is left, but the server has ended it (a password change, an admin's revocation)
    oauth, dovecot = oauth_rig
    ws, access, _ = _workspace(tmp_path, emulator, monkeypatch, dovecot, user, oauth, expires_in=3000)
    oauth.expire(access)
    before = len(oauth.asked("/token"))
    rc, out = run(ws, "run", capsys=capsys)
    assert rc == 0, out.err
    assert len(emulator.user(EMAIL).messages) == 3
    assert len(oauth.asked("/token")) == before + 1
    assert json.loads((tmp_path / "source-token.json").read_text())["token"] != access


def test_a_revoked_refresh_token_says_to_sign_in_again(oauth_rig, user, emulator, tmp_path, monkeypatch, capsys):
    oauth, dovecot = oauth_rig
    ws, access, refresh = _workspace(tmp_path, emulator, monkeypatch, dovecot, user, oauth, expires_in=-10)
    oauth.expire(access)
    oauth.revoke(refresh)
    file_before = (tmp_path / "source-token.json").read_bytes()
    rc, out = run(ws, "run", capsys=capsys)
    assert rc == 4
    lines = [line for line in out.err.strip().splitlines() if "connecting to" not in line]  # progress
    assert len(lines) == 1, out.err
    assert "invalid_grant" in lines[0]
    assert "gimport auth --source" in lines[0]
    assert "Traceback" not in out.err
    assert emulator.user(EMAIL).messages == []
    assert (tmp_path / "source-token.json").read_bytes() == file_before  # nothing to save
    _no_secret_anywhere(ws, out, access, refresh)


def test_a_token_file_others_can_read_is_refused(oauth_rig, user, emulator, tmp_path, monkeypatch, capsys):
    oauth, dovecot = oauth_rig
    ws, _, _ = _workspace(tmp_path, emulator, monkeypatch, dovecot, user, oauth)
    (tmp_path / "source-token.json").chmod(0o644)
    introspections, refreshes = len(oauth.asked("/introspect")), len(oauth.asked("/token"))
    rc, out = run(ws, "run", capsys=capsys)
    assert rc == 2
    assert "can be read by others" in out.err
    assert "chmod 600" in out.err
    # refused before anything was sent: no login, no refresh
    assert (len(oauth.asked("/introspect")), len(oauth.asked("/token"))) == (introspections, refreshes)
    assert emulator.user(EMAIL).messages == []


# ------------------------------------------------------------------------- gimport auth --source (Microsoft)

MS_CLIENT = "ms-app-registration"


def _approve_when_asked(oauth, user, done):
    """The person: opens the address, types the code shown, signs in as `user` (once the code exists)."""

    def person():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not done.is_set():
            with oauth._lock:
                pending = [d.user_code for d in oauth.state.devices.values() if d.user is None]
            if pending:
                oauth.approve(pending[0], user)
                return
            time.sleep(0.005)  # polling for the code, not waiting for time to pass

    thread = threading.Thread(target=person, daemon=True)
    thread.start()
    return thread


def test_device_code_sign_in_then_runs_and_refreshes(oauth_rig, user, emulator, tmp_path, monkeypatch, capsys):
    oauth, dovecot = oauth_rig
    ws, _, _ = _workspace(tmp_path, emulator, monkeypatch, dovecot, user, oauth)
    (tmp_path / "source-token.json").unlink()
    text = ws.config.read_text().replace(
        'auth = "xoauth2"',
        f'provider = "microsoft"\nclient_id = "{MS_CLIENT}"\nauthority = "{oauth.https_url}/uni-tenant"',
    )
    ws.config.write_text(text)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(oauth.ca_file))  # MSAL (requests) trusts the rig's certificate
    monkeypatch.setenv("SSL_CERT_FILE", str(oauth.ca_file))  # and so does the refresh (urllib, OpenSSL's default)
    done = threading.Event()
    person = _approve_when_asked(oauth, user.name, done)
    try:
        rc, out = run(ws, "auth", "--source", capsys=capsys)
    finally:
        done.set()
        person.join()
    assert rc == 0, out.err
    asked = oauth.asked("/uni-tenant/oauth2/v2.0/devicecode")
    assert len(asked) == 1
    assert asked[0]["client_id"] == MS_CLIENT
    assert "https://outlook.office365.com/IMAP.AccessAsUser.All" in asked[0]["scope"].split()
    assert "offline_access" in asked[0]["scope"].split()
    assert f"{oauth.https_url}/devicelogin" in out.out  # the short address and the code are shown
    path = tmp_path / "source-token.json"
    assert path.stat().st_mode & 0o777 == 0o600
    saved = json.loads(path.read_text())
    assert oauth.active(saved["token"]) == user.name
    assert saved["token_uri"] == f"{oauth.https_url}/uni-tenant/oauth2/v2.0/token"
    assert (saved["client_id"], saved["client_secret"]) == (MS_CLIENT, "")
    assert saved["token"] not in out.out + out.err
    assert saved["refresh_token"] not in out.out + out.err

    # the token it saved logs in (the host is the rig's, written in the config over the provider's)
    rc, out = run(ws, "run", capsys=capsys)
    assert rc == 0, out.err
    assert len(emulator.user(EMAIL).messages) == 3
    # once it has expired, the next run refreshes it at Microsoft's token endpoint, as a public client
    oauth.expire(saved["token"])
    rc, out = run(ws, "verify", capsys=capsys)
    assert rc == 0, out.err
    refreshes = [f for f in oauth.asked("/uni-tenant/oauth2/v2.0/token") if f["grant_type"] == "refresh_token"]
    assert len(refreshes) == 1
    assert refreshes[0]["client_id"] == MS_CLIENT
    assert "client_secret" not in refreshes[0]
    assert "offline_access" in refreshes[0]["scope"].split()
    _no_secret_anywhere(ws, out, saved["token"], saved["refresh_token"])


def test_device_code_not_approved_in_time(oauth_rig, user, emulator, tmp_path, monkeypatch, capsys):
    oauth, dovecot = oauth_rig
    ws, _, _ = _workspace(tmp_path, emulator, monkeypatch, dovecot, user, oauth)
    (tmp_path / "source-token.json").unlink()
    text = ws.config.read_text().replace(
        'auth = "xoauth2"',
        f'provider = "microsoft"\nclient_id = "{MS_CLIENT}"\nauthority = "{oauth.https_url}/uni-tenant"',
    )
    ws.config.write_text(text)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(oauth.ca_file))
    rc, out = run(ws, "auth", "--source", "--timeout", "0.3", capsys=capsys)
    assert rc == 3
    assert "authorization_pending" in out.err
    assert not (tmp_path / "source-token.json").exists()
