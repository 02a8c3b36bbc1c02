"""`gimport admin ...`: the commands of admin mode (docs/admin.md). Thin: parse, build settings, call
gimport.admin / gimport.finish, print, return an exit code. gimport.cli registers them (add_parser)."""

from __future__ import annotations

import argparse
import stat
import sys
import threading
from pathlib import Path

from gimport.cli import ledger as ledger_cli
from gimport.cli.terminal import StopOnSignal, confirm, run_exit_code
from gimport.errors import (
    EXIT_AUTH,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_USAGE,
    ConfigError,
)
from gimport.i18n import _
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


def _users(args: argparse.Namespace, settings: Settings, *, check_logins: bool = True):
    from gimport.admin.legacy import read_users

    path = _users_path(args, settings)
    if path is None:
        raise ConfigError("no users file: pass --users FILE or set [admin] users_file (format: docs/admin.md)")
    users = read_users(path, master_available=bool(settings.admin.master_user), check_logins=check_logins)
    return path, users


def _shard_users(args: argparse.Namespace, settings: Settings, users, *, from_env: bool = True):
    """This process's shard ([admin] shard_count fixes N) and the users it takes. from_env=False (status):
    only an explicit --shard counts, never the job environment."""
    from gimport.admin.legacy import Shard, resolve_shard

    count = settings.admin.shard_count
    if from_env:
        shard = resolve_shard(args.shard, count=count)
    else:
        shard = resolve_shard(args.shard, {}, count=count) if args.shard else Shard()
    return shard, [u for u in users if shard.takes(u.gmail)]


def _service_account(settings: Settings):
    from gimport.backends.google.service_account import ServiceAccount

    if settings.admin.service_account_file is None:
        raise ConfigError(
            "[admin] service_account_file is required: the JSON key of a service account with domain-wide"
            " delegation (docs/admin.md, section 1)"
        )
    return ServiceAccount(settings.admin.service_account_file)


def _warn_readable(path: Path, users) -> None:
    from gimport.admin.legacy import has_inline_passwords

    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if has_inline_passwords(users) and mode & stat.S_IRWXO:
        print(
            f"warning: {path} holds passwords and others can read it: chmod 600 {path}",
            file=sys.stderr,
        )


# ----------------------------------------------------------------------------------------------- commands


def cmd_admin_run(args: argparse.Namespace) -> int:
    from gimport.admin.legacy import AdminRun, admin_logging, sharded_report_path, write_report
    from gimport.render.admin import AdminProgress, format_admin_summary

    settings = _settings(args)
    admin = settings.admin
    sa = _service_account(settings)
    path, users = _users(args, settings)
    _warn_readable(path, users)
    shard, mine = _shard_users(args, settings, users)
    report = sharded_report_path(admin.report_file, shard)
    log_file = sharded_report_path(settings.log_file, shard)
    try:
        admin.state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create [admin] state_dir {admin.state_dir}: {exc.strerror}") from None
    progress = AdminProgress(len(mine))
    progress.phase(
        f"{len(mine)} of {len(users)} user(s) in shard {shard} ({shard.origin}); {min(admin.parallel_users, len(mine))}"
        f" at a time; project budget {admin.project_units_per_minute / shard.count:,.0f} units/min for this shard;"
        f" state in {admin.state_dir}"
    )
    with admin_logging(log_file) as router:
        runner = AdminRun(
            settings,
            mine,
            authorize=sa.authorize,
            shard=shard,
            reporter=progress,
            log_router=router,
        )
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
    from gimport.admin.legacy import read_rows, report_csv
    from gimport.render.admin import format_status_rows

    settings = _settings(args)
    admin = settings.admin
    users = None
    if _users_path(args, settings) is not None:
        _, all_users = _users(args, settings, check_logins=False)
        # status reads files only: it follows an explicit --shard, never the job environment
        _, users = _shard_users(args, settings, all_users, from_env=False)
    elif not admin.state_dir.is_dir():
        raise ConfigError(f"no state directory {admin.state_dir}: nothing has been run yet with this config")
    rows = read_rows(admin.state_dir, users)
    if args.csv:
        sys.stdout.write(report_csv(rows))
    else:
        print(f"State: {admin.state_dir} (read only; no network)")
        print(format_status_rows(rows, show_all=args.all))
    return EXIT_OK if rows and all(r.ok for r in rows) else EXIT_SOME_FAILED


