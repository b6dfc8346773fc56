"""osipc's optional C parts (osipc/_ringc.c, osipc/_msgc.c): used wherever they were
built, never under OSIPC_NO_ACCEL=1, and broadcast rings stay in Python. Both paths are
checked against the same wire and ring format by the transports' own tests, which run
with the C parts in most envs and without them in py39-core (README.md)."""

from __future__ import annotations

import os
from collections.abc import Callable

import osipc
from osipc import _ring
from osipc.transports import fifo, posix_mq, sysv_mq

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


def test_a_ring_receivers_poll_for_osipc_aio_is_its_c_receive(url: Url) -> None:
    for scheme in ("shm", "sysv+shm"):
        queue = url(scheme, capacity="64K")
        with osipc.receiver(queue) as rx:
            poll = rx._poll  # type: ignore[attr-defined]
            assert (poll is not None) == _expected(_ring.ACCEL), (scheme, _ring.ACCEL_STATUS)
        if poll is not None:
            try:
                poll()
            except ValueError:
                pass  # closed: the ring was released, and osipc.aio's recv says Closed
            else:
                raise AssertionError("the C receive still worked after close()")
        osipc.unlink(queue)


def test_the_ring_handles_stay_within_cpythons_shared_key_dicts(url: Url) -> None:
    # CPython keeps up to 30 instance attributes in a compact dict its class shares; one
    # more and every attribute load of the hot paths gets slower (the one-message receive
    # went from ~195 to ~240 ns at 30). Mind this count when adding one.
    for scheme in ("shm", "sysv+shm"):
        queue, broadcast = url(scheme, capacity="64K"), url(scheme, capacity="64K")
        with osipc.sender(queue) as tx, osipc.receiver(queue) as rx:  # noqa: SIM117 (3.9)
            with osipc.publisher(broadcast) as pub, osipc.subscriber(broadcast) as sub:
                sizes = {type(h).__name__: len(vars(h)) for h in (tx, rx, pub, sub)}
        osipc.unlink(queue)
        osipc.unlink(broadcast)
        assert max(sizes.values()) < 30, (scheme, sizes)


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


def test_a_fifo_sends_small_frames_through_its_c_part_where_it_was_built(url: Url) -> None:
    assert (fifo._MSGC is posix_mq._MSGC) and (fifo._MSGC is not None) == _expected(fifo._MSGC)
    target = url("fifo")
    limit = fifo.SMALL_MAX
    sent = [b"", b"\xc1", b"x" * limit, b"y" * (limit + 1), bytearray(b"z" * 300)]
    with osipc.receiver(target) as rx, osipc.sender(target) as tx:
        for message in sent:  # the largest one frame carries, and one byte past it (parts)
            tx.send(message)
        got = [rx.recv(timeout=2) for _ in sent]
    osipc.unlink(target)
    assert got == [bytes(m) for m in sent]
