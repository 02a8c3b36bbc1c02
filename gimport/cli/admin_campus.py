"""`gimport admin plan` and `gimport admin reshard`: how the campus is split and how long it takes. Thin, as
gimport.cli.admin: parse, build settings, call gimport.admin, render, return an exit code."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from gimport.cli.admin import _my_users, _settings, _show, _users_path, _width
from gimport.errors import EXIT_BUG, EXIT_OK, EXIT_SOME_FAILED, ConfigError
from gimport.i18n import _

if TYPE_CHECKING:
    from gimport.config.settings import AdminSettings


def cmd_admin_plan(args: argparse.Namespace) -> int:
    import datetime as dt
    import json

    from gimport.admin.plan import estimate, scan, shard_count_for, to_json
    from gimport.admin.reshard import map_path
    from gimport.admin.shards import write_shard_map
    from gimport.render.admin import format_campus_plan

    settings = _settings(args)
    admin = settings.admin
    map_file: Path | None = None  # the [admin] shard_map that --write-shards writes
    if args.write_shards is not None:
        if args.shard:
            raise ConfigError(_("--write-shards plans every user: leave out --shard"))
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
        map_file = map_path(admin)
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
    if map_file is None and _first_plan(admin, count, args):
        # balanced shards by default: the first plan of a sharded campus writes the map every index then reads
        map_file = map_path(admin)
    concurrent, source = _concurrent_shards(args, count)
    plan = estimate(settings, users, count, balanced=map_file is not None, concurrent=concurrent)
    if map_file is not None:
        write_shard_map(map_file, {u.gmail: (u.to_import, u.bytes) for u in users}, count)
    finish = dt.datetime.now().astimezone() + dt.timedelta(seconds=plan.seconds)
    if args.json:
        doc = to_json(plan, map_file)
        doc["finish"] = finish.isoformat(timespec="seconds")
        print(json.dumps(doc, ensure_ascii=False, indent=2))
    else:
        when = finish.strftime("%Y-%m-%d %H:%M %Z")
        _show(format_campus_plan(plan, shard_map=map_file, finish=when, concurrent_from=source, width=_width()))
    if any(u.bug for u in users):
        return EXIT_BUG
    return EXIT_SOME_FAILED if any(u.error for u in users) else EXIT_OK


def _concurrent_shards(args: argparse.Namespace, count: int) -> tuple[int | None, str]:
    """How many shards run at once, and where that comes from: --concurrent-shards K, the %K of --sbatch's
    array line, else all of them."""
    from gimport.admin.plan import array_throttle

    if args.concurrent_shards is not None:
        if args.concurrent_shards < 1:
            raise ConfigError(_("--concurrent-shards must be at least 1"))
        return args.concurrent_shards, _("--concurrent-shards")
    if args.sbatch:
        throttle = array_throttle(Path(args.sbatch))
        if throttle is not None:
            return throttle, _("%{k} in {path}").format(k=throttle, path=args.sbatch)
        return None, _("no %K throttle in {path}").format(path=args.sbatch)
    if count > 1:
        return None, _("all at once; give --sbatch FILE or --concurrent-shards K if the array is throttled")
    return None, ""


def _first_plan(admin: AdminSettings, count: int, args: argparse.Namespace) -> bool:
    """Whether this plan writes the shard map by itself: the campus is sharded, no map is there yet, no shard
    has run (their users stay where the hash put them) and the plan covers every user."""
    from gimport.admin.coverage import read_records
    from gimport.admin.reshard import existing_map

    return count > 1 and not args.shard and existing_map(admin) is None and not read_records(admin.state_dir)


def cmd_admin_reshard(args: argparse.Namespace) -> int:
    from gimport.admin.reshard import reshard
    from gimport.admin.users import load_users

    settings = _settings(args)
    admin = settings.admin
    path = _users_path(args, settings)
    users = load_users(path, settings, check_logins=False)
    done = reshard(admin, users, args.count, Path(args.config), force=args.force)
    sizes = ", ".join(str(len(s)) for s in done.shards)
    print(
        _("Shard map for {n} shard(s) written to {path} (users per shard: {sizes}).").format(
            n=done.count, path=done.map_file, sizes=sizes
        )
    )
    if done.moved:
        print(
            _("{k} record(s) of the old split ({counts}) moved to {folder}.").format(
                k=len(done.moved), counts=", ".join(map(str, done.old_counts)) or "-", folder=done.moved_to
            )
        )
    day, spent = done.daily
    if day is not None:
        print(
            _("Today's spend ({day}, US Pacific): {units} units, carried over to the new shards.").format(
                day=day, units=f"{spent:,.0f}"
            )
        )
    if done.config_changed:
        print(_("[admin] shard_count in {config} is now {n}.").format(config=args.config, n=done.count))
    elif admin.shard_count and admin.shard_count != done.count:
        print(
            _("Set shard_count = {n} under [admin] in {config} (it could not be changed automatically).").format(
                n=done.count, config=args.config
            )
        )
    last = done.count - 1
    print(
        _(
            "Every user's state is kept. Next: Slurm: sbatch --array=0-{last} deploy/slurm/gimport-array.sbatch"
            " (keep the %K throttle if you use one); Kubernetes: set completions and GIMPORT_SHARD_COUNT to {n}"
            " in the Job, delete the old Job, apply it again. Then 'gimport admin status' until it exits 0."
        ).format(last=last, n=done.count)
    )
    return EXIT_OK
