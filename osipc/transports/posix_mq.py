"""mq://NAME — a POSIX message queue ``/NAME`` (posix_ipc; ctypes for adopted fds).

Features: queue semantics, priorities (``send(obj, priority=N)``, highest first, FIFO
within a priority), native timeouts, pollable fd, persistence (messages stay queued
while no process has the queue open, until it is unlinked or the machine reboots),
adoption of an inherited queue descriptor (``fd=``, as systemd's ``ListenMessageQueue=``
hands them to services), ``raw=True`` for C peers.

URL:     ``mq://NAME?maxmsg=10&msgsize=8192&mode=0600&raw=0&fd=N``

Options: ``maxmsg``  queue depth, used when creating (default fs.mqueue.msg_default).
         ``msgsize`` largest message in bytes, used when creating (default
                     fs.mqueue.msgsize_default). Both are checked against
                     fs.mqueue.msg_max / msgsize_max before the queue is created.
         ``raw``     exact bytes on the wire; no end-of-stream marker.
         ``fd``      adopt this open queue descriptor instead of opening ``/NAME``.
         and the common ``create``, ``exclusive``, ``mode``, ``trust_existing``.

Frame format: a message is the payload exactly, except that the end-of-stream marker
is a zero-length message, and a payload that is empty or starts with byte 0xC1 is sent
with one 0xC1 byte in front. 0xC1 never begins UTF-8 text, JSON, msgpack or a pickle,
so text and codec payloads reach the queue unchanged and C peers can read them as is.
With ``raw=True`` the bytes are always exact and zero-length messages are data.

Descriptors: a queue osipc opens itself is O_NONBLOCK (osipc never blocks inside a
mq_send/mq_receive: it waits in poll(), where signals behave), so ``fileno()`` of such a
handle gives EAGAIN, not a wait, to a blocking mq_receive of your own. An adopted ``fd=``
descriptor is left as it was (its open file description is shared with whoever passed it).

Limits (read at run time, named in errors): fs.mqueue.msg_max and msgsize_max (10 and
8192 by default), fs.mqueue.queues_max queues in all, and RLIMIT_MSGQUEUE bytes per user
(819200 by default: nine default-size queues for every process of that user together).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import os
import select
import stat
import struct
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any, TypeVar, cast

import posix_ipc

from osipc import _accel, _inventory, _limits
from osipc._abc import (
    AioSource,
    Capabilities,
    Frame,
    ObjectInfo,
    Receiver,
    Sender,
    Transport,
    _iterable,
)
from osipc._address import (
    Address,
    CommonOptions,
    check_existing,
    option,
    parse_bool,
    parse_int,
    refuse_with_fd,
    validate_name,
)
from osipc._codecs import Buffer, Codec, codec_name, decode, get_codec
from osipc._deadline import Deadline, check_timeout
from osipc._errors import (
    AlreadyExists,
    Broken,
    Closed,
    EndOfStream,
    InvalidArgument,
    InvalidURL,
    MessageTooLarge,
    NotFound,
    OsipcError,
    PermissionDenied,
    Timeout,
    TransportError,
    map_os_error,
    os_errors,
)
from osipc._reqrep import Client, Request, Server
from osipc.transports._mqwire import ESCAPE_BYTE, escapes, on_wire, unescape
from osipc.transports._posix_ipc import map_posix_ipc, posix_ipc_errors

_MSGC, _ = _accel.load("_msgc")  # one message without waiting, in C (optional)
PRIORITY_MAX = 32767  # MQ_PRIO_MAX - 1 on Linux
HARD_MSGMAX = 65536  # what CAP_SYS_RESOURCE may ask for (ipc/mqueue.c)
HARD_MSGSIZEMAX = 16 * 1024 * 1024


@dataclass(frozen=True)
class MqOptions(CommonOptions):
    maxmsg: int = option(0, parse_int(1), "queue depth at creation (default msg_default)")
    msgsize: int = option(0, parse_int(1), "largest message at creation (default msgsize_default)")
    raw: bool = option(False, parse_bool, "exact bytes; zero-length messages are data")
    fd: int = option(-1, parse_int(0), "adopt this inherited queue descriptor")


def _capabilities(msgsize: int, raw: bool) -> Capabilities:
    return Capabilities(
        ordered=True,
        priorities=True,
        selectable=True,
        max_message_size=msgsize,
        timeouts="native",
        end_of_stream=not raw,
        persistent=True,
    )


def _sizes(address: Address, options: MqOptions) -> tuple[int, int]:
    """(maxmsg, msgsize) to create with, checked against the kernel's limits."""
    privileged = _limits.has_cap_sys_resource()
    checks = (
        ("maxmsg", options.maxmsg, "msg_default", "msg_max", HARD_MSGMAX, 10),
        ("msgsize", options.msgsize, "msgsize_default", "msgsize_max", HARD_MSGSIZEMAX, 8192),
    )
    sizes = []
    for name, asked, default_key, max_key, hard, fallback in checks:
        limit = _limits.mqueue(max_key) or fallback
        value = asked or min(_limits.mqueue(default_key) or fallback, limit)
        if value > limit and not (privileged and value <= hard):
            raise InvalidURL(
                f"{address}: {name}={value} exceeds fs.mqueue.{max_key}={limit} "
                f"(/proc/sys/fs/mqueue/{max_key}); ask for at most {limit}, or raise it as "
                f"root: sysctl fs.mqueue.{max_key}={value}"
                if value <= hard
                else f"{address}: {name}={value} exceeds the kernel's hard limit of {hard} "
                f"(fs.mqueue.{max_key} cannot be raised past it; it is {limit} here): ask "
                f"for at most {limit}, or use fifo:// or shm:// for more"
            )
        sizes.append(value)
    maxmsg, msgsize = sizes
    soft, _ = _limits.rlimit_msgqueue()
    cost = _limits.mq_bytes(maxmsg, msgsize)
    if soft >= 0 and cost > soft:
        raise InvalidURL(
            f"{address}: a queue of maxmsg={maxmsg} x msgsize={msgsize} needs {cost} bytes, "
            f"more than this process's RLIMIT_MSGQUEUE ({soft} bytes, `ulimit -q`); "
            "ask for a smaller queue"
        )
    return maxmsg, msgsize


