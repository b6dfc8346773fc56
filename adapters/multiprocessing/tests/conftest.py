from __future__ import annotations

from collections.abc import Callable, Iterator

import osipc_mp
import pytest
from _helpers import reap_spawned


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
