"""The protocol every transport implements: Sender, Receiver, and the Transport factory.

Users see :class:`Sender` and :class:`Receiver`; transport authors subclass them and fill
in a handful of ``_underscore`` methods that move *frames* (the codec's bytes) and know
nothing about codecs, argument checking, end-of-stream bookkeeping or iteration, which
live here once.

Reliability promise, for every transport: a message is delivered whole or not at all;
messages from one sender are received in the order they were sent (unless the transport
documents priorities); ``Timeout`` means nothing was transferred; end-of-stream is never
confused with data, an empty payload included.
"""

from __future__ import annotations

import functools
import os
import select
import threading
import warnings
import weakref
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Generic, Literal, TypeVar

from osipc import _codecs
from osipc._address import Address, CommonOptions, validate_name
from osipc._deadline import Deadline, check_timeout
from osipc._errors import (
    Closed,
    DecodeError,
    EndOfStream,
    InvalidArgument,
    InvalidURL,
    MessageTooLarge,
    Timeout,
    TransportError,
    Unsupported,
    os_errors,
)

if TYPE_CHECKING:
    from osipc._reqrep import Client, Server

T = TypeVar("T")
# For osipc.aio: (fd, watch it for writing rather than reading, ready() for readiness the
# fd does not show). See Handle._aio_source.
AioSource = tuple[int, bool, Callable[[], bool]]
Frame = bytes  # what transports move: the codec's output, without any framing
# What a transport's _recv returns: a frame, or END for end-of-stream.
END: None = None


@dataclass(frozen=True)
class Capabilities:
    """What a handle can do; frozen, so it can be compared and shown as-is."""

    ordered: bool = True
    """Messages from one sender arrive in the order sent (within a priority)."""
    priorities: bool = False
    """``send(..., priority=N)`` is honoured: higher priorities are received first."""
    broadcast: bool = False
    """Every receiver sees every message (else: each message goes to one receiver)."""
    selectable: bool = False
    """``fileno()`` returns an fd for select/poll/epoll/asyncio."""
    max_message_size: int | None = None
    """Largest payload in bytes, or None when only memory limits it."""
    timeouts: str = "native"
    """"native": the kernel waits with the timeout; "emulated": osipc polls or retries."""
    end_of_stream: bool = True
    """``end()`` can be sent (False for raw byte peers that have no marker)."""
    persistent: bool = False
    """Queued messages survive when every process has closed the object."""


