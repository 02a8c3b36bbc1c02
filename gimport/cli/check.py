"""`gimport check`: both logins and what a run would do, in a few seconds, changing nothing (imapsync's
--justlogin, and a little more). Exit codes as `gimport run` would give for the same problems.
Registered by gimport.cli.main."""

from __future__ import annotations

import argparse
import sys
import time

from gimport.cli.options import CommandTable
from gimport.config.load import load_settings
from gimport.errors import EXIT_AUTH, EXIT_GMAIL, EXIT_INTERRUPTED, EXIT_OK, EXIT_SOURCE, EXIT_USAGE
from gimport.i18n import _
from gimport.render.text import clock_time, human_bytes, human_duration, terminal_width, wrap


def cmd_check(args: argparse.Namespace) -> int:
    from gimport import wiring
    from gimport.engine.identity import identify
    from gimport.operations.plan import preview

    settings = load_settings(args.config)
    width = terminal_width(sys.stdout)

    def say(text: str) -> None:
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
            imap = gmail.get_imap()
            if imap.get("enabled"):
                say(_("Gmail's IMAP access: enabled (gimport does not use it; 'gimport cleanup' turns it off)"))
            else:
                say(_("Gmail's IMAP access: disabled (gimport does not need it)"))
            p = preview(source, settings, state)
    finally:
        if state is not None:
            state.close()
    if wiring.run_in_progress(settings.state_path):
        say(
            _("A run is in progress now ({holder}): 'gimport status' shows how far it is.").format(
                holder=wiring.run_lock(settings.state_path).holder()
            )
        )
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
    for note in p.notes:
        say(note)
    for w in p.warnings:
        say(_("warning: {text}").format(text=w))
    say(_("Checked; nothing was changed. 'gimport plan' shows each folder, 'gimport run' imports."))
    return EXIT_OK


def register(commands: CommandTable) -> None:
    """Register `gimport check`."""
    commands.add(
        "check",
        cmd_check,
        _("check both logins and count what a run would import, with its ETA, in a few seconds; changes nothing"),
        _("gimport check           # before the first run, or when a token may have expired"),
        (EXIT_OK, EXIT_USAGE, EXIT_AUTH, EXIT_SOURCE, EXIT_GMAIL, EXIT_INTERRUPTED),
    )
