"""sysv+shm://NAME — the shm:// ring over a System V segment; and sysv+sem://NAME, System V
semaphores (``osipc.Semaphore``, ``osipc.Lock``).

The ring is the same implementation as shm:// (``_ring``): records, commit protocol,
queue and broadcast, robust locks, futex waits. Only the memory and the semaphores differ:
the segment is ``shmget(key)``; each lock is a process-shared POSIX semaphore inside it
(``sem_init(pshared=1)``: taking one uncontended is an atomic, no system call), made robust
by the same claims as shm://'s; and the ring's SysV semaphore, taken with SEM_UNDO, guards
the takeover checks and slot claims (the flock of shm://): the kernel releases it if a
process dies there. (Before ring format 2 each lock was a SysV semaphore taken with
SEM_UNDO: two system calls per lock, half shm://'s speed for small messages.)

URL:     ``sysv+shm://NAME?capacity=1M&slots=64&spin=20&overflow=block&mode=0600`` (or a
         literal key ``sysv+shm://0x5a5a``); ``sysv+sem://NAME?value=1&undo=1``.

Keys: the segment has ``osipc.sysv_key(NAME)`` (or the literal key); its semaphore has
``sysv_key(NAME + ":tx")`` (``NAME + ":rx"`` was a second one before format 2; removing a
ring removes both).

Semaphores: ``undo`` (default on) makes the kernel give back what a dead process took.
Turn it off for producer/consumer counting, where one process takes what another gives
(undo would hand the taker's units back when it exits).

Limits: kernel.shmmax (largest segment), kernel.shmall and kernel.shmmni (in all),
kernel.sem (semaphores in all). The segment is populated when created (MADV_POPULATE_WRITE)
so a machine without the memory says so at once. Modes are exact (SysV ignores the umask).
Liveness of attached handles is their pid and its start time.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import sysv_ipc

from osipc import _inventory, _limits, _ring
from osipc._abc import ObjectInfo, SemaphoreTransport
from osipc._address import Address
from osipc._codecs import Codec
from osipc._deadline import Deadline
from osipc._errors import (
    AlreadyExists,
    InvalidArgument,
    MessageTooLarge,
    NotFound,
    Timeout,
    TransportError,
    passed_on,
)
from osipc.transports import _sysv

MADV_POPULATE_WRITE = 23
SEM_VALUE_MAX = 32767  # SEMVMX
ADMIN_WAIT = 5.0  # the admin semaphore is held for microseconds; a dead holder's is undone


class SegmentSemaphore:
    """A process-shared POSIX semaphore (``sem_t``) inside the segment, taken as the
    claims protocol takes one: ``acquire(False) -> bool`` and ``release()``, like SemLock,
    whose ``handle`` (here the address) the C part takes too. It is only ever tried:
    waiters sleep on the lock's generation word."""

    def __init__(self, address: int) -> None:
        self.handle = address

    @staticmethod
    def init(address: int, value: int) -> None:
        """``sem_init(pshared=1)`` on fresh memory, before the ring's magic is written."""
        if _libc().sem_init(address, 1, value) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"sem_init: {os.strerror(code)}")

    def acquire(self, block: bool = False) -> bool:
        if block:
            raise ValueError("a ring's in-segment semaphore is only ever tried")
        if _libc().sem_trywait(self.handle) == 0:
            return True
        code = ctypes.get_errno()
        if code in (errno.EAGAIN, errno.EINTR):
            return False
        raise OSError(code, f"sem_trywait: {os.strerror(code)}")

    def release(self) -> None:
        if _libc().sem_post(self.handle) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"sem_post: {os.strerror(code)}")


@functools.cache
def _libc() -> Any:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.sem_init.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint]
    libc.sem_trywait.argtypes = libc.sem_post.argtypes = [ctypes.c_void_p]
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return libc


