"""One thread watches every IMAP operation's deadline."""

from __future__ import annotations

import threading

from gimport.backends.imap.watchdog import Watchdog


def test_deadlines_fire_in_order_and_cancelled_ones_never():
    dog = Watchdog()
    fired: list[str] = []
    last = threading.Event()
    dog.arm(60, lambda: fired.append("late"))
    dog.arm(0.01, lambda: fired.append("first"))
    cancelled = dog.arm(0.02, lambda: fired.append("cancelled"))
    dog.arm(0.05, lambda: (fired.append("last"), last.set()))
    dog.cancel(cancelled)
    assert last.wait(10)
    # the cancelled deadline came before "last": had it not been cancelled it would be in the list by now
    assert fired == ["first", "last"]
    before = threading.active_count()
    for _ in range(50):
        dog.cancel(dog.arm(5, lambda: fired.append("never")))
    assert threading.active_count() == before  # no thread per deadline
