"""ensure_labels against a fake Gmail: the labels of one level are created side by side, parents first."""

import contextlib
import threading

from gimport.contract import Folder
from gimport.engine.labels import Labels, ensure_labels
from gimport.errors import Conflict, GmailError
from gimport.mail.mapping import IMPORT, FolderPlan


class FakeGmail:
    """Creates labels; a create blocks until `together` creates are in flight at once (or a bound passes)."""

    def __init__(self, together: int, existing=()) -> None:
        self.labels = [{"id": "INBOX", "name": "INBOX", "type": "system"}, *existing]
        self.lock = threading.Lock()
        self.in_flight = self.most = 0
        self.barrier = threading.Barrier(together)

    def list_labels(self):
        with self.lock:
            return list(self.labels)

    def create_label(self, name, visibility="labelShow", messages="show"):
        parent = name.rpartition("/")[0]
        with self.lock:
            names = {lbl["name"] for lbl in self.labels}
            assert not parent or parent in names, f"{name} before its parent"
            if name.casefold() in {n.casefold() for n in names}:
                raise Conflict("exists")
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        with contextlib.suppress(threading.BrokenBarrierError):
            self.barrier.wait(timeout=2)  # a bound for a failure, not a wait for success
        with self.lock:
            self.in_flight -= 1
            created = {"id": f"Label_{len(self.labels)}", "name": name, "type": "user"}
            self.labels.append(created)
            return created


def plan(label: str) -> FolderPlan:
    return FolderPlan(Folder(label), IMPORT, (label,))


def test_the_labels_of_a_level_are_created_side_by_side_parents_first():
    plans = [plan(f"Dept{i}/Topic{j}") for i in range(4) for j in range(4)]
    gmail = FakeGmail(together=4)  # the four parents at once, then sixteen children four at a time or more
    refs = ensure_labels(gmail, plans, "labelShow")
    assert gmail.most >= 4
    assert len([lbl for lbl in gmail.labels if lbl["type"] == "user"]) == 4 + 16
    assert refs["Dept2/Topic3"] == next(lbl["id"] for lbl in gmail.labels if lbl["name"] == "Dept2/Topic3")


def test_an_existing_label_is_reused_and_nested_under_as_gmail_spells_it():
    gmail = FakeGmail(together=1, existing=[{"id": "Label_W", "name": "WORK", "type": "user"}])
    refs = ensure_labels(gmail, [plan("work/a"), plan("work/b")], "labelShow")
    assert refs["work/a"] != refs["work/b"]
    assert {lbl["name"] for lbl in gmail.labels} >= {"WORK/a", "WORK/b"}
    assert "work" not in {lbl["name"] for lbl in gmail.labels}


def test_a_label_created_meanwhile_is_looked_up():
    gmail = FakeGmail(together=1)
    real = gmail.create_label

    def racing(name, visibility="labelShow"):
        real(name, visibility)  # someone else made it just before us
        raise Conflict("exists")

    gmail.create_label = racing
    refs = ensure_labels(gmail, [plan("Lost")], "labelShow")
    assert refs["Lost"] == next(lbl["id"] for lbl in gmail.labels if lbl["name"] == "Lost")


class GatedGmail(FakeGmail):
    """Creates "Slow" only once `gate` is set; refuses "Bad" for good."""

    def __init__(self) -> None:
        super().__init__(together=1)
        self.gate = threading.Event()

    def create_label(self, name, visibility="labelShow"):
        if name == "Slow":
            assert self.gate.wait(10)
        if name == "Bad":
            raise GmailError("no")
        return super().create_label(name, visibility)


def test_a_folder_whose_labels_exist_need_not_wait_for_the_others():
    gmail = GatedGmail()
    labels = Labels(gmail, "labelShow", thread_prefix="u:")
    ids = labels.start([plan("Fast"), plan("Slow")])
    assert labels.wait(["INBOX", "Fast"])  # while "Slow" is still being made
    assert "Slow" not in ids
    assert ids["Fast"] == next(lbl["id"] for lbl in gmail.labels if lbl["name"] == "Fast")
    gmail.gate.set()
    assert labels.wait(["Slow"])
    assert ids["Slow"] == next(lbl["id"] for lbl in gmail.labels if lbl["name"] == "Slow")
    labels.finish()


def test_a_label_gmail_will_not_make_stops_its_waiters_and_the_run():
    gmail, errors = GatedGmail(), []
    gmail.gate.set()
    labels = Labels(gmail, "labelShow", on_error=errors.append)
    labels.start([plan("Bad"), plan("Slow")])
    assert not labels.wait(["Bad"])
    labels.finish()
    assert [str(e) for e in errors] == ["no"]
    assert not labels.wait(["INBOX"])  # the run stops: no message goes any more


def test_a_stop_ends_the_wait():
    gmail, stop = GatedGmail(), threading.Event()
    labels = Labels(gmail, "labelShow", stop=stop)
    labels.start([plan("Slow")])
    stop.set()
    assert not labels.wait(["Slow"])
    gmail.gate.set()
    labels.finish()
