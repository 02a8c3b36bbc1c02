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
    from gimport.admin.shards import shard_for, users_of
    from gimport.admin.users import load_users

    path = _users_path(args, settings)
    users = load_users(path, settings, check_logins=check_logins)
    assert path is not None  # load_users raised ConfigError otherwise
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
    from gimport.admin.run import AdminRun, prepare_state_dir
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
        runner: Any = AdminRun(
            settings, mine, authorize=sa.authorize, shard=shard, reporter=progress, log_router=router
        )
        if args.follow:
            runner = admin_follow(
                args.poll,
                progress,
                lambda spread, reporter: AdminRun(
                    settings,
                    mine,
                    authorize=sa.authorize,
                    shard=shard,
                    reporter=reporter,
                    log_router=router,
                    spread=spread,
                ),
            )
        runners.append(runner)
        with StopOnSignal(runner.request_stop, progress.warning):
            try:
                summary = runner.run()
            finally:
                progress.close()
    coverage.record_finish(admin.state_dir, record, run_outcome(summary))
    write_report(report, summary.rows)
    return _after_run(summary, admin, users, report=report, log_file=log_file, show_all=args.all)


def _announce(
    progress: AdminProgress, admin: AdminSettings, shard: Shard, users: list[UserEntry], mine: list[UserEntry]
) -> None:
    """The run's opening line (whose users, how many at a time, the budget) and a warning for the users that
    [admin] shard_map does not name."""
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
    from gimport.render.admin import format_admin_summary, format_coverage

    print(format_admin_summary(summary, report=str(report), show_all=show_all))
    cov = coverage.check(admin.state_dir, [u.gmail for u in users])
    print(format_coverage(cov, admin.state_dir, after_run=True))
    print(
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
    map_file: Path | None = None  # the [admin] shard_map that --write-shards writes
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
        map_file = admin.shard_map
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
    if map_file is not None:
        write_shard_map(map_file, {u.gmail: u.to_import for u in users}, args.write_shards)
    if args.json:
        print(json.dumps(to_json(plan, map_file), ensure_ascii=False, indent=2))
    else:
        print(format_campus_plan(plan, shard_map=map_file))
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


def admin_follow(poll: float, progress: Any, make_run: Any) -> Any:
    """`admin run --follow`: rounds of admin runs spread over `poll` seconds (gimport.admin.follow)."""
    from gimport.admin.follow import AdminFollow
    from gimport.cli.follow import MIN_POLL

    if poll < MIN_POLL:
        raise ConfigError(_("--poll must be at least {n:g} seconds").format(n=MIN_POLL))
    return AdminFollow(make_run, poll, progress)
