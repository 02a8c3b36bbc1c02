"""`gimport plan`: what a run would do, from the source alone. Reads; never writes anywhere.

For every folder: how many messages and bytes it holds, what the mapping does with it (import with
which labels, exclude, not included, \\Noselect), what the [filters] leave out, and, when a state file
exists, how much an earlier run already imported. Gmail is not contacted: labels are listed as
"needed" (a run reuses those that exist, case-insensitively, and creates the rest).

Returns data only; gimport.render.plan renders it (table and JSON).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from gimport.config.settings import Settings
from gimport.contract import KnownContent, MailSource, State
from gimport.engine.labels import remembered_renames
from gimport.errors import ConfigError, FolderChanged, FolderGone
from gimport.i18n import _, english
from gimport.mail import rfc822
from gimport.mail.dates import LAST_RESORT, STRICT, date_fix
from gimport.mail.keywords import keyword_counts, user_labels
from gimport.mail.mapping import (
    IMPORT,
    RESERVED_NAMES,
    RESERVED_SUFFIX,
    FolderPlan,
    label_key,
    label_limit_problem,
    plan_folders,
    unused_map_entries,
    user_labels_to_create,
)
from gimport.mail.quota import COSTS, MAX_MESSAGE_BYTES
from gimport.mail.selection import select_messages


@runtime_checkable
class FolderFormats(Protocol):
    """Optional, for sources of files: the format an examined folder's file turned out to be (e.g.
    "mboxcl2") and notes on what it leaves open, or None."""

    def folder_format(self, folder: str) -> tuple[str, list[str]] | None: ...


@dataclass
class FolderPreview:
    plan: FolderPlan
    messages: int = 0
    size: int = 0
    selected: int = 0  # left by [filters]
    selected_size: int = 0
    too_large: int = 0  # over Gmail's 150 MiB: will be skipped and reported
    done: int = 0  # already imported by an earlier run (state file)
    dates_to_fix: int = 0  # to import, with a Date Gmail may not read (gimport.mail.dates)
    dates_unreadable: int = 0  # of those, no Date a person can read either: dated by the INTERNALDATE
    no_message_id: int = 0  # to import, without a Message-ID: nothing tells a copy of them in Gmail apart
    error: str | None = None
    format: str | None = None  # the file's format, for sources of files that tell it (mbox variants)
    format_notes: list[str] = field(default_factory=list)
    deleted: int = 0  # marked deleted on the server (left out unless [filters] include_deleted)
    deleted_left_out: bool = True  # [filters] include_deleted is false
    keyword_labels: dict[str, int] = field(default_factory=dict)  # label a keyword becomes -> messages
    renamed: dict[str, str] = field(default_factory=dict)  # label name -> the name it gets in Gmail

    @property
    def folder(self) -> str:
        return self.plan.path

    @property
    def filtered(self) -> int:
        """Left out by [filters] since/before/max_size_mb (the messages marked deleted are counted apart)."""
        return self.messages - self.selected - (self.deleted if self.deleted_left_out else 0)

    @property
    def to_import(self) -> int:
        return max(0, self.selected - self.done - self.too_large) if self.plan.action == IMPORT else 0


@dataclass
class Preview:
    folders: list[FolderPreview]
    labels_needed: list[str]
    unused_map_entries: list[str]
    quota_units_per_minute: int
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what a run changes, folder by folder (the dates)
    fix_dates: bool = True  # [import] fix_dates: else dates_to_fix are dates Gmail may not read, sent as they are

    @property
    def to_import(self) -> int:
        return sum(f.to_import for f in self.folders)

    @property
    def to_import_bytes(self) -> int:
        # the bytes of the selected, not yet imported share (done messages are not told apart by size)
        total = 0
        for f in self.folders:
            if f.plan.action == IMPORT and f.selected:
                total += f.selected_size * f.to_import // f.selected
        return total

    @property
    def estimated_seconds(self) -> float:
        units = self.to_import * COSTS["users.messages.import"] + len(self.labels_needed) * COSTS["users.labels.create"]
        return units / self.quota_units_per_minute * 60.0


@runtime_checkable
class DateHeaders(Protocol):
    """What a source gives for the date and Message-ID counts (both backends do): the header lines of
    messages in the open folder (at least Date and Message-ID), by UID."""

    def fetch_date_headers(self, uids: Sequence[int]) -> dict[int, bytes]: ...


def _count_headers(source: MailSource, fp: FolderPreview, pending: Sequence[int]) -> None:
    """How many of the messages to import get a new Date (fix_dates), or may be dated "today" (without),
    and how many have no Message-ID."""
    if not isinstance(source, DateHeaders) or not pending:
        return
    headers = list(source.fetch_date_headers(pending).values())
    kinds = [date_fix(header) for header in headers]
    fp.dates_to_fix = sum(kind != STRICT for kind in kinds)
    fp.dates_unreadable = sum(kind == LAST_RESORT for kind in kinds)
    fp.no_message_id = sum(rfc822.message_id(header) is None for header in headers)


def _date_notes(out: list[FolderPreview], fix_dates: bool) -> list[str]:
    if fix_dates:
        return [
            _(
                "{folder}: {n} message(s) get a Date Gmail can read, the original kept as X-Original-Date"
                " ({m} dated by the server's INTERNALDATE: no date could be read from them)"
            ).format(folder=fp.folder, n=fp.dates_to_fix, m=fp.dates_unreadable)
            for fp in out
            if fp.dates_to_fix
        ]
    return [
        _(
            "{folder}: {n} message(s) have a Date Gmail may not read: Gmail may show them as received on the day"
            " of the import ([import] fix_dates = false)"
        ).format(folder=fp.folder, n=fp.dates_to_fix)
        for fp in out
        if fp.dates_to_fix
    ]


def preview(source: MailSource, settings: Settings, state: State | None = None) -> Preview:
    """Scan the source (read-only) and apply the mapping and filters. `state`, if given, is only read."""
    folders = source.list_folders()
    plans = plan_folders(folders, settings.labels)
    too_many = label_limit_problem(plans)
    renames = remembered_renames(state)
    if too_many:  # before scanning thousands of folders
        raise ConfigError(too_many)
    account = source.account
    out: list[FolderPreview] = []
    for plan in plans:
        fp = FolderPreview(plan)
        out.append(fp)
        if not plan.folder.selectable:
            continue
        known = None
        if state is not None and plan.action == IMPORT:

            def known(v: int, path: str = plan.path) -> KnownContent:
                return state.known_content(account, path, v)

        try:
            # the same selection as `gimport run` and `gimport verify`, done messages included with sizes;
            # with a state file, what earlier UIDVALIDITYs imported counts as done by content (as in a run)
            sel = select_messages(source, plan.folder.name, settings.filters, known=known, resolve_by_hash=True)
            sizes = {m.uid: m.size for m in source.fetch_meta(source.search())}
        except (FolderGone, FolderChanged) as exc:
            fp.error = _(
                "cannot open the folder ({detail}); if the server never can, leave it out with [labels] exclude"
            ).format(detail=exc)
            continue
        fp.messages, fp.size = sel.found, sum(sizes.values())
        described = source.folder_format(plan.folder.name) if isinstance(source, FolderFormats) else None
        if described is not None:
            fp.format, fp.format_notes = described
        fp.deleted, fp.keyword_labels = sel.deleted, keyword_counts(sel.keywords, settings.labels)
        fp.deleted_left_out = sel.deleted_left_out
        fp.renamed = folder_renames(plan, fp.keyword_labels, renames)
        fp.selected = sel.selected
        fp.selected_size = sum(size for _, size in sel.todo) + sum(m.size for m in sel.by_content.values())
        fp.too_large = sum(1 for uid, size in sel.todo if size > MAX_MESSAGE_BYTES and uid not in sel.unknown_size)
        if plan.action == IMPORT:
            done = state.done_uids(account, plan.path, sel.uidvalidity) if state is not None else set()
            fp.done = sum(1 for uid, _ in sel.todo if uid in done) + len(sel.by_content)
            pending = [uid for uid, size in sel.todo if uid not in done and size <= MAX_MESSAGE_BYTES]
            _count_headers(source, fp, pending)
    warnings: list[str] = [
        _(
            "[labels.map] {key!r} names no folder on the server (folder names are case-sensitive; use '/' between"
            " levels)"
        ).format(key=k)
        for k in unused_map_entries(folders, settings.labels)
    ]
    warnings += readiness_warnings(out, settings.filters.include_deleted)
    for fp in out:
        warnings += [f"{fp.folder}: {n}" for n in fp.plan.notes if "exclude wins" in english(n)]
        warnings += [f"{fp.folder}: {n}" for n in fp.format_notes]
        if fp.too_large:
            warnings.append(
                _("{folder}: {n} message(s) over Gmail's 150 MiB limit will be skipped").format(
                    folder=fp.folder, n=fp.too_large
                )
            )
    return Preview(
        folders=out,
        labels_needed=user_labels([*user_labels_to_create(plans), *(k for fp in out for k in fp.keyword_labels)]),
        unused_map_entries=unused_map_entries(folders, settings.labels),
        quota_units_per_minute=settings.gmail.quota_units_per_minute,
        warnings=warnings + ([] if settings.importing.fix_dates else _date_notes(out, False)),
        notes=_date_notes(out, True) if settings.importing.fix_dates else [],
        fix_dates=settings.importing.fix_dates,
    )


def folder_renames(plan: FolderPlan, keyword_labels: dict[str, int], renames: dict[str, str]) -> dict[str, str]:
    """The label names of one folder that land in Gmail under another name: the reserved names the mapping
    renames (gimport.mail.mapping: "Archive" -> "Archive (imported)") and those Gmail refused at an earlier
    run (the state remembers them: gimport.engine.labels)."""
    out: dict[str, str] = {}
    refused = {label_key(k): v for k, v in renames.items()}
    for label in [*plan.labels, *keyword_labels]:
        top = label.split("/")[0]
        if top.endswith(RESERVED_SUFFIX) and label_key(top[: -len(RESERVED_SUFFIX)]) in RESERVED_NAMES:
            out[top[: -len(RESERVED_SUFFIX)]] = top
        parts = label.split("/")
        for depth in range(1, len(parts) + 1):
            name = "/".join(parts[:depth])
            if label_key(name) in refused:
                out[name] = refused[label_key(name)]
    return out


def readiness_warnings(folders: list[FolderPreview], include_deleted: bool) -> list[str]:
    """What Gmail will get otherwise than the folders have it: messages marked deleted, renamed labels."""
    out: list[str] = []
    deleted = {fp.folder: fp.deleted for fp in folders if fp.deleted and fp.plan.action == IMPORT}
    if deleted:
        names = ", ".join(f"{p} ({n})" for p, n in sorted(deleted.items()))
        if include_deleted:
            out.append(
                _("{n} message(s) marked deleted on the server will be imported to Trash ({names})").format(
                    n=sum(deleted.values()), names=names
                )
            )
        else:
            out.append(
                _(
                    "{n} message(s) marked deleted on the server will be left out ({names}); [filters]"
                    " include_deleted = true imports them to Trash"
                ).format(n=sum(deleted.values()), names=names)
            )
    no_id = {fp.folder: fp.no_message_id for fp in folders if fp.no_message_id and fp.plan.action == IMPORT}
    if no_id:
        out.append(
            _(
                "{n} message(s) to import have no Message-ID ({names}): one that is being sent when a run is"
                " stopped is sent again by the next run, and Gmail has nothing to recognise the second copy by"
                " (the summary counts it as re-sent)"
            ).format(n=sum(no_id.values()), names=", ".join(f"{p} ({n})" for p, n in sorted(no_id.items())))
        )
    renamed: dict[str, str] = {}
    for fp in folders:
        if fp.plan.action == IMPORT:
            renamed.update(fp.renamed)
    if renamed:
        out.append(
            _("{n} label name(s) Gmail does not accept get a visible rename: {names}").format(
                n=len(renamed), names=", ".join(f"{k!r} -> {v!r}" for k, v in sorted(renamed.items()))
            )
        )
    return out
