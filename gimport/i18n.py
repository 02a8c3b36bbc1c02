"""Translations: every string a person reads goes through `_()` (or `ngettext`).

The language is chosen as GNU gettext does, from LANGUAGE, LC_ALL, LC_MESSAGES and LANG (so
`LANG=ja_JP.UTF-8 gimport ...` speaks Japanese and `LANG=C` English). Catalogs are
`gimport/locale/<lang>/LC_MESSAGES/gimport.mo`, compiled from the `.po` sources beside them.

install() also makes gimport's catalog the process's default text domain, so that argparse's own
words ("usage:", "options:", its error messages), which argparse looks up through the module-level
gettext functions, are translated from the same catalog.

Log files, JSON output, exit codes and config keys are machine-readable and stay English: never pass
them through `_()`.
"""

from __future__ import annotations

import gettext
from pathlib import Path

DOMAIN = "gimport"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"

_translation: gettext.NullTranslations | None = None


def translation() -> gettext.NullTranslations:
    """The catalog for the current environment (looked up once per process; reset() looks again)."""
    global _translation
    if _translation is None:
        _translation = gettext.translation(DOMAIN, localedir=str(LOCALE_DIR), fallback=True)
    return _translation


def reset() -> None:
    """Forget the chosen catalog (tests that change LANG in-process)."""
    global _translation
    _translation = None


def _(message: str) -> str:
    """The translation of `message` (itself when there is none)."""
    return translation().gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translation().ngettext(singular, plural, n)


def install() -> None:
    """Route the module-level gettext functions (used by argparse) to gimport's catalog."""
    gettext.bindtextdomain(DOMAIN, str(LOCALE_DIR))
    gettext.textdomain(DOMAIN)


def is_japanese() -> bool:
    """Whether the chosen catalog is the Japanese one (for choices that are not a string lookup)."""
    info = translation().info() if hasattr(translation(), "info") else {}
    return info.get("language", "").startswith("ja")


__all__ = ["_", "ngettext", "install", "translation", "reset", "is_japanese", "DOMAIN", "LOCALE_DIR"]
