"""sysv+shm://NAME — the shm:// ring over a System V segment; and sysv+sem://NAME, System V
semaphores (``osipc.Semaphore``, ``osipc.Lock``).

The ring is the same implementation as shm:// (``_ring``): records, commit protocol,
queue and broadcast, futex waits. Only the memory and the locks differ: the segment is
``shmget(key)``, and each lock is a SysV semaphore taken with SEM_UNDO, so the kernel
itself releases the lock of a process that dies holding it (no claims needed).

URL:     ``sysv+shm://NAME?capacity=1M&slots=64&spin=0&overflow=block&mode=0600`` (or a
         literal key ``sysv+shm://0x5a5a``); ``sysv+sem://NAME?value=1&undo=1``.

Keys: the segment has ``osipc.sysv_key(NAME)`` (or the literal key); its semaphores have
``sysv_key(NAME + ":tx")`` and ``sysv_key(NAME + ":rx")``.

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
import threading
from collections.abc import Iterator
from contextlib import contextmanager
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
)
from osipc.transports import _sysv

MADV_POPULATE_WRITE = 23
SEM_VALUE_MAX = 32767  # SEMVMX


class UndoLock(_ring.RingLock):
    """A SysV semaphore taken with SEM_UNDO: the kernel releases a dead holder's lock."""

    def __init__(self, sem: sysv_ipc.Semaphore, slot: int = 0) -> None:
        self._sem = sem
        sem.undo = True
        self._semid = sem.id
        super().__init__(slot)

    def _try(self, block: bool = False) -> bool:
        try:
            self._sem.acquire(0)
            return True
        except sysv_ipc.BusyError:
            return False

    def fast(self) -> tuple[Any, Any, int, int]:
        return self._try, self._sem.release, -1, 0

    def accel_spec(self) -> tuple[Any, ...] | None:
        return (self._semid,)

    def acquire(self, deadline: Deadline) -> None:
        self.enter(deadline)
        try:
            self._take(deadline)
        except BaseException:
            self.local.release()
            raise

    def _take(self, deadline: Deadline) -> None:
        if self._try():
            return
        while True:
            left = deadline.remaining()
            if left == 0:
                raise Timeout(f"the ring's lock is busy {deadline.describe()}")
            try:
                if _sysv.semtimedop(self._semid, -1, True, left):
                    return
            except InterruptedError:
                continue  # the handler ran (and did not raise): the time left goes on
            raise Timeout(f"the ring's lock is busy {deadline.describe()}")

    def release(self) -> None:
        self._sem.release()
        self.local.release()


def _create_sem(address: Address, key: int, value: int, mode: int) -> sysv_ipc.Semaphore:
    with _sysv.sysv_ipc_errors(f"create the semaphore of {address}"):
        return sysv_ipc.Semaphore(key, sysv_ipc.IPC_CREX, mode=mode, initial_value=value)


