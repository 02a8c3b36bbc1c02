"""`gimport check`: both logins and what a run would do, in a few seconds, changing nothing (imapsync's
--justlogin, and a little more). Exit codes as `gimport run` would give for the same problems.
Registered by gimport.cli.main."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from gimport.cli.options import CommandTable
from gimport.config.load import load_settings
from gimport.errors import EXIT_AUTH, EXIT_GMAIL, EXIT_INTERRUPTED, EXIT_OK, EXIT_SOURCE, EXIT_USAGE
from gimport.i18n import _
from gimport.render.text import clock_time, human_bytes, human_duration, terminal_width, wrap

if TYPE_CHECKING:
    from gimport.operations.plan import Preview


def cmd_check(args: argparse.Namespace) -> int:
    from gimport import wiring
    from gimport.engine.identity import identify
    from gimport.operations.plan import preview
    from gimport.render.plan import plan_to_json

    settings = load_settings(args.config)
    width = terminal_width(sys.stdout)

    def say(text: str) -> None:
        if not args.json:  # --json: one document at the end, nothing before it
            print(wrap(text, width, indent="  "), flush=True)

    src = settings.source
    password = wiring.read_password(settings)  # refuses a password file others can read (exit 2)
    state = wiring.state_if_exists(settings.state_path)
    try:
        with wiring.source(src, password) as source:  # SourceError: exit 4, as run
            say(
                _("Old server: {user} on {host}:{port} ({security}): login OK (read-only)").format(
                    user=src.user, host=src.host, port=src.port, security=src.security
                )
            )
            wiring.refresh_token(settings)  # the grant itself: AuthError exit 3, a loose token file exit 2
            gmail = wiring.account(settings).gmail
            address = identify(gmail, settings.gmail.user, state)  # and the state file's account
            say(_("Gmail: {address}: the token refreshes").format(address=address))
            imap_enabled = bool(gmail.get_imap().get("enabled"))
            if imap_enabled:
                say(_("Gmail's IMAP access: enabled (gimport does not use it; 'gimport cleanup' turns it off)"))
            else:
                say(_("Gmail's IMAP access: disabled (gimport does not need it)"))
            p = preview(source, settings, state)
    finally:
        if state is not None:
            state.close()
    holder = wiring.run_lock(settings.state_path).holder() if wiring.run_in_progress(settings.state_path) else None
    if args.json:
        doc = {
            "source": {"user": src.user, "host": src.host, "port": src.port, "security": src.security, "login": True},
            "gmail": {"address": address, "token_refreshes": True, "imap_enabled": imap_enabled},
            "run_in_progress": holder,
            "plan": plan_to_json(p),
        }
        print(json.dumps(doc, ensure_ascii=False, indent=2))
        return EXIT_OK
    if holder is not None:
        say(_("A run is in progress now ({holder}): 'gimport status' shows how far it is.").format(holder=holder))
    _say_plan(say, p, settings.filters.include_deleted)
    return EXIT_OK


def _say_plan(say: Callable[[str], None], p: Preview, include_deleted: bool) -> None:
    """The plan in a few lines: what a run imports and when it would end, then what Gmail gets otherwise than
    the folders have it, folder by folder."""
    from gimport.render.readiness import readiness_lines

    if p.to_import:
        say(
            _(
                "To import: {n} message(s), {size}; at {quota} quota units/min that takes about {time}"
                " (until about {clock} if started now)."
            ).format(
                n=f"{p.to_import:,}",
                size=human_bytes(p.to_import_bytes),
                quota=f"{p.quota_units_per_minute:,}",
                time=human_duration(p.estimated_seconds),
                clock=clock_time(time.time() + p.estimated_seconds),
            )
        )
    else:
        say(_("Nothing to import: everything selected is in Gmail already (or nothing is selected)."))
    lines = readiness_lines(p, include_deleted=include_deleted)
    if lines:
        say(_("What Gmail gets otherwise than the old server has it, by folder:"))
        for line in lines:
            say("  " + line)
    for note in p.notes:
        say(note)
    for w in p.warnings:
        say(_("warning: {text}").format(text=w))
    say(_("Checked; nothing was changed. 'gimport plan' shows each folder, 'gimport run' imports."))


def register(commands: CommandTable) -> None:
    """Register `gimport check`."""
    check_p = commands.add(
        "check",
        cmd_check,
        _("check both logins and count what a run would import, with its ETA, in a few seconds; changes nothing"),
        _("gimport check           # before the first run, or when a token may have expired"),
        (EXIT_OK, EXIT_USAGE, EXIT_AUTH, EXIT_SOURCE, EXIT_GMAIL, EXIT_INTERRUPTED),
    )
    check_p.add_argument(
        "--json",
        action="store_true",
        help=_("print JSON (both logins, and the plan as 'gimport plan --json' gives it) instead of text"),
    )