@dataclass(frozen=True)
class ObjectInfo:
    """One kernel object as ``osipc.info`` / ``osipc.ls`` see it."""

    url: str
    kind: str
    exists: bool = True
    path: str | None = None
    owner: int | None = None
    mode: int | None = None
    depth: int | None = None
    """Messages queued now (None: the kernel cannot tell without disturbing it)."""
    capacity: int | None = None
    """Most messages it can hold (None: limited by bytes, not messages)."""
    max_message_size: int | None = None
    size: int | None = None
    """Bytes of kernel memory it holds or may hold."""
    capacity_bytes: int | None = None
    """Bytes of messages it can hold (rings, queues sized in bytes)."""
    used_bytes: int | None = None
    """Bytes of messages queued now."""
    value: int | None = None
    """A semaphore's value."""
    holder: int | None = None
    """The pid holding a lock, if one does."""
    state: str = "foreign"
    """live | stale (creator gone, nobody attached) | unknown (creator gone; processes that
    may hold it could not be inspected) | gone (record, no object) | replaced (record of an
    object that is gone; another now has its name) | foreign (no record)."""
    creator_pid: int | None = None
    created: float | None = None
    codec: str | None = None
    attached: tuple[int, ...] = ()
    identity: tuple[int, int] | None = field(default=None, compare=False, repr=False)
    """(st_dev, st_ino) of the object, to find the processes that hold it open."""
    instance: str | None = field(default=None, compare=False, repr=False)
    """Which object of this name it is, where ``identity`` does not say (SysV: its id)."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("identity")
        data.pop("instance")
        data["attached"] = list(self.attached)
        if self.mode is not None:
            data["mode"] = f"{self.mode:04o}"
        return data


# -- handles -----------------------------------------------------------------------------

_live_handles: weakref.WeakSet[Handle] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for handle in list(_live_handles):
        handle._forked()


os.register_at_fork(after_in_child=_after_fork_in_child)


class Handle(ABC):
    """Base of every sender and receiver: one way to close, safe in ``__del__`` and fork.

    ``close()`` always closes, twice is fine, and later calls raise :class:`Closed`.
    Closing never destroys the kernel object (``osipc.unlink`` does). A handle is not
    inherited across ``fork()``: in the child it is closed (its descriptors released)
    and using it raises :class:`Closed`; open a new one there.
    """

    _closed = True  # until __init__ has finished, so __del__ of a half-built handle is quiet
    _in_child = False  # closed by fork: release descriptors, touch nothing shared
    _waiters = 0  # threads inside a waiting call (see _waiting)
    _release_owed = False  # close() came while some waited: the last one out releases
    _wakeup: _Wakeup | None = None
    _state = threading.Lock()  # each handle gets its own in __init__; this one is for
    # close() of a handle whose __init__ failed early (it is closed: nothing to guard)

    def __init__(self, address: Address, capabilities: Capabilities) -> None:
        self._address = address
        self._capabilities = capabilities
        self._owner_pid = os.getpid()
        self._state = threading.Lock()  # guards _closed against _waiters
        self._closed = False
        self._closed_reason = "it was closed"
        _live_handles.add(self)

    @property
    def url(self) -> str:
        """The URL this handle was opened with."""
        return str(self._address)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    def close(self) -> None:
        """Release this handle's descriptors. Idempotent; never unlinks the object.

        Another thread may close a handle while a call of it waits: the waiting call then
        raises :class:`Closed` (within a few milliseconds), and the descriptors are
        released when it has left, never under it.
        """
        with self._state:
            if self._closed:
                return
            self._closed = True
            owed = self._release_owed = self._waiters > 0
        _live_handles.discard(self)
        if owed:
            self._wake_waiters()
        else:
            self._finish_close()

    def _finish_close(self) -> None:
        try:
            self._close()
        finally:
            if self._wakeup is not None:
                self._wakeup.close()

    @abstractmethod
    def _close(self) -> None:
        """Release resources. Called once, with no call of this handle waiting. Must not
        block indefinitely."""

    def _waiting(self) -> _Waiting:
        """``with self._waiting():`` around a call's waits: close() from another thread
        then wakes it (see _wake_waiters) instead of releasing what it waits on, and
        the wait, seeing ``closed``, raises Closed (``_check_open``)."""
        return _Waiting(self)

    def _enter_wait(self) -> None:
        """A call begins to wait (``_waiting()``, ``@waits``): Closed if closed."""
        with self._state:
            if self._closed:
                raise self._raise_closed()
            self._waiters += 1

    def _leave_wait(self) -> None:
        """A waiting call leaves; the last one out makes a release close() left to it."""
        with self._state:
            self._waiters -= 1
            release = self._release_owed and self._waiters == 0
            if release:
                self._release_owed = False
        if release:
            self._finish_close()

    def _check_open(self) -> None:
        """Raise Closed if the handle was closed (a waiting call checks after each wait)."""
        if self._closed:
            raise self._raise_closed()

    def _wakeup_fd(self) -> int:
        """A descriptor that becomes readable when close() wants waiting calls to stop:
        add it to a poll() set. Made on first use (an eventfd, or a pipe on 3.9)."""
        with self._state:
            if self._wakeup is None:
                self._wakeup = _Wakeup()
                if self._closed:  # close() came before there was a descriptor to set
                    self._wakeup.set()
            return self._wakeup.fileno()

    def _wake_waiters(self) -> None:
        """Called by close() when some call waits: make it return soon. Transports whose
        waits watch nothing but their own descriptors extend this (notify a condition,
        wake a futex); a wait sliced into short sleeps needs nothing more."""
        if self._wakeup is not None:
            self._wakeup.set()

    def _forked(self) -> None:
        """In a forked child: release this process's copies of the descriptors."""
        if self._closed:
            return
        self._closed = True
        self._in_child = True
        self._closed_reason = (
            f"it was opened in process {self._owner_pid} before fork(); "
            "open a new handle in the child"
        )
        try:
            self._finish_close()
        except Exception:  # nothing useful to report in a fresh child
            pass

    def _raise_closed(self) -> Closed:
        return Closed(f"{self.url}: this handle cannot be used because {self._closed_reason}")

    def __enter__(self: HandleT) -> HandleT:
        if self._closed:
            raise self._raise_closed()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if self._closed:
            return
        try:
            warnings.warn(
                f"unclosed osipc handle {self!r}; use 'with' or call close()",
                ResourceWarning,
                source=self,
                stacklevel=2,
            )
            self.close()
        except Exception:  # interpreter shutdown: modules may already be gone
            pass

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<{type(self).__name__} {self.url} {state}>"

    def fileno(self) -> int:
        """A descriptor for select/poll/epoll/asyncio.

        Raises:
            Unsupported: the transport has no pollable descriptor (``capabilities.selectable``).
            Closed: the handle is closed.
        """
        raise Unsupported(f"{self.url}: {self._address.scheme}:// handles have no pollable fd")

    def _aio_source(self, writing: bool) -> AioSource | None:
        """For osipc.aio: an fd whose readiness means the next try (a send if ``writing``,
        else a receive) may succeed, whether to watch it for writing, and a check for
        readiness the fd does not show (messages this process already holds, ZeroMQ's
        edge-triggered fd). None: there is no such fd, and osipc.aio waits on a thread."""
        return None


