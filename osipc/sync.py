"""Synchronisation and memory that unrelated processes share by name.

* :class:`Semaphore` (``sem://NAME``): a counting semaphore. ``acquire(timeout=)`` follows
  osipc's timeout rule (``Timeout`` on expiry), and a signal handler's exception always
  gets out of a blocked ``acquire``.
* :class:`Lock` (``sem://NAME`` or ``sysv+sem://NAME``): a lock a SIGKILLed holder never
  leaves locked -- a ``flock`` on the POSIX semaphore's file, or a SysV semaphore taken
  with SEM_UNDO; either way the kernel releases it, and the next waiter takes it within
  its timeout. ``holder`` names the pid holding it.
* :class:`SharedMemory` (``shm://NAME``): a named block with the buffer protocol
  (``memoryview(block)``, ``numpy.frombuffer(block, ...)`` without copying). A process
  that attaches and exits never destroys it — unlike ``multiprocessing.shared_memory``,
  whose resource tracker unlinks the segment when an attaching process exits.

Each is created when missing (``create=False`` raises NotFound, ``exclusive=True``
AlreadyExists), with ``mode`` applied exactly; attaching to one another user created is
refused unless ``trust_existing=True``. ``close()`` never destroys; ``unlink()`` does.
"""

from __future__ import annotations

import errno
import mmap
import os
import threading
import warnings
from abc import abstractmethod
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from osipc import _registry
from osipc._abc import Capabilities, Handle
from osipc._address import (
    Address,
    CommonOptions,
    option,
    parse_bool,
    parse_int,
    parse_size,
    resolve_options,
)
from osipc._deadline import Deadline, check_timeout
from osipc._errors import (
    Closed,
    InvalidArgument,
    NotFound,
    Timeout,
    TransportError,
    Unsupported,
    from_signal_handler,
    map_os_error,
    os_errors,
    passed_on,
)

__all__ = ["Lock", "Semaphore", "SharedMemory"]

SEM_VALUE_MAX = 0x7FFFFFFF
# A waiting acquire wakes this often to see whether close() came from another thread (a
# semaphore has no other way to end a wait early); it costs an idle waiter 10 wake-ups a
# second and nothing else.
SLICE = 0.1


@dataclass(frozen=True)
class _SemOptions(CommonOptions):
    value: int = option(1, parse_int(0, SEM_VALUE_MAX), "initial count, used when creating")
    undo: bool | None = option(
        None, parse_bool, "SysV: the kernel gives back what a dead process took"
    )


@dataclass(frozen=True)
class _BlockOptions(CommonOptions):
    size: int = option(0, parse_size, "bytes (K/M/G suffixes), needed to create it")


OptionsT = TypeVar("OptionsT", bound=CommonOptions)


def _resolve(
    url: str, kind: str, method: str, cls: type[OptionsT], keywords: dict[str, Any]
) -> tuple[Address, Any, OptionsT]:
    """The address, the transport's opener and the options (URL query + keywords)."""
    transport, address = _registry.parse(url)
    opener = getattr(transport, method, None)
    if opener is None:
        raise Unsupported(f"{url}: {address.scheme}:// does not provide a {kind}")
    given = {key: value for key, value in keywords.items() if value is not None}
    return address, opener, resolve_options(cls, address, given)


_AcquirableT = TypeVar("_AcquirableT", bound="_Acquirable")


