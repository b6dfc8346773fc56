"""``osipc-systemd run``: socket activation without systemd, for development and tests.

Creates each endpoint as the socket unit would (through osipc, so mode, sizes and the
refusal of another user's object apply), opens it as systemd does (a FIFO read-write,
a queue read-only), puts the descriptors at 3, 4, ... and execs the command with
LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID (its own pid: exec keeps it). Nothing is
removed afterwards: ``osipc rm URL`` does that. When an endpoint cannot be made or
opened, or the command cannot be executed, the endpoints this call created are removed
again (those that existed before stay).
"""

from __future__ import annotations

import fcntl
import os
import stat
from collections.abc import Sequence
from typing import NoReturn

import osipc
import osipc.abc
from osipc_systemd._activation import LISTEN_FDS_START, is_valid_name
from osipc_systemd._libc import open_queue_readonly
from osipc_systemd._units import shorten, split_listen, stem


def _check(url: str) -> None:
    base, _, query = url.partition("?")
    if any(item.partition("=")[0] == "fd" for item in query.split("&") if query):
        raise osipc.InvalidArgument(f"--listen {url!r}: fd= makes no sense here; it adopts one")
    scheme = base.partition("://")[0].lower()
    if scheme not in ("fifo", "mq"):
        raise osipc.InvalidArgument(
            f"--listen {url!r}: only fifo:// and mq:// endpoints can be passed like "
            "systemd's ListenFIFO= and ListenMessageQueue="
        )


def _open(url: str) -> int:
    base = url.partition("?")[0]
    scheme = base.partition("://")[0].lower()
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


def _exists(base: str) -> bool:
    try:
        osipc.info(base)
    except osipc.NotFound:
        return False
    return True


def _remove(made: Sequence[str]) -> None:
    """Remove what a failed run made; a failure to remove does not hide why it failed."""
    for base in made:
        try:
            osipc.unlink(base, missing_ok=True)
        except osipc.OsipcError:
            pass


def _names(listens: Sequence[str]) -> list[tuple[str, str]]:
    """(descriptor name, URL) for each ``[FDNAME=]URL``, checked before anything is made."""
    found: list[tuple[str, str]] = []
    for text in listens:
        fdname, url = split_listen(text)
        _check(url)
        base = url.partition("?")[0]
        location = base.partition("://")[2]
        if fdname is None and not location.startswith("/"):
            osipc.abc.validate_name(location, url)  # osipc's own InvalidURL, naming the rule
        name = fdname or (stem(location) if location.startswith("/") else location)
        if not is_valid_name(name):
            raise osipc.InvalidArgument(
                f"--listen {shorten(text)}: the descriptor name {shorten(name)} must be "
                "1-200 characters of A-Z a-z 0-9 . _ - not starting with '.' (LISTEN_FDNAMES "
                "separates names with ':'); name it with --listen FDNAME=URL"
            )
        for other, other_url in found:
            if name == other or base == other_url.partition("?")[0]:
                what = f"descriptor name {name!r}" if name == other else f"endpoint {base}"
                raise osipc.InvalidArgument(
                    f"the {what} is given twice; every --listen needs its own "
                    "(name one with --listen FDNAME=URL)"
                )
        found.append((name, url))
    return found


def run(listens: Sequence[str], argv: Sequence[str]) -> NoReturn:
    """Open every ``[FDNAME=]URL`` and exec ``argv`` as if systemd had activated it.

    Raises:
        osipc.InvalidArgument, osipc.InvalidURL: a scheme systemd cannot pass, a bad
            name, or a descriptor name or endpoint given twice (before any object is made).
        osipc.OsipcError: an endpoint could not be created or opened.
        OSError: the command could not be executed.
    """
    wanted = _names(listens)
    names = [name for name, _ in wanted]
    fds: list[int] = []
    made: list[str] = []  # endpoints this call creates (known before: _open may fail after)
    try:
        for _, url in wanted:
            base = url.partition("?")[0]
            if not _exists(base):
                made.append(base)
            fds.append(_open(url))
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
        _remove(made)
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
        _remove(made)
        raise osipc.TransportError(
            f"cannot run {argv[0]!r}: {exc.strerror}", errno=exc.errno
        ) from exc
