"""The catalogs: every message a person can see has a Japanese translation, no user-visible string slips past
`_()` in the converted modules, translations keep their placeholders, and the language is chosen as gettext does.

The template is extracted afresh from the source (Babel, through scripts/i18n.py) and from the running
Python's argparse.py, so a new `_()` anywhere, or a Python whose argparse has new words, fails here until
`scripts/i18n` has merged it and someone has translated it.
"""

from __future__ import annotations

import ast
import copy
import importlib.util
import pickle
import re
import string
from pathlib import Path

import pytest

from gimport import errors, i18n
from gimport.i18n import _, english, ngettext

ROOT = Path(__file__).resolve().parent.parent
JA_PO = ROOT / "gimport" / "locale" / "ja" / "LC_MESSAGES" / "gimport.po"

# Every module of the package: each user-visible string is wrapped. Listed from the tree, so a module
# split off another, or a new one, is checked from its first commit.
CONVERTED = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "gimport").rglob("*.py"))


def _load_tool():
    spec = importlib.util.spec_from_file_location("gimport_i18n_tool", ROOT / "scripts" / "i18n.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _load_tool()


@pytest.fixture(scope="module")
def template():
    return tool.extract()


@pytest.fixture(scope="module")
def ja():
    return tool.read(JA_PO)


def _key(msgid) -> str | tuple[str, ...]:
    return msgid if isinstance(msgid, str) else tuple(msgid)


def untranslated(template, catalog) -> list[str]:
    """Msgids of `template` that `catalog` cannot show translated: absent, empty (any plural form) or fuzzy."""
    have = {_key(m.id): m for m in catalog if m.id}
    out = []
    for msg in template:
        if not msg.id:
            continue
        found = have.get(_key(msg.id))
        strings = () if found is None else (found.string if isinstance(found.string, tuple | list) else (found.string,))
        if found is None or found.fuzzy or not strings or not all(strings):
            out.append(msg.id if isinstance(msg.id, str) else msg.id[0])
    return out


# ------------------------------------------------------------------------------- every message translated


def test_every_message_a_person_can_see_has_a_japanese_translation(template, ja):
    missing = untranslated(template, ja)
    assert not missing, (
        f"{len(missing)} message(s) without a Japanese translation: run scripts/i18n, translate them in"
        f" {JA_PO.relative_to(ROOT)}, run scripts/i18n again:\n  " + "\n  ".join(map(repr, missing[:30]))
    )


def test_removing_one_translation_is_caught(template, ja):
    assert not untranslated(template, ja)
    victim = next(m for m in ja if m.id == "the following arguments are required: %s")
    blanked = copy.deepcopy(ja)
    blanked[victim.id].string = ""
    assert untranslated(template, blanked) == [victim.id]
    fuzzy = copy.deepcopy(ja)
    fuzzy[victim.id].flags.add("fuzzy")
    assert untranslated(template, fuzzy) == [victim.id]
    gone = copy.deepcopy(ja)
    del gone[victim.id]
    assert untranslated(template, gone) == [victim.id]


def test_the_template_covers_gimport_and_argparse(template):
    ids = {m.id if isinstance(m.id, str) else m.id[0] for m in template if m.id}
    # argparse's own words, from the running Python's Lib/argparse.py
    assert tool.argparse_msgids() <= ids
    for word in ("usage: ", "options", "positional arguments", "show this help message and exit"):
        assert word in ids
    assert "the following arguments are required: %s" in ids
    assert "invalid choice: %(value)r (choose from %(choices)s)" in ids
    # and gimport's
    assert "run 'gimport auth' again" in ids
    assert "[{name}] {key} must be {what}, not {value!r}" in ids


def test_the_committed_template_is_up_to_date(template):
    """gimport/locale/gimport.pot is what scripts/i18n extracts now (so translators see every message)."""
    committed = tool.read(tool.POT)
    now = {_key(m.id) for m in template if m.id}
    then = {_key(m.id) for m in committed if m.id}
    assert now == then, (
        f"run scripts/i18n: new {sorted(map(str, now - then))[:10]}, gone {sorted(map(str, then - now))[:10]}"
    )


_BRACE = string.Formatter()
_PERCENT = re.compile(r"%(?:\((\w+)\))?[-#0 +]*\d*(?:\.\d+)?[sdrifgxXeEc%]")


def _fields(text: str) -> tuple[list[str], list[str]]:
    braces = sorted(f"{name}!{conv}:{spec}" for _, name, spec, conv in _BRACE.parse(text) if name is not None)
    percents = sorted(m.group(0) for m in _PERCENT.finditer(text))
    return braces, percents


def test_translations_keep_every_placeholder(ja):
    """A translation with a lost or misspelt {name} or %(name)s would raise KeyError when shown."""
    bad = []
    for msg in ja:
        if not msg.id or not msg.string:
            continue
        ids = (msg.id,) if isinstance(msg.id, str) else tuple(msg.id)
        strings = (msg.string,) if isinstance(msg.string, str) else tuple(msg.string)
        for text in strings:
            if _fields(text) != _fields(ids[-1] if len(ids) > 1 else ids[0]):
                bad.append((ids[0], text))
    assert not bad, "placeholders differ:\n" + "\n".join(f"  {i!r}\n  -> {t!r}" for i, t in bad)


def test_summary_reasons_keep_the_ascii_colon(ja):
    """The run summary groups reasons by the text before the first ':' (gimport.engine.results.reason_kind)."""
    for msgid in ("too large for Gmail: {size:,} bytes (limit {limit:,})", "rejected by Gmail: {error}"):
        assert ": " in ja[msgid].string


# ----------------------------------------------------------------------------- nothing slips past _()

_ERROR_NAMES = {
    cls.__name__ for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, errors.GimportError)
} | {"StopRequested"}
_LOGGERS = {"log", "logger", "logging"}  # log.warning(...) stays English; reporter.warning(...) is shown
_SHOWN_BY = {
    "_print": 1,
    "_say": 1,
    "_page": 1,
    "_line": 0,
    "phase": 0,
    "warning": 0,
    "_warn": 0,
    "confirm": 0,
    "getpass": 0,
}


