"""gimport's message catalogs with Babel: extract -> update -> compile (run through scripts/i18n).

- extract: every `_()`, `N_()`, `ngettext()` in gimport/ (babel.cfg) plus argparse's own words from the
  running Python's Lib/argparse.py (argparse looks them up in gimport's catalog, see gimport/i18n.py),
  into gimport/locale/gimport.pot;
- update: merge the template into each gimport/locale/<lang>/LC_MESSAGES/gimport.po (new messages come in
  untranslated, changed ones as fuzzy, removed ones are dropped);
- compile: each .po into the .mo beside it (in git, so that every install has them;
  tests/unit/test_catalogs.py fails while a .mo is stale against its .po).

Usage: scripts/i18n            # all three, then lists what still needs a translation (exit 1 if any)
       scripts/i18n compile    # only compile
       scripts/i18n init LANG  # start a new language

The files are written without line numbers and sorted by msgid, so that two branches adding messages
rarely touch the same lines.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import sys
from collections.abc import Iterator
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir, extract_from_file
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "gimport" / "locale"
POT = LOCALE / "gimport.pot"
MAPPING = ROOT / "babel.cfg"
DOMAIN = "gimport"
COMMENT_TAGS = ("TRANSLATORS:",)
# fixed, so that regenerating an unchanged template changes nothing (no merge conflicts on a date)
TEMPLATE_DATE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
ARGPARSE_LOCATION = "argparse.py"  # the running Python's Lib/argparse.py, whatever its path


def _gimport_messages() -> Iterator[tuple[str, int, str | tuple[str, ...], list[str], str | None]]:
    with open(MAPPING, encoding="utf-8") as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    yield from extract_from_dir(
        ROOT,
        method_map,
        options_map,
        keywords=DEFAULT_KEYWORDS,
        comment_tags=COMMENT_TAGS,
        strip_comment_tags=True,
    )


def _argparse_messages() -> Iterator[tuple[str, int, str | tuple[str, ...], list[str], str | None]]:
    path = Path(argparse.__file__)
    for lineno, message, comments, context in extract_from_file(
        "python", path, keywords=DEFAULT_KEYWORDS, comment_tags=COMMENT_TAGS, strip_comment_tags=True
    ):
        yield ARGPARSE_LOCATION, lineno, message, [*comments, "argparse's own words"], context


def extract() -> Catalog:
    """The template: gimport's messages, then argparse's."""
    catalog = Catalog(project="gimport", domain=DOMAIN, creation_date=TEMPLATE_DATE, charset="utf-8", fuzzy=False)
    for source in (_gimport_messages(), _argparse_messages()):
        for filename, lineno, message, comments, context in source:
            catalog.add(message, None, [(str(filename), lineno)], auto_comments=comments, context=context)
    return catalog


def argparse_msgids() -> set[str]:
    """The msgids argparse of the running Python looks up (singular forms)."""
    return {m if isinstance(m, str) else m[0] for _, _, m, _, _ in _argparse_messages()}


def _write(path: Path, catalog: Catalog) -> bool:
    buf = io.BytesIO()
    write_po(buf, catalog, width=100, sort_output=True, ignore_obsolete=True, include_lineno=False)
    data = buf.getvalue()
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return True


def po_files() -> list[Path]:
    return sorted(LOCALE.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))


def read(path: Path) -> Catalog:
    with open(path, "rb") as fh:
        return read_po(fh, domain=DOMAIN)


def update(template: Catalog) -> None:
    for po in po_files():
        catalog = read(po)
        catalog.update(template, update_creation_date=False)
        if _write(po, catalog):
            print(f"updated {po.relative_to(ROOT)}")


def compile_po(po: Path, mo: Path) -> None:
    """Compile one .po into `mo` (untranslated and fuzzy messages are left out: English is shown)."""
    catalog = read(po)
    mo.parent.mkdir(parents=True, exist_ok=True)
    with open(mo, "wb") as fh:
        write_mo(fh, catalog, use_fuzzy=False)


def compile_all() -> None:
    for po in po_files():
        compile_po(po, po.with_suffix(".mo"))


def missing(catalog: Catalog) -> list[Message]:
    """Messages without a usable translation: empty (any plural form) or fuzzy."""
    out = []
    for msg in catalog:
        if not msg.id:
            continue
        strings = msg.string if isinstance(msg.string, tuple | list) else (msg.string,)
        if msg.fuzzy or not all(strings):
            out.append(msg)
    return out


def init(lang: str, template: Catalog) -> None:
    po = LOCALE / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    if po.exists():
        sys.exit(f"{po.relative_to(ROOT)} exists already")
    catalog = Catalog(locale=lang, domain=DOMAIN, project="gimport", creation_date=TEMPLATE_DATE, fuzzy=False)
    catalog.update(template, update_creation_date=False)
    _write(po, catalog)
    print(f"created {po.relative_to(ROOT)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/i18n", description="extract -> update -> compile")
    parser.add_argument("step", nargs="?", choices=("all", "compile", "init"), default="all")
    parser.add_argument("lang", nargs="?")
    args = parser.parse_args(argv)
    if args.step == "compile":
        compile_all()
        return 0
    template = extract()
    if _write(POT, template):
        print(f"wrote {POT.relative_to(ROOT)} ({len(template)} messages)")
    if args.step == "init":
        if not args.lang:
            parser.error("init needs a language, e.g. 'scripts/i18n init ja'")
        init(args.lang, template)
    update(template)
    compile_all()
    todo = 0
    for po in po_files():
        left = missing(read(po))
        todo += len(left)
        for msg in left:
            where = ", ".join(f for f, _ in msg.locations[:1])
            print(f"{po.relative_to(ROOT)}: {'fuzzy' if msg.fuzzy else 'untranslated'} ({where}): {msg.id!r}")
    return 1 if todo else 0


if __name__ == "__main__":
    sys.exit(main())
