"""`gimport admin ...`: the commands of admin mode (docs/admin.md). Thin: parse, build settings, call
the gimport.admin package, render (gimport.render.admin), return an exit code. gimport.cli registers them (add_parser)."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from gimport.cli.terminal import StopOnSignal, confirm, run_exit_code
from gimport.errors import (
    EXIT_AUTH,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_USAGE,
    ConfigError,
)
from gimport.settings import Settings, load_settings

ADMIN_EXIT_CODES = f"""\
exit codes:
  {EXIT_OK}    every user (of this shard) is complete / verified / cleaned up
  {EXIT_SOME_FAILED}    some users are not: see the table and the report (each failure is recorded; run again)
  {EXIT_USAGE}    usage, config or users-file error (nothing was started)
  {EXIT_AUTH}    the service account cannot impersonate users (domain-wide delegation; see docs/admin.md)
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C or SIGTERM); run the same command again to continue
"""

ADMIN_DESCRIPTION = """\
Migrate many mailboxes with a Google service account and domain-wide delegation.
Same engine, mapping, filters and guarantees as 'gimport run' (exactly once, resumable, the old
server only read), one state file per user under [admin] state_dir. See docs/admin.md.
"""


# ------------------------------------------------------------------------------------------------ helpers


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config, admin=True)


def _users_path(args: argparse.Namespace, settings: Settings) -> Path | None:
    if getattr(args, "users", None):
        return Path(args.users).expanduser().resolve()
    return settings.admin.users_file


def _my_users(args: argparse.Namespace, settings: Settings, *, check_logins: bool = True, from_env: bool = True):
    """(users file path, every user, this process's shard, the users it takes)."""
    from gimport.admin.shards import shard_for, users_of
    from gimport.admin.users import load_users

    path = _users_path(args, settings)
    users = load_users(path, settings, check_logins=check_logins)
    shard = shard_for(args.shard, settings.admin.shard_count, from_env=from_env)
    return path, users, shard, users_of(shard, users)


# ----------------------------------------------------------------------------------------------- commands


def cmd_admin_run(args: argparse.Namespace) -> int:
    from gimport.admin.checks import service_account
    from gimport.admin.report import write_report
    from gimport.admin.run import AdminRun, prepare_state_dir
    from gimport.admin.shards import sharded_report_path
    from gimport.admin.users import exposed_passwords
    from gimport.logs import admin_logging
    from gimport.render.admin import AdminProgress, format_admin_summary

    settings = _settings(args)
    admin = settings.admin
    sa = service_account(settings)
    path, users, shard, mine = _my_users(args, settings)
    if exposed_passwords(path, users):
        print(f"warning: {path} holds passwords and others can read it: chmod 600 {path}", file=sys.stderr)
    report = sharded_report_path(admin.report_file, shard)
    log_file = sharded_report_path(settings.log_file, shard)
    prepare_state_dir(admin)
    progress = AdminProgress(len(mine))
    progress.phase(
        f"{len(mine)} of {len(users)} user(s) in shard {shard} ({shard.origin}); {min(admin.parallel_users, len(mine))}"
        f" at a time; project budget {admin.project_units_per_minute / shard.count:,.0f} units/min for this shard;"
        f" state in {admin.state_dir}"
    )
    with admin_logging(log_file, args.verbose) as router:
        runner = AdminRun(settings, mine, authorize=sa.authorize, shard=shard, reporter=progress, log_router=router)
        with StopOnSignal(runner.request_stop, progress.warning):
            try:
                summary = runner.run()
            finally:
                progress.close()
    write_report(report, summary.rows)
    print(format_admin_summary(summary, report=str(report), show_all=args.all))
    print(f"Log: {log_file} (and one log per user in {admin.state_dir})")
    return run_exit_code(summary)


def cmd_admin_status(args: argparse.Namespace) -> int:
    from gimport.admin.report import all_complete, read_rows, report_csv
    from gimport.render.admin import format_status_rows

    settings = _settings(args)
    admin = settings.admin
    users = None
    if _users_path(args, settings) is not None:
        _, _, _, users = _my_users(args, settings, check_logins=False, from_env=False)
    elif not admin.state_dir.is_dir():
        raise ConfigError(f"no state directory {admin.state_dir}: nothing has been run yet with this config")
    rows = read_rows(admin.state_dir, users)
    if args.csv:
        sys.stdout.write(report_csv(rows))
    else:
        print(f"State: {admin.state_dir} (read only; no network)")
        print(format_status_rows(rows, show_all=args.all))
    return EXIT_OK if all_complete(rows) else EXIT_SOME_FAILED


def cmd_admin_verify(args: argparse.Namespace) -> int:
    from gimport.admin.checks import all_verified, verify_users
    from gimport.render.admin import format_checks

    settings = _settings(args)
    _, _, shard, mine = _my_users(args, settings)
    stop = threading.Event()
    print(f"gimport: verifying {len(mine)} user(s) of shard {shard} ({shard.origin}); read-only", file=sys.stderr)
    try:
        checks = verify_users(settings, mine, shard, stop=stop)
    except KeyboardInterrupt:
        stop.set()
        raise
    print(format_checks(checks, "verify"))
    return EXIT_OK if all_verified(checks) else EXIT_SOME_FAILED


def cmd_admin_cleanup(args: argparse.Namespace) -> int:
    from gimport.admin.checks import Cleanup
    from gimport.render.admin import format_checks

    settings = _settings(args)
    _, _, shard, mine = _my_users(args, settings)
    cleanup = Cleanup(settings, mine, shard, forget=args.forget, force=args.force)
    print(f"gimport: reading Gmail settings of {len(mine)} user(s) of shard {shard}", file=sys.stderr)
    try:
        plans = cleanup.plan()
        print(format_checks(plans, "cleanup" + (" (dry run)" if args.dry_run else "")))
        todo = cleanup.todo
        if args.dry_run or not todo:
            return EXIT_OK if cleanup.plan_ok() else EXIT_SOME_FAILED
        if not confirm(f"Make these changes for {len(todo)} user(s)?", args.yes):
            print("Nothing was changed.")
            return EXIT_SOME_FAILED
        done = cleanup.apply()
    except KeyboardInterrupt:
        cleanup.stop.set()
        raise
    print()
    print(format_checks(done, "cleanup"))
    return EXIT_OK if cleanup.applied_ok(done) else EXIT_SOME_FAILED


# ------------------------------------------------------------------------------------------------ parser


def add_parser(sub, common: argparse.ArgumentParser) -> None:
    """Register `gimport admin` and its commands on the top-level subparsers."""
    fmt = argparse.RawDescriptionHelpFormatter
    admin_p = sub.add_parser(
        "admin",
        help="migrate many mailboxes with a Google service account (run, status, verify, cleanup)",
        description=ADMIN_DESCRIPTION,
        epilog="example (a typical session):\n"
        "  gimport admin run --users users.csv        # all users, [admin] parallel_users at a time\n"
        "  gimport admin status --users users.csv     # from the state files alone\n"
        "  gimport admin verify --users users.csv     # prove everything arrived\n"
        "  gimport admin cleanup --users users.csv    # disable IMAP in every Gmail account\n\n" + ADMIN_EXIT_CODES,
        formatter_class=fmt,
        parents=[common],
    )
    admin_p.set_defaults(func=lambda args: (admin_p.print_help(), EXIT_USAGE)[1])
    asub = admin_p.add_subparsers(dest="admin_command", metavar="COMMAND", title="admin commands")

    users_opts = argparse.ArgumentParser(add_help=False)
    users_opts.add_argument(
        "--users", metavar="CSV", help="the users file (default: [admin] users_file); format in docs/admin.md"
    )
    users_opts.add_argument(
        "--shard",
        metavar="I/N",
        help="take only the users of shard I of N (0-based; by a hash of the Gmail address). Default: from"
        " GIMPORT_SHARD, a Kubernetes Indexed Job (JOB_COMPLETION_INDEX + GIMPORT_SHARD_COUNT) or a Slurm"
        " array (SLURM_ARRAY_TASK_*); else every user",
    )

    def add(name: str, func, help_text: str, example: str) -> argparse.ArgumentParser:
        p = asub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=f"example:\n  {example}\n\n{ADMIN_EXIT_CODES}",
            formatter_class=fmt,
            parents=[common, users_opts],
        )
        p.set_defaults(func=func)
        return p

    run_p = add(
        "run",
        cmd_admin_run,
        "migrate every user of the users file (of this shard); safe to interrupt and run again",
        "gimport admin run --users users.csv\n  gimport admin run --users users.csv --shard 2/8   # one machine of eight",
    )
    run_p.add_argument("--all", action="store_true", help="list every user in the final table (not only problems)")
    status_p = add(
        "status",
        cmd_admin_status,
        "where every user stands, from the state files alone (no network)",
        "gimport admin status --users users.csv\n  gimport admin status --csv > report.csv   # every state file in"
        " [admin] state_dir",
    )
    status_p.add_argument("--csv", action="store_true", help="print the report as CSV (the columns of report_file)")
    status_p.add_argument("--all", action="store_true", help="list every user (not only problems)")
    add(
        "verify",
        cmd_admin_verify,
        "run 'gimport verify' for every user: the source now vs the state file vs Gmail; changes nothing",
        "gimport admin verify --users users.csv",
    )
    cleanup_p = add(
        "cleanup",
        cmd_admin_cleanup,
        "run 'gimport cleanup' for every user: check forwarding, disable IMAP in Gmail",
        "gimport admin cleanup --users users.csv --dry-run\n  gimport admin cleanup --users users.csv --yes",
    )
    cleanup_p.add_argument("--dry-run", action="store_true", help="show what would change and change nothing")
    cleanup_p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    cleanup_p.add_argument(
        "--forget", action="store_true", help="also delete each user's state file (only where verify passes)"
    )
    cleanup_p.add_argument("--force", action="store_true", help="--forget even where verify would not pass")
