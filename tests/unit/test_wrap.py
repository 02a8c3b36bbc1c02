"""gimport.render.wrap: line breaking by UAX #14 and BudouX's phrases with JIS X 4051's prohibitions, widths
from wcwidth."""

from __future__ import annotations

import re

import pytest

from gimport.render.markdown import table, wrap_markdown
from gimport.render.wrap import (
    NO_LINE_END,
    NO_LINE_START,
    display_width,
    join_lines,
    wrap,
    wrap_line,
)

# the catalog's own kind of sentence: Japanese, Latin names, brackets, the long-vowel mark and small kana
JA = (
    "ローカルのメールファイル（mbox、Maildir、Google Takeout の .zip/.tgz、Thunderbird のプロファイル）から"
    "移行するときは、ネットワークは使いません。失敗したメッセージの一覧（フォルダー、UID、UIDVALIDITY、"
    "Message-ID、サイズ、状態、Gmail の ID、理由、時刻）を書き出します。「gimport auth」で一度だけ同意します。"
    "サーバー・フォルダー・ラベルの対応は `gimport plan` で確認できます。"
)
LATIN = re.compile(r"[A-Za-z0-9]+")


def test_widths_come_from_wcwidth():
    assert display_width("gimport") == 7
    assert display_width("移行") == 4
    assert display_width("ｶﾅ") == 2  # half-width katakana: one column each
    assert display_width("Ω…°") == 3  # East Asian ambiguous: one column, as most terminals show them
    assert display_width("é") == 1  # e + a combining accent
    assert display_width("\x1b") == 1  # never shown raw (escaped first), never counted as nothing


@pytest.mark.parametrize("width", range(12, 81, 3))
def test_no_line_starts_or_ends_with_what_jis_x_4051_keeps_off_it(width):
    lines = wrap(JA, width).split("\n")
    assert "".join(lines) == JA.replace(" ", "") or join_lines(lines).replace(" ", "") == JA.replace(" ", "")
    for line in lines:
        assert display_width(line) <= width, (width, line)
        assert line[0] not in NO_LINE_START, (width, lines)
        assert line[-1] not in NO_LINE_END, (width, lines)


# from 14 columns on, the longest word with the "、" it keeps ("UIDVALIDITY、", 13 columns) fits a line; below
# that the word is cut (the "、" still not starting a line)
@pytest.mark.parametrize("width", range(14, 81, 3))
def test_latin_words_stay_whole(width):
    lines = wrap(JA, width).split("\n")
    words = set(LATIN.findall(JA))
    for line in lines:
        for word in LATIN.findall(line):
            assert word in words, (width, word, lines)


def test_japanese_breaks_between_phrases_not_inside_them():
    text = "ユーザーファイルの全ユーザーを移行します。途中で中断して再実行しても安全です"
    lines = wrap_line(text, 30)
    assert lines == ["ユーザーファイルの全ユーザーを", "移行します。途中で中断して", "再実行しても安全です"]


def test_a_space_beside_japanese_is_a_break_only_between_phrases():
    # "1 通" and "gimport は" stay together: a counter with its number, a particle with its word
    lines = wrap_line("毎晩の再起動で止まる、速度は 1 秒に 1 通程度です。設定は gimport は読みます", 26)
    assert lines == ["毎晩の再起動で止まる、", "速度は 1 秒に", "1 通程度です。設定は", "gimport は読みます"]


def test_japanese_punctuation_breaks_beside_ascii_quotes():
    # UAX #14 keeps a quotation mark to its neighbours; JIS X 4051 breaks after "、" and before "（"
    assert wrap_line('"ssl"（ポート 993）、"starttls"、"plain"（ポート 143）のいずれか', 40) == [
        '"ssl"（ポート 993）、"starttls"、"plain"',
        "（ポート 143）のいずれか",
    ]


def test_english_breaks_at_spaces_as_before():
    text = "To import: 12,345 message(s), 1.2 GB; at 6,000 quota units/min that takes about 14h17m"
    lines = wrap(text, 40, indent="  ").split("\n")
    assert lines == ["To import: 12,345 message(s), 1.2 GB; at", "  6,000 quota units/min that takes about", "  14h17m"]
    assert wrap(text, None) == text