HandleT = TypeVar("HandleT", bound=Handle)
WaitingCall = TypeVar("WaitingCall", bound=Callable[..., Any])


def waits(method: WaitingCall) -> WaitingCall:
    """Decorate a handle method that may wait: it runs inside ``self._waiting()``."""

    @functools.wraps(method)
    def waiting(self: Handle, *args: Any) -> Any:
        # (without a _Waiting object: this runs on every call of a broadcast ring's
        # subscriber, where the object and its two calls cost a third of a microsecond)
        self._enter_wait()
        try:
            return method(self, *args)
        finally:
            self._leave_wait()

    return waiting  # type: ignore[return-value]


class _Waiting:
    """Handle._waiting's context manager (a class: cheaper than a generator)."""

    __slots__ = ("_handle",)

    def __init__(self, handle: Handle) -> None:
        self._handle = handle

    def __enter__(self) -> None:
        self._handle._enter_wait()

    def __exit__(self, *exc_info: object) -> None:
        self._handle._leave_wait()


def _event_pair(what: str) -> tuple[int, int]:
    """(read end, write end), non-blocking and close-on-exec, readable once written: one
    eventfd, or a pipe on Python 3.9. An osipc error (EMFILE...) names ``what``."""
    with os_errors(what):
        if hasattr(os, "eventfd"):
            fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            return fd, fd
        return os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)


class _Wakeup:
    """A descriptor that close() makes readable; it stays readable from then on."""

    __slots__ = ("_read", "_write")

    def __init__(self) -> None:
        self._read, self._write = _event_pair("make a wake-up descriptor")

    def fileno(self) -> int:
        return self._read

    def set(self) -> None:
        try:
            os.write(self._write, (1).to_bytes(8, "little"))
        except OSError:  # full (a pipe written before) or closed: readable either way
            pass

    def close(self) -> None:
        for fd in {self._read, self._write}:
            if fd >= 0:
                os.close(fd)
        self._read = self._write = -1