class _Acquirable(Handle):
    """What Semaphore and Lock share: ``with`` acquires and releases; unlink by name."""

    _address: Address

    @abstractmethod
    def acquire(self, timeout: float | None = None) -> None: ...

    @abstractmethod
    def release(self) -> None: ...

    def unlink(self) -> None:
        """Remove the name; handles that are open keep working."""
        from osipc._api import unlink

        unlink(self._address.base_url)

    def __enter__(self: _AcquirableT) -> _AcquirableT:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class Semaphore(_Acquirable):
    """A counting semaphore by name, shared by unrelated processes: ``sem://NAME`` (POSIX)
    or ``sysv+sem://NAME`` (System V; ``undo``, on by default, makes the kernel give back
    what a dead process took -- turn it off when one process takes what another gives).

    ``value`` is the initial count, used only when this call creates it. ``with sem:``
    acquires and releases.
    """

    def __init__(
        self,
        url: str,
        value: int | None = None,
        *,
        create: bool | None = None,
        exclusive: bool | None = None,
        mode: int | None = None,
        trust_existing: bool | None = None,
        undo: bool | None = None,
    ) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidArgument(f"value must be an integer 0..{SEM_VALUE_MAX}, got {value!r}")
        address, opener, options = _resolve(
            url,
            type(self).__name__,
            "open_semaphore",
            _SemOptions,
            {
                "value": value,
                "create": create,
                "exclusive": exclusive,
                "mode": mode,
                "trust_existing": trust_existing,
                "undo": undo,
            },
        )
        extra = {} if options.undo is None else {"undo": options.undo}
        self._sem, _ = opener(
            address,
            options.value,
            create=options.create,
            exclusive=options.exclusive,
            mode=options.mode,
            trust_existing=options.trust_existing,
            **extra,
        )
        super().__init__(address, Capabilities(selectable=False, end_of_stream=False))
        _refuse_other_kind(self, lock=False)

    def acquire(self, timeout: float | None = None) -> None:
        """Take one unit, waiting up to ``timeout`` (None: forever, 0: don't wait).

        Raises:
            Timeout: none was available in time.
            Closed: the handle is closed (also by another thread while this waited).
        """
        if self._closed:
            raise self._raise_closed()
        timeout = check_timeout(timeout)
        sem = self._sem
        if sem.acquire(False):
            return
        deadline = Deadline(timeout)
        if timeout != 0:
            with self._waiting():  # close() meanwhile: Closed within a SLICE
                while True:
                    left = deadline.remaining()
                    if left == 0:
                        break
                    acquired = sem.acquire(True, SLICE if left is None else min(left, SLICE))
                    if self.closed:  # (by another thread)
                        if acquired:
                            sem.release()  # not this closed handle's to keep
                        raise self._raise_closed()
                    if acquired:
                        return
        raise Timeout(f"{self.url}: not acquired {deadline.describe()}")

    def release(self, n: int = 1) -> None:
        """Give back ``n`` units.

        Raises:
            InvalidArgument: n < 1, or the count would pass its maximum (SEM_VALUE_MAX;
                SEMVMX for sysv+sem://): then nothing was given back.
        """
        if self._closed:
            raise self._raise_closed()
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidArgument(f"n must be an integer >= 1, got {n!r}")
        top = getattr(self._sem, "maxvalue", SEM_VALUE_MAX)
        if n > top - self._sem._get_value():  # (a release elsewhere may still come first)
            raise InvalidArgument(
                f"{self.url}: releasing {n} would take the count past its maximum, "
                f"{getattr(self._sem, 'limit', 'SEM_VALUE_MAX')} ({top}); nothing was released"
            )
        for _ in range(n):
            try:
                self._sem.release()
            except ValueError as exc:  # SemLock: "released too many times" (at its maxvalue)
                passed_on(exc)  # (a signal handler's is not)
                raise InvalidArgument(
                    f"{self.url}: releasing would take the count past its maximum, "
                    f"SEM_VALUE_MAX ({SEM_VALUE_MAX})"
                ) from None
            except OSError as exc:
                passed_on(exc)
                if exc.errno == errno.EOVERFLOW:
                    limit = exc.strerror or f"SEM_VALUE_MAX ({SEM_VALUE_MAX})"
                    raise InvalidArgument(
                        f"{self.url}: releasing would take the count past its maximum, {limit}"
                    ) from None
                raise map_os_error(exc, f"release {self.url}") from exc

    @property
    def value(self) -> int:
        """The count now (another process may change it the next instant)."""
        if self._closed:
            raise self._raise_closed()
        return int(self._sem._get_value())

    def _close(self) -> None:
        self._sem = None


