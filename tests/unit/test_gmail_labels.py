"""A Gmail source read by labels (gimport.backends.imap.gmail) and the mapping of its label folders: pure."""

from __future__ import annotations

from gimport.backends.imap.gmail import GmailLabels, decode_labels
from gimport.config.settings import LabelSettings
from gimport.contract import Folder
from gimport.mail.mapping import EXCLUDE, IMPORT, LABEL, NOSELECT, plan_folders, user_labels_to_create


def _folders() -> list[Folder]:
    return [
        Folder("INBOX", "/"),
        Folder("[Gmail]", "/", frozenset({"\\Noselect", "\\HasChildren"})),
        Folder("[Gmail]/すべてのメール", "/", frozenset({"\\All", "\\HasNoChildren"})),
        Folder("[Gmail]/送信済みメール", "/", frozenset({"\\Sent"})),
        Folder("[Gmail]/重要", "/", frozenset({"\\Important"})),
        Folder("[Gmail]/スター付き", "/", frozenset({"\\Flagged"})),
        Folder("[Gmail]/下書き", "/", frozenset({"\\Drafts"})),
        Folder("[Gmail]/迷惑メール", "/", frozenset({"\\Junk"})),
        Folder("[Gmail]/ゴミ箱", "/", frozenset({"\\Trash"})),
        Folder("Junk", "/"),  # a user label, whatever its name
        Folder("仕事/報告", "/"),
    ]


def test_decode_labels_undoes_modified_utf7_and_keeps_system_labels():
    assert decode_labels((b"\\Inbox", b"&TtVOiw-/&WDFUSg-", b"My label", 2024, None, b"&ZZZ")) == [
        "\\Inbox",
        "仕事/報告",
        "My label",
        "2024",
        "&ZZZ",
    ]
    assert decode_labels(None) == []
    assert decode_labels(b"Work") == ["Work"]


def test_folders_are_read_once_from_all_mail_and_the_rest_are_labels():
    gmail = GmailLabels.of(_folders())
    assert gmail is not None
    plans = {p.path: p for p in plan_folders(gmail.folders, LabelSettings())}
    assert (plans["[Gmail]/すべてのメール"].action, plans["[Gmail]/すべてのメール"].labels) == (IMPORT, ())
    assert (plans["[Gmail]/迷惑メール"].action, plans["[Gmail]/迷惑メール"].labels) == (IMPORT, ("SPAM",))
    assert (plans["[Gmail]/ゴミ箱"].action, plans["[Gmail]/ゴミ箱"].labels) == (IMPORT, ("TRASH",))
    assert plans["[Gmail]"].action == NOSELECT
    expected = {
        "INBOX": ("INBOX",),
        "[Gmail]/送信済みメール": ("SENT",),
        "[Gmail]/重要": ("IMPORTANT",),
        "[Gmail]/スター付き": ("STARRED",),
        "[Gmail]/下書き": ("下書き (imported)",),  # an import cannot set DRAFT; the name is reserved
        "Junk": ("Junk",),  # never guessed from its name: a label, not SPAM
        "仕事/報告": ("仕事/報告",),
    }
    assert {p: (plans[p].action, plans[p].labels) for p in expected} == {p: (LABEL, v) for p, v in expected.items()}
    assert "[Gmail]/すべてのメール" in plans["INBOX"].notes[0]
    # the labels of label folders are created as any folder's
    assert user_labels_to_create(plans.values()) == ["Junk", "下書き (imported)", "仕事", "仕事/報告"]


def test_also_in_names_the_folders_of_a_message_labels():
    gmail = GmailLabels.of(_folders())
    assert gmail is not None
    value = (
        b"\\Inbox",
        b"\\important",
        b"\\Starred",
        b"\\Draft",
        b"\\Sent",
        b"&TtVOiw-/&WDFUSg-",
        b"Hidden",
        b"\\Muted",
    )
    assert gmail.also_in(value, "[Gmail]/すべてのメール") == (
        "INBOX",
        "[Gmail]/重要",
        "[Gmail]/スター付き",
        "[Gmail]/下書き",
        "[Gmail]/送信済みメール",
        "仕事/報告",
    )
    assert gmail.also_in((b"Junk", b"Junk"), "Junk") == ()  # its own folder, and once


def test_exclude_and_map_work_on_label_folders():
    gmail = GmailLabels.of(_folders())
    assert gmail is not None
    settings = LabelSettings(exclude=("Junk",), map={"仕事/報告": ("Work", "IMPORTANT")}, prefix="old")
    plans = {p.path: p for p in plan_folders(gmail.folders, settings)}
    assert plans["Junk"].action == EXCLUDE
    assert (plans["仕事/報告"].action, plans["仕事/報告"].labels) == (LABEL, ("old/Work", "IMPORTANT"))


def test_without_an_all_folder_nothing_changes():
    folders = [f for f in _folders() if "\\All" not in f.flags]
    assert GmailLabels.of(folders) is None


def test_a_hidden_label_is_named_once_in_the_log(caplog):
    gmail = GmailLabels.of(_folders())
    assert gmail is not None
    with caplog.at_level("WARNING", logger="gimport.imap"):
        for _ in range(3):
            assert gmail.also_in((b"Hidden", b"\\Inbox"), "x") == ("INBOX",)
    assert [r.getMessage() for r in caplog.records if "Hidden" in r.getMessage()] == [
        "labels not listed over IMAP (hidden in Gmail's settings), not imported: ['Hidden']"
    ]