def _words(node: ast.expr) -> bool:
    """Whether a literal (plain or f-string) holds text a person reads (letters outside placeholders)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        # "gimport: {err}": the program's name is not a word to translate
        return bool(re.search(r"[A-Za-z]{2}", node.value.replace("gimport", "")))
    if isinstance(node, ast.JoinedStr):
        return any(_words(v) for v in node.values if isinstance(v, ast.Constant))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _words(node.left) or _words(node.right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):  # "...".format(), f"...".rstrip()
        return _words(node.func.value)
    return False


def unwrapped(source: str, filename: str = "<source>") -> list[str]:
    """User-visible literals not passed through _(): the message of a gimport error, what goes to the terminal
    through the show functions, and any _() whose msgid is not a constant (an f-string never matches the
    catalog). Log calls are not looked at: log lines stay English. A line marked `# i18n-ok` (a command line to
    copy, say) is let through."""
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name in ("_", "N_", "ngettext"):
            if any(
                not (isinstance(a, (ast.Constant, ast.Name | ast.Attribute | ast.Subscript))) for a in node.args[:2]
            ):
                found.append(f"{filename}:{node.lineno}: {name}() of a non-constant msgid")
            continue
        args = []
        if name in _ERROR_NAMES and node.args:
            args.append(node.args[0])
        args += [k.value for k in node.keywords if k.arg == "hint" and name in _ERROR_NAMES]
        logged = isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in _LOGGERS
        if name in _SHOWN_BY and len(node.args) > _SHOWN_BY[name] and not logged:
            args.append(node.args[_SHOWN_BY[name]])
        if name == "print" and node.args:
            args.append(node.args[0])
        found += [
            f"{filename}:{a.lineno}: {ast.get_source_segment(source, a)[:80]}"
            for a in args
            if _words(a) and "# i18n-ok" not in lines[a.lineno - 1]
        ]
    return found


@pytest.mark.parametrize("module", CONVERTED)
def test_converted_modules_wrap_every_user_visible_string(module):
    source = (ROOT / module).read_text("utf-8")
    assert not unwrapped(source, module)


def test_the_unwrapped_check_finds_what_it_should():
    snippet = """