class Sender(Handle, Generic[T]):
    """Sends objects, encoded by the handle's codec, to one named kernel object."""

    def __init__(
        self, address: Address, capabilities: Capabilities, codec: _codecs.Codec[Any]
    ) -> None:
        super().__init__(address, capabilities)
        self.codec = codec
        self._encode = _fast_encoder(codec)
        self._plain = isinstance(codec, _codecs.BytesCodec)

    # -- public --------------------------------------------------------------------------

    def send(self, obj: T, *, timeout: float | None = None, priority: int = 0) -> None:
        """Send one object.

        ``timeout``: None blocks until there is room (or a receiver, for FIFOs); 0 tries
        once; > 0 waits at most that many seconds. ``priority``: where the transport has
        priorities (``capabilities.priorities``: mq://), higher is received first;
        elsewhere anything but 0 is Unsupported.

        Raises:
            EncodeError: the codec cannot encode ``obj``; nothing was sent.
            MessageTooLarge: the encoded message exceeds the object's limit (named in the
                message, with the setting that raises it); nothing was sent.
            Timeout: no room (or no receiver) within the timeout; nothing was sent.
            Broken: the object was removed or the peer vanished.
            Closed: the handle is closed.
        """
        if self._closed:
            raise self._raise_closed()
        if priority:
            raise self._no_priorities(priority)
        # bytes through the bytes codec is the hot path: skip the call
        data: Any = obj if self._plain and type(obj) is bytes else self._encode(obj)
        self._send(data, None if timeout is None else check_timeout(timeout))

    def send_many(
        self, objs: Iterable[T], *, timeout: float | None = None, priority: int = 0
    ) -> int:
        """Send every object in order, amortising per-message costs; return how many.

        All objects are encoded first, so an EncodeError means nothing was sent. The
        timeout bounds the whole batch; on Timeout (or any TransportError, such as a
        MessageTooLarge further on in the batch), ``exc.sent`` says how many went.
        """
        if self._closed:
            raise self._raise_closed()
        if priority:
            raise self._no_priorities(priority)
        frames = [self._encode(obj) for obj in _iterable(objs)]
        deadline = Deadline(timeout)
        if frames:
            self._send_batch(frames, deadline)
        return len(frames)

    def end(self, *, timeout: float | None = None) -> None:
        """Tell the receiver that this stream is over: its ``recv()`` raises EndOfStream.

        On a queue each ``end()`` ends one receiver, like a poison pill: call it once per
        receiver. The sender stays open.

        Raises:
            Unsupported: the mode has no end marker (``raw=True``, ``framing=lines``).
            Timeout, Broken, Closed: as for ``send``.
        """
        if self._closed:
            raise self._raise_closed()
        if not self._capabilities.end_of_stream:
            raise Unsupported(
                f"{self.url}: this mode has no end-of-stream marker; close the sender instead"
            )
        self._send_end(Deadline(timeout))

    def _no_priorities(self, priority: object) -> Unsupported:
        return Unsupported(
            f"{self.url}: {self._address.scheme}:// has no message priorities "
            f"(priority={priority!r}); mq:// has them"
        )

    # -- for transports ------------------------------------------------------------------

    @abstractmethod
    def _send(self, frame: _codecs.Buffer, timeout: float | None) -> None:
        """Send one frame whole, or raise (Timeout, MessageTooLarge, ...) with nothing sent."""

    def _send_batch(self, frames: list[_codecs.Buffer], deadline: Deadline) -> None:
        """Send frames in order; default one by one. A TransportError (Timeout,
        MessageTooLarge, ...) must carry ``sent``."""
        for index, frame in enumerate(frames):
            try:
                self._send(frame, deadline.remaining())
            except TransportError as exc:
                exc.sent = index
                raise

    @abstractmethod
    def _send_end(self, deadline: Deadline) -> None:
        """Send the end-of-stream marker."""


