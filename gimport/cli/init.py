"""`gimport init`: a commented gimport.toml to start from, in the current folder (or --config PATH).
Asks on a terminal; takes --host/--user/--password-file otherwise. Never overwrites a file; a password
file it creates is 0600. Registered by gimport.cli.main."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from gimport.cli.options import CommandTable
from gimport.config.settings import DEFAULT_CONFIG
from gimport.errors import EXIT_OK, EXIT_USAGE, ConfigError
from gimport.i18n import _
from gimport.render.text import terminal_width, wrap
from gimport.render.wrap import wrap_line

COMMENT_AT = 31  # the column the comments start at, where the TOML before them is shorter
FILE_WIDTH = 80


def template(host: str, user: str, password_file: str | None, gmail_user: str | None) -> str:
    """The commented gimport.toml. The keys and values are TOML and stay English; the comments are for the
    person who edits the file and speak their language (Japanese under a Japanese locale)."""

    def line(toml: str, comment: str | None = None) -> str:
        # a comment that would run past 80 columns continues on comment lines under its start (an editor in a
        # terminal shows the file as written)
        if comment is None:
            return toml
        if not toml:
            return "\n".join(f"# {part}" for part in wrap_line(comment, FILE_WIDTH - 2))
        head = f"{toml:<{COMMENT_AT - 1}} # " if len(toml) < COMMENT_AT - 1 else f"{toml}  # "
        room = max(FILE_WIDTH - len(head), 30)
        return "\n".join(
            (head if i == 0 else " " * (len(head) - 2) + "# ") + part for i, part in enumerate(wrap_line(comment, room))
        )

    if password_file:
        password = line(
            f"password_file = {_toml_str(password_file)}", _("mode 0600: gimport refuses a file others can read")
        )
    else:
        password = line(
            '# password_file = "imap-password.txt"',
            _('or password_env = "VAR"; neither: asked at each run'),
        )
    lines = [
        line("", _("gimport.toml, written by 'gimport init'. Every key: 'gimport help config'.")),
        line("", _("Paths are relative to this file.")),
        "",
        line("[source]", _("the old IMAP server (only ever read)")),
        f"host = {_toml_str(host)}",
        f"user = {_toml_str(user)}",
        line('security = "ssl"', _('"ssl" (port 993), "starttls" or "plain" (port 143)')),
        password,
        "",
        "[gmail]",
        line('client_secrets = "credentials.json"', _("the Desktop OAuth client ('gimport help auth')")),
        line('token_file = "token.json"', _("written by 'gimport auth', mode 0600")),
        *(
            [line(f"user = {_toml_str(gmail_user)}", _("refuse to import into any other account"))]
            if gmail_user
            else []
        ),
        line("# quota_units_per_minute = 6000", _("15000 for Cloud projects created before May 2026")),
        "",
        "[state]",
        line('path = "gimport-state.sqlite"', _("what was imported: keep it until 'gimport verify' passes")),
        'log_file = "gimport.log"',
        "",
        "# [labels]",
        line('# exclude = ["Trash", "Junk"]', _("folders to leave behind")),
        line('# prefix = "Old mail/"', _("put every label under one parent")),
        "",
        "# [filters]",
        "# since = 2015-01-01",
        "# max_size_mb = 100",
        "",
        "# [import]",
        line(
            "# fix_dates = false",
            _('send a Date Gmail may not read as it is (Gmail may then date the message "today")'),
        ),
    ]
    return "\n".join(lines) + "\n"


def _say(text: str) -> None:
    print(wrap(text, terminal_width(sys.stdout)))


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ask(question: str, default: str | None = None) -> str:
    suffix = f" [{default}]" if default else ""
    while True:
        answer = input(f"{question}{suffix}: ").strip()
        if answer or default:
            return answer or default or ""


def _write_new(path: Path, text: str, mode: int) -> None:
    """Create `path` with `mode` from the start; ConfigError when it exists (never overwritten)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise ConfigError(
            _("{path} exists already").format(path=path), hint=_("nothing was overwritten; edit it or move it away")
        ) from None
    except OSError as exc:
        raise ConfigError(_("cannot create {path}: {strerror}").format(path=path, strerror=exc.strerror)) from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def cmd_init(args: argparse.Namespace) -> int:
    config = Path(args.config).expanduser()
    if config.exists():
        raise ConfigError(
            _("{path} exists already").format(path=config), hint=_("nothing was overwritten; edit it or move it away")
        )
    interactive = sys.stdin.isatty() and not (args.host and args.user)
    host, user, password_file, gmail_user = args.host, args.user, args.password_file, args.gmail
    secret: str | None = None
    if interactive:
        _say(_("Writing {path}. Press Enter to take the [default].").format(path=config))
        host = host or _ask(_("Old IMAP server (host name)"))
        user = user or _ask(_("Your login name there"))
        gmail_user = gmail_user or input(_("Your Gmail address (optional, Enter to skip)") + ": ").strip() or None
        if not password_file:
            how = _ask(_("Keep the IMAP password in a file (f), or ask for it at every run (a)?"), "f").lower()
            if how.startswith("f"):
                password_file = _ask(_("Password file"), "imap-password.txt")
                if not (config.parent / password_file).exists():
                    secret = getpass.getpass(
                        _("IMAP password (saved to {file}, mode 0600): ").format(file=password_file)
                    )
    elif not (host and user):
        raise ConfigError(
            _("no terminal to ask on: pass --host and --user (and --password-file)"),
            hint=_("see 'gimport init --help'"),
        )
    text = template(host, user, password_file, gmail_user)
    config.parent.mkdir(parents=True, exist_ok=True)
    if secret:
        _write_new(config.parent / password_file, secret + "\n", 0o600)
        _say(_("Wrote {path} (mode 0600).").format(path=config.parent / password_file))
    _write_new(config, text, 0o644)
    _say(_("Wrote {path}.").format(path=config))
    if password_file and not (config.parent / password_file).exists():
        _say(
            _("Put the IMAP password in {file} and make it private: chmod 600 {file}").format(
                file=config.parent / password_file
            )
        )
    _say(_("Next: the OAuth client file credentials.json ('gimport help auth'), then 'gimport auth', 'gimport check'."))
    return EXIT_OK


def register(commands: CommandTable) -> None:
    """Register `gimport init`."""
    p = commands.add(
        "init",
        cmd_init,
        _("write a commented gimport.toml to start from (asks on a terminal); never overwrites a file"),
        _(
            "gimport init            # asks for the server, your login and how to keep the password\n"
            "  gimport init --host mail.example.ac.jp --user kt12345 --password-file imap-password.txt"
        ),
        (EXIT_OK, EXIT_USAGE),
    )
    p.add_argument("--host", help=_("the old IMAP server"))
    p.add_argument("--user", help=_("your login name there"))
    p.add_argument("--password-file", metavar="PATH", help=_("a file that holds (or will hold) the IMAP password"))
    p.add_argument("--gmail", metavar="ADDRESS", help=_("your Gmail address ([gmail] user)"))


__all__ = ["DEFAULT_CONFIG", "cmd_init", "register"]
