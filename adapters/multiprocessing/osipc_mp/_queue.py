"""Queue: ``multiprocessing.Queue`` by name, over an osipc channel."""

from __future__ import annotations

import os
import queue
from types import TracebackType
from typing import Any

import osipc
from osipc_mp._common import Deadline, check_name, check_transport, dumps, loads, wait_time


class Queue:
    """``multiprocessing.Queue`` by name: ``Queue("jobs")`` in any process, started in any
    order, reaches the same queue. Objects travel as pickles: **unpickling runs code
    chosen by the sender**, so share a queue only with processes you trust (the objects
    are created 0600: only your user can open them).

    ``transport="shm"`` (default): the queue is the osipc ring ``shm://NAME``; any object
    whose pickle fits the ring (``capacity=``, 1 MiB by default, minus 8 bytes) goes.
    ``transport="mq"``: the POSIX message queue ``mq://NAME``; pickles up to ``msgsize``
    (8192 bytes here), and at most fs.mqueue.msg_max (10 here) messages, so ``maxsize=0``
    there means the kernel's default depth, not unbounded. Other keyword arguments are
    osipc options of the channel (``capacity``, ``msgsize``, ``mode``, ...).

    ``maxsize`` is fixed by the process that creates the queue; others pass 0 (take it
    as it is) or the same number. On ``mq`` it is the queue's ``maxmsg``, enforced by the
    kernel. On ``shm`` the ring is sized in bytes, so a semaphore ``sem://NAME.slots``
    counts free places (and ``sem://NAME.maxsize`` remembers the bound): as with
    ``multiprocessing.Queue``, a process SIGKILLed between taking a place and sending, or
    between receiving and giving the place back, loses that place for good.

    ``put``/``get`` follow ``queue.Queue``: ``block=False`` ignores ``timeout``, a negative
    timeout is a ValueError, and ``queue.Full`` / ``queue.Empty`` report a wait that ran
    out. There is no feeder thread: ``put`` returns once the object is in the queue, and
    an object that cannot be pickled is an ``osipc.EncodeError`` from ``put`` itself.
    ``qsize()``, ``empty()`` and ``full()`` are snapshots that another process may change
    the next instant. ``close()`` never removes the queue; ``unlink()`` does.
    """

    def __init__(
        self, name: str, maxsize: int = 0, *, transport: str = "shm", **options: Any
    ) -> None:
        self.name = check_name(name, "Queue")
        self.transport = check_transport(transport)
        if isinstance(maxsize, bool) or not isinstance(maxsize, int):
            raise TypeError(f"maxsize must be an int, got {maxsize!r}")
        if transport == "mq" and maxsize > 0 and "maxmsg" in options:
            raise osipc.InvalidArgument("give the depth once: maxsize= or maxmsg=, not both")
        self.url = f"{transport}://{name}"
        self._asked = max(0, maxsize)  # the stdlib takes maxsize <= 0 as "no bound"
        self._options = options
        self._closed = False
        self._open()

    def _open(self) -> None:
        """Open (creating what is missing) the channel and, on shm, the slot counter."""
        self._tx: osipc.Sender[bytes] | None = None
        self._rx: osipc.Receiver[bytes] | None = None
        self._slots: osipc.Semaphore | None = None
        self._pid = os.getpid()
        channel = dict(self._options)
        if self.transport == "mq" and self._asked:
            channel["maxmsg"] = self._asked
        try:
            try:
                self._tx = osipc.sender(self.url, **channel)
            except osipc.InvalidURL:
                raise  # a depth the kernel refuses, say
            except osipc.InvalidArgument:
                if "maxmsg" in self._options or "maxmsg" not in channel:
                    raise
                # it exists with another depth: _bound says so in this class's words
                del channel["maxmsg"]
                self._tx = osipc.sender(self.url, **channel)
            self._rx = osipc.receiver(self.url, **channel)
            self._maxsize = self._bound()
        except BaseException:
            self._release()
            raise

    def _bound(self) -> int:
        """The queue's maxsize, as its creator set it (0: no bound)."""
        if self.transport == "mq":
            found = osipc.info(self.url).capacity or 0
        else:
            keep = {k: v for k, v in self._options.items() if k in ("mode", "trust_existing")}
            meta = osipc.Semaphore(f"sem://{self.name}.maxsize", value=self._asked, **keep)
            try:
                found = meta.value  # created with the bound as its value; never taken
            finally:
                meta.close()
            if found:
                self._slots = osipc.Semaphore(f"sem://{self.name}.slots", value=found, **keep)
        if self._asked and found != self._asked:
            raise osipc.InvalidArgument(
                f"queue {self.name!r} exists with maxsize={found}, not {self._asked}; pass "
                "maxsize=0 to use it as it is, or unlink it to start again"
            )
        return found

    def _handles(self) -> tuple[osipc.Sender[bytes], osipc.Receiver[bytes]]:
        if self._closed:
            raise osipc.Closed(f"Queue {self.name!r} is closed")
        if self._pid != os.getpid():
            self._open()  # a forked child: osipc closed the parent's handles there
        assert self._tx is not None
        assert self._rx is not None
        return self._tx, self._rx

    @property
    def maxsize(self) -> int:
        """The bound (0: none; on mq, the queue's depth)."""
        return self._maxsize

    def put(self, obj: Any, block: bool = True, timeout: float | None = None) -> None:
        """Put ``obj`` into the queue, waiting for room as ``queue.Queue.put`` does.

        Raises:
            queue.Full: no room in time (also when the ring's bytes are full).
            osipc.EncodeError: ``obj`` cannot be pickled; nothing was put.
            osipc.MessageTooLarge: its pickle exceeds the channel's largest message.
            osipc.Closed: this queue was closed.
        """
        wait = wait_time(block, timeout)
        tx, _ = self._handles()
        frame = dumps(obj)
        deadline = Deadline(wait)
        slots = self._slots
        if slots is not None:
            try:
                slots.acquire(timeout=wait)
            except osipc.Timeout:
                raise queue.Full from None
        try:
            tx.send(frame, timeout=deadline.remaining())
        except BaseException as exc:
            if slots is not None:
                slots.release()
            if isinstance(exc, osipc.Timeout):
                raise queue.Full from None
            raise

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return the next object, waiting as ``queue.Queue.get`` does.

        Raises:
            queue.Empty: nothing arrived in time.
            osipc.DecodeError: the message is not a pickle this process can load.
            osipc.EndOfStream: (an EOFError) an osipc sender called ``end()``.
            osipc.Closed: this queue was closed.
        """
        wait = wait_time(block, timeout)
        _, rx = self._handles()
        try:
            frame = rx.recv(timeout=wait)
        except osipc.Timeout:
            raise queue.Empty from None
        if self._slots is not None:
            self._slots.release()
        return loads(frame, self.url)

    def put_nowait(self, obj: Any) -> None:
        self.put(obj, False)

    def get_nowait(self) -> Any:
        return self.get(False)

    def qsize(self) -> int:
        """Objects in the queue now (from ``osipc.info``: it costs a few milliseconds)."""
        self._handles()
        depth = osipc.info(self.url).depth
        if depth is None:  # pragma: no cover - shm and mq always tell
            raise NotImplementedError(f"{self.url} does not tell its depth")
        return depth

    def empty(self) -> bool:
        return self.qsize() == 0

    def full(self) -> bool:
        """True when a ``put_nowait`` would find no place (never, without a bound on shm)."""
        self._handles()
        if self._slots is not None:
            return self._slots.value == 0
        return self.transport == "mq" and self.qsize() >= self._maxsize

    def close(self) -> None:
        """Close this process's handles (idempotent); the queue and its contents stay."""
        self._closed = True
        self._release()

    def _release(self) -> None:
        for handle in (self._tx, self._rx, self._slots):
            if handle is not None:
                handle.close()

    def join_thread(self) -> None:
        """Nothing to wait for: there is no feeder thread (kept for compatibility)."""

    def cancel_join_thread(self) -> None:
        """Nothing to cancel: there is no feeder thread (kept for compatibility)."""

    def unlink(self) -> None:
        """Remove the queue (and its counters); its contents are lost."""
        names = [self.url, f"sem://{self.name}.maxsize", f"sem://{self.name}.slots"]
        for url in names:
            osipc.unlink(url, missing_ok=True)

    def __enter__(self) -> Queue:
        self._handles()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __reduce__(self) -> tuple[Any, ...]:
        # passed to a multiprocessing child, it opens the queue by name there
        return (_reopen, (self.name, self.transport, self._options))

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"maxsize={self._maxsize}"
        return f"<osipc_mp.Queue {self.url} {state}>"


def _reopen(name: str, transport: str, options: dict[str, Any]) -> Queue:
    return Queue(name, transport=transport, **options)
