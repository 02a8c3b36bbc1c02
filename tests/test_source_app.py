"""`gimport admin` reading the old mailboxes with the application's own credentials: Microsoft 365 app-only
access (MSAL's client-credentials grant, one token for every mailbox) and a Google service account acting as
each user, against the rig's OAuth server and a real Dovecot whose oauth2 passdb compares users by domain (a
token of the campus's app is good for every campus mailbox, as Exchange's app-only access is)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path

import imapclient
import pytest
from imapclient.exceptions import LoginError

from gimport.backends.google.oauth import write_private
from tests.rig.admin_workspace import Person, make_admin_workspace, write_service_account
from tests.rig.dovecot import Dovecot
from tests.rig.oauth_server import OAuthServer
from tests.test_admin import DOMAIN, assert_exactly_once, report_rows, run, small_box

CAMPUS = "campus.test"
APP_ID, APP_SECRET = "campus-app", "s3cret-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def app_rig():
    if os.geteuid() != 0:
        pytest.fail("the Dovecot rig needs root", pytrace=False)
    workdir = Path(tempfile.mkdtemp(prefix="gimport-app-"))
    workdir.chmod(0o755)
    oauth = OAuthServer(workdir / "oauth")
    oauth.start()
    oauth.register_app(APP_ID, APP_SECRET, f"app@{CAMPUS}")
    dovecot = Dovecot(workdir / "dovecot", oauth2_introspection=oauth.introspection_url, oauth2_username_format="%d")
    try:
        dovecot.start()
        yield oauth, dovecot
    finally:
        dovecot.stop()
        oauth.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def emulator(campus_emulator):
    return campus_emulator


def _people(dovecot: Dovecot, emulator, n: int, domain: str = CAMPUS) -> tuple[list[Person], list[dict]]:
    people, boxes = [], []
    for _ in range(n):
        name = f"m{secrets.token_hex(3)}"
        dovecot.add_user(f"{name}@{domain}")
        box = small_box(name, 5)
        for folder, msgs in box.items():
            dovecot.seed(f"{name}@{domain}", folder, msgs)
        people.append(Person(f"{name}@{domain}", f"{name}@{DOMAIN}", master=True))
        emulator.add_user(f"{name}@{DOMAIN}")
        boxes.append(box)
    return people, boxes


def _workspace(tmp_path, dovecot, emulator, people, source: str):
    ws = make_admin_workspace(tmp_path / "ws", server=dovecot, emulator_url=emulator.base_url, people=people, tls=False)
    text = ws.config.read_text().replace("[source]\n", "[source]\n" + source, 1)
    ws.config.write_text(text)
    return ws


def test_the_rig_takes_an_app_token_for_its_domain_only(app_rig, emulator):
    """First the rig itself: the app's token opens every campus mailbox, and no mailbox of another domain."""
    oauth, dovecot = app_rig
    (ours,), _ = _people(dovecot, emulator, 1)
    (theirs,), _ = _people(dovecot, emulator, 1, domain="other.test")
    token = oauth._client_grant({"client_id": APP_ID, "client_secret": APP_SECRET, "scope": "x/.default"})[1]
    for user, ok in ((ours.source_user, True), (theirs.source_user, False)):
        client = imapclient.IMAPClient(dovecot.host, port=dovecot.plain_port, ssl=False)
        try:
            if ok:
                client.oauth2_login(user, token["access_token"])
            else:
                with pytest.raises(LoginError):
                    client.oauth2_login(user, token["access_token"])
        finally:
            client.shutdown()