class SysvRingBackend(_ring.SegmentBackend):
    """A ring in a SysV segment, locked with SysV semaphores taken with SEM_UNDO."""

    record_kind = "sysv-shm"

    def __init__(
        self, address: Address, options: Any, codec: Codec[Any], kind: int, role: int
    ) -> None:
        self._shm: Any = None
        self._sems: list[sysv_ipc.Semaphore] = []
        self._local = threading.Lock()
        super().__init__(address, options, codec, kind, role)

    def _roles(self, kind: int) -> list[str]:
        return ["tx"] + (["rx"] if kind == _ring.KIND_QUEUE else [])

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
        libc = ctypes.CDLL(None, use_errno=True)
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        if libc.madvise(self._shm.address, size, MADV_POPULATE_WRITE) != 0:
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

    def _map(self, size: int) -> Any:
        return (ctypes.c_char * size).from_buffer(self._shm)

    def _create_locks(self, kind: int, options: Any) -> None:
        for role in self._roles(kind):
            key = _sysv.companion_key(self._address.name, role)
            try:
                sem = _create_sem(self._address, key, 1, options.mode)
            except NotFound:  # a stale one from an earlier channel of this name
                with _sysv.sysv_ipc_errors(f"replace the semaphore of {self._address}"):
                    sysv_ipc.Semaphore(key, 0).remove()
                sem = _create_sem(self._address, key, 1, options.mode)
            self._sems.append(sem)

    def _open_locks(self, kind: int) -> None:
        for role in self._roles(kind):
            key = _sysv.companion_key(self._address.name, role)
            try:
                with _sysv.sysv_ipc_errors(f"open the semaphore of {self._address}"):
                    self._sems.append(sysv_ipc.Semaphore(key, 0))
            except NotFound:
                raise NotFound(
                    f"{self._address}: its semaphore (key {_sysv.key_name(key)}) is missing; "
                    f"remove the ring (osipc rm {self._address.base_url}) and create it again",
                    errno=errno.ENOENT,
                ) from None

    def _locks(self, kind: int) -> tuple[_ring.RingLock, _ring.RingLock | None]:
        tx = UndoLock(self._sems[0], self.slot)
        return tx, (UndoLock(self._sems[1], self.slot) if kind == _ring.KIND_QUEUE else None)

    def _take_slot(self, role: int) -> int:
        # No kernel lease without a file: take the slot under the producers' semaphore.
        lock = UndoLock(self._sems[0])
        lock.acquire(Deadline(5.0))
        try:
            return super()._take_slot(role)
        finally:
            lock.release()

    def _claim_slot(self, index: int) -> bool:
        return not self.alive(index)

    def alive(self, slot: int) -> bool:
        pid, _, start, *_ = _ring.SLOT.unpack_from(
            self.mm, _ring.OFF_SLOTS + slot * _ring.SLOT_SIZE
        )
        return bool(pid) and _inventory.process_alive(pid, start or None)

    @contextmanager
    def admin(self) -> Iterator[None]:
        with self._local:  # (only the claims protocol needs more; SEM_UNDO locks do not)
            yield

    def _release(self, in_child: bool) -> None:
        self.mm = None  # the ctypes view must go before detach
        self._sems = []
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
    summary = "the shm:// ring over System V shared memory (SEM_UNDO locks)"
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


def _segment_info(url: str, row: dict[str, int]) -> ObjectInfo:
    info: dict[str, Any] = {}
    kind = "sysv-shm"
    try:
        segment = sysv_ipc.SharedMemory(row["key"], 0)
    except (sysv_ipc.Error, OSError):
        segment = None
    if segment is not None:
        try:
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
        attached=(),
        **info,
    )


# -- sysv+sem ----------------------------------------------------------------------------


class SysvSemaphore:
    """SemLock's API over a SysV semaphore, with timed waits through semtimedop."""

    def __init__(self, sem: sysv_ipc.Semaphore, undo: bool) -> None:
        self._sem = sem
        self._undo = undo
        sem.undo = undo

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        if not block:
            try:
                self._sem.acquire(0)
                return True
            except sysv_ipc.BusyError:
                return False
        deadline = Deadline(timeout)
        while True:
            try:
                return _sysv.semtimedop(self._sem.id, -1, self._undo, deadline.remaining())
            except InterruptedError:
                continue  # the handler ran and did not raise: wait with the time left
            except OSError as exc:
                raise _sysv.map_sysv_ipc(
                    exc, f"acquire the semaphore {_sysv.key_name(self._sem.key)}"
                ) from exc

    def release(self) -> None:
        try:
            self._sem.release()
        except sysv_ipc.Error as exc:
            raise _sysv.map_sysv_ipc(exc, "release the semaphore") from exc
        except (ValueError, OverflowError):  # ERANGE: past SEMVMX
            raise OSError(errno.EOVERFLOW, f"at SEMVMX ({SEM_VALUE_MAX})") from None

    def _get_value(self) -> int:
        return int(self._sem.value)

    @property
    def last_pid(self) -> int:
        return int(self._sem.last_pid)


class SysvLock:
    """osipc.Lock over a SysV semaphore of value 1 taken with SEM_UNDO: the kernel releases
    a dead holder's lock."""

    def __init__(self, sem: SysvSemaphore) -> None:
        self._sem = sem

    def acquire(self, deadline: Deadline) -> None:
        if not self._sem.acquire(True, deadline.remaining()):
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
                    _inventory.write_record(address, kind=record_kind, mode=mode, codec=None)
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
    )
