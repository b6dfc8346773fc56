"""sd_notify over NOTIFY_SOCKET, in-house: READY, STATUS, STOPPING, watchdog pings."""

from __future__ import annotations

import array
import errno
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType

import osipc

NOTIFY_MAX = 4096  # systemd reads one datagram of at most PIPE_BUF bytes and drops longer ones
SEND_TIMEOUT = 5.0  # a manager that takes no datagram for this long is wedged or gone


class NotifyError(osipc.TransportError):
    """A notification could not be delivered to NOTIFY_SOCKET; ``errno`` says why."""


def _address() -> tuple[str, str] | None:
    """(what NOTIFY_SOCKET says, the address to connect to), or None outside systemd."""
    value = os.environ.get("NOTIFY_SOCKET")
    if not value:
        return None
    if value.startswith("@"):
        return value, "\0" + value[1:]  # abstract namespace
    if value.startswith("/"):
        return value, value
    raise osipc.InvalidArgument(
        f"NOTIFY_SOCKET={value!r} is neither an absolute path nor an abstract socket "
        "('@name'); those are the only forms osipc_systemd supports"
    )


def _failure(value: str, exc: OSError) -> NotifyError:
    code = exc.errno
    if code in (errno.ENOENT, errno.ECONNREFUSED):
        why = "nothing listens there (the manager is gone, or the variable was inherited)"
    elif code in (errno.EACCES, errno.EPERM):
        why = "permission denied"
    elif code in (errno.EAGAIN, errno.ETIMEDOUT) or isinstance(exc, socket.timeout):
        code = errno.ETIMEDOUT
        why = f"the manager took nothing for {SEND_TIMEOUT:g} s (its queue is full)"
    else:
        why = exc.strerror or str(exc)
    return NotifyError(f"cannot notify systemd at NOTIFY_SOCKET={value}: {why}", errno=code)


def notify(*fields: str, fds: Sequence[int] = ()) -> bool:
    """Send ``fields`` (``"KEY=VALUE"`` strings) to the service manager as one datagram,
    with ``fds`` attached (``FDSTORE=1``). Returns False, sending nothing, when
    NOTIFY_SOCKET is unset (not started by systemd, or not Type=notify).

    The fields are checked first, so a mistake shows outside systemd too.

    Raises:
        osipc.InvalidArgument: a field is not ``KEY=VALUE``, contains a newline or NUL,
            the message exceeds 4096 bytes, or NOTIFY_SOCKET has an unsupported form.
        NotifyError: the datagram could not be sent (``errno`` set; never swallowed).
    """
    if not fields:
        raise osipc.InvalidArgument("notify() needs at least one KEY=VALUE field")
    for field in fields:
        key, eq, _ = field.partition("=")
        if not eq or not key or "\n" in field or "\0" in field:
            raise osipc.InvalidArgument(
                f"notification field {field!r} is not one line of the form KEY=VALUE"
            )
    data = "\n".join(fields).encode()
    if len(data) > NOTIFY_MAX:
        raise osipc.InvalidArgument(
            f"a {len(data)}-byte notification exceeds the {NOTIFY_MAX} bytes systemd reads"
        )
    target = _address()
    if target is None:
        return False
    value, address = target
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    except OSError as exc:  # EMFILE, ENFILE, ENOMEM
        raise _failure(value, exc) from exc
    with sock:
        sock.settimeout(SEND_TIMEOUT)
        try:
            sock.connect(address)
            ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
            sock.sendmsg([data], ancillary if fds else [])
        except OSError as exc:
            raise _failure(value, exc) from exc
    return True


def _status(text: str) -> str:
    if "\n" in text or "\0" in text:
        raise osipc.InvalidArgument(f"status text {text!r} must be one line (no newline or NUL)")
    return f"STATUS={text}"


def ready(status: str | None = None) -> bool:
    """Tell systemd start-up is finished (``READY=1``), optionally with a status line."""
    return notify("READY=1", *([_status(status)] if status is not None else []))


def status(text: str) -> bool:
    """Set the one-line status ``systemctl status`` shows (``STATUS=``)."""
    return notify(_status(text))


def stopping(status: str | None = None) -> bool:
    """Tell systemd the service is shutting down (``STOPPING=1``)."""
    return notify("STOPPING=1", *([_status(status)] if status is not None else []))


def reloading(status: str | None = None) -> bool:
    """Tell systemd the service is reloading (``RELOADING=1``); send ``ready()`` when done."""
    now = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    extra = [_status(status)] if status is not None else []
    return notify("RELOADING=1", f"MONOTONIC_USEC={now}", *extra)