def _per_user_tools(settings: Settings, shard):
    """What verify/cleanup need for each user: the service account, the source logins, a project pacer."""
    from gimport.admin.legacy import SourceLogin
    from gimport.pacer import Pacer

    sa = _service_account(settings)
    logins = SourceLogin(settings.admin)
    project = Pacer(settings.admin.project_units_per_minute / shard.count)
    return sa, logins, project


def _user_account(settings: Settings, entry, sa, logins, project, *, exact: bool = False):
    """(the user's settings, the source password, the wiring's Account) for one user. With `exact` the
    token also carries the metadata scope (admin verify --exact: the delegation grant must list it)."""
    from gimport import wiring
    from gimport.admin.legacy import user_settings
    from gimport.backends.google.oauth import scopes_for

    login, password = logins.for_user(entry)
    us = user_settings(settings, entry, login)
    creds = sa.authorize(entry.gmail, scopes=scopes_for(exact))
    return us, password, wiring.account(us, project, credentials=creds)


def _verify_user(
    settings: Settings, entry, sa, logins, project, list_limit: int | None, *, exact: bool = False, strict: bool = False
):
    """gimport.verify.verify for one user (read-only everywhere). Returns a VerifyReport."""
    from gimport import wiring
    from gimport.admin.legacy import user_paths
    from gimport.verify import verify

    us, password, acct = _user_account(settings, entry, sa, logins, project, exact=exact)
    state = wiring.state(user_paths(settings.admin.state_dir, entry.gmail).state, readonly=True)
    source = wiring.source(us.source, password)
    try:
        logins.connect(source, entry)
        return verify(
            us, source=source, gmail=acct.gmail, state=state, list_limit=list_limit, exact=exact, strict_labels=strict
        )
    finally:
        source.close()
        state.close()


def cmd_admin_verify(args: argparse.Namespace) -> int:
    from gimport.admin.legacy import UserCheck, for_each_user, user_paths
    from gimport.render.admin import format_checks

    settings = _settings(args)
    _users_file, users = _users(args, settings)  # not "_": that is gettext here
    shard, mine = _shard_users(args, settings, users)
    sa, logins, project = _per_user_tools(settings, shard)
    stop = threading.Event()

    def one(entry) -> UserCheck:
        if not user_paths(settings.admin.state_dir, entry.gmail).state.exists():
            return UserCheck(entry.gmail, entry.source_user, "not started", "no state file: run 'gimport admin run'")
        exact, strict = getattr(args, "exact", False), getattr(args, "strict_labels", False)
        rep = _verify_user(settings, entry, sa, logins, project, 3, exact=exact, strict=strict)
        selected = sum(f.selected for f in rep.folders)
        if rep.passed:
            detail = f"{selected:,} selected, all recorded"
            if rep.exact is not None:
                detail += _(", each proven in Gmail ({units:,} units)").format(units=rep.exact.units)
            if rep.accepted:
                detail += _("; {n:,} accepted as not in Gmail").format(n=len(rep.accepted))
            return UserCheck(entry.gmail, entry.source_user, "verified", detail, rep)
        detail = f"{rep.missing_total:,} of {selected:,} selected message(s) missing"
        if rep.exact is not None and not rep.exact.passed:
            failing = [g for g in rep.exact.gaps if g.fails]
            detail += _("; {n:,} not as recorded in Gmail, e.g. {key} {problem}").format(
                n=len(failing), key=failing[0].key, problem=failing[0].problem
            )
        if rep.missing:
            m = rep.missing[0]
            detail += f"; e.g. {m.folder} UID {m.uid}: {m.status}: {m.reason}"
        errors = [f"{f.folder}: {f.error}" for f in rep.folders if f.error]
        if errors:
            detail += f"; {errors[0]}"
        return UserCheck(entry.gmail, entry.source_user, "NOT VERIFIED", detail, rep)

    print(f"gimport: verifying {len(mine)} user(s) of shard {shard} ({shard.origin}); read-only", file=sys.stderr)
    try:
        checks = for_each_user(mine, settings.admin.parallel_users, one, stop=stop)
    except KeyboardInterrupt:
        stop.set()
        raise
    print(format_checks(checks, "verify"))
    return EXIT_OK if checks and all(c.outcome == "verified" for c in checks) else EXIT_SOME_FAILED


