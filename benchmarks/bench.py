#!/usr/bin/env python3
"""osipc's benchmark suite: every transport against the raw binding under it and the peers,
in one run, between two separate processes.

    ./scripts/bench                      # the default suite (~3 minutes), writes the results
    python benchmarks/bench.py --quick   # a short smoke run
    python benchmarks/bench.py --only "osipc shm,raw shm ring" --sizes 64

Method. Processes that can meet by name are independent interpreters started one after
the other, knowing only the name; multiprocessing.Queue and faster_fifo cannot be opened
by name, so a parent creates them and forks both peers. The receiver is started first;
the sender sends for a fixed time, then a terminator; the receiver times first message to
terminator and checks every message (a sequence byte at both ends) and the count against
the sender's. Payloads are prebuilt. Sizes a mechanism cannot carry are skipped, and say so.
Round trips are 64-byte ping-pongs over two channels (p50/p99). Cross-core runs pin the two
processes to different CPUs, same-core runs to the same one. The blocking round trip
(spin=0) is held against a two-semaphore ping-pong measured straight before it in every
pass, and the target takes the median of those paired ratios: a floor caught in a
quieter minute than the round trip it is compared with would say nothing about osipc.
Every receive has a timeout, every child is killed at the end, and every kernel object a
case made is removed, even when the case fails.

The "osipc aio" entries measure the asyncio receive path against the synchronous one: the
sender, URL and sizes of "osipc shm" / "osipc mq", and a receiver that awaits osipc.aio's
recv (recv_many when batched) on an asyncio loop, checked the same way. Throughput only.

Throughput cases run twice and keep the better run (the machine is shared: interference
only ever slows a run down). The second run comes in a second pass over the whole plan,
not straight after the first, so that a noisy minute costs every mechanism one sample
rather than one mechanism both, and the ratios between them stay fair.

Outputs: benchmarks/results.json, benchmarks/RESULTS.md (tables, ratios, targets) and
benchmarks/results.png (msgs/s by size).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import datetime
import json
import math
import multiprocessing
import os
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import osipc
import osipc.aio
from osipc import _bench

HERE = os.path.dirname(os.path.abspath(__file__))
SIZES = [64, 4096, 65536, 1 << 20]


def buffer_bytes(size: int) -> int:
    """The buffer every mechanism that takes a size in bytes gets: the same for all (a
    larger one means fewer sleeps and wake-ups, which would decide the comparison), and
    room for 8 messages. The raw shm ring's slots add up to the same."""
    return max(8 << 20, size * 8)


BATCH = 64
CASE_TIMEOUT = 60.0


def _human(size: int) -> str:
    return (
        f"{size >> 20} MiB"
        if size >= 1 << 20
        else f"{size >> 10} KiB"
        if size >= 1024
        else f"{size} B"
    )


# -- mechanisms --------------------------------------------------------------------------


@dataclass
class Side:
    """One end of a channel, as the measuring loops want it."""

    send: Callable[[Any], Any] | None = None
    recv: Callable[[], Any] | None = None
    send_many: Callable[[list[bytes]], Any] | None = None
    recv_many: Callable[[], Any] | None = None
    into: Callable[[], int] | None = None
    buffer: bytearray | None = None
    close: Callable[[], None] = lambda: None
    aio: bool = False  # recv and recv_many return awaitables: await them on an asyncio loop


class Mechanism:
    key = ""
    rtt_only = False  # a variant measured only for round trips
    throughput_only = False  # no round trips (the ping-pong loops are synchronous)
    family = "osipc"  # osipc | raw | peer
    transport = ""  # osipc and raw entries of the same transport are compared
    max_size: int | None = None
    named = True  # False: a parent must create it and fork both peers
    modes = ("stream",)

    def unavailable(self) -> str | None:
        return None

    def receiver(self, name: str, size: int, mode: str) -> Side:
        raise NotImplementedError

    def sender(self, name: str, size: int, mode: str) -> Side:
        raise NotImplementedError

    def cleanup(self, name: str) -> None:
        pass


class Osipc(Mechanism):
    """An osipc URL; with ``aio``, its receiver is osipc.aio's (its sender stays the same)."""

    def __init__(
        self,
        key: str,
        template: str,
        transport: str,
        max_size: int | None,
        modes: tuple[str, ...],
        *,
        aio: bool = False,
    ) -> None:
        self.key, self.template, self.transport = key, template, transport
        self.max_size, self.modes = max_size, modes
        self.aio = self.throughput_only = aio

    def unavailable(self) -> str | None:
        if self.transport.startswith("zmq"):
            return RawZmq.missing()
        return None

    def url(self, name: str, size: int) -> str:
        return self.template.format(name=name, capacity=buffer_bytes(size), port=zmq_port(name))

    def receiver(self, name: str, size: int, mode: str) -> Side:
        rx = (osipc.aio.receiver if self.aio else osipc.receiver)(self.url(name, size))
        side = Side(recv=rx.recv, close=rx.close, aio=self.aio)
        if mode == "batch":
            side.recv_many = lambda: rx.recv_many(BATCH, timeout=CASE_TIMEOUT)
        if mode == "into":
            side.buffer = bytearray(size)
            buffer = side.buffer
            side.into = lambda: rx.recv_into(buffer, timeout=CASE_TIMEOUT)
        return side

    def sender(self, name: str, size: int, mode: str) -> Side:
        tx = osipc.sender(self.url(name, size))
        close = tx.close
        if self.transport.startswith("zmq"):
            close = lambda: (time.sleep(ZMQ_SETTLE), tx.close())
        return Side(send=tx.send, send_many=tx.send_many if mode == "batch" else None, close=close)

    def cleanup(self, name: str) -> None:
        with contextlib.suppress(osipc.Unsupported):  # a TCP endpoint leaves nothing
            osipc.unlink(self.url(name, 64).split("?")[0], missing_ok=True)


class RawFifo(Mechanism):
    """os.read/os.write on a FIFO with 4-byte length prefixes; the reader pulls 1 MiB at
    a time (the way a careful hand-written peer would)."""

    key, family, transport = "raw fifo", "raw", "fifo"
    _LEN = struct.Struct("<I")

    def path(self, name: str) -> str:
        return os.path.join(os.environ["OSIPC_RUNTIME_DIR"], name + ".raw.fifo")

    def receiver(self, name: str, size: int, mode: str) -> Side:
        path = self.path(name)
        with contextlib.suppress(FileExistsError):
            os.mkfifo(path, 0o600)
        state: dict[str, Any] = {"fd": -1, "buf": b"", "pos": 0}
        unpack = self._LEN.unpack_from

        def recv() -> bytes:
            if state["fd"] < 0:
                state["fd"] = os.open(path, os.O_RDONLY)
            buf, pos = state["buf"], state["pos"]
            while True:
                if len(buf) - pos >= 4:
                    (length,) = unpack(buf, pos)
                    if len(buf) - pos - 4 >= length:
                        state["pos"] = pos + 4 + length
                        return buf[pos + 4 : pos + 4 + length]  # type: ignore[no-any-return]
                chunk = os.read(state["fd"], 1 << 20)
                if not chunk:
                    raise EOFError("the writer closed")
                buf, pos = buf[pos:] + chunk, 0
                state["buf"], state["pos"] = buf, pos

        def close() -> None:
            if state["fd"] >= 0:
                os.close(state["fd"])

        return Side(recv=recv, close=close)

    def sender(self, name: str, size: int, mode: str) -> Side:
        path = self.path(name)
        with contextlib.suppress(FileExistsError):
            os.mkfifo(path, 0o600)
        state = {"fd": -1}
        pack, write = self._LEN.pack, os.write

        def send(message: bytes) -> None:
            if state["fd"] < 0:  # opening for writing waits for a reader: do it when needed
                state["fd"] = os.open(path, os.O_WRONLY)
            write(state["fd"], pack(len(message)) + message)

        def close() -> None:
            if state["fd"] >= 0:
                os.close(state["fd"])

        return Side(send=send, close=close)

    def cleanup(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(name))


