"""Pipe and Connection: ``multiprocessing.Pipe`` whose two ends two unrelated processes open.

Kernel objects of ``Pipe("NAME")``: the channel ``shm://NAME.a`` carries what end "a"
receives and ``shm://NAME.b`` what "b" receives (only ``NAME.a`` with ``duplex=False``);
``sem://NAME.a`` and ``sem://NAME.b`` are locks each end holds while it is open, so an
end belongs to one process at a time and its peer can tell when it has gone.
"""

from __future__ import annotations

import errno
import time
from collections import deque
from multiprocessing import BufferTooShort
from types import TracebackType
from typing import Any

import osipc
from osipc_mp._common import check_name, check_transport, dumps, loads

ENDS = ("a", "b")
PEER_CHECK = 0.2  # seconds between looks at whether a silent peer is still alive
CLOSE_WAIT = 1.0  # at most this long for room for the end-of-stream marker in close()


class Pipe:
    """The name of a pipe whose ends unrelated processes open: ``Pipe("chat").end("a")``
    in one, ``Pipe("chat").end("b")`` in the other, in any order.

    ``duplex=True``: both ends send and receive. ``duplex=False``: like the stdlib's
    ``r, w = Pipe(False)``, "a" only receives and "b" only sends. ``transport`` and the
    other keyword arguments are as for :class:`~osipc_mp.Queue` (``capacity=`` bounds a
    message on shm, ``msgsize=`` on mq). ``unlink()`` removes the pipe.
    """

    def __init__(
        self, name: str, duplex: bool = True, *, transport: str = "shm", **options: Any
    ) -> None:
        self.name = check_name(name, "Pipe")
        self.duplex = bool(duplex)
        self.transport = check_transport(transport)
        self.options = options

    def channel(self, end: str) -> str:
        """The URL of the channel end ``end`` receives from."""
        return f"{self.transport}://{self.name}.{end}"

    def end(self, which: str) -> Connection:
        """Open end "a" or "b" as a :class:`Connection`.

        Raises:
            osipc.AlreadyExists: another process (or handle) has this end open.
            osipc.InvalidArgument: ``which`` is not "a" or "b".
        """
        if which not in ENDS:
            raise osipc.InvalidArgument(f'a pipe has ends "a" and "b", not {which!r}')
        return Connection(self, which)

    def unlink(self) -> None:
        """Remove both channels and both end locks; what was in flight is lost."""
        for end in ENDS:
            osipc.unlink(self.channel(end), missing_ok=True)
            osipc.unlink(f"sem://{self.name}.{end}", missing_ok=True)

    def __repr__(self) -> str:
        return f"<osipc_mp.Pipe {self.name!r} duplex={self.duplex} transport={self.transport}>"