def _create_failed(address: Address, exc: OsipcError, maxmsg: int, msgsize: int) -> OsipcError:
    """Say which limit an mq_open(O_CREAT) failure hit; the kernel's words mislead."""
    if isinstance(exc, OSError) and exc.errno == errno.EMFILE:
        left = _limits.descriptors_left()
        if left is None or left > 1:  # (descriptors to spare: the queue bytes ran out)
            soft, _ = _limits.rlimit_msgqueue()
            cost = _limits.mq_bytes(maxmsg, msgsize)
            default = _limits.mq_bytes(10, 8192)
            return TransportError(
                f"cannot create {address}: it needs {cost} bytes of this user's "
                f"RLIMIT_MSGQUEUE ({soft} bytes, room for about {soft // default} default-size "
                "queues, shared by all of this user's processes), and other queues use the "
                "rest. Remove unused queues (`osipc ls`, `osipc gc`, `osipc rm`), create "
                "smaller ones (maxmsg=, msgsize=), or raise the limit (`ulimit -q`, "
                "LimitMSGQUEUE= in systemd)",
                errno=errno.EMFILE,
            )
    if isinstance(exc, InvalidArgument):
        return InvalidURL(
            f"cannot create {address} with maxmsg={maxmsg}, msgsize={msgsize}: the kernel "
            f"refused the sizes (fs.mqueue.msg_max={_limits.mqueue('msg_max')}, "
            f"msgsize_max={_limits.mqueue('msgsize_max')})"
        )
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return TransportError(
            f"cannot create {address}: the system has fs.mqueue.queues_max="
            f"{_limits.mqueue('queues_max')} queues already; remove unused ones or raise "
            "/proc/sys/fs/mqueue/queues_max",
            errno=errno.ENOSPC,
        )
    return exc


def _check_owner(fd: int, address: Address, options: MqOptions) -> None:
    with os_errors(f"inspect {address}"):
        st = os.fstat(fd)
    if st.st_uid != os.geteuid() and not options.trust_existing:
        raise PermissionDenied(
            f"{address} was created by uid {st.st_uid}, not by you (uid {os.geteuid()}); "
            "refusing to attach (pass trust_existing=True if that user is trusted)",
            errno=errno.EPERM,
        )


