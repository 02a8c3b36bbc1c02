"""`gimport plan | run | status | verify | cleanup`: the commands of one mailbox's migration. Each is a short
function: build settings (gimport.config.load), get its pieces from gimport.wiring, call one function of the
engine or the finishing steps, print what gimport.render makes of the result, return an exit code. Errors
are left to gimport.cli.main, which turns them into one line. Registered by gimport.cli.main (register)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gimport.cli import finishing
from gimport.cli.follow import follow_end, follow_options, follow_status, following
from gimport.cli.options import ALL_CODES, CommandTable, add_follow_options, add_stats_option
from gimport.cli.terminal import StopOnSignal, run_exit_code
from gimport.config.load import load_settings
from gimport.config.settings import Settings
from gimport.contract import DONE_STATUSES
from gimport.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED, EXIT_SOURCE, EXIT_USAGE
from gimport.i18n import _, english
from gimport.logs import logging_to
from gimport.render.progress import safe, safe_lines

if TYPE_CHECKING:  # only named in annotations: the command loads it when it runs
    from gimport.engine.follow import FollowOptions


def cmd_run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    follow = follow_options(args)
    with logging_to(settings.log_file, args.verbose):
        return _run(settings, new_state=args.new_state, stats=args.stats, follow=follow)


def _run(settings: Settings, *, new_state: bool = False, stats: float = 0, follow: FollowOptions | None = None) -> int:
    from gimport import wiring
    from gimport.engine.transfer import EngineOptions
    from gimport.render.progress import TqdmReporter
    from gimport.render.run import format_summary, stopped_before_importing
    from gimport.render.text import terminal_width

    acct = wiring.account(settings)
    password = wiring.read_password(settings)
    lock = wiring.check_lock(settings.state_path)
    try:
        state = wiring.state(settings.state_path)
        record = _progress_record(state)
        reporter = TqdmReporter(stats=stats, on_tick=record, rate_limited=lambda: acct.pacer.rate_limited)
        record(reporter.snapshot())  # `gimport status` tells a run in progress from the start
        source = wiring.source(settings.source, password)
        try:
            src = settings.source
            if src.local:
                reporter.phase(_("reading {kind} at {path}").format(kind=src.type, path=src.path))
            else:
                reporter.phase(
                    _("connecting to {host}:{port} as {user}").format(host=src.host, port=src.port, user=src.user)
                )
            source.connect()
            options = EngineOptions(workers=settings.gmail.workers, new_state=new_state)
            migration = acct.migration(source=source, state=state, reporter=reporter, options=options)
            reporter.follow(migration.summary)
            runner = migration if follow is None else following(migration, state, follow, reporter)
            with StopOnSignal(runner.request_stop, reporter.warning, before_exit=reporter.close):
                summary = runner.run()
            ending = follow_end(state) if follow is not None else ""
        finally:
            reporter.close()
            source.close()
            state.close()
    finally:
        lock.release()
    if summary.fatal is not None and stopped_before_importing(summary):
        # one line, once: what stopped it says what to do
        logging.getLogger("gimport").error("stopped before importing: %s", english(summary.fatal))
        print(
            safe(_("gimport: {error} (log: {path})").format(error=summary.fatal, path=settings.log_file)),
            file=sys.stderr,
        )
        return summary.fatal.exit_code
    print(safe_lines(format_summary(summary, width=terminal_width(sys.stdout))))
    if ending:
        print(safe(ending))
    print(_("Log: {path}").format(path=settings.log_file))
    return run_exit_code(summary)


def _progress_record(state: Any) -> Callable[[dict[str, Any]], None]:
    """on_tick for the reporter: the run's progress in the state's meta table, for `gimport status`."""
    import json

    def record(snapshot: dict[str, Any]) -> None:
        state.set_meta("run_progress", json.dumps(snapshot))

    return record


def cmd_status(args: argparse.Namespace) -> int:
    import json

    from gimport import wiring
    from gimport.engine.lost_state import MARKER_META
    from gimport.render.run import format_run_progress, format_status
    from gimport.render.text import terminal_width, wrap

    settings = load_settings(args.config)
    width = terminal_width(sys.stdout)
    if not Path(settings.state_path).exists():
        from gimport.cli.lost_state import missing_state

        raise missing_state(settings)
    state = wiring.state(settings.state_path, readonly=True)
    try:
        account = settings.source.account
        running = wiring.run_in_progress(settings.state_path)
        counts = state.folder_counts(account)
        head = _("Source: {account}    state file: {path}").format(account=account, path=settings.state_path)
        print(safe_lines(wrap(head, width, indent="  ")))
        if running:
            try:
                progress = json.loads(state.get_meta("run_progress") or "null")
            except ValueError:
                progress = None
            holder = wiring.run_lock(settings.state_path).holder()
            print(safe_lines(format_run_progress(progress, holder, width=width)))
            print()
        if following := follow_status(state, running=running, width=width):
            print(safe_lines(following) + "\n")
        # one Gmail id behind several rows: a message in several folders (gimport.engine.copies)
        ids = Counter(r.gmail_id for r in state.ledger(account, statuses=DONE_STATUSES) if r.gmail_id)
        shared = (sum(n > 1 for n in ids.values()), sum(n for n in ids.values() if n > 1))
        status = format_status(counts, state.get_meta("gmail_account"), width=width, in_progress=running, shared=shared)
        print(safe_lines(status))
        if not counts and not running and not state.get_meta(MARKER_META + account):
            from gimport.cli.lost_state import marker_note

            note = marker_note(settings)
            if note:
                print(safe_lines(wrap(note, width)))
        problems = state.problems(account, limit=20)
        if problems:
            print("\n" + _("Not imported (most recent first):"))
            for folder, uid, status, reason in problems:
                print(safe(f"  {folder} UID {uid}: {status}: {reason}"))  # i18n-ok: UID is IMAP's word
        folder_errors = state.folder_errors(account) if hasattr(state, "folder_errors") else {}
        if folder_errors:
            print("\n" + _("Folders the server could not serve at the last run (leave one out with [labels] exclude):"))
            for folder, error in sorted(folder_errors.items()):
                print(safe(f"  {folder}: {error}"))
        _print_deleted(state, account, [c.folder for c in counts])
        todo = sum(c.to_do for c in counts)
        return EXIT_OK if counts and todo == 0 and not problems and not folder_errors else EXIT_SOME_FAILED
    finally:
        state.close()


def _print_deleted(state: Any, account: str, folders: list[str]) -> None:
    """The folders' messages marked deleted on the server at the latest scan (gimport.engine.scan)."""
    from gimport.engine.scan import deleted_key

    marked = [(f, int(state.get_meta(deleted_key(account, f)) or 0)) for f in folders]
    marked = [(f, n) for f, n in marked if n]
    if marked:
        print(
            "\n"
            + _(
                "Marked deleted on the server at the latest scan (imported, to Trash, only with [filters] include_deleted = true):"
            )
        )
        for folder, n in marked:
            print(safe(f"  {folder}: {n}"))