def _cleanup_line(plan) -> tuple[str, str]:
    parts = []
    g = plan.gmail
    if plan.blocked:
        return "blocked", plan.blocked
    if plan.disable_imap:
        parts.append("IMAP on: disable it")
    else:
        parts.append("IMAP already off")
    if plan.forget is not None:
        parts.append(f"delete the state file {plan.forget.name}")
    for w in g.warnings:
        parts.append(f"WARNING {w.where} to {w.address} (change it in Gmail's settings)")
    return ("would change" if plan.has_changes else "nothing to do"), "; ".join(parts)


def _warnings(check) -> list:
    """The forwarding warnings of a user's cleanup plan (none when the plan could not be made)."""
    plan = check.report
    return list(plan.gmail.warnings) if plan is not None and hasattr(plan, "gmail") else []


def cmd_admin_cleanup(args: argparse.Namespace) -> int:
    from gimport import wiring
    from gimport.admin.legacy import UserCheck, for_each_user
    from gimport.cleanup import apply_cleanup, plan_cleanup
    from gimport.render.admin import format_checks

    settings = _settings(args)
    _, users = _users(args, settings)
    shard, mine = _shard_users(args, settings, users)
    sa, logins, project = _per_user_tools(settings, shard)
    stop = threading.Event()
    gmails: dict[str, object] = {}

    def plan_one(entry) -> UserCheck:
        us, _, acct = _user_account(settings, entry, sa, logins, project)
        gmails[entry.gmail] = acct.gmail
        plan = plan_cleanup(
            us,
            acct.gmail,
            forget=args.forget,
            force=args.force,
            verify_now=lambda: _verify_user(settings, entry, sa, logins, project, 0),
            run_in_progress=wiring.run_in_progress,
        )
        outcome, detail = _cleanup_line(plan)
        return UserCheck(entry.gmail, entry.source_user, outcome, detail, plan)

    print(f"gimport: reading Gmail settings of {len(mine)} user(s) of shard {shard}", file=sys.stderr)
    try:
        plans = for_each_user(mine, settings.admin.parallel_users, plan_one, stop=stop)
    except KeyboardInterrupt:
        stop.set()
        raise
    print(format_checks(plans, "cleanup" + (" (dry run)" if args.dry_run else "")))
    todo = [c for c in plans if c.outcome == "would change"]
    if args.dry_run or not todo:
        ok = all(c.outcome == "nothing to do" and not _warnings(c) for c in plans)
        return EXIT_OK if plans and ok else EXIT_SOME_FAILED
    if not confirm(f"Make these changes for {len(todo)} user(s)?", args.yes):
        print("Nothing was changed.")
        return EXIT_SOME_FAILED
    by_gmail = {c.gmail: c for c in todo}

    def apply_one(entry) -> UserCheck:
        plan = by_gmail[entry.gmail].report
        # the same chained budget as the plan step (the user's own and the project's)
        result = apply_cleanup(plan, gmails[entry.gmail], revoke_token=wiring.revoke_token)
        if result.error is not None:
            return UserCheck(entry.gmail, entry.source_user, "failed", str(result.error))
        detail = "IMAP disabled" if result.imap_disabled else "IMAP still ON after the update (check the account)"
        if result.deleted:
            detail += f"; deleted {', '.join(p.name for p in result.deleted)}"
        warnings = plan.gmail.warnings
        if warnings:
            detail += f"; {len(warnings)} forwarding warning(s) left to fix in Gmail"
        ok = result.imap_disabled and not warnings
        return UserCheck(entry.gmail, entry.source_user, "done" if ok else "needs attention", detail)

    done = for_each_user([u for u in mine if u.gmail in by_gmail], settings.admin.parallel_users, apply_one, stop=stop)
    print()
    print(format_checks(done, "cleanup"))
    untouched_ok = all(c.outcome == "nothing to do" and not _warnings(c) for c in plans if c not in todo)
    return EXIT_OK if untouched_ok and all(c.outcome == "done" for c in done) else EXIT_SOME_FAILED


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
    verify_p = add(
        "verify",
        cmd_admin_verify,
        "run 'gimport verify' for every user: the source now vs the state file vs Gmail; changes nothing",
        "gimport admin verify --users users.csv\n  gimport admin verify --users users.csv --exact   # every message by its"
        " Gmail id (the delegation grant must list the gmail.metadata scope: docs/admin.md)",
    )
    ledger_cli.add_verify_options(verify_p)
    ledger_cli.add_admin_commands(add)  # admin report --csv
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