def test_only_a_word_longer_than_a_line_is_broken():
    path = "/srv/mail/archive/2019/projects/gimport/design-notes/final.mbox"
    lines = wrap_line(f"cannot read {path} (permission denied)", 30)
    assert lines[0] == "cannot read"
    assert all(display_width(line) <= 30 for line in lines)
    assert "".join(lines[1:-1]) + lines[-1].split(" ")[0] == path
    # where it must be broken, it is after a "/" (UAX #14), not in the middle of a name
    assert all(line.endswith("/") for line in lines[1:-2]), lines
    # no opportunity at all: cut where the line ends
    assert wrap_line("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]


def test_a_too_wide_japanese_phrase_breaks_inside_it_but_never_before_the_long_vowel_mark():
    lines = wrap_line("データベースサーバーコンピューター", 8)
    assert all(display_width(line) <= 8 for line in lines)
    assert "".join(lines) == "データベースサーバーコンピューター"
    assert all(line[0] not in NO_LINE_START for line in lines), lines


def test_continuation_lines_keep_the_indent():
    lines = wrap_line("    移行が完了しました。次に gimport verify で全件を確認してください", 30)
    assert lines[0].startswith("    移行")
    assert all(line.startswith("    ") for line in lines)
    lines = wrap_line("  3    Gmail の認可がない、期限切れ、または別のアカウントのもの", 40, indent="       ")
    assert lines[1].startswith("       ")
    assert not lines[1].startswith("        ")


def test_join_lines_puts_no_space_inside_japanese():
    assert join_lines(["移行が", "完了しました", "(3 messages)", "done"]) == "移行が完了しました (3 messages) done"
    assert (
        join_lines(["取り込むため、", "Gmail 側に", "（IMAP", "は不要）"]) == "取り込むため、Gmail 側に（IMAP は不要）"
    )


def test_markdown_paragraphs_and_items_are_wrapped_code_and_tables_kept():
    doc = "\n".join(
        [
            "# 見出し",
            "",
            "旧 IMAP サーバーにあるメールを、Gmail / Google Workspace へ移行するためのツールです。旧サーバーは",
            "読み取るだけで一切変更しません。",
            "",
            "- **いつ止めても大丈夫です。** 各メッセージは、取り込みの呼び出しの直前と直後に記録されます。",
            "  次の実行では足りない分だけを取り込みます。",
            "",
            "```sh",
            "gimport run       # 取り込みます。Ctrl-C、再起動、ネットワーク切断のあとは、もう一度実行するだけです",
            "```",
            "| キー | 既定値 | 意味 |",
        ]
    )
    out = wrap_markdown(doc, 40).split("\n")
    assert out[2] == "旧 IMAP サーバーにあるメールを、Gmail /"
    paragraph = out[2 : out.index("", 2)]
    assert "ツールです。旧サーバーは読み取るだけで" in paragraph  # the source's two lines joined, no space added
    assert "".join(paragraph).replace(" ", "") == "".join(doc.split("\n")[2:4]).replace(" ", "")
    at = next(i for i, line in enumerate(out) if line.startswith("- "))
    item = out[at : out.index("```sh") - 1]
    assert item[0].startswith("- **")
    assert all(line.startswith("  ") for line in item[1:])
    assert all(display_width(line) <= 40 for line in item)
    assert out[-4:] == doc.split("\n")[-4:]  # the code block and the table as written
    assert wrap_markdown(doc, None) == doc


def test_a_table_too_wide_becomes_a_list_and_one_that_fits_stays():
    rows = [
        "| key | default | meaning |",
        "| --- | --- | --- |",
        "| `[source] host` | required | the old IMAP server (a host name of at most 253 characters, or an IP address) |",
        "| `[labels] map` | `{}` | folder to labels: `a | b` stays one cell |",
    ]
    assert table(rows, 200) == rows
    assert table(rows, 60) == [
        "- `[source] host`",
        "  default: required",
        "  meaning: the old IMAP server (a host name of at most 253",
        "    characters, or an IP address)",
        "- `[labels] map`",
        "  default: `{}`",
        "  meaning: folder to labels: `a | b` stays one cell",
    ]
    doc = "Keys:\n\n" + "\n".join("   " + row for row in rows) + "\nAfter."
    out = wrap_markdown(doc, 60).split("\n")
    assert out[2] == "   - `[source] host`"
    assert out[-1] == "After."
    assert all(display_width(line) <= 60 for line in out)
