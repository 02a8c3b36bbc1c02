"""gimport.render.text: display widths, eliding, wrapping and sizes."""

from __future__ import annotations

from gimport.render.text import display_width, elide, human_bytes, terminal_width, wrap


def test_wide_characters_count_two_columns():
    assert display_width("INBOX") == 5
    assert display_width("送信済み") == 8
    assert display_width("ｱ") == 1  # half-width katakana is narrow
    assert display_width("é") == 1
    assert display_width("e\u0301") == 1  # a combining accent takes no column


def test_elide_keeps_both_ends_and_never_exceeds_the_width():
    name = "研究室/二〇二四年度の卒業論文と修士論文のまとめ"
    for cols in range(7, display_width(name) + 2):  # tables never go below 8 (MIN_CELL)
        short = elide(name, cols)
        assert display_width(short) <= cols
        if cols < display_width(name):
            assert "..." in short
            assert short.startswith("研")
            assert short.endswith("め")
        else:
            assert short == name
    assert elide("Archive/2020/Projects", 12) == "Archi...ects"


def test_wrap_fits_words_and_cuts_what_has_no_spaces():
    text = "To import: 12,345 message(s), 1.2 GB; at 6,000 quota units/min that takes about 14h17m"
    lines = wrap(text, 40, indent="  ").split("\n")
    assert all(display_width(line) <= 40 for line in lines)
    assert " ".join(line.strip() for line in lines) == text
    assert lines[1].startswith("  ")
    japanese = "移行が完了しました。" * 10
    assert all(display_width(line) <= 30 for line in wrap(japanese, 30).split("\n"))
    assert wrap(text, None) == text


def test_terminal_width_honours_columns_and_keeps_pipes_full(monkeypatch, tmp_path):
    monkeypatch.delenv("COLUMNS", raising=False)
    with open(tmp_path / "out", "w") as f:
        assert terminal_width(f) is None
        monkeypatch.setenv("COLUMNS", "80")
        assert terminal_width(f) == 80


def test_elide_at_end_keeps_the_start():
    assert elide("skip: holds no messages (\\Noselect)", 20, at_end=True) == "skip: holds no me..."


def test_sizes_are_named_in_powers_of_1024():
    assert human_bytes(147_195) == "143.7 KiB"
    assert human_bytes(512) == "512 B"
    assert human_bytes(5 * 1024**2) == "5.0 MiB"
    assert human_bytes(3 * 1024**3) == "3.0 GiB"
    assert human_bytes(2 * 1024**4) == "2048.0 GiB"