def test_microsoft_app_only_reads_every_mailbox_once(app_rig, emulator, tmp_path, monkeypatch, capsys):
    """Three mailboxes, one client-credentials token (MSAL): each imported exactly once; a rerun sends nothing;
    the secret is nowhere in the logs or the report."""
    oauth, dovecot = app_rig
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(oauth.ca_file))  # MSAL (requests) trusts the rig's certificate
    people, boxes = _people(dovecot, emulator, 3)
    secret = tmp_path / "app-secret"
    secret.write_text(APP_SECRET + "\n")
    secret.chmod(0o600)
    source = (
        f'provider = "microsoft"\nauth = "xoauth2"\nclient_id = "{APP_ID}"\n'
        f'authority = "{oauth.https_url}/{CAMPUS}"\nclient_secret_file = "{secret}"\n'
    )
    ws = _workspace(tmp_path, dovecot, emulator, people, source)
    grants = oauth.state.app_grants
    rc, out = run(ws, "run", capsys=capsys)
    assert rc == 0, out.out + out.err
    for p, box in zip(people, boxes, strict=True):
        assert_exactly_once(emulator, p.gmail, box)
    assert oauth.state.app_grants - grants == 1  # one token for every mailbox
    asked = [f for f in oauth.asked(f"/{CAMPUS}/oauth2/v2.0/token") if f.get("grant_type") == "client_credentials"]
    assert asked[-1]["scope"] == "https://outlook.office365.com/.default"
    assert [r["outcome"] for r in report_rows(ws.report).values()] == ["complete"] * 3
    calls = {p.gmail: emulator.user(p.gmail).import_calls for p in people}
    rc, out = run(ws, "run", capsys=capsys)
    assert rc == 0, out.out + out.err
    assert {p.gmail: emulator.user(p.gmail).import_calls for p in people} == calls
    for path in [ws.log, ws.report, *ws.state_dir.iterdir()]:
        if path.is_file():
            assert APP_SECRET.encode() not in path.read_bytes(), path
    # a wrong secret: every user fails with one line naming the app, nothing is imported
    wrong = tmp_path / "wrong-secret"
    wrong.write_text("wrong\n")
    wrong.chmod(0o600)
    others, _ = _people(dovecot, emulator, 1)
    ws2 = _workspace(tmp_path / "wrong", dovecot, emulator, others, source.replace(str(secret), str(wrong)))
    rc, out = run(ws2, "run", capsys=capsys)
    assert rc != 0
    assert f"Microsoft refuses the app {APP_ID} a token for IMAP (invalid_client" in out.out + out.err
    assert emulator.user(others[0].gmail).import_calls == 0
    # a secret others can read is refused before anything is asked (by a new process: none has the app yet)
    wrong.chmod(0o644)
    monkeypatch.setattr("gimport.backends.microsoft.app._apps", {})
    rc, out = run(ws2, "run", capsys=capsys)
    assert rc == 2
    assert "client_secret_file" in out.err


def test_google_service_account_reads_every_mailbox_once(app_rig, emulator, tmp_path, capsys):
    """A Google source: the service account, delegated for https://mail.google.com/, signs in as each user."""
    oauth, dovecot = app_rig
    people, boxes = _people(dovecot, emulator, 2)
    key = write_service_account(tmp_path / "source-sa.json", oauth.url + "/token")
    oauth.state.delegated.add(key["client_email"])
    source = f'provider = "google"\nauth = "xoauth2"\nservice_account_file = "{tmp_path / "source-sa.json"}"\n'
    ws = _workspace(tmp_path, dovecot, emulator, people, source)
    rc, out = run(ws, "run", capsys=capsys)
    assert rc == 0, out.out + out.err
    for p, box in zip(people, boxes, strict=True):
        assert_exactly_once(emulator, p.gmail, box)
    subjects = [f for f in oauth.asked("/token") if f.get("grant_type", "").endswith("jwt-bearer")]
    assert len(subjects) >= len(people)
    # a service account without the delegation in the old domain: each user fails with what to fix
    other = write_service_account(tmp_path / "other-sa.json", oauth.url + "/token")
    other["client_email"] = "not-delegated@gimport-test.iam.gserviceaccount.com"
    write_private(tmp_path / "other-sa.json", json.dumps(other))
    late, _ = _people(dovecot, emulator, 1)
    ws2 = _workspace(tmp_path / "nodelegation", dovecot, emulator, late, source.replace("source-sa", "other-sa"))
    rc, out = run(ws2, "run", capsys=capsys)
    assert rc != 0
    text = out.out + out.err
    assert f"Google refuses to let the service account {other['client_email']} act for users" in text
    assert "https://mail.google.com/" in text
    assert emulator.user(late[0].gmail).import_calls == 0


def test_single_user_mode_refuses_app_credentials(tmp_path, capsys):
    from gimport.cli import main

    config = tmp_path / "gimport.toml"
    config.write_text(
        '[source]\nprovider = "microsoft"\nuser = "a@campus.test"\nclient_id = "x"\ntenant = "campus.test"\n'
        'client_secret_file = "secret"\n'
    )
    rc = main(["--config", str(config), "plan"])
    out = capsys.readouterr()
    assert rc == 2
    assert "are for 'gimport admin'" in out.err
