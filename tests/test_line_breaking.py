"""Help that breaks where its language breaks. Every command's `--help` (the admin commands' too, found by
walking the real parser) and every `gimport help` topic runs as its own process on a real pseudo-terminal of
80 columns under LANG=ja_JP.UTF-8 (and under LANG=C, where the same rules hold for English): no line may
start with a character JIS X 4051 keeps off a line's start (、。）」ー small kana ...), none may end with one
it keeps off a line's end (（「 ...), no Latin word may be cut in two, and no line may be wider than 80
columns (the docs' code blocks are shown as written; a table too wide becomes a list).

A cut word is found against the same screen rendered 1,000 columns wide (nothing wrapped): a piece of a word
at a line's end or start that is not a whole word of the wide rendering was cut ("Gm" of "Gmail").
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gimport.cli.help import TOPICS
from gimport.cli.main import build_parser
from gimport.render.text import display_width
from tests.rig.corpus import sample_mailbox
from tests.test_narrow_terminal import run_pty, screen_lines

JA = "ja_JP.UTF-8"
COLS = 80
# JIS X 4051's characters that may not start a line (closing brackets, Japanese punctuation, middle dots,
# iteration marks, the long-vowel mark, small kana) and that may not end one (opening brackets)
NO_START = set("、。，．）〕］｝〉》」』】〙〗〟’”｠»・：；！？‼⁇⁈⁉ー々〻ゝゞヽヾ゠〜～")
NO_START |= set("ぁぃぅぇぉっゃゅょゎゕゖァィゥェォッャュョヮヵヶㇰㇱㇲㇳㇴㇵㇶㇷㇸㇹㇺㇻㇼㇽㇾㇿ")
NO_END = set("（〔［｛〈《「『【〘〖〝‘“｟«")
WORD = re.compile(r"[A-Za-z0-9]+")


def every_command() -> list[tuple[str, ...]]:
    """The argv of every command and command group, from the parser gimport builds."""
    found: list[tuple[str, ...]] = [()]

    def walk(parser: argparse.ArgumentParser, prefix: tuple[str, ...]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found.append((*prefix, name))
                    walk(sub, (*prefix, name))

    walk(build_parser(), ())
    return found


def wide(*args: str, lang: str = JA) -> str:
    """The same screen with nothing wrapped: COLUMNS=1000, a pipe."""
    env = {**os.environ, "COLUMNS": "1000", "LANG": lang, "LC_ALL": lang, "PAGER": "cat"}
    env.pop("LANGUAGE", None)
    done = subprocess.run(
        [sys.executable, "-m", "gimport", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def prose_lines(text: str) -> list[str]:
    """The lines of a screen that gimport wraps: a document's code blocks (shown as written) are left out."""
    out: list[str] = []
    fenced = False
    for line in screen_lines(text.replace("\r\n", "\n")):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            continue
        out.append(line)
    return out


TABLE_ROW = re.compile(r"\S {2,}\S|^-+  ")  # columns two spaces apart, or the dashes under a header


def faults(narrow: str, whole: str, *, tables: bool = False) -> dict[str, list[str]]:
    """What is wrong with the 80-column screen `narrow`, `whole` being the same screen unwrapped. `tables`:
    the screen has tables, whose names are shortened by design (not cut words) and which are no prose."""
    words = set(WORD.findall(whole))
    lines = [line.rstrip() for line in prose_lines(narrow)]
    found: dict[str, list[str]] = {"start": [], "end": [], "cut": [], "wide": []}
    for before, line in zip(["", *lines[:-1]], lines, strict=True):
        if line.strip() and line.lstrip()[0] in NO_START:
            found["start"].append(line)
        if line and line[-1] in NO_END:
            found["end"].append(line)
        if display_width(line) > COLS:
            found["wide"].append(line)
        if tables and (TABLE_ROW.search(before) or TABLE_ROW.search(line)):
            continue
        ends_word = before[-1:].isascii() and before[-1:].isalnum()
        head = WORD.match(line.lstrip())
        if ends_word and head is not None:
            last = WORD.findall(before)[-1]
            if last not in words or head.group() not in words:
                found["cut"].append(f"{last}|{head.group()}")
    return found


