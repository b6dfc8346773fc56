"""osipc.aio: every transport and pattern from one event loop, against peers in separate
processes; the timeout rule; cancellation that never loses or duplicates a message; a
hundred endpoints of mixed kinds on one loop with a bounded number of threads."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from _helpers import SEND_DURING_SPIN, finish, spawn

import osipc
import osipc.aio

Url = Callable[..., str]
T = TypeVar("T")

# fifo, mq and zmq wait on their fd; the rings, sysv+mq and mem:// on worker threads
SCHEMES = ["fifo", "mq", "shm", "sysv+mq", "sysv+shm", "zmq+ipc"]
SLOW_CANCEL_KINDS = ["fifo", "sysv+mq", "sysv+shm", "zmq+ipc"]


def run(coro: Awaitable[T], limit: float = 60) -> T:
    """Run ``coro`` on a fresh loop, failing (not hanging) after ``limit`` seconds."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, limit)

    return asyncio.run(bounded())


@pytest.fixture(params=SCHEMES)
def scheme(request: pytest.FixtureRequest) -> str:
    if request.param.startswith("zmq"):
        pytest.importorskip("zmq", reason="zmq is not installed (pip install 'osipc[zmq]')")
    return str(request.param)


def endpoint(url: Url, scheme: str) -> str:
    """A URL of ``scheme`` that lives within this machine's limits (RLIMIT_MSGQUEUE holds
    about nine default-size queues, shared with the tests of a parallel tox env)."""
    options = {
        "shm": {"capacity": "64K"},
        "sysv+shm": {"capacity": "64K"},
        "mq": {"maxmsg": 10, "msgsize": 256},
    }.get(scheme, {})
    return url(scheme, **options)


def remove(target: str) -> None:
    osipc.unlink(target.split("?", maxsplit=1)[0], missing_ok=True)


# -- one endpoint, both directions -------------------------------------------------------

SEND_NUMBERS = """
    import sys, time, osipc
    with osipc.sender(sys.argv[1]) as tx:
        for i in range(int(sys.argv[2])):
            tx.send(b"%d" % i, timeout=30)
            if float(sys.argv[3]):
                time.sleep(float(sys.argv[3]))
        tx.end(timeout=30)
        time.sleep(0.2)  # zmq: let the last frames leave before the socket closes
"""

RECV_NUMBERS = """
    import sys, osipc
    with osipc.receiver(sys.argv[1]) as rx:
        print("ready", flush=True)
        got = [int(m) for m in rx]
    print(got == list(range(int(sys.argv[2]))), len(got))
"""


def test_an_async_receiver_gets_another_process_s_messages_in_order(url: Url, scheme: str) -> None:
    target = endpoint(url, scheme)

    async def main() -> list[int]:
        async with osipc.aio.receiver(target) as rx:
            proc = spawn(SEND_NUMBERS, target, "300", "0")
            try:
                return [int(message) async for message in rx]
            finally:
                await asyncio.get_running_loop().run_in_executor(None, finish, proc)

    assert run(main()) == list(range(300))
    remove(target)


def test_an_async_sender_waits_for_room_and_reaches_another_process(url: Url, scheme: str) -> None:
    # small objects, so the sender has to wait for room many times (mq holds 10)
    small = {"shm": {"capacity": "4096"}, "sysv+shm": {"capacity": "4096"}}
    target = url(scheme, **small[scheme]) if scheme in small else endpoint(url, scheme)

    async def main() -> str:
        async with osipc.aio.sender(target) as tx:
            proc = spawn(RECV_NUMBERS, target, "1000")
            assert proc.stdout is not None
            loop = asyncio.get_running_loop()
            assert await loop.run_in_executor(None, proc.stdout.readline) == "ready\n"
            assert await tx.send_many([b"%d" % i for i in range(500)], timeout=30) == 500
            for i in range(500, 1000):
                await tx.send(b"%d" % i, timeout=30)
            await tx.end(timeout=30)
            return await loop.run_in_executor(None, finish, proc)

    assert run(main()) == "True 1000\n"
    remove(target)


