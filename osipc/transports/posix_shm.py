"""shm://NAME — osipc's fast path: a ring in POSIX shared memory ``/NAME``; and sem://NAME,
POSIX named semaphores (``osipc.Semaphore``, ``osipc.Lock``).

Features: queue semantics for many senders and receivers (``osipc.sender`` /
``osipc.receiver``), broadcast (``osipc.publisher`` / ``osipc.subscriber``), messages of
any size up to the ring's capacity, end-of-stream, native timeouts (futex), batches that
take the lock once, ``recv_into`` straight from the ring, crash safety (see ``_ring``).
Also the storage of ``osipc.SharedMemory`` blocks.

URL:     ``shm://NAME?capacity=1M&slots=64&spin=20&overflow=block&mode=0600``

Options: ``capacity`` data bytes (K/M/G suffixes), used when creating; the largest
                      message is capacity minus an 8-byte header (16 for broadcast).
         ``slots``    most handles attached at once (each takes one 64-byte slot).
         ``spin``     microseconds a wait polls before it sleeps (default 20; 0 never
                      polls; ~100 gives a round trip of a few microseconds, and a
                      busy core while the peer is idle).
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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import posix_ipc

from osipc import _inventory, _ring
from osipc._abc import ObjectInfo, SemaphoreTransport
from osipc._address import (
    Address,
    validate_name,
)
from osipc._codecs import Codec
from osipc._deadline import Backoff, Deadline
from osipc._errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    OsipcError,
    PermissionDenied,
    Timeout,
    TransportError,
    Unsupported,
    map_os_error,
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
    has ``size`` bytes, really allocated (posix_fallocate), and exactly ``mode``, and
    comes with an exclusive flock on ``fd`` that the caller drops once the object in it
    is made (see _settled); an existing one is returned as its creator left it."""
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
                        fcntl.flock(fd, fcntl.LOCK_EX)  # attachers wait until it is made
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
                    made = _identity(fd)
                    os.close(fd)
                    _remove_quietly(name, made=made)  # (why it failed is what the caller hears)
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
                st = _settled(fd, address)
        except BaseException:
            os.close(fd)
            raise
        return fd, st.st_size, False
    raise TransportError(f"{address}: it kept disappearing while being opened; try again")


def _settled(fd: int, address: Address) -> os.stat_result:
    """The segment as its creator left it. A creator holds an exclusive flock from just
    after creating the segment until the object in it is made (sized and allocated, and a
    ring's header written), so an attacher that came in between waits for it rather than
    take a segment of 0 bytes, or one without its header yet, for something else. At most
    INIT_WAIT, then Timeout (a creator that died has let go of its flock). A free segment
    that stays at 0 bytes for 20 ms is taken as it is: its creator died before sizing it,
    or it is not osipc's."""
    deadline = Deadline(_ring.INIT_WAIT)
    empty: Deadline | None = None  # free but empty: a creator between shm_open and flock?
    backoff = Backoff(0.0002, 0.02)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            if deadline.expired():
                raise Timeout(
                    f"{address} is still being made by another process (it has held it "
                    f"for {_ring.INIT_WAIT:g} s); try again",
                    errno=errno.EAGAIN,
                ) from None
        else:
            try:
                st = os.fstat(fd)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
            if st.st_size:
                return st
            empty = empty or Deadline(0.02)  # (that gap is microseconds long)
            if empty.expired():
                return st  # its creator died before sizing it, or it is not osipc's
        backoff.wait(deadline)


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
    except OSError as exc:  # EMFILE, ENOMEM...
        raise map_os_error(exc, f"{address}: open its semaphore {name}") from exc


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


def _identity(fd: int) -> str | None:
    """Which segment ``fd`` is (``_inventory.fd_instance``), or None if that fails."""
    try:
        return _inventory.fd_instance(fd)
    except OsipcError:
        return None


def _remove_quietly(segment: str, semaphores: Sequence[str] = (), made: str | None = None) -> None:
    """Remove what a creation that could not finish made; errors are swallowed (the
    caller raises why it failed). ``made``: the segment's identity (``_identity``);
    if the name is no longer that segment (removed, and made again by another process
    meanwhile), nothing of the name is ours to remove."""
    if made is not None:
        try:
            now: str | None = _inventory.path_instance(SHM_DIR + segment)
        except OsipcError:  # (gone: nothing of it to spare)
            now = None
        if now is not None and now != made:
            return
    for sem in semaphores:
        try:
            posix_ipc.unlink_semaphore(sem)
        except posix_ipc.Error:
            pass
    try:
        posix_ipc.unlink_shared_memory(segment)
    except posix_ipc.Error:
        pass


def _unlink_semaphore(name: str) -> bool:
    try:
        posix_ipc.unlink_semaphore(name)
        return True
    except posix_ipc.ExistentialError:
        return False


# -- ring backend ------------------------------------------------------------------------