class RawMq(Mechanism):
    key, family, transport, max_size = "raw mq", "raw", "mq", 8192

    def _open(self, name: str) -> Any:
        import posix_ipc

        return posix_ipc.MessageQueue(
            "/" + name, posix_ipc.O_CREAT, max_messages=10, max_message_size=8192
        )

    def receiver(self, name: str, size: int, mode: str) -> Side:
        mq = self._open(name)
        receive = mq.receive
        return Side(recv=lambda: receive()[0], close=mq.close)

    def sender(self, name: str, size: int, mode: str) -> Side:
        mq = self._open(name)
        return Side(send=mq.send, close=mq.close)

    def cleanup(self, name: str) -> None:
        import posix_ipc

        with contextlib.suppress(posix_ipc.ExistentialError):
            posix_ipc.unlink_message_queue("/" + name)


class RawSysvMq(Mechanism):
    """sysv_ipc.MessageQueue send/receive, blocking, type 1, at osipc's key for the name."""

    key, family, transport, max_size = "raw sysv mq", "raw", "sysv+mq", 8192

    def _open(self, name: str) -> Any:
        import sysv_ipc

        return sysv_ipc.MessageQueue(
            osipc.sysv_key(name), sysv_ipc.IPC_CREAT, mode=0o600, max_message_size=8192
        )

    def receiver(self, name: str, size: int, mode: str) -> Side:
        receive = self._open(name).receive
        return Side(recv=lambda: receive()[0])

    def sender(self, name: str, size: int, mode: str) -> Side:
        return Side(send=self._open(name).send)

    def cleanup(self, name: str) -> None:
        import sysv_ipc

        with contextlib.suppress(sysv_ipc.ExistentialError):
            sysv_ipc.MessageQueue(osipc.sysv_key(name)).remove()


def zmq_port(name: str) -> int:
    """A TCP port both processes derive from the case's name."""
    import zlib

    return 20000 + zlib.crc32(name.encode()) % 20000


# libzmq 4.3 can drop the last messages in flight when a PUSH socket closes while its PULL
# peer is behind, linger or not (libzmq#4660; the docstring of osipc's zeromq transport
# says how). The senders (raw and osipc alike) stay open this long after the terminator,
# outside the measured time, so a case measures speed instead of waiting for a terminator
# that was lost.
ZMQ_SETTLE = 1.0


class RawZmq(Mechanism):
    """pyzmq PUSH/PULL: the receiver binds, the sender connects, default options."""

    family = "raw"

    def __init__(self, transport: str) -> None:
        self.transport = transport
        self.key = f"raw zmq {transport.split('+')[1]}"

    @staticmethod
    def missing() -> str | None:
        try:
            import zmq  # noqa: F401
        except ImportError:
            return "pyzmq is not installed (pip install 'osipc[zmq]')"
        return None

    def unavailable(self) -> str | None:
        return self.missing()

    def endpoint(self, name: str) -> str:
        if self.transport == "zmq+ipc":
            return "ipc://" + os.path.join(os.environ["OSIPC_RUNTIME_DIR"], name + ".raw.zmq")
        return f"tcp://127.0.0.1:{zmq_port(name)}"

    def _socket(self, kind: str, name: str) -> tuple[Any, Any]:
        import zmq

        context = zmq.Context()
        sock = context.socket(getattr(zmq, kind))
        if kind == "PULL":
            sock.bind(self.endpoint(name))
        else:
            sock.connect(self.endpoint(name))
        return context, sock

    def receiver(self, name: str, size: int, mode: str) -> Side:
        context, sock = self._socket("PULL", name)

        def close() -> None:
            sock.close(linger=0)
            context.term()

        return Side(recv=sock.recv, close=close)

    def sender(self, name: str, size: int, mode: str) -> Side:
        context, sock = self._socket("PUSH", name)

        def close() -> None:
            time.sleep(ZMQ_SETTLE)
            sock.close(linger=5000)
            context.term()

        return Side(send=sock.send, close=close)

    def cleanup(self, name: str) -> None:
        if self.transport == "zmq+ipc":
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.endpoint(name)[len("ipc://") :])


