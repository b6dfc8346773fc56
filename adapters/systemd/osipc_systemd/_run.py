"""``osipc-systemd run``: socket activation without systemd, for development and tests.

Creates each endpoint as the socket unit would (through osipc, so mode, sizes and the
refusal of another user's object apply), opens it as systemd does (a FIFO read-write,
a queue read-only), puts the descriptors at 3, 4, ... and execs the command with
LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID (its own pid: exec keeps it). Nothing is
removed afterwards: ``osipc rm URL`` does that.
"""

from __future__ import annotations

import fcntl
import os
import stat
from collections.abc import Sequence
from typing import NoReturn

import osipc
from osipc_systemd._activation import LISTEN_FDS_START
from osipc_systemd._libc import open_queue_readonly
from osipc_systemd._units import split_listen, stem


def _open(url: str) -> int:
    base, _, query = url.partition("?")
    if any(item.partition("=")[0] == "fd" for item in query.split("&") if query):
        raise osipc.InvalidArgument(f"--listen {url!r}: fd= makes no sense here; it adopts one")
    scheme = base.partition("://")[0].lower()
    if scheme not in ("fifo", "mq"):
        raise osipc.InvalidArgument(
            f"--listen {url!r}: only fifo:// and mq:// endpoints can be passed like "
            "systemd's ListenFIFO= and ListenMessageQueue="
        )
    osipc.receiver(url).close()  # create (or check) it the osipc way
    if scheme == "mq":
        try:
            return open_queue_readonly(base.partition("://")[2])
        except OSError as exc:
            raise osipc.TransportError(
                f"open {base} read-only: {exc.strerror}", errno=exc.errno
            ) from exc
    path = osipc.info(base).path
    if path is None:  # pragma: no cover - osipc always knows a FIFO's path
        raise osipc.TransportError(f"osipc.info({base!r}) gave no path")
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            os.close(fd)
            raise osipc.TransportError(f"{path} changed into something that is not a FIFO")
    except OSError as exc:
        raise osipc.TransportError(f"open {path}: {exc.strerror}", errno=exc.errno) from exc
    return fd


def run(listens: Sequence[str], argv: Sequence[str]) -> NoReturn:
    """Open every ``[FDNAME=]URL`` and exec ``argv`` as if systemd had activated it.

    Raises:
        osipc.OsipcError: an endpoint could not be created or opened.
        OSError: the command could not be executed.
    """
    names: list[str] = []
    fds: list[int] = []
    try:
        for text in listens:
            fdname, url = split_listen(text)
            fd = _open(url)
            fds.append(fd)
            location = url.partition("?")[0].partition("://")[2]
            names.append(fdname or (stem(location) if location.startswith("/") else location))
        # dup2(fd, fd) would keep close-on-exec: first move every source above the range
        count = len(fds)
        moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, LISTEN_FDS_START + count) for fd in fds]
        for fd in fds:
            os.close(fd)
        fds = moved
        for index, fd in enumerate(moved):
            os.dup2(fd, LISTEN_FDS_START + index, inheritable=True)
            os.close(fd)
        fds = []
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    env = dict(os.environ)
    env.update(
        LISTEN_FDS=str(count),
        LISTEN_FDNAMES=":".join(names),
        LISTEN_PID=str(os.getpid()),
    )
    try:
        os.execvpe(argv[0], list(argv), env)
    except OSError as exc:
        raise osipc.TransportError(
            f"cannot run {argv[0]!r}: {exc.strerror}", errno=exc.errno
        ) from exc
