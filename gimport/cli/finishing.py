"""`gimport verify | cleanup`: the end of a migration (gimport help finishing): prove what arrived, then turn
off what the migration no longer needs. Registered through gimport.cli.migration (register_verify,
register_cleanup: the order `gimport --help` lists them in)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from gimport.cli.follow import cutover_notes
from gimport.cli.options import ALL_CODES, CommandTable, add_verify_options
from gimport.cli.terminal import confirm
from gimport.config.load import load_settings
from gimport.config.settings import Settings
from gimport.errors import EXIT_OK, EXIT_SOME_FAILED
from gimport.i18n import _
from gimport.render.progress import safe_lines

if TYPE_CHECKING:  # only named in annotations: the command loads it when it runs
    from gimport.operations.verify import VerifyReport


VERIFY_LIST_LIMIT = 50  # missing messages detailed in the table output (--json lists all)


def _verify_report(
    settings: Settings, list_limit: int | None, *, exact: bool = False, strict_labels: bool = False
) -> VerifyReport:
    """gimport.operations.verify.verify on a read-only state file and a read-only source session."""
    from gimport import wiring
    from gimport.operations.verify import verify
    from gimport.render.progress import TqdmReporter

    state = wiring.state(settings.state_path, readonly=True)
    try:
        gmail = wiring.account(settings).gmail
        with wiring.source(settings.source, wiring.read_password(settings)) as source:
            return verify(
                settings,
                source=source,
                gmail=gmail,
                state=state,
                list_limit=list_limit,
                reporter=TqdmReporter(enabled=False),
                exact=exact,
                strict_labels=strict_labels,
            )
    finally:
        state.close()


def cmd_verify(args: argparse.Namespace) -> int:
    import json

    from gimport.render.finish import format_verify, verify_to_json
    from gimport.render.text import terminal_width

    settings = load_settings(args.config)
    report = _verify_report(
        settings, None if args.json else VERIFY_LIST_LIMIT, exact=args.exact, strict_labels=args.strict_labels
    )
    if args.json:
        print(json.dumps(verify_to_json(report), ensure_ascii=False, indent=2))
    else:
        print(safe_lines(format_verify(report, width=terminal_width(sys.stdout))))
    return EXIT_OK if report.passed else EXIT_SOME_FAILED


def cmd_cleanup(args: argparse.Namespace) -> int:
    from gimport import wiring
    from gimport.operations.cleanup import apply_cleanup, plan_cleanup
    from gimport.render.finish import format_cleanup_plan, format_cleanup_result
    from gimport.render.text import terminal_width

    gated = (args.revoke or args.forget) and not args.force
    settings = load_settings(args.config, need_source=gated)
    gmail = wiring.account(settings).gmail
    plan = plan_cleanup(
        settings,
        gmail,
        revoke=args.revoke,
        forget=args.forget,
        force=args.force,
        verify_now=lambda: _verify_report(settings, 0),
        run_in_progress=wiring.run_in_progress,
    )
    plan.notes += cutover_notes(settings)
    width = terminal_width(sys.stdout)
    print(format_cleanup_plan(plan, dry_run=args.dry_run, width=width), flush=True)
    if plan.blocked:
        return EXIT_SOME_FAILED
    if args.dry_run:
        return EXIT_OK
    imap_off = not plan.gmail.imap_enabled
    if plan.has_changes:
        if not confirm(_("Make these changes?"), args.yes):
            print(_("Nothing was changed."))
            return EXIT_SOME_FAILED
        # --forget deletes the state file under the run lock: no run can start on it meanwhile
        lock = wiring.check_lock(settings.state_path) if plan.forget is not None else None
        try:
            result = apply_cleanup(plan, gmail, revoke_token=wiring.revoke_token)
        finally:
            if lock is not None:
                lock.release()
        print(format_cleanup_result(plan, result, width=width))
        if result.error is not None:
            raise result.error
        imap_off = result.imap_disabled
    return EXIT_OK if imap_off and not plan.gmail.warnings else EXIT_SOME_FAILED


def register_verify(commands: CommandTable) -> None:
    verify_p = commands.add(
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
    add_verify_options(verify_p)


def register_cleanup(commands: CommandTable) -> None:
    cleanup_p = commands.add(
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
