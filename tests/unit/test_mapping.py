"""The folder -> label mapping, over a wide table of cases (pure code, no I/O)."""

import pytest

from gimport.config.settings import LabelSettings
from gimport.mail.mapping import (
    EXCLUDE,
    IMPORT,
    NOSELECT,
    NOT_INCLUDED,
    Folder,
    FolderPlan,
    clean_label_name,
    logical_path,
    message_labels,
    plan_folder,
    unused_map_entries,
    user_labels_to_create,
)

DEFAULT = LabelSettings()


@pytest.mark.parametrize(
    ("name", "delim", "flags", "labels"),
    [
        ("INBOX", "/", (), ("INBOX",)),
        ("INBOX", ".", (), ("INBOX",)),
        ("Sent", "/", (), ("SENT",)),
        ("Sent Items", "/", (), ("SENT",)),
        ("Sent Messages", ".", (), ("SENT",)),
        ("送信済み", "/", (), ("SENT",)),
        ("送信済みアイテム", "/", (), ("SENT",)),
        ("INBOX.Sent", ".", (), ("SENT",)),  # Courier: everything below INBOX
        ("Outbox-copies", "/", ("\\Sent",), ("SENT",)),  # RFC 6154 flag beats the name
        ("Junk", "/", (), ("SPAM",)),
        ("Spam", "/", (), ("SPAM",)),
        ("迷惑メール", "/", (), ("SPAM",)),
        ("Trash", "/", (), ("TRASH",)),
        ("Deleted Items", "/", (), ("TRASH",)),
        ("ゴミ箱", "/", (), ("TRASH",)),
        ("削除済みアイテム", "/", (), ("TRASH",)),
        ("Papierkorb", "/", ("\\Trash",), ("TRASH",)),
        ("Drafts", "/", (), ("Drafts (imported)",)),
        ("下書き", "/", (), ("下書き (imported)",)),
        ("Entwürfe", "/", ("\\Drafts",), ("Entwürfe",)),
        ("Work", "/", (), ("Work",)),
        ("Work/2024/Q1", "/", (), ("Work/2024/Q1",)),
        ("Work.2024.Q1", ".", (), ("Work/2024/Q1",)),
        ("仕事/報告書", "/", (), ("仕事/報告書",)),
        ("仕事.報告書", ".", (), ("仕事/報告書",)),
        ("INBOX/Receipts", "/", (), ("Receipts",)),
        ("Archive", "/", (), ("Archive (imported)",)),
        ("archive/2020", "/", (), ("archive (imported)/2020",)),
        ("Important", "/", (), ("Important (imported)",)),
        ("a/b", ".", (), ("a\u2215b",)),  # a "/" inside one level of a "." server stays one level
        ("Sent/Old", "/", (), ("Sent (imported)/Old",)),  # only a top-level Sent is the Sent folder
    ],
)
def test_default_mapping(name, delim, flags, labels):
    plan = plan_folder(Folder(name, delim, frozenset(flags)), DEFAULT)
    assert plan.action == IMPORT
    assert plan.labels == labels


@pytest.mark.parametrize("flags", [("\\Noselect",), ("\\NonExistent",), ("\\HasChildren", "\\NoSelect")])
def test_noselect_parents_hold_no_messages(flags):
    assert plan_folder(Folder("Parent", "/", frozenset(flags)), DEFAULT).action == NOSELECT


@pytest.mark.parametrize("flag", ["\\All", "\\Flagged"])
def test_virtual_folders_are_excluded(flag):
    plan = plan_folder(Folder("All Mail", "/", frozenset({flag})), DEFAULT)
    assert plan.action == EXCLUDE


def test_prefix_applies_to_user_labels_only():
    s = LabelSettings(prefix="ECCS/")
    assert plan_folder(Folder("Work/A"), s).labels == ("ECCS/Work/A",)
    assert plan_folder(Folder("INBOX"), s).labels == ("INBOX",)
    assert plan_folder(Folder("Sent"), s).labels == ("SENT",)
    assert plan_folder(Folder("Archive"), s).labels == ("ECCS/Archive (imported)",)


def test_map_entries_win_over_defaults_and_take_lists():
    s = LabelSettings(
        map={"Sent": ("SENT",), "Archive/2020": ("Old/2020",), "Projects": ("Work", "STARRED"), "INBOX/x": ("X",)}
    )
    assert plan_folder(Folder("Archive/2020"), s).labels == ("Old/2020",)
    assert plan_folder(Folder("Projects"), s).labels == ("Work", "STARRED")
    assert plan_folder(Folder("INBOX.x", "."), s).labels == ("X",)


def test_exclude_wins_over_map_and_says_so():
    s = LabelSettings(exclude=("Junk", "Trash/*"), map={"Trash/old": ("Old",)})
    assert plan_folder(Folder("Junk"), s).action == EXCLUDE
    plan = plan_folder(Folder("Trash/old"), s)
    assert plan.action == EXCLUDE
    assert any("exclude wins" in n for n in plan.notes)
    assert plan_folder(Folder("Trash"), s).action == IMPORT  # "Trash/*" is only below Trash


def test_exclude_globs_use_slash_whatever_the_server_separator():
    s = LabelSettings(exclude=("Archive/*",))
    assert plan_folder(Folder("Archive.2020", "."), s).action == EXCLUDE


def test_include_limits_to_matching_folders():
    s = LabelSettings(include=("INBOX", "仕事/*"))
    assert plan_folder(Folder("INBOX"), s).action == IMPORT
    assert plan_folder(Folder("仕事/報告書"), s).action == IMPORT
    assert plan_folder(Folder("Other"), s).action == NOT_INCLUDED


def test_unused_map_entries_are_reported():
    folders = [Folder("INBOX"), Folder("Work")]
    s = LabelSettings(map={"Work": ("W",), "Wrok": ("W",)})
    assert unused_map_entries(folders, s) == ["Wrok"]


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("A//B", "A/B"),
        ("/A/", "A"),
        (" Spaced / Out ", "Spaced/Out"),
        ("Tab\there", "Tabhere"),
        ("", "(unnamed)"),
        ("x" * 300, "x" * 225),
    ],
)
def test_label_names_are_cleaned(raw, clean):
    assert clean_label_name(raw)[0] == clean


def test_message_flags_become_unread_and_starred():
    plan = FolderPlan(Folder("Work"), IMPORT, ("Work",))
    assert message_labels(plan, []) == ("Work", "UNREAD")
    assert message_labels(plan, [b"\\Seen"]) == ("Work",)
    assert message_labels(plan, ["\\Seen", "\\Flagged"]) == ("Work", "STARRED")
    assert message_labels(plan, [b"\\Flagged", b"\\Answered"]) == ("Work", "UNREAD", "STARRED")


def test_labels_to_create_have_parents_first_and_are_case_insensitively_unique():
    plans = [
        plan_folder(Folder("Work/2024/Q1"), DEFAULT),
        plan_folder(Folder("work/2023"), DEFAULT),
        plan_folder(Folder("INBOX"), DEFAULT),
        plan_folder(Folder("仕事/報告書"), DEFAULT),
    ]
    names = user_labels_to_create(plans)
    assert names.index("Work") < names.index("Work/2024") < names.index("Work/2024/Q1")
    assert "仕事" in names
    assert names.index("仕事") < names.index("仕事/報告書")
    assert not any(n.lower() == "work" and n != "Work" for n in names)
    assert "INBOX" not in names


def test_logical_path():
    assert logical_path("A.B.C", ".") == "A/B/C"
    assert logical_path("A/B", "/") == "A/B"
    assert logical_path("Flat", None) == "Flat"
