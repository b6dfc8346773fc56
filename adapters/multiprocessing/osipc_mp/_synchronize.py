"""Lock and RLock by name, with multiprocessing's ``acquire(block, timeout)``."""

from __future__ import annotations

import os
import threading
from types import TracebackType
from typing import Any

import osipc
from osipc_mp._common import check_name, finalizer, quietly


def lock_timeout(block: bool, timeout: float | None) -> float | None:
    """multiprocessing's rule: ``block=False`` never waits; a negative timeout is 0."""
    if not block:
        return 0.0
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be None or a number of seconds, got {timeout!r}")
    return max(0.0, float(timeout))


class Lock:
    """``multiprocessing.Lock`` by name: ``osipc.Lock("sem://NAME")``.

    Every process that opens ``Lock("NAME")`` gets the same lock, whoever started first.
    A process that dies holding it (even by SIGKILL) releases it: the kernel drops the
    ``flock`` behind it, and a waiter takes it within about 50 ms. Threads exclude each
    other too. ``close()`` (also at exit, or when the object is garbage collected)
    releases this process's handle; ``unlink()`` removes the name.

    Unlike ``multiprocessing.Lock``, only the process (and handle) that took it can
    release it: ``release()`` elsewhere raises ValueError. A lock that one process
    takes and another gives back is a semaphore: use ``osipc.Semaphore("sem://NAME")``.
    """

    def __init__(self, name: str) -> None:
        self.name = check_name(name, type(self).__name__)
        self.url = f"sem://{name}"
        self._closed = False
        self._open()

    def _open(self) -> None:
        old = getattr(self, "_finalizer", None)
        if old is not None:  # a forked child: the parent's handle, closed there by osipc
            old()
        self._lock = osipc.Lock(self.url)
        self._pid = os.getpid()
        self._finalizer = finalizer(self, quietly, self._lock.close)

    def _handle(self) -> osipc.Lock:
        if self._pid != os.getpid() and not self._closed:
            self._open()  # a forked child: osipc closed the parent's handle there
        return self._lock

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        """Take the lock; False if ``block=False`` or ``timeout`` passed while another
        process (or thread) held it.

        Raises:
            osipc.Closed: this object was closed.
        """
        wait = lock_timeout(block, timeout)
        try:
            self._handle().acquire(timeout=wait)
        except osipc.Timeout:
            return False
        return True

    def release(self) -> None:
        """Release it.

        Raises:
            osipc.InvalidArgument: (a ValueError, as in multiprocessing) this object does
                not hold the lock.
        """
        self._handle().release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def close(self) -> None:
        """Close this handle (releasing the lock if it holds it); never removes the name."""
        self._closed = True
        self._finalizer()

    def unlink(self) -> None:
        """Remove ``sem://NAME``; open handles keep working, new ones get a new lock."""
        osipc.unlink(self.url, missing_ok=True)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.name,))  # the other process opens it by name

    def __repr__(self) -> str:
        return f"<osipc_mp.{type(self).__name__} {self.name!r}>"


class RLock(Lock):
    """``multiprocessing.RLock`` by name: a :class:`Lock` its owning thread may take again;
    it is released when ``release()`` has been called as often as ``acquire()``.

    ``Value`` and ``Array`` use one for ``get_lock()``, as the stdlib does, so
    ``with v.get_lock(): v.value += 1`` works although ``.value`` takes the lock itself.
    """

    def _open(self) -> None:
        super()._open()
        self._owner: int | None = None
        self._count = 0

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        if self._pid == os.getpid() and self._owner == threading.get_ident():
            self._count += 1
            return True
        if not super().acquire(block, timeout):
            return False
        self._owner = threading.get_ident()
        self._count = 1
        return True

    def release(self) -> None:
        """Release one level.

        Raises:
            AssertionError: the calling thread does not own it (as multiprocessing).
        """
        if self._pid != os.getpid() or self._owner != threading.get_ident():
            raise AssertionError("attempt to release recursive lock not owned by thread")
        self._count -= 1
        if self._count == 0:
            self._owner = None
            super().release()
