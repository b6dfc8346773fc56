"""Kernel limits, read at run time so errors can name the exact setting and its value."""

from __future__ import annotations

import os
import resource
import select

PIPE_BUF = select.PIPE_BUF

MQUEUE_SYSCTL_DIR = "/proc/sys/fs/mqueue"


def read_sysctl(path: str) -> int | None:
    """An integer sysctl such as ``/proc/sys/fs/mqueue/msg_max``, or None if unreadable."""
    try:
        with open(path) as sysctl:
            return int(sysctl.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def mqueue(name: str) -> int | None:
    """``fs.mqueue.NAME`` (msg_max, msgsize_max, queues_max, msg_default, msgsize_default)."""
    return read_sysctl(f"{MQUEUE_SYSCTL_DIR}/{name}")


def rlimit_msgqueue() -> tuple[int, int]:
    """(soft, hard) RLIMIT_MSGQUEUE in bytes; RLIM_INFINITY is -1."""
    return resource.getrlimit(resource.RLIMIT_MSGQUEUE)


def mq_bytes(maxmsg: int, msgsize: int) -> int:
    """What the kernel charges a queue against RLIMIT_MSGQUEUE (ipc/mqueue.c, 64-bit):
    the message space, a 48-byte ``msg_msg`` per message and a 48-byte priority tree node
    per message up to MQ_PRIO_MAX. Default queues (10 x 8192) cost 82880 bytes."""
    return maxmsg * msgsize + maxmsg * 48 + min(maxmsg, 32768) * 48


def pipe_max_size() -> int | None:
    return read_sysctl("/proc/sys/fs/pipe-max-size")


def sysv(name: str) -> int | None:
    """``kernel.NAME`` (msgmax, msgmnb, msgmni, shmmax, ...)."""
    return read_sysctl(f"/proc/sys/kernel/{name}")


def has_cap_sys_resource() -> bool:
    """CAP_SYS_RESOURCE lets a process exceed the mqueue and pipe-size sysctls."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) & (1 << 24))
    except (OSError, ValueError):
        pass
    return False


def open_fd_count() -> int | None:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def descriptors_left() -> int | None:
    """How many more descriptors RLIMIT_NOFILE lets this process open; None if it sets
    no limit, 0 if not even /proc/self/fd could be opened to count them."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return None
    used = open_fd_count()
    return 0 if used is None else max(0, soft - used)


def mqueue_mount() -> str | None:
    """Where an mqueue file system is mounted in this mount namespace, if anywhere."""
    try:
        with open("/proc/self/mountinfo") as mountinfo:
            for line in mountinfo:
                left, _, right = line.partition(" - ")
                if right.split(" ", 1)[0] == "mqueue":
                    return left.split()[4]
    except OSError:
        pass
    return None
