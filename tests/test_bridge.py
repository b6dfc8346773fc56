"""`osipc bridge SRC DST`: forwards, holds messages while DST is away, forwards
end-of-stream, reports counters; and carries a stream between two network namespaces."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from _helpers import IS_ROOT, PY, finish, spawn

import osipc

READER = """
    import sys, osipc
    with osipc.receiver(sys.argv[1]) as rx:
        got = [m.decode() for m in rx]
    print(" ".join(got))
"""


def bridge(*args: str, netns: str | None = None) -> subprocess.Popen[str]:
    argv = [PY, "-I", "-m", "osipc", "bridge", *args]
    if netns is not None:
        argv = ["ip", "netns", "exec", netns, *argv]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_bridge_holds_messages_while_dst_is_away_then_forwards_end(
    osipc_names: Callable[[str], str],
) -> None:
    src = f"mq://{osipc_names('src')}?maxmsg=4&msgsize=128"
    dst = f"fifo://{osipc_names('dst')}"
    proc = bridge(src, dst, "--buffer", "3")
    with osipc.sender(src) as tx:
        for n in range(7):  # DST has no reader: the bridge holds 3 and SRC queues 4
            tx.send(str(n).encode(), timeout=30)
        time.sleep(0.5)
        with pytest.raises(osipc.Timeout):  # backpressure: the bridge reads no more
            tx.send(b"7", timeout=0.3)
        os.kill(proc.pid, signal.SIGUSR1)  # counters on demand
        reader = spawn(READER, dst)  # DST comes up late
        for n in range(7, 20):
            tx.send(str(n).encode(), timeout=30)
        tx.end(timeout=30)
    assert finish(reader).split() == [str(n) for n in range(20)], "all, in order"
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    lines = err.strip().splitlines()
    assert len(lines) == 2, err  # one on SIGUSR1, one at exit
    assert "sent 0" in lines[0] and "retries" in lines[0]
    assert "received 20, sent 20, held 0" in lines[1] and "end of stream forwarded" in lines[1]
    osipc.unlink(src)
    osipc.unlink(dst)


def test_bridge_stops_on_sigterm_and_reports_what_it_could_not_deliver(
    osipc_names: Callable[[str], str],
) -> None:
    src = f"mq://{osipc_names('src')}?maxmsg=4&msgsize=128"
    dst = f"fifo://{osipc_names('dst')}"
    proc = bridge(src, dst, "--drain", "0.2")
    with osipc.sender(src) as tx:
        tx.send(b"stuck", timeout=10)
    deadline = time.monotonic() + 30  # a loaded host may take seconds to start the bridge
    while osipc.info(src).depth != 0:  # until taken from SRC, and held: nobody reads DST
        assert time.monotonic() < deadline, "the bridge never took the message"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, "a message it took and could not deliver is an error"
    assert "received 1, sent 0, held 0, retries" in err and "lost 1" in err
    osipc.unlink(src)
    osipc.unlink(dst)


@contextmanager
def two_hosts(namespaces: bool) -> Iterator[tuple[str | None, str | None, str]]:
    """(netns A, netns B, A's address): two network namespaces joined by a veth pair,
    or (without ``namespaces``) this host twice, on 127.0.0.1."""
    if not namespaces:
        yield None, None, "127.0.0.1"
        return
    tag = f"{os.getpid() % 100000}"
    a, b = f"osipc-a{tag}", f"osipc-b{tag}"
    subnet = f"10.{os.getpid() % 250 + 1}.{(os.getpid() // 250) % 250}"

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)

    try:
        ip("netns", "add", a)
        ip("netns", "add", b)
        ip("link", "add", f"oa{tag}", "type", "veth", "peer", "name", f"ob{tag}")
        ip("link", "set", f"oa{tag}", "netns", a)
        ip("link", "set", f"ob{tag}", "netns", b)
        ip("-n", a, "addr", "add", f"{subnet}.1/30", "dev", f"oa{tag}")
        ip("-n", b, "addr", "add", f"{subnet}.2/30", "dev", f"ob{tag}")
        for ns, dev in ((a, f"oa{tag}"), (b, f"ob{tag}")):
            ip("-n", ns, "link", "set", dev, "up")
            ip("-n", ns, "link", "set", "lo", "up")
        yield a, b, f"{subnet}.1"
    finally:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True, timeout=30)


@pytest.mark.parametrize("where", ["two-namespaces", "loopback"])
def test_a_bridge_pair_carries_a_stream_between_two_hosts(
    osipc_names: Callable[[str], str], where: str
) -> None:
    pytest.importorskip("zmq", reason="zmq is not installed (pip install 'osipc[zmq]')")
    if where == "two-namespaces" and (not IS_ROOT or shutil.which("ip") is None):
        pytest.skip("two network namespaces need root and iproute2; loopback ran instead")
    src = f"mq://{osipc_names('src')}?maxmsg=8&msgsize=256"
    dst = f"mq://{osipc_names('dst')}?maxmsg=8&msgsize=256"
    with two_hosts(where == "two-namespaces") as (host_a, host_b, address):
        port = 20000 + (os.getpid() * 2 + (where == "loopback")) % 20000
        wire = f"zmq+tcp://{address}:{port}?bind=sender"
        first = bridge(src, wire, netns=host_a)  # host A serves the stream on its address
        second = bridge(wire, dst, netns=host_b)  # host B connects to A and delivers
        try:
            with osipc.sender(src) as tx, osipc.receiver(dst) as rx:
                for n in range(100):
                    tx.send(f"m{n}".encode(), timeout=30)
                tx.end(timeout=30)
                got = [m.decode() for m in rx]
            assert got == [f"m{n}" for n in range(100)]
            for proc in (first, second):
                _, err = proc.communicate(timeout=30)
                assert proc.returncode == 0, err
                assert "sent 100" in err and "end of stream forwarded" in err
        finally:
            for proc in (first, second):
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
    osipc.unlink(src)
    osipc.unlink(dst)
