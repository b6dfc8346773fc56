"""Measuring loops shared by ``osipc bench URL`` and the benchmark suite (benchmarks/).

Mechanism-agnostic: they take plain ``send``/``recv`` callables, so the suite runs the
same loops over osipc, the raw bindings and the peers. Payloads carry a sequence number
in their first and last byte (prebuilt, so building them costs nothing per message); the
receiver checks every message and the count, and a message whose first byte is 0xFF ends
the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

END = 0xFF
KINDS = 64  # distinct payloads in rotation (fewer for large sizes: memory)


def payloads(size: int) -> list[bytes]:
    """The rotation of payloads of ``size`` bytes; payload i starts and ends with byte i."""
    count = max(2, min(KINDS, (16 << 20) // size))
    return [
        bytes([i]) + bytes(size - 2) + bytes([i]) if size > 1 else bytes([i]) for i in range(count)
    ]


def terminator(size: int) -> bytes:
    return bytes([END]) * size


def send_loop(
    send: Callable[[Any], Any],
    size: int,
    duration: float,
    *,
    send_many: Callable[[list[bytes]], Any] | None = None,
    batch: int = 64,
    progress: Callable[[float], None] | None = None,
) -> dict[str, float]:
    """Send for ``duration`` seconds (then the terminator); the count and the time."""
    rotation = payloads(size)
    kinds = len(rotation)
    sent = 0
    started = time.perf_counter()
    stop = started + duration
    now = started
    if send_many is None:
        while now < stop:
            for _ in range(256):
                send(rotation[sent % kinds])
                sent += 1
            now = time.perf_counter()
            if progress is not None:
                progress(min(1.0, (now - started) / duration))
    else:
        chunks = [[rotation[(k + i) % kinds] for i in range(batch)] for k in range(0, kinds, 1)]
        while now < stop:
            for _ in range(8):
                send_many(chunks[sent % kinds])
                sent += batch
            now = time.perf_counter()
            if progress is not None:
                progress(min(1.0, (now - started) / duration))
    elapsed = time.perf_counter() - started
    send(terminator(size))
    return {"sent": sent, "seconds": elapsed}


def recv_loop(
    recv: Callable[[], Any],
    *,
    recv_many: Callable[[], Sequence[Any]] | None = None,
    into: Callable[[], int] | None = None,
    buffer: bytearray | None = None,
    size: int = 0,
) -> dict[str, float]:
    """Receive until the terminator; count, seconds (first message to terminator), and
    how many messages failed the sequence check."""
    kinds = len(payloads(size)) if size else KINDS
    received = errors = 0
    started = 0.0
    expected = 0
    if into is not None:
        assert buffer is not None
        while True:
            length = into()
            if not started:
                started = time.perf_counter()
            first = buffer[0]
            if first == END:
                break
            if first != expected or buffer[length - 1] != expected:
                errors += 1
            expected = (expected + 1) % kinds
            received += 1
    elif recv_many is not None:
        done = False
        while not done:
            for message in recv_many():
                if not started:
                    started = time.perf_counter()
                first = message[0]
                if first == END:
                    done = True
                    break
                if first != expected or message[-1] != expected:
                    errors += 1
                expected = (expected + 1) % kinds
                received += 1
    else:
        while True:
            message = recv()
            if not started:
                started = time.perf_counter()
            first = message[0]
            if first == END:
                break
            if first != expected or message[-1] != expected:
                errors += 1
            expected = (expected + 1) % kinds
            received += 1
    return {"received": received, "seconds": time.perf_counter() - started, "errors": errors}


def ping_loop(
    send: Callable[[bytes], Any], recv: Callable[[], Any], count: int, size: int = 64
) -> dict[str, float]:
    """Round trips: send, wait for the echo. Percentiles in microseconds."""
    rotation = payloads(size)
    samples = []
    clock = time.perf_counter_ns
    for i in range(count + count // 10):
        message = rotation[i % len(rotation)]
        began = clock()
        send(message)
        echo = recv()
        took = clock() - began
        if echo[0] != message[0]:
            raise RuntimeError("round trip returned the wrong message")
        if i >= count // 10:  # the first tenth warms up
            samples.append(took)
    send(terminator(size))
    samples.sort()
    return {
        "p50_us": samples[len(samples) // 2] / 1000,
        "p99_us": samples[min(len(samples) - 1, len(samples) * 99 // 100)] / 1000,
        "round_trips": len(samples),
    }


def pong_loop(send: Callable[[Any], Any], recv: Callable[[], Any]) -> None:
    """Echo until the terminator."""
    while True:
        message = recv()
        if message[0] == END:
            return
        send(message)


# -- osipc bench URL ---------------------------------------------------------------------


def _pong_url(url: str) -> str:
    base, _, query = url.partition("?")
    return f"{base}-pong" + (f"?{query}" if query else "")


def _peer(role: str, url: str, size: int, ready_fd: int, cpu: int) -> subprocess.Popen[bytes]:
    code = (
        "import sys; from osipc import _bench; "
        "_bench.peer_main(sys.argv[1], sys.argv[2], *map(int, sys.argv[3:]))"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, role, url, str(size), str(ready_fd), str(cpu)],
        pass_fds=(ready_fd,),
        stdout=subprocess.PIPE,
    )


def _two_cpus() -> list[int] | None:
    """Two CPUs this process may run on, for the two sides: a run that lets the scheduler
    place (and move) them measures the placement as much as the endpoint."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[:2] if len(cpus) >= 2 else None


