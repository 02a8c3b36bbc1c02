"""gimport.render.table: the one table layout, at full detail and made narrower step by step."""

from __future__ import annotations

import pytest

from gimport.render.table import NAME_COLUMNS, Column, break_lines, format_table, header_lines
from gimport.render.text import display_width

FOLDERS = [
    "INBOX",
    "Sent",
    "Archive/2020",
    "Archive/2021",
    "Projects/gimport/Design",
    "仕事/報告書",
    "個人/旅行 2024",
    "研究室/論文/二〇二四年度",
    "Newsletters/Engineering",
    "Receipts/2024/Travel",
]
STATUS = [
    Column("folder", name=True),
    Column("labels", same_as=0),
    Column("found", right=True),
    Column("selected", right=True),
    Column("imported", right=True, over=3),
    Column("in flight", right=True, zero=True),
    Column("failed", right=True, zero=True),
    Column("skipped", right=True, zero=True),
    Column("to do", right=True, zero=True),
]


def status_rows(failed: int = 0, skipped: int = 0) -> list[list[str]]:
    labels = {"Sent": "SENT", "Archive/2020": "Archive (imported)/2020"}
    rows = [
        [f, labels.get(f, f), "93", "93", str(93 - failed), "0", str(failed), str(skipped), str(failed)]
        for f in FOLDERS
    ]
    return [*rows, ["total", "", "930", "930", str(930 - failed), "0", str(failed), str(skipped), str(failed)]]


def rows_of(table: str) -> list[str]:
    lines = table.split("\n")
    dashes = next(i for i, line in enumerate(lines) if set(line) <= {"-", " "})
    return lines[dashes + 1 :]


def test_the_names_are_up_to_24_columns():
    assert max(display_width(f) for f in FOLDERS) == NAME_COLUMNS == 24


def test_without_a_width_or_with_room_everything_is_shown_in_full():
    full = format_table(STATUS, status_rows())
    lines = full.split("\n")
    assert lines[0].split("  ")[0] == "folder"
    assert "in flight" in lines[0]
    assert "to do" in lines[0]
    assert lines[2].split()[:2] == ["INBOX", "INBOX"]  # the label repeated
    assert "/" not in "".join(lines[2].split()[2:])  # counts apart
    assert "Not shown" not in full
    assert "Blank" not in full
    assert format_table(STATUS, status_rows(), width=200) == full


@pytest.mark.parametrize("failed", [0, 3])
def test_80_columns_keep_every_name_whole(failed):
    table = format_table(STATUS, status_rows(failed=failed), width=80)
    lines = table.split("\n")
    assert all(display_width(line) <= 80 for line in lines), table
    assert "..." not in table
    rows = rows_of(table)
    for folder in FOLDERS:
        assert any(line.startswith(folder + "  ") for line in rows), (folder, table)


def test_narrow_leaves_out_zeros_blanks_repeats_and_pairs_counts_saying_so():
    table = format_table(STATUS, status_rows(failed=2), width=80)
    rows = rows_of(table)
    inbox = next(line for line in rows if line.startswith("INBOX"))
    sent = next(line for line in rows if line.startswith("Sent"))
    assert inbox.split() == ["INBOX", "93", "91/93", "2", "2"]  # label blank, imported/selected, failed, to do
    assert sent.split()[:2] == ["Sent", "SENT"]  # a label that differs is shown
    assert "Blank in 'labels': the same as 'folder'." in table
    assert "Not shown, 0 in every row: in flight, skipped." in table
    header = "\n".join(table.split("\n")[:3])
    for word in ("folder", "labels", "found", "imported/", "selected", "failed", "to"):
        assert word in header


def test_a_step_is_taken_only_when_the_table_does_not_fit_without_it():
    # at 90 columns dropping the zero columns is enough: the labels stay, the counts stay apart
    table = format_table(STATUS, status_rows(), width=90)
    assert "Not shown, 0 in every row" in table
    assert "Blank in" in table  # labels are blanked before zero columns are dropped
    assert "/93" not in table
    # a table that fits with two-line headers loses nothing
    small = [Column("folder", name=True), Column("imported now", right=True), Column("already there", right=True)]
    fitted = format_table(small, [["INBOX", "1", "2"]], width=22)
    assert fitted.split("\n")[:2] == ["        imported  already", "folder       now    there"]
    assert "Not shown" not in fitted


def test_text_takes_a_second_line_only_in_the_rows_that_need_it():
    columns = [Column("folder", name=True), Column("messages", right=True), Column("action")]
    rows = [["Projects/gimport/Design", "4", "import"], ["Archive", "0", "skip: holds no messages (\\Noselect)"]]
    table = format_table(columns, rows, width=56)
    body = rows_of(table)
    assert body[0].split() == ["Projects/gimport/Design", "4", "import"]
    assert body[1].startswith("Archive")
    assert body[1].endswith("skip: holds no")
    assert body[2].strip() == "messages (\\Noselect)"
    assert len(body) == 3
    assert all(display_width(line) <= 56 for line in table.split("\n"))


