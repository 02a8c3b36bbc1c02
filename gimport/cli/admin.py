"""`gimport admin ...`: the commands of admin mode (docs/admin.md). Thin: parse, build settings, call
the gimport.admin package, render (gimport.render.admin), return an exit code. gimport.cli registers them (add_parser)."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import Any

from gimport.cli import ledger as ledger_cli
from gimport.cli.options import FittingHelpFormatter, add_stats_option, exit_codes_help
from gimport.cli.terminal import StopOnSignal, confirm, run_exit_code
from gimport.config import load_settings
from gimport.errors import (
    EXIT_AUTH,
    EXIT_BUG,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_USAGE,
    ConfigError,
)
from gimport.i18n import N_, _
from gimport.settings import Settings


def admin_exit_codes() -> str:
    """The "exit codes:" block of every admin command's --help (in the reader's language)."""
    return exit_codes_help(
        [
            (EXIT_OK, _("every user (of this shard) is complete / verified / cleaned up")),
            (
                EXIT_SOME_FAILED,
                _("some users are not: see the table and the report (each failure is recorded; run again)"),
            ),
            (EXIT_USAGE, _("usage, config or users-file error (nothing was started)")),
            (EXIT_AUTH, _("the service account cannot impersonate users (domain-wide delegation; see docs/admin.md)")),
            (EXIT_BUG, _("an unexpected error (a bug in gimport; the run's log has the details)")),
            (EXIT_INTERRUPTED, _("interrupted (Ctrl-C or SIGTERM); run the same command again to continue")),
        ]
    )


ADMIN_DESCRIPTION = N_("""\
Migrate many mailboxes with a Google service account and domain-wide delegation.
Same engine, mapping, filters and guarantees as 'gimport run' (exactly once, resumable, the old
server only read), one state file per user under [admin] state_dir. See docs/admin.md.
""")

ADMIN_EPILOG = N_("""\
example (a typical session):
  gimport admin plan --users users.csv       # how long it takes; reads the old server only
  gimport admin run --users users.csv        # all users, [admin] parallel_users at a time
  gimport admin status --users users.csv     # from the state files alone
  gimport admin verify --users users.csv     # prove everything arrived
  gimport admin cleanup --users users.csv    # disable IMAP in every Gmail account