def test_recv_into_fills_a_buffer_whether_the_message_waited_or_not(url: Url, scheme: str) -> None:
    target = endpoint(url, scheme)

    async def main() -> None:
        async with osipc.aio.receiver(target) as rx, osipc.aio.sender(target) as tx:
            buffer = bytearray(64)
            await tx.send(b"ready at once")
            assert await rx.recv_into(buffer, timeout=5) == 13
            assert bytes(buffer[:13]) == b"ready at once"
            later = asyncio.ensure_future(rx.recv_into(buffer, timeout=5))
            await asyncio.sleep(0.05)  # the receive waits (on the fd, or on a worker)
            await tx.send(b"waited for")
            assert await later == 10 and bytes(buffer[:10]) == b"waited for"
            await tx.send(b"x" * 65)
            with pytest.raises(osipc.MessageTooLarge, match="for the next recv"):
                await rx.recv_into(buffer, timeout=5)
            assert await rx.recv(timeout=5) == b"x" * 65
            with pytest.raises(osipc.Timeout, match="timeout=0"):
                await rx.recv_into(buffer, timeout=0)

    run(main())
    remove(target)


def test_timeouts_follow_the_sync_rule(url: Url, scheme: str) -> None:
    target = endpoint(url, scheme)

    async def main() -> None:
        async with osipc.aio.receiver(target) as rx:
            started = time.monotonic()
            with pytest.raises(osipc.Timeout, match=r"nothing arrived within 0\.3 s"):
                await rx.recv(timeout=0.3)
            assert 0.29 <= time.monotonic() - started < 2
            started = time.monotonic()
            with pytest.raises(osipc.Timeout, match=r"timeout=0"):
                await rx.recv_many(5, timeout=0)
            assert time.monotonic() - started < 0.2
            with pytest.raises(osipc.InvalidArgument, match="timeout must be"):
                await rx.recv(timeout=-1)

    run(main())
    remove(target)


@pytest.mark.parametrize("ring", ["shm", "sysv+shm"])
def test_what_comes_during_a_ring_s_spin_on_the_loop_is_received_whole(url: Url, ring: str) -> None:
    # spin=0.5 s: each of another process's sends lands while the loop's thread polls
    # (before a worker would wait); an empty message is data, an end-of-stream ends.
    target = url(ring, capacity="64K", spin=500_000)

    async def main() -> None:
        async with osipc.aio.receiver(target) as rx:
            proc = spawn(SEND_DURING_SPIN, target)
            assert await rx.recv(timeout=10) == b""
            assert await rx.recv(timeout=10) == b"y" * 100
            with pytest.raises(osipc.EndOfStream):
                await rx.recv(timeout=10)
            finish(proc)

    run(main())
    remove(target)


def test_a_full_queue_times_out_an_async_send(url: Url) -> None:
    target = url("mq", maxmsg=2, msgsize=64)

    async def main() -> None:
        async with osipc.aio.sender(target) as tx, osipc.aio.receiver(target) as rx:
            await tx.send_many([b"a", b"b"])
            with pytest.raises(osipc.Timeout, match=r"no room to send within 0\.2 s") as info:
                await tx.send_many([b"c", b"d"], timeout=0.2)
            assert info.value.sent == 0
            assert await rx.recv_many(5) == [b"a", b"b"]

    run(main())
    remove(target)


def test_errors_are_the_sync_ones(url: Url) -> None:
    target = url("shm", capacity="64K")

    async def main() -> None:
        tx = osipc.aio.sender(target)
        rx = osipc.aio.receiver(target, codec="json")
        with pytest.raises(osipc.EncodeError):
            await tx.send({"not": "bytes"})  # type: ignore[arg-type]
        await tx.send(b"not json")
        with pytest.raises(osipc.DecodeError, match="json"):
            await rx.recv(timeout=5)
        await tx.aclose()
        rx.close()
        with pytest.raises(osipc.Closed):
            await tx.send(b"x")
        with pytest.raises(osipc.Closed):
            await rx.recv()

    run(main())
    remove(target)


def test_closing_wakes_a_task_that_waits(url: Url, scheme: str) -> None:
    target = endpoint(url, scheme)

    async def main() -> None:
        rx = osipc.aio.receiver(target)
        waiting = asyncio.create_task(rx.recv())
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await rx.aclose()
        with pytest.raises(osipc.Closed):
            await waiting
        assert time.monotonic() - started < 1

    run(main())
    remove(target)