def _open_named(
    address: Address, options: MqOptions, codec: Codec[Any], read: bool, write: bool
) -> posix_ipc.MessageQueue:
    """Open-or-create ``/NAME``. The create is exclusive, so a queue someone else made
    first (squatting with its own sizes and mode) is never silently adopted."""
    name = "/" + address.name
    maxmsg, msgsize = _sizes(address, options) if options.create else (0, 0)
    for _ in range(5):  # create/open can race with another process's unlink
        if options.create:
            try:
                with posix_ipc_errors(f"create {address}"):
                    queue = posix_ipc.MessageQueue(
                        name,
                        posix_ipc.O_CREX,
                        mode=options.mode,
                        max_messages=maxmsg,
                        max_message_size=msgsize,
                        read=read,
                        write=write,
                    )
            except NotFound:  # ExistentialError under O_CREX: it exists
                if options.exclusive:
                    raise AlreadyExists(
                        f"{address} exists (exclusive=True)", errno=errno.EEXIST
                    ) from None
            except OsipcError as exc:
                raise _create_failed(address, exc, maxmsg, msgsize) from exc
            else:
                try:
                    with os_errors(f"set the mode of {address}"):
                        os.fchmod(queue.mqd, options.mode)  # the umask narrowed it
                    _inventory.write_record(
                        address,
                        kind="mq",
                        mode=options.mode,
                        codec=codec_name(codec),
                        capacity=maxmsg,
                        max_message_size=msgsize,
                        instance=_inventory.fd_instance(queue.mqd),
                    )
                except BaseException:
                    queue.close()
                    raise
                return queue
        try:
            with posix_ipc_errors(f"open {address}"):
                queue = posix_ipc.MessageQueue(name, 0, read=read, write=write)
        except NotFound:
            if options.create:
                continue
            raise NotFound(f"{address} does not exist (create=False)", errno=errno.ENOENT) from None
        try:
            _check_owner(queue.mqd, address, options)
            check_existing(
                address,
                options,
                {"maxmsg": queue.max_messages, "msgsize": queue.max_message_size},
            )
        except BaseException:
            queue.close()
            raise
        return queue
    raise TransportError(f"{address}: it kept disappearing while being opened; try again")


# -- adopted descriptors (ctypes) --------------------------------------------------------


class _MqAttr(ctypes.Structure):
    _fields_ = [
        ("mq_flags", ctypes.c_long),
        ("mq_maxmsg", ctypes.c_long),
        ("mq_msgsize", ctypes.c_long),
        ("mq_curmsgs", ctypes.c_long),
        ("pad", ctypes.c_long * 4),
    ]


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_libc: Any = None


def _librt() -> Any:
    """glibc >= 2.34 has mq_* in libc; older ones in librt."""
    global _libc
    if _libc is None:
        lib = ctypes.CDLL(None, use_errno=True)
        if not hasattr(lib, "mq_timedsend"):
            lib = ctypes.CDLL(ctypes.util.find_library("rt") or "librt.so.1", use_errno=True)
        lib.mq_getattr.argtypes = [ctypes.c_int, ctypes.POINTER(_MqAttr)]
        lib.mq_timedsend.argtypes = [
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.POINTER(_Timespec),
        ]
        lib.mq_timedreceive.argtypes = [
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.POINTER(ctypes.c_uint),
            ctypes.POINTER(_Timespec),
        ]
        lib.mq_timedreceive.restype = ctypes.c_ssize_t
        _libc = lib
    return _libc


class FdQueue:
    """The subset of ``posix_ipc.MessageQueue`` osipc uses, over an inherited descriptor.

    Only non-blocking calls (``timeout=0``), which raise ``posix_ipc.BusyError`` when
    they would block, exactly like MessageQueue, so handles treat both alike and do
    their waiting in poll().
    """

    _NOW = _Timespec(0, 0)  # an expired absolute timeout: never sleeps in libc

    def __init__(self, fd: int, address: Address) -> None:
        self._lib = _librt()
        self._address = address
        attr = _MqAttr()
        if self._lib.mq_getattr(fd, ctypes.byref(attr)) != 0:
            code = ctypes.get_errno()
            try:
                os.fstat(fd)  # (mq_getattr says EBADF for any descriptor not a queue)
                what = "a POSIX message queue"
            except OSError:
                what = "an open descriptor"
            raise InvalidArgument(f"{address}: fd {fd} is not {what} ({os.strerror(code)})")
        with os_errors(f"adopt fd {fd} for {address}"):
            access = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
            os.set_inheritable(fd, False)
        self.mqd = fd
        self.readable = access in (os.O_RDONLY, os.O_RDWR)
        self.writable = access in (os.O_WRONLY, os.O_RDWR)
        self.max_messages = attr.mq_maxmsg
        self.max_message_size = attr.mq_msgsize
        self._buffer = ctypes.create_string_buffer(max(1, attr.mq_msgsize))
        self._priority = ctypes.c_uint()

    @property
    def current_messages(self) -> int:
        attr = _MqAttr()
        if self._lib.mq_getattr(self.mqd, ctypes.byref(attr)) != 0:
            raise map_os_error(OSError(ctypes.get_errno(), "mq_getattr"), str(self._address))
        return int(attr.mq_curmsgs)

    def _failed(self) -> None:
        code = ctypes.get_errno()
        if code in (errno.EAGAIN, errno.ETIMEDOUT, errno.EINTR):
            raise posix_ipc.BusyError("would block")
        raise OSError(code, os.strerror(code))

    def send(self, message: Buffer, timeout: float = 0, priority: int = 0) -> None:
        data = bytes(message)
        if self._lib.mq_timedsend(self.mqd, data, len(data), priority, self._NOW) != 0:
            self._failed()

    def receive(self, timeout: float = 0) -> tuple[bytes, int]:
        buffer = self._buffer
        got = self._lib.mq_timedreceive(
            self.mqd, buffer, len(buffer), ctypes.byref(self._priority), self._NOW
        )
        if got < 0:
            self._failed()
        return ctypes.string_at(buffer, got), self._priority.value

    def close(self) -> None:
        fd, self.mqd = self.mqd, -1
        if fd >= 0:
            os.close(fd)


