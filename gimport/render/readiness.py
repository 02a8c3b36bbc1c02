"""What Gmail will get otherwise than the folders have it, folder by folder (`gimport check`): the dates a run
fixes, the label names Gmail refuses, the messages marked deleted, the tags that become labels and the
messages without a Message-ID. No logic of its own: the counts are gimport.operations.plan's."""

from __future__ import annotations

from gimport.i18n import _
from gimport.mail.mapping import IMPORT
from gimport.mail.selection import inbox_first
from gimport.operations.plan import FolderPreview, Preview


def folder_readiness(fp: FolderPreview, *, fix_dates: bool, include_deleted: bool) -> list[str]:
    """The points of one folder, each a short phrase; empty when Gmail gets the folder as it is."""
    if fp.plan.action != IMPORT or fp.error:
        return []
    out: list[str] = []
    if fp.dates_to_fix:
        out.append(
            _("{n} Date(s) fixed").format(n=fp.dates_to_fix)
            if fix_dates
            else _("{n} Date(s) Gmail may not read").format(n=fp.dates_to_fix)
        )
    if fp.deleted:
        out.append(
            _("{n} marked deleted (to Trash)").format(n=fp.deleted)
            if include_deleted
            else _("{n} marked deleted (left out)").format(n=fp.deleted)
        )
    out += [_("label {name!r} -> {new!r}").format(name=k, new=v) for k, v in sorted(fp.renamed.items())]
    if fp.keyword_labels:
        out.append(
            _("tags as labels: {labels}").format(
                labels=", ".join(f"{k} ({n})" for k, n in sorted(fp.keyword_labels.items()))
            )
        )
    if fp.no_message_id:
        out.append(_("{n} without a Message-ID").format(n=fp.no_message_id))
    return out


def readiness_lines(p: Preview, *, include_deleted: bool) -> list[str]:
    """One line per folder that Gmail gets otherwise than it is ("Archive: 2 Date(s) fixed, ..."), INBOX
    first; none when every folder lands as it is."""
    out = []
    for fp in inbox_first(p.folders, key=lambda f: f.folder):
        points = folder_readiness(fp, fix_dates=p.fix_dates, include_deleted=include_deleted)
        if points:
            out.append(f"{fp.folder}: " + ", ".join(points))
    return out


__all__ = ["folder_readiness", "readiness_lines"]