class PosixRingBackend(_ring.SegmentBackend):
    """A ring in a POSIX segment, locked with POSIX semaphores made robust by claims."""

    def __init__(
        self, address: Address, options: _ring.RingOptions, codec: Codec[Any], kind: int, role: int
    ) -> None:
        self._fd = -1
        self._made_as: str | None = None  # the segment this handle created (_identity)
        self._sems: list[Any] = []
        self._admin_lock = threading.Lock()
        super().__init__(address, options, codec, kind, role)

    def _names(self, kind: int) -> list[str]:
        name = "/" + self._address.name
        return [name + ":tx"] + ([name + ":rx"] if kind == _ring.KIND_QUEUE else [])

    def _segment(self, options: Any, size: int) -> tuple[bool, int]:
        self._fd, actual, created = open_segment(
            self._address,
            "/" + self._address.name,
            size,
            create=options.create,
            exclusive=options.exclusive,
            mode=options.mode,
            trust_existing=options.trust_existing,
        )
        if created:
            self._made_as = _identity(self._fd)
        return created, actual

    def _instance(self) -> str:
        return _inventory.fd_instance(self._fd)

    def _map(self, size: int) -> Any:
        with os_errors(f"map {self._address}"):
            return mmap.mmap(self._fd, size)

    settled = True  # open_segment waited for the creator's flock

    def _create_locks(self, kind: int, options: Any) -> None:
        for name in self._names(kind):
            with posix_ipc_errors(f"replace the stale semaphore {name} of {self._address}"):
                _unlink_semaphore(name)  # one left by an earlier channel of this name
            self._sems.append(create_semaphore(self._address, name, 1, options.mode, 1))

    def _made(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)  # taken by open_segment: attachers go on

    def _discard(self) -> None:
        name = "/" + self._address.name
        _remove_quietly(name, self._names(_ring.KIND_QUEUE), made=self._made_as)

    def _open_locks(self, kind: int) -> None:
        self._sems = [attach_semaphore(self._address, name, 1) for name in self._names(kind)]

    def _semaphores(self) -> tuple[Any, Any]:
        return self._sems[0], self._sems[1] if len(self._sems) > 1 else None

    # -- leases: an OFD lock on one byte per slot, far past the end of the segment ------

    def _lease(self, command: int, kind: int, slot: int) -> bytes:
        request = _FLOCK.pack(kind, os.SEEK_SET, LEASE_BASE + slot, 1, 0)
        return fcntl.fcntl(self._fd, command, request)

    def _claim_slot(self, index: int) -> bool:
        try:
            self._lease(fcntl.F_OFD_SETLK, fcntl.F_WRLCK, index)
            return True
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return False
            raise

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

    def _release(self, in_child: bool) -> None:
        if self.mm is not None:
            try:
                self.mm.close()
            except BufferError:  # a view is still alive; the mapping goes with it
                pass
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


class ShmTransport(_ring.RingTransport):
    scheme = "shm"
    summary = "ring in POSIX shared memory: the fast path; queue or broadcast"
    backend = PosixRingBackend

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
                _inventory.write_record(
                    address, kind="shm-block", mode=mode, codec=None,
                    instance=_inventory.fd_instance(fd),
                )  # fmt: skip
                fcntl.flock(fd, fcntl.LOCK_UN)  # made: attachers go on (see _settled)
        except BaseException:
            made = _identity(fd)
            os.close(fd)
            if created:  # never leave a half-made block behind
                _remove_quietly("/" + address.name, made=made)
            raise
        return fd, actual, created

    def unlink(self, address: Address) -> None:
        name = "/" + address.name
        with posix_ipc_errors(f"remove {address}'s semaphores"):
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


class PosixLock:
    """osipc.Lock over a POSIX semaphore: the truth is a flock on the semaphore's file,
    which the kernel drops with its holder; the semaphore only carries wake-ups, and
    waiters re-check every LOCK_RECHECK seconds because a dead holder posts nothing."""

    LOCK_RECHECK = 0.05

    def __init__(self, sem: Any, path: str, address: Address) -> None:
        self._sem = sem
        with os_errors(f"open {address}"):
            self._fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)

    def acquire(self, deadline: Deadline, check: Callable[[], None]) -> None:
        """Take the flock by ``deadline``; ``check`` runs after each nap (it raises
        Closed when the handle was closed meanwhile)."""
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            except OSError as exc:
                raise map_os_error(exc, "lock") from exc
            left = deadline.remaining()
            if left == 0:
                holder = self.holder()
                who = f" by pid {holder}" if holder else ""
                raise Timeout(f"held{who} {deadline.describe()}")
            nap = self.LOCK_RECHECK if left is None else min(left, self.LOCK_RECHECK)
            self._sem.acquire(True, nap)  # a release posts it; a dead holder does not
            check()

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        if self._sem._get_value() < 1:
            self._sem.release()  # wake one waiter

    def holder(self) -> int | None:
        st = os.fstat(self._fd)
        pids = _holders_from_locks((st.st_dev, st.st_ino))
        return pids[0] if pids else None

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)  # drops the flock if this handle held it


class SemTransport(SemaphoreTransport):
    scheme = "sem"
    summary = "POSIX named semaphore: osipc.Semaphore and osipc.Lock (not a channel)"

    def open_semaphore(
        self,
        address: Address,
        value: int,
        *,
        create: bool,
        exclusive: bool,
        mode: int,
        trust_existing: bool,
        record_kind: str = "semaphore",
        undo: bool | None = None,
    ) -> tuple[Any, str]:
        """(semaphore with SemLock's API, path of its file) — open-or-create, mode exact,
        owner checked on attach."""
        if undo:
            raise Unsupported(
                f"{address}: POSIX semaphores have no undo; use sysv+sem:// for a semaphore "
                "the kernel gives back when its taker dies (or osipc.Lock for a lock)"
            )
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
                    _inventory.write_record(
                        address, kind=record_kind, mode=mode, codec=None,
                        instance=_inventory.path_instance(path),
                    )  # fmt: skip
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

    def open_lock(self, address: Address, **common: Any) -> PosixLock:
        sem, path = self.open_semaphore(address, 0, record_kind="lock", **common)
        return PosixLock(sem, path, address)

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