# -- handles -----------------------------------------------------------------------------


def _open(
    address: Address, options: MqOptions, codec: Codec[Any], role: str
) -> posix_ipc.MessageQueue | FdQueue:
    read, write = role == "receiver", role == "sender"
    if options.fd < 0:
        return _open_named(address, options, codec, read=read, write=write)
    refuse_with_fd(address, options, ("maxmsg", "msgsize"))
    queue = FdQueue(options.fd, address)
    if (read and not queue.readable) or (write and not queue.writable):
        need = "reading" if read else "writing"
        raise InvalidArgument(
            f"{address}: fd {options.fd} is not open for {need}, as a {role} needs "
            "(systemd's ListenMessageQueue= hands services read-only queues)"
        )
    return queue


def _too_large(url: str, size: int, msgsize: int, escaped: bool) -> MessageTooLarge:
    why = (
        " (with the 1-byte 0xC1 escape osipc adds to a payload starting with 0xC1)"
        if escaped
        else ""
    )
    limit = _limits.mqueue("msgsize_max")
    return MessageTooLarge(
        f"{url}: a {size}-byte message{why} exceeds the queue's msgsize={msgsize}; create "
        f"the queue with a larger msgsize= (at most fs.mqueue.msgsize_max={limit}, "
        "/proc/sys/fs/mqueue/msgsize_max), or use fifo:// or shm:// for large messages",
        size=size,
        limit=msgsize,
    )


def _never() -> bool:
    return False


def _fast_path(queue: Any) -> Any:
    """The C part for a queue osipc opened itself, made O_NONBLOCK (osipc never blocks
    inside posix_ipc: see MqSender._write; and a blocking descriptor's try can still be
    interrupted, whereupon posix_ipc runs the signal handler itself and drops what it
    raises). An adopted fd= queue is not changed: its open file description is shared
    with whoever passed it, and FdQueue never sleeps in the kernel anyway."""
    if not isinstance(queue, posix_ipc.MessageQueue):
        return None
    with posix_ipc_errors("make a queue descriptor non-blocking"):
        queue.block = False
    return _MSGC


