"""osipc: unrelated Linux processes talking by name over the kernel's IPC objects.

One sender/receiver protocol over FIFOs, POSIX and System V message queues, shared-memory
rings, ZeroMQ (zmq+ipc, zmq+tcp) and in-process queues; broadcast with publisher() /
subscriber(), request/reply with client() / server()::

    with osipc.sender("mq://jobs", codec="json") as tx:
        tx.send({"n": 1}, timeout=1.0)
    with osipc.receiver("mq://jobs", codec="json") as rx:
        for msg in rx:          # ends at end-of-stream
            ...

Everything public is re-exported here from private modules; ``osipc.abc`` is the
surface for transport authors and ``osipc.testing`` the conformance suite.
"""

from osipc._abc import Capabilities, ObjectInfo, Receiver, Sender
from osipc._address import sysv_key
from osipc._api import (
    client,
    gc,
    info,
    ls,
    publisher,
    receiver,
    sender,
    server,
    subscriber,
    unlink,
)
from osipc._errors import (
    AlreadyExists,
    Broken,
    Closed,
    DecodeError,
    EncodeError,
    EndOfStream,
    InvalidArgument,
    InvalidURL,
    MessageTooLarge,
    NotFound,
    OsipcError,
    Overrun,
    PermissionDenied,
    Timeout,
    TransportError,
    TransportUnavailable,
    UnknownScheme,
    Unsupported,
)
from osipc._inventory import GcAction
from osipc._registry import schemes
from osipc._reqrep import Client, Request, Server
from osipc._version import __version__
from osipc.sync import Lock, Semaphore, SharedMemory


def __getattr__(name: str) -> object:
    if name == "aio":  # osipc.aio without an import of its own; asyncio loads only then
        import importlib

        return importlib.import_module("osipc.aio")
    raise AttributeError(f"module 'osipc' has no attribute {name!r}")


__all__ = [
    "AlreadyExists",
    "Broken",
    "Capabilities",
    "Client",
    "Closed",
    "DecodeError",
    "EncodeError",
    "EndOfStream",
    "GcAction",
    "InvalidArgument",
    "InvalidURL",
    "Lock",
    "MessageTooLarge",
    "NotFound",
    "ObjectInfo",
    "OsipcError",
    "Overrun",
    "PermissionDenied",
    "Receiver",
    "Request",
    "Semaphore",
    "Sender",
    "Server",
    "SharedMemory",
    "Timeout",
    "TransportError",
    "TransportUnavailable",
    "UnknownScheme",
    "Unsupported",
    "__version__",
    "client",
    "gc",
    "info",
    "ls",
    "publisher",
    "receiver",
    "schemes",
    "sender",
    "server",
    "subscriber",
    "sysv_key",
    "unlink",
]