def extend_timeout(seconds: float) -> bool:
    """Ask for ``seconds`` more before the start/stop timeout (``EXTEND_TIMEOUT_USEC``)."""
    if not seconds > 0:
        raise osipc.InvalidArgument(f"extend_timeout({seconds!r}): seconds must be > 0")
    return notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")


def watchdog() -> bool:
    """One watchdog ping (``WATCHDOG=1``). Send one at least every half of
    :func:`watchdog_timeout`, or let :class:`Watchdog` do it."""
    return notify("WATCHDOG=1")


def watchdog_timeout() -> float | None:
    """The watchdog timeout in seconds (WatchdogSec=), or None when this process has no
    watchdog: WATCHDOG_USEC unset or 0, or WATCHDOG_PID naming another process.

    Raises:
        osipc.InvalidArgument: WATCHDOG_USEC or WATCHDOG_PID is not a number.
    """
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    try:
        value = int(usec, 10)
        owner = int(pid, 10) if pid else os.getpid()
    except ValueError:
        raise osipc.InvalidArgument(
            f"WATCHDOG_USEC={usec!r} / WATCHDOG_PID={pid!r} are not numbers"
        ) from None
    if value <= 0 or owner != os.getpid():
        return None
    return value / 1_000_000


class Watchdog:
    """Pings the watchdog from a background thread::

        with osipc_systemd.Watchdog():    # does nothing unless WatchdogSec= covers us
            serve_forever()

    ``interval`` defaults to half of :func:`watchdog_timeout`. A thread proves only
    that the process lives: pass ``healthy``, a callable that says whether the real
    work progresses, and pings stop while it returns false, so systemd kills a wedged
    service as it should (or ping with :func:`watchdog` from the main loop instead).

    A failed ping, or an exception from ``healthy``, ends the pings (systemd will kill
    the service) and is never kept quiet: at once, in the thread, it goes to
    ``on_error(exc)`` if given (to stop the service cleanly, e.g. ``lambda exc:
    os.kill(os.getpid(), signal.SIGTERM)``), else one line on stderr (the journal,
    under systemd); it is kept in :attr:`error`, raised by :meth:`check`, :meth:`stop`
    and leaving the ``with`` block; when the block itself raised, that exception goes
    on with this one chained to it (as its ``__context__``, or when that is taken, as a
    note on Python 3.11+).
    """

    def __init__(
        self,
        interval: float | None = None,
        *,
        healthy: Callable[[], bool] | None = None,
        on_error: Callable[[Exception], object] | None = None,
    ) -> None:
        if interval is None:
            timeout = watchdog_timeout()
            interval = timeout / 2 if timeout is not None else None
        elif not interval > 0:
            raise osipc.InvalidArgument(f"Watchdog(interval={interval!r}): must be > 0")
        self.interval = interval
        self._healthy = healthy
        self._on_error = on_error
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: Exception | None = None
        self.pings = 0

    @property
    def enabled(self) -> bool:
        """False when systemd asked for no watchdog (and no interval was given)."""
        return self.interval is not None

    def start(self) -> Watchdog:
        """Start pinging (at once, then every ``interval``); a no-op when not enabled."""
        if self.interval is not None and self._thread is None:
            self._thread = threading.Thread(
                target=self._run, args=(self.interval,), name="osipc-systemd-watchdog"
            )
            self._thread.daemon = True
            self._thread.start()
        return self

    def _run(self, interval: float) -> None:
        while True:
            stage = "healthy() raised"
            try:
                if self._healthy is None or self._healthy():
                    stage = "a ping failed"
                    watchdog()
                    self.pings += 1
            except Exception as exc:
                self.error = exc
                self._report(stage, exc)
                return
            if self._stop.wait(interval):
                return

    def _report(self, stage: str, exc: Exception) -> None:
        if self._on_error is not None:
            self._on_error(exc)  # what it raises goes to threading.excepthook: still seen
            return
        print(
            f"osipc-systemd: watchdog: {stage}, so pinging stopped and systemd will kill "
            f"this service: {type(exc).__name__}: {exc}",
            file=sys.stderr,
            flush=True,
        )

    def check(self) -> None:
        """Raise the error that ended the thread, if one did."""
        if self.error is not None:
            raise self.error

    def _join(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=SEND_TIMEOUT + 1)

    def stop(self) -> None:
        """Stop pinging and wait for the thread; then as :meth:`check`."""
        self._join()
        self.check()

    def __enter__(self) -> Watchdog:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.stop()
            return
        # The body's exception goes on; the watchdog's failure rides along with it.
        self._join()
        error = self.error
        if error is None or error is exc:
            return
        if exc.__context__ is None and exc.__cause__ is None:
            exc.__context__ = error
        elif sys.version_info >= (3, 11):
            exc.add_note(f"The osipc_systemd.Watchdog had failed: {type(error).__name__}: {error}")
