"""Socket activation: the descriptors systemd passed (LISTEN_FDS), as osipc handles."""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import stat
import sys
import termios
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Union

import osipc
import osipc.abc
from osipc_systemd._libc import is_message_queue

LISTEN_FDS_START = 3  # SD_LISTEN_FDS_START
_DRAIN_POLL = 0.02  # how often drain(wait=) looks whether readers emptied the FIFOs
_DRAIN_CHUNK = 1 << 16
_ENV = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")
_PATH_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-/+@,=~")

Endpoint = Union["osipc.Receiver[Any]", "osipc.Sender[Any]", socket.socket, int]
"""What :func:`endpoints` maps a name to: an osipc handle for a FIFO or message queue,
a ``socket.socket`` for a socket, the bare descriptor for anything else."""


@dataclass(frozen=True)
class ListenFd:
    """One descriptor systemd passed to this process.

    ``name`` is the socket unit's FileDescriptorName= (systemd's default is the socket
    unit's name; when LISTEN_FDNAMES is absent, as under ``systemd-socket-activate``, it
    is the object's osipc name, or ``fdN``). ``kind`` is ``"fifo"``, ``"mq"``,
    ``"socket"`` or ``"other"``. ``url`` adopts the descriptor with osipc
    (``osipc.receiver(item.url, codec="json")``); it is ``""`` for sockets and others.
    ``path`` is what ``/proc/self/fd/N`` names: the FIFO's path, ``/NAME`` for a queue.
    """

    name: str
    fd: int
    kind: str
    url: str
    path: str
    readable: bool
    writable: bool


def is_valid_name(name: str) -> bool:
    """Whether ``name`` follows osipc's rule for names (DESIGN §2)."""
    try:
        osipc.abc.validate_name(name, name)
    except osipc.InvalidURL:
        return False
    return True


def _int_env(key: str, value: str) -> int:
    try:
        number = int(value, 10)
    except ValueError:
        number = -1
    if number < 0:
        raise osipc.InvalidArgument(
            f"{key}={value!r} is not a non-negative integer: the environment systemd "
            "passed is damaged (or was set by hand)"
        )
    return number


