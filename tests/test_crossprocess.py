"""Independent processes that know only the URL, started in either order."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from _helpers import finish, spawn

import osipc

PRODUCER = """
    import sys, osipc
    with osipc.sender(sys.argv[1], codec="json") as tx:
        for n in range(50):
            tx.send({"n": n, "text": "é" * (n % 5)}, timeout=30)
        tx.end(timeout=30)
"""
CONSUMER = """
    import sys, osipc
    with osipc.receiver(sys.argv[1], codec="json") as rx:
        got = [msg["n"] for msg in rx]
    print(got == list(range(50)), len(got))
"""
SCHEMES = [
    ("fifo", ""),
    ("mq", "?maxmsg=4&msgsize=128"),
    ("fifo", "?framing=frames&pipe_size=4096"),
    ("shm", "?capacity=4096"),
    ("sysv+mq", "?maxbytes=1024"),
    ("sysv+shm", "?capacity=4096"),
]


@pytest.mark.parametrize("consumer_first", [True, False], ids=["consumer-first", "producer-first"])
@pytest.mark.parametrize(
    ("scheme", "query"),
    SCHEMES,
    ids=["fifo", "mq", "fifo-small-pipe", "shm-small-ring", "sysv-mq", "sysv-shm"],
)
def test_producer_and_consumer_meet_by_name(
    osipc_names: Callable[[str], str], scheme: str, query: str, consumer_first: bool
) -> None:
    url = f"{scheme}://{osipc_names('x')}{query}"
    first, second = (CONSUMER, PRODUCER) if consumer_first else (PRODUCER, CONSUMER)
    a = spawn(first, url)
    time.sleep(0.3)  # the first one is surely waiting before the second starts
    b = spawn(second, url)
    outputs = [finish(a), finish(b)]
    assert "True 50\n" in outputs
    osipc.unlink(url)


def test_cli_send_and_recv_are_peers(osipc_names: Callable[[str], str]) -> None:
    from _helpers import cli

    url = f"mq://{osipc_names('cli')}?maxmsg=4&msgsize=128"
    sent = cli("send", url, "hello", "wörld", "--end")
    assert sent.returncode == 0, sent.stderr
    got = cli("recv", url, "--timeout", "5")
    assert (got.returncode, got.stdout, got.stderr) == (0, "hello\nwörld\n", "")
    assert cli("rm", url).returncode == 0