def test_names_give_way_only_when_nothing_else_can():
    long = "研究室/二〇二四年度の卒業論文と修士論文の提出版および指導教員からのコメントのまとめ"
    columns = [Column("folder", name=True), Column("found", right=True), Column("labels")]
    table = format_table(columns, [[long, "12345", "a, b"], ["Archive/2020", "1", ""]], width=60)
    first = rows_of(table)[0]
    assert "..." in first
    assert first.startswith("研究室/")
    assert "12345" in first
    assert any(line.startswith("Archive/2020  ") for line in rows_of(table))
    assert all(display_width(line) <= 60 for line in table.split("\n"))
    # an address of 30 columns stays whole at 80 beside the admin table's columns
    admin = [
        Column("gmail address", name=True),
        Column("source user", name=True, same_as=0),
        Column("outcome"),
        Column("found", right=True),
        Column("imported", right=True, over=3),
        Column("failed", right=True, zero=True),
        Column("bytes", right=True),
    ]
    address = "first.last.2024@example.ac.jp"
    table = format_table(
        admin, [[address, "first.last", "failed: could not log in", "1200", "3", "1", "1.2 MiB"]], width=80
    )
    assert address in table
    assert "first.last  " in table
    assert all(display_width(line) <= 80 for line in table.split("\n"))


def test_headers_are_never_cut_however_narrow():
    table = format_table(STATUS, status_rows(failed=1, skipped=1), width=40)
    header = " ".join(line for line in table.split("\n")[:2])
    assert "..." not in header
    for word in ("folder", "labels", "found", "selected", "imported", "failed", "skipped", "to", "do"):
        assert word in header.split() or word + "/" in header.split(), (word, table)


def test_japanese_headers_break_between_words_of_two_characters_or_more():
    assert header_lines("件数", 2) == ["件数"]  # never one character a line
    assert header_lines("取込済", 2) == ["取込済"]
    assert header_lines("今回取込", 2) == ["今回", "取込"]
    assert header_lines("記録済/対象", 5) == ["記録済/", "対象"]  # at the "/" rather than inside a word
    assert header_lines("in flight", 1) == ["in", "flight"]
    assert header_lines("found", 1) == ["found"]


def test_cells_break_at_spaces_slashes_and_never_before_closing_marks():
    assert break_lines("Archive (imported)/2020", 15) == ["Archive", "(imported)/2020"]
    assert break_lines("Projects/gimport/Design", 12) == ["Projects/", "gimport/", "Design"]
    for line in break_lines("スキップ: メッセージを持たないフォルダー（\\Noselect）。", 10)[1:]:
        assert line[0] not in "ー）。、"
    assert "".join(break_lines("abcdefghij", 4)) == "abcdefghij"  # too long for a line: cut, nothing lost
    assert all(display_width(x) <= 4 for x in break_lines("abcdefghij", 4))


def test_cells_are_made_safe():
    table = format_table([Column("folder", name=True)], [["evil\x1b]0;title\x07"]])
    assert "\x1b" not in table
    assert "\\x1b" in table


def test_admin_tables_keep_addresses_whole_at_80_columns():
    from gimport.admin.report import UserRow
    from gimport.render.admin import format_rows

    rows = [
        UserRow("first.last.2024@campus.example.ac.jp", "first.last.2024", "complete", 1200, 1200, 1200, bytes=5 << 20),
        UserRow("kt12345@campus.example.ac.jp", "kt12345", "failed", 40, 40, 12, failed=3, to_do=28, error="x"),
        UserRow("ab23456@campus.example.ac.jp", "ab-old", "not started", duration=61.0),
    ]
    wide = format_rows(rows)
    assert "first.last.2024  " in wide  # no width: every column, the login repeated
    assert "time" in wide.split("\n")[0]
    table = format_rows(rows, width=80)
    assert all(display_width(line) <= 80 for line in table.split("\n")), table
    assert "..." not in table
    body = rows_of(table)
    for r in rows:
        assert any(line.startswith(r.gmail + "  ") for line in body), (r.gmail, table)
    assert any(line.startswith("ab23456@campus.example.ac.jp") and "ab-old" in line for line in body)
    assert "Blank in 'source user': the same as 'gmail address' (its part before the @)." in table
    assert "Not shown at this width: bytes, time." in table


def test_the_failed_list_keeps_keys_whole_and_wraps_reasons_at_80_columns():
    from gimport.contract import LedgerRow, MessageKey
    from gimport.render.ledger import format_failed

    rows = [
        LedgerRow(
            MessageKey("u", folder, 1700000000, uid),
            f"<{uid}.long.message.id@mail.example.ac.jp>",
            2_000_000,
            "failed",
            None,
            (),
            "rejected by Gmail: import: HTTP 400 invalidArgument Invalid message",
            None,
            None,
        )
        for uid, folder in enumerate(["Projects/gimport/Design", "研究室/論文/二〇二四年度"], start=1)
    ]
    table = format_failed(rows, width=80).split("\n\n")[0]  # the table (the CLI wraps the lines after it)
    assert all(display_width(line) <= 80 for line in table.split("\n")), table
    for r in rows:
        assert any(line.startswith(str(r.key) + "  ") for line in table.split("\n")), table
    assert "HTTP 400" in table  # the reason on more lines, not cut
    assert "..." not in table
    assert "Not shown at this width: Message-ID." in table
    assert "Message-ID" in format_failed(rows).split("\n")[0]  # a pipe gets every column