class MqSender(Sender[Any]):
    def __init__(self, address: Address, options: MqOptions, codec: Codec[Any], queue: Any) -> None:
        self._mq = queue
        self._fast = _fast_path(queue)
        self._raw = options.raw
        self._msgsize = int(queue.max_message_size)
        super().__init__(address, _capabilities(self._msgsize, options.raw), codec)

    def send(self, obj: Any, *, timeout: float | None = None, priority: int = 0) -> None:
        """Send one object; ``priority`` 0..32767, higher received first. See Sender.send."""
        if self._closed:
            raise self._raise_closed()
        if priority.__class__ is not int or priority:  # (0.0, None, False: refused)
            _check_priority(priority)
        frame = obj if self._plain and obj.__class__ is bytes else self._encode(obj)
        self._put(frame, None if timeout is None else check_timeout(timeout), priority)

    def send_many(
        self, objs: Iterable[Any], *, timeout: float | None = None, priority: int = 0
    ) -> int:
        """Send every object in order at ``priority``; see Sender.send_many. Every message
        is encoded and checked against the queue's msgsize before the first is sent."""
        if self._closed:
            raise self._raise_closed()
        if priority.__class__ is not int or priority:  # (0.0, None, False: refused)
            _check_priority(priority)
        frames = [self._encode(obj) for obj in _iterable(objs)]
        for frame in frames:
            self._wire_size(frame)
        deadline = Deadline(timeout)
        for index, frame in enumerate(frames):
            try:
                self._put(frame, deadline.remaining(), priority)
            except TransportError as exc:
                exc.sent = index
                raise
        return len(frames)

    def _send(self, frame: Buffer, timeout: float | None) -> None:
        self._put(frame, timeout, 0)

    def _wire_size(self, frame: Buffer) -> bool:
        """Whether ``frame`` goes out escaped; MessageTooLarge if it cannot go at all."""
        size = len(frame)
        escaped = escapes(frame, self._raw)
        if size + escaped > self._msgsize:
            raise _too_large(self.url, size + escaped, self._msgsize, escaped)
        return escaped

    def _put(self, frame: Buffer, timeout: float | None, priority: int) -> None:
        fast = self._fast
        if fast is not None:  # one try in one call; None: the Python path says why not
            try:
                sent = fast.mq_send(self._mq.mqd, frame, priority, self._raw, self._msgsize)
            except OSError as exc:
                raise _map(self, exc, "send to") from exc
            if sent is True:
                return
            if sent is False:
                self._wait_and_send(frame, timeout, priority)
                return
        if self._wire_size(frame):
            frame = ESCAPE_BYTE + bytes(frame)
        self._write(frame, timeout, priority)

    def _try_send(self, frame: Buffer, priority: int) -> bool:
        """One try without waiting (``frame`` as it goes on the wire): False if full."""
        try:
            self._mq.send(frame, 0, priority)
            return True
        except posix_ipc.BusyError:
            return False
        except Exception as exc:
            raise _map(self, exc, "send to") from exc

    def _write(self, frame: Buffer, timeout: float | None, priority: int) -> None:
        # Never block inside posix_ipc: on EINTR it runs the signal handler itself and
        # drops any exception but KeyboardInterrupt (a SIGTERM handler's SystemExit
        # included). Try without waiting; wait in poll(), which resumes per PEP 475.
        if not self._try_send(frame, priority):
            self._wait_and_send(frame, timeout, priority, wire=True)

    def _wait_and_send(
        self, frame: Buffer, timeout: float | None, priority: int, wire: bool = False
    ) -> None:
        """Wait for room, then send; ``wire``: ``frame`` is already as it goes on the wire
        (else the C part escapes it)."""
        if timeout == 0:
            raise self._full(timeout)
        deadline = Deadline(timeout)
        fast = None if wire else self._fast
        with self._waiting():
            wake = self._wakeup_fd()
            while True:
                ready = _poll(self._mq.mqd, select.POLLOUT, deadline, wake)
                self._check_open()
                if not ready:
                    raise self._full(timeout)
                if fast is not None:
                    try:
                        sent = fast.mq_send(self._mq.mqd, frame, priority, self._raw, self._msgsize)
                    except OSError as exc:
                        raise _map(self, exc, "send to") from exc
                    if sent is not None:
                        if sent:
                            return
                        continue  # another sender filled it first
                    fast = None  # the Python path's: from now on the frame as it goes out
                    if self._wire_size(frame):
                        frame = ESCAPE_BYTE + bytes(frame)
                if self._try_send(frame, priority):
                    return

    def _full(self, timeout: float | None) -> Timeout:
        return Timeout(
            f"{self.url}: the queue is full ({self._mq.max_messages} messages) "
            f"{Deadline(timeout).describe()}",
            errno=errno.EAGAIN,
        )

    def _send_end(self, deadline: Deadline) -> None:
        self._write(b"", deadline.remaining(), 0)  # the zero-length marker, unescaped

    def fileno(self) -> int:
        """The queue descriptor: writable (POLLOUT) while the queue is not full."""
        if self._closed:
            raise self._raise_closed()
        return int(self._mq.mqd)

    def _aio_source(self, writing: bool) -> AioSource | None:
        return int(self._mq.mqd), True, _never

    def _close(self) -> None:
        with posix_ipc_errors(f"close {self.url}"):
            self._mq.close()


def _poll(fd: int, events: int, deadline: Deadline, wake: int) -> bool:
    """Wait for ``events`` on a queue descriptor; False once the deadline has passed, or
    when the descriptor ``wake`` is readable (the handle is being closed)."""
    poller = select.poll()
    poller.register(fd, events)
    poller.register(wake, select.POLLIN)
    while True:
        ready = poller.poll(deadline.poll_ms())
        if any(ready_fd == fd for ready_fd, _ in ready):
            return True
        if ready or deadline.expired():
            return False


def _map(handle: MqSender | MqReceiver, exc: BaseException, what: str) -> OsipcError:
    if handle.closed or getattr(handle._mq, "mqd", 0) == -1:
        return Closed(f"{handle.url}: the handle was closed during the call")
    return map_posix_ipc(exc, f"{what} {handle.url}")


def _check_priority(priority: int) -> None:
    if (
        isinstance(priority, bool)
        or not isinstance(priority, int)
        or not 0 <= priority <= PRIORITY_MAX
    ):
        raise InvalidArgument(f"priority must be an integer 0..{PRIORITY_MAX}, got {priority!r}")