class UndoMutex:
    """The ring's SysV semaphore, taken with SEM_UNDO around takeover checks and slot
    claims (the backend's ``admin``): the kernel releases it if its holder dies there."""

    def __init__(self, sem: sysv_ipc.Semaphore) -> None:
        self._sem = sem
        sem.undo = True
        self._semid = sem.id
        self._local = threading.Lock()  # the threads of one process take turns first

    @contextmanager
    def held(self, deadline: Deadline) -> Iterator[None]:
        left = deadline.remaining()
        if not self._local.acquire(True, -1 if left is None else left):
            raise Timeout(f"the ring's admin semaphore is busy {deadline.describe()}")
        try:
            self._take(deadline)
            try:
                yield
            finally:
                with _sysv.sysv_ipc_errors("release the ring's admin semaphore"):
                    self._sem.release()
        finally:
            self._local.release()

    def _take(self, deadline: Deadline) -> None:
        while True:
            code = _sysv.semtimedop(self._semid, -1, True, deadline.remaining())
            if code == 0:
                return
            if code == errno.EAGAIN:
                raise Timeout(f"the ring's admin semaphore is busy {deadline.describe()}")
            if code != errno.EINTR:  # (EINTR: the handler did not raise; the time left goes on)
                raise _sysv.map_sysv_ipc(
                    OSError(code, os.strerror(code)), "take the ring's admin semaphore"
                )


def _create_sem(address: Address, key: int, value: int, mode: int) -> sysv_ipc.Semaphore:
    with _sysv.sysv_ipc_errors(f"create the semaphore of {address}"):
        return sysv_ipc.Semaphore(key, sysv_ipc.IPC_CREX, mode=mode, initial_value=value)


class SysvRingBackend(_ring.SegmentBackend):
    """A ring in a SysV segment: in-segment semaphores, an admin semaphore (SEM_UNDO)."""

    record_kind = "sysv-shm"

    def __init__(
        self, address: Address, options: Any, codec: Codec[Any], kind: int, role: int
    ) -> None:
        self._shm: Any = None
        self._admin: Any = None
        self._made_id = -1  # the segment this handle created, until it is made
        super().__init__(address, options, codec, kind, role)

    def _segment(self, options: Any, size: int) -> tuple[bool, int]:
        address = self._address
        key = _sysv.key_of(address.name)
        for _ in range(5):
            if options.create:
                try:
                    with _sysv.sysv_ipc_errors(f"create {address}"):
                        # init_character: sysv_ipc would otherwise fill it with spaces
                        self._shm = sysv_ipc.SharedMemory(
                            key, sysv_ipc.IPC_CREX, mode=options.mode, size=size,
                            init_character=b"\0",
                        )  # fmt: skip
                except NotFound:  # ExistentialError under IPC_CREX: it exists
                    if options.exclusive:
                        raise AlreadyExists(
                            f"{address} exists (exclusive=True)", errno=errno.EEXIST
                        ) from None
                except TransportError as exc:
                    raise _segment_failed(address, size, exc) from exc
                else:
                    self._made_id = self._shm.id
                    self._populate(size)
                    return True, size
            try:
                with _sysv.sysv_ipc_errors(f"open {address}"):
                    self._shm = sysv_ipc.SharedMemory(key, 0)
            except NotFound:
                if options.create:
                    continue
                raise NotFound(
                    f"{address} does not exist (create=False)", errno=errno.ENOENT
                ) from None
            _sysv.check_owner(self._shm.uid, address, options.trust_existing)
            return False, int(self._shm.size)
        raise TransportError(f"{address}: it kept disappearing while being opened; try again")

    def _populate(self, size: int) -> None:
        """Allocate every page now: a machine without the memory fails here, cleanly."""
        if _libc().madvise(self._shm.address, size, MADV_POPULATE_WRITE) != 0:
            code = ctypes.get_errno()
            if code in (errno.ENOMEM, errno.EFAULT):
                self._shm.detach()
                self._shm.remove()
                self._shm = None
                raise TransportError(
                    f"cannot create {self._address}: not enough memory for {size} bytes",
                    errno=errno.ENOMEM,
                )
            # EINVAL: a kernel older than 5.14; pages then come on first touch

    def _instance(self) -> str:
        return _inventory.sysv_instance(self._shm.id, self._shm.cuid)

    def _map(self, size: int) -> Any:
        return (ctypes.c_char * size).from_buffer(self._shm)

    def _create_locks(self, kind: int, options: Any) -> None:
        base = self._shm.address
        SegmentSemaphore.init(base + _ring.OFF_TX_SEM, 1)
        SegmentSemaphore.init(base + _ring.OFF_RX_SEM, 1)
        key = _sysv.companion_key(self._address.name, "tx")
        try:
            sem = _create_sem(self._address, key, 1, options.mode)
        except NotFound:  # a stale one from an earlier channel of this name
            with _sysv.sysv_ipc_errors(f"replace the semaphore of {self._address}"):
                sysv_ipc.Semaphore(key, 0).remove()
            sem = _create_sem(self._address, key, 1, options.mode)
        self._admin = UndoMutex(sem)

    def _open_locks(self, kind: int) -> None:
        key = _sysv.companion_key(self._address.name, "tx")
        try:
            with _sysv.sysv_ipc_errors(f"open the semaphore of {self._address}"):
                self._admin = UndoMutex(sysv_ipc.Semaphore(key, 0))
        except NotFound:
            raise NotFound(
                f"{self._address}: its semaphore (key {_sysv.key_name(key)}) is missing; "
                f"remove the ring (osipc rm {self._address.base_url}) and create it again",
                errno=errno.ENOENT,
            ) from None

    def _semaphores(self) -> tuple[Any, Any]:
        base = self._shm.address
        return SegmentSemaphore(base + _ring.OFF_TX_SEM), SegmentSemaphore(base + _ring.OFF_RX_SEM)

    def _take_slot(self, role: int) -> int:
        # No kernel lease without a file: slots are taken under the admin semaphore.
        with self.admin():
            return super()._take_slot(role)

    def _claim_slot(self, index: int) -> bool:
        return not self.alive(index)

    def alive(self, slot: int) -> bool:
        pid, _, start, *_ = _ring.SLOT.unpack_from(
            self.mm, _ring.OFF_SLOTS + slot * _ring.SLOT_SIZE
        )
        return bool(pid) and _inventory.process_alive(pid, start or None)

    def admin(self) -> AbstractContextManager[None]:
        held: AbstractContextManager[None] = self._admin.held(Deadline(ADMIN_WAIT))
        return held

    def _discard(self) -> None:
        key = _sysv.companion_key(self._address.name, "tx")
        row = _sysv.proc_row("sem", key)
        for remove, ipc_id in (
            (sysv_ipc.remove_semaphore, row["semid"] if row is not None else -1),
            (sysv_ipc.remove_shared_memory, self._made_id),
        ):
            if ipc_id >= 0:
                try:
                    remove(ipc_id)
                except sysv_ipc.Error:
                    pass

    def _made(self) -> None:
        self._made_id = -1

    def _release(self, in_child: bool) -> None:
        self.mm = None  # the ctypes view must go before detach
        self._admin = None
        if self._shm is not None:
            shm, self._shm = self._shm, None
            try:
                shm.detach()
            except sysv_ipc.Error:
                pass


