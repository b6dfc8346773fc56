"""sysv+mq://NAME — a System V message queue (sysv_ipc): typed messages, legacy peers.

Features: queue semantics, message types (``send(obj, type=N)``, N >= 1; a receiver with
``type=N`` takes only type N, with ``type=-N`` the lowest type <= N first, as msgrcv(2)
defines), persistence, ``raw=True`` for C and sysv_ipc peers, end-of-stream.

URL:     ``sysv+mq://NAME?type=0&maxbytes=16384&raw=0&mode=0600`` or ``sysv+mq://0x5a5a``

Options: ``type``     senders: the type sent (default 1); receivers: which types to take
                      (0, the default: any; N > 0: only N; N < 0: lowest type <= -N first).
         ``maxbytes`` the queue's byte capacity when creating (msg_qbytes; default and at
                      most kernel.msgmnb without CAP_SYS_RESOURCE).
         ``raw``      exact bytes on the wire; zero-length messages are data, no end().
         and the common ``create``, ``exclusive``, ``mode``, ``trust_existing``.

Keys: ``osipc.sysv_key(NAME)``, or the literal ``0x...`` given (see ``_sysv``).

Frame format: as mq://: the payload exactly, except that end-of-stream is a zero-length
message and a payload that is empty or starts with 0xC1 gets one 0xC1 byte in front.
The message type is the type given.

Timeouts: sysv_ipc has only blocking and non-blocking calls, so a wait with a timeout
polls with sleeps growing from 0.1 ms to 5 ms (a 1 s wait costs about 200 wake-ups, not a
core; a message is seen at most 5 ms late). ``timeout=None`` blocks in the kernel, where
nothing but a message (or a signal) wakes it: ``close()`` from another thread ends a wait
with a timeout within 5 ms, but not one without; and a signal that lands in the instant
before msgrcv begins, or goes to another thread, has its handler run only when the wait
ends (other transports sleep in slices: see ``_deadline.SIGNAL_SLICE``). Pass a timeout
where either matters.

Limits: kernel.msgmax (largest message, 8192 here), kernel.msgmnb (bytes a queue holds,
16384 here: two maximum-size messages), kernel.msgmni (queues in all). Exact modes:
SysV ignores the umask, so the mode given is the mode set.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Any

import sysv_ipc

from osipc import _accel, _inventory, _limits
from osipc._abc import Capabilities, Frame, Handle, ObjectInfo, Receiver, Sender, Transport
from osipc._address import Address, CommonOptions, check_existing, option, parse_bool, parse_int
from osipc._codecs import Buffer, Codec, codec_name
from osipc._deadline import Backoff, Deadline, check_timeout
from osipc._errors import (
    AlreadyExists,
    InvalidArgument,
    InvalidURL,
    MessageTooLarge,
    NotFound,
    Timeout,
    TransportError,
)
from osipc.transports import _sysv
from osipc.transports._mqwire import ESCAPE, ESCAPE_BYTE, escapes, unescape

_MSGC, _ = _accel.load("_msgc")  # one message without waiting, in C (optional)
TYPE_MAX = (1 << 63) - 1


@dataclass(frozen=True)
class SysvMqOptions(CommonOptions):
    type: int = option(0, parse_int(-TYPE_MAX, TYPE_MAX), "send this type / take these types")
    maxbytes: int = option(0, parse_int(1), "queue byte capacity at creation (msg_qbytes)")
    raw: bool = option(False, parse_bool, "exact bytes; zero-length messages are data")


def _msgmax() -> int:
    return _limits.sysv("msgmax") or 8192


def _capabilities(limit: int, raw: bool) -> Capabilities:
    return Capabilities(
        ordered=True,
        priorities=False,
        selectable=False,
        max_message_size=limit,
        timeouts="emulated",
        end_of_stream=not raw,
        persistent=True,
    )


def _open(address: Address, options: SysvMqOptions, codec: Codec[Any]) -> sysv_ipc.MessageQueue:
    key = _sysv.key_of(address.name)
    msgmax = _msgmax()
    msgmnb = _limits.sysv("msgmnb") or 16384
    if options.maxbytes > msgmnb and not _limits.has_cap_sys_resource():
        raise InvalidURL(
            f"{address}: maxbytes={options.maxbytes} exceeds kernel.msgmnb={msgmnb} "
            "(/proc/sys/kernel/msgmnb); ask for at most that, or raise it as root"
        )
    for _ in range(5):  # create and open can race with another process's removal
        if options.create:
            try:
                with _sysv.sysv_ipc_errors(f"create {address}"):
                    queue = sysv_ipc.MessageQueue(
                        key, sysv_ipc.IPC_CREX, mode=options.mode, max_message_size=msgmax
                    )
            except NotFound:  # ExistentialError under IPC_CREX: it exists
                if options.exclusive:
                    raise AlreadyExists(
                        f"{address} exists (exclusive=True)", errno=errno.EEXIST
                    ) from None
            except TransportError as exc:
                if exc.errno == errno.ENOSPC or "No space" in str(exc):
                    raise TransportError(
                        f"cannot create {address}: the system has kernel.msgmni="
                        f"{_limits.sysv('msgmni')} queues already; remove unused ones "
                        "(osipc gc, ipcrm) or raise /proc/sys/kernel/msgmni",
                        errno=errno.ENOSPC,
                    ) from exc
                raise
            else:
                try:
                    if options.maxbytes:
                        with _sysv.sysv_ipc_errors(f"size {address}"):
                            queue.max_size = options.maxbytes
                    _inventory.write_record(
                        address,
                        kind="sysv-mq",
                        mode=options.mode,
                        codec=codec_name(codec),
                        max_message_size=msgmax,
                        instance=_inventory.sysv_instance(queue.id, queue.cuid),
                    )
                except BaseException:
                    queue.remove()
                    raise
                return queue
        try:
            with _sysv.sysv_ipc_errors(f"open {address}"):
                queue = sysv_ipc.MessageQueue(key, 0, max_message_size=msgmax)
        except NotFound:
            if options.create:
                continue
            raise NotFound(f"{address} does not exist (create=False)", errno=errno.ENOENT) from None
        _sysv.check_owner(queue.uid, address, options.trust_existing)
        _check_maxbytes(address, options, queue)
        return queue
    raise TransportError(f"{address}: it kept disappearing while being opened; try again")


def _check_maxbytes(address: Address, options: SysvMqOptions, queue: Any) -> None:
    """check_existing for maxbytes=, which a creator sets just after msgget: a queue still
    at the kernel's default (msgmnb) may be one whose creator is about to set it."""
    if options.maxbytes:
        default = _limits.sysv("msgmnb")
        deadline, backoff = Deadline(0.2), Backoff(0.001, 0.02)
        while queue.max_size == default != options.maxbytes and backoff.wait(deadline):
            pass
    check_existing(address, options, {"maxbytes": queue.max_size})