class MqReceiver(Receiver[Any]):
    def __init__(self, address: Address, options: MqOptions, codec: Codec[Any], queue: Any) -> None:
        self._mq = queue
        self._fast = _fast_path(queue)
        self._raw = options.raw
        self._msgsize = int(queue.max_message_size)
        super().__init__(address, _capabilities(self._msgsize, options.raw), codec)

    def recv(self, *, timeout: float | None = None) -> Any:
        """See Receiver.recv; a message already there is one C call, without _recv."""
        fast = self._fast
        if fast is None or self._closed or self._pending or self._readiness is not None:
            return super().recv(timeout=timeout)
        if timeout is not None:
            timeout = check_timeout(timeout)
        try:
            got = fast.mq_recv(self._mq.mqd, self._msgsize, self._raw)
        except OSError as exc:
            raise _map(self, exc, "receive from") from exc
        if got.__class__ is tuple:
            frame, self.priority = got
        else:
            frame = self._after_try(got, timeout)
        if frame is None:
            raise EndOfStream(f"{self.url}: end of stream")
        if self._decode_fast is not None:
            return frame
        return decode(self.codec, frame, self.url)

    def _recv(self, timeout: float | None) -> Frame | None:
        got: Any
        if self._fast is not None:  # one try in one call; None: the Python path's
            try:
                got = self._fast.mq_recv(self._mq.mqd, self._msgsize, self._raw)
            except OSError as exc:
                raise _map(self, exc, "receive from") from exc
            if got.__class__ is tuple:
                frame: Frame | None
                frame, self.priority = got
                return frame
            return self._after_try(got, timeout)
        data = self._try_receive()
        if data is None:
            data = self._wait_and_receive(timeout)
        return unescape(data, self._raw)

    def _after_try(self, got: bool | None, timeout: float | None) -> Frame | None:
        """After the C part's try found nothing (False: wait for a message) or left it to
        the Python path (None)."""
        data = self._wait_and_receive(timeout) if got is False else self._try_receive()
        if data is None:
            data = self._wait_and_receive(timeout)
        return unescape(data, self._raw)

    def _try_receive(self) -> bytes | None:
        """One message as it came off the wire (see MqSender._write: never block), or
        None if the queue is empty."""
        try:
            data, self.priority = self._mq.receive(0)
            return data  # type: ignore[no-any-return]
        except posix_ipc.BusyError:
            return None
        except Exception as exc:
            raise _map(self, exc, "receive from") from exc

    def _wait_and_receive(self, timeout: float | None) -> bytes:
        if timeout == 0:
            raise self._empty(timeout)
        deadline = Deadline(timeout)
        with self._waiting():
            wake = self._wakeup_fd()
            while True:
                ready = _poll(self._mq.mqd, select.POLLIN, deadline, wake)
                self._check_open()
                if not ready:
                    raise self._empty(timeout)
                data = self._try_receive()
                if data is not None:
                    return data
                # another receiver took it first

    def _empty(self, timeout: float | None) -> Timeout:
        return Timeout(f"{self.url}: no message {Deadline(timeout).describe()}", errno=errno.EAGAIN)

    def _raw_fileno(self) -> int:
        return int(self._mq.mqd)

    def _close(self) -> None:
        super()._close()
        if self._pending and not self._in_child:
            self._give_back()
        with posix_ipc_errors(f"close {self.url}"):
            self._mq.close()

    def _give_back(self) -> None:
        """Send messages taken from the queue but not delivered (a recv_into buffer too
        small, the rest of a batch after a DecodeError) back to it, at the priority of
        the last one received, so the next receiver gets them instead of nobody."""
        held = list(self._pending)
        self._pending.clear()
        given = 0
        why = "the queue is full"
        try:  # a receiver's own descriptor is read-only: open one for writing
            if isinstance(self._mq, FdQueue):
                # (a magic link: this very queue, whatever its name, if we may write it)
                fd = os.open(f"/proc/self/fd/{self._mq.mqd}", os.O_WRONLY | os.O_CLOEXEC)
                writer: Any = FdQueue(fd, self._address)
            else:
                writer = posix_ipc.MessageQueue(self._mq.name, 0, read=False, write=True)
        except Exception as exc:
            writer, why = None, f"it cannot be opened for writing: {exc}"
        try:
            for frame in held if writer is not None else ():
                # (None: the end-of-stream marker)
                wire = b"" if frame is None else on_wire(frame, self._raw)
                try:
                    writer.send(wire, 0, self.priority)
                except Exception:  # full, or gone: say so below
                    break
                given += 1
        finally:
            if writer is not None:
                writer.close()
        if given < len(held):
            warnings.warn(
                f"{self.url}: closed while holding {len(held) - given} message(s) it had "
                f"taken from the queue and could not put back ({why}); they are lost",
                RuntimeWarning,
                stacklevel=4,
            )


