"""The docs keep up with the code: every command and admin subcommand has help with an example and is in
README.md (admin: docs/admin.md) and in the Japanese docs (README.ja.md + docs/ja/); every config key is in the
English and the Japanese reference; every English doc has a Japanese translation whose headings follow the
English ones in the same order."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest

from gimport.cli import build_parser
from gimport.config.settings import (
    AdminSettings,
    FilterSettings,
    GmailSettings,
    LabelSettings,
    SourceOAuth,
    SourceSettings,
)

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text("utf-8")
README_JA = ROOT / "README.ja.md"
JA_DIR = ROOT / "docs" / "ja"

# English doc -> its Japanese translation. Every docs/*.md must have one (test_every_english_doc_has_a_translation).
TRANSLATIONS = {ROOT / "README.md": README_JA} | {
    path: JA_DIR / path.name for path in sorted((ROOT / "docs").glob("*.md"))
}

# Sections only the Japanese docs have (they are left out when the headings are compared).
JA_ONLY_HEADINGS = {
    "README.ja.md": {"大学の移行手順との対応"},
    "auth.md": {"コンソールのメニュー名について"},
}


def _japanese_docs() -> str:
    """README.ja.md and every docs/ja/*.md, concatenated: what a Japanese reader can find a command or key in."""
    paths = [README_JA, *sorted(JA_DIR.glob("*.md"))]
    return "\n".join(p.read_text("utf-8") for p in paths if p.exists())


# The document sets a command or a config key must be in: the English README, and the Japanese docs together.
DOC_SETS = {"README.md": README, "the Japanese docs (README.ja.md + docs/ja/)": _japanese_docs()}
ADMIN_DOC_SETS = {
    "docs/admin.md": (ROOT / "docs" / "admin.md").read_text("utf-8"),
    "docs/ja/admin.md": (JA_DIR / "admin.md").read_text("utf-8") if (JA_DIR / "admin.md").exists() else "",
}


def _subcommands(parser):
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sub.choices


def _commands():
    return _subcommands(build_parser())


def _mentions_command(text: str, name: str) -> bool:
    return f"`{name}`" in text or f"gimport {name}" in text


def _admin_commands():
    return _subcommands(_commands()["admin"])


@pytest.mark.parametrize("name", sorted(_admin_commands()))
def test_every_admin_subcommand_has_help_with_an_example(name):
    help_text = _admin_commands()[name].format_help()
    assert "example" in help_text.lower(), name
    assert f"gimport admin {name}" in help_text


@pytest.mark.parametrize("docs", sorted(DOC_SETS))
def test_every_state_key_is_in_the_reference(docs):
    # [state] has no dataclass of its own: its keys are those load_settings reads from the table
    source = (ROOT / "gimport" / "config" / "load.py").read_text("utf-8")
    keys = set(re.findall(r'\bst\.\w+\("(\w+)"', source))
    assert keys == {"path", "log_file"}, keys  # a new key: document it, then add it here
    for key in keys:
        assert f"`[state] {key}`" in DOC_SETS[docs], f"[state] {key} missing from {docs}"


@pytest.mark.parametrize("name", sorted(_commands()))
def test_every_command_has_help_with_an_example(name):
    help_text = _commands()[name].format_help()
    assert "example" in help_text.lower(), name
    assert f"gimport {name}" in help_text


@pytest.mark.parametrize("docs", sorted(DOC_SETS))
@pytest.mark.parametrize("name", sorted(_commands()))
def test_every_command_is_in_the_docs(name, docs):
    assert _mentions_command(DOC_SETS[docs], name), f"{name} is not in {docs}"


@pytest.mark.parametrize("docs", sorted(ADMIN_DOC_SETS))
@pytest.mark.parametrize("name", sorted(_subcommands(_commands()["admin"])))
def test_every_admin_command_is_in_the_admin_docs(name, docs):
    assert f"gimport admin {name}" in ADMIN_DOC_SETS[docs], f"gimport admin {name} is not in {docs}"


def _missing_keys(text: str, table: str, cls, skip: set[str]) -> list[str]:
    return [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in skip and not re.search(rf"`\[{table}\] [^`]*\b{f.name}\b", text)
    ]


@pytest.mark.parametrize("docs", sorted(DOC_SETS))
@pytest.mark.parametrize(
    ("table", "cls", "skip"),
    [
        # login: set by admin mode; labels: [labels] itself; oauth: the keys of SourceOAuth below
        ("source", SourceSettings, {"login", "labels", "oauth"}),
        pytest.param("source", SourceOAuth, {"scopes"}, id="source-oauth"),  # scopes: the provider's, not a key
        ("gmail", GmailSettings, {"api_url"}),  # from GIMPORT_GMAIL_API_URL, documented separately
        ("labels", LabelSettings, {"map", "keywords"}),  # sub-tables, checked below
        ("filters", FilterSettings, set()),
    ],
)
def test_every_config_key_is_in_the_reference(table, cls, skip, docs):
    text = DOC_SETS[docs]
    missing = _missing_keys(text, table, cls, skip)
    assert not missing, f"[{table}] {', '.join(missing)} missing from {docs}"
    if table == "labels":
        assert "`[labels.map]" in text, f"[labels.map] missing from {docs}"
        assert "`[labels.keywords]" in text, f"[labels.keywords] missing from {docs}"


@pytest.mark.parametrize("docs", sorted(ADMIN_DOC_SETS))
def test_every_admin_config_key_is_in_the_admin_docs(docs):
    missing = _missing_keys(ADMIN_DOC_SETS[docs], "admin", AdminSettings, set())
    assert not missing, f"[admin] {', '.join(missing)} missing from {docs}"


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
        assert "example" in help_text.lower(), name
        assert f"gimport admin {name}" in help_text, name
        assert f"gimport admin {name}" in admin_doc, name
        assert f"admin {name}" in README, name


def test_readme_commands_exist():
    for script in re.findall(r"^(scripts/\w+)", README, re.MULTILINE):
        assert (ROOT / script).exists(), script
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()
    assert "GIMPORT_GMAIL_API_URL" in README
    assert "GIMPORT_GMAIL_API_URL" in README_JA.read_text("utf-8")


def test_every_english_doc_has_a_translation_and_they_link_to_each_other():
    for english, japanese in TRANSLATIONS.items():
        assert japanese.exists(), f"{english.relative_to(ROOT)} has no Japanese translation at {japanese}"
        en_top = english.read_text("utf-8").lstrip().splitlines()[0]
        ja_top = japanese.read_text("utf-8").lstrip().splitlines()[0]
        assert f"]({_relative(english, japanese)})" in en_top, f"the first line of {english.name} links to {japanese}"
        assert f"]({_relative(japanese, english)})" in ja_top, f"the first line of {japanese.name} links to {english}"


def _relative(origin: Path, target: Path) -> str:
    """The link from the file `origin` to the file `target`, as written in Markdown."""
    return Path(os.path.relpath(target, origin.parent)).as_posix()


def _headings(text: str) -> list[tuple[int, str]]:
    """(level, text) of every Markdown heading outside fenced code blocks."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"(#{1,6}) (.+)", line)):
            out.append((len(m.group(1)), m.group(2).strip()))
    return out


def _shape(heading: str) -> tuple[str, list[str]]:
    """What an English heading and its translation have in common: the section number and the `code` in it."""
    number = re.match(r"(\d+\.)?", heading).group(0)
    return number, sorted(re.findall(r"`[^`]+`", heading))


@pytest.mark.parametrize("english", sorted(TRANSLATIONS), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_japanese_headings_follow_the_english_ones(english):
    japanese = TRANSLATIONS[english]
    if not japanese.exists():
        pytest.fail(f"{english.relative_to(ROOT)} has no Japanese translation at {japanese}")
    only = JA_ONLY_HEADINGS.get(japanese.name, set())
    en = _headings(english.read_text("utf-8"))
    ja = [h for h in _headings(japanese.read_text("utf-8")) if h[1] not in only]
    assert len(en) == len(ja), (
        f"{japanese.name} has {len(ja)} headings, {english.name} {len(en)}: "
        f"{[h for _, h in en]} vs {[h for _, h in ja]}"
    )
    for (en_level, en_text), (ja_level, ja_text) in zip(en, ja, strict=True):
        assert (en_level, _shape(en_text)) == (ja_level, _shape(ja_text)), f"{en_text!r} vs {ja_text!r}"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


@pytest.mark.parametrize("path", [README_JA, *sorted(JA_DIR.glob("*.md"))], ids=lambda p: p.name)
def test_japanese_links_resolve(path):
    text = path.read_text("utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        file_part, _, fragment = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        assert dest.exists(), f"{path.name}: link to a missing file: {target}"
        if fragment:
            dest_text = dest.read_text("utf-8")
            anchors = {_slug(h) for _, h in _headings(dest_text)} | set(re.findall(r'<a id="([^"]+)"', dest_text))
            assert fragment in anchors, f"{path.name}: link to a missing anchor: {target}"