def _segment_failed(address: Address, size: int, exc: TransportError) -> TransportError:
    text = str(exc)
    if exc.errno == errno.EINVAL or "Invalid" in text:
        return MessageTooLarge(
            f"cannot create {address}: {size} bytes exceeds kernel.shmmax="
            f"{_limits.sysv('shmmax')} (/proc/sys/kernel/shmmax); ask for a smaller capacity=",
            size=size,
            limit=_limits.sysv("shmmax") or 0,
        )
    if exc.errno == errno.ENOSPC or "No space" in text:
        return TransportError(
            f"cannot create {address}: the system is at kernel.shmmni={_limits.sysv('shmmni')} "
            f"segments or kernel.shmall={_limits.sysv('shmall')} pages; remove unused ones "
            "(osipc gc, ipcrm)",
            errno=errno.ENOSPC,
        )
    return exc


class SysvShmTransport(_ring.RingTransport):
    scheme = "sysv+shm"
    summary = "the shm:// ring over System V shared memory"
    backend = SysvRingBackend

    def parse_name(self, url: str, netloc: str, path: str) -> str:
        return _sysv.parse_name(url, netloc, path, self.scheme)

    def unlink(self, address: Address) -> None:
        removed = False
        for role in ("tx", "rx"):
            row = _sysv.proc_row("sem", _sysv.companion_key(address.name, role))
            if row is not None:
                with _sysv.sysv_ipc_errors(f"remove {address}'s semaphore"):
                    sysv_ipc.remove_semaphore(row["semid"])
                removed = True
        row = _sysv.proc_row("shm", _sysv.key_of(address.name))
        if row is None:
            if removed:
                return
            raise NotFound(f"{address} does not exist", errno=errno.ENOENT)
        with _sysv.sysv_ipc_errors(f"remove {address}"):
            sysv_ipc.remove_shared_memory(row["shmid"])

    def info(self, address: Address) -> ObjectInfo:
        row = _sysv.existing_row("shm", address)
        return _segment_info(address.base_url, row)

    def inventory(self) -> list[ObjectInfo]:
        return [
            _segment_info(f"sysv+shm://{_sysv.key_name(row['key'])}", row)
            for row in _sysv.proc_table("shm")
            if row["key"] != 0
        ]


