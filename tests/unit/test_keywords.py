"""Flags beyond \\Seen/\\Flagged: keywords (tags) -> labels, \\Deleted -> left out or TRASH; the config keys;
the rename of label names Gmail refuses (gimport.engine.labels) with a fake destination."""

from __future__ import annotations

import pytest

from gimport.config.load import load_settings
from gimport.config.settings import LabelSettings
from gimport.engine.labels import RENAMES_KEY, Labels, remembered_renames
from gimport.errors import ConfigError, GmailError, MessageRejected
from gimport.mail.keywords import (
    decode_mutf7,
    flag_labels,
    is_deleted,
    keyword_counts,
    keyword_label,
    keywords,
)
from gimport.mail.mapping import Folder, plan_folder

PLAIN = LabelSettings()


@pytest.mark.parametrize(
    ("keyword", "label"),
    [
        ("$label1", "IMPORTANT"),
        ("$Label2", "Work"),  # IMAP keywords compare case-insensitively
        ("$label3", "Personal"),
        ("$label4", "To Do"),
        ("$label5", "Later"),
        ("$Junk", "SPAM"),
        ("Junk", "SPAM"),
        ("$NotJunk", None),
        ("NonJunk", None),
        ("$Forwarded", None),
        ("$MDNSent", None),
        ("$SubmitPending", None),
        ("$Submitted", None),
        ("Project_X", "Project_X"),
        ("&MMYwuTDI-", "テスト"),
        ("Inbox", "Inbox (imported)"),  # a reserved name gets the mapping's rename
    ],
)
def test_keyword_labels(keyword, label):
    assert keyword_label(keyword, PLAIN) == label


def test_labels_keywords_setting_maps_and_drops_and_prefix_applies():
    settings = LabelSettings(prefix="Old", keywords={"$LABEL2": "Job", "custom": "", "vip": "STARRED"})
    assert keyword_label("$label2", settings) == "Old/Job"
    assert keyword_label("custom", settings) is None
    assert keyword_label("VIP", settings) == "STARRED"
    assert keyword_label("other", settings) == "Old/other"
    assert keyword_label("$label1", settings) == "IMPORTANT"


def test_mutf7():
    assert decode_mutf7("plain") == "plain"
    assert decode_mutf7("a&-b") == "a&b"
    assert decode_mutf7("&ZeVnLIqe-") == "日本語"
    assert decode_mutf7("&not base64-") == "&not base64-"  # not modified UTF-7: as it is
    assert decode_mutf7("broken&") == "broken&"


def test_flags_deleted_and_keywords():
    flags = (b"\\Seen", "\\DELETED", "$label1", "$label1", "tag")
    assert is_deleted(flags)
    assert not is_deleted(["\\Seen", "Deleted"])
    assert keywords(flags) == ["$label1", "tag"]
    assert flag_labels(flags, PLAIN) == ("IMPORTANT", "tag", "TRASH")
    assert flag_labels(["\\Seen", "$MDNSent"], PLAIN) == ()
    assert keyword_counts({"$label1": 2, "$Junk": 1, "Junk": 3, "$Forwarded": 4}, PLAIN) == {"IMPORTANT": 2, "SPAM": 4}


def write(tmp_path, text):
    p = tmp_path / "gimport.toml"
    p.write_text('[source]\ntype = "maildir"\npath = "m"\n' + text, encoding="utf-8")
    return p


def test_config_keys(tmp_path):
    s = load_settings(
        write(tmp_path, '[filters]\ninclude_deleted = true\n[labels.keywords]\n"$label2" = "Job"\nx = ""\n'), env={}
    )
    assert s.filters.include_deleted is True
    assert s.labels.keywords == {"$label2": "Job", "x": ""}
    assert load_settings(write(tmp_path, ""), env={}).filters.include_deleted is False
    with pytest.raises(ConfigError, match="include_deleted must be true or false"):
        load_settings(write(tmp_path, '[filters]\ninclude_deleted = "yes"\n'), env={})
    with pytest.raises(ConfigError, match=r"\[labels.keywords\]"):
        load_settings(write(tmp_path, "[labels.keywords]\nx = 1\n"), env={})
    with pytest.raises(ConfigError, match="DRAFT"):
        load_settings(write(tmp_path, '[labels.keywords]\nx = "DRAFT"\n'), env={})


class FakeGmail:
    """labels.list / labels.create: refuses `refused` (400), like Gmail's reserved names."""

    def __init__(self, refused):
        self.refused = {n.casefold() for n in refused}
        self.labels = [{"id": "INBOX", "name": "INBOX", "type": "system"}]
        self.creates = []

    def list_labels(self):
        return list(self.labels)

    def create_label(self, name, visibility="labelShow", messages="show"):
        self.creates.append(name)
        if name.casefold() in self.refused:
            raise MessageRejected("labels.create: HTTP 400 Invalid label name")
        label = {"id": f"Label_{len(self.labels)}", "name": name, "type": "user"}
        self.labels.append(label)
        return label


class FakeState:
    def __init__(self):
        self.meta = {}

    def get_meta(self, key):
        return self.meta.get(key)

    def set_meta(self, key, value):
        self.meta[key] = value


def plans(*paths):
    return [plan_folder(Folder(p), PLAIN) for p in paths]


def test_refused_names_are_renamed_with_their_children_and_remembered():
    gmail, state = FakeGmail({"Snoozed", "Gesendet", "Work/Scheduled"}), FakeState()
    ids = Labels(gmail, "labelShow", state).for_plans(plans("Snoozed/2020", "Gesendet", "Work/Scheduled", "INBOX"))
    names = {lbl["id"]: lbl["name"] for lbl in gmail.labels}
    assert names[ids["Snoozed/2020"]] == "Snoozed (imported)/2020"
    assert names[ids["Gesendet"]] == "Gesendet (imported)"
    assert names[ids["Work/Scheduled"]] == "Work/Scheduled (imported)"
    assert ids["INBOX"] == "INBOX"
    assert remembered_renames(state) == {
        "Snoozed": "Snoozed (imported)",
        "Gesendet": "Gesendet (imported)",
        "Work/Scheduled": "Work/Scheduled (imported)",
    }
    # a rerun asks Gmail nothing: the renamed labels exist, the state knows the names
    before = len(gmail.creates)
    again = Labels(gmail, "labelShow", state)
    assert again.for_plans(plans("Snoozed/2020", "Gesendet")) == {**again.ids}
    assert len(gmail.creates) == before
    assert state.meta[RENAMES_KEY]


def test_a_name_refused_twice_stops_with_the_way_out():
    gmail = FakeGmail({"Odd", "Odd (imported)"})
    with pytest.raises(GmailError, match=r"\[labels.map\]"):
        Labels(gmail, "labelShow").for_plans(plans("Odd"))


def test_keyword_labels_are_created_after_the_plans():
    gmail = FakeGmail({"Later"})
    labels = Labels(gmail, "labelShow")
    labels.for_plans(plans("INBOX"))
    labels.add(["Work", "IMPORTANT", "Later", "Clients/A"])
    names = {lbl["id"]: lbl["name"] for lbl in gmail.labels}
    assert names[labels.ids["Later"]] == "Later (imported)"
    assert names[labels.ids["Clients/A"]] == "Clients/A"
    assert labels.ids["IMPORTANT"] == "IMPORTANT"
    assert labels.renamed == {"Later": "Later (imported)"}