def _describe(fd: int, name: str | None) -> ListenFd:
    try:
        st = os.fstat(fd)
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        # close-on-exec, as sd_listen_fds() does: the service's own children get nothing
        fcntl.fcntl(fd, fcntl.F_SETFD, fcntl.fcntl(fd, fcntl.F_GETFD) | fcntl.FD_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.EBADF:
            raise osipc.InvalidArgument(
                f"LISTEN_FDS says fd {fd} was passed to this process, but it is not open "
                "(was it closed before osipc_systemd.listen_fds() ran?)"
            ) from None
        raise osipc.TransportError(
            f"inspect inherited fd {fd}: {exc.strerror}", errno=exc.errno
        ) from exc
    try:
        path = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        path = ""
    access = flags & os.O_ACCMODE
    readable = access in (os.O_RDONLY, os.O_RDWR)
    writable = access in (os.O_WRONLY, os.O_RDWR)
    if stat.S_ISFIFO(st.st_mode):
        kind = "fifo"
        usable = path.startswith("/") and os.path.normpath(path) == path
        usable = usable and set(path) <= _PATH_CHARS
        obj = os.path.basename(path)[: -len(".fifo")] if path.endswith(".fifo") else ""
        url = f"fifo://{path}?fd={fd}" if usable else f"fifo://fd{fd}?fd={fd}"
    elif stat.S_ISSOCK(st.st_mode):
        kind, obj, url = "socket", "", ""
    elif stat.S_ISREG(st.st_mode) and is_message_queue(fd):
        kind = "mq"
        obj = path[1:] if path.startswith("/") and is_valid_name(path[1:]) else ""
        url = f"mq://{obj or f'fd{fd}'}?fd={fd}"
    else:
        kind, obj, url = "other", "", ""
    if name is None:
        name = obj if is_valid_name(obj) else f"fd{fd}"
    return ListenFd(name, fd, kind, url, path, readable, writable)


def listen_fds(*, unset_environment: bool = True) -> list[ListenFd]:
    """The descriptors systemd passed to this process, in order (fd 3, 4, ...).

    Reads LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES like ``sd_listen_fds_with_names()``:
    an empty list unless LISTEN_PID is this process (the variables were meant for
    another one), close-on-exec set on every descriptor, and the three variables
    removed from ``os.environ`` unless ``unset_environment`` is false, so children
    never mistake them for their own. The descriptors stay open and are yours.

    Raises:
        osipc.InvalidArgument: the variables are malformed (not numbers, a name count
            that differs from LISTEN_FDS), or a descriptor they name is not open.
    """
    environ = os.environ
    try:
        pid_text = environ.get("LISTEN_PID")
        if not pid_text:
            return []
        if _int_env("LISTEN_PID", pid_text) != os.getpid():
            return []
        count = _int_env("LISTEN_FDS", environ.get("LISTEN_FDS", "0") or "0")
        names_text = environ.get("LISTEN_FDNAMES")
        names: list[str | None] = [None] * count
        if names_text is not None and count:
            given = names_text.split(":")
            if len(given) != count:
                raise osipc.InvalidArgument(
                    f"LISTEN_FDNAMES={names_text!r} names {len(given)} descriptors but "
                    f"LISTEN_FDS={count}: the environment systemd passed is damaged"
                )
            names = list(given)
        return [_describe(LISTEN_FDS_START + i, names[i]) for i in range(count)]
    finally:
        if unset_environment:
            for key in _ENV:
                environ.pop(key, None)


class Endpoints(dict[str, Endpoint]):
    """A dict from FileDescriptorName to the endpoint adopted from that descriptor,
    with typed accessors, :meth:`drain` for the FIFOs the service writes to, and one
    ``close()`` for all of them (also as a context manager).
    """

    def __init__(self, *args: Any, **kwargs: Endpoint) -> None:
        super().__init__(*args, **kwargs)
        # name -> (sender, its inherited descriptor) for FIFOs adopted as senders
        self._fifo_senders: dict[str, tuple[osipc.Sender[Any], int]] = {}
        self._closed = False

    def _get(self, name: str) -> Endpoint:
        try:
            return self[name]
        except KeyError:
            passed = ", ".join(repr(key) for key in self) or "none"
            raise KeyError(
                f"systemd passed no descriptor named {name!r} (passed: {passed}); check "
                "FileDescriptorName= in the socket unit and Sockets= in the service"
            ) from None

    def receiver(self, name: str) -> osipc.Receiver[Any]:
        """The receiver adopted for ``name``. Raises KeyError, or TypeError if it is not one."""
        endpoint = self._get(name)
        if not isinstance(endpoint, osipc.Receiver):
            raise TypeError(f"endpoint {name!r} is {_what(endpoint)}, not an osipc receiver")
        return endpoint

    def sender(self, name: str) -> osipc.Sender[Any]:
        """The sender adopted for ``name`` (ask for it with ``senders=``); else as receiver."""
        endpoint = self._get(name)
        if not isinstance(endpoint, osipc.Sender):
            hint = ""
            if isinstance(endpoint, osipc.Receiver):
                queue = endpoint.url.partition("?")[0]
                if queue.startswith("mq://"):
                    # senders= would not help: systemd passes queues read-only
                    by_name = "" if queue.startswith("mq://fd") else f" ({queue})"
                    hint = (
                        "; systemd passes a service its queues read-only, so send to it "
                        f"through a sender opened by name{by_name}"
                    )
                else:
                    hint = f"; pass senders={{{name!r}}}"
            raise TypeError(f"endpoint {name!r} is {_what(endpoint)}, not an osipc sender{hint}")
        return endpoint

    def socket(self, name: str) -> socket.socket:
        """The ``socket.socket`` for ``name``; else as receiver."""
        endpoint = self._get(name)
        if not isinstance(endpoint, socket.socket):
            raise TypeError(f"endpoint {name!r} is {_what(endpoint)}, not a socket")
        return endpoint

    def drain(self, *names: str, wait: float = 0.0) -> int:
        """Throw away what is left in the FIFOs this service writes to; return how
        many bytes that was.

        systemd holds every FIFO it passed open and watches it: data left in one after
        the service exits looks like traffic, and it starts the service again at once
        (and again, until its start limit fails the socket). So a service that answers
        on a FIFO drains it before it exits. ``close()`` does not, because what it
        throws away is answers no client has read: ``wait`` gives readers up to that
        many seconds to take them first, and the count says what was lost.

        ``names``: FIFOs adopted as senders (``senders=``); none: all of them. The
        descriptor systemd passed is read, so neither the FIFO's path nor its mode
        needs to let the service in.

        Raises:
            KeyError: no endpoint of that name.
            TypeError: it is not a FIFO systemd passed and the service writes to.
            osipc.Closed: it (or all of them) is already closed: drain before closing.
            osipc.InvalidArgument: ``wait`` is negative.
            osipc.TransportError: reading the FIFO failed (``errno`` set).
        """
        if not wait >= 0:
            raise osipc.InvalidArgument(f"drain(wait={wait!r}): wait must be >= 0 seconds")
        if self._closed:
            raise osipc.Closed("the endpoints are closed: drain() before close()")
        chosen = names or tuple(name for name in self._fifo_senders if name in self)
        fds = []
        for name in chosen:
            endpoint = self._get(name)
            adopted = self._fifo_senders.get(name)
            if adopted is None or adopted[0] is not endpoint:
                raise TypeError(
                    f"endpoint {name!r} is {_what(endpoint)}, not a FIFO systemd passed that "
                    "this service writes to (senders=); only those need draining: what is "
                    "left in one it reads from are requests, and systemd rightly starts it "
                    "again to serve them"
                )
            if endpoint.closed:
                raise osipc.Closed(f"endpoint {name!r} is closed: drain() before closing it")
            fds.append((name, adopted[1]))
        deadline = time.monotonic() + wait
        while any(_unread(name, fd) for name, fd in fds):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(_DRAIN_POLL, left))
        return sum(_discard(name, fd) for name, fd in fds)

    def close(self) -> None:
        """Close every endpoint (never unlinks anything). Idempotent.

        Raises:
            osipc.TransportError: closing a bare descriptor failed (``errno`` set;
                EBADF: something else closed it), raised once every other endpoint
                is closed; so is the first error from closing any other endpoint.
        """
        items = list(self.items())
        self.clear()
        self._fifo_senders.clear()
        self._closed = True
        failure: Exception | None = None
        for name, endpoint in items:
            try:
                if isinstance(endpoint, int):
                    _close_fd(name, endpoint)
                else:
                    endpoint.close()
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def __enter__(self) -> Endpoints:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _close_fd(name: str, fd: int) -> None:
    try:
        os.close(fd)
    except OSError as exc:
        why = " (something else closed it first)" if exc.errno == errno.EBADF else ""
        raise osipc.TransportError(
            f"close fd {fd} of endpoint {name!r}: {exc.strerror}{why}", errno=exc.errno
        ) from exc


