"""The per-message commands: `gimport failed`, `export-failed`, `accept`, `report --csv`, `admin report --csv`.

Messages are named by their key as `gimport failed` prints it, FOLDER:UIDVALIDITY:UID (gimport.contract
.MessageKey.parse); never by contents. Registered by gimport.cli.main (register) and gimport.cli.admin_parser
(register_admin).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
import unicodedata
from collections import defaultdict
from pathlib import Path

from gimport.cli.options import CommandTable
from gimport.config.load import load_settings
from gimport.config.settings import Settings
from gimport.contract import PROBLEM_STATUSES, LedgerRow, MessageKey
from gimport.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED, EXIT_SOURCE, EXIT_USAGE, ConfigError, FolderGone
from gimport.i18n import _

MAX_NAME_BYTES = 200  # of an exported file's name; most file systems allow 255


def _account(settings: Settings) -> str:
    return settings.source.account  # as the state file names the source (a local one too)


# ------------------------------------------------------------------------------------------ file names


def safe_file_name(key: MessageKey) -> str:
    """The .eml file name for a message: FOLDER.UIDVALIDITY.UID.eml, where every character of the folder
    that is not a letter, a digit, "-" or "_" is written %XX (its UTF-8 bytes), so "/", "..", ":", spaces
    and control characters can never make a path, a hidden file or a name a file system refuses; letters
    of any script (Japanese folder names) stay readable, in NFC. Names too long for a file system keep
    their start and get a hash of the whole folder name. Two folders never share a name (the encoding can
    be undone)."""
    folder = unicodedata.normalize("NFC", key.folder)
    base = "".join(
        ch if ch.isalnum() or ch in "-_" else "".join(f"%{b:02X}" for b in ch.encode("utf-8")) for ch in folder
    )
    tail = f".{key.uidvalidity}.{key.uid}.eml"
    if len((base + tail).encode("utf-8")) > MAX_NAME_BYTES:
        digest = hashlib.sha256(key.folder.encode("utf-8")).hexdigest()[:16]
        room = MAX_NAME_BYTES - len(tail) - len(digest) - 1
        cut = base.encode("utf-8")[:room].decode("utf-8", "ignore")
        base = f"{cut}~{digest}"
    return base + tail


def _write_private(path: Path, data: bytes) -> None:
    """Write atomically, mode 0600 from the first byte (mail is nobody else's business)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------------------------------ commands


def cmd_failed(args: argparse.Namespace) -> int:
    from gimport import wiring
    from gimport.render.ledger import format_failed
    from gimport.render.text import terminal_width, wrap

    settings = load_settings(args.config)
    state = wiring.state(settings.state_path, readonly=True)
    try:
        rows = state.ledger(_account(settings), statuses=PROBLEM_STATUSES)
    finally:
        state.close()
    width = terminal_width(sys.stdout)
    print(wrap(format_failed(rows, width=width), width, indent="  "))
    return EXIT_SOME_FAILED if any(r.accepted is None for r in rows) else EXIT_OK


def cmd_export_failed(args: argparse.Namespace) -> int:
    from gimport import wiring

    settings = load_settings(args.config)
    target = Path(args.dir)
    state = wiring.state(settings.state_path, readonly=True)
    try:
        rows = state.ledger(_account(settings), statuses=PROBLEM_STATUSES)
    finally:
        state.close()
    if not rows:
        print(_("No message is recorded as failed or skipped: nothing to export."))
        return EXIT_OK
    try:
        target.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(_("cannot create {path}: {strerror}").format(path=target, strerror=exc.strerror)) from None
    by_folder: dict[str, list[LedgerRow]] = defaultdict(list)
    for r in rows:
        by_folder[r.key.folder].append(r)
    written = 0
    problems: list[str] = []
    with wiring.source(settings.source, wiring.read_password(settings)) as source:
        names = {f.path: f.name for f in source.list_folders()}
        for path, items in by_folder.items():
            if path not in names:
                problems.extend(f"{r.key}: {_('the folder is no longer on the server')}" for r in items)
                continue
            try:
                uidvalidity, _count = source.examine(names[path])  # read-only (EXAMINE)
            except FolderGone as exc:
                problems.extend(f"{r.key}: {_('cannot open the folder')}: {exc}" for r in items)
                continue
            current = [r for r in items if r.key.uidvalidity == uidvalidity]
            for r in items:
                if r.key.uidvalidity != uidvalidity:
                    problems.append(
                        f"{r.key}: "
                        + _("the folder's UIDVALIDITY is now {uv}: its UIDs may name other messages").format(
                            uv=uidvalidity
                        )
                    )
            for start in range(0, len(current), 50):
                part = current[start : start + 50]
                fetched = {m.uid: m for m in source.fetch_bodies([r.key.uid for r in part])}
                for r in part:
                    msg = fetched.get(r.key.uid)
                    if msg is None:
                        problems.append(f"{r.key}: {_('no longer on the server (deleted there)')}")
                        continue
                    _write_private(target / safe_file_name(r.key), msg.raw)  # the bytes as served, unchanged
                    written += 1
    print(
        _("Wrote {n:,} message(s) to {dir} (as the old server serves them; read-only there).").format(
            n=written, dir=target
        )
    )
    for line in problems:
        print(f"  {_('not exported')}: {line}")
    return EXIT_OK if not problems else EXIT_SOME_FAILED


def cmd_accept(args: argparse.Namespace) -> int:
    from gimport import wiring
    from gimport.render.ledger import iso

    settings = load_settings(args.config)
    account = _account(settings)
    if bool(args.keys) == bool(args.all_failed) and not args.undo:
        raise ConfigError(_("name the messages to accept (KEY ..., as 'gimport failed' prints them) or --all-failed"))
    if args.undo and (args.all_failed or not args.keys):
        raise ConfigError(_("--undo takes the KEY(s) of accepted messages (not --all-failed)"))
    try:
        keys = [MessageKey.parse(account, k) for k in args.keys]
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    lock = wiring.check_lock(settings.state_path)  # not while a run uses the state file
    try:
        if not Path(settings.state_path).exists():
            raise ConfigError(
                _("no state file at {path}: nothing has been run yet with this config").format(path=settings.state_path)
            )
        state = wiring.state(settings.state_path)
        try:
            rows = {r.key: r for r in state.ledger(account, statuses=PROBLEM_STATUSES)}
            refused: list[str] = []
            if args.undo:
                for key in keys:
                    if state.unaccept(key):
                        print(_("{key}: no longer accepted: the next 'gimport run' tries it again").format(key=key))
                    else:
                        refused.append(f"{key}: {_('was not accepted')}")
            else:
                if args.all_failed:
                    keys = [k for k, r in rows.items() if r.accepted is None]
                when = time.time()
                done = set(state.accept(keys, when))
                for key in keys:
                    if key in done:
                        print(
                            _("{key}: accepted as not in Gmail ({when}; undo: gimport accept --undo {key})").format(
                                key=key, when=iso(when)
                            )
                        )
                    elif key in rows and rows[key].accepted is not None:
                        refused.append(f"{key}: {_('accepted already')}")
                    else:
                        refused.append(f"{key}: {_('not recorded as failed or skipped (see gimport failed)')}")
                if not keys:
                    print(_("No failed or skipped message is waiting for a decision."))
        finally:
            state.close()
    finally:
        lock.release()
    for line in refused:
        print(f"gimport: {line}", file=sys.stderr)
    return EXIT_SOME_FAILED if refused else EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from gimport import wiring
    from gimport.render.ledger import ledger_csv

    settings = load_settings(args.config)
    state = wiring.state(settings.state_path, readonly=True)
    try:
        rows = state.ledger(_account(settings))
    finally:
        state.close()
    _emit(args.csv, ledger_csv(rows))
    return EXIT_OK


def _emit(where: str, text: str) -> None:
    if where == "-":
        sys.stdout.write(text)
        return
    path = Path(where)
    try:
        _write_private(path, text.encode("utf-8"))
    except OSError as exc:
        raise ConfigError(_("cannot write {path}: {strerror}").format(path=path, strerror=exc.strerror)) from None
    print(_("Wrote {path} ({n:,} row(s)).").format(path=path, n=text.count("\n") - 1), file=sys.stderr)


def cmd_admin_report(args: argparse.Namespace) -> int:
    if args.html:
        from gimport.cli.admin_html import cmd_admin_report_html

        return cmd_admin_report_html(args)
    from gimport import wiring
    from gimport.admin.paths import user_paths
    from gimport.cli import admin as admin_cli
    from gimport.render.ledger import ledger_csv

    settings = admin_cli._settings(args)
    # like admin status: the state files alone, every user or an explicit --shard's (never the job environment)
    _path, _all, _shard, users = admin_cli._my_users(args, settings, check_logins=False, from_env=False)
    rows: list[tuple[str, LedgerRow]] = []
    for entry in users:
        path = user_paths(settings.admin.state_dir, entry.gmail).state
        if not path.exists():
            continue
        state = wiring.state(path, readonly=True)
        try:
            for account in state.accounts():
                rows.extend((entry.gmail, r) for r in state.ledger(account))
        finally:
            state.close()
    _emit(args.csv, ledger_csv(rows, user_column=True))
    return EXIT_OK


# -------------------------------------------------------------------------------------------- parser


def register(commands: CommandTable) -> None:
    """Register `gimport failed`, `export-failed`, `accept` and `report`."""
    commands.add(
        "failed",
        cmd_failed,
        _("list the messages recorded as failed or skipped, with their reasons and keys (no network)"),
        "gimport failed",
        (
            (EXIT_OK, _("none is waiting for a decision (none, or all accepted)")),
            (EXIT_SOME_FAILED, _("some failed or skipped message is not accepted yet")),
            EXIT_USAGE,
        ),
    )
    export_p = commands.add(
        "export-failed",
        cmd_export_failed,
        _("save every failed or skipped message as an .eml file, exactly as the old server serves it (read-only)"),
        "gimport export-failed ~/not-in-gmail",
        (
            (EXIT_OK, _("every one was written")),
            (EXIT_SOME_FAILED, _("some could not be (the output says which and why)")),
            EXIT_USAGE,
            EXIT_SOURCE,
            EXIT_INTERRUPTED,
        ),
    )
    export_p.add_argument("dir", metavar="DIR", help=_("folder to write FOLDER.UIDVALIDITY.UID.eml files into"))
    accept_p = commands.add(
        "accept",
        cmd_accept,
        _("accept failed or skipped messages as not in Gmail: run stops retrying them, verify lists them"),
        _(
            "gimport accept 'INBOX:1700000000:42'    # a key as 'gimport failed' prints it\n"
            "  gimport accept --all-failed\n"
            "  gimport accept --undo 'INBOX:1700000000:42'"
        ),
        (
            (EXIT_OK, _("done")),
            (EXIT_SOME_FAILED, _("some KEY was refused (the output says why)")),
            EXIT_USAGE,
        ),
    )
    accept_p.add_argument(
        "keys", nargs="*", metavar="KEY", help=_("FOLDER:UIDVALIDITY:UID, as 'gimport failed' prints")
    )
    accept_p.add_argument("--all-failed", action="store_true", help=_("accept every failed or skipped message"))
    accept_p.add_argument("--undo", action="store_true", help=_("put the KEY(s) back: the next run tries them again"))
    report_p = commands.add(
        "report",
        cmd_report,
        _(
            "write the ledger: one CSV row per message (folder, UID, UIDVALIDITY, Message-ID, size, status, Gmail"
            " id, reason, time); no contents"
        ),
        "gimport report --csv ledger.csv",
        (EXIT_OK, EXIT_USAGE),
    )
    report_p.add_argument(
        "--csv", metavar="FILE", required=True, help=_("the CSV file to write ('-': standard output)")
    )


def register_admin(admin: CommandTable) -> None:
    """Register `gimport admin report` in the table of `gimport admin` (gimport.cli.admin_parser)."""
    report_p = admin.add(
        "report",
        cmd_admin_report,
        _(
            "write one ledger for every user (a CSV row per message with a user column; no contents), or the"
            " campus page: one HTML file to open in any browser, offline"
        ),
        "gimport admin report --users users.csv --csv ledger.csv\n  gimport admin report --html campus.html",
    )
    what = report_p.add_mutually_exclusive_group(required=True)
    what.add_argument("--csv", metavar="FILE", help=_("the CSV file to write ('-': standard output)"))
    what.add_argument(
        "--html",
        metavar="FILE",
        help=_(
            "write the campus page instead: totals, shards, every user and why they failed, the import rate and"
            " the daily budget, in one self-contained HTML file (from the state files; no network)"
        ),
    )