def peer_main(role: str, url: str, size: int, ready_fd: int, cpu: int = -1) -> None:
    """The other process of ``osipc bench``: receives (role "recv") or echoes ("pong"),
    pinned to ``cpu`` unless it is -1."""
    import osipc

    if cpu >= 0:
        os.sched_setaffinity(0, {cpu})

    if role == "recv":
        with osipc.receiver(url) as rx:
            os.write(ready_fd, b"r")
            result = recv_loop(lambda: rx.recv(timeout=60), size=size)
    else:
        with osipc.receiver(url) as rx, osipc.sender(_pong_url(url)) as tx:
            os.write(ready_fd, b"r")
            pong_loop(lambda m: tx.send(m, timeout=60), lambda: rx.recv(timeout=60))
            result = {}
    print(json.dumps(result), flush=True)


def _wait_ready(fd: int) -> None:
    if os.read(fd, 1) != b"r":
        raise RuntimeError("the peer process failed to start")


def bench_url(
    url: str, size: int, duration: float, round_trips: int, show: Callable[[str], None]
) -> dict[str, Any]:
    """Measure one endpoint between this process and a child that knows only the URL,
    each pinned to a CPU of its own where there are two (``cpus`` in the result)."""
    import osipc

    cpus = _two_cpus()
    results: dict[str, Any] = {"url": url, "size": size, "cpus": cpus}
    here = os.sched_getaffinity(0) if cpus else None
    peer_cpu = cpus[1] if cpus else -1
    read_fd, write_fd = os.pipe()
    try:
        if cpus:
            os.sched_setaffinity(0, {cpus[0]})
        child = _peer("recv", url, size, write_fd, peer_cpu)
        try:
            _wait_ready(read_fd)
            with osipc.sender(url) as tx:
                sent = send_loop(
                    lambda m: tx.send(m, timeout=60),
                    size,
                    duration,
                    progress=lambda f: show(f"throughput {f:4.0%}"),
                )
            out, _ = child.communicate(timeout=120)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        got = json.loads(out or b"{}")
        if got.get("received") != sent["sent"] or got.get("errors"):
            raise RuntimeError(f"sent {sent['sent']}, received {got}: messages lost or damaged")
        results["msgs_per_s"] = got["received"] / got["seconds"]
        results["mb_per_s"] = results["msgs_per_s"] * size / 1e6
        show("round trips")
        child = _peer("pong", url, size, write_fd, peer_cpu)
        try:
            _wait_ready(read_fd)
            with osipc.receiver(_pong_url(url)) as rx, osipc.sender(url) as tx:
                results.update(
                    ping_loop(lambda m: tx.send(m, timeout=60), lambda: rx.recv(timeout=60),
                              round_trips, size)
                )  # fmt: skip
            child.communicate(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    finally:
        os.close(read_fd)
        os.close(write_fd)
        if here is not None:
            os.sched_setaffinity(0, here)
    return results