def cmd_plan(args: argparse.Namespace) -> int:
    import json

    from gimport import wiring
    from gimport.operations.plan import preview
    from gimport.render.plan import format_plan, plan_to_json
    from gimport.render.text import terminal_width, wrap

    settings = load_settings(args.config)
    password = wiring.read_password(settings)
    state = wiring.state_if_exists(settings.state_path)
    try:
        with wiring.source(settings.source, password) as source:
            result = preview(source, settings, state)
    finally:
        if state is not None:
            state.close()
    if args.json:
        print(json.dumps(plan_to_json(result), ensure_ascii=False, indent=2))
    else:
        width = terminal_width(sys.stdout)
        head = _("Source: {account} (read-only; Gmail is not contacted)").format(account=settings.source.account)
        print(safe_lines(wrap(head, width)))
        print(safe_lines(format_plan(result, width=width)))
    return EXIT_OK


# -------------------------------------------------------------------------------------------- parser


def register(commands: CommandTable) -> None:
    """Register `gimport plan`, `run`, `verify`, `status` and `cleanup`, in the order `gimport --help` lists them."""
    _register_plan(commands)
    _register_run(commands)
    finishing.register_verify(commands)
    _register_status(commands)
    finishing.register_cleanup(commands)


def _register_plan(commands: CommandTable) -> None:
    plan_p = commands.add(
        "plan",
        cmd_plan,
        _("show what would land under which label; reads the source only and changes nothing"),
        _("gimport plan            # a table\n  gimport plan --json     # the same as JSON, for scripts"),
        (EXIT_OK, EXIT_USAGE, EXIT_SOURCE, EXIT_INTERRUPTED),
    )
    plan_p.add_argument("--json", action="store_true", help=_("print JSON instead of a table"))


def _register_run(commands: CommandTable) -> None:
    run_p = commands.add(
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
            "go on with a new (or lost) state file even when Gmail holds the marker of an earlier run from this"
            " source or the labels this run uses already hold mail (that mail is then imported again)"
        ),
    )
    add_stats_option(run_p)
    add_follow_options(run_p)


def _register_status(commands: CommandTable) -> None:
    commands.add(
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