H = TypeVar("H", MqSender, MqReceiver)


def _check_reqrep(address: Address, options: MqOptions) -> None:
    if options.raw or options.fd >= 0:
        raise InvalidURL(
            f"{address}: request/reply frames its messages; raw= and fd= are for plain queues"
        )


def _handle(cls: type[H], address: Address, options: MqOptions, codec: Codec[Any]) -> H:
    queue = _open(address, options, codec, "sender" if cls is MqSender else "receiver")
    try:
        return cls(address, options, codec, queue)
    except BaseException:
        queue.close()
        raise


# -- request/reply -----------------------------------------------------------------------
#
# Requests go to the queue the URL names; each client creates its own reply queue
# ``/NAME.reply-PID-RANDOM`` (exclusive, removed when the client closes; a client that
# dies leaves it to ``osipc gc``, which sees its creator gone). A request frame is
# ``C7 len:u8 reply-queue-name id:u64 payload``; a reply frame is ``id:u64 payload``.

REQUEST_TAG = 0xC7
_REQUEST = b"\xc7"
_ID = struct.Struct("<Q")
REPLY_DEPTH = 4  # a client waits for one reply at a time; room for a few late ones


def _reply_name(name: str) -> str:
    return f"{name[:200]}.reply-{os.getpid()}-{os.urandom(4).hex()}"


class MqClient(Client[Any]):
    def __init__(self, address: Address, options: MqOptions, codec: Codec[Any]) -> None:
        self._tx: MqSender | None = None
        self._rx: MqReceiver | None = None
        self._next_id = int.from_bytes(os.urandom(4), "little") << 32
        self._reply_address = Address("mq", _reply_name(address.name))
        self._tx = _handle(MqSender, address, options, get_codec("bytes"))
        msgsize = self._tx.capabilities.max_message_size or 8192
        depth = min(REPLY_DEPTH, _limits.mqueue("msg_max") or REPLY_DEPTH)
        reply_options = replace(options, maxmsg=depth, msgsize=msgsize, exclusive=True, create=True)
        try:
            self._rx = _handle(MqReceiver, self._reply_address, reply_options, get_codec("bytes"))
        except BaseException:
            self._tx.close()
            raise
        name = self._reply_address.name.encode()
        self._header = _REQUEST + bytes([len(name)]) + name
        super().__init__(address, Capabilities(max_message_size=msgsize - 9 - len(name)), codec)

    def _send_request(self, frame: Buffer, deadline: Deadline) -> object:
        assert self._tx is not None
        self._next_id += 1
        rid = _ID.pack(self._next_id)
        self._tx._send(self._header + rid + bytes(frame), deadline.remaining())
        return rid

    def _await_reply(self, ticket: object, deadline: Deadline) -> bytes:
        assert self._rx is not None
        while True:
            try:
                reply = self._rx._recv(deadline.remaining())
            except Timeout:
                raise Timeout(
                    f"{self.url}: no reply {deadline.describe()} (no server, or it is slow; "
                    "a late reply is discarded)",
                    errno=errno.ETIMEDOUT,
                ) from None
            if reply is not None and reply[:8] == ticket:
                return reply[8:]
            # a late reply to a request that timed out: nobody waits for it any more

    def _aio_source(self, writing: bool) -> AioSource | None:
        handle = self._tx if writing else self._rx
        return None if handle is None else handle._aio_source(writing)

    def _close(self) -> None:
        if self._tx is not None:
            self._tx.close()
        if self._rx is not None:
            self._rx.close()
            if not self._in_child:
                try:
                    posix_ipc.unlink_message_queue("/" + self._reply_address.name)
                except posix_ipc.ExistentialError:
                    pass
                _inventory.remove_record(self._reply_address)


