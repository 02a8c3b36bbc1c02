"""The compiled catalogs (.mo) are in git so that any install speaks every language with no build step;
this fails while one is stale against its .po (run `scripts/i18n compile` and commit the .mo)."""

import gettext
import importlib.util
import io
from pathlib import Path

import pytest
from babel.messages.mofile import write_mo

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("gimport_i18n_tool", ROOT / "scripts" / "i18n.py")
assert _spec is not None
assert _spec.loader is not None
tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tool)


def messages(mo: bytes) -> dict:
    """The translations a .mo holds; the header left out (it names the Babel version that wrote it)."""
    catalog = dict(gettext.GNUTranslations(io.BytesIO(mo))._catalog)  # type: ignore[attr-defined]
    catalog.pop("", None)
    return catalog


@pytest.mark.parametrize("po", tool.po_files(), ids=lambda p: p.parent.parent.name)
def test_the_compiled_catalog_matches_its_source(po):
    mo = po.with_suffix(".mo")
    assert mo.exists(), f"{mo.relative_to(ROOT)} is missing: run scripts/i18n compile"
    fresh = io.BytesIO()
    write_mo(fresh, tool.read(po), use_fuzzy=False)
    committed = messages(mo.read_bytes())
    expected = messages(fresh.getvalue())
    assert committed == expected, f"{mo.relative_to(ROOT)} is stale against its .po: run scripts/i18n compile"
    assert len(committed) > 100  # not an empty catalog compared with another
