"""posix_ipc's exceptions, mapped once for every transport built on it.

posix_ipc 1.x raises its own classes (``ExistentialError`` carries no errno: "exists"
and "does not exist" are told apart only by the flags passed), plus builtin
``ValueError`` for bad parameters and ``OSError`` *without an errno* for EMFILE/ENOSPC.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

import posix_ipc

from osipc._errors import (
    InvalidArgument,
    NotFound,
    OsipcError,
    PermissionDenied,
    Timeout,
    TransportError,
    map_os_error,
    passed_on,
)

# Every exception class posix_ipc exports; a test fails if one is missing here.
POSIX_IPC_ERRORS: dict[type[BaseException], type[OsipcError]] = {
    posix_ipc.BusyError: Timeout,
    posix_ipc.Error: TransportError,
    posix_ipc.ExistentialError: NotFound,
    posix_ipc.PermissionsError: PermissionDenied,
    posix_ipc.SignalError: TransportError,  # retried with the time left before it gets here
}
_ERRNOS = {
    posix_ipc.BusyError: errno.EAGAIN,
    posix_ipc.ExistentialError: errno.ENOENT,
    posix_ipc.PermissionsError: errno.EACCES,
    posix_ipc.SignalError: errno.EINTR,
}


def map_posix_ipc(exc: BaseException, what: str) -> OsipcError:
    """The osipc error for an exception raised by posix_ipc while doing ``what``."""
    passed_on(exc)  # an osipc error already, or a signal handler's
    for cls in type(exc).__mro__:
        target = POSIX_IPC_ERRORS.get(cls)
        if target is not None:
            return target(f"{what}: {exc}", errno=_ERRNOS.get(cls))  # type: ignore[call-arg]
    if isinstance(exc, ValueError):
        return InvalidArgument(f"{what}: {exc}")
    if isinstance(exc, OSError):
        if exc.errno is None:  # posix_ipc words some errnos without setting them
            if "maximum number of files" in str(exc):
                return TransportError(f"{what}: {exc}", errno=errno.EMFILE)
            if "Insufficient space" in str(exc):
                return TransportError(f"{what}: {exc}", errno=errno.ENOSPC)
        return map_os_error(exc, what)
    return TransportError(f"{what}: {exc!r}")


@contextmanager
def posix_ipc_errors(what: str) -> Iterator[None]:
    try:
        yield
    except (posix_ipc.Error, ValueError, OSError) as exc:
        if isinstance(exc, OsipcError):
            raise
        raise map_posix_ipc(exc, what) from exc
