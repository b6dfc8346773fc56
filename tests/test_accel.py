"""osipc's optional C parts (osipc/_ringc.c, osipc/_msgc.c): used wherever they were
built, never under OSIPC_NO_ACCEL=1, and broadcast rings stay in Python. Both paths are
checked against the same wire and ring format by the transports' own tests, which run
with the C parts in most envs and without them in py39-core (README.md)."""

from __future__ import annotations

import os
from collections.abc import Callable

import osipc
from osipc import _ring
from osipc.transports import posix_mq, sysv_mq

Url = Callable[..., str]


def _expected(module: object) -> bool:
    if os.environ.get("OSIPC_NO_ACCEL", "") not in ("", "0"):
        return False
    if os.environ.get("OSIPC_EXPECT_INSTALLED"):  # tox: built with the machine's gcc
        return True
    return module is not None  # a development install: whatever was built


def test_the_rings_use_their_c_part_where_it_was_built(url: Url) -> None:
    for scheme in ("shm", "sysv+shm"):
        queue, broadcast = url(scheme, capacity="64K"), url(scheme, capacity="64K")
        with osipc.sender(queue) as tx, osipc.receiver(queue) as rx:
            in_use = tx._accel is not None and rx._accel is not None  # type: ignore[attr-defined]
        with osipc.publisher(broadcast) as pub:
            assert pub._accel is None  # type: ignore[attr-defined]  # broadcast: Python
        osipc.unlink(queue)
        osipc.unlink(broadcast)
        assert in_use == _expected(_ring.ACCEL), (scheme, _ring.ACCEL_STATUS)


def test_the_message_queues_use_their_c_part_where_it_was_built(url: Url) -> None:
    target = url("mq", maxmsg=4, msgsize=64)
    with osipc.sender(target) as tx, osipc.receiver(target) as rx:
        in_use = tx._fast is not None and rx._fast is not None  # type: ignore[attr-defined]
        tx.send(b"\xc1")  # the escape rule holds on the C path too
        tx.send(b"")
        assert rx.recv(timeout=1) == b"\xc1" and rx.recv(timeout=1) == b""
    osipc.unlink(target)
    assert in_use == _expected(posix_mq._MSGC)
    assert (sysv_mq._MSGC is posix_mq._MSGC) and (sysv_mq._MSGC is not None) == _expected(
        sysv_mq._MSGC
    )
