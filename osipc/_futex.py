"""Sleeping on a 32-bit word of shared memory until another process changes it (futex).

Waiters pass the value they last saw; the kernel sleeps only while the word still holds
it, so a change made between reading the word and sleeping is never missed. Timeouts
are relative (CLOCK_MONOTONIC). The call returns to Python on EINTR, where the signal
handler runs and any exception it raises propagates; callers loop with the time left.

Shared (not FUTEX_PRIVATE) operations, so any MAP_SHARED mapping works: POSIX and SysV
shared memory alike. No named kernel object is created, so there is nothing to leak.
"""

from __future__ import annotations

import ctypes
import errno
import platform
from typing import Any

_SYS_FUTEX = {
    "x86_64": 202,
    "amd64": 202,
    "aarch64": 98,
    "arm64": 98,
    "ppc64le": 221,
    "s390x": 238,
    "riscv64": 98,
    "i686": 240,
    "i386": 240,
    "armv7l": 240,
}
FUTEX_WAIT, FUTEX_WAKE = 0, 1
WAKE_ALL = 0x7FFFFFFF


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_libc: Any = None
_number = _SYS_FUTEX.get(platform.machine().lower())


def _syscall() -> Any:
    global _libc
    if _libc is None:
        lib = ctypes.CDLL(None, use_errno=True)
        lib.syscall.restype = ctypes.c_long
        lib.syscall.argtypes = [
            ctypes.c_long, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
            ctypes.POINTER(_Timespec), ctypes.c_void_p, ctypes.c_int,
        ]  # fmt: skip
        _libc = lib
    return _libc.syscall


def available() -> bool:
    return _number is not None


def address_of(buffer: Any) -> tuple[Any, int]:
    """(keep-alive object, address) of a writable buffer. The keep-alive exports the
    buffer: drop it before closing the mapping."""
    anchor = ctypes.c_char.from_buffer(buffer)
    return anchor, ctypes.addressof(anchor)


def wait(address: int, expected: int, timeout: float | None) -> bool:
    """Sleep while the 32-bit word at ``address`` equals ``expected`` (its low 32 bits),
    at most ``timeout`` seconds (None: no limit). False if the timeout expired; True if
    woken, the word differed, or a signal arrived (the caller re-checks in every case)."""
    if _number is None:  # pragma: no cover - architectures without a known number
        raise OSError(errno.ENOSYS, f"futex: unknown syscall number on {platform.machine()}")
    value = expected & 0xFFFFFFFF
    if value >= 0x80000000:
        value -= 0x100000000
    spec = None
    if timeout is not None:
        whole = int(timeout)
        spec = ctypes.byref(_Timespec(whole, int((timeout - whole) * 1e9)))
    if _syscall()(_number, address, FUTEX_WAIT, value, spec, None, 0) == 0:
        return True
    code = ctypes.get_errno()
    if code == errno.ETIMEDOUT:
        return False
    if code in (errno.EAGAIN, errno.EINTR):
        return True
    raise OSError(code, f"futex wait: {errno.errorcode.get(code, code)}")


def wake(address: int, count: int = WAKE_ALL) -> None:
    """Wake up to ``count`` processes sleeping on the word at ``address``."""
    if _number is not None:
        _syscall()(_number, address, FUTEX_WAKE, count, None, None, 0)
