"""The command line: parse, build settings, call one function, turn errors into one line and an exit code.

This module builds the parser (build_parser: the top-level options, then each command module's register(),
listed in REGISTER) and holds main(), the one place that catches an error and prints it. Every command is
registered the same way, through gimport.cli.options.CommandTable: with its help, its example and its exit
codes, beside its code: gimport.cli.migration (plan, run, status, verify, cleanup), auth, check, init, help,
ledger (failed, export-failed, accept, report) and admin_parser (admin and its commands)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from gimport import __version__, i18n
from gimport.cli import admin_parser, auth, check, init, migration
from gimport.cli import help as help_topics
from gimport.cli import ledger as ledger_cli
from gimport.cli.memory import bound_heap
from gimport.cli.options import ALL_CODES, CommandTable, FittingHelpFormatter, exit_codes_help
from gimport.config.settings import DEFAULT_CONFIG
from gimport.errors import EXIT_BUG, EXIT_INTERRUPTED, EXIT_USAGE, GimportError, Unexpected
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


# every command module's register(), in the order `gimport --help` lists the commands
REGISTER: tuple[Callable[[CommandTable], None], ...] = (
    auth.register,
    check.register,
    init.register,
    help_topics.register,
    migration.register,  # plan, run, verify, status, cleanup
    ledger_cli.register,  # failed, export-failed, accept, report
    admin_parser.register,  # admin and its commands
)


def build_parser() -> argparse.ArgumentParser:
    """gimport's parser: the top-level options, then every command, each registered by its module."""
    common = _common_options()
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
    commands = CommandTable(sub, [common], ALL_CODES)
    for register in REGISTER:
        register(commands)
    return parser


def _common_options() -> argparse.ArgumentParser:
    """--config and --verbose: taken before or after any command."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        "-c",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help=_("config file (default: ./{config})").format(config=DEFAULT_CONFIG),
    )
    common.add_argument("--verbose", "-v", action="store_true", default=argparse.SUPPRESS, help=_("debug output"))
    return common


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
        command: Callable[[argparse.Namespace], int] = args.func
        return command(args)
    except GimportError as err:
        print(safe(f"gimport: {err}"), file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(_("gimport: interrupted"), file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: one line for the person, the traceback for the log
        logging.getLogger("gimport").exception("unexpected error")
        bug = Unexpected.of(exc)
        print(safe(f"gimport: {bug}"), file=sys.stderr)
        return EXIT_BUG


__all__ = ["build_parser", "main"]
