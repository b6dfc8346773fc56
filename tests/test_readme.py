"""The README's examples run as printed (the FIFO one as its two processes)."""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
import time
from collections.abc import Iterator

import pytest
from _helpers import finish, peer, spawn

import osipc

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")


@pytest.fixture(autouse=True)
def one_at_a_time() -> Iterator[None]:
    """The examples use fixed names (mq://jobs, ...) that are global to the machine, and
    tox runs envs in parallel: take turns across processes."""
    path = os.path.join(tempfile.gettempdir(), "osipc-readme-examples.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def blocks() -> dict[str, str]:
    """The README's python examples, keyed by the scheme their first line names."""
    if not os.path.exists(README):
        pytest.skip("README.md is not next to the tests (installed elsewhere)")
    with open(README) as handle:
        text = handle.read()
    found = {}
    pattern = r"^\*\*([^*\n]+)\*\*[^\n]*\n\n```python\n(.*?)```"
    for match in re.finditer(pattern, text, re.S | re.M):
        found[match.group(1).split()[0]] = match.group(2)
    return found


def test_mq_example() -> None:
    out = peer(blocks()["mq://"]).stdout
    assert out.splitlines() == ["{'job': 0, 'urgent': True}", "{'job': 1}"]


def test_fifo_example() -> None:
    imports, receiving, sending = blocks()["fifo://"].split("\n\n")
    receiver = spawn(imports + "\n" + receiving)
    time.sleep(0.3)
    peer(imports + "\n" + sending)
    assert finish(receiver) == "10000000\n"
    osipc.unlink("fifo://logs")


def test_shm_example() -> None:
    assert peer(blocks()["shm://"]).stdout == "1000000\nb'tick'\n"


def test_sync_example() -> None:
    assert peer(blocks()["SharedMemory,"]).stdout == "1 4\n"
    for url in ("shm://counter", "sem://counter", "sem://slots"):
        osipc.unlink(url)


def test_sysv_mq_example() -> None:
    assert peer(blocks()["sysv+mq://"]).stdout == "b'refund'\nb'buy' 1\n"


def test_mem_example() -> None:
    assert peer(blocks()["mem://"]).stdout == "[{'n': 0}, {'n': 1}, {'n': 2}]\n"


def test_zmq_example() -> None:
    pytest.importorskip("zmq", reason="zmq is not installed (pip install 'osipc[zmq]')")
    assert peer(blocks()["zmq+ipc://"]).stdout == "6\nb'goal' sport\n"


def test_aio_example() -> None:
    pytest.importorskip("zmq", reason="zmq is not installed (pip install 'osipc[zmq]')")
    out = peer(blocks()["osipc.aio"]).stdout
    assert out == "{'asked': 'time?', 'at': 12}\n[b'boot', b'ready']\n"


def test_every_example_is_tested() -> None:
    assert set(blocks()) == {
        "mq://", "fifo://", "shm://", "SharedMemory,", "sysv+mq://", "mem://", "zmq+ipc://",
        "osipc.aio",
    }  # fmt: skip