class Lock(_Acquirable):
    """A lock by name that a SIGKILLed holder never leaves locked.

    ``sem://NAME``: the holder is the process holding a ``flock`` on the semaphore's file,
    dropped by the kernel when it dies (waiters notice within 50 ms).
    ``sysv+sem://NAME``: a SysV semaphore taken with SEM_UNDO, released by the kernel.
    Threads sharing one Lock object exclude each other too. ``with lock:`` acquires and
    releases.
    """

    def __init__(
        self,
        url: str,
        *,
        create: bool | None = None,
        exclusive: bool | None = None,
        mode: int | None = None,
        trust_existing: bool | None = None,
    ) -> None:
        address, opener, options = _resolve(
            url,
            "Lock",
            "open_lock",
            CommonOptions,
            {
                "create": create,
                "exclusive": exclusive,
                "mode": mode,
                "trust_existing": trust_existing,
            },
        )
        self._lock = opener(
            address,
            create=options.create,
            exclusive=options.exclusive,
            mode=options.mode,
            trust_existing=options.trust_existing,
        )
        self._local = threading.Lock()
        self._held = False  # this handle holds the kernel's lock (close() gives it back)
        super().__init__(address, Capabilities(selectable=False, end_of_stream=False))
        _refuse_other_kind(self, lock=True)

    def acquire(self, timeout: float | None = None) -> None:
        """Take the lock, waiting up to ``timeout`` (None: forever, 0: don't wait).

        Raises:
            Timeout: another live process (or thread) held it throughout; the message
                names the holder's pid where the kernel tells it. (The lock is not
                reentrant: a thread holding it waits for some thread to release it.)
            Closed: the handle is closed (also by another thread while this waited).
        """
        if self._closed:
            raise self._raise_closed()
        deadline = Deadline(timeout)
        with self._waiting():  # close() meanwhile: Closed, and nothing is left held
            while True:  # the threads of this handle, in slices: close() may come
                if self._local.acquire(timeout=deadline.slice(SLICE)):
                    break
                self._check_open()
                if deadline.remaining() == 0:
                    raise Timeout(f"{self.url}: held by another thread {deadline.describe()}")
            try:
                self._lock.acquire(deadline, self._check_open)
            except Timeout as exc:
                self._local.release()
                raise Timeout(f"{self.url}: {exc}") from None
            except BaseException:
                self._local.release()
                raise
            if self.closed:  # (by another thread, as it was taken)
                self._lock.release()
                self._local.release()
                raise self._raise_closed()
            self._held = True

    def release(self) -> None:
        """Release the lock (held by this handle).

        Raises:
            InvalidArgument: this handle does not hold it.
        """
        if self._closed:
            raise self._raise_closed()
        if not self._held:
            raise InvalidArgument(f"{self.url}: release of a lock this handle does not hold")
        self._held = False
        self._lock.release()
        self._local.release()

    def locked(self) -> bool:
        """True if some process holds the lock now."""
        return self._local.locked() or self.holder is not None

    @property
    def holder(self) -> int | None:
        """The pid holding the lock, as far as the kernel tells, or None."""
        if self._closed:
            raise self._raise_closed()
        return self._lock.holder()  # type: ignore[no-any-return]

    def _close(self) -> None:
        lock = getattr(self, "_lock", None)
        self._lock = None
        if lock is not None:
            # Closing gives back a lock this handle holds -- never in a forked child: the
            # parent's hold (its flock, shared with the child's copy) is not the child's.
            if getattr(self, "_held", False) and not self._in_child:
                self._held = False
                try:
                    lock.release()
                except (OSError, ValueError) as exc:  # the object may be gone: closing
                    if from_signal_handler(exc):  # goes on; what a signal handler raised
                        raise  # goes out
            lock.close()


def _refuse_other_kind(handle: Semaphore | Lock, *, lock: bool) -> None:
    """A Lock and a Semaphore of one name would corrupt each other (the Lock's waiters
    take units as wake-ups; a Semaphore's units wake them for nothing): where this user's
    record says the object is the other kind, the handle is closed and refused."""
    from osipc import _inventory

    record = _inventory.find_record(handle._address)
    kind = str(record.get("kind", "")) if record is not None else ""
    if not kind or kind.endswith("lock") == lock:
        return
    handle.close()
    this, other = ("Lock", "Semaphore") if lock else ("Semaphore", "Lock")
    raise InvalidArgument(
        f"{handle._address.base_url} is an osipc.{other}, not a {this} (the two would "
        f"corrupt each other's counts); open it with osipc.{other}, or use another name"
    )


