"""Loading and validating gimport.toml into typed, immutable settings.

The only module that reads the config file. Every problem is a ConfigError naming the key and what is
allowed, so the CLI can print one line and exit 2.
"""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gimport.errors import ConfigError
from gimport.i18n import _

DEFAULT_CONFIG = "gimport.toml"
DEFAULT_QUOTA = 6000  # units/min/user for Cloud projects created since May 2026 (15000 for older ones)
DEFAULT_PROJECT_QUOTA = 1_200_000  # units/min for the whole Cloud project (admin mode)
API_URL_ENV = "GIMPORT_GMAIL_API_URL"
SYSTEM_LABEL_IDS = frozenset(
    {
        "INBOX",
        "SPAM",
        "TRASH",
        "UNREAD",
        "STARRED",
        "IMPORTANT",
        "SENT",
        "CATEGORY_PERSONAL",
        "CATEGORY_SOCIAL",
        "CATEGORY_PROMOTIONS",
        "CATEGORY_UPDATES",
        "CATEGORY_FORUMS",
    }
)
UNUSABLE_SYSTEM_LABELS = {
    "DRAFT": "Gmail does not let an import set DRAFT; map the folder to a user label such as 'Drafts (imported)'",
    "CHAT": "Gmail does not let an import set CHAT; map the folder to a user label",
}


@dataclass(frozen=True)
class SourceSettings:
    host: str
    user: str
    port: int = 993
    security: str = "ssl"  # ssl | starttls | plain
    password_file: Path | None = None
    password_env: str | None = None
    ca_file: Path | None = None
    timeout: float = 60.0
    login: str | None = None  # the name sent to LOGIN when it differs from `user` (admin mode: master users)


@dataclass(frozen=True)
class GmailSettings:
    client_secrets: Path
    token_file: Path
    user: str | None = None  # expected account; run refuses any other
    quota_units_per_minute: int = DEFAULT_QUOTA
    workers: int = 8
    api_url: str | None = None  # from GIMPORT_GMAIL_API_URL only
    give_up_after: float = 600.0  # seconds with no answer from Gmail before a run stops (exit 5)


@dataclass(frozen=True)
class LabelSettings:
    prefix: str = ""
    exclude: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    visibility: str = "labelShow"
    map: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class FilterSettings:
    since: dt.date | None = None
    before: dt.date | None = None
    max_size_mb: float | None = None


@dataclass(frozen=True)
class AdminSettings:
    """[admin]: `gimport admin` (many mailboxes with a service account); see docs/admin.md."""

    state_dir: Path
    report_file: Path
    service_account_file: Path | None = None
    users_file: Path | None = None
    parallel_users: int = 4
    project_units_per_minute: int = DEFAULT_PROJECT_QUOTA
    memory_budget_mb: int = 512  # bytes of fetched messages waiting for import, all users together
    master_user: str | None = None
    master_password_file: Path | None = None
    master_login: str = "{user}*{master}"  # Dovecot's default auth_master_user_separator is "*"
    # N shards, fixed: the index alone comes from the job (Slurm array task id, Kubernetes completion index),
    # so resubmitting or retrying one index keeps its users. None: N comes from the job, as before.
    shard_count: int | None = None


@dataclass(frozen=True)
class Settings:
    config_path: Path
    source: SourceSettings
    gmail: GmailSettings
    state_path: Path
    log_file: Path
    labels: LabelSettings = field(default_factory=LabelSettings)
    filters: FilterSettings = field(default_factory=FilterSettings)
    admin: AdminSettings | None = None  # always set by load_settings


class _Table:
    """Typed access to one TOML table that remembers which keys were read, to reject unknown ones."""

    def __init__(self, name: str, data: Any, base: Path) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"[{name}] must be a table")
        self.name, self.data, self.base, self.used = name, data, base, set()

    def _get(self, key: str, kinds: tuple[type, ...], what: str, required: bool, default: Any) -> Any:
        self.used.add(key)
        if key not in self.data:
            if required:
                raise ConfigError(f"[{self.name}] {key} is required ({what})")
            return default
        value = self.data[key]
        # bool is an int in Python; never accept it where a number is meant
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            raise ConfigError(f"[{self.name}] {key} must be {what}, not {value!r}")
        return value

    def str(self, key: str, default: str | None = None, *, required: bool = False, choices=None) -> Any:
        value = self._get(key, (str,), "a string", required, default)
        if choices and value is not None and value not in choices:
            raise ConfigError(f"[{self.name}] {key} must be one of {', '.join(choices)}, not {value!r}")
        if required and not value.strip():
            raise ConfigError(f"[{self.name}] {key} must not be empty")
        return value

    def int(self, key: str, default: int | None = None, *, minimum: int = 0) -> Any:
        value = self._get(key, (int,), "a whole number", False, default)
        if value is not None and value < minimum:
            raise ConfigError(f"[{self.name}] {key} must be at least {minimum}, not {value}")
        return value

    def number(self, key: str, default: float | None = None) -> Any:
        value = self._get(key, (int, float), "a number", False, default)
        if value is not None and value <= 0:
            raise ConfigError(f"[{self.name}] {key} must be greater than 0, not {value}")
        return value

    def path(self, key: str, default: str | None = None) -> Path | None:
        value = self.str(key, default)
        if value is None:
            return None
        return (self.base / os.path.expanduser(value)).resolve()

    def str_list(self, key: str) -> tuple[str, ...]:
        value = self._get(key, (list,), "a list of strings", False, [])
        if not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"[{self.name}] {key} must be a list of non-empty strings, not {value!r}")
        return tuple(value)

    def date(self, key: str) -> dt.date | None:
        value = self._get(key, (dt.date, str), "a date like 2015-01-01", False, None)
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                raise ConfigError(f"[{self.name}] {key} must be a date like 2015-01-01, not {value!r}") from None
        return value

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            allowed = ", ".join(sorted(self.used))
            raise ConfigError(f"[{self.name}] unknown key {unknown[0]!r} (allowed: {allowed})")