def _wait(handle: Handle, deadline: Deadline, backoff: Backoff, what: str) -> None:
    """One backoff step of a wait System V cannot wake us from; Timeout once the deadline
    passed, Closed once another thread closed the handle."""
    if not backoff.wait(deadline, handle._wakeup_fd()):
        raise Timeout(f"{handle.url}: {what} {deadline.describe()}", errno=errno.EAGAIN)
    handle._check_open()


class SysvMqSender(Sender[Any]):
    def __init__(
        self, address: Address, options: SysvMqOptions, codec: Codec[Any], queue: Any
    ) -> None:
        self._mq = queue
        self._msqid = int(queue.id)
        self._raw = options.raw
        self._type = options.type or 1
        self._limit = min(_msgmax(), int(queue.max_size))
        super().__init__(address, _capabilities(self._limit, options.raw), codec)

    def send(
        self,
        obj: Any,
        *,
        timeout: float | None = None,
        priority: int = 0,
        type: int | None = None,  # noqa: A002
    ) -> None:
        """Send one object with message ``type`` (>= 1; default the URL's); see Sender.send
        (System V messages have types, not priorities: receivers choose by type)."""
        if self._closed:
            raise self._raise_closed()
        if priority:
            raise self._no_priorities(priority)
        frame = obj if self._plain and obj.__class__ is bytes else self._encode(obj)
        if (  # without the C part, the common case as directly as it goes
            _MSGC is None
            and type is None
            and 0 < len(frame) <= self._limit
            and (self._raw or frame[0] != ESCAPE)
        ):
            try:
                self._mq.send(frame, False, self._type)
                return
            except sysv_ipc.Error:
                pass  # _put says what went wrong, or waits for room (never a second copy)
        self._put(
            frame,
            None if timeout is None else check_timeout(timeout),
            self._type if type is None else _check_type(type),
        )

    def _send(self, frame: Buffer, timeout: float | None) -> None:
        self._put(frame, timeout, self._type)

    def _send_batch(self, frames: list[Buffer], deadline: Deadline) -> None:
        for frame in frames:  # every size checked before the first message goes
            escaped = escapes(frame, self._raw)
            if len(frame) + escaped > self._limit:
                raise self._too_large(len(frame) + escaped, escaped)
        super()._send_batch(frames, deadline)

    def end(self, *, timeout: float | None = None, type: int | None = None) -> None:  # noqa: A002
        """End the stream for a receiver that takes ``type`` (default the URL's)."""
        if self._closed:
            raise self._raise_closed()
        if self._raw:
            super().end(timeout=timeout)  # raises Unsupported
        self._write(b"", None if timeout is None else check_timeout(timeout),
                    self._type if type is None else _check_type(type))  # fmt: skip

    def _send_end(self, deadline: Deadline) -> None:
        self._write(b"", deadline.remaining(), self._type)

    def _put(self, frame: Buffer, timeout: float | None, mtype: int) -> None:
        if _MSGC is not None:  # the common case in one call; anything else goes on below
            try:
                if _MSGC.msg_send(self._msqid, mtype, frame, self._raw, self._limit):
                    return  # (False, a full queue, blocks or waits below like any other)
            except OSError as exc:
                raise _sysv.map_sysv_ipc(exc, f"send to {self.url}") from exc
        escaped = escapes(frame, self._raw)
        if escaped:
            frame = ESCAPE_BYTE + bytes(frame)
        size = len(frame)
        if size > self._limit:
            raise self._too_large(size, escaped)
        self._write(frame, timeout, mtype)

    def _too_large(self, size: int, escaped: bool) -> MessageTooLarge:
        why = " (with the 0xC1 escape byte)" if escaped else ""
        msgmax = _msgmax()
        if self._limit < msgmax:
            limit = (
                f"the queue's byte capacity msg_qbytes={self._limit}"
                " (maxbytes=; at most kernel.msgmnb)"
            )
        else:
            limit = f"kernel.msgmax={msgmax} (/proc/sys/kernel/msgmax)"
        return MessageTooLarge(
            f"{self.url}: a {size}-byte message{why} exceeds {limit}; raise it as root, or use "
            "shm:// or fifo:// for large messages",
            size=size,
            limit=self._limit,
        )

    def _write(self, frame: Buffer, timeout: float | None, mtype: int) -> None:
        """Send ``frame`` as it goes on the wire: without a timeout, blocking in msgsnd
        (where close() from another thread cannot reach: System V has no wake-up); with
        one, trying again with a backoff of at most 5 ms."""
        deadline = Deadline(timeout)
        backoff = Backoff(0.0001, 0.005)
        with self._waiting():
            while True:
                try:
                    self._mq.send(frame, deadline.timeout is None, mtype)
                    return
                except sysv_ipc.BusyError:
                    pass
                except sysv_ipc.Error as exc:
                    if not _sysv.interrupted(exc):
                        raise _sysv.map_sysv_ipc(exc, f"send to {self.url}") from exc
                    self._check_open()
                    continue  # (outside the except: a signal handler's error is clean)
                except Exception as exc:
                    raise _sysv.map_sysv_ipc(exc, f"send to {self.url}") from exc
                _wait(self, deadline, backoff, "the queue is full")

    def _close(self) -> None:
        self._mq = None


