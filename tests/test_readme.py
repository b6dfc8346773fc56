"""The README's examples run as printed (the FIFO one as its two processes)."""

from __future__ import annotations

import os
import re
import time

import pytest
from _helpers import finish, peer, spawn

import osipc

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")


def blocks() -> list[str]:
    if not os.path.exists(README):
        pytest.skip("README.md is not next to the tests (installed elsewhere)")
    with open(README) as handle:
        return re.findall(r"```python\n(.*?)```", handle.read(), re.S)


def test_mq_example() -> None:
    out = peer(blocks()[0]).stdout
    assert out.splitlines() == ["{'job': 0, 'urgent': True}", "{'job': 1}"]


def test_fifo_example() -> None:
    imports, receiving, sending = blocks()[1].split("\n\n")
    receiver = spawn(imports + "\n" + receiving)
    time.sleep(0.3)
    peer(imports + "\n" + sending)
    assert finish(receiver) == "10000000\n"
    osipc.unlink("fifo://logs")


def test_mem_example() -> None:
    assert peer(blocks()[2]).stdout == "[{'n': 0}, {'n': 1}, {'n': 2}]\n"
