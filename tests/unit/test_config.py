"""Config validation: every mistake is one line naming the key and what is allowed."""

import datetime as dt

import pytest

from gimport.config.load import load_settings
from gimport.errors import ConfigError

GOOD = """
[source]
host = "mail.example.ac.jp"
user = "kt12345"
password_file = "pw.txt"
[gmail]
client_secrets = "credentials.json"
[state]
path = "state/gimport.sqlite"
[labels]
prefix = "ECCS/"
exclude = ["Junk", "Trash/*"]
[labels.map]
"Sent" = "SENT"
"Projects" = ["Work", "STARRED"]
[filters]
since = 2015-01-01
before = "2024-04-01"
max_size_mb = 100
"""


def write(tmp_path, text):
    p = tmp_path / "gimport.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_good_config_with_relative_paths(tmp_path):
    s = load_settings(write(tmp_path, GOOD), env={})
    assert s.source.port == 993
    assert s.source.security == "ssl"
    assert s.source.password_file == tmp_path / "pw.txt"
    assert s.state_path == tmp_path / "state" / "gimport.sqlite"
    assert s.gmail.token_file == tmp_path / "token.json"
    assert s.gmail.quota_units_per_minute == 6000
    assert s.labels.map == {"Sent": ("SENT",), "Projects": ("Work", "STARRED")}
    assert s.filters.since == dt.date(2015, 1, 1)
    assert s.filters.before == dt.date(2024, 4, 1)
    assert s.gmail.api_url is None


def test_api_url_comes_from_the_environment(tmp_path):
    s = load_settings(write(tmp_path, GOOD), env={"GIMPORT_GMAIL_API_URL": "http://127.0.0.1:1/"})
    assert s.gmail.api_url == "http://127.0.0.1:1/"


def test_starttls_and_plain_default_to_143(tmp_path):
    text = '[source]\nhost="h"\nuser="u"\nsecurity="starttls"\n'
    assert load_settings(write(tmp_path, text), env={}).source.port == 143


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[source]\nhost="h"\n', "[source] user is required"),
        ('[source]\nhost="h"\nuser="u"\nport="993"\n', "[source] port must be a whole number"),
        ('[source]\nhost="h"\nuser="u"\nport=true\n', "[source] port must be a whole number"),
        ('[source]\nhost="h"\nuser="u"\nsecurity="tls"\n', "must be one of ssl, starttls, plain"),
        ('[source]\nhost="h"\nuser="u"\npassword="x"\n', "unknown key 'password'"),
        ('[source]\nhost="h"\nuser="u"\npassword_file="a"\npassword_env="B"\n', "not both"),
        ('[source]\nhost="h"\nuser="u"\n[gmial]\n', "unknown table [gmial]"),
        ('[source]\nhost="h"\nuser="u"\n[gmail]\nquota_units_per_minute=10\n', "at least 25"),
        ('[source]\nhost="h"\nuser="u"\n[labels.map]\nDrafts="DRAFT"\n', "does not let an import set DRAFT"),
        ('[source]\nhost="h"\nuser="u"\n[labels.map]\nX="CHAT"\n', "does not let an import set CHAT"),
        ('[source]\nhost="h"\nuser="u"\n[labels.map]\nX="CATEGORY_WORK"\n', "not a Gmail system label id"),
        ('[source]\nhost="h"\nuser="u"\n[labels.map]\nX=3\n', "must be a label name"),
        ('[source]\nhost="h"\nuser="u"\n[labels]\nexclude="Junk"\n', "must be a list"),
        ('[source]\nhost="h"\nuser="u"\n[labels]\nexclude=["[abc"]\n', "not a valid folder glob"),
        ('[source]\nhost="h"\nuser="u"\n[labels]\nvisibility="show"\n', "labelShow, labelShowIfUnread, labelHide"),
        ('[source]\nhost="h"\nuser="u"\n[filters]\nsince="last year"\n', "must be a date like 2015-01-01"),
        ('[source]\nhost="h"\nuser="u"\n[filters]\nsince=2024-01-01\nbefore=2020-01-01\n', "must be before"),
        ('[source]\nhost="h"\nuser="u"\n[filters]\nmax_size_mb=0\n', "greater than 0"),
        ("[source\n", "not valid TOML"),
        ("", "[source] is required"),
    ],
)
def test_bad_configs_say_which_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, text), env={})
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_config_file_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="not found: write one"):
        load_settings(tmp_path / "nope.toml", env={})


def test_auth_needs_no_source(tmp_path):
    s = load_settings(write(tmp_path, '[gmail]\ntoken_file="t.json"\n'), env={}, need_source=False)
    assert s.gmail.token_file == tmp_path / "t.json"


def test_import_fix_dates(tmp_path):
    assert load_settings(write(tmp_path, GOOD), env={}).importing.fix_dates is True
    s = load_settings(write(tmp_path, GOOD + "[import]\nfix_dates = false\n"), env={})
    assert s.importing.fix_dates is False
    with pytest.raises(ConfigError, match=r"\[import\] fix_dates must be true or false"):
        load_settings(write(tmp_path, GOOD + '[import]\nfix_dates = "no"\n'), env={})
    with pytest.raises(ConfigError, match=r"\[import\] unknown key 'fix_date'"):
        load_settings(write(tmp_path, GOOD + "[import]\nfix_date = false\n"), env={})