def _check_type(mtype: int) -> int:
    if isinstance(mtype, bool) or not isinstance(mtype, int) or not 1 <= mtype <= TYPE_MAX:
        raise InvalidArgument(f"a message type must be an integer >= 1, got {mtype!r}")
    return mtype


class SysvMqReceiver(Receiver[Any]):
    type: int = 0
    """The type of the last message received."""

    def __init__(
        self, address: Address, options: SysvMqOptions, codec: Codec[Any], queue: Any
    ) -> None:
        self._mq = queue
        self._msqid = int(queue.id)
        self._raw = options.raw
        self._filter = options.type
        self._limit = min(_msgmax(), int(queue.max_size))
        super().__init__(address, _capabilities(self._limit, options.raw), codec)

    def _recv(self, timeout: float | None) -> Frame | None:
        if _MSGC is not None:  # the common case in one call: a message is there
            try:
                got = _MSGC.msg_recv(self._msqid, self._filter, self._limit, self._raw)
            except OSError as exc:
                raise _sysv.map_sysv_ipc(exc, f"receive from {self.url}") from exc
            if got is not None:
                frame: Frame | None
                frame, self.type = got
                return frame
            data: Any = None  # (the C part tried: straight to the wait, no second try)
        else:
            try:  # one try; then wait in _wait_and_receive
                data, self.type = self._mq.receive(False, self._filter)
            except sysv_ipc.BusyError:
                data = None
            except Exception as exc:
                if not _sysv.interrupted(exc):
                    raise _sysv.map_sysv_ipc(exc, f"receive from {self.url}") from exc
                data = None
        if data is None:
            data = self._wait_and_receive(timeout)
        return unescape(data, self._raw)

    def _wait_and_receive(self, timeout: float | None) -> bytes:
        """Without a timeout, block in msgrcv (where close() from another thread cannot
        reach: System V has no wake-up); with one, try again with a backoff of at most
        5 ms."""
        deadline = Deadline(timeout)
        if timeout == 0:
            raise Timeout(f"{self.url}: no message {deadline.describe()}", errno=errno.EAGAIN)
        backoff = Backoff(0.0001, 0.005)
        with self._waiting():
            while True:
                try:
                    data, self.type = self._mq.receive(deadline.timeout is None, self._filter)
                    return data  # type: ignore[no-any-return]
                except sysv_ipc.BusyError:
                    pass
                except sysv_ipc.Error as exc:
                    if not _sysv.interrupted(exc):
                        raise _sysv.map_sysv_ipc(exc, f"receive from {self.url}") from exc
                    self._check_open()
                    continue
                except Exception as exc:
                    raise _sysv.map_sysv_ipc(exc, f"receive from {self.url}") from exc
                _wait(self, deadline, backoff, "no message")

    def _close(self) -> None:
        super()._close()
        self._mq = None