def _label_map(raw: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, dict):
        raise ConfigError("[labels.map] must be a table of folder = label (or a list of labels)")
    result: dict[str, tuple[str, ...]] = {}
    for folder, target in raw.items():
        targets = [target] if isinstance(target, str) else target
        if not isinstance(targets, list) or not all(isinstance(t, str) and t.strip() for t in targets):
            raise ConfigError(
                f"[labels.map] {folder!r} must be a label name, a system label id, or a list of them, not {target!r}"
            )
        for t in targets:
            if t in UNUSABLE_SYSTEM_LABELS:
                raise ConfigError(f"[labels.map] {folder!r} = {t!r}: {UNUSABLE_SYSTEM_LABELS[t]}")
            if t.isupper() and "_" in t and t not in SYSTEM_LABEL_IDS and "/" not in t:
                raise ConfigError(
                    f"[labels.map] {folder!r} = {t!r} is not a Gmail system label id"
                    f" (allowed: {', '.join(sorted(SYSTEM_LABEL_IDS))}); write a user label name otherwise"
                )
        result[folder] = tuple(targets)
    return result


def _check_globs(table: str, key: str, globs: tuple[str, ...]) -> None:
    for g in globs:
        if g.count("[") != g.count("]") or "//" in g or g.startswith("/"):
            raise ConfigError(f"[{table}] {key}: {g!r} is not a valid folder glob (use '/' between levels)")


def read_secret(path: Path, what: str) -> str:
    """A password from a file (a trailing newline is not part of it). ConfigError naming `what`."""
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"{what} {path}: {exc.strerror}") from None
    secret = text.rstrip("\r\n")
    if not secret:
        raise ConfigError(f"{what} {path} is empty")
    if any(c in secret for c in "\r\n\0"):
        # a line break would end the IMAP command early and let the rest reach the server as a command
        raise ConfigError(
            _("{what} {path} holds a line break or NUL inside the password").format(what=what, path=path),
            hint=_("the file must hold the password alone, on one line"),
        )
    return secret


def lock_path(state_path: Path) -> Path:
    """The lock file that goes with a state file: <state>.lock."""
    state_path = Path(state_path)
    return state_path.with_name(state_path.name + ".lock")


