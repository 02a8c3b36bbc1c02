"""The one fan-out pool of admin mode: `admin run`, `admin verify` and `admin cleanup` all work through
their users with fan_out, `parallel` at a time, in the users' order."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def fan_out(
    items: Sequence[T],
    parallel: int,
    fn: Callable[[int, T], R],
    *,
    stop: threading.Event,
    on_error: Callable[[T, Exception], R],
    name: str = "admin-slot",
) -> dict[int, R]:
    """fn(i, item) for every item, at most `parallel` at a time (at least one thread, never more than
    items), taken in order. Returns {i: result} for the items that were started: once `stop` is set no
    new item starts, so the missing indices are the items left for next time. An exception fn raises
    becomes on_error(item, exc)'s result (one user's failure never stops the others).

    The calling thread waits in short joins, so it stays responsive to signals (Ctrl-C, SIGTERM)."""
    results: dict[int, R] = {}
    todo: deque[tuple[int, T]] = deque(enumerate(items))
    lock = threading.Lock()

    def slot() -> None:
        while not stop.is_set():
            with lock:
                if not todo:
                    return
                i, item = todo.popleft()
            try:
                result = fn(i, item)
            except Exception as exc:  # noqa: BLE001 - recorded for this item; the others go on
                result = on_error(item, exc)
            with lock:
                results[i] = result

    count = max(1, min(parallel, len(items)))
    threads = [threading.Thread(target=slot, name=f"{name}-{n}", daemon=True) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.5)
    return results
