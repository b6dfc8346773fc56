"""The functions users call: sender(), receiver(), publisher(), subscriber(), client(),
server(), unlink(), info(), ls(), gc()."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal, TypeVar, overload

from osipc import _codecs, _inventory, _registry
from osipc._abc import ObjectInfo, Receiver, SemaphoreTransport, Sender, Transport
from osipc._address import Address, resolve_options
from osipc._errors import InvalidArgument, InvalidURL, NotFound
from osipc._reqrep import Client, Server

T = TypeVar("T")


def _prepare(
    url: str, codec: object, options: dict[str, object]
) -> tuple[Transport, Address, Any, _codecs.Codec[Any]]:
    transport, address = _registry.parse(url)
    query = dict(address.query)
    in_url = query.pop("codec", None)
    if codec is not None and in_url is not None and in_url != codec:
        raise InvalidURL(
            f"{url!r} names codec {in_url!r} but codec={codec!r} was passed; give it once"
        )
    try:
        chosen = _codecs.get_codec(codec if codec is not None else in_url)
    except InvalidArgument as exc:
        if codec is None:  # the bad name rides in the URL: a bad URL, like any bad option
            raise InvalidURL(f"{url!r}: {exc}") from None
        raise
    stripped = replace(address, query=tuple(query.items()))
    parsed = resolve_options(transport.options, stripped, options)
    return transport, address, parsed, chosen


def _parse_by_name(url: str) -> tuple[Transport, Address]:
    """Parse ``url`` for a call that uses only its name (unlink, info), yet check its
    options as the call that made the object does: a bad option is an error everywhere.
    The options of osipc.Semaphore/Lock and osipc.SharedMemory count where the scheme
    names those (sem://x?value=3, shm://block?size=4096)."""
    from osipc import sync

    transport, address = _registry.parse(url)
    if isinstance(transport, SemaphoreTransport):
        resolve_options(sync._SemOptions, address, {})
        return transport, address
    try:
        _prepare(url, None, {})
    except InvalidURL:
        if not hasattr(transport, "open_block"):
            raise
        try:
            resolve_options(sync._BlockOptions, address, {})
        except InvalidURL:
            pass
        else:
            return transport, address
        raise
    return transport, address


@overload
def sender(url: str, *, codec: Literal["bytes"] | None = None, **options: Any) -> Sender[bytes]: ...
@overload
def sender(url: str, *, codec: Literal["str"], **options: Any) -> Sender[str]: ...
@overload
def sender(url: str, *, codec: _codecs.Codec[T], **options: Any) -> Sender[T]: ...
@overload
def sender(url: str, *, codec: str, **options: Any) -> Sender[Any]: ...
def sender(url: str, *, codec: Any = None, **options: Any) -> Sender[Any]:
    """Open a sender on ``url``, creating the object if it is missing (DESIGN §3).

    ``codec``: "bytes" (default), "str", "json", "msgpack", "pickle" or an object with
    ``encode``/``decode``. Options (``mode``, ``create``, ``exclusive``, ``trust_existing``
    and the transport's own) ride in the URL query or as keyword arguments.

    Raises:
        InvalidURL, UnknownScheme: the URL or an option breaks a rule (before any syscall).
        TransportUnavailable: the scheme's backend is not installed.
        NotFound: ``create=False`` and the object does not exist.
        AlreadyExists: ``exclusive=True`` and it does.
        PermissionDenied: the kernel refused, or another user created the object.
    """
    transport, address, parsed, chosen = _prepare(url, codec, options)
    return transport.open_sender(address, parsed, chosen)


@overload
def receiver(
    url: str, *, codec: Literal["bytes"] | None = None, **options: Any
) -> Receiver[bytes]: ...
@overload
def receiver(url: str, *, codec: Literal["str"], **options: Any) -> Receiver[str]: ...
@overload
def receiver(url: str, *, codec: _codecs.Codec[T], **options: Any) -> Receiver[T]: ...
@overload
def receiver(url: str, *, codec: str, **options: Any) -> Receiver[Any]: ...
def receiver(url: str, *, codec: Any = None, **options: Any) -> Receiver[Any]:
    """Open a receiver on ``url``; arguments and errors as :func:`sender`."""
    transport, address, parsed, chosen = _prepare(url, codec, options)
    return transport.open_receiver(address, parsed, chosen)


def publisher(url: str, *, codec: Any = None, **options: Any) -> Sender[Any]:
    """Open a broadcast sender: every subscriber receives every message it publishes
    after the subscriber joined (shm://; see the transport for what a slow subscriber
    does to it). Arguments and errors as :func:`sender`; Unsupported where the scheme has
    no broadcast."""
    transport, address, parsed, chosen = _prepare(url, codec, options)
    return transport.open_publisher(address, parsed, chosen)


def subscriber(url: str, *, codec: Any = None, **options: Any) -> Receiver[Any]:
    """Open a broadcast receiver: it sees messages published from now on."""
    transport, address, parsed, chosen = _prepare(url, codec, options)
    return transport.open_subscriber(address, parsed, chosen)


def client(url: str, *, codec: Any = None, **options: Any) -> Client[Any]:
    """Open a request/reply client (zmq+ipc://, zmq+tcp://, mq://): ``request(obj,
    timeout=)`` sends ``obj`` to a server and returns its reply. Arguments and errors as
    :func:`sender`; Unsupported where the scheme has no request/reply."""
    transport, address, parsed, chosen = _prepare(url, codec, options)
    return transport.open_client(address, parsed, chosen)


def server(url: str, *, codec: Any = None, **options: Any) -> Server[Any]:
    """Open a request/reply server: iterate it for requests, answer each with
    ``request.reply(obj)``. Arguments and errors as :func:`sender`."""
    transport, address, parsed, chosen = _prepare(url, codec, options)
    return transport.open_server(address, parsed, chosen)


def unlink(url: str, *, missing_ok: bool = False) -> None:
    """Destroy the kernel object behind ``url`` and its osipc record.

    Open handles keep working on the old object where the kernel allows it (a FIFO or
    queue lives on while open); new opens get a new object.

    Raises:
        InvalidURL: the URL or one of its options breaks a rule (options are checked as
            :func:`sender` checks them, though only the name is used).
        NotFound: it does not exist (unless ``missing_ok``).
        PermissionDenied: the kernel refused.
    """
    transport, address = _parse_by_name(url)
    try:
        transport.unlink(address)
    except NotFound:
        _inventory.remove_record(address)
        if not missing_ok:
            raise
    else:
        _inventory.remove_record(address)


def info(url: str) -> ObjectInfo:
    """Describe the object behind ``url`` without creating or changing it.

    Raises:
        InvalidURL: the URL or one of its options breaks a rule.
        NotFound: it does not exist.
    """
    transport, address = _parse_by_name(url)
    return _inventory.describe(transport, address)


def ls(*, all: bool = False) -> list[ObjectInfo]:  # noqa: A002 - mirrors `osipc ls --all`
    """Every object osipc created (live, stale or gone); ``all=True`` adds the kernel
    objects osipc can see but did not create (state "foreign")."""
    return _inventory.ls(include_foreign=all)


def gc(*, force: bool = False, dry_run: bool = False) -> list[_inventory.GcAction]:
    """Remove stale osipc objects (creator dead, nobody attached) and records of objects
    that are gone. A queue that still holds messages is kept unless ``force``. Objects
    osipc did not create are never touched."""
    return _inventory.gc(force=force, dry_run=dry_run)
