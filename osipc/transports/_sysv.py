"""What the System V transports share: keys, sysv_ipc's exceptions, /proc/sysvipc, and
semaphore waits with a timeout.

Keys. ``sysv+mq://NAME`` uses ``osipc.sysv_key(NAME)`` (documented, stable); a name of
the form ``0x5a5a`` is a literal key, so C programs and plain sysv_ipc can meet osipc by
key. Literal keys are 32-bit: 0x1..0xffffffff (above 0x7fffffff they wrap to a negative
``key_t``, exactly as a C cast does). sysv_ipc would turn a wider value into 0 --
IPC_PRIVATE, a fresh unnamed object -- and 0 itself means the same, so both are refused.

Waiting. sysv_ipc's message queues have no timeout (only block=True/False) and its
semaphore timeout is compiled out on this platform (SEMAPHORE_TIMEOUT_SUPPORTED False), so
timed semaphore waits call ``semtimedop`` through ctypes (the GIL is released; EINTR comes
back to Python, whose handler runs and whose exception propagates).
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sysv_ipc

from osipc._address import Address, sysv_key, validate_name
from osipc._errors import (
    InvalidArgument,
    InvalidURL,
    NotFound,
    OsipcError,
    PermissionDenied,
    Timeout,
    TransportError,
    map_os_error,
    passed_on,
)

_LITERAL = re.compile(r"0[xX][0-9a-fA-F]+\Z")

# Every exception class sysv_ipc exports; a test fails if one is missing here.
SYSV_IPC_ERRORS: dict[type[BaseException], type[OsipcError]] = {
    sysv_ipc.BusyError: Timeout,
    sysv_ipc.Error: TransportError,
    sysv_ipc.ExistentialError: NotFound,
    sysv_ipc.InternalError: TransportError,
    sysv_ipc.NotAttachedError: TransportError,
    sysv_ipc.PermissionsError: PermissionDenied,
}
_ERRNOS = {
    sysv_ipc.BusyError: errno.EAGAIN,
    sysv_ipc.ExistentialError: errno.ENOENT,
    sysv_ipc.PermissionsError: errno.EACCES,
}


def map_sysv_ipc(exc: BaseException, what: str) -> OsipcError:
    passed_on(exc)  # an osipc error already, or a signal handler's
    for cls in type(exc).__mro__:
        target = SYSV_IPC_ERRORS.get(cls)
        if target is not None:
            hint = ""
            if cls is sysv_ipc.ExistentialError and "exist" not in str(exc):
                hint = " (removed while open: another process, osipc rm, or RemoveIPC=)"
            return target(f"{what}: {exc}{hint}", errno=_ERRNOS.get(cls))  # type: ignore[call-arg]
    if isinstance(exc, OSError):
        return map_os_error(exc, what)
    if isinstance(exc, (ValueError, TypeError, OverflowError)):
        return InvalidArgument(f"{what}: {exc}")
    return TransportError(f"{what}: {exc!r}")


@contextmanager
def sysv_ipc_errors(what: str) -> Iterator[None]:
    try:
        yield
    except (sysv_ipc.Error, OSError, ValueError, OverflowError) as exc:
        if isinstance(exc, OsipcError):
            raise
        raise map_sysv_ipc(exc, what) from exc


def interrupted(exc: BaseException) -> bool:
    """sysv_ipc's EINTR: a plain Error; the Python handler has not run yet, it runs (and
    raises, if it raises) at the next bytecode -- so the caller just retries."""
    return type(exc) is sysv_ipc.Error and "Signaled" in str(exc)


# -- keys --------------------------------------------------------------------------------


def parse_name(url: str, netloc: str, path: str, scheme: str) -> str:
    if path:
        raise InvalidURL(f"{url!r}: a name cannot contain '/'; use {scheme}://NAME or 0xKEY")
    if _LITERAL.match(netloc):
        value = int(netloc, 16)
        if value == 0:
            raise InvalidURL(
                f"{url!r}: key 0 is IPC_PRIVATE, an object nobody else can find; "
                "use a name or a non-zero key"
            )
        if value > 0xFFFFFFFF:
            raise InvalidURL(
                f"{url!r}: SysV keys are 32-bit (key_t); {netloc} does not fit "
                "(sysv_ipc would silently make it IPC_PRIVATE)"
            )
        return f"0x{value:08x}"
    return validate_name(netloc, url)


def key_of(name: str) -> int:
    """The key_t for a name or a literal ``0x...`` (wrapped to signed 32-bit as C does)."""
    value = int(name, 16) if _LITERAL.match(name) else sysv_key(name)
    return value - (1 << 32) if value >= 1 << 31 else value


def companion_key(name: str, role: str) -> int:
    """Keys of the semaphores that go with a segment: sysv_key(NAME + ':' + role)."""
    value = sysv_key(f"{name}:{role}")
    return value - (1 << 32) if value >= 1 << 31 else value


def key_name(key: int) -> str:
    return f"0x{key & 0xFFFFFFFF:08x}"


def proc_table(kind: str) -> list[dict[str, int]]:
    """Rows of /proc/sysvipc/{msg,sem,shm} as dicts of ints (readable by everyone)."""
    try:
        with open(f"/proc/sysvipc/{kind}") as table:
            header = table.readline().split()
            rows = []
            for line in table:
                values = line.split()
                if len(values) >= len(header):
                    # perms is printed in octal ("600"), everything else in decimal
                    rows.append(
                        {n: int(v, 8 if n == "perms" else 10) for n, v in zip(header, values)}
                    )
            return rows
    except (OSError, ValueError):
        return []


def proc_row(kind: str, key: int) -> dict[str, int] | None:
    for row in proc_table(kind):
        if row["key"] == key:
            return row
    return None


def existing_row(kind: str, address: Address) -> dict[str, int]:
    """``address``'s row of /proc/sysvipc/KIND; NotFound if there is none."""
    row = proc_row(kind, key_of(address.name))
    if row is None:
        raise NotFound(f"{address} does not exist", errno=errno.ENOENT)
    return row


