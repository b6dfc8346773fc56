"""Scheme -> transport table. A transport module is imported only when its scheme is used.

Third-party transports register in the ``osipc.transports`` entry-point group::

    [project.entry-points."osipc.transports"]
    "redis" = "osipc_redis:RedisTransport"

and are held to the same conformance suite (``osipc.testing.check_transport``).
"""

from __future__ import annotations

import importlib
import sys
import threading
from importlib import metadata

from osipc._abc import Transport
from osipc._address import Address, did_you_mean, split_url
from osipc._errors import TransportUnavailable, UnknownScheme

ENTRY_POINT_GROUP = "osipc.transports"

# Sorted; a test asserts it. One line per transport, "module:Class".
TRANSPORTS: dict[str, str] = {
    "fifo": "osipc.transports.fifo:FifoTransport",
    "mem": "osipc.transports.mem:MemTransport",
    "mq": "osipc.transports.posix_mq:PosixMQTransport",
    "sem": "osipc.transports.posix_shm:SemTransport",
    "shm": "osipc.transports.posix_shm:ShmTransport",
    "sysv+mq": "osipc.transports.sysv_mq:SysvMqTransport",
    "sysv+sem": "osipc.transports.sysv_shm:SysvSemTransport",
    "sysv+shm": "osipc.transports.sysv_shm:SysvShmTransport",
    "zmq+ipc": "osipc.transports.zeromq:ZmqIpcTransport",
    "zmq+tcp": "osipc.transports.zeromq:ZmqTcpTransport",
}

# What to install when a transport's backend is missing.
INSTALL_HINTS: dict[str, str] = {
    "fifo": "pip install --force-reinstall osipc",
    "mem": "pip install --force-reinstall osipc",
    "mq": "pip install --force-reinstall 'posix-ipc>=1.0.5'",
    "sem": "pip install --force-reinstall 'posix-ipc>=1.0.5'",
    "shm": "pip install --force-reinstall 'posix-ipc>=1.0.5'",
    "sysv+mq": "pip install --force-reinstall 'sysv-ipc>=1.1.0'",
    "sysv+sem": "pip install --force-reinstall 'sysv-ipc>=1.1.0'",
    "sysv+shm": "pip install --force-reinstall 'sysv-ipc>=1.1.0'",
    "zmq+ipc": "pip install 'osipc[zmq]'",
    "zmq+tcp": "pip install 'osipc[zmq]'",
}

_loaded: dict[str, Transport] = {}
_lock = threading.Lock()


def _entry_points() -> dict[str, metadata.EntryPoint]:
    if sys.version_info >= (3, 10):
        found = metadata.entry_points(group=ENTRY_POINT_GROUP)
    else:  # pragma: no cover - Python 3.9's API
        found = metadata.entry_points().get(ENTRY_POINT_GROUP, ())
    return {ep.name: ep for ep in found if ep.name not in TRANSPORTS}


def schemes() -> list[str]:
    """Every scheme osipc knows: built-in and registered through entry points."""
    return sorted({*TRANSPORTS, *_entry_points()})


def get_transport(scheme: str) -> Transport:
    """The transport for ``scheme``.

    Raises:
        UnknownScheme: nothing is registered for it (the message suggests the closest).
        TransportUnavailable: its backend is not installed (``.hint`` says what to install).
    """
    transport = _loaded.get(scheme)
    if transport is not None:
        return transport
    with _lock:
        if scheme in _loaded:
            return _loaded[scheme]
        target = TRANSPORTS.get(scheme)
        entry = None if target else _entry_points().get(scheme)
        if target is None and entry is None:
            known = schemes()
            raise UnknownScheme(
                f"unknown scheme {scheme + '://'!r}{did_you_mean(scheme, known)}; "
                f"known schemes: {', '.join(s + '://' for s in known)}"
            )
        try:
            if target is not None:
                module_name, _, class_name = target.partition(":")
                cls = getattr(importlib.import_module(module_name), class_name)
            else:
                assert entry is not None
                cls = entry.load()
        except ImportError as exc:
            hint = INSTALL_HINTS.get(scheme, f"pip install the package providing {scheme}://")
            raise TransportUnavailable(
                f"the {scheme}:// transport cannot be loaded ({exc})", hint=hint
            ) from exc
        transport = cls()
        if not isinstance(transport, Transport):
            raise TransportUnavailable(
                f"{scheme}:// is registered as {target or entry}, which is not an osipc Transport"
            )
        _loaded[scheme] = transport
        return transport


def parse(url: object) -> tuple[Transport, Address]:
    """Check ``url`` completely (scheme, name, option syntax) before any system call."""
    scheme, netloc, path, query = split_url(url)
    transport = get_transport(scheme)
    assert isinstance(url, str)
    name = transport.parse_name(url, netloc, path)
    return transport, Address(scheme, name, tuple(query), url)