raise ConfigError("[source] host is required")
raise AuthError(f"no token at {path}", hint="run auth")
_print(out, "Open this address")
print(f"Log: {path}")
x = _(f"cannot read {path}")
log.warning("stays English %s", x)
raise ConfigError(_("[source] host is required"))
raise RetryableError(f"{exc}")
raise AuthError(f"Google refused: {error}".rstrip())
raise AuthError("cannot read {path}".format(path=p))
raise AuthError(_("cannot read {path}").format(path=p))
_print(out, f"\\n    {url}\\n")
"""
    found = unwrapped(snippet)
    assert sorted(int(f.split(":")[1]) for f in found) == [2, 3, 3, 4, 5, 6, 10, 11], found


def test_no_f_string_msgid_anywhere_in_gimport():
    """In every module, converted or not: `_(f"...")` can never be translated."""
    bad = []
    for path in sorted((ROOT / "gimport").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("_", "ngettext")
                and any(isinstance(a, ast.JoinedStr | ast.BinOp) for a in node.args)
            ):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bad


# ------------------------------------------------------------------------------ language choice, Text


@pytest.fixture
def lang(monkeypatch):
    """Set the locale variables for this process and look the catalog up again (and again afterwards)."""

    def set_env(**values: str) -> None:
        for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
            monkeypatch.delenv(var, raising=False)
        for var, value in values.items():
            monkeypatch.setenv(var, value)
        i18n.reset()

    yield set_env
    i18n.reset()


@pytest.mark.parametrize(
    ("env", "japanese"),
    [
        ({"LANG": "ja_JP.UTF-8"}, True),
        ({"LANG": "C"}, False),
        ({"LANG": "C.UTF-8"}, False),
        ({}, False),
        ({"LANG": "C", "LC_MESSAGES": "ja_JP.UTF-8"}, True),
        ({"LANG": "ja_JP.UTF-8", "LC_ALL": "C"}, False),
        ({"LANG": "C", "LANGUAGE": "ja"}, True),
        ({"LANG": "en_US.UTF-8", "LANGUAGE": "fr:ja"}, True),  # the first language that has a catalog
    ],
)
def test_language_is_chosen_as_gettext_does(lang, env, japanese):
    lang(**env)
    assert i18n.is_japanese() is japanese
    text = _("run 'gimport auth' again")
    assert (text == "'gimport auth' をもう一度実行してください") is japanese
    assert text.english == "run 'gimport auth' again"


def test_text_keeps_the_english_through_format_and_errors(lang):
    lang(LANG="ja_JP.UTF-8")
    inner = _("no Gmail token at {token_file}").format(token_file="/t.json")
    assert inner == "/t.json に Gmail のトークンがありません"
    assert english(inner) == "no Gmail token at /t.json"
    err = errors.AuthError(inner, hint=_("run 'gimport auth' first"))
    assert str(err) == "/t.json に Gmail のトークンがありません。先に 'gimport auth' を実行してください"
    assert english(err) == "no Gmail token at /t.json: run 'gimport auth' first"
    outer = _("{folder}: {problem}").format(
        folder="INBOX", problem=_("the folder disappeared during the run: {detail}").format(detail="NO")
    )
    assert english(outer) == "INBOX: the folder disappeared during the run: NO"
    assert "実行中にフォルダがなくなりました" in outer
    # the class's own hint is translated when read; English for the log
    assert str(errors.AuthError("")) == "'gimport auth' をもう一度実行してください"
    assert errors.AuthError("").english() == "run 'gimport auth' again"
    # a Text survives copy and pickle (admin mode hands summaries around)
    assert pickle.loads(pickle.dumps(inner)).english == inner.english
    assert copy.copy(inner).english == inner.english


def test_plural_forms(lang):
    singular = (
        "{n} message was in flight when an earlier run stopped: it is sent again"
        " (if Gmail stored it before the stop, it may now hold it twice)"
    )
    plural = (
        "{n} messages were in flight when an earlier run stopped: they are sent again"
        " (if Gmail stored them before the stop, it may now hold them twice)"
    )
    lang(LANG="ja_JP.UTF-8")
    assert "件のメッセージが送信途中" in ngettext(singular, plural, 1).format(n=1)
    assert english(ngettext(singular, plural, 3).format(n=3)).startswith("3 messages were")
    lang(LANG="C")
    assert ngettext(singular, plural, 1).format(n=1).startswith("1 message was")


# ----------------------------------------------------------------------------- wide characters in tables


def _columns(line: str) -> list[int]:
    """Display columns at which each cell of a format_table line starts (cells are split by 2+ spaces)."""
    import unicodedata

    starts, col, prev_space = [], 0, 2
    for ch in line:
        if ch != " " and prev_space >= 2:
            starts.append(col)
        prev_space = prev_space + 1 if ch == " " else 0
        col += 2 if unicodedata.east_asian_width(ch) in "WF" else 1
    return starts


def test_format_table_aligns_japanese_cells():
    from gimport.render.table import Column, format_table

    headers = ["フォルダー", "ラベル", "件数", "サイズ"]
    columns = [Column(headers[0], name=True), Column(headers[1]), Column(headers[2], right=True)]
    columns.append(Column(headers[3], right=True))
    rows = [
        ["INBOX", "INBOX", "12", "1.2 MiB"],
        ["送信済み", "送信済み/2024年", "3", "40 KiB"],
        ["ﾒﾓ", "半角ｶﾀｶﾅ", "１２３", "0 B"],  # half-width katakana take one column, full-width digits two
        ["Archive/研究室", "Archive/研究室", "100000", "3.4 GiB"],
    ]
    lines = format_table(columns, rows).splitlines()
    starts = [_columns(line) for line in lines]
    assert all(len(s) == 4 for s in starts), lines
    assert len({s[1] for s in starts}) == 1, lines  # the second column starts at one display column
    # right-aligned columns end at one display column
    import unicodedata

    def display(s: str) -> int:
        return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)

    assert len({display(line) for line in lines}) == 1, lines
    # the dashes under each header are exactly as wide as the widest cell of the column
    assert lines[1].split("  ")[0] == "-" * max(display(r[0]) for r in [headers, *rows])


def _own_scope_binds(func: ast.FunctionDef | ast.AsyncFunctionDef) -> list[int]:
    """Lines where `func` itself (not a nested comprehension, lambda or function) binds the name `_`."""
    lines = []
    stack = list(ast.iter_child_nodes(func))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue
        if isinstance(node, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
            continue
        if isinstance(node, ast.Name) and node.id == "_" and isinstance(node.ctx, ast.Store):
            lines.append(node.lineno)
        if isinstance(node, ast.arg) and node.arg == "_":
            lines.append(node.lineno)
        stack.extend(ast.iter_child_nodes(node))
    return lines


def test_no_function_hides_the_translation_function():
    """`x, _ = ...` in a function that also calls `_()` makes `_` a local there: UnboundLocalError or a
    tuple called as a function, and only on the error path that shows the message."""
    bad = []
    for path in sorted((ROOT / "gimport").rglob("*.py")):
        tree = ast.parse(path.read_text("utf-8"))
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            calls = any(
                isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "_" for n in ast.walk(func)
            )
            binds = _own_scope_binds(func)
            if calls and binds:
                bad += [f"{path.relative_to(ROOT)}:{line} ({func.name})" for line in binds]
    assert not bad, "use another name than `_` for unused values there: " + ", ".join(bad)