class SysvMqTransport(Transport):
    scheme = "sysv+mq"
    summary = "System V message queue: typed messages, for legacy peers"
    options = SysvMqOptions
    capabilities = _capabilities(8192, raw=False)

    def parse_name(self, url: str, netloc: str, path: str) -> str:
        return _sysv.parse_name(url, netloc, path, self.scheme)

    def open_sender(self, address: Address, options: Any, codec: Codec[Any]) -> Sender[Any]:
        if options.type < 0:
            raise InvalidURL(
                f"{address}: a sender's type must be >= 1 (type={options.type} is a receiver's "
                "filter: the lowest type <= -type first)"
            )
        return SysvMqSender(address, options, codec, _open(address, options, codec))

    def open_receiver(self, address: Address, options: Any, codec: Codec[Any]) -> Receiver[Any]:
        return SysvMqReceiver(address, options, codec, _open(address, options, codec))

    def unlink(self, address: Address) -> None:
        row = _sysv.existing_row("msg", address)
        with _sysv.sysv_ipc_errors(f"remove {address}"):
            sysv_ipc.remove_message_queue(row["msqid"])

    def info(self, address: Address) -> ObjectInfo:
        row = _sysv.existing_row("msg", address)
        return _row_info(address.base_url, row)

    def inventory(self) -> list[ObjectInfo]:
        return [
            _row_info(f"sysv+mq://{_sysv.key_name(row['key'])}", row)
            for row in _sysv.proc_table("msg")
            if row["key"] != 0
        ]


def _row_info(url: str, row: dict[str, int]) -> ObjectInfo:
    return ObjectInfo(
        url=url,
        kind="sysv-mq",
        path=f"key {_sysv.key_name(row['key'])}, id {row['msqid']}",
        owner=row["uid"],
        mode=row["perms"] & 0o777,
        depth=row["qnum"],
        used_bytes=row["cbytes"],
        max_message_size=_msgmax(),
        instance=_inventory.sysv_instance(row["msqid"], row["cuid"]),
    )