# -- cancellation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cancel_kind",
    # mq waits on its fd, shm on worker threads; the other kinds repeat one of the two
    ["mq", "shm", *(pytest.param(k, marks=pytest.mark.slow) for k in SLOW_CANCEL_KINDS)],
)
def test_a_thousand_cancelled_receives_lose_and_duplicate_nothing(
    url: Url, cancel_kind: str
) -> None:
    if cancel_kind.startswith("zmq"):
        pytest.importorskip("zmq", reason="zmq is not installed (pip install 'osipc[zmq]')")
    target = endpoint(url, cancel_kind)
    count = 1500

    async def main() -> list[int]:
        async with osipc.aio.receiver(target) as rx:
            # paced, so a receive often waits: on a worker thread (rings) or on the fd
            proc = spawn(SEND_NUMBERS, target, str(count), "0.0005")
            got: list[int] = []
            for round_ in range(1000):
                task = asyncio.create_task(rx.recv(timeout=30))
                if round_ % 4:
                    await asyncio.sleep((round_ % 7) * 0.0002)
                task.cancel()
                try:
                    got.append(int(await task))
                except asyncio.CancelledError:
                    pass
            got.extend([int(message) async for message in rx])
            await asyncio.get_running_loop().run_in_executor(None, finish, proc)
            return got

    got = run(main(), limit=90)
    assert got == list(range(count)), (len(got), len(set(got)))
    remove(target)


def test_a_cancelled_request_does_not_wedge_the_client(url: Url) -> None:
    target = endpoint(url, "mq")
    server_code = """
        import sys, osipc
        with osipc.server(sys.argv[1]) as srv:
            for _ in range(2):  # the abandoned request, then the next one
                request = srv.recv(timeout=30)
                request.reply(b"re:" + request.data)
    """

    async def main() -> bytes:
        async with osipc.aio.client(target) as client:
            task = asyncio.create_task(client.request(b"lost", timeout=30))
            await asyncio.sleep(0.2)  # no server yet: it waits for a reply
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            proc = spawn(server_code, target)
            reply = await client.request(b"kept", timeout=30)  # "re:lost" is dropped
            await asyncio.get_running_loop().run_in_executor(None, finish, proc)
            return reply

    assert run(main()) == b"re:kept"
    remove(target)


# -- patterns ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["shm", "zmq+ipc"])
def test_an_async_subscriber_sees_what_another_process_publishes(url: Url, kind: str) -> None:
    if kind.startswith("zmq"):
        pytest.importorskip("zmq", reason="zmq is not installed (pip install 'osipc[zmq]')")
    target = url(kind, capacity="64K") if kind == "shm" else url(kind, wait_for_subscribers=1)
    publisher_code = """
        import sys, osipc
        with osipc.publisher(sys.argv[1]) as pub:
            for i in range(200):
                pub.send(b"%d" % i, timeout=30)
            pub.end(timeout=30)
    """

    async def main() -> list[int]:
        async with osipc.aio.subscriber(target) as sub:
            proc = spawn(publisher_code, target)
            got = [int(message) async for message in sub]
            await asyncio.get_running_loop().run_in_executor(None, finish, proc)
            return got

    assert run(main()) == list(range(200))
    remove(target)


