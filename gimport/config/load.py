"""Reading gimport.toml into the typed settings of gimport.config.settings.

The only module that reads the config file. Every problem is a ConfigError naming the key and what is
allowed, so the CLI can print one line and exit 2. The values of each table are read through
gimport.config.values.Table; this module owns the tables themselves, which keys go together, and the bounds.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gimport.config.settings import (
    DEFAULT_PROJECT_DAILY,
    DEFAULT_PROJECT_QUOTA,
    DEFAULT_QUOTA,
    LOCAL_HOST,
    SYSTEM_LABEL_IDS,
    AdminSettings,
    FilterSettings,
    GmailSettings,
    ImportSettings,
    LabelSettings,
    Settings,
    SourceSettings,
)
from gimport.config.source_auth import OAUTH_KEYS, provider_defaults, read_auth
from gimport.config.values import Table, check_globs, check_host, check_user
from gimport.errors import ConfigError
from gimport.i18n import N_, _

API_URL_ENV = "GIMPORT_GMAIL_API_URL"
# Bounds of numeric keys: beyond them a value is a typo, and some (workers) would exhaust the machine
MAX_WORKERS = 64  # import threads; Gmail allows a few concurrent imports per user anyway
MAX_TIMEOUT = 3600.0  # seconds, [source] timeout
MAX_GIVE_UP_AFTER = 7 * 86400  # seconds, [gmail] give_up_after
MAX_UNITS = 10**10  # quota units per minute
MAX_SIZE_MB = 100_000.0  # [filters] max_size_mb (Gmail's own limit is 150 MB)
MAX_PARALLEL_USERS = 1024
MAX_MEMORY_MB = 1_048_576
MAX_PROCESSES = 256  # worker processes of one admin run
MAX_SHARDS = 100_000
UNUSABLE_SYSTEM_LABELS = {
    "DRAFT": N_("Gmail does not let an import set DRAFT; map the folder to a user label such as 'Drafts (imported)'"),
    "CHAT": N_("Gmail does not let an import set CHAT; map the folder to a user label"),
}

SOURCE_TYPES = ("imap", "maildir", "mbox", "thunderbird", "takeout")
_IMAP_ONLY_KEYS = (
    *("host", "user", "port", "security", "password_file", "password_env", "ca_file", "timeout"),
    *("provider", "auth", *OAUTH_KEYS),
)


def _label_map(raw: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, dict):
        raise ConfigError(_("[labels.map] must be a table of folder = label (or a list of labels)"))
    result: dict[str, tuple[str, ...]] = {}
    for folder, target in raw.items():
        targets = [target] if isinstance(target, str) else target
        if not isinstance(targets, list) or not all(isinstance(t, str) and t.strip() for t in targets):
            raise ConfigError(
                _(
                    "[labels.map] {folder!r} must be a label name, a system label id, or a list of them, not {target!r}"
                ).format(folder=folder, target=target)
            )
        for t in targets:
            if t in UNUSABLE_SYSTEM_LABELS:
                raise ConfigError(
                    _("[labels.map] {folder!r} = {label!r}: {why}").format(
                        folder=folder, label=t, why=_(UNUSABLE_SYSTEM_LABELS[t])
                    )
                )
            if t.isupper() and "_" in t and t not in SYSTEM_LABEL_IDS and "/" not in t:
                raise ConfigError(
                    _(
                        "[labels.map] {folder!r} = {label!r} is not a Gmail system label id (allowed:"
                        " {system_label_ids}); write a user label name otherwise"
                    ).format(folder=folder, label=t, system_label_ids=", ".join(sorted(SYSTEM_LABEL_IDS)))
                )
        result[folder] = tuple(targets)
    return result


def _keyword_map(raw: Any) -> dict[str, str]:
    """[labels.keywords]: IMAP keyword (a tag) -> label name or system label id, "" for no label."""
    if not isinstance(raw, dict) or not all(isinstance(k, str) and k and isinstance(v, str) for k, v in raw.items()):
        raise ConfigError(_('[labels.keywords] must be a table of keyword = "label" (or "" for no label)'))
    for keyword, target in raw.items():
        if target in UNUSABLE_SYSTEM_LABELS:
            raise ConfigError(
                _("[labels.keywords] {keyword!r} = {label!r}: {why}").format(
                    keyword=keyword, label=target, why=_(UNUSABLE_SYSTEM_LABELS[target])
                )
            )
    return dict(raw)


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
    environ: Mapping[str, str] = os.environ if env is None else env
    config_path = Path(path).expanduser().resolve()
    data = _read_toml(path, config_path, missing_ok=missing_ok)
    base = config_path.parent
    _check_tables(data)
    source = _source_settings(data, base, need_source=need_source, admin=admin)
    gmail = _gmail_settings(data.get("gmail", {}), base, environ)
    state_path, log_file = _state_settings(data.get("state", {}), base)
    labels = _label_settings(data.get("labels", {}), base)
    filters = _filter_settings(data.get("filters", {}), base)
    if source.local:
        source = dataclasses.replace(source, labels=labels)
    return Settings(
        admin=_admin_settings(data.get("admin", {}), base),
        config_path=config_path,
        source=source,
        gmail=gmail,
        state_path=state_path,
        log_file=log_file,
        labels=labels,
        filters=filters,
        importing=_import_settings(data.get("import", {}), base),
    )


def _read_toml(path: str | os.PathLike[str], config_path: Path, *, missing_ok: bool) -> dict[str, Any]:
    """The file's tables; {} when it is missing and `missing_ok`. Errors name `path` as the person gave it."""
    try:
        with open(config_path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        if missing_ok:
            data = {}
        else:
            raise ConfigError(
                _(
                    "config file {path!r} not found: write one ('gimport init' writes a commented one) or pass"
                    " --config PATH"
                ).format(path=str(path))
            ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_("{path}: not valid TOML: {exc}").format(path=path, exc=exc)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            _("{path}: not UTF-8 text (byte {position}): save the config file as UTF-8").format(
                path=path, position=exc.start
            )
        ) from None
    except RecursionError:
        raise ConfigError(_("{path}: not valid TOML: nested too deeply").format(path=path)) from None
    except OSError as exc:
        raise ConfigError(
            _("cannot read config file {path!r}: {strerror}").format(path=str(path), strerror=exc.strerror)
        ) from None
    return data


def _check_tables(data: dict[str, Any]) -> None:
    """Refuse a table gimport does not know (a typo would otherwise be ignored silently)."""
    known = {"source", "gmail", "state", "labels", "filters", "import", "admin"}
    for key in data:
        if key not in known:
            raise ConfigError(
                _("unknown table [{key}] (allowed: {known})").format(key=key, known=", ".join(sorted(known)))
            )


def _source_settings(data: dict[str, Any], base: Path, *, need_source: bool, admin: bool) -> SourceSettings:
    """[source] (see load_settings for need_source and admin). Puts placeholders into `data["source"]` where
    the login comes from elsewhere."""
    if admin and isinstance(data.get("source"), dict):
        for key in ("user", "password_file", "password_env"):
            if key in data["source"]:
                raise ConfigError(
                    _(
                        "[source] {key} is not used by 'gimport admin': each user's login and password come from"
                        " the users file; remove it (or use a separate config for admin mode)"
                    ).format(key=key)
                )
        if data["source"].get("type", "imap") == "imap":
            data["source"] = {**data["source"], "user": "-"}
    if "source" not in data:
        if need_source or admin:
            raise ConfigError(_("[source] is required: host and user of the old IMAP server"))
        data["source"] = {"host": "-", "user": "-"}
    src = Table("source", data["source"], base)
    kind = src.str("type", "imap", choices=SOURCE_TYPES)
    if kind != "imap":
        return _local_source(src, kind, admin)
    provider, src.data = provider_defaults(src.data)
    source = _imap_source(src, provider, user_required=not (admin or (not need_source and src.data.get("user") == "-")))
    if admin and source.oauth is not None and not source.oauth.app_only:
        raise ConfigError(
            _(
                "[source] auth = {auth!r} with a token_file is for one mailbox: 'gimport admin' logs in with"
                " passwords or the application's own credentials ([source] client_secret_file, service_account_file)"
            ).format(auth=source.auth)
        )
    if not admin and source.oauth is not None and source.oauth.app_only:
        raise ConfigError(
            _("[source] client_secret_file and service_account_file are for 'gimport admin' (every mailbox)"),
            hint=_("for one mailbox, sign in with 'gimport auth --source'"),
        )
    return source


def _gmail_settings(raw: Any, base: Path, environ: Mapping[str, str]) -> GmailSettings:
    """[gmail]; the API's address comes from the environment (GIMPORT_GMAIL_API_URL) only, never the file."""
    gm = Table("gmail", raw, base)
    gmail = GmailSettings(
        client_secrets=gm.path("client_secrets", "credentials.json"),
        token_file=gm.path("token_file", "token.json"),
        user=gm.str("user"),
        quota_units_per_minute=gm.int("quota_units_per_minute", DEFAULT_QUOTA, minimum=25, maximum=MAX_UNITS),
        workers=gm.int("workers", 40, minimum=1, maximum=MAX_WORKERS),
        give_up_after=float(gm.int("give_up_after", 600, minimum=1, maximum=MAX_GIVE_UP_AFTER)),
        api_url=environ.get(API_URL_ENV) or None,
    )
    gm.finish()
    return gmail


def _state_settings(raw: Any, base: Path) -> tuple[Path, Path]:
    """[state]: (the state file, the log file). It has no dataclass of its own."""
    st = Table("state", raw, base)
    state_path = st.path("path", "gimport-state.sqlite")
    log_file = st.path("log_file", "gimport.log")
    st.finish()
    return state_path, log_file


def _label_settings(raw: Any, base: Path) -> LabelSettings:
    """[labels] and its [labels.map] sub-table."""
    lb_raw = dict(raw) if isinstance(raw, dict) else raw
    map_raw = lb_raw.pop("map", {}) if isinstance(lb_raw, dict) else {}
    keywords_raw = lb_raw.pop("keywords", {}) if isinstance(lb_raw, dict) else {}
    lb = Table("labels", lb_raw, base)
    labels = LabelSettings(
        prefix=lb.str("prefix", ""),
        exclude=lb.str_list("exclude"),
        include=lb.str_list("include"),
        visibility=lb.str("visibility", "labelShow", choices=("labelShow", "labelShowIfUnread", "labelHide")),
        map=_label_map(map_raw),
        keywords=_keyword_map(keywords_raw),
    )
    lb.finish()
    check_globs("labels", "exclude", labels.exclude)
    check_globs("labels", "include", labels.include)
    if labels.prefix and (labels.prefix.startswith("/") or "//" in labels.prefix):
        raise ConfigError(
            _("[labels] prefix {prefix!r} must not start with '/' or contain '//'").format(prefix=labels.prefix)
        )
    return labels


def _filter_settings(raw: Any, base: Path) -> FilterSettings:
    """[filters]: which messages are selected."""
    fl = Table("filters", raw, base)
    filters = FilterSettings(
        since=fl.date("since"),
        before=fl.date("before"),
        max_size_mb=fl.number("max_size_mb", maximum=MAX_SIZE_MB),
        include_deleted=fl.flag("include_deleted"),
    )
    fl.finish()
    if filters.since and filters.before and filters.since >= filters.before:
        raise ConfigError(
            _("[filters] since ({since}) must be before 'before' ({before})").format(
                since=filters.since, before=filters.before
            )
        )
    return filters


def _import_settings(raw: Any, base: Path) -> ImportSettings:
    """[import]: what gimport may change in a message on its way."""
    table = Table("import", raw, base)
    settings = ImportSettings(fix_dates=table.flag("fix_dates", True))
    table.finish()
    return settings


def _imap_source(src: Table, provider: str, *, user_required: bool = True) -> SourceSettings:
    src.used.add("path")
    if "path" in src.data:
        raise ConfigError(
            _(
                '[source] path is for mail on this computer (type = "maildir", "mbox", "thunderbird" or "takeout");'
                " an IMAP server is named by host and user"
            )
        )
    security = src.str("security", "ssl", choices=("ssl", "starttls", "plain"))
    auth, oauth = read_auth(src, provider)
    source = SourceSettings(
        host=src.str("host", required=True),
        user=src.str("user", required=True),
        security=security,
        port=src.int("port", 993 if security == "ssl" else 143, minimum=1, maximum=65535),
        password_file=src.path("password_file"),
        password_env=src.str("password_env"),
        ca_file=src.path("ca_file"),
        timeout=src.number("timeout", 60.0, maximum=MAX_TIMEOUT),
        auth=auth,
        oauth=oauth,
    )
    src.finish()
    if user_required:
        check_user(source.user)
    if source.host != "-":
        check_host(source.host)
    if source.password_file and source.password_env:
        raise ConfigError(_("[source] set password_file or password_env, not both"))
    return source


def _local_source(src: Table, kind: str, admin: bool) -> SourceSettings:
    """[source] of a local type: `path` only (in admin mode it may come from the users file instead)."""
    for key in _IMAP_ONLY_KEYS:
        if key in src.data:
            raise ConfigError(
                _(
                    "[source] {key} is not used with type = {kind!r}: the mail is read from the files at"
                    " [source] path; remove it"
                ).format(key=key, kind=kind)
            )
    path = src.path("path")
    src.finish()
    if path is None and not admin:
        raise ConfigError(
            _("[source] path is required with type = {kind!r}: {hint}").format(kind=kind, hint=_(LOCAL_PATH_HINT[kind]))
        )
    return SourceSettings(host=LOCAL_HOST, user=kind, type=kind, path=path, port=0)


LOCAL_PATH_HINT = {
    "maildir": "the Maildir folder (the one holding cur/ new/ tmp/)",
    "mbox": "an mbox file, or a folder of mbox files",
    "thunderbird": "a Thunderbird profile, or a folder in it such as Mail/Local Folders",
    "takeout": "the Google Takeout export: its .zip or .tgz, its folder, or the .mbox file",
}


def _admin_settings(raw: Any, base: Path) -> AdminSettings:
    ad = Table("admin", raw, base)
    admin = AdminSettings(
        service_account_file=ad.path("service_account_file"),
        users_file=ad.path("users_file"),
        state_dir=ad.path("state_dir", "gimport-admin-state"),
        report_file=ad.path("report_file", "gimport-admin-report.csv"),
        parallel_users=ad.int("parallel_users", 4, minimum=1, maximum=MAX_PARALLEL_USERS),
        project_units_per_minute=ad.int(
            "project_units_per_minute", DEFAULT_PROJECT_QUOTA, minimum=25, maximum=MAX_UNITS
        ),
        memory_budget_mb=ad.int("memory_budget_mb", 512, minimum=1, maximum=MAX_MEMORY_MB),
        processes=ad.int("processes", 0, minimum=0, maximum=MAX_PROCESSES),
        master_user=ad.str("master_user"),
        master_password_file=ad.path("master_password_file"),
        master_login=ad.str("master_login", "{user}*{master}"),
        shard_count=ad.int("shard_count", None, minimum=1, maximum=MAX_SHARDS),
        project_units_per_day=ad.int("project_units_per_day", DEFAULT_PROJECT_DAILY, minimum=0, maximum=10**12),
        shard_map=ad.path("shard_map"),
    )
    ad.finish()
    if admin.master_user is not None and not admin.master_user.strip():
        raise ConfigError(_("[admin] master_user must not be empty"))
    if bool(admin.master_user) != bool(admin.master_password_file):
        raise ConfigError(_("[admin] master_user and master_password_file go together: set both or neither"))
    try:
        sample = admin.master_login.format(user="u", master="m")
    except (KeyError, IndexError, ValueError):
        sample = ""
    if "{user}" not in admin.master_login or not sample:
        raise ConfigError(
            _(
                '[admin] master_login must contain {{user}} (and usually {{master}}), like "{{user}}*{{master}}",'
                " not {master_login!r}"
            ).format(master_login=admin.master_login)
        )
    return admin
