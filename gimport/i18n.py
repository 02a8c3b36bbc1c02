"""Translations: every string a person reads goes through `_()` (or `ngettext`).

The language is chosen as GNU gettext does, from LANGUAGE, LC_ALL, LC_MESSAGES and LANG (so
`LANG=ja_JP.UTF-8 gimport ...` speaks Japanese and `LANG=C` English). Catalogs are
`gimport/locale/<lang>/LC_MESSAGES/gimport.mo`, compiled from the `.po` sources beside them by
`scripts/i18n` and kept in git, so that any install, an editable one included, speaks every language.

install() also makes gimport's catalog the process's default text domain, so that argparse's own
words ("usage:", "options:", its error messages), which argparse looks up through the module-level
gettext functions, are translated from the same catalog (scripts/i18n extracts them from the running
Python's argparse.py into gimport's catalog).

Log files, JSON output, exit codes and config keys are machine-readable and stay English: never pass
them through `_()`. A text that is both logged and shown keeps its English: `_()` returns a `Text`, a
str in the reader's language that remembers the English (`english(text)`, also through `.format()`),
so a log line or the state file can record `english(x)` while the terminal shows `x`.

Conventions for msgids: constant strings only (no f-strings); placeholders by name,
`_("cannot read {path}").format(path=p)`; `N_()` marks a constant defined before the language is
known (module level) and translated where it is shown, `_(CONSTANT)`.
"""

from __future__ import annotations

import gettext
from pathlib import Path
from typing import Any

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


class Text(str):
    """A translated string that remembers its English original (`.english`).

    `.format()` formats both, using the English of arguments that are Text or gimport errors, so
    `english(_("x {a}").format(a=_("y")))` is all English. Any other str operation gives a plain str."""

    english: str

    def __new__(cls, translated: str, english: str) -> Text:
        obj = super().__new__(cls, translated)
        obj.english = english
        return obj

    def __getnewargs__(self) -> tuple[str, str]:  # type: ignore[override]  # copy / pickle keep both
        return (str(self), self.english)

    def format(self, *args: Any, **kwargs: Any) -> Text:  # str's name
        en_args = [english(a) if _has_english(a) else a for a in args]
        en_kwargs = {k: english(v) if _has_english(v) else v for k, v in kwargs.items()}
        return Text(str.format(self, *args, **kwargs), str.format(self.english, *en_args, **en_kwargs))


def _has_english(value: object) -> bool:
    return isinstance(value, Text) or callable(getattr(value, "english", None))


def english(value: object) -> str:
    """The English of `value`: a Text's original, a gimport error's English (`err.english()`), else str()."""
    if isinstance(value, Text):
        return value.english
    method = getattr(value, "english", None)
    if callable(method):
        return str(method())
    return str(value)


def _(message: str) -> Text:
    """The translation of `message` (itself when there is none), remembering the English."""
    return Text(translation().gettext(message), message)


def ngettext(singular: str, plural: str, n: int) -> Text:
    """The translation of `singular` or `plural`, as `n` needs (the English is chosen the English way)."""
    return Text(translation().ngettext(singular, plural, n), singular if n == 1 else plural)


def N_(message: str) -> str:  # gettext's conventional name
    """Mark `message` for extraction without translating it now (translate where it is shown)."""
    return message


def install() -> None:
    """Route the module-level gettext functions (used by argparse) to gimport's catalog."""
    gettext.bindtextdomain(DOMAIN, str(LOCALE_DIR))
    gettext.textdomain(DOMAIN)


def is_japanese() -> bool:
    """Whether the chosen catalog is the Japanese one (for choices that are not a string lookup)."""
    info = translation().info() if hasattr(translation(), "info") else {}
    return info.get("language", "").startswith("ja")


__all__ = [
    "DOMAIN",
    "LOCALE_DIR",
    "N_",
    "Text",
    "_",
    "english",
    "install",
    "is_japanese",
    "ngettext",
    "reset",
    "translation",
]
