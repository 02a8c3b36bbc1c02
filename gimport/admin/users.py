"""The users file (who moves where, and how gimport logs in to the old server for each) and each user's
single-user settings. Pure apart from reading the file and password files; never prints."""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from gimport.admin.paths import user_paths
from gimport.config.settings import AdminSettings, Settings
from gimport.contract import SourceBackend
from gimport.errors import ConfigError, LoginRefused
from gimport.files import read_secret
from gimport.i18n import _

COL_SOURCE, COL_GMAIL, COL_PASSWORD, COL_PASSWORD_FILE = "source_user", "gmail_address", "password", "password_file"
COL_SOURCE_PATH = "source_path"  # a local source ([source] type = "maildir", ...): the user's files
COLUMNS = (COL_SOURCE, COL_GMAIL, COL_PASSWORD, COL_PASSWORD_FILE, COL_SOURCE_PATH)
REQUIRED_COLUMNS = (COL_SOURCE, COL_GMAIL)
_ADDRESS = re.compile(r"[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>.]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

PASSWORD, PASSWORD_FILE, MASTER = "password", "password_file", "master user"


@dataclass(frozen=True)
class UserEntry:
    """One line of the users file."""

    line: int  # line number in the file (the header is line 1), for messages
    source_user: str
    gmail: str
    password: str | None = field(default=None, repr=False)
    password_file: Path | None = None
    source_path: Path | None = None

    @property
    def login_method(self) -> str:
        return PASSWORD if self.password else PASSWORD_FILE if self.password_file else MASTER


def read_users(path: Path, *, master_available: bool, check_logins: bool = True) -> list[UserEntry]:
    """Parse and check the users file. Raises ConfigError naming the file, the line and what to fix (the
    first problem, and how many more there are).

    Format: UTF-8 CSV (a BOM is fine) with a header row naming the columns source_user, gmail_address
    (required) and password, password_file (optional; at most one per line; a relative password_file is
    relative to the users file), source_path (optional: a local source's files for this user, relative to the
    users file; such a line needs no password). A line with none of them logs in as [admin] master_user. Blank lines and lines
    starting with '#' are ignored. Each Gmail address and each source user may appear once.
    check_logins=False (admin status) skips the checks of passwords and password files."""
    path = Path(path)
    text, rows = _read_rows(path)
    problems: list[str] = []
    header: list[str] | None = None
    users: list[UserEntry] = []
    seen_gmail: dict[str, int] = {}
    seen_source: dict[str, int] = {}
    for row, line in zip(rows, _line_numbers(text), strict=True):
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if header is None:
            header = _header(cells, path, line)
            continue
        entry = _user_line(path, line, header, row, cells, check_logins=check_logins, master_available=master_available)
        if isinstance(entry, str):
            problems.append(entry)
        elif (repeated := _repeated(entry, path, seen_gmail, seen_source)) is not None:
            problems.append(repeated)
        else:
            users.append(entry)
    if header is None:
        raise ConfigError(
            _("users file {path} is empty: it needs a header row ({columns}) and a line per user").format(
                path=path, columns=",".join(COLUMNS)
            )
        )
    if problems:
        more = _(" (and {n} more problem(s) in the file)").format(n=len(problems) - 1) if len(problems) > 1 else ""
        raise ConfigError(problems[0] + more)
    if not users:
        raise ConfigError(_("users file {path} lists no users under its header").format(path=path))
    return users


def _read_rows(path: Path) -> tuple[str, list[list[str]]]:
    """The file's text and its CSV records. Raises ConfigError when it cannot be read or is not CSV."""
    try:
        text = path.read_text("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(
            _("users file {path} not found (pass --users FILE or set [admin] users_file)").format(path=path)
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(_("users file {path} is not UTF-8: save it as 'CSV UTF-8'").format(path=path)) from None
    except OSError as exc:
        raise ConfigError(_("cannot read users file {path}: {reason}").format(path=path, reason=exc.strerror)) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise ConfigError(_("users file {path}: not valid CSV ({error})").format(path=path, error=exc)) from None
    return text, rows


def _header(cells: list[str], path: Path, line: int) -> list[str]:
    """The column names of the header row (lower case). Raises ConfigError for an unknown, missing or repeated
    column: nothing below it can be read without them."""
    header = [c.lower() for c in cells]
    unknown = [c for c in header if c not in COLUMNS]
    if unknown:
        raise ConfigError(
            _(
                "users file {path} line {line}: unknown column {column} in the header"
                " (columns: {columns}; {required} are required)"
            ).format(
                path=path,
                line=line,
                column=repr(unknown[0]),
                columns=", ".join(COLUMNS),
                required=", ".join(REQUIRED_COLUMNS),
            )
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ConfigError(
            _(
                "users file {path} line {line}: the header row lacks {column} (it must name the"
                " columns, e.g. '{columns}')"
            ).format(path=path, line=line, column=repr(missing[0]), columns=",".join(COLUMNS))
        )
    dupes = [c for c in header if header.count(c) > 1]
    if dupes:
        raise ConfigError(
            _("users file {path} line {line}: column {column} appears twice in the header").format(
                path=path, line=line, column=repr(dupes[0])
            )
        )
    return header


def _where(path: Path, line: int, source: str | None = None) -> str:
    """How a problem names its line: the file and the line number, then the source user once it is known."""
    where: str = _("users file {path} line {line}").format(path=path, line=line)
    return where if source is None else f"{where} ({source})"


def _user_line(
    path: Path,
    line: int,
    header: list[str],
    row: list[str],
    cells: list[str],
    *,
    check_logins: bool,
    master_available: bool,
) -> UserEntry | str:
    """The user on one line (`row` as written, `cells` trimmed), or what is wrong with the line."""
    where = _where(path, line)
    if len(cells) != len(header):
        return _("{where}: {n} field(s), but the header has {header}").format(
            where=where, n=len(cells), header=len(header)
        )
    values = dict(zip(header, cells, strict=True))
    source, gmail = values[COL_SOURCE], values[COL_GMAIL]
    if not source:
        return _("{where}: {column} is empty").format(where=where, column=COL_SOURCE)
    where = _where(path, line, source)
    if _CONTROL.search(source):
        return _("{where}: {column} contains a control character").format(where=where, column=COL_SOURCE)
    if not _ADDRESS.fullmatch(gmail):
        return _("{where}: {column} {value} is not an e-mail address like name@example.edu").format(
            where=where, column=COL_GMAIL, value=repr(gmail)
        )
    login = _login(where, path, header, row, values, check_logins=check_logins, master_available=master_available)
    if isinstance(login, str):
        return login
    password, resolved, src_path = login
    return UserEntry(line, source, gmail, password, resolved, src_path)


def _login(
    where: str,
    path: Path,
    header: list[str],
    row: list[str],
    values: dict[str, str],
    *,
    check_logins: bool,
    master_available: bool,
) -> tuple[str | None, Path | None, Path | None] | str:
    """(password, password file, source path) of one line, or what is wrong with them."""
    # a password is taken exactly as written (spaces included); every other cell is trimmed
    password = dict(zip(header, row, strict=True)).get(COL_PASSWORD) or None
    pw_file = values.get(COL_PASSWORD_FILE) or None
    if password and pw_file and check_logins:
        return _("{where}: give {password} or {password_file}, not both").format(
            where=where, password=COL_PASSWORD, password_file=COL_PASSWORD_FILE
        )
    if password and _CONTROL.search(password):
        return _("{where}: {column} contains a control character").format(where=where, column=COL_PASSWORD)
    resolved = None
    if pw_file:
        resolved = (path.parent / os.path.expanduser(pw_file)).resolve()
        if check_logins and not resolved.is_file():
            return _("{where}: {column} {path} not found").format(where=where, column=COL_PASSWORD_FILE, path=resolved)
    src_cell = values.get(COL_SOURCE_PATH) or None
    src_path = (path.parent / os.path.expanduser(src_cell)).resolve() if src_cell else None
    if check_logins and not password and not resolved and not src_path and not master_available:
        return _("{where}: no {password} or {password_file}, and no [admin] master_user to log in with").format(
            where=where, password=COL_PASSWORD, password_file=COL_PASSWORD_FILE
        )
    return password, resolved, src_path


def _repeated(entry: UserEntry, path: Path, seen_gmail: dict[str, int], seen_source: dict[str, int]) -> str | None:
    """What is wrong when `entry`'s Gmail address or source user was on an earlier line; else None, and
    `entry` is remembered as seen."""
    where = _where(path, entry.line, entry.source_user)
    key = entry.gmail.lower()
    if key in seen_gmail:
        return _(
            "{where}: {gmail} is also on line {other}: one line per Gmail account (two old"
            " mailboxes into one account: migrate them one after the other with 'gimport run')"
        ).format(where=where, gmail=entry.gmail, other=seen_gmail[key])
    if entry.source_user in seen_source:
        return _("{where}: source user {source} is also on line {other}").format(
            where=where, source=repr(entry.source_user), other=seen_source[entry.source_user]
        )
    seen_gmail[key], seen_source[entry.source_user] = entry.line, entry.line
    return None


def _line_numbers(text: str) -> list[int]:
    """The line number on which each CSV record starts (records may span lines inside quotes)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    starts, previous = [], 0
    for _row in reader:
        starts.append(previous + 1)
        previous = reader.line_num
    return starts


def has_inline_passwords(users: list[UserEntry]) -> bool:
    return any(u.password for u in users)


def load_users(path: Path | None, settings: Settings, *, check_logins: bool = True) -> list[UserEntry]:
    """read_users for `path` (--users, or [admin] users_file). Raises ConfigError, also when there is none."""
    if path is None:
        raise ConfigError(_("no users file: pass --users FILE or set [admin] users_file (format: docs/admin.md)"))
    app = settings.source.oauth is not None  # the application's own credentials: no password per user
    return read_users(path, master_available=bool(settings.admin.master_user) or app, check_logins=check_logins)


def exposed_passwords(path: Path, users: list[UserEntry]) -> bool:
    """True when the users file holds passwords and other users of the machine can read it."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return has_inline_passwords(users) and bool(mode & stat.S_IRWXO)


class SourceLogin:
    """How to log in to the old server for each user: the line's password or password_file, or the
    master user (login name from [admin] master_login, e.g. "alice*admin" for Dovecot)."""

    def __init__(self, admin: AdminSettings, *, app_only: bool = False) -> None:
        self.admin = admin
        self.app_only = app_only  # [source] OAuth with the application's credentials: one for every user
        self._master_password: str | None = None
        if admin.master_user and admin.master_password_file:
            # group-readable is fine in admin mode: a Kubernetes Secret is mounted 0440 with an fsGroup
            self._master_password = read_secret(
                admin.master_password_file, "[admin] master_password_file", group_ok=True
            )

    def for_user(self, entry: UserEntry) -> tuple[str | None, str]:
        """(login name or None for the user name itself, password). Raises ConfigError."""
        if entry.source_path or self.app_only:
            return None, ""  # local files, or the application's token for every mailbox: no password
        if entry.password:
            return None, entry.password
        if entry.password_file:
            return None, read_secret(
                entry.password_file,
                _("users file line {line}: password_file").format(line=entry.line),
                group_ok=True,
            )
        if self._master_password is None:
            raise ConfigError(
                _("users file line {line}: no password, and no [admin] master_user").format(line=entry.line)
            )
        login = self.admin.master_login.format(user=entry.source_user, master=self.admin.master_user)
        return login, self._master_password

    def describe(self, entry: UserEntry) -> str:
        if self.app_only:
            return _("the application's own credentials ([source] client_secret_file or service_account_file)")
        if entry.password:
            return _("the password on users file line {line}").format(line=entry.line)
        if entry.password_file:
            return _("password_file {path}").format(path=entry.password_file)
        return _("master user {master} (login {login})").format(
            master=repr(self.admin.master_user), login=repr(self.for_user(entry)[0])
        )

    def connect(self, source: SourceBackend, entry: UserEntry) -> None:
        """source.connect(), with a refused login explained in terms of the users file (LoginRefused)."""
        try:
            source.connect()
        except LoginRefused:
            raise LoginRefused(
                _(
                    "the IMAP server refused the login for {user} with {how}:"
                    " fix it in the users file (line {line}) or the config"
                ).format(user=repr(entry.source_user), how=self.describe(entry), line=entry.line)
            ) from None


def user_settings(settings: Settings, entry: UserEntry, login: str | None) -> Settings:
    """The single-user settings of one user: the same [source] server, mapping and filters, the user's
    own source login, state file and log file."""
    paths = user_paths(settings.admin.state_dir, entry.gmail)
    source = dataclasses.replace(
        settings.source, user=entry.source_user, login=login, path=entry.source_path or settings.source.path
    )
    # [gmail] user stays unset: the token is minted for entry.gmail, and the state file is bound to the
    # account Gmail reports (its primary address), which catches a mix-up on later runs
    gmail = dataclasses.replace(settings.gmail, user=None)
    return dataclasses.replace(settings, source=source, gmail=gmail, state_path=paths.state, log_file=paths.log)