class Connection:
    """One end of a :class:`Pipe`, with the API of ``multiprocessing.connection.Connection``.

    ``send(obj)`` pickles (``recv()`` unpickles, **running code chosen by the sender**);
    ``send_bytes``/``recv_bytes``/``recv_bytes_into`` move bytes as they are. Messages
    wait in the channel, so a sender may finish and exit before its peer starts.

    End of stream: ``close()`` sends an end-of-stream marker, and the peer's ``recv``
    raises EOFError (``osipc.EndOfStream``) after everything sent before it. A peer this
    end has seen alive that goes away without closing (killed) is noticed within
    ``PEER_CHECK`` seconds: EOFError too, once its messages are read. ``poll()`` is True
    when ``recv`` would not block, EOF included. Differences from the stdlib: using a
    closed connection raises ``osipc.Closed`` (a ValueError, not OSError); the wrong
    direction raises ``osipc.Unsupported`` (an OSError); a pipe outlives its processes,
    so a reopened end first reads what is left in its channel, end-of-stream included.
    """

    def __init__(self, pipe: Pipe, which: str) -> None:
        self._closed = True  # until built: close() then has nothing to do
        self.pipe = pipe
        self.end = which
        self.peer = "b" if which == "a" else "a"
        self.readable = pipe.duplex or which == "a"
        self.writable = pipe.duplex or which == "b"
        keep = {k: v for k, v in pipe.options.items() if k in ("mode", "trust_existing")}
        self._tx: osipc.Sender[bytes] | None = None
        self._rx: osipc.Receiver[bytes] | None = None
        self._peer_lock: osipc.Lock | None = None
        self._mine = osipc.Lock(f"sem://{pipe.name}.{which}", **keep)
        try:
            self._claim()
            if self.readable:
                self._rx = osipc.receiver(pipe.channel(which), **pipe.options)
                self._peer_lock = osipc.Lock(f"sem://{pipe.name}.{self.peer}", **keep)
            if self.writable:
                self._tx = osipc.sender(pipe.channel(self.peer), **pipe.options)
        except BaseException:
            self._release()
            raise
        self._pending: deque[bytes | None] = deque()  # None: end of stream
        self._peer_pid: int | None = None  # the peer as last seen alive
        self._peer_ended = False  # its end-of-stream arrived: it closed
        self._checked = 0.0
        self._closed = False
        self._peer_gone()  # notice a peer that is already here

    def _claim(self) -> None:
        try:
            self._mine.acquire(timeout=0)
        except osipc.Timeout:
            holder = self._mine.holder
            where = f"process {holder}" if holder else "another process"
            raise osipc.AlreadyExists(
                f"end {self.end!r} of pipe {self.pipe.name!r} is open in {where}; an end "
                "belongs to one process at a time (close it there first)",
                errno=errno.EBUSY,
            ) from None

    # -- sending -------------------------------------------------------------------------

    def _sender(self) -> osipc.Sender[bytes]:
        if self._closed:
            raise osipc.Closed(f"end {self.end!r} of pipe {self.pipe.name!r} is closed")
        if self._tx is None:
            raise osipc.Unsupported(
                f"end {self.end!r} of the one-way pipe {self.pipe.name!r} only receives"
            )
        return self._tx

    def send(self, obj: Any) -> None:
        """Send a picklable object, waiting for room in the channel.

        Raises:
            osipc.EncodeError: it cannot be pickled; nothing was sent.
            osipc.MessageTooLarge: the pickle is larger than the channel's largest message.
        """
        self._sender().send(dumps(obj))

    def send_bytes(self, buf: Any, offset: int = 0, size: int | None = None) -> None:
        """Send ``size`` bytes of a bytes-like object from ``offset``, as one message."""
        tx = self._sender()
        view = memoryview(buf)
        if view.itemsize > 1:
            view = view.cast("B")
        total = view.nbytes
        if offset < 0:
            raise ValueError("offset is negative")
        if total < offset:
            raise ValueError("buffer length < offset")
        if size is None:
            size = total - offset
        elif size < 0:
            raise ValueError("size is negative")
        elif offset + size > total:
            raise ValueError("buffer length < offset + size")
        if type(buf) is bytes and offset == 0 and size == total:
            tx.send(buf)
        else:
            tx.send(bytes(view[offset : offset + size]))

    # -- receiving -----------------------------------------------------------------------

    def _receiver(self) -> osipc.Receiver[bytes]:
        if self._closed:
            raise osipc.Closed(f"end {self.end!r} of pipe {self.pipe.name!r} is closed")
        if self._rx is None:
            raise osipc.Unsupported(
                f"end {self.end!r} of the one-way pipe {self.pipe.name!r} only sends"
            )
        return self._rx

    def _peer_gone(self) -> bool:
        """True once a peer seen alive has gone (at most one look per PEER_CHECK)."""
        now = time.monotonic()
        if self._peer_lock is None or now - self._checked < PEER_CHECK:
            return False
        self._checked = now
        holder = self._peer_lock.holder
        if holder is not None:
            self._peer_pid = holder
            return False
        return self._peer_pid is not None

    def _fill(self, timeout: float | None) -> bool:
        """Make sure one item (a message, or None for end-of-stream) waits in
        ``_pending``; False if none came within ``timeout`` (None: no limit)."""
        rx = self._receiver()
        if self._pending:
            return True
        end = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            left = None if end is None else max(0.0, end - time.monotonic())
            try:
                frame: bytes | None = rx.recv(
                    timeout=PEER_CHECK if left is None else min(left, PEER_CHECK)
                )
            except osipc.EndOfStream:
                frame = None
                self._peer_ended, self._peer_pid = True, None
            except osipc.Timeout:
                if not self._peer_gone():
                    if end is not None and time.monotonic() >= end:
                        return False
                    continue
                try:  # it has gone: everything it sent is in the channel by now
                    frame = rx.recv(timeout=0)
                except (osipc.Timeout, osipc.EndOfStream):
                    frame, self._peer_pid = None, None
            self._pending.append(frame)
            return True

    def _next(self) -> bytes:
        self._fill(None)
        frame = self._pending.popleft()
        if frame is None:
            raise osipc.EndOfStream(
                f"pipe {self.pipe.name!r}: end {self.peer!r} closed (or its process ended)"
            )
        return frame

    def recv(self) -> Any:
        """The next object, waiting as long as it takes.

        Raises:
            EOFError: (``osipc.EndOfStream``) the other end closed, or its process ended,
                and everything it sent has been received.
            osipc.DecodeError: the message is not a pickle this process can load.
        """
        return loads(self._next(), self.pipe.channel(self.end))

    def recv_bytes(self, maxlength: int | None = None) -> bytes:
        """The next message's bytes.

        Raises:
            osipc.MessageTooLarge: (an OSError, as the stdlib's) it is longer than
                ``maxlength``; it stays for the next call.
            EOFError: as ``recv``.
        """
        if maxlength is not None and maxlength < 0:
            raise ValueError("negative maxlength")
        frame = self._next()
        if maxlength is not None and len(frame) > maxlength:
            self._pending.appendleft(frame)
            raise osipc.MessageTooLarge(
                f"bad message length: the next message has {len(frame)} bytes, more than "
                f"maxlength={maxlength}",
                size=len(frame),
                limit=maxlength,
            )
        return frame

    def recv_bytes_into(self, buf: Any, offset: int = 0) -> int:
        """Write the next message into ``buf`` at byte ``offset``; return its length.

        Raises:
            multiprocessing.BufferTooShort: it does not fit; the exception holds it
                (``exc.args[0]``) and it is consumed, as in the stdlib.
            EOFError: as ``recv``.
        """
        view = memoryview(buf)
        if view.readonly:
            raise TypeError("recv_bytes_into needs a writable buffer")
        view = view.cast("B")
        if offset < 0:
            raise ValueError("negative offset")
        if offset > view.nbytes:
            raise ValueError("offset too large")
        frame = self._next()
        if view.nbytes - offset < len(frame):
            raise BufferTooShort(frame)
        view[offset : offset + len(frame)] = frame
        return len(frame)

    def poll(self, timeout: float | None = 0.0) -> bool:
        """True if ``recv`` has something to return (a message or EOF) within ``timeout``
        seconds (0: look once; None: wait as long as it takes)."""
        return self._fill(timeout)

    # -- lifetime ------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Tell the peer this end is done (its ``recv`` raises EOFError after what was
        sent) and close the handles. Idempotent; the pipe itself stays (``unlink()``)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._tx is not None and not self._peer_ended:  # an ended peer reads no more
                try:
                    self._tx.end(timeout=CLOSE_WAIT)
                except osipc.Timeout:
                    pass  # its channel is full: it sees this end's lock go instead
        finally:
            self._release()

    def _release(self) -> None:
        for handle in (self._tx, self._rx, self._peer_lock, self._mine):
            if handle is not None:
                handle.close()  # closing the lock's handle releases the end

    def fileno(self) -> int:
        """Unsupported: wait with ``poll(timeout)`` (the shm ring has no descriptor)."""
        raise osipc.Unsupported(f"pipe {self.pipe.name!r}: use poll(timeout) to wait")

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __reduce__(self) -> Any:
        raise TypeError(
            "a pipe end belongs to one process: pass the pipe's name and open the end there"
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<osipc_mp.Connection {self.pipe.name!r} end {self.end!r} {state}>"
