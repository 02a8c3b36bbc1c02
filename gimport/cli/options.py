"""What every command's parser shares: the table every command is registered in (CommandTable), the help
formatter that fits the terminal, each command's own exit codes, the `--stats` option of unattended runs (for
`run` and `admin run` alike) and the `--exact` options of `verify` and `admin verify`."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from gimport.errors import (
    EXIT_AUTH,
    EXIT_BUG,
    EXIT_GMAIL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_SOURCE,
    EXIT_USAGE,
)
from gimport.i18n import _
from gimport.render.text import display_width, wrap
from gimport.render.wrap import join_lines

DEFAULT_STATS = 60.0


def exit_meanings() -> dict[int, str]:
    return {
        EXIT_OK: _("everything selected is in Gmail (or the command succeeded)"),
        EXIT_SOME_FAILED: _(
            "the run finished but some messages are not in Gmail (recorded; the next run retries them)"
        ),
        EXIT_USAGE: _("usage or config error (also: a secret file others can read; a run already going)"),
        EXIT_AUTH: _("Gmail authorization missing, expired or for the wrong account (run 'gimport auth')"),
        EXIT_SOURCE: _("the old IMAP server cannot be reached or refused the login"),
        EXIT_GMAIL: _("Gmail refused to go on (unreachable, daily limit, account not usable)"),
        EXIT_BUG: _("an unexpected error (a bug in gimport: please report it with the log file)"),
        EXIT_INTERRUPTED: _("interrupted (Ctrl-C or SIGTERM); run the same command again to continue"),
    }


Code = int | tuple[int, str]  # an exit code, or one with what it means for this command


def exit_codes_help(codes: Iterable[Code], meanings: dict[int, str] | None = None) -> str:
    """The "exit codes:" block of a command's --help, with only `codes` (a (code, text) pair says what
    the code means for that command)."""
    meanings = meanings or exit_meanings()
    codes = list(codes)
    numbers = [c[0] if isinstance(c, tuple) else c for c in codes]
    if EXIT_BUG not in numbers:  # any command can meet a bug: 70 is always listed, before 130
        at = numbers.index(EXIT_INTERRUPTED) if EXIT_INTERRUPTED in numbers else len(codes)
        codes.insert(at, EXIT_BUG)
    lines: list[str] = [_("exit codes:")]
    for code in codes:
        number, text = code if isinstance(code, tuple) else (code, meanings[code])
        lines.append(f"  {number:<4} {text}")
    return "\n".join(lines) + "\n"


class FittingHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's and epilog's indented lines (examples, tables) and wraps each that is wider
    than the terminal (COLUMNS honoured; wide characters count two): an example's comment continues
    under its '#', an exit code's text under its text. Lines that start at the margin are paragraphs:
    joined and wrapped as one."""

    def _format_usage(
        self,
        usage: str | None,
        actions: Iterable[argparse.Action],
        groups: Iterable[argparse._MutuallyExclusiveGroup],
        prefix: str | None,
    ) -> str:
        # argparse fits the usage by counting characters: a translated "使い方: " is 5 characters but 8
        # columns, so its lines run past the terminal and continue under the wrong column. Then the same
        # parts ("[--host HOST]" kept whole) refilled by display width, continuing under the first part.
        text = super()._format_usage(usage, actions, groups, prefix)
        lines = text.rstrip("\n").split("\n")
        head = lines[0]
        at = head.find(self._prog)
        lead = head[: at + len(self._prog)]
        if at < 0 or (display_width(lead) == len(lead) and all(display_width(x) <= self._width for x in lines)):
            return text
        rest = " ".join(line.strip() for line in [head[len(lead) :], *lines[1:]])
        parts = re.findall(r"\(.*?\)+(?=\s|$)|\[.*?\]+(?=\s|$)|\S+", rest)
        hang = display_width(lead) + 1 if display_width(lead) <= self._width * 3 // 4 else 2
        out = [lead]
        for part in parts:
            if display_width(out[-1]) > hang and display_width(out[-1] + " " + part) > self._width:
                out.append(" " * (hang - 1))
            out[-1] += " " + part
        return "\n".join(out) + "\n\n"

    def _split_lines(self, text: str, width: int) -> list[str]:
        # an option's or a command's help: wrapped by display width (argparse's textwrap counts characters
        # and breaks only at spaces, so a Japanese line would run past the terminal)
        return wrap(" ".join(join_lines(text.splitlines()).split()), width).split("\n")

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out: list[str] = []
        para: list[str] = []

        def flush() -> None:
            if para:
                out.append(wrap(indent + join_lines(para), width))
                para.clear()

        for line in text.splitlines():
            if line and not line.startswith(" ") and not line.endswith(":"):
                para.append(line)
                continue
            flush()
            if display_width(indent + line) <= width:
                out.append(indent + line)
                continue
            lead = len(line) - len(line.lstrip(" "))
            hash_at = line.find("  # ")
            code = re.match(r" +\d+ +", line)
            hang = hash_at + 4 if 0 < hash_at < width // 2 else code.end() if code else lead + 4
            out.append(wrap(indent + line, width, indent=indent + " " * hang))
        flush()
        return "\n".join(out) + ("\n" if text.endswith("\n") else "")


CommandFunc = Callable[[argparse.Namespace], int]
if TYPE_CHECKING:  # subscripting argparse's class fails at run time
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]

