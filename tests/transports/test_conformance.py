"""check_transport on every scheme and mode, and proof that it catches broken ones."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import osipc
import osipc.testing
from osipc import _registry
from osipc.transports import mem

SMALL_MQ = {"maxmsg": 8, "msgsize": 1024}  # tox envs run in parallel: share RLIMIT_MSGQUEUE


@pytest.mark.parametrize(
    ("scheme", "options"),
    [
        ("mem", {}),
        ("mem", {"capacity": 8}),
        ("fifo", {}),
        ("fifo", {"framing": "lines"}),
        ("fifo", {"pipe_size": 4096}),
        ("mq", SMALL_MQ),
        ("mq", {**SMALL_MQ, "raw": 1}),
        ("shm", {"capacity": "64K"}),
        ("shm", {"capacity": "4096"}),
        ("sysv+mq", {}),
        ("sysv+mq", {"raw": 1}),
        ("sysv+mq", {"maxbytes": 2048}),
        ("sysv+shm", {"capacity": "64K"}),
        ("sysv+shm", {"capacity": "4096"}),
    ],
    ids=lambda v: v if isinstance(v, str) else "&".join(f"{k}={x}" for k, x in v.items()),
)
def test_conformance(url: Callable[..., str], scheme: str, options: dict[str, Any]) -> None:
    ran = osipc.testing.check_transport(lambda: url(scheme, **options))
    assert ran == list(osipc.testing.CHECKS)


class _LossySender(mem.MemSender):
    """Drops empty payloads: exactly the bug the suite must catch."""

    def _send(self, frame: Any, timeout: float | None) -> None:
        if len(frame):
            super()._send(frame, timeout)


class _LossyTransport(mem.MemTransport):
    scheme = "lossy"

    def open_sender(self, address: Any, options: Any, codec: Any) -> Any:
        return _LossySender(address, codec, mem._open(address, options))


@pytest.fixture
def lossy() -> Iterator[None]:
    _registry._loaded["lossy"] = _LossyTransport()
    try:
        yield
    finally:
        del _registry._loaded["lossy"]


def test_the_suite_fails_a_broken_transport(lossy: None, url: Callable[..., str]) -> None:
    with pytest.raises(osipc.testing.ConformanceError) as info:
        osipc.testing.check_transport(lambda: url("lossy"))
    assert "empty_payload_is_data" in str(info.value)
    assert "roundtrip" not in str(info.value), "only the broken behaviour is reported"
