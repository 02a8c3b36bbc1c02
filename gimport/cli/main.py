"""The command line: parse, build settings, call one function, turn errors into one line and an exit code.

This module is the command table (build_parser: every command, its help, its example and its exit codes)
and main(), the one place that catches an error and prints it. The commands themselves live beside it:
gimport.cli.migration (plan, run, status, verify, cleanup), auth, check, init, help, ledger and admin."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from gimport import __version__, i18n
from gimport.cli import auth, check, init
from gimport.cli import help as help_topics
from gimport.cli import ledger as ledger_cli
from gimport.cli.memory import bound_heap
from gimport.cli.migration import cmd_cleanup, cmd_plan, cmd_run, cmd_status, cmd_verify
from gimport.cli.options import Code, FittingHelpFormatter, add_command, add_stats_option, exit_codes_help
from gimport.config.settings import DEFAULT_CONFIG
from gimport.errors import (
    EXIT_AUTH,
    EXIT_BUG,
    EXIT_GMAIL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_SOURCE,
    EXIT_USAGE,
    GimportError,
    Unexpected,
)
from gimport.i18n import N_, _
from gimport.render.progress import safe

DESCRIPTION = N_("""\
Move a mailbox from an old IMAP server into Gmail through the Gmail API.
The old server is only read (never changed); messages go in with users.messages.import,
so Gmail needs no app password and no IMAP. A run can be stopped at any time and started again.
""")

EPILOG = N_("""\
typical session:
  gimport init                 # once: a commented gimport.toml to start from
  gimport auth                 # once: consent in a browser (or --no-browser over SSH)
  gimport check                # both logins, what a run would import and how long it takes
  gimport plan                 # what will land under which label; changes nothing
  gimport run                  # import; safe to interrupt and run again
  gimport status               # where things stand, from the state file alone
  gimport verify               # prove that everything arrived
  gimport cleanup              # disable IMAP on Gmail, check forwarding

