"""`gimport admin ...`: the commands of admin mode (docs/admin.md). Thin: parse, build settings, call
the gimport.admin package, render (gimport.render.admin), return an exit code. gimport.cli.admin_parser
registers them (their options, examples and exit codes)."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gimport.cli.terminal import StopOnSignal, confirm, run_exit_code
from gimport.config.load import load_settings
from gimport.config.settings import Settings
from gimport.errors import EXIT_BUG, EXIT_OK, EXIT_SOME_FAILED, ConfigError
from gimport.i18n import _

if TYPE_CHECKING:
    from gimport.admin.shards import Shard
    from gimport.admin.summary import AdminSummary
    from gimport.admin.users import UserEntry
    from gimport.config.settings import AdminSettings
    from gimport.render.admin_progress import AdminProgress


# ------------------------------------------------------------------------------------------------ helpers


def _width() -> int | None:
    """The terminal's width for the tables (None when the output is not a terminal: full names)."""
    from gimport.render.text import terminal_width

    return terminal_width(sys.stdout)


def _show(text: str) -> None:
    """Print `text` fitted to the terminal (tables are fitted already; the lines around them are wrapped)."""
    from gimport.render.text import wrap

    print(wrap(text, _width(), indent="    "))


def prepare_state_dir(admin: AdminSettings) -> None:
    """Create [admin] state_dir. Raises ConfigError when it cannot be created."""
    try:
        admin.state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            _("cannot create [admin] state_dir {state_dir}: {reason}").format(
                state_dir=admin.state_dir, reason=exc.strerror
            )
        ) from None


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
) -> tuple[Path, list[UserEntry], Shard, list[UserEntry]]:
    """(users file path, every user, this process's shard, the users it takes)."""
    from gimport.admin.reshard import existing_map
    from gimport.admin.shards import shard_for, users_of
    from gimport.admin.users import load_users

    path = _users_path(args, settings)
    users = load_users(path, settings, check_logins=check_logins)
    assert path is not None  # load_users raised ConfigError otherwise
    shard = shard_for(
        args.shard,
        settings.admin.shard_count,
        from_env=from_env,
        shard_map=existing_map(settings.admin) if use_map else None,
    )
    return path, users, shard, users_of(shard, users)


# ----------------------------------------------------------------------------------------------- commands


def cmd_admin_run(args: argparse.Namespace) -> int:
    from gimport.admin import coverage
    from gimport.admin.checks import service_account
    from gimport.admin.report import write_report
    from gimport.admin.run import AdminRun
    from gimport.admin.shards import sharded_report_path
    from gimport.admin.summary import run_outcome
    from gimport.admin.users import exposed_passwords
    from gimport.logs import admin_logging
    from gimport.render.admin_progress import AdminProgress

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
    _announce(progress, admin, shard, users, mine)
    record = coverage.record_start(admin.state_dir, shard, [u.gmail for u in mine], [u.gmail for u in users])
    with admin_logging(log_file, args.verbose) as router:
        everybody = [u.gmail for u in users]

        def admin_run(spread: float, reporter: Any) -> AdminRun:  # one run; admin run --follow makes one a round
            return AdminRun(
                settings,
                mine,
                authorize=sa.authorize,
                shard=shard,
                reporter=reporter,
                log_router=router,
                everybody=everybody,
                spread=spread,
            )

        processes = 1 if args.follow else _processes(args, admin, mine, progress)
        if processes > 1:
            from gimport.admin.processes import ProcessRun
            from gimport.cli.admin_worker import worker_main

            runner: Any = ProcessRun(
                settings,
                mine,
                processes=processes,
                target=worker_main,
                shard=shard,
                reporter=progress,
                everybody=everybody,
                log_file=log_file,
                verbose=args.verbose,
            )
        elif args.follow:
            runner = admin_follow(args.poll, progress, admin_run)
        else:
            runner = admin_run(0.0, progress)
        runners.append(runner)
        with StopOnSignal(runner.request_stop, progress.warning):
            try:
                summary = runner.run()
            finally:
                progress.close()
    coverage.record_finish(admin.state_dir, record, run_outcome(summary))
    write_report(report, summary.rows)
    return _after_run(summary, admin, users, report=report, log_file=log_file, show_all=args.all)