def load_settings(
    path: str | os.PathLike[str],
    *,
    env: dict[str, str] | None = None,
    need_source: bool = True,
    admin: bool = False,
    missing_ok: bool = False,
) -> Settings:
    """Read and validate the config file. Raises ConfigError (exit 2) with the key at fault.

    With need_source=False (gimport auth, cleanup) a config without [source] is accepted; the source
    settings are then placeholders that must not be used. With admin=True (gimport admin) [source] names
    the server only: user and password come from the users file, so [source] user/password_file/
    password_env are refused, and source.user is a placeholder. With missing_ok=True (gimport auth with
    the default config) a missing file means all defaults, relative to its folder."""
    env = os.environ if env is None else env
    config_path = Path(path).expanduser().resolve()
    try:
        with open(config_path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        if missing_ok:
            data = {}
        else:
            raise ConfigError(
                f"config file {str(path)!r} not found: write one (see README.md, 'Quick start') or pass --config PATH"
            ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror}") from None
    base = config_path.parent

    known = {"source", "gmail", "state", "labels", "filters", "admin"}
    for key in data:
        if key not in known:
            raise ConfigError(f"unknown table [{key}] (allowed: {', '.join(sorted(known))})")

    if admin and isinstance(data.get("source"), dict):
        for key in ("user", "password_file", "password_env"):
            if key in data["source"]:
                raise ConfigError(
                    f"[source] {key} is not used by 'gimport admin': each user's login and password come from"
                    " the users file; remove it (or use a separate config for admin mode)"
                )
        data["source"] = {**data["source"], "user": "-"}
    if "source" not in data:
        if need_source or admin:
            raise ConfigError("[source] is required: host and user of the old IMAP server")
        data["source"] = {"host": "-", "user": "-"}
    src = _Table("source", data["source"], base)
    security = src.str("security", "ssl", choices=("ssl", "starttls", "plain"))
    source = SourceSettings(
        host=src.str("host", required=True),
        user=src.str("user", required=True),
        security=security,
        port=src.int("port", 993 if security == "ssl" else 143, minimum=1),
        password_file=src.path("password_file"),
        password_env=src.str("password_env"),
        ca_file=src.path("ca_file"),
        timeout=src.number("timeout", 60.0),
    )
    src.finish()
    for key, value in (("host", source.host), ("user", source.user)):
        if any(c in value for c in "\r\n\0"):
            raise ConfigError(
                _("[source] {key} holds a line break or NUL").format(key=key),
                hint=_("it would reach the IMAP server as a second command; write it on one line"),
            )
    if source.port > 65535:
        raise ConfigError(f"[source] port must be at most 65535, not {source.port}")
    if source.password_file and source.password_env:
        raise ConfigError("[source] set password_file or password_env, not both")

    gm = _Table("gmail", data.get("gmail", {}), base)
    gmail = GmailSettings(
        client_secrets=gm.path("client_secrets", "credentials.json"),
        token_file=gm.path("token_file", "token.json"),
        user=gm.str("user"),
        quota_units_per_minute=gm.int("quota_units_per_minute", DEFAULT_QUOTA, minimum=25),
        workers=gm.int("workers", 8, minimum=1),
        give_up_after=float(gm.int("give_up_after", 600, minimum=1)),
        api_url=env.get(API_URL_ENV) or None,
    )
    gm.finish()

    st = _Table("state", data.get("state", {}), base)
    state_path = st.path("path", "gimport-state.sqlite")
    log_file = st.path("log_file", "gimport.log")
    st.finish()

    lb_raw = dict(data.get("labels", {})) if isinstance(data.get("labels", {}), dict) else data["labels"]
    map_raw = lb_raw.pop("map", {}) if isinstance(lb_raw, dict) else {}
    lb = _Table("labels", lb_raw, base)
    labels = LabelSettings(
        prefix=lb.str("prefix", ""),
        exclude=lb.str_list("exclude"),
        include=lb.str_list("include"),
        visibility=lb.str("visibility", "labelShow", choices=("labelShow", "labelShowIfUnread", "labelHide")),
        map=_label_map(map_raw),
    )
    lb.finish()
    _check_globs("labels", "exclude", labels.exclude)
    _check_globs("labels", "include", labels.include)
    if labels.prefix and (labels.prefix.startswith("/") or "//" in labels.prefix):
        raise ConfigError(f"[labels] prefix {labels.prefix!r} must not start with '/' or contain '//'")

    fl = _Table("filters", data.get("filters", {}), base)
    filters = FilterSettings(since=fl.date("since"), before=fl.date("before"), max_size_mb=fl.number("max_size_mb"))
    fl.finish()
    if filters.since and filters.before and filters.since >= filters.before:
        raise ConfigError(f"[filters] since ({filters.since}) must be before 'before' ({filters.before})")

    return Settings(
        admin=_admin_settings(data.get("admin", {}), base),
        config_path=config_path,
        source=source,
        gmail=gmail,
        state_path=state_path,
        log_file=log_file,
        labels=labels,
        filters=filters,
    )


def _admin_settings(raw: Any, base: Path) -> AdminSettings:
    ad = _Table("admin", raw, base)
    admin = AdminSettings(
        service_account_file=ad.path("service_account_file"),
        users_file=ad.path("users_file"),
        state_dir=ad.path("state_dir", "gimport-admin-state"),
        report_file=ad.path("report_file", "gimport-admin-report.csv"),
        parallel_users=ad.int("parallel_users", 4, minimum=1),
        project_units_per_minute=ad.int("project_units_per_minute", DEFAULT_PROJECT_QUOTA, minimum=25),
        memory_budget_mb=ad.int("memory_budget_mb", 512, minimum=1),
        master_user=ad.str("master_user"),
        master_password_file=ad.path("master_password_file"),
        master_login=ad.str("master_login", "{user}*{master}"),
        shard_count=ad.int("shard_count", None, minimum=1),
    )
    ad.finish()
    if admin.master_user is not None and not admin.master_user.strip():
        raise ConfigError("[admin] master_user must not be empty")
    if bool(admin.master_user) != bool(admin.master_password_file):
        raise ConfigError("[admin] master_user and master_password_file go together: set both or neither")
    try:
        sample = admin.master_login.format(user="u", master="m")
    except (KeyError, IndexError, ValueError):
        sample = ""
    if "{user}" not in admin.master_login or not sample:
        raise ConfigError(
            f'[admin] master_login must contain {{user}} (and usually {{master}}), like "{{user}}*{{master}}",'
            f" not {admin.master_login!r}"
        )
    return admin