The config file is ./{config} unless --config is given ('gimport init' writes one;
'gimport help config' lists every key). The documentation: 'gimport help'.
""")


ALL_CODES = (EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_AUTH, EXIT_SOURCE, EXIT_GMAIL, EXIT_INTERRUPTED)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        "-c",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help=_("config file (default: ./{config})").format(config=DEFAULT_CONFIG),
    )
    common.add_argument("--verbose", "-v", action="store_true", default=argparse.SUPPRESS, help=_("debug output"))

    parser = argparse.ArgumentParser(
        prog="gimport",
        description=_(DESCRIPTION),
        epilog=_(EPILOG).format(config=DEFAULT_CONFIG) + "\n" + exit_codes_help(ALL_CODES),
        formatter_class=FittingHelpFormatter,
        parents=[common],
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"gimport {__version__}",
        help=_("show program's version number and exit"),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title=_("commands"))

    def add(
        name: str, func: Any, help_text: str, example: str, codes: tuple[Code, ...] = ()
    ) -> argparse.ArgumentParser:
        return add_command(sub, common, name, func, help_text, example, codes or ALL_CODES)

    auth_p = auth.add_parser(sub, common)
    ledger_cli.add_auth_options(auth_p)
    check.add_parser(sub, common)
    init.add_parser(sub, common)
    help_topics.add_parser(sub, common)
    plan_p = add(
        "plan",
        cmd_plan,
        _("show what would land under which label; reads the source only and changes nothing"),
        _("gimport plan            # a table\n  gimport plan --json     # the same as JSON, for scripts"),
        (EXIT_OK, EXIT_USAGE, EXIT_SOURCE, EXIT_INTERRUPTED),
    )
    plan_p.add_argument("--json", action="store_true", help=_("print JSON instead of a table"))
    run_p = add(
        "run",
        cmd_run,
        _("import every selected message; safe to interrupt and run again"),
        _(
            "gimport --config ~/gimport.toml run\n"
            "  nohup gimport run --stats 300 >> run.out 2>&1 &    # unattended: a status line every 5 minutes"
        ),
        ALL_CODES,
    )
    run_p.add_argument(
        "--new-state",
        action="store_true",
        help=_(
            "go on with a new (or lost) state file even when the labels this run uses already hold mail in Gmail"
            " (that mail may then be imported again)"
        ),
    )
    add_stats_option(run_p)
    verify_p = add(
        "verify",
        cmd_verify,
        _("check that everything arrived: the source now vs the state file vs Gmail's label counts; changes nothing"),
        _(
            "gimport verify            # a table; exit 0 only when nothing selected is missing\n"
            "  gimport verify --json     # the same as JSON, every missing message listed\n"
            "  gimport verify --exact    # also each message by its Gmail id (gimport auth --exact-verify)\n"
            "  (the end of a migration: gimport help finishing)"
        ),
        (
            (EXIT_OK, _("every selected message is recorded as imported")),
            (EXIT_SOME_FAILED, _("some selected message is not (the table and the list say which)")),
            *ALL_CODES[2:],
        ),
    )
    verify_p.add_argument("--json", action="store_true", help=_("print JSON instead of a table"))
    ledger_cli.add_verify_options(verify_p)
    add(
        "status",
        cmd_status,
        _("where the migration stands, from the state file alone (no network); also while a run is going"),
        "gimport status",
        (
            (EXIT_OK, _("everything selected at the last run is in Gmail")),
            (EXIT_SOME_FAILED, _("something selected is not in Gmail yet (or a run is still going)")),
            EXIT_USAGE,
        ),
    )
    cleanup_p = add(
        "cleanup",
        cmd_cleanup,
        _(
            "after the migration: show Gmail's IMAP and forwarding settings, warn about forwarding to the old"
            " server, disable IMAP"
        ),
        _(
            "gimport cleanup --dry-run           # show what would change; change nothing\n"
            "  gimport cleanup                     # asks before disabling IMAP (--yes: without asking)\n"
            "  gimport cleanup --revoke --forget   # also revoke the token and delete the state file (verify must"
            " pass)\n"
            "  (the end of a migration: gimport help finishing)"
        ),
        (
            (EXIT_OK, _("IMAP is off and no forwarding points at the old server")),
            (EXIT_SOME_FAILED, _("something is left to do or was refused (the output says what)")),
            *ALL_CODES[2:],
        ),
    )
    cleanup_p.add_argument("--dry-run", action="store_true", help=_("show what would change and change nothing"))
    cleanup_p.add_argument("--yes", "-y", action="store_true", help=_("do not ask for confirmation"))
    cleanup_p.add_argument(
        "--revoke", action="store_true", help=_("also revoke gimport's Gmail token and delete the token file")
    )
    cleanup_p.add_argument(
        "--forget", action="store_true", help=_("also delete the state file (and its -wal/-shm files)")
    )
    cleanup_p.add_argument(
        "--force", action="store_true", help=_("--revoke/--forget even when 'gimport verify' would not pass")
    )
    ledger_cli.add_commands(add)  # failed, export-failed, accept, report
    from gimport.cli import admin_parser

    admin_parser.add_parser(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    bound_heap()  # large message buffers go back to the system when freed (gimport.cli.memory)
    i18n.install()  # argparse's own words come from gimport's catalog too
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    args.config_given = hasattr(args, "config")
    args.config = getattr(args, "config", DEFAULT_CONFIG)
    args.verbose = getattr(args, "verbose", False)
    try:
        return args.func(args)
    except GimportError as err:
        print(safe(f"gimport: {err}"), file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(_("gimport: interrupted"), file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: one line for the person, the traceback for the log
        logging.getLogger("gimport").exception("unexpected error")
        bug = Unexpected(_("unexpected error: {error!r}").format(error=exc))
        print(safe(f"gimport: {bug}"), file=sys.stderr)
        return EXIT_BUG


__all__ = ["build_parser", "main"]
