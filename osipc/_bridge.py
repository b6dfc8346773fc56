"""``osipc bridge SRC DST``: forward every message of a receiver URL to a sender URL.

Nothing is lost while DST is briefly away: the bridge holds at most ``buffer`` messages
it has taken from SRC, retries them in order until DST takes them, and reads no more
from SRC meanwhile (backpressure: SRC's own queue fills, then its senders wait).
End-of-stream on SRC is forwarded to DST and ends the bridge. Counters go to stderr at
exit and on SIGUSR1; SIGTERM and SIGINT stop it after a last attempt (``drain`` seconds)
to deliver what it holds, and anything still held then is reported as lost.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from types import FrameType
from typing import Any, TextIO

from osipc._api import receiver, sender
from osipc._errors import Broken, EndOfStream, Timeout

SLICE = 0.2  # seconds per wait, so signals and stop requests are seen promptly


@dataclass
class Counters:
    received: int = 0
    sent: int = 0
    retries: int = 0
    lost: int = 0
    ended: bool = False

    def line(self, started: float) -> str:
        took = time.monotonic() - started
        return (
            f"osipc bridge: received {self.received}, sent {self.sent}, held "
            f"{self.received - self.sent - self.lost}, retries {self.retries}, lost "
            f"{self.lost}{', end of stream forwarded' if self.ended else ''} in {took:.1f} s"
        )


def run(
    src: str, dst: str, *, buffer: int = 1000, drain: float = 5.0, out: TextIO = sys.stderr
) -> Counters:
    """Forward until end-of-stream on SRC or a stop signal; return the counters."""
    counts = Counters()
    started = time.monotonic()
    stop = threading.Event()

    def report(signum: int, frame: FrameType | None) -> None:
        print(counts.line(started), file=out, flush=True)

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum, handler in (
            (signal.SIGUSR1, report),
            (signal.SIGTERM, request_stop),
            (signal.SIGINT, request_stop),
        ):
            previous[signum] = signal.signal(signum, handler)
    try:
        with receiver(src) as rx, sender(dst) as tx:
            held: deque[bytes] = deque()
            stop_at: float | None = None
            while True:
                if stop.is_set() and stop_at is None:
                    stop_at = time.monotonic() + drain
                if stop_at is not None and (not held or time.monotonic() >= stop_at):
                    break
                if not held and not counts.ended and stop_at is None:
                    try:
                        batch = rx.recv_many(buffer, timeout=SLICE)
                    except Timeout:
                        continue
                    except EndOfStream:
                        counts.ended = True
                    else:
                        counts.received += len(batch)
                        held.extend(batch)
                while held:
                    try:
                        tx.send(held[0], timeout=SLICE)
                    except (Timeout, Broken):  # DST away: keep it, read nothing new
                        counts.retries += 1
                        if stop.is_set():
                            break
                        continue
                    held.popleft()
                    counts.sent += 1
                if counts.ended and not held:
                    tx.end(timeout=drain)
                    break
            counts.lost = len(held)
    finally:
        for number, old in previous.items():
            signal.signal(number, old)
        print(counts.line(started), file=out, flush=True)
    return counts