def _mapped_identity(address: int) -> tuple[int, int] | None:
    """(st_dev, st_ino) of what this process maps at ``address``, as /proc/PID/maps shows
    it: for a System V segment, the shm file system's device and the segment's id, which
    is how _inventory.holders finds every process that has it attached."""
    start = f"{address:x}-"
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                if line.startswith(start):
                    fields = line.split(None, 5)
                    major, minor = (int(part, 16) for part in fields[3].split(":"))
                    return os.makedev(major, minor), int(fields[4])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _segment_info(url: str, row: dict[str, int]) -> ObjectInfo:
    info: dict[str, Any] = {}
    kind = "sysv-shm"
    identity = None
    try:
        segment = sysv_ipc.SharedMemory(row["key"], 0)
    except (sysv_ipc.Error, OSError):
        segment = None
    if segment is not None:
        try:
            identity = _mapped_identity(segment.address)
            # the attached segment, read in place (and not touched after the detach)
            whole = (ctypes.c_char * int(segment.size)).from_address(segment.address)
            header = _ring.read_header(whole) if len(whole) >= _ring.OFF_SLOTS else None
            if header is not None and segment.size >= _ring.data_offset(header[2]):
                numbers = _ring.stats(whole)
                kind = f"sysv-shm-{_ring.KIND_NAMES[header[0]]}"
                info = {
                    "depth": numbers.get("depth"),
                    "capacity_bytes": header[1],
                    "used_bytes": numbers.get("used"),
                    "max_message_size": _ring.max_message(header[1], header[0]),
                }
        finally:
            segment.detach()
    return ObjectInfo(
        url=url,
        kind=kind,
        path=f"key {_sysv.key_name(row['key'])}, id {row['shmid']}",
        owner=row["uid"],
        mode=row["perms"] & 0o777,
        size=row["size"],
        identity=identity,
        instance=_inventory.sysv_instance(row["shmid"], row["cuid"]),
        **info,
    )


# -- sysv+sem ----------------------------------------------------------------------------


class SysvSemaphore:
    """SemLock's API over a SysV semaphore, with timed waits through semtimedop."""

    maxvalue = SEM_VALUE_MAX
    limit = "SEMVMX"

    def __init__(self, sem: sysv_ipc.Semaphore, undo: bool) -> None:
        self._sem = sem
        self._undo = undo
        sem.undo = undo

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        # (never sysv_ipc's acquire(0): it blocks until a unit comes, however long)
        deadline = Deadline(timeout if block else 0.0)
        while True:
            code = _sysv.semtimedop(self._sem.id, -1, self._undo, deadline.remaining())
            if code == 0:
                return True
            if code == errno.EAGAIN:
                return False
            if code != errno.EINTR:  # (EINTR: the handler did not raise; wait the time left)
                raise _sysv.map_sysv_ipc(
                    OSError(code, os.strerror(code)),
                    f"acquire the semaphore {_sysv.key_name(self._sem.key)}",
                )

    def release(self) -> None:
        try:
            self._sem.release()
        except sysv_ipc.Error as exc:
            raise _sysv.map_sysv_ipc(exc, "release the semaphore") from exc
        except (ValueError, OverflowError) as exc:  # ERANGE: past SEMVMX
            passed_on(exc)  # (a signal handler's is not)
            raise OSError(errno.EOVERFLOW, f"at SEMVMX ({SEM_VALUE_MAX})") from None

    def _get_value(self) -> int:
        with _sysv.sysv_ipc_errors(f"read the semaphore {_sysv.key_name(self._sem.key)}"):
            return int(self._sem.value)

    @property
    def last_pid(self) -> int:
        with _sysv.sysv_ipc_errors(f"read the semaphore {_sysv.key_name(self._sem.key)}"):
            return int(self._sem.last_pid)


class SysvLock:
    """osipc.Lock over a SysV semaphore of value 1 taken with SEM_UNDO: the kernel releases
    a dead holder's lock."""

    def __init__(self, sem: SysvSemaphore) -> None:
        self._sem = sem

    CHECK_EVERY = 0.1  # how soon a wait sees the handle closed by another thread

    def acquire(self, deadline: Deadline, check: Callable[[], None]) -> None:
        """Take it by ``deadline``; ``check`` runs every CHECK_EVERY (it raises Closed
        when the handle was closed meanwhile)."""
        while True:
            if self._sem.acquire(True, deadline.slice(self.CHECK_EVERY)):
                return
            check()
            if deadline.remaining() == 0:
                holder = self.holder()
                who = f" by pid {holder}" if holder else ""
                raise Timeout(f"held{who} {deadline.describe()}")

    def release(self) -> None:
        self._sem.release()

    def holder(self) -> int | None:
        return self._sem.last_pid if self._sem._get_value() == 0 else None

    def close(self) -> None:
        pass