class MqServer(Server[Any]):
    def __init__(self, address: Address, options: MqOptions, codec: Codec[Any]) -> None:
        self._options = options
        self._replies: dict[str, MqSender] = {}  # reply queue name -> sender, most recent last
        self._rx = _handle(MqReceiver, address, options, get_codec("bytes"))
        super().__init__(address, self._rx.capabilities, codec)

    def _aio_source(self, writing: bool) -> AioSource | None:
        # replies go to one queue per client: no single fd to watch for them
        return None if writing else self._rx._aio_source(False)

    def _next(self, timeout: float | None) -> tuple[object, bytes]:
        deadline = Deadline(timeout)
        while True:
            frame = self._rx._recv(deadline.remaining())
            if frame is None:
                raise EndOfStream(f"{self.url}: end of stream")
            size = frame[1] if len(frame) > 1 else 0
            if frame[:1] == _REQUEST and len(frame) >= 10 + size:
                name = frame[2 : 2 + size].decode("ascii", "replace")
                return (name, frame[2 + size : 10 + size]), frame[10 + size :]
            # not a request (someone sent plain data to the request queue): skip it

    def __iter__(self) -> Iterator[Request[Any]]:
        """Yield requests until the handle is closed or end-of-stream is sent to it."""
        try:
            yield from super().__iter__()
        except EndOfStream:
            return

    def _reply(self, token: object, frame: Buffer, deadline: Deadline) -> None:
        name, rid = cast("tuple[str, bytes]", token)
        gone = Broken(
            f"{self.url}: the client that sent this request is gone (its reply queue "
            f"/{name} no longer exists); nobody waits for the reply",
            errno=errno.ENOENT,
        )
        tx = self._replies.pop(name, None)
        if tx is None:
            try:
                validate_name(name, f"mq://{name}")
                tx = _handle(
                    MqSender, Address("mq", name),
                    replace(self._options, create=False, exclusive=False, maxmsg=0, msgsize=0),
                    get_codec("bytes"),
                )  # fmt: skip
            except (NotFound, InvalidURL):
                raise gone from None
        self._replies[name] = tx
        while len(self._replies) > 16:  # keep the recent clients' queues open
            self._replies.pop(next(iter(self._replies))).close()
        data = rid + bytes(frame)
        pid = int(name.rsplit("-", 2)[-2]) if name.count("-") >= 2 else 0
        while True:  # a full reply queue: wait, but not for a client that died
            left = deadline.remaining()
            try:
                tx._send(data, 0.1 if left is None else min(left, 0.1))
                return
            except Timeout:
                if left is not None and left <= 0.1:
                    raise
            if pid and not _pid_alive(pid):
                raise gone

    def _close(self) -> None:
        self._rx.close()
        for tx in self._replies.values():
            tx.close()
        self._replies.clear()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- transport ---------------------------------------------------------------------------


class PosixMQTransport(Transport):
    scheme = "mq"
    summary = "POSIX message queue: priorities, persistent, pollable; small messages"
    options = MqOptions
    capabilities = _capabilities(8192, raw=False)

    def open_sender(self, address: Address, options: Any, codec: Codec[Any]) -> Sender[Any]:
        return _handle(MqSender, address, options, codec)

    def open_receiver(self, address: Address, options: Any, codec: Codec[Any]) -> Receiver[Any]:
        return _handle(MqReceiver, address, options, codec)

    def open_client(self, address: Address, options: Any, codec: Codec[Any]) -> Client[Any]:
        _check_reqrep(address, options)
        return MqClient(address, options, codec)

    def open_server(self, address: Address, options: Any, codec: Codec[Any]) -> Server[Any]:
        _check_reqrep(address, options)
        return MqServer(address, options, codec)

    def unlink(self, address: Address) -> None:
        with posix_ipc_errors(f"remove {address}"):
            posix_ipc.unlink_message_queue("/" + address.name)

    def info(self, address: Address) -> ObjectInfo:
        with posix_ipc_errors(f"{address}"):
            queue = posix_ipc.MessageQueue("/" + address.name, 0, read=True, write=False)
        try:
            with os_errors(f"inspect {address}"):
                st = os.fstat(queue.mqd)
            maxmsg, msgsize = int(queue.max_messages), int(queue.max_message_size)
            return ObjectInfo(
                url=address.base_url,
                kind="mq",
                path="/" + address.name,
                owner=st.st_uid,
                mode=stat.S_IMODE(st.st_mode),
                depth=int(queue.current_messages),
                capacity=maxmsg,
                max_message_size=msgsize,
                size=_limits.mq_bytes(maxmsg, msgsize),
                identity=(st.st_dev, st.st_ino),
            )
        finally:
            queue.close()

    def inventory(self) -> list[ObjectInfo]:
        """Needs an mqueue file system mounted somewhere (``mount -t mqueue none DIR``)."""
        mount = _limits.mqueue_mount()
        if mount is None:
            return []
        try:
            names = sorted(os.listdir(mount))
        except OSError:
            return []
        found = []
        for name in names:
            try:
                validate_name(name, f"mq://{name}")
                found.append(self.info(Address("mq", name)))
            except (InvalidURL, NotFound, PermissionDenied):
                continue
        return found
