"""mem://NAME — an in-process queue, for tests and for threads of one process.

Features: queue semantics (each message to one receiver), end-of-stream, optional bound.
URL:      ``mem://NAME[?capacity=N]``
Options:  ``capacity`` (most messages held; 0, the default, is unbounded: ``send`` never
          waits). The common options are accepted so a URL can switch scheme unchanged.
Limits:   lives as long as the process; invisible to other processes, ``ls`` and ``gc``;
          not pollable (``fileno()`` raises Unsupported).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from osipc._abc import Capabilities, Frame, ObjectInfo, Receiver, Sender, Transport
from osipc._address import Address, CommonOptions, option, parse_int
from osipc._codecs import Buffer, Codec
from osipc._deadline import SIGNAL_SLICE, Deadline
from osipc._errors import AlreadyExists, NotFound, Timeout


@dataclass(frozen=True)
class MemOptions(CommonOptions):
    capacity: int = option(0, parse_int(0), "most messages held; 0 = unbounded")


class _Queue:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.items: deque[Frame | None] = deque()
        self.cond = threading.Condition(threading.Lock())


_queues: dict[str, _Queue] = {}
_queues_lock = threading.Lock()

CAPABILITIES = Capabilities(timeouts="native", persistent=False)


def _open(address: Address, options: MemOptions) -> _Queue:
    with _queues_lock:
        queue = _queues.get(address.name)
        if queue is None:
            if not options.create:
                raise NotFound(f"{address}: no such in-process queue (create=False)")
            queue = _queues[address.name] = _Queue(options.capacity)
        elif options.exclusive:
            raise AlreadyExists(f"{address}: the in-process queue exists (exclusive=True)")
        return queue


class MemSender(Sender[Any]):
    def __init__(self, address: Address, codec: Codec[Any], queue: _Queue) -> None:
        super().__init__(address, CAPABILITIES, codec)
        self._queue = queue

    def _send(self, frame: Buffer, timeout: float | None) -> None:
        self._put(bytes(frame), Deadline(timeout))

    def _send_end(self, deadline: Deadline) -> None:
        self._put(None, deadline)

    def _put(self, item: Frame | None, deadline: Deadline) -> None:
        queue = self._queue
        with queue.cond:
            if queue.capacity and len(queue.items) >= queue.capacity:
                with self._waiting():
                    while len(queue.items) >= queue.capacity:
                        left = deadline.remaining()
                        if left == 0.0:
                            raise Timeout(
                                f"{self.url}: queue full ({queue.capacity} messages) "
                                f"{deadline.describe()}"
                            )
                        queue.cond.wait(SIGNAL_SLICE if left is None else min(left, SIGNAL_SLICE))
                        self._check_open()
            queue.items.append(item)
            queue.cond.notify()

    def _wake_waiters(self) -> None:
        with self._queue.cond:
            self._queue.cond.notify_all()

    def _close(self) -> None:
        pass


class MemReceiver(Receiver[Any]):
    def __init__(self, address: Address, codec: Codec[Any], queue: _Queue) -> None:
        super().__init__(address, CAPABILITIES, codec)
        self._queue = queue

    def _recv(self, timeout: float | None) -> Frame | None:
        queue = self._queue
        with queue.cond:
            if not queue.items:
                deadline = Deadline(timeout)
                with self._waiting():
                    while not queue.items:
                        left = deadline.remaining()
                        if left == 0.0:
                            raise Timeout(f"{self.url}: no message {deadline.describe()}")
                        queue.cond.wait(SIGNAL_SLICE if left is None else min(left, SIGNAL_SLICE))
                        self._check_open()
            item = queue.items.popleft()
            queue.cond.notify()
            return item

    def _wake_waiters(self) -> None:
        with self._queue.cond:
            self._queue.cond.notify_all()


class MemTransport(Transport):
    scheme = "mem"
    summary = "in-process queue (threads, tests)"
    options = MemOptions
    capabilities = CAPABILITIES

    def open_sender(self, address: Address, options: Any, codec: Codec[Any]) -> Sender[Any]:
        return MemSender(address, codec, _open(address, options))

    def open_receiver(self, address: Address, options: Any, codec: Codec[Any]) -> Receiver[Any]:
        return MemReceiver(address, codec, _open(address, options))

    def unlink(self, address: Address) -> None:
        with _queues_lock:
            if _queues.pop(address.name, None) is None:
                raise NotFound(f"{address}: no such in-process queue")

    def info(self, address: Address) -> ObjectInfo:
        with _queues_lock:
            queue = _queues.get(address.name)
        if queue is None:
            raise NotFound(f"{address}: no such in-process queue")
        return ObjectInfo(
            url=address.base_url,
            kind="mem",
            depth=len(queue.items),
            capacity=queue.capacity or None,
        )