class Receiver(Handle, Generic[T]):
    """Receives objects from one named kernel object; iteration ends at end-of-stream."""

    priority: int = 0
    """The priority of the last message received (0 where the transport has none)."""

    _poll: Callable[[], Frame | None] | None = None
    """For osipc.aio's hot path: a transport's receive of the next data frame without
    waiting, in one C call where it has one (no Python frame between the coroutine and
    the kernel object). None: nothing there, or anything else (an end-of-stream record, a
    busy lock): the caller takes ``_recv``, which says which. It raises OSError or
    ValueError only where ``_recv`` would raise too. Default: none."""

    def __init__(
        self, address: Address, capabilities: Capabilities, codec: _codecs.Codec[Any]
    ) -> None:
        super().__init__(address, capabilities)
        self.codec = codec
        self._decode_fast = codec.decode if isinstance(codec, _codecs.BytesCodec) else None
        # Frames taken from the kernel but not yet delivered (recv_into's too-small buffer,
        # the rest of a batch after a DecodeError). None at the end marks end-of-stream.
        self._pending: deque[Frame | None] = deque()
        self._readiness: _Readiness | None = None

    # -- public --------------------------------------------------------------------------

    def recv(self, *, timeout: float | None = None) -> T:
        """Receive one object.

        Each end-of-stream marker raises EndOfStream exactly once; a later ``recv`` goes on
        with whatever was sent after it (a FIFO reports it on every call while no writer
        has the FIFO open).

        Raises:
            Timeout: nothing arrived within the timeout.
            EndOfStream: the sender ended the stream.
            DecodeError: the message is not valid for the codec; ``exc.data`` holds it.
            Broken, Closed: the object went away, or the handle is closed.
        """
        if self._closed or self._pending:
            frame = self._next_slow(timeout)
        else:
            got = self._recv(None if timeout is None else check_timeout(timeout))
            if got is None:
                raise EndOfStream(f"{self.url}: end of stream")
            frame = got
        if self._readiness is not None:
            self._readiness.update(self._buffered())
        if self._decode_fast is not None:
            return frame  # type: ignore[return-value]
        return _codecs.decode(self.codec, frame, self.url)  # type: ignore[no-any-return]

    def recv_many(self, max_count: int, *, timeout: float | None = None) -> list[T]:
        """Wait up to ``timeout`` for at least one object, then return up to ``max_count``
        that are already available, without waiting further.

        A batch stops short at end-of-stream; the next call raises EndOfStream. Raises
        as ``recv``; a DecodeError leaves the messages after the bad one for the next call.
        """
        if isinstance(max_count, bool) or not isinstance(max_count, int) or max_count < 1:
            raise InvalidArgument(f"max_count must be an integer >= 1, got {max_count!r}")
        if self._closed:
            raise self._raise_closed()
        frames: list[Frame | None] = []
        while len(frames) < max_count:
            try:
                frames.append(self._pending.popleft())
            except IndexError:
                break
        if not frames:
            frames = self._recv_batch(max_count, Deadline(timeout))
        if frames[0] is None:
            self._pending.extendleft(reversed(frames[1:]))
            raise EndOfStream(f"{self.url}: end of stream")
        out: list[T] = []
        for index, frame in enumerate(frames):
            if frame is None:  # end-of-stream after good messages: report it next call
                self._pending.extendleft(reversed(frames[index:]))
                break
            if self._decode_fast is not None:
                out.append(frame)  # type: ignore[arg-type]
                continue
            try:
                out.append(_codecs.decode(self.codec, frame, self.url))
            except DecodeError:
                self._pending.extendleft(reversed(frames[index + 1 :]))
                if not out:
                    raise
                # deliver the good prefix now; the bad message is reported by the next call
                self._pending.appendleft(frame)
                break
        if self._readiness is not None:
            self._readiness.update(self._buffered())
        return out

    def recv_into(self, buffer: Any, *, timeout: float | None = None) -> int:
        """Receive one message's raw payload (bypassing the codec) into ``buffer``.

        ``buffer`` is any writable bytes-like object (bytearray, numpy array, mmap).
        Returns the number of bytes written.

        Raises:
            MessageTooLarge: the message does not fit; the next call gets it (a receiver
                closed first gives it back to the object where the mechanism allows).
            Timeout, EndOfStream, Closed: as ``recv``.
        """
        try:
            view = memoryview(buffer).cast("B")
        except TypeError as exc:
            raise InvalidArgument(f"recv_into needs a writable buffer: {exc}") from None
        if view.readonly:
            raise InvalidArgument("recv_into needs a writable buffer, got a read-only one")
        frame = self._next_slow(timeout)
        size = len(frame)
        if size > len(view):
            self._pending.appendleft(frame)
            raise MessageTooLarge(
                f"{self.url}: the next message has {size} bytes and does not fit the "
                f"{len(view)}-byte buffer; it is kept for the next recv (and given back "
                "to the object if this handle is closed first)",
                size=size,
                limit=len(view),
            )
        view[:size] = frame
        if self._readiness is not None:
            self._readiness.update(self._buffered())
        return size

    def __iter__(self) -> Iterator[T]:
        """Yield objects until end-of-stream (which ends the loop without an error)."""
        while True:
            try:
                yield self.recv()
            except EndOfStream:
                return

    def fileno(self) -> int:
        """A descriptor that is readable while a ``recv(timeout=0)`` may succeed.

        It accounts for messages osipc has already read from the kernel and holds in the
        handle, so a select/poll/asyncio loop never sleeps on a buffered message.
        Spurious readiness is possible (e.g. half a large message): recv then times out.
        """
        if self._closed:
            raise self._raise_closed()
        if self._readiness is None:
            raw = self._raw_fileno()
            self._readiness = _Readiness(raw)
            self._readiness.update(self._buffered())
        return self._readiness.fileno()

    # -- for transports ------------------------------------------------------------------

    @abstractmethod
    def _recv(self, timeout: float | None) -> Frame | None:
        """One frame, or None at end-of-stream. Raise Timeout when nothing arrives."""

    def _recv_spun(self) -> Frame | Literal[False] | None:
        """For osipc.aio, when a receive without waiting found nothing and a worker thread
        would wait next: a frame (None: end-of-stream) if one comes within a brief poll on
        the calling thread, else False. Default: no poll (only the rings have spin=)."""
        return False

    def _recv_batch(self, max_count: int, deadline: Deadline) -> list[Frame | None]:
        """At least one item (None for end-of-stream). Default: one ``_recv``, then polls
        of what is already there, stopping at end-of-stream."""
        first = self._recv(deadline.remaining())
        frames: list[Frame | None] = [first]
        while first is not None and len(frames) < max_count:
            try:
                frame = self._recv(0.0)
            except Timeout:
                break
            frames.append(frame)
            if frame is None:
                break
        return frames

    def _raw_fileno(self) -> int:
        raise Unsupported(f"{self.url}: {self._address.scheme}:// receivers have no pollable fd")

    def _aio_source(self, writing: bool) -> AioSource | None:
        if writing or not self._capabilities.selectable:
            return None
        return self._raw_fileno(), False, self._buffered

    def _buffered(self) -> bool:
        """True if frames are held in this process (overridden by buffering transports)."""
        return bool(self._pending)

    def _close(self) -> None:
        if self._readiness is not None:
            self._readiness.close()
            self._readiness = None

    # -- internals -----------------------------------------------------------------------

    def _next_slow(self, timeout: float | None) -> Frame:
        if self._closed:
            raise self._raise_closed()
        frame: Frame | None
        try:
            frame = self._pending.popleft()
        except IndexError:  # empty (perhaps just emptied by another thread)
            frame = self._recv(None if timeout is None else check_timeout(timeout))
        if frame is None:
            raise EndOfStream(f"{self.url}: end of stream")
        return frame


