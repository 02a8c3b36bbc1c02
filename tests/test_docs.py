"""The docs keep up with the code: every command and admin subcommand has help with an example and is in
README.md (admin: or docs/admin.md); every config key is in the README's reference ([admin]: docs/admin.md's)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from gimport.cli import build_parser
from gimport.settings import AdminSettings, FilterSettings, GmailSettings, LabelSettings, SourceSettings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text("utf-8")
ADMIN_DOC = (ROOT / "docs" / "admin.md").read_text("utf-8")


def _commands():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sub.choices


def _admin_commands():
    admin = _commands()["admin"]
    sub = next(a for a in admin._actions if a.__class__.__name__ == "_SubParsersAction")
    return sub.choices


@pytest.mark.parametrize("name", sorted(_admin_commands()))
def test_every_admin_subcommand_has_help_with_an_example_and_is_documented(name):
    help_text = _admin_commands()[name].format_help()
    assert "example" in help_text.lower(), name
    assert f"gimport admin {name}" in help_text
    assert f"gimport admin {name}" in ADMIN_DOC or f"gimport admin {name}" in README, name


def test_every_admin_config_key_is_in_the_admin_reference():
    for f in dataclasses.fields(AdminSettings):
        assert f"`[admin] {f.name}`" in ADMIN_DOC, f"[admin] {f.name} missing from docs/admin.md"
    assert "docs/admin.md" in README


def test_every_state_key_is_in_the_readme_reference():
    # [state] has no dataclass of its own: its keys are those load_settings reads from the table
    source = (ROOT / "gimport" / "settings.py").read_text("utf-8")
    keys = set(re.findall(r'\bst\.\w+\("(\w+)"', source))
    assert keys == {"path", "log_file"}, keys  # a new key: document it, then add it here
    for key in keys:
        assert f"`[state] {key}`" in README, f"[state] {key} missing from README.md"


@pytest.mark.parametrize("name", sorted(_commands()))
def test_every_command_has_help_with_an_example_and_is_in_the_readme(name):
    help_text = _commands()[name].format_help()
    assert "example" in help_text.lower(), name
    assert f"gimport {name}" in help_text
    assert f"`{name}`" in README or f"gimport {name}" in README, f"{name} is not in README.md"


@pytest.mark.parametrize(
    ("table", "cls", "skip"),
    [
        ("source", SourceSettings, {"login"}),  # login: set by admin mode, not a config key
        ("gmail", GmailSettings, {"api_url"}),  # from GIMPORT_GMAIL_API_URL, documented separately
        ("labels", LabelSettings, {"map"}),
        ("filters", FilterSettings, set()),
    ],
)
def test_every_config_key_is_in_the_readme_reference(table, cls, skip):
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        assert re.search(rf"`\[{table}\] [^`]*\b{f.name}\b", README), f"[{table}] {f.name} missing from README.md"
    if table == "labels":
        assert "`[labels.map]" in README


def test_readme_commands_exist():
    for script in re.findall(r"^(scripts/\w+)", README, re.MULTILINE):
        assert (ROOT / script).exists(), script
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()
    assert "GIMPORT_GMAIL_API_URL" in README
