"""The two message-queue calls the adapter needs from libc (ctypes): is this fd a queue,
and open a queue by name read-only, as systemd's ListenMessageQueue= does."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Any

_libc: Any = None


class _MqAttr(ctypes.Structure):
    _fields_ = [
        ("mq_flags", ctypes.c_long),
        ("mq_maxmsg", ctypes.c_long),
        ("mq_msgsize", ctypes.c_long),
        ("mq_curmsgs", ctypes.c_long),
        ("pad", ctypes.c_long * 4),
    ]


def _lib() -> Any:
    """glibc >= 2.34 has mq_* in libc itself; older ones in librt."""
    global _libc
    if _libc is None:
        lib = ctypes.CDLL(None, use_errno=True)
        if not hasattr(lib, "mq_getattr"):
            lib = ctypes.CDLL(ctypes.util.find_library("rt") or "librt.so.1", use_errno=True)
        lib.mq_getattr.argtypes = [ctypes.c_int, ctypes.POINTER(_MqAttr)]
        lib.mq_getattr.restype = ctypes.c_int
        lib.mq_open.argtypes = [ctypes.c_char_p, ctypes.c_int]
        lib.mq_open.restype = ctypes.c_int
        _libc = lib
    return _libc


def is_message_queue(fd: int) -> bool:
    """True if ``fd`` is a POSIX message queue (``mq_getattr`` accepts only those:
    ``fstat`` shows a queue as a plain regular file)."""
    attr = _MqAttr()
    return bool(_lib().mq_getattr(fd, ctypes.byref(attr)) == 0)


def open_queue_readonly(name: str) -> int:
    """``mq_open("/NAME", O_RDONLY | O_CLOEXEC)``; OSError on failure."""
    fd = int(_lib().mq_open(("/" + name).encode(), os.O_RDONLY | os.O_CLOEXEC))
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"mq_open(/{name}): {os.strerror(code)}")
    return fd
