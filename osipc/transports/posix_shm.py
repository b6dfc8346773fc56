"""shm://NAME — osipc's fast path: a ring in POSIX shared memory ``/NAME``; and sem://NAME,
POSIX named semaphores (``osipc.Semaphore``, ``osipc.Lock``).

Features: queue semantics for many senders and receivers (``osipc.sender`` /
``osipc.receiver``), broadcast (``osipc.publisher`` / ``osipc.subscriber``), messages of
any size up to the ring's capacity, end-of-stream, native timeouts (futex), batches that
take the lock once, ``recv_into`` straight from the ring, crash safety (see ``_ring``).
Also the storage of ``osipc.SharedMemory`` blocks.

URL:     ``shm://NAME?capacity=1M&slots=64&spin=0&overflow=block&mode=0600``

Options: ``capacity`` data bytes (K/M/G suffixes), used when creating; the largest
                      message is capacity minus an 8-byte header (16 for broadcast).
         ``slots``    most handles attached at once (each takes one 64-byte slot).
         ``spin``     microseconds to poll before sleeping: lower latency, a busy core.
         ``overflow`` broadcast only: ``block`` (the publisher waits for the slowest live
                      subscriber; default) or ``error`` (it never waits; a subscriber a
                      whole ring behind gets ``osipc.Overrun`` with the count it missed).
         and the common ``create``, ``exclusive``, ``mode``, ``trust_existing``.

Kernel objects: the segment ``/NAME`` (``/dev/shm/NAME``) and the semaphores ``/NAME:tx``
(and ``/NAME:rx`` for a queue); ``:`` cannot occur in a name, so they never collide with
another channel. ``osipc.unlink`` removes all of them. Segments are allocated with
posix_fallocate when created, so a full /dev/shm is a clean error, never SIGBUS.

Liveness of attached handles is a lease the kernel keeps: each handle holds an
open-file-description lock on one byte far past the end of the segment, which the kernel
drops when the process dies, whatever its pid namespace.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import stat
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import posix_ipc

from osipc import _futex, _inventory, _ring
from osipc._abc import Capabilities, ObjectInfo, Receiver, Sender, Transport
from osipc._address import (
    Address,
    CommonOptions,
    option,
    parse_choice,
    parse_int,
    validate_name,
)
from osipc._codecs import Codec, codec_name
from osipc._deadline import Backoff, Deadline
from osipc._errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    OsipcError,
    PermissionDenied,
    TransportError,
    Unsupported,
    os_errors,
)
from osipc.transports._posix_ipc import posix_ipc_errors

try:  # CPython's C semaphore: 4x cheaper than posix_ipc, and EINTR-correct when blocking
    from _multiprocessing import SemLock as _SemLock
except ImportError:  # pragma: no cover - other interpreters
    _SemLock = None

SHM_DIR = "/dev/shm"
LEASE_BASE = 1 << 40  # lease bytes live far past the end of any segment
_FLOCK = struct.Struct("hhqqi4x")  # struct flock on 64-bit Linux
INIT_WAIT = 2.0  # how long an attacher waits for a creator to finish initialising


def _parse_spin(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("expected microseconds to spin, e.g. 50")
    try:
        micros = float(value)
    except ValueError:
        raise ValueError("expected microseconds to spin, e.g. 50") from None
    if not 0 <= micros <= 1_000_000:
        raise ValueError("must be 0..1000000 microseconds")
    return micros / 1e6


def _parse_capacity(value: object) -> int:
    size = _ring.parse_size(value)
    if size < 4096:
        raise ValueError("must be at least 4096 bytes")
    if size > 1 << 40:
        raise ValueError("must be at most 1 TiB")
    return (size + 15) & ~15


@dataclass(frozen=True)
class ShmOptions(CommonOptions):
    capacity: int = option(_ring.DEFAULT_CAPACITY, _parse_capacity, "data bytes at creation")
    slots: int = option(_ring.DEFAULT_SLOTS, parse_int(2, 4096), "most handles attached")
    spin: float = option(0.0, _parse_spin, "microseconds to poll before sleeping")
    overflow: str = option("block", parse_choice("block", "error"), "broadcast: block|error")


def _capabilities(kind: int, capacity: int) -> Capabilities:
    return Capabilities(
        ordered=True,
        broadcast=kind == _ring.KIND_BROADCAST,
        selectable=False,
        max_message_size=_ring.max_message(capacity, kind),
        timeouts="native",
        end_of_stream=True,
        persistent=True,
    )


# -- segments ----------------------------------------------------------------------------


def _shm_free() -> int | None:
    try:
        info = os.statvfs(SHM_DIR)
    except OSError:
        return None
    return info.f_bavail * info.f_frsize


def _no_room(address: Address, size: int, free: int | None) -> TransportError:
    have = "an unknown amount" if free is None else f"{free >> 20} MiB"
    return TransportError(
        f"cannot create {address}: it needs {size} bytes ({size >> 20} MiB) of {SHM_DIR} and "
        f"{have} is free; free space (osipc gc, osipc rm), ask for a smaller capacity=/size=, "
        f"or grow the tmpfs (mount -o remount,size=... {SHM_DIR})",
        errno=errno.ENOSPC,
    )


def _check_owner(st: os.stat_result, address: Address, trust_existing: bool) -> None:
    if st.st_uid != os.geteuid() and not trust_existing:
        raise PermissionDenied(
            f"{address} was created by uid {st.st_uid}, not by you (uid {os.geteuid()}); "
            "refusing to attach (pass trust_existing=True if that user is trusted)",
            errno=errno.EPERM,
        )


def open_segment(
    address: Address,
    name: str,
    size: int | None,
    *,
    create: bool,
    exclusive: bool,
    mode: int,
    trust_existing: bool,
) -> tuple[int, int, bool]:
    """Open-or-create the POSIX segment ``name``: (fd, size, created). A created segment
    has ``size`` bytes, really allocated (posix_fallocate), and exactly ``mode``."""
    for _ in range(5):  # create and open can race with another process's unlink
        if create:
            if size is None:
                raise InvalidArgument(f"{address}: size= is needed to create it")
            free = _shm_free()
            if free is not None and size > free:
                raise _no_room(address, size, free)
            try:
                with posix_ipc_errors(f"create {address}"):
                    segment = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, mode=mode)
            except NotFound:  # ExistentialError under O_CREX: it exists
                if exclusive:
                    raise AlreadyExists(
                        f"{address} exists (exclusive=True)", errno=errno.EEXIST
                    ) from None
            else:
                fd = segment.fd
                try:
                    with os_errors(f"create {address}"):
                        os.fchmod(fd, mode)  # the umask narrowed it
                        os.ftruncate(fd, size)
                        try:
                            os.posix_fallocate(fd, 0, size)
                        except OSError as exc:
                            if exc.errno == errno.ENOSPC:
                                raise _no_room(address, size, _shm_free()) from None
                            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                                raise
                except BaseException:
                    os.close(fd)
                    posix_ipc.unlink_shared_memory(name)
                    raise
                return fd, size, True
        try:
            with posix_ipc_errors(f"open {address}"):
                segment = posix_ipc.SharedMemory(name, 0)
        except NotFound:
            if create:
                continue
            raise NotFound(f"{address} does not exist (create=False)", errno=errno.ENOENT) from None
        fd = segment.fd
        try:
            with os_errors(f"inspect {address}"):
                st = os.fstat(fd)
            _check_owner(st, address, trust_existing)
        except BaseException:
            os.close(fd)
            raise
        return fd, st.st_size, False
    raise TransportError(f"{address}: it kept disappearing while being opened; try again")


def _sem_path(name: str) -> str:
    return os.path.join(SHM_DIR, "sem." + name[1:])


def create_semaphore(address: Address, name: str, value: int, mode: int, maxvalue: int) -> Any:
    """Create the named semaphore exclusively, mode exact; return it for fast use."""
    with posix_ipc_errors(f"create the semaphore of {address}"):
        sem = posix_ipc.Semaphore(name, posix_ipc.O_CREX, mode=mode, initial_value=value)
    sem.close()
    _fix_semaphore_mode(address, name, mode)
    return attach_semaphore(address, name, maxvalue)


def _fix_semaphore_mode(address: Address, name: str, mode: int) -> None:
    # glibc keeps named semaphores as /dev/shm/sem.NAME; posix_ipc gives no fd to fchmod
    with os_errors(f"set the mode of {address}'s semaphore"):
        fd = os.open(_sem_path(name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fchmod(fd, mode)
        finally:
            os.close(fd)


def attach_semaphore(address: Address, name: str, maxvalue: int) -> Any:
    if _SemLock is None:  # pragma: no cover
        return _PosixIpcSemaphore(name)
    try:
        return _SemLock._rebuild(0, 1, maxvalue, name)
    except FileNotFoundError:
        raise NotFound(
            f"{address}: its semaphore {name} is missing (removed behind osipc's back?); "
            f"remove the object (osipc rm {address.base_url}) and create it again",
            errno=errno.ENOENT,
        ) from None
    except PermissionError:
        raise PermissionDenied(
            f"{address}: no permission to open its semaphore {name}", errno=errno.EACCES
        ) from None


class _PosixIpcSemaphore:  # pragma: no cover - only where _multiprocessing is missing
    def __init__(self, name: str) -> None:
        self._sem = posix_ipc.Semaphore(name)

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        try:
            self._sem.acquire(0 if not block else timeout)
            return True
        except posix_ipc.BusyError:
            return False

    def release(self) -> None:
        self._sem.release()

    def _get_value(self) -> int:
        return int(self._sem.value)


def _unlink_semaphore(name: str) -> bool:
    try:
        posix_ipc.unlink_semaphore(name)
        return True
    except posix_ipc.ExistentialError:
        return False


# -- ring backend ------------------------------------------------------------------------


class PosixRingBackend(_ring.RingBackend):
    """A ring in a POSIX segment, locked with POSIX semaphores made robust by claims."""

    def __init__(
        self, address: Address, options: ShmOptions, codec: Codec[Any], kind: int, role: int
    ) -> None:
        _ring.require_support(address.url or address.base_url)
        self._address = address
        self._fd = -1
        self._anchor: Any = None
        self.mm: Any = None
        self.slot = -1
        self._sems: list[Any] = []
        self._admin_lock = threading.Lock()
        try:
            self._open(options, codec, kind, role)
        except BaseException:
            self.close(in_child=False)
            raise

    def _open(self, options: ShmOptions, codec: Codec[Any], kind: int, role: int) -> None:
        address, name = self._address, "/" + self._address.name
        size = _ring.segment_size(options.capacity, options.slots)
        self._fd, actual, created = open_segment(
            address,
            name,
            size,
            create=options.create,
            exclusive=options.exclusive,
            mode=options.mode,
            trust_existing=options.trust_existing,
        )
        if created:
            # Fresh semaphores: any left by an earlier channel of this name are stale.
            sems = [name + ":tx"] + ([name + ":rx"] if kind == _ring.KIND_QUEUE else [])
            for sem_name in sems:
                _unlink_semaphore(sem_name)
                self._sems.append(create_semaphore(address, sem_name, 1, options.mode, 1))
            with os_errors(f"map {address}"):
                self.mm = mmap.mmap(self._fd, size)
            overflow = _ring.OVERFLOW_ERROR if options.overflow == "error" else _ring.OVERFLOW_BLOCK
            _ring.write_header(self.mm, kind, options.capacity, options.slots, overflow)
            _inventory.write_record(
                address,
                kind=f"shm-{_ring.KIND_NAMES[kind]}",
                mode=options.mode,
                codec=codec_name(codec),
                max_message_size=_ring.max_message(options.capacity, kind),
            )
        else:
            if actual < _ring.OFF_SLOTS:
                raise self._not_a_ring()
            with os_errors(f"map {address}"):
                self.mm = mmap.mmap(self._fd, actual)
            header = self._wait_for_header()
            found = header[0]
            if found != kind:
                wanted = (
                    "osipc.publisher/subscriber"
                    if found == _ring.KIND_BROADCAST
                    else ("osipc.sender/receiver")
                )
                raise InvalidArgument(
                    f"{address} is a {_ring.KIND_NAMES[found]} ring; open it with {wanted}"
                )
            if actual < _ring.segment_size(header[1], header[2]):
                raise self._not_a_ring()
            sems = [name + ":tx"] + ([name + ":rx"] if kind == _ring.KIND_QUEUE else [])
            self._sems = [attach_semaphore(address, sem_name, 1) for sem_name in sems]
        self.kind, self.capacity, self.slots, self.overflow, self.data = _ring.read_header(self.mm)  # type: ignore[misc]
        self._anchor, self.address = _futex.address_of(self.mm)
        self.slot = self._take_slot(role)
        self.tx = _ring.ClaimLock(
            self._sems[0], self, _ring.OFF_TX_GEN, _ring.FLAG_TX, _ring.CLAIM_TX
        )
        self.rx = (
            _ring.ClaimLock(self._sems[1], self, _ring.OFF_RX_GEN, _ring.FLAG_RX, _ring.CLAIM_RX)
            if kind == _ring.KIND_QUEUE
            else None
        )

    def _not_a_ring(self) -> InvalidArgument:
        return InvalidArgument(
            f"{self._address} exists but is not an osipc ring channel (an osipc.SharedMemory "
            "block, or another program's segment); use another name"
        )

    def _wait_for_header(self) -> tuple[int, int, int, int, int]:
        backoff = Backoff(0.0005, 0.05)
        deadline = Deadline(INIT_WAIT)
        while True:
            header = _ring.read_header(self.mm)
            if header is not None:
                return header
            if bytes(self.mm[0:8]) != b"\0" * 8:
                raise self._not_a_ring()
            if not backoff.wait(deadline):
                raise TransportError(
                    f"{self._address} exists but was never initialised (its creator died "
                    f"while creating it?); remove it: osipc rm {self._address.base_url}"
                )

    # -- leases and slots ----------------------------------------------------------------

    def _lease(self, command: int, kind: int, slot: int) -> bytes:
        request = _FLOCK.pack(kind, os.SEEK_SET, LEASE_BASE + slot, 1, 0)
        return fcntl.fcntl(self._fd, command, request)

    def _take_slot(self, role: int) -> int:
        pid = os.getpid()
        start = _inventory.proc_start_time(pid) or 0
        for index in range(self.slots):
            try:
                self._lease(fcntl.F_OFD_SETLK, fcntl.F_WRLCK, index)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    continue
                raise
            _ring.SLOT.pack_into(
                self.mm, _ring.OFF_SLOTS + index * _ring.SLOT_SIZE, pid, 0, start, 0, 0, 0, role
            )
            return index
        raise TransportError(
            f"{self._address}: all {self.slots} slots are in use (one per attached handle); "
            "close handles, or create the channel with more slots=",
            errno=errno.EUSERS,
        )

    def alive(self, slot: int) -> bool:
        result = self._lease(fcntl.F_OFD_GETLK, fcntl.F_WRLCK, slot)
        return bool(_FLOCK.unpack(result)[0] != fcntl.F_UNLCK)

    @contextmanager
    def admin(self) -> Iterator[None]:
        with self._admin_lock:  # threads of this process share one flock description
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self, in_child: bool) -> None:
        if self.mm is not None and self.slot >= 0 and not in_child:
            _ring.SLOT.pack_into(
                self.mm, _ring.OFF_SLOTS + self.slot * _ring.SLOT_SIZE, 0, 0, 0, 0, 0, 0, 0
            )
        self._anchor = None
        if self.mm is not None:
            try:
                self.mm.close()
            except BufferError:  # a view is still alive; the mapping goes with it
                pass
            self.mm = None
        self._sems = []
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)  # also drops the lease


# -- transports --------------------------------------------------------------------------


def _holders_from_locks(identity: tuple[int, int]) -> list[int]:
    """Pids holding a flock on the file ``identity``, from /proc/locks."""
    dev, ino = identity
    wanted = f"{os.major(dev):02x}:{os.minor(dev):02x}:{ino}"
    pids = []
    try:
        with open("/proc/locks") as locks:
            for line in locks:
                fields = line.split()
                if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == wanted:
                    pids.append(int(fields[4]))
    except (OSError, ValueError):
        pass
    return pids


class ShmTransport(Transport):
    scheme = "shm"
    summary = "ring in POSIX shared memory: the fast path; queue or broadcast"
    options = ShmOptions
    capabilities = _capabilities(_ring.KIND_QUEUE, _ring.DEFAULT_CAPACITY)

    def _open(
        self, cls: Any, address: Address, options: Any, codec: Codec[Any], *, kind: int, role: int
    ) -> Any:
        backend = PosixRingBackend(address, options, codec, kind, role)
        try:
            return cls(address, _capabilities(kind, backend.capacity), codec, backend, options.spin)
        except BaseException:
            backend.close(in_child=False)
            raise

    def open_sender(self, address: Address, options: Any, codec: Codec[Any]) -> Sender[Any]:
        return self._open(  # type: ignore[no-any-return]
            _ring.RingSender, address, options, codec, kind=_ring.KIND_QUEUE, role=_ring.ROLE_SENDER
        )

    def open_receiver(self, address: Address, options: Any, codec: Codec[Any]) -> Receiver[Any]:
        return self._open(  # type: ignore[no-any-return]
            _ring.RingReceiver,
            address,
            options,
            codec,
            kind=_ring.KIND_QUEUE,
            role=_ring.ROLE_RECEIVER,
        )

    def open_publisher(self, address: Address, options: Any, codec: Codec[Any]) -> Sender[Any]:
        return self._open(  # type: ignore[no-any-return]
            _ring.RingSender,
            address,
            options,
            codec,
            kind=_ring.KIND_BROADCAST,
            role=_ring.ROLE_PUBLISHER,
        )

    def open_subscriber(self, address: Address, options: Any, codec: Codec[Any]) -> Receiver[Any]:
        return self._open(  # type: ignore[no-any-return]
            _ring.RingSubscriber,
            address,
            options,
            codec,
            kind=_ring.KIND_BROADCAST,
            role=_ring.ROLE_SUBSCRIBER,
        )

    def open_block(
        self,
        address: Address,
        size: int | None,
        *,
        create: bool,
        exclusive: bool,
        mode: int,
        trust_existing: bool,
    ) -> tuple[int, int, bool]:
        """(fd, size, created) for an ``osipc.SharedMemory`` block; refuses rings."""
        fd, actual, created = open_segment(
            address,
            "/" + address.name,
            size,
            create=create,
            exclusive=exclusive,
            mode=mode,
            trust_existing=trust_existing,
        )
        try:
            if not created:
                with os_errors(f"read {address}"):
                    head = os.pread(fd, 8, 0)
                if head == _ring.MAGIC:
                    raise InvalidArgument(
                        f"{address} is an osipc ring channel, not a SharedMemory block; "
                        "open it with osipc.sender/receiver or publisher/subscriber"
                    )
                if size is not None and size != actual:
                    raise InvalidArgument(
                        f"{address} has {actual} bytes, not the size={size} asked for; "
                        "omit size= to attach to it as it is"
                    )
            else:
                _inventory.write_record(address, kind="shm-block", mode=mode, codec=None)
        except BaseException:
            os.close(fd)
            raise
        return fd, actual, created

    def unlink(self, address: Address) -> None:
        name = "/" + address.name
        removed_sems = [_unlink_semaphore(name + suffix) for suffix in (":tx", ":rx")]
        try:
            with posix_ipc_errors(f"remove {address}"):
                posix_ipc.unlink_shared_memory(name)
        except NotFound:
            if not any(removed_sems):
                raise

    def info(self, address: Address) -> ObjectInfo:
        name = "/" + address.name
        with posix_ipc_errors(f"{address}"):
            segment = posix_ipc.SharedMemory(name, 0, read_only=True)
        fd = segment.fd
        try:
            with os_errors(f"inspect {address}"):
                st = os.fstat(fd)
                mapped = mmap.mmap(fd, st.st_size, prot=mmap.PROT_READ) if st.st_size else None
        finally:
            os.close(fd)
        common = {
            "url": address.base_url,
            "path": os.path.join(SHM_DIR, address.name),
            "owner": st.st_uid,
            "mode": stat.S_IMODE(st.st_mode),
            "size": st.st_size,
            "identity": (st.st_dev, st.st_ino),
        }
        if mapped is None or not _ring.is_ring(mapped):
            if mapped is not None:
                mapped.close()
            return ObjectInfo(kind="shm-block", **common)  # type: ignore[arg-type]
        try:
            header = _ring.read_header(mapped)
            assert header is not None
            kind, capacity, _, _, _ = header
            numbers = _ring.stats(mapped)
        finally:
            mapped.close()
        return ObjectInfo(
            kind=f"shm-{_ring.KIND_NAMES[kind]}",
            depth=numbers.get("depth"),
            capacity_bytes=capacity,
            used_bytes=numbers.get("used"),
            max_message_size=_ring.max_message(capacity, kind),
            **common,  # type: ignore[arg-type]
        )

    def inventory(self) -> list[ObjectInfo]:
        found = []
        try:
            entries = sorted(os.listdir(SHM_DIR))
        except OSError:
            return []
        for entry in entries:
            if entry.startswith("sem.") or ":" in entry:
                continue  # semaphores (sem://) and osipc's own companions
            try:
                validate_name(entry, entry)
                found.append(self.info(Address("shm", entry)))
            except (OsipcError, OSError):
                continue
        return found


class SemTransport(Transport):
    scheme = "sem"
    summary = "POSIX named semaphore: osipc.Semaphore and osipc.Lock (not a channel)"

    def _no_channel(self, address: Address) -> Unsupported:
        return Unsupported(
            f"{address.base_url} names a semaphore, not a channel: use osipc.Semaphore or "
            "osipc.Lock (or a channel scheme such as shm:// or mq://)"
        )

    def open_sender(self, address: Address, options: Any, codec: Codec[Any]) -> Sender[Any]:
        raise self._no_channel(address)

    def open_receiver(self, address: Address, options: Any, codec: Codec[Any]) -> Receiver[Any]:
        raise self._no_channel(address)

    def open_semaphore(
        self,
        address: Address,
        value: int,
        *,
        create: bool,
        exclusive: bool,
        mode: int,
        trust_existing: bool,
        record_kind: str,
    ) -> tuple[Any, str]:
        """(semaphore with SemLock's API, path of its file) — open-or-create, mode exact,
        owner checked on attach."""
        name = "/" + address.name
        path = _sem_path(name)
        for _ in range(5):
            if create:
                try:
                    sem = create_semaphore(address, name, value, mode, 0x7FFFFFFF)
                except NotFound:  # ExistentialError under O_CREX: it exists
                    if exclusive:
                        raise AlreadyExists(
                            f"{address} exists (exclusive=True)", errno=errno.EEXIST
                        ) from None
                else:
                    _inventory.write_record(address, kind=record_kind, mode=mode, codec=None)
                    return sem, path
            try:
                with os_errors(f"open {address}"):
                    st = os.stat(path, follow_symlinks=False)
            except NotFound:
                if create:
                    continue
                raise NotFound(
                    f"{address} does not exist (create=False)", errno=errno.ENOENT
                ) from None
            _check_owner(st, address, trust_existing)
            try:
                return attach_semaphore(address, name, 0x7FFFFFFF), path
            except NotFound:
                if create:
                    continue
                raise
        raise TransportError(f"{address}: it kept disappearing while being opened; try again")

    def unlink(self, address: Address) -> None:
        with posix_ipc_errors(f"remove {address}"):
            posix_ipc.unlink_semaphore("/" + address.name)

    def info(self, address: Address) -> ObjectInfo:
        path = _sem_path("/" + address.name)
        with os_errors(f"{address}"):
            st = os.stat(path, follow_symlinks=False)
        with posix_ipc_errors(f"{address}"):
            sem = posix_ipc.Semaphore("/" + address.name)
        try:
            value = int(sem.value)
        finally:
            sem.close()
        identity = (st.st_dev, st.st_ino)
        holders = tuple(_holders_from_locks(identity))
        return ObjectInfo(
            url=address.base_url,
            kind="sem-lock" if holders else "semaphore",
            path=path,
            owner=st.st_uid,
            mode=stat.S_IMODE(st.st_mode),
            value=value,
            holder=holders[0] if holders else None,
            identity=identity,
        )

    def inventory(self) -> list[ObjectInfo]:
        found = []
        try:
            entries = sorted(os.listdir(SHM_DIR))
        except OSError:
            return []
        for entry in entries:
            if not entry.startswith("sem.") or ":" in entry:
                continue
            try:
                validate_name(entry[4:], entry)
                found.append(self.info(Address("sem", entry[4:])))
            except (OsipcError, OSError):
                continue
        return found