""")


# ------------------------------------------------------------------------------------------------ helpers


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config, admin=True)


def _users_path(args: argparse.Namespace, settings: Settings) -> Path | None:
    if getattr(args, "users", None):
        return Path(args.users).expanduser().resolve()
    return settings.admin.users_file


def _my_users(
    args: argparse.Namespace,
    settings: Settings,
    *,
    check_logins: bool = True,
    from_env: bool = True,
    use_map: bool = True,
):
    """(users file path, every user, this process's shard, the users it takes)."""
    from gimport.admin.shards import shard_for, users_of
    from gimport.admin.users import load_users

    path = _users_path(args, settings)
    users = load_users(path, settings, check_logins=check_logins)
    shard = shard_for(
        args.shard,
        settings.admin.shard_count,
        from_env=from_env,
        shard_map=settings.admin.shard_map if use_map else None,
    )
    return path, users, shard, users_of(shard, users)


# ----------------------------------------------------------------------------------------------- commands


def cmd_admin_run(args: argparse.Namespace) -> int:
    from gimport.admin import coverage
    from gimport.admin.checks import service_account
    from gimport.admin.report import write_report
    from gimport.admin.run import AdminRun, prepare_state_dir, run_outcome
    from gimport.admin.shards import sharded_report_path
    from gimport.admin.users import exposed_passwords
    from gimport.logs import admin_logging
    from gimport.render.admin import AdminProgress, format_admin_summary, format_coverage

    settings = _settings(args)
    admin = settings.admin
    sa = service_account(settings)
    path, users, shard, mine = _my_users(args, settings)
    if exposed_passwords(path, users):
        print(
            _("warning: {path} holds passwords and others can read it: chmod 600 {path}").format(path=path),
            file=sys.stderr,
        )
    report = sharded_report_path(admin.report_file, shard)
    log_file = sharded_report_path(settings.log_file, shard)
    prepare_state_dir(admin)
    runners: list[Any] = []  # the AdminRun, once made: its users' "slow down" count for the status lines
    progress = AdminProgress(
        len(mine), stats=args.stats, rate_limited=lambda: runners[0].rate_limited() if runners else 0
    )
    per_minute = f"{admin.project_units_per_minute / shard.count:,.0f}"
    daily = (
        _(" and {units} units/day").format(units=f"{admin.project_units_per_day / shard.count:,.0f}")
        if admin.project_units_per_day
        else _(" (no daily limit)")
    )
    progress.phase(
        _(
            "{mine} of {total} user(s) in shard {shard} ({origin}); {parallel} at a time; project budget"
            " {per_minute} units/min for this shard{daily}; state in {state_dir}"
        ).format(
            mine=len(mine),
            total=len(users),
            shard=shard,
            origin=shard.origin,
            parallel=min(admin.parallel_users, len(mine)),
            per_minute=per_minute,
            daily=daily,
            state_dir=admin.state_dir,
        )
    )
    if shard.assignment is not None:
        unmapped = sum(1 for u in users if u.gmail.strip().lower() not in shard.assignment)
        if unmapped:
            progress.warning(
                _(
                    "{n} user(s) of the users file are not in [admin] shard_map: they go by the hash (write the"
                    " map again with 'gimport admin plan --write-shards {count}' between campaigns)"
                ).format(n=unmapped, count=shard.count)
            )
    record = coverage.record_start(admin.state_dir, shard, [u.gmail for u in mine], [u.gmail for u in users])
    with admin_logging(log_file, args.verbose) as router:
        runner = AdminRun(settings, mine, authorize=sa.authorize, shard=shard, reporter=progress, log_router=router)
        runners.append(runner)
        with StopOnSignal(runner.request_stop, progress.warning):
            try:
                summary = runner.run()
            finally:
                progress.close()
    coverage.record_finish(admin.state_dir, record, run_outcome(summary))
    write_report(report, summary.rows)
    print(format_admin_summary(summary, report=str(report), show_all=args.all))
    cov = coverage.check(admin.state_dir, [u.gmail for u in users])
    print(format_coverage(cov, admin.state_dir, after_run=True))
    print(
        _("Log: {log_file} (and one log per user in {state_dir})").format(log_file=log_file, state_dir=admin.state_dir)
    )
    rc = run_exit_code(summary)
    if summary.bugs and rc in (EXIT_OK, EXIT_SOME_FAILED):
        # a bug in gimport, not something the users file or an account can fix: its own code (issue 10)
        print(
            _(
                "gimport: {n} user(s) stopped by an unexpected error (a bug in gimport): the run's log has the details"
            ).format(n=summary.bugs),
            file=sys.stderr,
        )
        return EXIT_BUG
    # the other shards may not have run yet: only what is wrong whatever they do fails this one
    return EXIT_SOME_FAILED if rc == EXIT_OK and cov.fails_run else rc


def cmd_admin_status(args: argparse.Namespace) -> int:
    from gimport.admin import coverage
    from gimport.admin.report import all_complete, read_rows, report_csv
    from gimport.render.admin import format_coverage, format_status_rows

    settings = _settings(args)
    admin = settings.admin
    users = everybody = shard = None
    if _users_path(args, settings) is not None:
        _path, all_users, shard, users = _my_users(args, settings, check_logins=False, from_env=False)
        everybody = [u.gmail for u in all_users]
    elif not admin.state_dir.is_dir():
        raise ConfigError(
            _("no state directory {state_dir}: nothing has been run yet with this config").format(
                state_dir=admin.state_dir
            )
        )
    rows = read_rows(admin.state_dir, users)
    cov = coverage.check(admin.state_dir, everybody, shard if args.shard else None)
    if args.csv:
        sys.stdout.write(report_csv(rows))
        if not cov.ok:
            print(format_coverage(cov, admin.state_dir), file=sys.stderr)
    else:
        print(_("State: {state_dir} (read only; no network)").format(state_dir=admin.state_dir))
        print(format_status_rows(rows, show_all=args.all))
        print(format_coverage(cov, admin.state_dir))
    return EXIT_OK if all_complete(rows) and cov.ok else EXIT_SOME_FAILED


def cmd_admin_plan(args: argparse.Namespace) -> int:
    import json

    from gimport.admin.plan import estimate, scan, shard_count_for, to_json
    from gimport.admin.shards import write_shard_map
    from gimport.render.admin import format_campus_plan

    settings = _settings(args)
    admin = settings.admin
    if args.write_shards is not None:
        if args.shard:
            raise ConfigError(_("--write-shards plans every user: leave out --shard"))
        if admin.shard_map is None:
            raise ConfigError(
                _(
                    '--write-shards needs [admin] shard_map = "FILE" in the config: the file to write (every shard'
                    " then reads it)"
                )
            )
        if args.write_shards < 1:
            raise ConfigError(
                _("--write-shards {n}: the number of shards must be at least 1").format(n=args.write_shards)
            )
        if admin.shard_count and admin.shard_count != args.write_shards:
            raise ConfigError(
                _(
                    "--write-shards {n}, but [admin] shard_count is {count}: write the map"
                    " for the same N (or change shard_count with it)"
                ).format(n=args.write_shards, count=admin.shard_count)
            )
    # the old server only, every user (or an explicit --shard's): never the job environment
    _path, _users, shard, mine = _my_users(args, settings, from_env=False, use_map=args.write_shards is None)
    print(
        _("gimport: reading {n} mailbox(es) on {host} (read-only; Gmail is not contacted)").format(
            n=len(mine), host=settings.source.host
        ),
        file=sys.stderr,
    )
    stop = threading.Event()
    try:
        users = scan(settings, mine, stop=stop)
    except KeyboardInterrupt:
        stop.set()
        raise
    count = shard_count_for(settings, args.write_shards, shard if args.shard else None)
    plan = estimate(settings, users, count, balanced=args.write_shards is not None)
    written = None
    if args.write_shards is not None:
        write_shard_map(admin.shard_map, {u.gmail: u.to_import for u in users}, args.write_shards)
        written = admin.shard_map
    if args.json:
        print(json.dumps(to_json(plan, written), ensure_ascii=False, indent=2))
    else:
        print(format_campus_plan(plan, shard_map=written))
    if any(u.bug for u in users):
        return EXIT_BUG
    return EXIT_SOME_FAILED if any(u.error for u in users) else EXIT_OK


def cmd_admin_verify(args: argparse.Namespace) -> int:
    from gimport.admin.checks import all_verified, any_bug, verify_users
    from gimport.render.admin import format_checks

    settings = _settings(args)
    _path, _users, shard, mine = _my_users(args, settings)
    stop = threading.Event()
    print(
        _("gimport: verifying {n} user(s) of shard {shard} ({origin}); read-only").format(
            n=len(mine), shard=shard, origin=shard.origin
        ),
        file=sys.stderr,
    )
    try:
        checks = verify_users(
            settings,
            mine,
            shard,
            stop=stop,
            exact=getattr(args, "exact", False),
            strict=getattr(args, "strict_labels", False),
        )
    except KeyboardInterrupt:
        stop.set()
        raise
    print(format_checks(checks, _("verify")))
    if any_bug(checks):
        return EXIT_BUG
    return EXIT_OK if all_verified(checks) else EXIT_SOME_FAILED


def cmd_admin_cleanup(args: argparse.Namespace) -> int:
    from gimport.admin.checks import Cleanup, any_bug
    from gimport.render.admin import format_checks

    settings = _settings(args)
    _path, _users, shard, mine = _my_users(args, settings)
    cleanup = Cleanup(settings, mine, shard, forget=args.forget, force=args.force)
    print(
        _("gimport: reading Gmail settings of {n} user(s) of shard {shard}").format(n=len(mine), shard=shard),
        file=sys.stderr,
    )
    try:
        plans = cleanup.plan()
        print(format_checks(plans, _("cleanup (dry run)") if args.dry_run else _("cleanup")))
        todo = cleanup.todo
        if args.dry_run or not todo:
            if any_bug(plans):
                return EXIT_BUG
            return EXIT_OK if cleanup.plan_ok() else EXIT_SOME_FAILED
        if not confirm(_("Make these changes for {n} user(s)?").format(n=len(todo)), args.yes):
            print(_("Nothing was changed."))
            return EXIT_SOME_FAILED
        done = cleanup.apply()
    except KeyboardInterrupt:
        cleanup.stop.set()
        raise
    print()
    print(format_checks(done, _("cleanup")))
    if any_bug(plans) or any_bug(done):
        return EXIT_BUG
    return EXIT_OK if cleanup.applied_ok(done) else EXIT_SOME_FAILED


# ------------------------------------------------------------------------------------------------ parser


def add_parser(sub, common: argparse.ArgumentParser) -> None:
    """Register `gimport admin` and its commands on the top-level subparsers."""
    fmt = FittingHelpFormatter
    admin_p = sub.add_parser(
        "admin",
        help=_("migrate many mailboxes with a Google service account (plan, run, status, verify, cleanup)"),
        description=_(ADMIN_DESCRIPTION),
        epilog=_(ADMIN_EPILOG) + "\n" + admin_exit_codes(),
        formatter_class=fmt,
        parents=[common],
    )
    admin_p.set_defaults(func=lambda args: (admin_p.print_help(), EXIT_USAGE)[1])
    asub = admin_p.add_subparsers(dest="admin_command", metavar="COMMAND", title=_("admin commands"))

    users_opts = argparse.ArgumentParser(add_help=False)
    users_opts.add_argument(
        "--users", metavar="CSV", help=_("the users file (default: [admin] users_file); format in docs/admin.md")
    )
    users_opts.add_argument(
        "--shard",
        metavar="I/N",
        help=_(
            "take only the users of shard I of N (0-based; by a hash of the Gmail address). Default: from"
            " GIMPORT_SHARD, a Kubernetes Indexed Job (JOB_COMPLETION_INDEX + GIMPORT_SHARD_COUNT) or a Slurm"
            " array (SLURM_ARRAY_TASK_*); else every user"
        ),
    )

    def add(name: str, func, help_text: str, example: str) -> argparse.ArgumentParser:
        p = asub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=_("example:") + f"\n  {example}\n\n" + admin_exit_codes(),
            formatter_class=fmt,
            parents=[common, users_opts],
        )
        p.set_defaults(func=func)
        return p

    run_p = add(
        "run",
        cmd_admin_run,
        _("migrate every user of the users file (of this shard); safe to interrupt and run again"),
        "gimport admin run --users users.csv\n  gimport admin run --users users.csv --shard 2/8   # "
        + _("one machine of eight"),
    )
    run_p.add_argument("--all", action="store_true", help=_("list every user in the final table (not only problems)"))
    add_stats_option(run_p)
    status_p = add(
        "status",
        cmd_admin_status,
        _("where every user stands, from the state files alone (no network)"),
        "gimport admin status --users users.csv\n  gimport admin status --csv > report.csv   # "
        + _("every state file in [admin] state_dir"),
    )
    status_p.add_argument("--csv", action="store_true", help=_("print the report as CSV (the columns of report_file)"))
    status_p.add_argument("--all", action="store_true", help=_("list every user (not only problems)"))
    plan_p = add(
        "plan",
        cmd_admin_plan,
        _(
            "how big the campus is and how long it takes: messages, bytes and units per user, the wall time at"
            " each limit; reads the old server only"
        ),
        "gimport admin plan --users users.csv\n  gimport admin plan --write-shards 8   # "
        + _("also write [admin] shard_map, balanced")
        + "\n  gimport admin plan --json > plan.json",
    )
    plan_p.add_argument(
        "--write-shards",
        type=int,
        metavar="N",
        help=_("also write [admin] shard_map: the users split into N shards balanced by messages, largest first"),
    )
    plan_p.add_argument("--json", action="store_true", help=_("print JSON instead of a table"))
    verify_p = add(
        "verify",
        cmd_admin_verify,
        _("run 'gimport verify' for every user: the source now vs the state file vs Gmail; changes nothing"),
        "gimport admin verify --users users.csv\n  gimport admin verify --users users.csv --exact   # "
        + _("every message by its Gmail id (the delegation grant must list the gmail.metadata scope: docs/admin.md)"),
    )
    ledger_cli.add_verify_options(verify_p)
    ledger_cli.add_admin_commands(add)  # admin report --csv
    cleanup_p = add(
        "cleanup",
        cmd_admin_cleanup,
        _("run 'gimport cleanup' for every user: check forwarding, disable IMAP in Gmail"),
        "gimport admin cleanup --users users.csv --dry-run\n  gimport admin cleanup --users users.csv --yes",
    )
    cleanup_p.add_argument("--dry-run", action="store_true", help=_("show what would change and change nothing"))
    cleanup_p.add_argument("--yes", "-y", action="store_true", help=_("do not ask for confirmation"))
    cleanup_p.add_argument(
        "--forget", action="store_true", help=_("also delete each user's state file (only where verify passes)")
    )
    cleanup_p.add_argument("--force", action="store_true", help=_("--forget even where verify would not pass"))
