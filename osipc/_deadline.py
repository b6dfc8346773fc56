"""One timeout rule for every blocking call.

``timeout=None`` blocks, ``0`` polls once, ``> 0`` waits at most that many seconds, and
expiry raises :class:`~osipc.Timeout`. A call interrupted by a signal (EINTR) resumes
with the time that is left, never with the whole timeout again.
"""

from __future__ import annotations

import math
import select
import time

from osipc._errors import InvalidArgument

# Longer waits are treated as "block": libc timespec arithmetic must not overflow.
FOREVER = 365 * 24 * 3600.0

# The longest one sleep of a wait lasts. A signal can land in the instant before a wait's
# poll() or sem_wait() begins, or go to another thread: either way its Python handler was
# due, but nothing interrupts the sleep. The handler runs when the sleep ends, so at most
# this late, instead of when a message or the timeout comes (a systemctl stop's SIGTERM
# on a receiver idle without a timeout would never get through).
SIGNAL_SLICE = 0.1


def check_timeout(timeout: float | None) -> float | None:
    """Return ``timeout`` as seconds (``None`` = forever), or raise InvalidArgument."""
    if timeout is None:
        return None
    kind: type[object] = type(timeout)
    if kind is float and 0.0 <= timeout < FOREVER:  # the common case first (NaN fails it)
        return timeout
    if kind is int and 0 <= timeout < FOREVER:
        return float(timeout)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise InvalidArgument(
            f"timeout must be None (block), 0 (poll) or a number of seconds, got {timeout!r}"
        )
    if math.isnan(timeout) or timeout < 0:
        raise InvalidArgument(f"timeout must be >= 0 seconds or None, got {timeout!r}")
    if timeout >= FOREVER:
        return None
    return float(timeout)


class Deadline:
    """A point in monotonic time derived from a timeout; ``None`` means never."""

    __slots__ = ("end", "timeout")

    def __init__(self, timeout: float | None) -> None:
        self.timeout = check_timeout(timeout)
        self.end = None if self.timeout is None else time.monotonic() + self.timeout

    @classmethod
    def until(cls, end: float, timeout: float | None) -> Deadline:
        """The deadline of a wait that began with ``timeout`` and ends at ``end`` (what
        time.monotonic() will read then; < 0: never), for a wait resumed elsewhere."""
        deadline = cls.__new__(cls)
        deadline.timeout = timeout
        deadline.end = None if end < 0 else end
        return deadline

    def remaining(self) -> float | None:
        """Seconds left (never negative), or ``None`` for no limit."""
        end = self.end
        if end is None:
            return None
        left = end - time.monotonic()
        return left if left > 0.0 else 0.0

    def slice(self, most: float) -> float:
        """The time left, but at most ``most`` seconds: the next nap of a wait that looks
        around now and then (a close() from another thread, a dead holder)."""
        left = self.remaining()
        return most if left is None else min(left, most)

    def expired(self) -> bool:
        return self.end is not None and time.monotonic() >= self.end

    def poll_ms(self) -> int:
        """Milliseconds for one ``select.poll().poll``: the time left rounded up (so we
        never spin), but at most SIGNAL_SLICE; the caller polls again until expired()."""
        return math.ceil(self.slice(SIGNAL_SLICE) * 1000)

    def sleep(self, seconds: float, wake: int = -1) -> bool:
        """Sleep ``seconds`` or until the deadline (or until the descriptor ``wake`` is
        readable); False if the deadline had already passed."""
        left = self.remaining()
        if left is not None:
            if left <= 0:
                return False
            seconds = min(seconds, left)
        if wake < 0:
            time.sleep(seconds)
        else:
            poller = select.poll()
            poller.register(wake, select.POLLIN)
            poller.poll(math.ceil(seconds * 1000))
        return True

    def describe(self) -> str:
        """Human wording of the timeout for error messages ("within 1.5 s")."""
        if self.timeout is None:
            return "without a timeout"
        if self.timeout == 0:
            return "without waiting (timeout=0)"
        return f"within {self.timeout:g} s"


class Backoff:
    """Sleeps for waits that have no kernel wake-up (a FIFO without a reader, a lock)."""

    __slots__ = ("delay", "maximum")

    def __init__(self, first: float = 0.0005, maximum: float = 0.05) -> None:
        self.delay = first
        self.maximum = maximum

    def wait(self, deadline: Deadline, wake: int = -1) -> bool:
        """Sleep one step (cut short when the descriptor ``wake`` is readable); False once
        the deadline has passed (the caller then times out)."""
        if not deadline.sleep(self.delay, wake):
            return False
        self.delay = min(self.delay * 2, self.maximum)
        return True