# the exit codes of a command that can meet every kind of trouble (the default of gimport's own commands)
ALL_CODES: tuple[Code, ...] = (
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_USAGE,
    EXIT_AUTH,
    EXIT_SOURCE,
    EXIT_GMAIL,
    EXIT_INTERRUPTED,
)


class CommandTable:
    """One level of commands, `gimport COMMAND` or `gimport admin COMMAND`: every command is registered through
    add(), and a command with commands of its own through add_group(). Each command module has a
    `register(commands)` that adds its commands here; gimport.cli.main lists those functions.

    `parents`: the parsers whose options every command of this level takes; `codes`: the exit codes a command
    lists when it names none of its own."""

    def __init__(self, sub: SubParsers, parents: Sequence[argparse.ArgumentParser], codes: Iterable[Code]) -> None:
        self.sub = sub
        self.parents = list(parents)
        self.codes = tuple(codes)

    def add(
        self, name: str, func: CommandFunc, help_text: str, example: str, codes: Iterable[Code] | None = None
    ) -> argparse.ArgumentParser:
        """Register one command: its help, an example, and only the exit codes it can give (default: the
        table's). Returns its parser, for its own options."""
        p: argparse.ArgumentParser = self.sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=_("example:") + f"\n  {example}\n\n" + exit_codes_help(self.codes if codes is None else codes),
            formatter_class=FittingHelpFormatter,
            parents=self.parents,
        )
        p.set_defaults(func=func)
        return p

    def add_group(
        self,
        name: str,
        help_text: str,
        description: str,
        epilog: str,
        *,
        title: str,
        dest: str,
        parents: Sequence[argparse.ArgumentParser] = (),
        codes: Iterable[Code],
    ) -> CommandTable:
        """Register a command that has commands of its own (`gimport admin`); given none, it prints its help and
        exits EXIT_USAGE. Returns the table of its commands, which take this table's options, `parents`' and
        list `codes`."""
        p: argparse.ArgumentParser = self.sub.add_parser(
            name,
            help=help_text,
            description=description,
            epilog=epilog,
            formatter_class=FittingHelpFormatter,
            parents=self.parents,
        )
        p.set_defaults(func=_HelpOf(p))
        sub = p.add_subparsers(dest=dest, metavar="COMMAND", title=title)
        return CommandTable(sub, [*self.parents, *parents], codes)


class _HelpOf:
    """The command of a group given no command: its help, and EXIT_USAGE."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser

    def __call__(self, args: argparse.Namespace) -> int:
        self.parser.print_help()
        return EXIT_USAGE


def add_stats_option(parser: argparse.ArgumentParser) -> None:
    """`--stats SECONDS` (rclone's name): a one-line status every SECONDS when stderr is not a terminal,
    and the same line in the log file. The admin CLI calls this for `admin run` and passes `args.stats`
    to gimport.render.admin_progress.AdminProgress(..., stats=args.stats)."""
    parser.add_argument(
        "--stats",
        type=_seconds,
        default=DEFAULT_STATS,
        metavar="SECONDS",
        help=_(
            "when stderr is not a terminal (nohup, cron, a batch job), print a status line every SECONDS"
            " (default 60; 0 = never); the log file gets the same lines"
        ),
    )


def add_verify_options(verify_p: argparse.ArgumentParser) -> None:
    """`--exact` and `--strict-labels`, for `verify` and `admin verify` alike."""
    verify_p.add_argument(
        "--exact",
        action="store_true",
        help=_(
            "also prove every recorded message in Gmail by its id and labels (needs 'gimport auth --exact-verify';"
            " about 5 quota units per 500 messages)"
        ),
    )
    verify_p.add_argument(
        "--strict-labels",
        action="store_true",
        help=_("with --exact: a label taken off a message since the import fails too (default: listed only)"),
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(_("not a number of seconds: {text!r}").format(text=text)) from None
    if value < 0:
        raise argparse.ArgumentTypeError(_("must be 0 or more, not {text}").format(text=text))
    return value


__all__ = [
    "ALL_CODES",
    "DEFAULT_POLL",
    "DEFAULT_STATS",
    "CommandTable",
    "FittingHelpFormatter",
    "add_follow_options",
    "add_stats_option",
    "add_verify_options",
    "exit_codes_help",
]


DEFAULT_POLL = 300.0


def add_follow_options(parser: argparse.ArgumentParser, *, idle: bool = True) -> None:
    """`--follow`, `--poll SECONDS` (and `--until TIME` with `idle`: single-user runs) of `run` and
    `admin run`: keep importing new mail after the first pass (gimport.engine.follow)."""
    parser.add_argument(
        "--follow",
        action="store_true",
        help=_(
            "after the first pass keep watching the folders and import new mail as it arrives (IDLE on INBOX,"
            " every folder every --poll seconds) until Ctrl-C or SIGTERM (or --until)"
        )
        if idle
        else _("after the first pass scan every user again every --poll seconds, until SIGTERM or Ctrl-C"),
    )
    parser.add_argument(
        "--poll",
        type=_seconds,
        default=DEFAULT_POLL,
        metavar="SECONDS",
        help=_("with --follow: scan every folder again every SECONDS (default 300)"),
    )
    if idle:
        parser.add_argument(
            "--until",
            metavar="TIME",
            help=_("with --follow: stop at TIME (HH:MM, or an ISO date and time such as 2026-03-31T18:00)"),
        )
