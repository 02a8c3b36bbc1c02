"""Rendering of `gimport plan` (gimport.operations.plan.Preview) for people and for scripts. No logic of its own."""

from __future__ import annotations

from typing import Any

from gimport.i18n import _, english
from gimport.mail.mapping import IMPORT, LABEL
from gimport.mail.selection import inbox_first
from gimport.operations.plan import FolderPreview, Preview
from gimport.render.table import Column, format_table
from gimport.render.text import human_bytes, human_duration, wrap


def action_text(fp: FolderPreview) -> str:
    """What happens to the folder, in words: import / exclude (why) / filtered out N ..."""
    a = fp.plan.action
    if fp.error:
        return _("error: {error}").format(error=fp.error)
    if a == LABEL:
        return fp.plan.notes[0]
    if a != IMPORT:
        why = fp.plan.notes[0] if fp.plan.notes else a
        return _("skip: ") + why
    parts = [_("import") + (f" ({fp.format})" if fp.format else "")]
    if fp.filtered:
        parts.append(_("filtered out {n}").format(n=fp.filtered))
    if fp.done:
        parts.append(_("{n} already imported").format(n=fp.done))
    if fp.deleted:
        parts.append(_("{n} marked deleted on the server").format(n=fp.deleted))
    if fp.keyword_labels:
        parts.append(
            _("tags as labels: {labels}").format(
                labels=", ".join(f"{k} ({n})" for k, n in sorted(fp.keyword_labels.items()))
            )
        )
    return ", ".join(parts)


def format_plan(p: Preview, *, width: int | None = None) -> str:
    """The `gimport plan` table, labels needed, warnings and the time it should take."""
    columns = [
        Column(_("folder"), name=True),
        Column(_("messages"), right=True),
        Column(_("size"), right=True),
        Column(_("labels"), same_as=0),
        Column(_("action")),
    ]
    rows = [
        [fp.folder, str(fp.messages), human_bytes(fp.size), ", ".join(fp.plan.labels) or "-", action_text(fp)]
        for fp in inbox_first(p.folders, key=lambda f: f.folder)
    ]
    total_msgs = sum(fp.messages for fp in p.folders)
    rows.append([_("total"), str(total_msgs), human_bytes(sum(fp.size for fp in p.folders)), "", ""])
    out = [format_table(columns, rows, width=width)]
    tail = []
    if p.labels_needed:
        tail.append(
            "\n" + _("User labels needed (existing ones are reused, case-insensitively; the rest are created):")
        )
        tail += [f"  {name}" for name in p.labels_needed]
    tail += p.notes
    for w in p.warnings:
        tail.append(_("warning: {text}").format(text=w))
    tail.append(
        "\n"
        + _(
            "To import: {n} message(s), {size}; at {quota} quota units/min (25 per import) that takes about {time}."
        ).format(
            n=f"{p.to_import:,}",
            size=human_bytes(p.to_import_bytes),
            quota=f"{p.quota_units_per_minute:,}",
            time=human_duration(p.estimated_seconds),
        )
    )
    tail.append(_("Nothing was changed. Run 'gimport run' to import."))
    return out[0] + "\n" + wrap("\n".join(tail), width, indent="  ")


def plan_to_json(p: Preview) -> dict[str, Any]:
    return {
        "folders": [
            {
                "folder": fp.folder,
                "server_name": fp.plan.folder.name,
                "action": fp.plan.action,
                "labels": list(fp.plan.labels),
                "notes": [english(n) for n in fp.plan.notes],
                "messages": fp.messages,
                "bytes": fp.size,
                "selected": fp.selected,
                "filtered_out": fp.filtered,
                "already_imported": fp.done,
                "to_import": fp.to_import,
                "dates_to_fix": fp.dates_to_fix,
                "dates_unreadable": fp.dates_unreadable,
                "without_message_id": fp.no_message_id,
                "marked_deleted": fp.deleted,
                "keyword_labels": fp.keyword_labels,
                "renamed_labels": fp.renamed,
                "error": None if fp.error is None else english(fp.error),
                "format": fp.format,
                "format_notes": [english(n) for n in fp.format_notes],
            }
            for fp in p.folders
        ],
        "labels_needed": p.labels_needed,
        "unused_map_entries": p.unused_map_entries,
        "warnings": [english(w) for w in p.warnings],
        "notes": [english(n) for n in p.notes],
        "fix_dates": p.fix_dates,
        "totals": {
            "messages": sum(fp.messages for fp in p.folders),
            "bytes": sum(fp.size for fp in p.folders),
            "to_import": p.to_import,
            "to_import_bytes": p.to_import_bytes,
        },
        "quota_units_per_minute": p.quota_units_per_minute,
        "estimated_seconds": round(p.estimated_seconds, 1),
    }


__all__ = ["action_text", "format_plan", "plan_to_json"]
