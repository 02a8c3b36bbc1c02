"""The docs keep up with the code: every command has help with an example and is in README.md; every
config key is in the README's reference."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from gimport.cli import build_parser
from gimport.settings import AdminSettings, FilterSettings, GmailSettings, LabelSettings, SourceSettings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text("utf-8")


def _commands():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sub.choices


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


def test_every_admin_key_is_documented():
    """Every [admin] key is in docs/admin.md's table; the campus-planning ones in the README's reference too."""
    admin_doc = (ROOT / "docs" / "admin.md").read_text("utf-8")
    for f in dataclasses.fields(AdminSettings):
        assert f"| `[admin] {f.name}` |" in admin_doc, f"[admin] {f.name} missing from docs/admin.md"
    for key in ("project_units_per_day", "shard_map"):
        assert f"| `[admin] {key}` |" in README, f"[admin] {key} missing from README.md"


def test_every_admin_command_has_help_with_an_example_and_is_documented():
    admin = _commands()["admin"]
    sub = next(a for a in admin._actions if a.__class__.__name__ == "_SubParsersAction")
    admin_doc = (ROOT / "docs" / "admin.md").read_text("utf-8")
    for name, parser in sub.choices.items():
        help_text = parser.format_help()
        assert "example" in help_text.lower() and f"gimport admin {name}" in help_text, name
        assert f"gimport admin {name}" in admin_doc and f"admin {name}" in README, name


def test_readme_commands_exist():
    for script in re.findall(r"^(scripts/\w+)", README, re.MULTILINE):
        assert (ROOT / script).exists(), script
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()
    assert "GIMPORT_GMAIL_API_URL" in README
