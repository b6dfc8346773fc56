"""The osipc error tree.

Every error has two parents: osipc's own base and the builtin it means, so both
``except osipc.Timeout`` and ``except TimeoutError`` work::

    OsipcError
    ├── InvalidArgument(ValueError)
    │   └── InvalidURL
    │       └── UnknownScheme
    ├── TransportUnavailable(ImportError)      .hint = "pip install 'osipc[zmq]'"
    ├── EncodeError(ValueError)
    ├── DecodeError(ValueError)                .codec, .data
    ├── Unsupported(io.UnsupportedOperation)
    ├── Closed(ValueError)
    ├── EndOfStream(EOFError)
    └── TransportError(OSError)
        ├── NotFound(FileNotFoundError)
        ├── AlreadyExists(FileExistsError)
        ├── PermissionDenied(PermissionError)
        ├── Timeout(TimeoutError)
        ├── Broken(BrokenPipeError)
        ├── MessageTooLarge                    .size, .limit
        └── Overrun                            .missed

No exception from a backend (os, posix_ipc, sysv_ipc, pyzmq) escapes osipc: each call
into one runs inside a mapping context that raises one of these ``from`` the original.
What a Python signal handler raises during a call is not the backend's: it runs at the
first bytecode after the C call its signal came in, so it seems to come from that call,
and the mappings raise it again as it is (``passed_on``).
"""

from __future__ import annotations

import errno as _errno
import io
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import CodeType, TracebackType

__all__ = [
    "AlreadyExists",
    "Broken",
    "Closed",
    "DecodeError",
    "EncodeError",
    "EndOfStream",
    "InvalidArgument",
    "InvalidURL",
    "MessageTooLarge",
    "NotFound",
    "OsipcError",
    "Overrun",
    "PermissionDenied",
    "Timeout",
    "TransportError",
    "TransportUnavailable",
    "UnknownScheme",
    "Unsupported",
    "map_os_error",
    "os_errors",
    "passed_on",
]


class OsipcError(Exception):
    """Base of every error osipc raises."""


class InvalidArgument(OsipcError, ValueError):
    """An argument is out of range or of the wrong kind; the message names the rule."""


class InvalidURL(InvalidArgument):
    """A URL, name or option breaks a rule of DESIGN §2; the message names the rule."""


class UnknownScheme(InvalidURL):
    """No transport is registered for the URL's scheme; the message suggests the closest."""


class TransportUnavailable(OsipcError, ImportError):
    """The transport's backend library is not installed; ``hint`` is the install command."""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(f"{message}; install it with: {hint}" if hint else message)
        self.hint = hint


class EncodeError(OsipcError, ValueError):
    """The codec cannot encode the object; nothing was sent."""


class DecodeError(OsipcError, ValueError):
    """A received message is not valid for the codec; ``data`` holds its raw bytes."""

    def __init__(self, message: str, *, codec: str = "", data: bytes = b"") -> None:
        super().__init__(message)
        self.codec = codec
        self.data = data


class Unsupported(OsipcError, io.UnsupportedOperation):
    """The operation does not exist on this transport or in this mode."""


class Closed(OsipcError, ValueError):
    """The handle was closed (or belongs to another process after fork)."""


class EndOfStream(OsipcError, EOFError):
    """The sender ended the stream (``end()``), or a FIFO's last writer closed it."""


class TransportError(OsipcError, OSError):
    """The kernel object or its backend failed; ``errno`` is set when the kernel gave one."""

    sent: int = 0
    """Raised by ``send_many``: how many of the batch went before the error."""

    def __init__(self, message: str, *, errno: int | None = None) -> None:
        super().__init__(message)
        # OSError(errno, strerror) would reformat the message; keep ours, expose the code.
        self.errno = errno

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), str(self), self.errno))


def _rebuild(cls: type[TransportError], message: str, errno: int | None) -> TransportError:
    return cls(message, errno=errno)


class NotFound(TransportError, FileNotFoundError):
    """The kernel object does not exist (and ``create=False``, or it was removed)."""


class AlreadyExists(TransportError, FileExistsError):
    """The kernel object exists and ``exclusive=True`` was asked for."""


class PermissionDenied(TransportError, PermissionError):
    """The kernel refused access, or the object belongs to another user."""


class Timeout(TransportError, TimeoutError):
    """The timeout expired first; nothing was transferred (of a batch: ``sent`` went)."""


class Broken(TransportError, BrokenPipeError):
    """The peer or the kernel object went away underneath an open handle."""


