"""[source] provider and auth (gimport.config.source_auth), and the token file's checks and expiry
(gimport.backends.imap.oauth) without a server: the refresh itself is tested against the rig's OAuth
server in tests/test_source_oauth.py."""

from __future__ import annotations

import json

import pytest

from gimport.backends.imap.oauth import EARLY, SourceToken
from gimport.config.load import load_settings
from gimport.errors import ConfigError


def _load(tmp_path, source, **kw):
    path = tmp_path / "gimport.toml"
    path.write_text("[source]\n" + source)
    return load_settings(path, **kw).source


def test_password_stays_the_default(tmp_path):
    s = _load(tmp_path, 'host = "imap.example.ac.jp"\nuser = "a"\n')
    assert (s.auth, s.oauth, s.host, s.port) == ("password", None, "imap.example.ac.jp", 993)


def test_microsoft_fills_in_the_server_and_the_sign_in(tmp_path):
    s = _load(tmp_path, 'provider = "microsoft"\nuser = "a@uni.example"\ntenant = "uni.example"\nclient_id = "app"\n')
    assert (s.host, s.port, s.security, s.auth) == ("outlook.office365.com", 993, "ssl", "xoauth2")
    assert s.oauth.authority == "https://login.microsoftonline.com/uni.example"
    assert s.oauth.scopes == ("https://outlook.office365.com/IMAP.AccessAsUser.All",)
    assert (s.oauth.client_id, s.oauth.token_file) == ("app", tmp_path / "source-token.json")


def test_google_fills_in_gmail_and_the_mail_scope(tmp_path):
    s = _load(tmp_path, 'provider = "google"\nuser = "me@gmail.com"\nauth = "oauthbearer"\n')
    assert (s.host, s.auth, s.oauth.scopes) == ("imap.gmail.com", "oauthbearer", ("https://mail.google.com/",))


def test_what_is_written_wins_over_the_provider(tmp_path):
    s = _load(tmp_path, 'provider = "microsoft"\nuser = "a"\nhost = "imap.example"\nport = 1993\n')
    assert (s.host, s.port) == ("imap.example", 1993)


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ('host = "h"\nuser = "a"\ntoken_file = "t.json"\n', "not a password login"),
        ('host = "h"\nuser = "a"\nauth = "xoauth2"\npassword_file = "p"\n', "password_file is not used"),
        ('host = "h"\nuser = "a"\nauth = "kerberos"\n', "must be one of"),
        ('provider = "yahoo"\nuser = "a"\n', "must be one of"),
        ('provider = "google"\nuser = "a"\ntenant = "x"\n', 'for provider = "microsoft"'),
        ('provider = "microsoft"\nuser = "a"\ntenant = "x"\nauthority = "https://l/x"\n', "not both"),
        ('provider = "microsoft"\nuser = "a"\nauthority = "http://login.example/t"\n', "https address"),
        ('type = "maildir"\npath = "m"\nprovider = "google"\n', "provider is not used"),
    ],
)
def test_keys_that_do_not_go_together_are_refused(tmp_path, source, words):
    with pytest.raises(ConfigError, match=words):
        _load(tmp_path, source)


def test_admin_mode_keeps_passwords(tmp_path):
    with pytest.raises(ConfigError, match="for one mailbox"):
        _load(tmp_path, 'host = "h"\nauth = "xoauth2"\n', admin=True)


GOOD = {
    "token": "at-1",
    "refresh_token": "rt-1",
    "token_uri": "https://oauth2.example/token",
    "client_id": "c",
    "client_secret": "s",
    "expiry": "2030-01-01T00:00:00Z",
}


def _token_file(tmp_path, data, mode=0o600):
    path = tmp_path / "source-token.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    path.chmod(mode)
    return path


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ("{not json", "not a JSON object"),
        ({**GOOD, "refresh_token": ""}, "no refresh_token"),
        ({k: v for k, v in GOOD.items() if k != "token_uri"}, "no token_uri"),
        ({**GOOD, "token_uri": "http://oauth2.example/token"}, "not https"),
        ({**GOOD, "expiry": "tomorrow"}, "expiry"),
    ],
)
def test_a_malformed_token_file_is_refused_without_quoting_it(tmp_path, data, words):
    with pytest.raises(ConfigError, match=words) as err:
        SourceToken.load(_token_file(tmp_path, data))
    assert "rt-1" not in str(err.value)
    assert "gimport auth --source" in str(err.value)


def test_http_is_allowed_on_loopback_only(tmp_path):
    SourceToken.load(_token_file(tmp_path, {**GOOD, "token_uri": "http://127.0.0.1:8080/token"}))
    SourceToken.load(_token_file(tmp_path, {**GOOD, "token_uri": "http://localhost/token"}))


@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_a_token_file_others_can_read_is_refused(tmp_path, mode):
    with pytest.raises(ConfigError, match="chmod 600"):
        SourceToken.load(_token_file(tmp_path, GOOD, mode))


def test_a_missing_token_file_says_to_sign_in(tmp_path):
    with pytest.raises(ConfigError, match="gimport auth --source"):
        SourceToken.load(tmp_path / "nope.json")


def test_a_token_counts_as_expired_a_minute_early(tmp_path):
    # a login must not start with a token that dies during it: no refresh before, a refresh within EARLY
    expiry = 1_900_000_000.0
    clock = [expiry - EARLY - 1]
    token = SourceToken.load(_token_file(tmp_path, {**GOOD, "expiry": "2030-03-17T17:46:40Z"}), now=lambda: clock[0])
    assert token.access_token() == "at-1"
    clock[0] = expiry - EARLY + 1
    token._refresh = lambda: token._data.update(token="at-2")  # the grant is the rig's to test
    assert token.access_token() == "at-2"


# ------------------------------------------------------------------- admin mode: the application's credentials


def test_microsoft_app_only_in_admin_mode(tmp_path):
    s = _load(
        tmp_path,
        'provider = "microsoft"\ntenant = "uni.example"\nclient_id = "app"\nclient_secret_file = "secret"\n',
        admin=True,
    )
    assert s.oauth.app_only
    assert s.oauth.client_secret_file == tmp_path / "secret"
    assert s.oauth.scopes == ("https://outlook.office365.com/.default",)


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ('provider = "microsoft"\nclient_id = "app"\nclient_secret_file = "s"\n', "own tenant"),
        ('provider = "microsoft"\ntenant = "uni.example"\nclient_secret_file = "s"\n', "needs provider"),
        ('provider = "google"\nclient_secret_file = "s"\n', "needs provider"),
        ('provider = "microsoft"\ntenant = "uni.example"\nclient_id = "a"\nservice_account_file = "k"\n', "google"),
        ('provider = "microsoft"\ntenant = "uni.example"\nclient_id = "a"\n', "for one mailbox"),
        ('host = "h"\nclient_secret_file = "s"\n', "not a password login"),
    ],
)
def test_app_credentials_that_do_not_fit_are_refused(tmp_path, source, says):
    with pytest.raises(ConfigError, match=says):
        _load(tmp_path, source, admin=True)


def test_google_service_account_for_the_source(tmp_path):
    s = _load(tmp_path, 'provider = "google"\nservice_account_file = "sa.json"\n', admin=True)
    assert (s.oauth.service_account_file, s.oauth.scopes) == (tmp_path / "sa.json", ("https://mail.google.com/",))
