"""The command line: parse, build settings, call one function, turn errors into one line and an exit code."""

from __future__ import annotations

import argparse
import logging
import sys

from gimport import __version__, i18n
from gimport.cli import ledger as ledger_cli
from gimport.cli.terminal import StopOnSignal, confirm, run_exit_code
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
from gimport.logs import logging_to
from gimport.memory import bound_heap
from gimport.render.progress import safe, safe_lines
from gimport.settings import DEFAULT_CONFIG, Settings, load_settings

EXIT_CODES_HELP = N_("""\
exit codes:
  {ok}    everything selected is in Gmail (or the command succeeded)
  {some_failed}    the run finished but some messages are not in Gmail (recorded; the next run retries them)
  {usage}    usage or config error
  {auth}    Gmail authorization missing, expired or for the wrong account (run 'gimport auth')
  {source}    the old IMAP server cannot be reached or refused the login
  {gmail}    Gmail refused to go on (unreachable, daily limit, account not usable)
  {bug}   an unexpected error (a bug in gimport; the log file has the details)
  {interrupted}  interrupted (Ctrl-C or SIGTERM); run the same command again to continue
""")
_EXIT_CODES = {
    "ok": EXIT_OK,
    "some_failed": EXIT_SOME_FAILED,
    "usage": EXIT_USAGE,
    "auth": EXIT_AUTH,
    "source": EXIT_SOURCE,
    "gmail": EXIT_GMAIL,
    "bug": EXIT_BUG,
    "interrupted": EXIT_INTERRUPTED,
}

DESCRIPTION = N_("""\
Move a mailbox from an old IMAP server into Gmail through the Gmail API.
The old server is only read (never changed); messages go in with users.messages.import,
so Gmail needs no app password and no IMAP. A run can be stopped at any time and started again.
""")

EPILOG = N_("""\
typical session:
  gimport auth                 # once: consent in a browser (or --no-browser over SSH)
  gimport plan                 # what will land under which label; changes nothing
  gimport run                  # import; safe to interrupt and run again
  gimport status               # where things stand, from the state file alone
  gimport verify               # prove that everything arrived
  gimport cleanup              # disable IMAP on Gmail, check forwarding

The config file is ./{config} unless --config is given; see README.md.

{exit_codes}""")


def cmd_run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    with logging_to(settings.log_file, args.verbose):
        return _run(settings, new_state=args.new_state)


def _run(settings: Settings, *, new_state: bool = False) -> int:
    from gimport import wiring
    from gimport.engine import EngineOptions
    from gimport.render.progress import TqdmReporter, format_summary

    acct = wiring.account(settings)
    password = wiring.read_password(settings)
    lock = wiring.check_lock(settings.state_path)
    try:
        state = wiring.state(settings.state_path)
        reporter = TqdmReporter()
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
            with StopOnSignal(migration.request_stop, reporter.warning, before_exit=reporter.close):
                summary = migration.run()
        finally:
            reporter.close()
            source.close()
            state.close()
    finally:
        lock.release()
    print(safe_lines(format_summary(summary)))
    print(f"Log: {settings.log_file}")
    return run_exit_code(summary)


def cmd_status(args: argparse.Namespace) -> int:
    from gimport import wiring
    from gimport.render.progress import format_status

    settings = load_settings(args.config)
    state = wiring.state(settings.state_path, readonly=True)
    try:
        account = settings.source.account
        counts = state.folder_counts(account)
        print(f"Source: {account}    state file: {settings.state_path}")
        if wiring.run_in_progress(settings.state_path):
            holder = wiring.run_lock(settings.state_path).holder()
            print(_("A run is going on now ({holder}): these numbers are moving.").format(holder=holder))
        print(safe_lines(format_status(counts, state.get_meta("gmail_account"))))
        problems = state.problems(account, limit=20)
        if problems:
            print("\nNot imported (most recent first):")
            for folder, uid, status, reason in problems:
                print(safe(f"  {folder} UID {uid}: {status}: {reason}"))
        folder_errors = state.folder_errors(account) if hasattr(state, "folder_errors") else {}
        if folder_errors:
            print(_("\nFolders the server could not serve at the last run (leave one out with [labels] exclude):"))
            for folder, error in sorted(folder_errors.items()):
                print(safe(f"  {folder}: {error}"))
        todo = sum(c.to_do for c in counts)
        return EXIT_OK if counts and todo == 0 and not problems and not folder_errors else EXIT_SOME_FAILED
    finally:
        state.close()


def cmd_auth(args: argparse.Namespace) -> int:
    from gimport.backends.google import oauth as auth  # the command is about the OAuth grant itself

    # without a config file, auth works with the defaults: ./credentials.json -> ./token.json
    settings = load_settings(args.config, need_source=False, missing_ok=not args.config_given)
    if args.revoke:
        auth.revoke(settings.gmail.token_file)
        return EXIT_OK
    mode = "paste" if args.paste else "no-browser" if args.no_browser else "auto"
    exact = getattr(args, "exact_verify", False)
    auth.authorize(settings.gmail, mode=mode, port=args.port, timeout=args.timeout, exact_verify=exact)
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    import json

    from gimport import wiring
    from gimport.plan import preview, to_json
    from gimport.render.progress import format_plan

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
        print(json.dumps(to_json(result), ensure_ascii=False, indent=2))
    else:
        print(_("Source: {account} (read-only; Gmail is not contacted)").format(account=settings.source.account))
        print(safe_lines(format_plan(result)))
    return EXIT_OK


VERIFY_LIST_LIMIT = 50  # missing messages detailed in the table output (--json lists all)