@pytest.mark.parametrize("kind", ["mq", "zmq+ipc"])
def test_async_server_and_client_answer_separate_processes(url: Url, kind: str) -> None:
    if kind.startswith("zmq"):
        pytest.importorskip("zmq", reason="zmq is not installed (pip install 'osipc[zmq]')")
    target = endpoint(url, kind)
    client_code = """
        import sys, osipc
        with osipc.client(sys.argv[1], codec="json") as client:
            print([client.request({"n": i}, timeout=30)["n"] for i in range(20)])
    """
    server_code = """
        import sys, osipc
        with osipc.server(sys.argv[1], codec="json") as srv:
            for _ in range(20):
                request = srv.recv(timeout=30)
                request.reply({"n": request.data["n"] * 2})
    """

    async def serve() -> str:
        async with osipc.aio.server(target, codec="json") as srv:
            proc = spawn(client_code, target)
            served = 0
            async for request in srv:
                await request.reply({"n": request.data["n"] + 1})
                with pytest.raises(osipc.InvalidArgument, match="already answered"):
                    await request.reply({"n": 0})
                served += 1
                if served == 20:
                    break
            return await asyncio.get_running_loop().run_in_executor(None, finish, proc)

    async def ask() -> list[int]:
        async with osipc.aio.client(target, codec="json") as client:
            proc = spawn(server_code, target)
            replies = [(await client.request({"n": i}, timeout=30))["n"] for i in range(20)]
            await asyncio.get_running_loop().run_in_executor(None, finish, proc)
            return replies

    assert run(serve()) == str(list(range(1, 21))) + "\n"
    assert run(ask()) == [i * 2 for i in range(20)]
    remove(target)


def test_a_request_without_a_server_times_out(url: Url) -> None:
    target = endpoint(url, "mq")

    async def main() -> None:
        async with osipc.aio.client(target) as client:
            with pytest.raises(osipc.Timeout, match=r"no reply within 0\.3 s"):
                await client.request(b"anyone?", timeout=0.3)

    run(main())
    remove(target)


# -- many endpoints ----------------------------------------------------------------------


def test_one_loop_serves_a_hundred_endpoints_of_mixed_kinds(url: Url) -> None:
    kinds = ["fifo", "mq", "shm", "sysv+mq", "sysv+shm", "mem"]
    try:
        import zmq  # noqa: F401

        kinds.append("zmq+ipc")
    except ImportError:
        pass
    targets = [endpoint(url, kinds[i % len(kinds)]) for i in range(100)]
    remote = [t for t in targets if not t.startswith("mem")]
    local = [t for t in targets if t.startswith("mem")]
    sender_code = """
        import sys, osipc
        handles = [(target.encode(), osipc.sender(target)) for target in sys.argv[1:]]
        for round_ in range(5):
            for target, tx in handles:
                tx.send(target + b":%d" % round_, timeout=30)
        for _, tx in handles:
            tx.end(timeout=30)
            tx.close()
    """
    threads_before = threading.active_count()

    async def main() -> tuple[list[list[bytes]], int]:
        receivers = [osipc.aio.receiver(target) for target in targets]
        senders = [osipc.aio.sender(target) for target in local]  # mem:// is in-process
        peak = 0

        async def drain(rx: osipc.aio.AsyncReceiver[bytes]) -> list[bytes]:
            nonlocal peak
            out = []
            async for message in rx:
                out.append(message)
                peak = max(peak, threading.active_count())
            return out

        async def feed(tx: osipc.aio.AsyncSender[bytes]) -> None:
            for round_ in range(5):
                await tx.send(tx.url.encode() + b":%d" % round_)
            await tx.end()

        proc = spawn(sender_code, *remote)
        try:
            results = await asyncio.gather(
                *(drain(rx) for rx in receivers), *(feed(tx) for tx in senders)
            )
        finally:
            for handle in [*receivers, *senders]:
                await handle.aclose()
        await asyncio.get_running_loop().run_in_executor(None, finish, proc)
        return results[: len(receivers)], peak  # type: ignore[return-value]

    got, peak = run(main(), limit=120)
    for target, messages in zip(targets, got):
        assert messages == [target.encode() + b":%d" % r for r in range(5)], target
    assert peak <= threads_before + osipc.aio.WORKERS + 2, "threads grew past the pool"
    for target in targets:
        remove(target)


def test_wrap_gives_the_async_face_of_an_open_handle(url: Url) -> None:
    target = endpoint(url, "mq")

    async def main() -> bytes:
        async with osipc.aio.wrap(osipc.sender(target)) as tx:
            assert isinstance(tx, osipc.aio.AsyncSender)
            await tx.send(b"wrapped")
        async with osipc.aio.wrap(osipc.receiver(target)) as rx:
            return await rx.recv(timeout=5)  # type: ignore[no-any-return]

    assert run(main()) == b"wrapped"
    with pytest.raises(osipc.InvalidArgument, match="wrap\\(\\) takes"):
        osipc.aio.wrap(object())
    remove(target)
