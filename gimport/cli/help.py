"""`gimport help [TOPIC]`: the documentation shipped with the package, for a pip-installed user who has no
checkout (the docs/*.md files and README.md are package data). Registered by gimport.cli.main."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gimport.cli.options import CommandTable
from gimport.errors import EXIT_OK, EXIT_USAGE, ConfigError
from gimport.i18n import N_, _
from gimport.render.markdown import wrap_markdown
from gimport.render.text import terminal_width

PACKAGE = Path(__file__).resolve().parents[1]

# topic -> (file in the package, README section heading or None for the whole file, what it covers)
TOPICS: dict[str, tuple[str, str | None, str]] = {
    "guide": ("README.md", None, N_("the whole guide: quick start, commands, mapping, configuration")),
    "config": ("README.md", "## Configuration reference", N_("every gimport.toml key")),
    "commands": ("README.md", "## Commands and exit codes", N_("the commands and what each exit code means")),
    "reboot": ("README.md", "## Unattended runs and reboots", N_("nohup, --stats, starting again after a reboot")),
    "auth": ("docs/auth.md", None, N_("the Google Cloud project, the OAuth client, consent over SSH")),
    "finishing": ("docs/finishing.md", None, N_("verify, cleanup, the old server")),
    "admin": ("docs/admin.md", None, N_("a whole campus with a service account")),
}


# the Japanese translation of each file, and of each section heading (README.ja.md, docs/ja/)
JAPANESE_FILES = {"README.md": "README.ja.md", "docs/auth.md": "docs/ja/auth.md"}
JAPANESE_FILES |= {"docs/finishing.md": "docs/ja/finishing.md", "docs/admin.md": "docs/ja/admin.md"}
JAPANESE_HEADINGS = {
    "## Configuration reference": "## 設定リファレンス",
    "## Commands and exit codes": "## コマンドと終了コード",
    "## Unattended runs and reboots": "## 無人での実行と再起動",
}


def _localized(name: str, heading: str | None) -> tuple[str, str | None]:
    """The Japanese file and heading when gimport speaks Japanese and they are installed, else the English."""
    from gimport.i18n import is_japanese

    ja = JAPANESE_FILES.get(name)
    if not is_japanese() or ja is None or not (PACKAGE / ja).exists():
        return name, heading
    return ja, None if heading is None else JAPANESE_HEADINGS.get(heading, heading)


def topic_text(topic: str) -> str:
    """The text of `topic` (in Japanese when gimport speaks Japanese and the translation is installed).
    ConfigError (exit 2) naming the topics when there is no such topic."""
    if topic not in TOPICS:
        raise ConfigError(
            _("no help topic {topic!r}").format(topic=topic),
            hint=_("the topics are: {names}").format(names=", ".join(TOPICS)),
        )
    name, heading, _what = TOPICS[topic]
    name, heading = _localized(name, heading)
    try:
        text = (PACKAGE / name).read_text("utf-8")
    except OSError:
        raise ConfigError(
            _("the documentation {name} is not installed with this gimport").format(name=name),
            hint=_("it is {name} in gimport's source; reinstalling gimport brings it back").format(name=name),
        ) from None
    if heading is None:
        return text
    start = text.find(heading + "\n")
    if start < 0:
        return text
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end > 0 else len(text)].rstrip() + "\n"


def cmd_help(args: argparse.Namespace) -> int:
    if not args.topic:
        print(_("gimport help TOPIC shows one of these (from the documentation installed with gimport):"))
        width = max(len(t) for t in TOPICS)
        for topic, (_name, _heading, what) in TOPICS.items():
            print(f"  {topic:<{width}}  {_(what)}")
        print(_("Each command's own options and exit codes: gimport COMMAND --help"))
        return EXIT_OK
    # on a terminal (or with COLUMNS) the documentation's paragraphs are fitted to it, Japanese broken
    # between phrases; piped to a file or a script, it is the Markdown as written
    text = wrap_markdown(topic_text(args.topic), terminal_width(sys.stdout))
    if sys.stdout.isatty() and text.count("\n") > 40:
        import pydoc

        pydoc.pager(text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def register(commands: CommandTable) -> None:
    """Register `gimport help`."""
    p = commands.add(
        "help",
        cmd_help,
        _("show the documentation installed with gimport (the README's sections, docs/*.md)"),
        _("gimport help            # the topics\n  gimport help auth       # setting up the OAuth client"),
        (EXIT_OK, EXIT_USAGE),
    )
    p.add_argument("topic", nargs="?", metavar="TOPIC", help=_("one of: {names}").format(names=", ".join(TOPICS)))