class SharedMemory(mmap.mmap):
    """A named block of shared memory (``shm://NAME``) with the buffer protocol.

    ``size`` (bytes; or "64K", "1M" as in a URL's ``?size=``) is needed to create it; to
    attach, omit it or give the existing size.
    Index, slice, ``memoryview(block)`` or ``numpy.frombuffer(block, dtype)`` it like any
    buffer. ``close()`` unmaps (it refuses while views exist); ``unlink()`` removes the name.
    After ``close()``, indexing or ``memoryview(block)`` raise mmap's ValueError ("mmap
    closed or invalid": the buffer protocol cannot be intercepted before Python 3.12), and
    ``with block:`` raises :class:`osipc.Closed`, which is a ValueError too.
    """

    url: str
    name: str
    _fd: int
    _pid: int

    def __new__(
        cls,
        url: str,
        size: int | str | None = None,
        *,
        create: bool | None = None,
        exclusive: bool | None = None,
        mode: int | None = None,
        trust_existing: bool | None = None,
    ) -> SharedMemory:
        if not (size is None or isinstance(size, str)) and (  # ("4K": the option's parser)
            isinstance(size, bool) or not isinstance(size, int) or size < 1
        ):
            raise InvalidArgument(f"size must be a positive integer of bytes, got {size!r}")
        address, opener, options = _resolve(
            url,
            "SharedMemory",
            "open_block",
            _BlockOptions,
            {
                "size": size,
                "create": create,
                "exclusive": exclusive,
                "mode": mode,
                "trust_existing": trust_existing,
            },
        )
        size = options.size or None
        try:
            fd, actual, _ = opener(
                address,
                size,
                create=options.create and size is not None,
                exclusive=options.exclusive,
                mode=options.mode,
                trust_existing=options.trust_existing,
            )
        except NotFound:
            if options.create and size is None:
                raise NotFound(
                    f"{address.base_url} does not exist; pass size= to create it",
                    errno=errno.ENOENT,
                ) from None
            raise
        if actual == 0:
            os.close(fd)
            raise TransportError(f"{address.base_url} is empty (0 bytes); it cannot be mapped")
        try:
            with os_errors(f"map {address.base_url}"):
                block = super().__new__(cls, fd, actual)
        except BaseException:
            os.close(fd)
            raise
        block._fd = fd
        block._pid = os.getpid()
        block.url = address.base_url
        block.name = address.name
        return block

    def __init__(self, url: str, size: int | str | None = None, **_: Any) -> None:
        pass  # everything happens in __new__ (mmap is initialised there)

    def close(self) -> None:
        """Unmap (idempotent); the block itself stays until ``unlink()``.

        Raises:
            BufferError: memoryviews or arrays made from the block are still alive.
        """
        if not self.closed:
            try:
                super().close()
            except BufferError:
                raise BufferError(
                    f"{self.url}: cannot close while memoryviews or numpy arrays made from "
                    "it are alive; delete them (or call .release() on the views) first"
                ) from None
        fd = getattr(self, "_fd", -1)
        self._fd = -1
        if fd >= 0:
            os.close(fd)

    def unlink(self) -> None:
        """Remove the name; mappings that exist keep working."""
        from osipc._api import unlink

        unlink(self.url)

    def __enter__(self) -> SharedMemory:
        if self.closed:
            raise Closed(f"{self.url}: the block is closed")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0 and not self.closed and self._pid == os.getpid():
            try:
                warnings.warn(
                    f"unclosed osipc SharedMemory {self.url}; use 'with' or call close()",
                    ResourceWarning,
                    source=self,
                    stacklevel=2,
                )
                self.close()
            except Exception:
                pass

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self)} bytes"
        return f"<osipc.SharedMemory {getattr(self, 'url', '?')} {state}>"

    def __reduce__(self) -> Any:
        raise TypeError("a SharedMemory block cannot be pickled; send its URL and attach")
