"""How many calls may be in flight at once: what the rate needs at the latency observed, within bounds.

Little's law: to sustain λ calls per second when each takes W seconds, λ·W calls must be in flight. The
pacer knows λ (its rate in units per second over the mean cost of a call); the calls tell W. So the limit is
`ceil(λ · W · headroom) + spare`, where W is the mean latency of recent answers, plus one for each call still
unanswered after twice that (a slow call holds its place; when the server slows down all at once, every call
is late and the limit follows them until the mean catches up); before the first answer, W is the age of the
oldest call in flight. It never exceeds `upper` ([gmail] workers) nor the ceiling learned from
"too many concurrent requests" answers.

Why not Netflix's gradient or Vegas limits, or TCP's AIMD: those search for a server's unknown capacity by
watching latency rise or calls fail. Here the throughput wanted is known (the quota) and the server's queue
is not ours to fill: more calls in flight than λ·W only wait at the pacer. rclone keeps `--transfers` fixed
and lets its pacer handle the rate; that is what a fixed `workers` did, capping the rate at workers / W.
AIMD survives where it fits, for the server's per-user limit on calls at once: a refusal sets the ceiling
just under the number in flight when the refused call left (not a fixed fraction below it: a limit of 10 at
3 s a call would give 7 / 3 s instead of 10 / 3 s), once per congestion event, so a limit shared with
something else is followed down one refusal at a time; it then rises by one only every `probe_seconds`
without a refusal, so it stays down (one refused call a minute at most).

Calls are sent in the order the pacer gives turns: holding a slot does not let a call leave earlier, so a
rise of the limit never bursts beyond the pacer's spacing. Clock injectable for tests; thread-safe.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# seconds between looks at a limit that may rise with time alone; a release wakes the waiting at once (a
# hundred users' spare threads looking 20 times a second cost a core's worth of GIL hand-overs)
WAIT = 0.25


class CallLimit:
    """The limit on calls in flight (see the module docstring). `rate()` gives the pacer's units per
    second (None: unlimited, then the limit is `upper`).

    slot() holds a place for one call while it waits for its turn and while it is in flight; the function it
    yields is called with the call's cost when the call leaves (the latency is measured from then).
    note_too_many_concurrent() belongs to the thread whose call was refused (matched to its last slot).
    """

    def __init__(
        self,
        *,
        upper: int = 8,
        rate: Callable[[], float | None] = lambda: None,
        headroom: float = 1.25,
        spare: int = 2,
        smoothing: float = 0.1,
        probe_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.upper = max(1, upper)
        self._rate, self._headroom, self._spare, self._alpha = rate, headroom, spare, smoothing
        self._probe = probe_seconds
        self._clock = clock
        self._cond = threading.Condition()
        self._local = threading.local()
        self._in_use = 0  # slots held
        self._sent: dict[int, float] = {}  # slot number -> when its call left
        self._leaving = 0  # calls past the limit's wait, waiting out the spacing (_space): in flight soon
        self._last_left = float("-inf")  # when the last call left
        self._next = 0
        self._latency: float | None = None  # mean latency of recent answers (exponential moving average)
        self._cost: float | None = None  # mean cost of recent calls
        self._ceiling: int | None = None  # learned from "too many concurrent" answers
        self._changed = clock()
        self._generation = 0  # one per cut
        self.refusals = 0

    # -- the limit ---------------------------------------------------------------------------------
    def _need(self, now: float) -> int:
        """Calls in flight the rate needs at the latency seen (under the lock)."""
        rate = self._rate()
        if rate is None:
            return self.upper
        calls_per_second = rate / self._cost if self._cost else 0.0
        if self._latency is None:  # no answer yet: the oldest call's age is the only sign of the latency
            oldest = now - min(self._sent.values()) if self._sent else 0.0
            return math.ceil(calls_per_second * oldest * self._headroom) + self._spare
        # a call unanswered for over twice the mean latency holds a place of its own: one more each. Scaling
        # the whole limit by the slowest call's age instead would answer every pause of this process (a busy
        # interpreter, 100 users' threads) with more threads, and those pause it more. A server slowing down
        # for every call makes them all late: the limit follows them, and the mean catches up.
        late = sum(1 for left in self._sent.values() if now - left > 2 * self._latency)
        return math.ceil(calls_per_second * self._latency * self._headroom) + self._spare + late

    def _probe_up(self, now: float) -> None:
        if self._ceiling is None:
            return
        steps = int((now - self._changed) / self._probe)
        if steps > 0:
            self._ceiling += steps
            self._changed += steps * self._probe
            if self._ceiling >= self.upper:
                self._ceiling = None  # it no longer binds
            self._cond.notify_all()

    def _limit(self, now: float) -> int:
        self._probe_up(now)
        bound = self.upper if self._ceiling is None else min(self.upper, self._ceiling)
        return max(1, min(bound, self._need(now)))

    @property
    def limit(self) -> int:
        """Calls that may be in flight now."""
        with self._cond:
            return self._limit(self._clock())

    @property
    def ceiling(self) -> int | None:
        """The bound learned from "too many concurrent" answers; None: none binds."""
        with self._cond:
            self._probe_up(self._clock())
            return self._ceiling

    @property
    def in_use(self) -> int:
        with self._cond:
            return self._in_use

    @property
    def latency(self) -> float | None:
        """The mean latency of recent answers, in seconds."""
        with self._cond:
            return self._latency

    # -- calls -------------------------------------------------------------------------------------
    @contextmanager
    def slot(self) -> Iterator[Callable[[float], None]]:
        """Hold one place for one call; blocks while all are taken. Call what it yields with the call's
        cost right before the call leaves."""
        with self._cond:
            while self._in_use >= self._limit(self._clock()):
                # woken by a release; the timeout lets in a rise that comes with time (late calls, probing)
                self._cond.wait(WAIT)
            self._in_use += 1
            self._next += 1
            number = self._next

        def sent(cost: float) -> None:
            with self._cond:
                # a slot given before a cut (or a fall of the need) leaves only when the calls in flight are
                # under the limit: the cut holds at once, not once the slots given before it are used up
                waited = False
                while self._sent and len(self._sent) + self._leaving >= self._limit(self._clock()):
                    waited = True
                    self._cond.wait(WAIT)
                if waited:
                    self._space(cost)
                now = self._clock()
                self._last_left = max(self._last_left, now)
                self._sent[number] = now
                if cost > 0:
                    self._cost = cost if self._cost is None else self._cost + self._alpha * (cost - self._cost)
                self._local.generation, self._local.in_flight = self._generation, len(self._sent)

        try:
            yield sent
        finally:
            with self._cond:
                self._in_use -= 1
                left = self._sent.pop(number, None)
                if left is not None:
                    took = self._clock() - left
                    old = self._latency
                    self._latency = took if old is None else old + self._alpha * (took - old)
                self._cond.notify_all()  # a slot, or a call waiting to leave

    def _space(self, cost: float) -> None:
        """A call whose turn came while the calls in flight were at the limit leaves its own cost's worth of
        time after the last one that left (the pacer's spacing), not in a bunch with the others a burst of
        answers lets go: a server counting its quota over a second would refuse the bunch. Under the lock;
        its place is held meanwhile."""
        rate = self._rate()
        leave = self._last_left + (cost / rate if rate and cost > 0 else 0.0)
        if leave <= self._clock():
            return
        self._last_left = leave
        self._leaving += 1
        try:
            while (now := self._clock()) < leave:
                self._cond.wait(leave - now)
        finally:
            self._leaving -= 1

    def note_too_many_concurrent(self) -> None:
        """The server refused this thread's last call for having too many calls in flight."""
        with self._cond:
            self.refusals += 1
            if getattr(self._local, "generation", self._generation) != self._generation:
                return  # it left before the last cut: the same congestion event
            now = self._clock()
            self._probe_up(now)
            left_with = getattr(self._local, "in_flight", 0) or len(self._sent) + 1
            under = max(1, left_with - 1)  # the server's limit is just under what was refused
            self._ceiling = under if self._ceiling is None else min(self._ceiling, under)
            self._generation += 1
            self._changed = now