class SysvSemTransport(SemaphoreTransport):
    scheme = "sysv+sem"
    channels = "sysv+mq://"
    summary = "System V semaphore (SEM_UNDO): osipc.Semaphore and osipc.Lock (not a channel)"

    def parse_name(self, url: str, netloc: str, path: str) -> str:
        return _sysv.parse_name(url, netloc, path, self.scheme)

    def _open(self, address: Address, value: int, *, create: bool, exclusive: bool, mode: int,
              trust_existing: bool, record_kind: str) -> sysv_ipc.Semaphore:  # fmt: skip
        if value > SEM_VALUE_MAX:
            raise InvalidArgument(
                f"{address}: value={value}, but a SysV semaphore counts to {SEM_VALUE_MAX} "
                "(SEMVMX); use a smaller value, or sem:// for larger counts"
            )
        key = _sysv.key_of(address.name)
        for _ in range(5):
            if create:
                try:
                    sem = _create_sem(address, key, value, mode)
                except NotFound:  # it exists
                    if exclusive:
                        raise AlreadyExists(
                            f"{address} exists (exclusive=True)", errno=errno.EEXIST
                        ) from None
                else:
                    _inventory.write_record(
                        address, kind=record_kind, mode=mode, codec=None,
                        instance=_inventory.sysv_instance(sem.id, sem.cuid),
                    )  # fmt: skip
                    return sem
            try:
                with _sysv.sysv_ipc_errors(f"open {address}"):
                    sem = sysv_ipc.Semaphore(key, 0)
            except NotFound:
                if create:
                    continue
                raise NotFound(
                    f"{address} does not exist (create=False)", errno=errno.ENOENT
                ) from None
            _sysv.check_owner(sem.uid, address, trust_existing)
            return sem
        raise TransportError(f"{address}: it kept disappearing while being opened; try again")

    def open_semaphore(
        self,
        address: Address,
        value: int,
        *,
        undo: bool | None = None,
        record_kind: str = "semaphore",
        **common: Any,
    ) -> tuple[Any, None]:
        sem = self._open(address, value, record_kind=f"sysv-{record_kind}", **common)
        return SysvSemaphore(sem, True if undo is None else undo), None

    def open_lock(self, address: Address, **common: Any) -> SysvLock:
        sem = self._open(address, 1, record_kind="sysv-lock", **common)
        return SysvLock(SysvSemaphore(sem, True))

    def unlink(self, address: Address) -> None:
        row = _sysv.existing_row("sem", address)
        with _sysv.sysv_ipc_errors(f"remove {address}"):
            sysv_ipc.remove_semaphore(row["semid"])

    def info(self, address: Address) -> ObjectInfo:
        row = _sysv.existing_row("sem", address)
        return _sem_info(address.base_url, row)

    def inventory(self) -> list[ObjectInfo]:
        companions = set()  # the semaphores of osipc's own rings are shown with the ring
        for record in _inventory.load_records():
            if record.get("scheme") == "sysv+shm":
                for role in ("tx", "rx"):
                    companions.add(_sysv.companion_key(record["name"], role))
        return [
            _sem_info(f"sysv+sem://{_sysv.key_name(row['key'])}", row)
            for row in _sysv.proc_table("sem")
            if row["key"] != 0 and row["key"] not in companions
        ]


def _sem_info(url: str, row: dict[str, int]) -> ObjectInfo:
    value = holder = None
    try:
        sem = sysv_ipc.Semaphore(row["key"], 0)
        value = int(sem.value)
        holder = int(sem.last_pid) if value == 0 and sem.last_pid else None
    except (sysv_ipc.Error, OSError):
        pass
    return ObjectInfo(
        url=url,
        kind="sysv-semaphore",
        path=f"key {_sysv.key_name(row['key'])}, id {row['semid']}",
        owner=row["uid"],
        mode=row["perms"] & 0o777,
        value=value,
        holder=holder,
        instance=_inventory.sysv_instance(row["semid"], row["cuid"]),
    )
