"""The documentation `gimport help` shows (README.md, docs/*.md), fitted to the terminal by the same line
breaker as every message (gimport.render.wrap): paragraphs and list items joined and wrapped, a table too
wide for the terminal shown as a list (one entry a row, each cell under its column's name), code blocks as
written (a command is copied from them)."""

from __future__ import annotations

import re

from gimport.render.wrap import display_width, join_lines, wrap_line

# a list item's or a quotation's marker: its text continues under the text, not under the marker
_MARKER = re.compile(r" *(?:[-*+] |\d+\. |> )")
_RULE = re.compile(r"[\s|:-]+")  # a table's line under its header: | --- | :---: |


def _lead(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" "))]


def _cells(row: str) -> list[str]:
    """The cells of a table row; a "|" inside `code` is not a column's edge."""
    cells = [""]
    code = False
    for ch in row.strip().removeprefix("|").removesuffix("|"):
        if ch == "`":
            code = not code
        if ch == "|" and not code:
            cells.append("")
        else:
            cells[-1] += ch
    return [cell.strip() for cell in cells]


def table(rows: list[str], width: int) -> list[str]:
    """A Markdown table as written when it fits `width`; else one list entry per row: the first cell, then
    each other cell after its column's name, wrapped under it."""
    if all(display_width(row) <= width for row in rows):
        return rows
    lead = _lead(rows[0])
    names = _cells(rows[0])
    out: list[str] = []
    for row in rows[1:]:
        if _RULE.fullmatch(row):
            continue
        first, *rest = _cells(row)
        out += wrap_line(f"{lead}- {first}", width, lead + "  ")
        for name, cell in zip(names[1:], rest, strict=False):
            if cell:
                out += wrap_line(f"{lead}  {name}: {cell}", width, lead + "    ")
    return out


def wrap_markdown(text: str, width: int | None) -> str:
    """A Markdown document fitted to `width`: each paragraph and list item joined and wrapped (an item's
    lines continue under its text), tables fitted (table()), code blocks and blank lines as they are.
    width None: unchanged."""
    if width is None:
        return text
    out: list[str] = []
    para: list[str] = []
    rows: list[str] = []
    hang = ""
    fenced = False

    def flush() -> None:
        if para:
            out.extend(wrap_line(_lead(para[0]) + join_lines(para), width, hang))
            para.clear()
        if rows:
            out.extend(table(rows, width))
            rows.clear()

    for line in text.split("\n"):
        stripped = line.strip()
        if stripped.startswith("|") and not fenced:
            if para:
                flush()
            rows.append(line)
            continue
        if stripped.startswith("```") or fenced or not stripped:
            flush()
            fenced ^= stripped.startswith("```")
            out.append(line)
            continue
        marker = _MARKER.match(line)
        if marker or stripped.startswith("#") or not para or rows:
            flush()
            hang = _lead(line)
            if marker:
                hang = marker.group() if marker.group().endswith("> ") else " " * len(marker.group())
        para.append(line)
        if stripped.startswith("#"):
            flush()
    flush()
    return "\n".join(out)


__all__ = ["table", "wrap_markdown"]