def _verify_report(settings: Settings, list_limit: int | None, *, exact: bool = False, strict_labels: bool = False):
    """gimport.verify.verify on a read-only state file and a read-only source session."""
    from gimport import wiring
    from gimport.render.progress import TqdmReporter
    from gimport.verify import verify

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

    settings = load_settings(args.config)
    report = _verify_report(
        settings, None if args.json else VERIFY_LIST_LIMIT, exact=args.exact, strict_labels=args.strict_labels
    )
    if args.json:
        print(json.dumps(verify_to_json(report), ensure_ascii=False, indent=2))
    else:
        print(safe_lines(format_verify(report)))
    return EXIT_OK if report.passed else EXIT_SOME_FAILED


def cmd_cleanup(args: argparse.Namespace) -> int:
    from gimport import wiring
    from gimport.cleanup import apply_cleanup, plan_cleanup
    from gimport.render.finish import format_cleanup_plan, format_cleanup_result

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
    print(format_cleanup_plan(plan, dry_run=args.dry_run), flush=True)
    if plan.blocked:
        return EXIT_SOME_FAILED
    if args.dry_run:
        return EXIT_OK
    imap_off = not plan.gmail.imap_enabled
    if plan.has_changes:
        if not confirm("Make these changes?", args.yes):
            print("Nothing was changed.")
            return EXIT_SOME_FAILED
        # --forget deletes the state file under the run lock: no run can start on it meanwhile
        lock = wiring.check_lock(settings.state_path) if plan.forget is not None else None
        try:
            result = apply_cleanup(plan, gmail, revoke_token=wiring.revoke_token)
        finally:
            if lock is not None:
                lock.release()
        print(format_cleanup_result(plan, result))
        if result.error is not None:
            raise result.error
        imap_off = result.imap_disabled
    return EXIT_OK if imap_off and not plan.gmail.warnings else EXIT_SOME_FAILED


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
        epilog=_(EPILOG).format(config=DEFAULT_CONFIG, exit_codes=_(EXIT_CODES_HELP).format(**_EXIT_CODES)),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"gimport {__version__}",
        help=_("show program's version number and exit"),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title=_("commands"))

    def add(name: str, func, help_text: str, example: str) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=_("example:") + f"\n  {example}\n\n" + _(EXIT_CODES_HELP).format(**_EXIT_CODES),
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=[common],
        )
        p.set_defaults(func=func)
        return p

    auth_p = add(
        "auth",
        cmd_auth,
        _("authorize gimport to import into your Gmail (once; the token is saved to [gmail] token_file)"),
        _(
            "gimport auth                  # on a desktop: opens the browser\n"
            "  gimport auth --no-browser     # over SSH: prints the URL; forward the port with ssh -L"
            " 8765:localhost:8765\n"
            "  gimport auth --paste          # no port forwarding: paste the final http://localhost... address back\n"
            "  gimport auth --revoke         # withdraw gimport's access and delete the token file\n"
            "  (setting up the Google Cloud project and the Desktop OAuth client: docs/auth.md)"
        ),
    )
    auth_how = auth_p.add_mutually_exclusive_group()
    auth_how.add_argument(
        "--no-browser",
        action="store_true",
        help=_(
            "do not open a browser: print the URL and wait on localhost:PORT (the default without a display/over SSH)"
        ),
    )
    auth_how.add_argument(
        "--paste",
        action="store_true",
        help=_("print the URL, then read the final http://localhost... address pasted back"),
    )
    auth_how.add_argument("--revoke", action="store_true", help=_("revoke the saved token and delete the token file"))
    auth_p.add_argument(
        "--port", type=int, default=8765, help=_("localhost port for Google's answer (default 8765; 0 = any free port)")
    )
    ledger_cli.add_auth_options(auth_p)
    auth_p.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help=_("how long to wait for the answer (default 300)"),
    )
    plan_p = add(
        "plan",
        cmd_plan,
        _("show what would land under which label; reads the source only and changes nothing"),
        _("gimport plan            # a table\n  gimport plan --json     # the same as JSON, for scripts"),
    )
    plan_p.add_argument("--json", action="store_true", help=_("print JSON instead of a table"))
    run_p = add(
        "run",
        cmd_run,
        _("import every selected message; safe to interrupt and run again"),
        "gimport --config ~/gimport.toml run",
    )
    run_p.add_argument(
        "--new-state",
        action="store_true",
        help=_(
            "go on with a new (or lost) state file even when the labels this run uses already hold mail in Gmail"
            " (that mail may then be imported again)"
        ),
    )
    verify_p = add(
        "verify",
        cmd_verify,
        _("check that everything arrived: the source now vs the state file vs Gmail's label counts; changes nothing"),
        _(
            "gimport verify            # a table; exit 0 only when nothing selected is missing\n"
            "  gimport verify --json     # the same as JSON, every missing message listed\n"
            "  (the end of a migration: docs/finishing.md)"
        ),
    )
    verify_p.add_argument("--json", action="store_true", help=_("print JSON instead of a table"))
    ledger_cli.add_verify_options(verify_p)
    add(
        "status",
        cmd_status,
        _("where the migration stands, from the state file alone (no network)"),
        "gimport status",
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
            "  (the end of a migration: docs/finishing.md)"
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
    from gimport.cli import admin as admin_cli

    admin_cli.add_parser(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    bound_heap()  # large message buffers go back to the system when freed (gimport.memory)
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
        print("gimport: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - a bug: one line for the person, the traceback for the log
        logging.getLogger("gimport").exception("unexpected error")
        print(safe(f"gimport: {Unexpected(f'unexpected error: {exc!r}')}"), file=sys.stderr)
        return EXIT_BUG


__all__ = ["main", "build_parser"]