class RawShmRing(Mechanism):
    """A plain posix_ipc ring: one producer, one consumer, fixed slots, two counting
    semaphores (items, space) -- the simplest correct thing, no crash safety, no MPMC."""

    key, family, transport = "raw shm ring", "raw", "shm"
    _LEN = struct.Struct("@Q")

    def _open(self, name: str, size: int) -> tuple[Any, Any, Any, int, int]:
        import mmap

        import posix_ipc

        slot = (8 + size + 63) & ~63
        slots = max(4, buffer_bytes(size) // slot)
        flags = posix_ipc.O_CREAT
        shm = posix_ipc.SharedMemory("/" + name, flags, size=slot * slots)
        mapped = mmap.mmap(shm.fd, slot * slots)
        shm.close_fd()
        items = posix_ipc.Semaphore(f"/{name}-items", flags, initial_value=0)
        space = posix_ipc.Semaphore(f"/{name}-space", flags, initial_value=slots)
        return mapped, items, space, slot, slots

    def receiver(self, name: str, size: int, mode: str) -> Side:
        mapped, items, space, slot, slots = self._open(name, size)
        state = {"i": 0}
        unpack = self._LEN.unpack_from

        def recv() -> bytes:
            items.acquire()
            offset = (state["i"] % slots) * slot
            state["i"] += 1
            (length,) = unpack(mapped, offset)
            data = mapped[offset + 8 : offset + 8 + length]
            space.release()
            return data  # type: ignore[no-any-return]

        return Side(recv=recv, close=mapped.close)

    def sender(self, name: str, size: int, mode: str) -> Side:
        mapped, items, space, slot, slots = self._open(name, size)
        view = memoryview(mapped)
        state = {"i": 0}
        pack = self._LEN.pack_into

        def send(message: bytes) -> None:
            space.acquire()
            offset = (state["i"] % slots) * slot
            state["i"] += 1
            pack(mapped, offset, len(message))
            view[offset + 8 : offset + 8 + len(message)] = message
            items.release()

        def close() -> None:
            view.release()
            mapped.close()

        return Side(send=send, close=close)

    def cleanup(self, name: str) -> None:
        import posix_ipc

        for unlink, what in (
            (posix_ipc.unlink_shared_memory, f"/{name}"),
            (posix_ipc.unlink_semaphore, f"/{name}-items"),
            (posix_ipc.unlink_semaphore, f"/{name}-space"),
        ):
            with contextlib.suppress(posix_ipc.ExistentialError):
                unlink(what)


class MpQueue(Mechanism):
    key, family, named = "multiprocessing.Queue", "peer", False

    def make(self, size: int) -> Any:
        # bounded like the others: an unbounded put() buffers gigabytes in its feeder thread
        return multiprocessing.get_context("fork").Queue(maxsize=max(16, (8 << 20) // size))

    def receiver_of(self, queue: Any, size: int, mode: str) -> Side:
        return Side(recv=lambda: queue.get(timeout=CASE_TIMEOUT))

    def sender_of(self, queue: Any, size: int, mode: str) -> Side:
        return Side(send=queue.put, close=lambda: (queue.close(), queue.join_thread()))


class FasterFifo(Mechanism):
    key, family, named, modes = "faster_fifo", "peer", False, ("stream", "batch")

    def unavailable(self) -> str | None:
        try:
            import faster_fifo  # noqa: F401
        except ImportError:
            return "faster_fifo is not installed (pip install -r benchmarks/requirements.txt)"
        return None

    def make(self, size: int) -> Any:
        import faster_fifo

        # identity dumps/loads: its fastest path for bytes; the receiver copies the
        # memoryview it gets into bytes, as every other mechanism hands out
        return faster_fifo.Queue(
            max_size_bytes=buffer_bytes(size), loads=lambda b: b, dumps=lambda x: x
        )

    def receiver_of(self, queue: Any, size: int, mode: str) -> Side:
        get, get_many = queue.get, queue.get_many
        side = Side(recv=lambda: bytes(get(timeout=CASE_TIMEOUT)))
        if mode == "batch":
            side.recv_many = lambda: [
                bytes(m) for m in get_many(timeout=CASE_TIMEOUT, max_messages_to_get=BATCH)
            ]
        return side

    def sender_of(self, queue: Any, size: int, mode: str) -> Side:
        side = Side(send=lambda m: queue.put(m, timeout=CASE_TIMEOUT))
        if mode == "batch":
            side.send_many = lambda ms: queue.put_many(ms, timeout=CASE_TIMEOUT)
        return side


class Iceoryx2(Mechanism):
    """iceoryx2 publish-subscribe of byte slices, lossless (the publisher waits for the
    subscriber's buffer), the subscriber polling (iceoryx2's fastest receive)."""

    key, family = "iceoryx2", "peer"

    def unavailable(self) -> str | None:
        try:
            import iceoryx2  # noqa: F401
        except ImportError:
            return "iceoryx2 is not installed (pip install -r benchmarks/requirements.txt)"
        return None

    def _service(self, name: str) -> tuple[Any, Any]:
        import iceoryx2 as iox2

        iox2.set_log_level_from_env_or(iox2.LogLevel.Fatal)
        node = iox2.NodeBuilder.new().create(iox2.ServiceType.Ipc)
        service = (
            node.service_builder(iox2.ServiceName.new(name))
            .publish_subscribe(iox2.Slice[ctypes.c_uint8])
            .enable_safe_overflow(False)
            .subscriber_max_buffer_size(256)
            .open_or_create()
        )
        return node, service

    def receiver(self, name: str, size: int, mode: str) -> Side:
        node, service = self._service(name)
        subscriber = service.subscriber_builder().buffer_size(256).create()
        receive = subscriber.receive

        def recv() -> bytes:
            deadline = time.monotonic() + CASE_TIMEOUT
            while True:
                sample = receive()
                if sample is not None:
                    payload = sample.payload()
                    data = ctypes.string_at(payload.as_ptr(), payload.len())
                    sample.delete()
                    return data
                if time.monotonic() > deadline:
                    raise TimeoutError("iceoryx2: nothing received")
                os.sched_yield()  # let a publisher on the same CPU run

        def close(_node: Any = node) -> None:  # the node must live as long as its port
            subscriber.delete()

        return Side(recv=recv, close=close)

    def sender(self, name: str, size: int, mode: str) -> Side:
        import iceoryx2 as iox2

        node, service = self._service(name)
        publisher = (
            service.publisher_builder()
            .initial_max_slice_len(size)
            .backpressure_strategy(iox2.BackpressureStrategy.RetryUntilDelivered)
            .create()
        )

        def send(message: bytes) -> None:
            while True:
                sample = publisher.loan_slice_uninit(len(message))
                ctypes.memmove(sample.payload().as_ptr(), message, len(message))
                # right after a subscriber appears send() may deliver to nobody: resend
                if sample.assume_init().send() > 0:
                    return

        def close(_node: Any = node) -> None:  # the node must live as long as its port
            publisher.delete()

        return Side(send=send, close=close)


SHM_URL = "shm://{name}?capacity={capacity}"
MQ_URL = "mq://{name}?maxmsg=10&msgsize=8192"
MECHANISMS: list[Mechanism] = [
    Osipc("osipc shm", SHM_URL, "shm", None, ("stream", "batch", "into")),
    # the asyncio receive path: the same URL and sender, measured right after the sync one
    Osipc("osipc aio shm", SHM_URL, "shm", None, ("stream", "batch"), aio=True),
    Osipc("osipc fifo", "fifo://{name}?pipe_size=1048576", "fifo", None, ("stream", "batch")),
    Osipc("osipc mq", MQ_URL, "mq", 8192, ("stream", "batch")),
    Osipc("osipc aio mq", MQ_URL, "mq", 8192, ("stream", "batch"), aio=True),
    Osipc(
        "osipc shm spin=100", "shm://{name}?capacity={capacity}&spin=100", "shm", None, ("stream",)
    ),
    Osipc("osipc shm spin=0", "shm://{name}?capacity={capacity}&spin=0", "shm", None, ("stream",)),
    Osipc("osipc sysv+mq", "sysv+mq://{name}", "sysv+mq", 8192, ("stream", "batch")),
    Osipc(
        "osipc sysv+shm",
        "sysv+shm://{name}?capacity={capacity}",
        "sysv+shm",
        None,
        ("stream", "batch"),
    ),
    Osipc("osipc zmq+ipc", "zmq+ipc://{name}", "zmq+ipc", None, ("stream", "batch")),
    Osipc("osipc zmq+tcp", "zmq+tcp://127.0.0.1:{port}", "zmq+tcp", None, ("stream", "batch")),
    RawShmRing(),
    RawFifo(),
    RawMq(),
    RawSysvMq(),
    RawZmq("zmq+ipc"),
    RawZmq("zmq+tcp"),
    MpQueue(),
    FasterFifo(),
    Iceoryx2(),
]
BY_KEY = {m.key: m for m in MECHANISMS}
BY_KEY["osipc shm spin=100"].rtt_only = True  # the low-latency round trip
BY_KEY["osipc shm spin=0"].rtt_only = True  # the blocking round trip: never polls


# -- one side, in its own process --------------------------------------------------------


def _pin(cpu: int | None) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {cpu})


async def arecv_loop(
    recv: Callable[[], Awaitable[Any]],
    *,
    recv_many: Callable[[], Awaitable[Sequence[Any]]] | None = None,
    size: int,
) -> dict[str, float]:
    """_bench.recv_loop with every receive awaited: the same checks, the same result."""
    end, kinds = _bench.END, len(_bench.payloads(size))
    received = errors = expected = 0
    started = 0.0
    if recv_many is not None:
        done = False
        while not done:
            for message in await recv_many():
                if not started:
                    started = time.perf_counter()
                first = message[0]
                if first == end:
                    done = True
                    break
                if first != expected or message[-1] != expected:
                    errors += 1
                expected = (expected + 1) % kinds
                received += 1
    else:
        while True:
            message = await recv()
            if not started:
                started = time.perf_counter()
            first = message[0]
            if first == end:
                break
            if first != expected or message[-1] != expected:
                errors += 1
            expected = (expected + 1) % kinds
            received += 1
    return {"received": received, "seconds": time.perf_counter() - started, "errors": errors}


def run_side(spec: dict[str, Any], ready: Callable[[], None], queue: Any = None) -> dict[str, Any]:
    """Run one side of a case; ``ready`` is called once its endpoint is open."""
    mech, role, name, size, mode = (
        BY_KEY[spec["mech"]], spec["role"], spec["name"], spec["size"], spec["mode"]
    )  # fmt: skip
    _pin(spec.get("cpu"))
    if queue is None:
        make_recv = lambda n: mech.receiver(n, size, mode)
        make_send = lambda n: mech.sender(n, size, mode)
    else:  # a parent-made queue (or two, for round trips)
        make_recv = lambda n: mech.receiver_of(queue[n], size, mode)  # type: ignore[attr-defined]
        make_send = lambda n: mech.sender_of(queue[n], size, mode)  # type: ignore[attr-defined]
    if role == "recv":
        side = make_recv(name if queue is None else 0)
        ready()
        try:
            if side.aio:
                return asyncio.run(arecv_loop(side.recv, recv_many=side.recv_many, size=size))
            return _bench.recv_loop(
                side.recv, recv_many=side.recv_many, into=side.into, buffer=side.buffer, size=size
            )  # type: ignore[arg-type]
        finally:
            side.close()
    if role == "send":
        side = make_send(name if queue is None else 0)
        ready()
        try:
            return _bench.send_loop(
                side.send, size, spec["duration"], send_many=side.send_many, batch=BATCH
            )  # type: ignore[arg-type]
        finally:
            side.close()
    if role == "pong":
        inbox, outbox = (
            make_recv(name + "a" if queue is None else 0),
            make_send(name + "b" if queue is None else 1),
        )
        ready()
        try:
            _bench.pong_loop(outbox.send, inbox.recv)  # type: ignore[arg-type]
            return {}
        finally:
            inbox.close()
            outbox.close()
    outbox, inbox = (
        make_send(name + "a" if queue is None else 0),
        make_recv(name + "b" if queue is None else 1),
    )
    ready()
    try:
        return _bench.ping_loop(outbox.send, inbox.recv, spec["round_trips"], size)  # type: ignore[arg-type]
    finally:
        inbox.close()
        outbox.close()


def worker_main(spec_json: str) -> None:
    spec = json.loads(spec_json)
    result = run_side(spec, lambda: print("ready", flush=True))
    print(json.dumps(result), flush=True)


def _forked(spec: dict[str, Any], queues: Any, conn: Any) -> None:
    try:
        result = run_side(spec, lambda: conn.send(("ready", None)), queues)
        conn.send(("done", result))
    except BaseException as exc:  # reported to the parent
        conn.send(("error", f"{type(exc).__name__}: {exc}"))


# -- running cases -----------------------------------------------------------------------


@dataclass
class Result:
    mech: str
    family: str
    transport: str
    kind: str  # throughput | rtt
    mode: str
    size: int
    placement: str  # cross-core | same-core | unpinned
    status: str = "ok"  # ok | skipped | failed
    reason: str = ""
    msgs_per_s: float | None = None
    mb_per_s: float | None = None
    p50_us: float | None = None
    p99_us: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Runner:
    def __init__(self, duration: float, round_trips: int, runtime: str) -> None:
        self.duration, self.round_trips, self.runtime = duration, round_trips, runtime
        self.counter = 0
        self.cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []

    def placements(self) -> dict[str, tuple[int | None, int | None]]:
        if len(self.cpus) >= 2:
            return {
                "cross-core": (self.cpus[0], self.cpus[1]),
                "same-core": (self.cpus[0], self.cpus[0]),
            }
        return {"unpinned": (None, None)}

    def _name(self) -> str:
        self.counter += 1
        return f"osipcbench-{os.getpid()}-{self.counter}"

    def _spawn(self, spec: dict[str, Any]) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ, OSIPC_RUNTIME_DIR=self.runtime),
        )

    def _pair_named(self, first: dict[str, Any], second: dict[str, Any]) -> tuple[Any, Any]:
        procs: list[subprocess.Popen[str]] = []
        try:
            procs.append(self._spawn(first))
            line = procs[0].stdout.readline() if procs[0].stdout else ""
            if line.strip() != "ready":
                raise RuntimeError(
                    f"{first['role']} did not start: {procs[0].communicate(timeout=10)[1][-400:]}"
                )
            procs.append(self._spawn(second))
            results = []
            for proc in (procs[1], procs[0]):
                out, err = proc.communicate(timeout=CASE_TIMEOUT)
                if proc.returncode != 0:
                    raise RuntimeError(
                        err.strip().splitlines()[-1] if err.strip() else f"exit {proc.returncode}"
                    )
                lines = [x for x in out.splitlines() if x.strip() and x.strip() != "ready"]
                results.append(json.loads(lines[-1]))
            return results[1], results[0]
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()

    def _pair_forked(
        self, mech: Mechanism, first: dict[str, Any], second: dict[str, Any], channels: int
    ) -> tuple[Any, Any]:
        context = multiprocessing.get_context("fork")
        queues = [mech.make(first["size"]) for _ in range(channels)]  # type: ignore[attr-defined]
        procs = []
        conns = []
        try:
            for spec in (first, second):
                parent, child = context.Pipe()
                proc = context.Process(target=_forked, args=(spec, queues, child), daemon=True)
                proc.start()
                procs.append(proc)
                conns.append(parent)
                if not parent.poll(30):
                    raise RuntimeError(f"{spec['role']} did not start")
                kind, value = parent.recv()
                if kind == "error":
                    raise RuntimeError(value)
            results = []
            for conn in (conns[1], conns[0]):
                if not conn.poll(CASE_TIMEOUT):
                    raise RuntimeError("timed out")
                kind, value = conn.recv()
                if kind == "error":
                    raise RuntimeError(value)
                results.append(value)
            return results[1], results[0]
        finally:
            for proc in procs:
                if proc.is_alive():
                    proc.kill()
                proc.join(5)
            for queue in queues:
                with contextlib.suppress(Exception):
                    queue.close()

    def run(self, mech: Mechanism, kind: str, mode: str, size: int, placement: str) -> Result:
        result = Result(mech.key, mech.family, mech.transport, kind, mode, size, placement)
        reason = mech.unavailable()
        if reason is None and mech.max_size is not None and size > mech.max_size:
            reason = f"carries at most {mech.max_size} bytes per message"
        if reason is None and mode not in mech.modes:
            reason = f"no {mode} mode"
        if reason:
            result.status, result.reason = "skipped", reason
            return result
        name = self._name()
        cpu_a, cpu_b = self.placements().get(placement, (None, None))
        base = {"mech": mech.key, "name": name, "size": size, "mode": mode}
        if kind == "throughput":
            first = {**base, "role": "recv", "cpu": cpu_b}
            second = {**base, "role": "send", "cpu": cpu_a, "duration": self.duration}
        else:
            first = {**base, "role": "pong", "cpu": cpu_b}
            second = {**base, "role": "ping", "cpu": cpu_a, "round_trips": self.round_trips}
        try:
            if mech.named:
                got, sent = self._pair_named(first, second)
            else:
                got, sent = self._pair_forked(mech, first, second, 1 if kind == "throughput" else 2)
            if kind == "throughput":
                if got["received"] != sent["sent"] or got["errors"]:
                    raise RuntimeError(
                        f"sent {sent['sent']}, received {got['received']}, {got['errors']} damaged"
                    )
                result.msgs_per_s = got["received"] / got["seconds"]
                result.mb_per_s = result.msgs_per_s * size / 1e6
                result.extra = {"messages": got["received"]}
            else:
                result.p50_us, result.p99_us = sent["p50_us"], sent["p99_us"]
        except Exception as exc:
            result.status, result.reason = "failed", str(exc)[:300]
        finally:
            for suffix in ("", "a", "b"):
                with contextlib.suppress(Exception):
                    mech.cleanup(name + suffix)
        return result