def check_owner(uid: int, address: Address, trust_existing: bool) -> None:
    if uid != os.geteuid() and not trust_existing:
        raise PermissionDenied(
            f"{address} was created by uid {uid}, not by you (uid {os.geteuid()}); "
            "refusing to attach (pass trust_existing=True if that user is trusted)",
            errno=errno.EPERM,
        )


# -- semaphore waits ---------------------------------------------------------------------

SEM_UNDO = 0x1000
IPC_NOWAIT = 0o4000


class _Sembuf(ctypes.Structure):
    _fields_ = [
        ("sem_num", ctypes.c_ushort),
        ("sem_op", ctypes.c_short),
        ("sem_flg", ctypes.c_short),
    ]


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_semtimedop: Any = None


def semtimedop(semid: int, op: int, undo: bool, timeout: float | None) -> int:
    """Add ``op`` to semaphore 0 of the set, waiting at most ``timeout`` (None: no limit).
    0 if done, else the errno: EAGAIN once the timeout expired, EINTR after a signal
    (retry with the time left: its Python handler runs first, and what it raises goes
    through untouched, since nothing here raises OSError for the callers to catch)."""
    global _semtimedop
    if _semtimedop is None:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.semtimedop
        function.argtypes = [
            ctypes.c_int, ctypes.POINTER(_Sembuf), ctypes.c_size_t, ctypes.POINTER(_Timespec)
        ]  # fmt: skip
        function.restype = ctypes.c_int
        _semtimedop = function
    # (a zero timeout without IPC_NOWAIT would still go through the kernel's sleep path)
    operation = _Sembuf(0, op, (SEM_UNDO if undo else 0) | (IPC_NOWAIT if timeout == 0 else 0))
    spec = None
    if timeout is not None:
        whole = int(timeout)
        spec = ctypes.byref(_Timespec(whole, int((timeout - whole) * 1e9)))
    if _semtimedop(semid, ctypes.byref(operation), 1, spec) == 0:
        return 0
    return ctypes.get_errno() or errno.EINVAL