def _processes(args: argparse.Namespace, admin: AdminSettings, mine: list[UserEntry], progress: AdminProgress) -> int:
    """The worker processes of this run (--processes, else [admin] processes, else one per 25 users at a
    time and at most one per core), said on the screen when more than one."""
    from gimport.admin.processes import process_count

    if args.processes is not None and args.processes < 0:
        raise ConfigError(
            _("--processes must be 0 (one per 25 users at a time) or more, not {n}").format(n=args.processes)
        )
    configured = args.processes if args.processes is not None else admin.processes
    count = process_count(configured, admin.parallel_users, len(mine))
    if count > 1:
        progress.phase(
            _("{count} worker processes, about {users} users at a time each").format(
                count=count, users=-(-min(admin.parallel_users, len(mine)) // count)
            )
        )
    return count


def _announce(
    progress: AdminProgress, admin: AdminSettings, shard: Shard, users: list[UserEntry], mine: list[UserEntry]
) -> None:
    """The run's opening line (whose users, how many at a time, the budget) and a warning for the users that
    [admin] shard_map does not name."""
    per_minute = f"{admin.project_units_per_minute / shard.count:,.0f}"
    daily = (
        _(" and {units} units/day for the project (every shard together)").format(
            units=f"{admin.project_units_per_day:,.0f}"
        )
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


def _after_run(
    summary: AdminSummary,
    admin: AdminSettings,
    users: list[UserEntry],
    *,
    report: Path,
    log_file: Path,
    show_all: bool,
) -> int:
    """Print the run's table, the coverage of every shard and where the logs are; the exit code."""
    from gimport.admin import coverage
    from gimport.admin.engines import detect
    from gimport.render.admin import format_admin_summary, format_coverage

    engine = detect()
    _show(format_admin_summary(summary, report=str(report), show_all=show_all, engine=engine, width=_width()))
    cov = coverage.check(admin.state_dir, [u.gmail for u in users])
    _show(format_coverage(cov, admin.state_dir, after_run=True, engine=engine))
    _show(
        _("Log: {log_file} (and one log per user in {state_dir})").format(log_file=log_file, state_dir=admin.state_dir)
    )
    rc = run_exit_code(summary)
    if summary.bugs and rc in (EXIT_OK, EXIT_SOME_FAILED):
        # a bug in gimport, not something the users file or an account can fix: its own code, so a script tells it from a failed account
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
            _(
                "no state directory {state_dir}: either nothing has been run yet with this config, or the directory"
                " was lost or moved (then each user's next run stops rather than import again: Gmail holds a marker"
                " of that user's first run)"
            ).format(state_dir=admin.state_dir)
        )
    rows = read_rows(admin.state_dir, users)
    cov = coverage.check(admin.state_dir, everybody, shard if args.shard else None)
    if args.csv:
        sys.stdout.write(report_csv(rows))
        if not cov.ok:
            print(format_coverage(cov, admin.state_dir), file=sys.stderr)
    else:
        _show(_("State: {state_dir} (read only; no network)").format(state_dir=admin.state_dir))
        _show(format_status_rows(rows, show_all=args.all, width=_width()))
        _show(format_coverage(cov, admin.state_dir))
    return EXIT_OK if all_complete(rows) and cov.ok else EXIT_SOME_FAILED


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
    _show(format_checks(checks, _("verify"), width=_width()))
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
        _show(format_checks(plans, _("cleanup (dry run)") if args.dry_run else _("cleanup"), width=_width()))
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
    _show(format_checks(done, _("cleanup"), width=_width()))
    if any_bug(plans) or any_bug(done):
        return EXIT_BUG
    return EXIT_OK if cleanup.applied_ok(done) else EXIT_SOME_FAILED


def admin_follow(poll: float, progress: Any, make_run: Any) -> Any:
    """`admin run --follow`: rounds of admin runs spread over `poll` seconds (gimport.admin.follow)."""
    from gimport.admin.follow import AdminFollow
    from gimport.cli.follow import MIN_POLL

    if poll < MIN_POLL:
        raise ConfigError(_("--poll must be at least {n:g} seconds").format(n=MIN_POLL))
    return AdminFollow(make_run, poll, progress)