def semaphore_floor(runner: Runner, placement: str) -> Result:
    """The blocking round-trip floor: two posix semaphores ping-ponging, no data."""
    result = Result("two-semaphore ping-pong", "raw", "floor", "rtt", "stream", 0, placement)
    code = """
import os, sys, time, posix_ipc
name, role, count, cpu = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if cpu != "-":
    os.sched_setaffinity(0, {int(cpu)})
a = posix_ipc.Semaphore("/" + name + "-a", posix_ipc.O_CREAT, initial_value=0)
b = posix_ipc.Semaphore("/" + name + "-b", posix_ipc.O_CREAT, initial_value=0)
print("ready", flush=True)
if role == "pong":
    for _ in range(count + count // 10):
        a.acquire(); b.release()
else:
    samples = []
    for i in range(count + count // 10):
        t = time.perf_counter_ns(); a.release(); b.acquire(); took = time.perf_counter_ns() - t
        if i >= count // 10:
            samples.append(took)
    samples.sort()
    print(samples[len(samples) // 2] / 1000, samples[len(samples) * 99 // 100] / 1000, flush=True)
"""
    name = runner._name()
    cpu_a, cpu_b = runner.placements().get(placement, (None, None))
    procs = []
    try:
        for role, cpu in (("pong", cpu_b), ("ping", cpu_a)):
            proc = subprocess.Popen(
                [sys.executable, "-c", code, name, role, str(runner.round_trips), "-" if cpu is None else str(cpu)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            procs.append(proc)
            if proc.stdout is None or proc.stdout.readline().strip() != "ready":
                raise RuntimeError("the semaphore peer did not start")
        out, _ = procs[1].communicate(timeout=CASE_TIMEOUT)
        procs[0].wait(timeout=CASE_TIMEOUT)
        p50, p99 = out.split()
        result.p50_us, result.p99_us = float(p50), float(p99)
    except Exception as exc:
        result.status, result.reason = "failed", str(exc)[:300]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        import posix_ipc

        for suffix in ("-a", "-b"):
            with contextlib.suppress(posix_ipc.ExistentialError):
                posix_ipc.unlink_semaphore("/" + name + suffix)
    return result


def plan(
    only: set[str] | None, sizes: list[int], placements: list[str]
) -> Iterator[tuple[Mechanism, str, str, int, str]]:
    cross = placements[0]
    for mech in MECHANISMS:
        if only and mech.key not in only:
            continue
        if mech.rtt_only:
            for placement in placements:
                yield mech, "rtt", "stream", 64, placement
            continue
        for size in sizes:
            yield mech, "throughput", "stream", size, cross
        if "batch" in mech.modes and 64 in sizes:
            yield mech, "throughput", "batch", 64, cross
        if "into" in mech.modes and (1 << 20) in sizes:
            yield mech, "throughput", "into", 1 << 20, cross
        for placement in placements[1:]:
            if 64 in sizes:
                yield mech, "throughput", "stream", 64, placement
        for placement in placements if not mech.throughput_only else []:
            yield mech, "rtt", "stream", 64, placement


# -- reporting ---------------------------------------------------------------------------


def _rate(result: Result | None) -> str:
    if result is None:
        return ""
    if result.status != "ok":
        return f"{result.status}: {result.reason}"
    assert result.msgs_per_s is not None and result.mb_per_s is not None
    rate = result.msgs_per_s
    if rate >= 1e6:
        shown = f"{rate / 1e6:.2f}M"
    elif rate >= 1e4:
        shown = f"{rate / 1e3:.0f}k"
    else:
        shown = f"{rate:,.0f}"
    return f"{shown}/s ({result.mb_per_s:,.0f} MB/s)"


def _find(results: list[Result], **want: Any) -> Result | None:
    for result in results:
        if all(getattr(result, key) == value for key, value in want.items()):
            return result
    return None


def _ok_rate(result: Result | None) -> float | None:
    return result.msgs_per_s if result is not None and result.status == "ok" else None


# (an osipc key without "osipc ", what it is measured against, the factor it must reach)
COMPARED = [
    ("fifo", "raw fifo", 0.9),
    ("mq", "raw mq", 0.9),
    ("shm", "raw shm ring", 0.9),
    ("sysv+mq", "raw sysv mq", 0.9),
    ("sysv+shm", "osipc shm", 0.8),
    ("zmq+ipc", "raw zmq ipc", 0.9),
    ("zmq+tcp", "raw zmq tcp", 0.9),
    ("aio shm", "osipc shm", 0.7),  # the asyncio receive path against the synchronous one
    ("aio mq", "osipc mq", 0.7),
]


def targets(
    results: list[Result],
    cross: str,
    copy_mb_per_s: float | None = None,
    one_copy_mb_per_s: float | None = None,
    rtt_pairs: list[list[float]] | None = None,
) -> list[tuple[str, str, bool | None]]:
    """(target, what was measured, met?) for every target DESIGN §7 and the issues set;
    ``copy_mb_per_s``, plain copies between two CPUs (pipeline_ceiling), and
    ``one_copy_mb_per_s``, the writer's copy alone (no copy out), are shown beside the
    large-message targets. ``rtt_pairs``: [floor p50, spin=0 round-trip p50] measured
    back to back, one pair a pass; without them the best of each is compared."""
    rows: list[tuple[str, str, bool | None]] = []

    def rate(mech: str, size: int, mode: str = "stream") -> float | None:
        return _ok_rate(
            _find(results, mech=mech, kind="throughput", size=size, mode=mode, placement=cross)
        )

    for transport, raw, factor in COMPARED:
        for size in SIZES:
            ours, base = rate(f"osipc {transport}", size), rate(raw, size)
            if ours is None or base is None:
                continue
            ratio = ours / base
            rows.append(
                (
                    f"osipc {transport} >= {factor:g}x {raw} at {_human(size)}",
                    f"{ratio:.2f}x",
                    ratio >= factor,
                )
            )
    one, many = rate("osipc shm", 64), rate("osipc shm", 64, "batch")
    if one is not None:
        rows.append(
            ("osipc shm >= 1M msgs/s at 64 B, one per call", f"{one / 1e6:.2f}M", one >= 1e6)
        )
    if many is not None:
        rows.append(
            (
                "osipc shm >= 2M msgs/s at 64 B with send_many/recv_many",
                f"{many / 1e6:.2f}M",
                many >= 2e6,
            )
        )
    for peer, factor in (("faster_fifo", 4.0), ("iceoryx2", 1.5)):
        for size in SIZES:
            ours, theirs = rate("osipc shm", size), rate(peer, size)
            if ours is None or theirs is None:
                continue
            ratio = ours / theirs
            needed = factor * theirs * size / 1e6  # MB/s
            beyond = copy_mb_per_s is not None and needed > copy_mb_per_s
            rows.append(
                (
                    f"osipc shm >= {factor:g}x {peer} at {_human(size)}",
                    f"{ratio:.2f}x"
                    + (
                        f" (needs {needed / 1000:.1f} GB/s; plain copies between two CPUs: "
                        f"{copy_mb_per_s / 1000:.1f} GB/s here"
                        + (
                            f", the senders' copy alone: {one_copy_mb_per_s / 1000:.1f} GB/s"
                            if one_copy_mb_per_s
                            else ""
                        )
                        + ")"
                        if beyond and copy_mb_per_s is not None
                        else ""
                    ),
                    ratio >= factor,
                )
            )
    into = _find(
        results, mech="osipc shm", kind="throughput", mode="into", size=1 << 20, placement=cross
    )
    if into is not None and into.status == "ok" and into.mb_per_s is not None:
        rows.append(
            (
                "osipc shm 1 MiB with recv_into >= 25 GB/s",
                f"{into.mb_per_s / 1000:.1f} GB/s"
                + (
                    f" (plain copies between two CPUs: {copy_mb_per_s / 1000:.1f} GB/s here)"
                    if copy_mb_per_s
                    else ""
                ),
                into.mb_per_s >= 25000,
            )
        )
    floor = _find(results, mech="two-semaphore ping-pong", placement=cross)
    rtt = _find(results, mech="osipc shm spin=0", kind="rtt", placement=cross)
    paired = sorted(rtt_pairs or [], key=lambda pair: pair[1] / pair[0])
    compared: tuple[float, float, str] | None = None  # floor, round trip, how they were paired
    if paired:  # the median pass (of two, the worse one)
        floor_us, rtt_us = paired[len(paired) // 2]
        how = f", measured back to back; the median of {len(paired)} passes"
        compared = (floor_us, rtt_us, how)
    elif floor is not None and rtt is not None and floor.status == rtt.status == "ok":
        assert floor.p50_us and rtt.p50_us is not None
        compared = (floor.p50_us, rtt.p50_us, "")
    if compared is not None:
        floor_us, rtt_us, how = compared
        rows.append(
            (
                "osipc shm blocking round trip (spin=0) <= 1.1x the two-semaphore floor",
                f"{rtt_us / floor_us:.2f}x ({rtt_us:.1f} vs {floor_us:.1f} us{how})",
                rtt_us / floor_us <= 1.1,
            )
        )
    spin = _find(results, mech="osipc shm spin=100", kind="rtt", placement=cross)
    if spin is not None and spin.status == "ok" and spin.p50_us is not None:
        rows.append(
            (
                "osipc shm spin= round trip <= 2 us across cores",
                f"{spin.p50_us:.1f} us",
                spin.p50_us <= 2.0,
            )
        )
    return rows


def _quicker(result: Result, kept: Result) -> bool:
    """A round trip with a lower p50 than the one kept."""
    return result.status == "ok" and (result.p50_us or math.inf) < (kept.p50_us or math.inf)


def copy_ceiling() -> float:
    """MB/s of one core copying 1 MiB messages out of an 8 MiB buffer in turn, as a
    receiver copies out of the suite's ring for 1 MiB (capacity 8 x size), best of 5
    rounds: one core's share of the work (see pipeline_ceiling for both)."""
    size, ring = 1 << 20, 8 << 20
    source = memoryview(bytearray(b"x" * ring))
    target = memoryview(bytearray(size))
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for offset in range(0, 6 * ring, size):
            target[:] = source[offset % ring : offset % ring + size]
        best = min(best, time.perf_counter() - started)
    return 6 * ring / best / 1e6


def pipeline_ceiling(
    size: int = 1 << 20, count: int = 2000, *, copy_out: bool = True
) -> float | None:
    """MB/s of two processes on two CPUs passing ``size``-byte messages through an 8 MiB
    shared buffer by plain copies (one copies in, the other copies out), waiting for each
    other by spinning on a shared counter: no locks, no system calls, no records. The
    writer copies from the same rotation of payloads the suite's senders send (16 MiB at
    1 MiB: more than a core's cache, so reading it costs what it costs them). Best of 3
    rounds. A mechanism that copies a message in and out, as every one measured here
    does, tops out near it on this machine. With ``copy_out=False`` the reader only
    checks a message's first and last byte where it lies, as a zero-copy receive would:
    what the writer's copy alone allows. None where two CPUs cannot be pinned."""
    import mmap

    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        return None
    cpus = sorted(os.sched_getaffinity(0))[:2]
    slots = max(2, buffer_bytes(size) // size)
    best = 0.0
    for _ in range(3):
        shared = mmap.mmap(-1, 128 + slots * size)
        words = memoryview(shared)[:128].cast("Q")  # [0]: copied in, [8]: copied out
        data = memoryview(shared)[128:]
        pid = os.fork()
        if pid == 0:  # the writer
            try:
                os.sched_setaffinity(0, {cpus[1]})
                rotation = _bench.payloads(size)
                for n in range(count):
                    while n - words[8] >= slots:
                        continue
                    at = (n % slots) * size
                    data[at : at + size] = rotation[n % len(rotation)]
                    words[0] = n + 1
            finally:
                os._exit(0)
        try:
            os.sched_setaffinity(0, {cpus[0]})
            target = memoryview(bytearray(size))
            warm = count // 10
            started = 0.0
            for n in range(count):
                while words[0] <= n:
                    continue
                if n == warm:
                    started = time.perf_counter()
                at = (n % slots) * size
                if copy_out:
                    target[:] = data[at : at + size]
                elif data[at] != data[at + size - 1]:
                    raise AssertionError("a payload's first and last byte differ")
                words[8] = n + 1
            best = max(best, (count - warm) * size / (time.perf_counter() - started) / 1e6)
        finally:
            os.waitpid(pid, 0)
            os.sched_setaffinity(0, set(cpus))
            words.release()
            data.release()
            shared.close()
    return best


def machine(
    pipeline_mb_per_s: float | None = None, one_copy_mb_per_s: float | None = None
) -> dict[str, Any]:
    """What the run ran on; ``pipeline_mb_per_s`` and ``one_copy_mb_per_s``: the best of
    the passes' copy ceilings, in and out and in only (measured now when the run measured
    none)."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "osipc": osipc.__version__,
        "copy_mb_per_s": copy_ceiling(),
        "pipeline_mb_per_s": pipeline_mb_per_s or pipeline_ceiling(),
        "one_copy_mb_per_s": one_copy_mb_per_s or pipeline_ceiling(copy_out=False),
    }
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    for module in ("posix_ipc", "faster_fifo", "iceoryx2"):
        try:
            imported = __import__(module)
            info[module] = str(
                getattr(imported, "VERSION", getattr(imported, "__version__", "installed"))
            )
        except ImportError:
            info[module] = "not installed"
    return info


def write_markdown(
    path: str, results: list[Result], meta: dict[str, Any], placements: list[str]
) -> None:
    cross = placements[0]
    mechs = list(dict.fromkeys(r.mech for r in results))
    lines = [
        "# osipc benchmark results",
        "",
        f"Generated by `./scripts/bench` on {meta['date']} ({meta['seconds']:.0f} s): "
        f"{meta.get('cpu', '?')}, {meta['cpus']} CPUs, Linux {meta['kernel']}, Python {meta['python']}, "
        f"osipc {meta['osipc']}, posix_ipc {meta['posix_ipc']}, faster_fifo {meta['faster_fifo']}, "
        f"iceoryx2 {meta['iceoryx2']}. Method: see the docstring of `benchmarks/bench.py`. "
        "Numbers from one run on a shared virtual machine: compare within a table, not across runs.",
        "",
        f"One core copies 1 MiB messages out of an 8 MiB buffer at {meta['copy_mb_per_s']:,.0f} MB/s "
        "here. Two processes on two CPUs passing 1 MiB messages through 8 MiB of shared "
        "memory by plain copies (one copies in from the senders' own rotation of 16 "
        "payloads, the other copies out; they wait for each other by spinning, with no locks "
        "and no system calls) manage "
        + (
            f"{meta['pipeline_mb_per_s']:,.0f} MB/s"
            if meta.get("pipeline_mb_per_s")
            else "(not measured: two CPUs could not be pinned)"
        )
        + ": mechanisms that copy messages in and out, as all measured here do, top out "
        "near that (it is measured too, and moves with the host's load as they do). "
        "With no copy out at all (the reader only checks each message's first and last "
        "byte where it lies, as a zero-copy receive would) the same pair manages "
        + (
            f"{meta['one_copy_mb_per_s']:,.0f} MB/s"
            if meta.get("one_copy_mb_per_s")
            else "(not measured)"
        )
        + ": the senders' copy from their payloads, which every mechanism needs to get the "
        "bytes into shared memory, bounds even that.",
        "",
        f"## One-way throughput, {cross} (msgs/s, MB/s)",
        "",
        "| mechanism | " + " | ".join(_human(s) for s in SIZES) + " |",
        "|---|" + "---|" * len(SIZES),
    ]
    for mech in mechs:
        row = [
            _rate(
                _find(results, mech=mech, kind="throughput", mode="stream", size=s, placement=cross)
            )
            for s in SIZES
        ]
        if any(row):
            lines.append(f"| {mech} | " + " | ".join(row) + " |")
    lines += [
        "",
        "Batched (64 messages per call) at 64 B, and `recv_into` at 1 MiB:",
        "",
        "| mechanism | mode | rate |",
        "|---|---|---|",
    ]
    for result in results:
        if (
            result.kind == "throughput"
            and result.mode in ("batch", "into")
            and result.placement == cross
        ):
            lines.append(
                f"| {result.mech} | {result.mode} {_human(result.size)} | {_rate(result)} |"
            )
    if len(placements) > 1:
        lines += ["", f"64 B one-way, {placements[1]}:", "", "| mechanism | rate |", "|---|---|"]
        for mech in mechs:
            result = _find(
                results,
                mech=mech,
                kind="throughput",
                size=64,
                mode="stream",
                placement=placements[1],
            )
            if result is not None:
                lines.append(f"| {mech} | {_rate(result)} |")
    lines += [
        "",
        "## Round trip, 64 B (microseconds, p50 / p99)",
        "",
        "| mechanism | " + " | ".join(placements) + " |",
        "|---|" + "---|" * len(placements),
    ]
    for mech in mechs:
        cells = []
        for placement in placements:
            result = _find(results, mech=mech, kind="rtt", placement=placement)
            if result is None:
                cells.append("")
            elif result.status != "ok":
                cells.append(f"{result.status}: {result.reason}")
            else:
                cells.append(f"{result.p50_us:.1f} / {result.p99_us:.1f}")
        if any(cells):
            lines.append(f"| {mech} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## osipc against the raw binding and the best peer",
        "",
        "| transport | size | osipc / base (the raw binding; for sysv+shm, osipc shm; "
        "for aio, the synchronous receiver) "
        "| osipc / best peer |",
        "|---|---|---|---|",
    ]
    for transport, raw, _ in COMPARED:
        for size in SIZES:
            ours = _ok_rate(
                _find(
                    results,
                    mech=f"osipc {transport}",
                    kind="throughput",
                    mode="stream",
                    size=size,
                    placement=cross,
                )
            )
            base = _ok_rate(
                _find(
                    results, mech=raw, kind="throughput", mode="stream", size=size, placement=cross
                )
            )
            peers = [
                _ok_rate(
                    _find(
                        results,
                        mech=p,
                        kind="throughput",
                        mode="stream",
                        size=size,
                        placement=cross,
                    )
                )
                for p in ("multiprocessing.Queue", "faster_fifo", "iceoryx2")
            ]
            best = max((p for p in peers if p), default=None)
            if ours is None:
                continue
            lines.append(
                f"| {transport} | {_human(size)} | "
                + (f"{ours / base:.2f}x" if base else "-")
                + " | "
                + (f"{ours / best:.2f}x" if best else "-")
                + " |"
            )
    lines += ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
    for target, measured, met in targets(
        results,
        cross,
        meta.get("pipeline_mb_per_s"),
        meta.get("one_copy_mb_per_s"),
        meta.get("rtt_pairs", {}).get(cross),
    ):
        lines.append(f"| {target} | {measured} | {'yes' if met else 'no'} |")
    skipped = [r for r in results if r.status == "skipped"]
    if skipped:
        lines += ["", "## Skipped", ""]
        for reason in dict.fromkeys(f"{r.mech}: {r.reason}" for r in skipped):
            lines.append(f"- {reason}")
    with open(path, "w") as out:
        out.write("\n".join(lines) + "\n")


def write_plot(path: str, results: list[Result], cross: str) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no plot"
    figure, axes = plt.subplots(figsize=(9, 5.5))
    for mech in dict.fromkeys(r.mech for r in results):
        points = [
            (r.size, r.msgs_per_s)
            for r in results
            if r.mech == mech
            and r.kind == "throughput"
            and r.mode == "stream"
            and r.placement == cross
            and r.status == "ok"
        ]
        if points:
            xs, ys = zip(*sorted(points))
            style = "-" if mech.startswith("osipc") else "--"
            axes.plot(xs, ys, style, marker="o", label=mech)
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    axes.set_xticks(SIZES, [_human(s) for s in SIZES])
    axes.set_xlabel("message size")
    axes.set_ylabel("messages per second (one per call)")
    axes.set_title(f"osipc and peers, one-way throughput between two processes ({cross})")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return None


def _leftovers(before: set[str]) -> list[str]:
    """What this run added to /dev/shm: its own objects and iceoryx2's, never those of
    other programs (a test suite running beside it creates and removes its own)."""
    ours = f"osipcbench-{os.getpid()}-"
    now = set(os.listdir("/dev/shm")) - before
    return sorted(entry for entry in now if ours in entry or entry.startswith("iox2_"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="short cases: a smoke run")
    parser.add_argument("--only", help="comma-separated mechanisms (e.g. 'osipc shm,raw shm ring')")
    parser.add_argument("--sizes", help="comma-separated sizes in bytes")
    parser.add_argument(
        "--out", default=HERE, help="directory for results.json, RESULTS.md, results.png"
    )
    parser.add_argument("--duration", type=float, default=None, help="seconds each sender sends")
    parser.add_argument(
        "--repeat", type=int, default=None, help="runs per throughput case; the best is kept"
    )
    args = parser.parse_args(argv)
    if args.worker:
        worker_main(args.worker)
        return 0
    only = {m.strip() for m in args.only.split(",")} if args.only else None
    unknown = (only or set()) - set(BY_KEY)
    if unknown:
        parser.error(f"unknown mechanisms {sorted(unknown)}; known: {sorted(BY_KEY)}")
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else SIZES
    duration = args.duration or (0.05 if args.quick else 0.25)
    repeat = args.repeat or (1 if args.quick else 2)
    round_trips = 200 if args.quick else 2000
    runtime = tempfile.mkdtemp(prefix="osipc-bench-")
    before = set(os.listdir("/dev/shm"))
    iox_dir_existed = os.path.exists("/tmp/iceoryx2")
    runner = Runner(duration, round_trips, runtime)
    placements = list(runner.placements())
    started = time.time()
    results: list[Result] = []
    cases = list(plan(only, sizes, placements))
    try:
        # Repeats come as whole passes over the plan, never back to back: a noisy minute
        # on this shared machine then costs one sample of every mechanism, not all of one
        # mechanism's, and ratios between them stay fair. The best run of each is kept
        # (others only ever slow us down). Round trips are kept by their best p50, and
        # the two-semaphore floor and the two-CPU copy ceilings they are held against are
        # measured once a pass and kept the same way; the floor straight before the
        # blocking round trip, where that runs, and the pair is kept for its target.
        best: dict[int, Result] = {}
        floors: dict[str, Result] = {}
        rtt_pairs: dict[str, list[list[float]]] = {}  # by placement: [floor, rtt] p50s
        ceilings: dict[bool, float] = {}  # the best of each pass, by copy_out

        def keep_floor(floor: Result, placement: str) -> None:
            kept = floors.get(placement)
            if kept is None or kept.status != "ok" or _quicker(floor, kept):
                floors[placement] = floor

        for round_ in range(repeat):
            paired: set[str] = set()  # placements whose floor this pass measured
            for index, (mech, kind, mode, size, placement) in enumerate(cases):
                kept = best.get(index)
                if kept is not None and kept.status != "ok":
                    continue
                label = f"[{index + 1}/{len(cases)}] {mech.key} {kind} {mode} {_human(size)} {placement}"
                if repeat > 1:
                    label = f"[pass {round_ + 1}/{repeat}] {label}"
                print(f"{label} ...", end="", flush=True, file=sys.stderr)
                floor = None
                if mech.key == "osipc shm spin=0" and kind == "rtt":
                    floor = semaphore_floor(runner, placement)
                    keep_floor(floor, placement)
                    paired.add(placement)
                result = runner.run(mech, kind, mode, size, placement)
                if floor is not None and floor.status == result.status == "ok":
                    assert floor.p50_us and result.p50_us
                    rtt_pairs.setdefault(placement, []).append([floor.p50_us, result.p50_us])
                if kind == "throughput":
                    faster = kept is not None and (result.msgs_per_s or 0) > (kept.msgs_per_s or 0)
                else:
                    faster = kept is not None and _quicker(result, kept)
                if kept is None or result.status != "ok" or faster:
                    best[index] = result
                shown = (
                    _rate(result)
                    if kind == "throughput"
                    else (
                        f"{result.p50_us:.1f} / {result.p99_us:.1f} us"
                        if result.status == "ok"
                        else f"{result.status}: {result.reason}"
                    )
                )
                print(f"\r{label}: {shown}", file=sys.stderr)
            if not only or "osipc shm" in only:
                for placement in placements:
                    if placement not in paired:
                        keep_floor(semaphore_floor(runner, placement), placement)
                for copy_out in (True, False):
                    measured = pipeline_ceiling(copy_out=copy_out)
                    if measured is not None and measured > ceilings.get(copy_out, 0.0):
                        ceilings[copy_out] = measured
        results.extend(best[index] for index in range(len(cases)))
        results.extend(floors[placement] for placement in placements if placement in floors)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
        for entry in _leftovers(before):  # iceoryx2 leaves its files in /dev/shm
            if entry.startswith(("iox2_", "osipcbench-")) or "osipcbench-" in entry:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join("/dev/shm", entry))
        if not iox_dir_existed:
            shutil.rmtree("/tmp/iceoryx2", ignore_errors=True)
    meta = machine(ceilings.get(True), ceilings.get(False))
    meta["rtt_pairs"] = rtt_pairs
    meta["date"] = datetime.date.today().isoformat()
    meta["seconds"] = time.time() - started
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as out:
        json.dump({"machine": meta, "results": [asdict(r) for r in results]}, out, indent=1)
    write_markdown(os.path.join(args.out, "RESULTS.md"), results, meta, placements)
    note = write_plot(os.path.join(args.out, "results.png"), results, placements[0])
    if note:
        print(note, file=sys.stderr)
    left = _leftovers(before)
    if left:
        print(f"left in /dev/shm: {left}", file=sys.stderr)
        return 1
    failed = [r for r in results if r.status == "failed"]
    print(
        f"{len(results)} cases in {meta['seconds']:.0f} s, {len(failed)} failed; see {os.path.join(args.out, 'RESULTS.md')}",
        file=sys.stderr,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
