"""`gimport admin report --html FILE`: the campus page (gimport.render.campus), from the state directory alone,
like `gimport admin status` (no network). Registered with `admin report --csv` by gimport.cli.ledger."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gimport.errors import EXIT_OK, ConfigError
from gimport.i18n import _


def cmd_admin_report_html(args: argparse.Namespace) -> int:
    from gimport.admin.campus import read_campus
    from gimport.cli import admin as admin_cli
    from gimport.render.campus import render_campus

    settings = admin_cli._settings(args)
    admin = settings.admin
    users = None
    if admin_cli._users_path(args, settings) is not None:
        # every user of the users file (or of an explicit --shard), never the job environment's shard
        _path, _all, _shard, users = admin_cli._my_users(args, settings, check_logins=False, from_env=False)
    elif not admin.state_dir.is_dir():
        raise ConfigError(
            _("no state directory {state_dir}: nothing has been run yet with this config").format(
                state_dir=admin.state_dir
            )
        )
    report = read_campus(admin, users)
    page = render_campus(report)
    path = Path(args.html)
    # like report_file: the umask's mode (the page is meant to be shared), atomically (a reader of the shared
    # folder never sees half a page)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(_("cannot write {path}: {strerror}").format(path=path, strerror=exc.strerror)) from None
    print(_("Wrote {path} ({n:,} user(s)).").format(path=path, n=len(report.users)), file=sys.stderr)
    return EXIT_OK
