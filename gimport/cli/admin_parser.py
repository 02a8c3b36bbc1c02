"""The command table of `gimport admin`: each admin command, its options, its example and the exit codes
every admin command shares. Registered by gimport.cli.main (register); the commands themselves are in
gimport.cli.admin. Builds argparse parsers only: reads no config and runs nothing."""

from __future__ import annotations

import argparse

from gimport.cli import ledger as ledger_cli
from gimport.cli.admin import cmd_admin_cleanup, cmd_admin_run, cmd_admin_status, cmd_admin_verify
from gimport.cli.admin_campus import cmd_admin_plan, cmd_admin_reshard
from gimport.cli.options import (
    Code,
    CommandTable,
    add_follow_options,
    add_stats_option,
    add_verify_options,
    exit_codes_help,
)
from gimport.errors import EXIT_AUTH, EXIT_BUG, EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE
from gimport.i18n import N_, _


def admin_exit_codes() -> list[Code]:
    """The exit codes every admin command lists in its --help, with what each means for many users (in the
    reader's language)."""
    return [
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


def register(commands: CommandTable) -> None:
    """Register `gimport admin` and its commands, in the order `gimport admin --help` lists them."""
    codes = admin_exit_codes()
    admin = commands.add_group(
        "admin",
        _("migrate many mailboxes with a Google service account (plan, run, status, verify, cleanup)"),
        _(ADMIN_DESCRIPTION),
        _(ADMIN_EPILOG) + "\n" + exit_codes_help(codes),
        title=_("admin commands"),
        dest="admin_command",
        parents=[_users_options()],
        codes=codes,
    )
    _register_run(admin)
    _register_status(admin)
    _register_plan(admin)
    _register_reshard(admin)
    _register_verify(admin)
    ledger_cli.register_admin(admin)  # admin report --csv
    _register_cleanup(admin)


def _users_options() -> argparse.ArgumentParser:
    """--users and --shard: which users an admin command is about."""
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
    return users_opts


def _register_run(admin: CommandTable) -> None:
    run_p = admin.add(
        "run",
        cmd_admin_run,
        _("migrate every user of the users file (of this shard); safe to interrupt and run again"),
        "gimport admin run --users users.csv\n  gimport admin run --users users.csv --shard 2/8   # "
        + _("one machine of eight"),
    )
    run_p.add_argument("--all", action="store_true", help=_("list every user in the final table (not only problems)"))
    run_p.add_argument(
        "--processes",
        type=int,
        metavar="N",
        help=_(
            "worker processes for this run (default: [admin] processes; 0 or unset there: one per 25 users at a"
            " time, at most one per core; --follow runs in one)"
        ),
    )
    add_stats_option(run_p)
    add_follow_options(run_p, idle=False)


def _register_status(admin: CommandTable) -> None:
    status_p = admin.add(
        "status",
        cmd_admin_status,
        _("where every user stands, from the state files alone (no network)"),
        "gimport admin status --users users.csv\n  gimport admin status --csv > report.csv   # "
        + _("every state file in [admin] state_dir"),
    )
    status_p.add_argument("--csv", action="store_true", help=_("print the report as CSV (the columns of report_file)"))
    status_p.add_argument("--all", action="store_true", help=_("list every user (not only problems)"))


def _register_plan(admin: CommandTable) -> None:
    plan_p = admin.add(
        "plan",
        cmd_admin_plan,
        _(
            "how big the campus is and how long it takes: messages, bytes and units per user, the wall time at"
            " each limit; reads the old server only"
        ),
        "gimport admin plan --users users.csv\n  gimport admin plan --write-shards 8   # "
        + _("also write [admin] shard_map, balanced")
        + "\n  gimport admin plan --sbatch deploy/slurm/gimport-array.sbatch   # "
        + _("the array's throttle (%K) in the estimate")
        + "\n  gimport admin plan --json > plan.json",
    )
    plan_p.add_argument(
        "--write-shards",
        type=int,
        metavar="N",
        help=_(
            "also write the shard map ([admin] shard_map, else state_dir/shards/map.json): the users split into N"
            " shards balanced by messages and bytes, largest first"
        ),
    )
    plan_p.add_argument(
        "--concurrent-shards",
        type=int,
        metavar="K",
        help=_("how many shards run at once (a throttled array: --array=0-7%%4 is 4); default: all"),
    )
    plan_p.add_argument(
        "--sbatch",
        metavar="FILE",
        help=_("read how many shards run at once from this Slurm script's #SBATCH --array=...%%K line"),
    )
    plan_p.add_argument("--json", action="store_true", help=_("print JSON instead of a table"))


def _register_reshard(admin: CommandTable) -> None:
    reshard_p = admin.add(
        "reshard",
        cmd_admin_reshard,
        _(
            "change the number of shards: refuses while shards run; writes the shard map for N, moves the old"
            " shard records aside, keeps every user's state and the day's spend"
        ),
        "gimport admin reshard 3   # " + _("then: sbatch --array=0-2 ..., or completions: 3 in the Job"),
    )
    reshard_p.add_argument("count", type=int, metavar="N", help=_("the new number of shards"))
    reshard_p.add_argument(
        "--force",
        action="store_true",
        help=_("go on although a shard record of another host never finished (its task was killed); never a held lock"),
    )


def _register_verify(admin: CommandTable) -> None:
    verify_p = admin.add(
        "verify",
        cmd_admin_verify,
        _("run 'gimport verify' for every user: the source now vs the state file vs Gmail; changes nothing"),
        "gimport admin verify --users users.csv\n  gimport admin verify --users users.csv --exact   # "
        + _("every message by its Gmail id (the delegation grant must list the gmail.metadata scope: docs/admin.md)"),
    )
    add_verify_options(verify_p)


def _register_cleanup(admin: CommandTable) -> None:
    cleanup_p = admin.add(
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
