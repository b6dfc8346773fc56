from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from _helpers import reap_spawned

import osipc


@pytest.fixture(autouse=True)
def _isolated(osipc_leak_check: None) -> Iterator[None]:
    """Every test: a private runtime dir, unique names, and a failure if it leaks; peers
    it left running (it failed half-way: they would wait forever) are killed after it."""
    yield
    reap_spawned()


@pytest.fixture
def url(osipc_names: Callable[[str], str]) -> Callable[..., str]:
    """url("mq", maxmsg=4) -> "mq://t123x4-n0?maxmsg=4": a fresh name on each call."""

    def make(scheme: str, **options: object) -> str:
        query = "&".join(f"{key}={value}" for key, value in options.items())
        return f"{scheme}://{osipc_names('n')}" + (f"?{query}" if query else "")

    return make


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("OSIPC_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: runs where OSIPC_SLOW=1 (see README.md)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def pytest_report_header(config: pytest.Config) -> str:
    return f"osipc {osipc.__version__} from {os.path.dirname(osipc.__file__)}"


pytest_plugins = ["pytester"]
