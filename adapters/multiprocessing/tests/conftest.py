from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterator

import osipc_mp
import pytest
from _helpers import reap_spawned

SLOW = os.environ.get("OSIPC_SLOW") == "1"


@pytest.fixture(autouse=True)
def _isolated(osipc_leak_check: None) -> Iterator[None]:
    """Every test: a private runtime dir, unique names, and a failure if it leaks; peers
    it left running are killed after it."""
    yield
    reap_spawned()


@pytest.fixture
def name(osipc_names: Callable[[str], str]) -> Iterator[str]:
    """A fresh name; whatever osipc_mp made under it is removed after the test (before
    the leak check looks), so a failing test leaves nothing behind either."""
    fresh = osipc_names("mp")
    yield fresh
    osipc_mp.unlink(fresh)


@pytest.fixture
def names(osipc_names: Callable[[str], str]) -> Iterator[Callable[[], str]]:
    """More fresh names, each removed after the test as ``name`` is."""
    made: list[str] = []

    def make() -> str:
        made.append(osipc_names("mp"))
        return made[-1]

    yield make
    for fresh in made:
        osipc_mp.unlink(fresh)


def kill_at_random(proc: subprocess.Popen[str], most: float) -> str:
    """SIGKILL ``proc`` at a random instant within ``most`` seconds, reap it, and return
    what it printed (after what the test already read)."""
    time.sleep(random.uniform(0, most))
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=30)
    return out or ""


@pytest.fixture
def kill() -> Callable[[subprocess.Popen[str], float], str]:
    return kill_at_random


@pytest.fixture
def rounds() -> Callable[[int, int], int]:
    """rounds(short, long): how many rounds a kill loop runs (long where OSIPC_SLOW=1)."""
    return lambda short, long: long if SLOW else short


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The repository's convention (tests/conftest.py), for when this suite runs alone.
    if SLOW:
        return
    skip = pytest.mark.skip(reason="slow: runs where OSIPC_SLOW=1 (see README.md)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