def _iterable(objs: Iterable[T]) -> Iterable[T]:
    """``objs`` if it can be iterated (a batch), else InvalidArgument: a lone bytes or
    str is refused too, as it would be sent one byte or character at a time."""
    if isinstance(objs, (bytes, bytearray, memoryview, str)) or not hasattr(objs, "__iter__"):
        raise InvalidArgument(
            f"send_many takes an iterable of messages, got {type(objs).__name__}; "
            "use send() for one message"
        )
    return objs


def _fast_encoder(codec: _codecs.Codec[Any]) -> Any:
    if isinstance(codec, _codecs.BytesCodec):
        return codec.encode

    def encode(obj: object) -> _codecs.Buffer:
        return _codecs.encode(codec, obj)

    return encode


class _Readiness:
    """An epoll fd that is readable when the transport's fd is, or when frames are held
    in the process (signalled through an eventfd, or a pipe before Python 3.10)."""

    def __init__(self, raw_fd: int) -> None:
        what = "make the descriptor fileno() returns"
        with os_errors(what):  # (EMFILE: mapped)
            self._epoll = select.epoll()
        self._set = False
        self._lock = threading.Lock()
        try:
            self._read_fd, self._write_fd = _event_pair(what)
            with os_errors(what):
                self._epoll.register(raw_fd, select.EPOLLIN)
                self._epoll.register(self._read_fd, select.EPOLLIN)
        except BaseException:
            self.close()
            raise

    def fileno(self) -> int:
        return self._epoll.fileno()

    def update(self, buffered: bool) -> None:
        if buffered == self._set:
            return
        with self._lock:
            if buffered and not self._set:
                os.write(self._write_fd, (1).to_bytes(8, "little"))
            elif not buffered and self._set:
                try:
                    os.read(self._read_fd, 8)
                except BlockingIOError:
                    pass
            self._set = buffered

    def close(self) -> None:
        self._epoll.close()
        for fd in {getattr(self, "_read_fd", -1), getattr(self, "_write_fd", -1)}:
            if fd >= 0:
                os.close(fd)