class MessageTooLarge(TransportError):
    """A message exceeds a limit; the message names the limit and how to raise it."""

    def __init__(self, message: str, *, size: int = 0, limit: int = 0) -> None:
        super().__init__(message, errno=_errno.EMSGSIZE)
        self.size = size
        self.limit = limit

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_too_large, (str(self), self.size, self.limit))


def _rebuild_too_large(message: str, size: int, limit: int) -> MessageTooLarge:
    return MessageTooLarge(message, size=size, limit=limit)


class Overrun(TransportError):
    """A broadcast subscriber fell a whole ring behind and ``missed`` messages; it goes on."""

    def __init__(self, message: str, *, missed: int = 0) -> None:
        super().__init__(message)
        self.missed = missed

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_overrun, (str(self), self.missed))


def _rebuild_overrun(message: str, missed: int) -> Overrun:
    return Overrun(message, missed=missed)


_ERRNO_CLASSES: dict[int, type[TransportError]] = {
    _errno.ENOENT: NotFound,
    _errno.EIDRM: NotFound,
    _errno.EEXIST: AlreadyExists,
    _errno.EACCES: PermissionDenied,
    _errno.EPERM: PermissionDenied,
    _errno.ETIMEDOUT: Timeout,
    _errno.EAGAIN: Timeout,
    _errno.EPIPE: Broken,
    _errno.ECONNRESET: Broken,
    _errno.ENXIO: Broken,
}


_SIGNALS = sorted(signal.valid_signals())
# (the C function: signal.getsignal's conversion of SIG_DFL/SIG_IGN to an enum costs
# 50 us over all signals, this 3 us)
_getsignal = getattr(signal, "_signal", signal).getsignal


def _handler_code(handler: object) -> CodeType | None:
    """The code a signal handler runs first: a function's, a method's, a partial's, or
    a callable object's ``__call__``."""
    for candidate in (
        handler,
        getattr(handler, "__func__", None),
        getattr(handler, "func", None),
        getattr(type(handler), "__call__", None),  # noqa: B004 (its code, not callable())
    ):
        code = getattr(candidate, "__code__", None)
        if isinstance(code, CodeType):
            return code
    return None


def from_signal_handler(exc: BaseException) -> bool:
    """Whether ``exc`` was raised by (or under) a Python signal handler: one of the
    frames it passed through runs a handler installed now. Only the error path asks."""
    trace = exc.__traceback__
    if trace is None or trace.tb_next is None:  # raised in the catching frame: a C call's
        return False
    codes = set()
    for signum in _SIGNALS:
        try:
            handler = _getsignal(signum)
        except (OSError, ValueError):
            continue
        if handler is None or isinstance(handler, int):  # SIG_DFL, SIG_IGN, not Python's
            continue
        code = _handler_code(handler)
        if code is not None:
            codes.add(code)
    if not codes:  # (no Python handler installed: the common case, ~3 us)
        return False
    step: TracebackType | None = trace.tb_next
    while step is not None:
        if step.tb_frame.f_code in codes:
            return True
        step = step.tb_next
    return False


def passed_on(exc: BaseException) -> None:
    """Raise ``exc`` again, as it is, if it is not the backend's to map: an osipc error
    already, or what a signal handler raised (see the module's docstring)."""
    if isinstance(exc, OsipcError) or from_signal_handler(exc):
        raise exc


def map_os_error(exc: OSError, what: str) -> OsipcError:
    """Translate an ``OSError`` raised while doing ``what`` (e.g. "open fifo:///run/x.fifo");
    raises it again as it is if a signal handler raised it."""
    passed_on(exc)
    code = exc.errno
    detail = exc.strerror or str(exc)
    if code == _errno.EBADF:
        return Closed(f"{what}: the descriptor is closed")
    if code == _errno.EMSGSIZE:
        return MessageTooLarge(f"{what}: message too large ({detail})")
    cls = _ERRNO_CLASSES.get(code or 0, TransportError)
    hint = ""
    if code == _errno.EIDRM or (code == _errno.ENOENT and "removed" in what):
        hint = " (it was removed while open: another process, `osipc rm`, or systemd's RemoveIPC=)"
    return cls(f"{what}: {detail}{hint}", errno=code)


@contextmanager
def os_errors(what: str) -> Iterator[None]:
    """Run a block of ``os`` calls; an ``OSError`` leaves as the matching osipc error."""
    try:
        yield
    except OSError as exc:
        if isinstance(exc, OsipcError):
            raise
        raise map_os_error(exc, what) from exc