def _fifo_error(name: str, fd: int, exc: OSError, what: str) -> osipc.OsipcError:
    if exc.errno == errno.EBADF:
        return osipc.Closed(f"{what} FIFO {name!r} (fd {fd}): something closed its descriptor")
    return osipc.TransportError(f"{what} FIFO {name!r} (fd {fd}): {exc.strerror}", errno=exc.errno)


def _unread(name: str, fd: int) -> int:
    """How many bytes wait in the FIFO (FIONREAD)."""
    try:
        answer = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    except OSError as exc:
        raise _fifo_error(name, fd, exc, "look into") from exc
    return int.from_bytes(answer, sys.byteorder, signed=True)


def _discard(name: str, fd: int) -> int:
    """Read the FIFO empty without waiting; the number of bytes read."""
    total = 0
    try:
        blocking = os.get_blocking(fd)
        if blocking:  # the writer this service holds would keep a read waiting for ever
            os.set_blocking(fd, False)
        try:
            while chunk := os.read(fd, _DRAIN_CHUNK):
                total += len(chunk)
        except BlockingIOError:
            pass
        finally:
            if blocking:
                os.set_blocking(fd, True)
    except OSError as exc:
        raise _fifo_error(name, fd, exc, "drain") from exc
    return total


def _what(endpoint: Endpoint) -> str:
    if isinstance(endpoint, osipc.Receiver):
        return f"a receiver ({endpoint.url})"
    if isinstance(endpoint, osipc.Sender):
        return f"a sender ({endpoint.url})"
    if isinstance(endpoint, socket.socket):
        return "a socket"
    return f"descriptor {endpoint} (neither FIFO, message queue nor socket)"


def endpoints(
    *,
    senders: Collection[str] = (),
    codec: Any = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    unset_environment: bool = True,
) -> Endpoints:
    """Adopt every descriptor systemd passed; ``{}`` outside socket activation.

    Each FIFO (ListenFIFO=) and message queue (ListenMessageQueue=) becomes an osipc
    receiver, or a sender when its name is in ``senders``; each socket a
    ``socket.socket``; anything else (ListenSpecial=, ...) stays a bare descriptor.
    ``codec`` applies to every handle; ``options`` gives per-name keyword options for
    ``osipc.receiver``/``osipc.sender`` (e.g. ``{"log": {"framing": "lines"}}``, or a
    per-name ``codec``). Names in ``senders`` or ``options`` that systemd did not pass
    are ignored, so the same code runs outside systemd. See :func:`listen_fds` for
    the environment handling.

    systemd opens FIFOs read-write, so either role works on them; it hands a service a
    read-only queue, so a sender on one raises ``osipc.InvalidArgument``.

    Raises:
        osipc.InvalidArgument: as :func:`listen_fds`; two descriptors share a name;
            a descriptor cannot be used in the role asked for.
        osipc.OsipcError: osipc refused to adopt a descriptor (nothing stays adopted).
    """
    items = listen_fds(unset_environment=unset_environment)
    seen: set[str] = set()
    for item in items:
        if item.name in seen:
            raise osipc.InvalidArgument(
                f"systemd passed several descriptors named {item.name!r} (LISTEN_FDNAMES); "
                "give each endpoint its own socket unit and FileDescriptorName=, or use "
                "osipc_systemd.listen_fds()"
            )
        seen.add(item.name)
    result = Endpoints()
    try:
        for item in items:
            if item.kind in ("fifo", "mq"):
                keywords: dict[str, Any] = {"codec": codec}
                keywords.update((options or {}).get(item.name, {}))
                if item.name in senders:
                    sender = osipc.sender(item.url, **keywords)
                    result[item.name] = sender
                    if item.kind == "fifo":
                        result._fifo_senders[item.name] = (sender, item.fd)
                else:
                    result[item.name] = osipc.receiver(item.url, **keywords)
            elif item.kind == "socket":
                result[item.name] = socket.socket(fileno=item.fd)
            else:
                result[item.name] = item.fd
    except BaseException as failure:
        try:
            result.close()
        except Exception as exc:  # what stopped the adoption is the error to raise
            if failure.__context__ is None:
                failure.__context__ = exc
        raise
    return result
