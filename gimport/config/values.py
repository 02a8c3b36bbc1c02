"""Reading and checking the values of gimport.toml's tables: one typed getter per kind of value, each
error a ConfigError naming the table and key and what is allowed (used by gimport.config.load)."""

from __future__ import annotations

import builtins
import datetime as dt
import math
import os
import re
from pathlib import Path
from typing import Any

from gimport.errors import ConfigError
from gimport.i18n import _


class Table:
    """Typed access to one TOML table that remembers which keys were read, to reject unknown ones."""

    def __init__(self, name: str, data: Any, base: Path) -> None:
        if not isinstance(data, dict):
            raise ConfigError(_("[{name}] must be a table").format(name=name))
        self.name, self.data, self.base = name, data, base
        self.used: set[str] = set()

    def _get(self, key: str, kinds: tuple[type, ...], what: str, required: bool, default: Any) -> Any:
        self.used.add(key)
        if key not in self.data:
            if required:
                raise ConfigError(_("[{name}] {key} is required ({what})").format(name=self.name, key=key, what=what))
            return default
        value = self.data[key]
        # bool is an int in Python; never accept it where a number is meant
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            raise ConfigError(
                _("[{name}] {key} must be {what}, not {value!r}").format(
                    name=self.name, key=key, what=what, value=value
                )
            )
        return value

    def str(self, key: str, default: Any = None, *, required: bool = False, choices: Any = None) -> Any:
        value = self._get(key, (str,), _("a string"), required, default)
        if choices and value is not None and value not in choices:
            raise ConfigError(
                _("[{name}] {key} must be one of {choices}, not {value!r}").format(
                    name=self.name, key=key, choices=", ".join(choices), value=value
                )
            )
        if required and not value.strip():
            raise ConfigError(_("[{name}] {key} must not be empty").format(name=self.name, key=key))
        return value

    def int(self, key: builtins.str, default: int | None = None, *, minimum: int = 0, maximum: int) -> Any:
        value = self._get(key, (int,), _("a whole number"), False, default)
        if value is not None and value < minimum:
            raise ConfigError(
                _("[{name}] {key} must be at least {minimum}, not {value}").format(
                    name=self.name, key=key, minimum=minimum, value=short(value)
                )
            )
        if value is not None and value > maximum:
            raise ConfigError(
                _("[{table}] {key} must be at most {maximum:,}, not {value}").format(
                    table=self.name, key=key, maximum=maximum, value=short(value)
                )
            )
        return value

    def number(self, key: builtins.str, default: float | None = None, *, maximum: float) -> Any:
        """A number above 0 and at most `maximum` (never nan or infinity)."""
        value = self._get(key, (int, float), _("a number"), False, default)
        if value is not None and not (math.isfinite(value) and 0 < value <= maximum):
            raise ConfigError(
                _("[{table}] {key} must be greater than 0 and at most {maximum:,}, not {value}").format(
                    table=self.name, key=key, maximum=maximum, value=short(value)
                )
            )
        return value

    def path(self, key: builtins.str, default: Any = None) -> Any:
        """The path relative to the config file's folder; None when unset without a default."""
        value = self.str(key, default)
        if value is None:
            return None
        # made absolute without following symbolic links: gimport opens its own files with O_NOFOLLOW, so a
        # link someone else planted where the state or log file goes is refused, not followed here
        return Path(os.path.abspath(self.base / os.path.expanduser(value)))

    def str_list(self, key: builtins.str) -> tuple[builtins.str, ...]:
        value = self._get(key, (list,), _("a list of strings"), False, [])
        if not all(isinstance(v, str) and v for v in value):
            raise ConfigError(
                _("[{name}] {key} must be a list of non-empty strings, not {value!r}").format(
                    name=self.name, key=key, value=value
                )
            )
        return tuple(value)

    def flag(self, key: builtins.str, default: bool = False) -> bool:
        """true or false."""
        return bool(self._get(key, (bool,), _("true or false"), False, default))

    def date(self, key: builtins.str) -> dt.date | None:
        value: dt.date | str | None = self._get(key, (dt.date, str), _("a date like 2015-01-01"), False, None)
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                raise ConfigError(
                    _("[{name}] {key} must be a date like 2015-01-01, not {value!r}").format(
                        name=self.name, key=key, value=value
                    )
                ) from None
        return value

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            allowed = ", ".join(sorted(self.used))
            raise ConfigError(
                _("[{name}] unknown key {unknown!r} (allowed: {allowed})").format(
                    name=self.name, unknown=unknown[0], allowed=allowed
                )
            )


def short(value: Any) -> str:
    """A value for an error message, cut to a readable length (a 10^20 or a 300-character string)."""
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_user(user: str) -> None:
    # IMAP LOGIN carries ASCII; a control character (CR, LF) would end the command early
    if any(c in user for c in "\r\n\0"):
        raise ConfigError(
            _("[source] {key} holds a line break or NUL").format(key="user"),
            hint=_("it would reach the IMAP server as a second command; write it on one line"),
        )
    if not all(" " < ch < "\x7f" for ch in user):
        raise ConfigError(
            _(
                "[source] user must be plain ASCII letters, digits and signs (no spaces, no control characters), not {value!r}"
            ).format(value=short(user))
        )


def check_host(host: str) -> None:
    """A host name (IDNA), an IPv4 address or an IPv6 address, or ConfigError."""
    if ":" in host:  # IPv6
        import ipaddress

        try:
            ipaddress.IPv6Address(host.strip("[]"))
            return
        except ValueError:
            pass
    else:
        try:
            encoded = host.rstrip(".").encode("idna")
        except UnicodeError:
            encoded = b""
        labels = encoded.split(b".")
        if 0 < len(encoded) <= 253 and all(
            re.fullmatch(rb"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?", lb) for lb in labels
        ):
            return
    raise ConfigError(
        _(
            "[source] host must be a host name (at most 253 characters, 63 between dots) or an IP address, not {value!r}"
        ).format(value=short(host))
    )


def check_globs(table: str, key: str, globs: tuple[str, ...]) -> None:
    for g in globs:
        if g.count("[") != g.count("]") or "//" in g or g.startswith("/"):
            raise ConfigError(
                _("[{table}] {key}: {glob!r} is not a valid folder glob (use '/' between levels)").format(
                    table=table, key=key, glob=g
                )
            )