def test_the_checks_find_what_the_issue_saw():
    whole = "gimport は Gmail へ移します（ラベル付き）。長音ーも。\n"
    narrow = "gimport は Gm\nail へ移します（\nラベル付き）\n。長音\nーも。\n"
    found = faults(narrow, whole)
    assert found["cut"] == ["Gm|ail"]
    assert found["start"] == ["。長音", "ーも。"]
    assert found["end"] == ["ail へ移します（"]
    assert not faults(whole, whole)["cut"]


def _screens(lang: str) -> list[tuple[tuple[str, ...], str, str]]:
    screens = []
    for args in [(*cmd, "--help") for cmd in every_command()] + [("help", topic) for topic in TOPICS]:
        rc, text = run_pty(None, *args, lang=lang, cols=COLS)
        assert rc == 0, (args, text)
        screens.append((args, text, wide(*args, lang=lang)))
    return screens


@pytest.mark.parametrize("lang", [JA, "C"])
def test_help_breaks_where_the_language_breaks(monkeypatch, lang):
    monkeypatch.setenv("PAGER", "cat")  # `gimport help TOPIC` pages a long text on a terminal
    totals: dict[str, list[str]] = {"start": [], "end": [], "cut": [], "wide": []}
    screens = _screens(lang)
    for args, narrow, whole in screens:
        if args[-1] == "--help":  # in that language (the English docs quote Japanese folder names)
            assert bool(re.search(r"[\u3040-\u30ff]", narrow)) == (lang == JA), (args, narrow)
        for kind, lines in faults(narrow, whole).items():
            totals[kind] += [f"{' '.join(args)}: {line}" for line in lines]
    print(f"{len(screens)} screens:", {kind: len(lines) for kind, lines in totals.items()})
    for kind, lines in totals.items():
        print(kind, *lines, sep="\n  ")
    assert totals == {"start": [], "end": [], "cut": [], "wide": []}


def test_without_a_terminal_the_docs_are_not_wrapped():
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LANGUAGE")}
    env |= {"LANG": JA, "LC_ALL": JA}
    done = subprocess.run(
        [sys.executable, "-m", "gimport", "help", "guide"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    # the documentation as written, for a script or a file
    assert done.stdout == (Path(__file__).parents[1] / "README.ja.md").read_text("utf-8")


def test_japanese_messages_of_a_real_run_break_where_japanese_breaks(ws, imap_user):
    """plan, run, status and verify against Dovecot and the emulator, on an 80-column pty in Japanese: their
    wrapped messages (the estimate, the summary's notes, the verdict) keep JIS X 4051 and fit; plan, status
    and verify (which can be shown again unwrapped) keep Latin words whole."""
    for folder, messages in sample_mailbox(n=40, seed=3).items():
        imap_user.seed(folder, messages)
    totals: dict[str, list[str]] = {"start": [], "end": [], "cut": [], "wide": []}
    for command in ("plan", "run", "status", "verify"):
        rc, narrow = run_pty(ws, command, lang=JA, cols=COLS)
        assert rc == 0, narrow
        assert "フォルダー" in narrow, narrow  # Japanese, tables and all
        print(narrow)
        whole = subprocess.run(
            [sys.executable, "-m", "gimport", "--config", str(ws.config), command],
            env={**ws.env(), "COLUMNS": "1000", "LANG": JA, "LC_ALL": JA},
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        found = faults(narrow, whole.stdout + whole.stderr, tables=True)
        if command == "run":  # a second run has nothing to import: not the same words
            found["cut"] = []
        for kind, lines in found.items():
            totals[kind] += [f"{command}: {line}" for line in lines]
    assert totals == {"start": [], "end": [], "cut": [], "wide": []}