# -- transports --------------------------------------------------------------------------


class Transport(ABC):
    """One mechanism (scheme). Registered as ``"scheme": "module:Class"``; instantiated
    once, without arguments, the first time its scheme is used."""

    scheme: ClassVar[str]
    summary: ClassVar[str]
    options: ClassVar[type[CommonOptions]] = CommonOptions
    capabilities: ClassVar[Capabilities] = Capabilities()

    def parse_name(self, url: str, netloc: str, path: str) -> str:
        """The object's name from the URL's parts; InvalidURL if it breaks a rule."""
        if path:
            raise InvalidURL(f"{url!r}: a name cannot contain '/'; use {self.scheme}://NAME")
        return validate_name(netloc, url)

    @abstractmethod
    def open_sender(self, address: Address, options: Any, codec: _codecs.Codec[Any]) -> Sender[Any]:
        """Open (creating per the options) and return a sender."""

    @abstractmethod
    def open_receiver(
        self, address: Address, options: Any, codec: _codecs.Codec[Any]
    ) -> Receiver[Any]:
        """Open (creating per the options) and return a receiver."""

    @abstractmethod
    def unlink(self, address: Address) -> None:
        """Destroy the kernel object. Raises NotFound if it does not exist."""

    @abstractmethod
    def info(self, address: Address) -> ObjectInfo:
        """Describe the object without creating or disturbing it. Raises NotFound."""

    def open_publisher(
        self, address: Address, options: Any, codec: _codecs.Codec[Any]
    ) -> Sender[Any]:
        """Open a broadcast sender (``osipc.publisher``)."""
        raise Unsupported(
            f"{address.base_url}: {self.scheme}:// has no broadcast; use shm:// or zmq+ipc://"
        )

    def open_subscriber(
        self, address: Address, options: Any, codec: _codecs.Codec[Any]
    ) -> Receiver[Any]:
        """Open a broadcast receiver (``osipc.subscriber``)."""
        raise Unsupported(
            f"{address.base_url}: {self.scheme}:// has no broadcast; use shm:// or zmq+ipc://"
        )

    def open_client(self, address: Address, options: Any, codec: _codecs.Codec[Any]) -> Client[Any]:
        """Open a request/reply client (``osipc.client``)."""
        raise Unsupported(
            f"{address.base_url}: {self.scheme}:// has no request/reply; use mq:// or zmq+ipc://"
        )

    def open_server(self, address: Address, options: Any, codec: _codecs.Codec[Any]) -> Server[Any]:
        """Open a request/reply server (``osipc.server``)."""
        raise Unsupported(
            f"{address.base_url}: {self.scheme}:// has no request/reply; use mq:// or zmq+ipc://"
        )

    def inventory(self) -> list[ObjectInfo]:
        """Every object of this kind the process can see (for ``ls --all``)."""
        return []


class SemaphoreTransport(Transport):
    """A scheme that names a semaphore (osipc.Semaphore, osipc.Lock), not a channel: its
    senders and receivers are refused, pointing at ``channels``, the schemes to use."""

    channels = "shm:// or mq://"

    def _no_channel(self, address: Address) -> Unsupported:
        return Unsupported(
            f"{address.base_url} names a semaphore, not a channel: use osipc.Semaphore or "
            f"osipc.Lock (or a channel scheme such as {self.channels})"
        )

    def open_sender(self, address: Address, options: Any, codec: _codecs.Codec[Any]) -> Sender[Any]:
        raise self._no_channel(address)

    def open_receiver(
        self, address: Address, options: Any, codec: _codecs.Codec[Any]
    ) -> Receiver[Any]:
        raise self._no_channel(address)
