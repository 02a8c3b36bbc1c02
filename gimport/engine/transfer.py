"""The transfer of one pass: one thread fetches from the source (gimport.engine.fetch: the IMAP connection is
not shared), a pool of workers imports (gimport.engine.migration's worker), and a byte budget bounds what sits
in memory between the two. The pool grows with the calls the pacer lets in flight (the rate times the latency,
gimport.pacing.concurrency), within EngineOptions.workers and the byte budget."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from gimport.contract import MailSource
from gimport.engine.fetch import Fetcher, ItemQueue, Rescan
from gimport.engine.inflight import InFlightBytes, pool_size
from gimport.engine.scan import FolderWork
from gimport.errors import GimportError

GROW_EVERY = 0.25  # seconds between looks at the pool's size: a hundred users polling 10 times a second cost CPU


@dataclass
class EngineOptions:
    workers: int = 40  # the upper bound on import calls in flight (the need follows rate x latency)
    memory_budget: int = 24 * 1024 * 1024  # bytes of fetched messages waiting for import (~1 s of work)
    fetch_batch: int = 100  # messages per IMAP FETCH
    fetch_batch_bytes: int = 8 * 1024 * 1024
    thread_prefix: str = ""  # prepended to the names of the engine's threads (admin mode: routes log lines)
    new_state: bool = False  # `run --new-state`: go on with a new state even if the labels hold mail already


def transfer(
    work: list[FolderWork],
    *,
    source: MailSource,
    rescan: Rescan,
    concurrency: Callable[[], int],
    options: EngineOptions,
    stop: threading.Event,
    worker: Callable[[InFlightBytes, ItemQueue], None],
    warn: Callable[[str], None],
    fatal: Callable[[GimportError], None],
) -> None:
    """Fetch `work` in one thread and import it with `worker`s, as many as `concurrency()` (the calls the
    pacer lets in flight) asks, within options.workers and the byte budget; returns when all have ended."""
    budget = InFlightBytes(options.memory_budget, stop)
    q: ItemQueue = queue.Queue()
    items = sum(len(folder.items) for folder in work)
    mean = sum(folder.size for folder in work) // max(1, items)
    workers: list[threading.Thread] = []

    def grow(fetched: bool) -> None:
        wanted = pool_size(concurrency(), options.workers, budget.limit, mean)
        while len(workers) < min(wanted, items):
            t = threading.Thread(
                target=worker, args=(budget, q), name=f"{options.thread_prefix}import-{len(workers)}", daemon=True
            )
            workers.append(t)
            t.start()
            if fetched:
                q.put(None)  # its end, behind the items still queued

    fetch = Fetcher(
        source=source,
        rescan=rescan,
        batch=options.fetch_batch,
        batch_bytes=options.fetch_batch_bytes,
        budget=budget,
        q=q,
        stop=stop,
        warn=warn,
        fatal=fatal,
    )
    fetcher = threading.Thread(target=fetch.run, args=(work, 0), name=f"{options.thread_prefix}fetch", daemon=True)
    grow(fetched=False)
    fetcher.start()
    while fetcher.is_alive():
        grow(fetched=False)
        fetcher.join(GROW_EVERY)
    for _t in workers:
        q.put(None)  # one end per worker; workers started from now on bring their own
    while alive := [t for t in workers if t.is_alive()]:
        grow(fetched=True)
        alive[0].join(GROW_EVERY)


__all__ = ["GROW_EVERY", "EngineOptions", "transfer"]
