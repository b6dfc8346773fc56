"""Testing helpers: the conformance suite every transport passes, and leak checks.

``check_transport(make_url)`` needs no pytest. ``make_url()`` must return a fresh URL
(an unused name) on every call; the suite opens, uses and unlinks each one. A receiver is
always opened before the first send, so rendezvous transports (FIFOs) are tested as
users use them::

    import itertools, osipc.testing
    counter = itertools.count()
    osipc.testing.check_transport(lambda: f"mq://conf-{next(counter)}?maxmsg=8&msgsize=1024")

The pytest fixtures (``osipc_runtime``, ``osipc_names``, ``osipc_leak_check``) are in the
``osipc`` pytest plugin, loaded automatically when osipc is installed.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import osipc
from osipc import _limits
from osipc._address import sysv_key as _sysv_key

__all__ = [
    "CHECKS",
    "ConformanceError",
    "KernelSnapshot",
    "check_transport",
    "kernel_snapshot",
    "remove_leftover",
    "runtime_leftovers",
]


class ConformanceError(AssertionError):
    """One or more conformance checks failed; the message lists each with its reason."""


@contextmanager
def _fresh(make_url: Callable[[], str]) -> Iterator[str]:
    url = make_url()
    try:
        yield url
    finally:
        try:
            osipc.unlink(url, missing_ok=True)
        except osipc.OsipcError:
            pass


def _expect(exc_type: type[BaseException], call: Callable[[], object], what: str) -> BaseException:
    try:
        call()
    except exc_type as exc:
        return exc
    except BaseException as exc:
        raise AssertionError(f"{what}: expected {exc_type.__name__}, got {exc!r}") from exc
    raise AssertionError(f"{what}: expected {exc_type.__name__}, nothing was raised")


def _recv_n(rx: osipc.Receiver[Any], count: int, timeout: float = 5.0) -> list[Any]:
    return [rx.recv(timeout=timeout) for _ in range(count)]


def _check_roundtrip(make_url: Callable[[], str]) -> None:
    with _fresh(make_url) as url, osipc.receiver(url) as rx, osipc.sender(url) as tx:
        payloads = [b"one", b"two", b"\x00\xc1binary\xff", b"four"]
        for payload in payloads:
            tx.send(payload, timeout=5)
        got = _recv_n(rx, len(payloads))
        assert got == payloads, f"sent {payloads!r}, received {got!r} (order or content)"
        assert all(type(item) is bytes for item in got), "the bytes codec must return bytes"


def _check_empty_payload_is_data(make_url: Callable[[], str]) -> None:
    with _fresh(make_url) as url, osipc.receiver(url) as rx, osipc.sender(url) as tx:
        tx.send(b"", timeout=5)
        assert rx.recv(timeout=5) == b"", "an empty payload must arrive as b''"
        if tx.capabilities.end_of_stream:
            tx.send(b"", timeout=5)
            tx.end(timeout=5)
            assert rx.recv(timeout=5) == b"", "an empty payload must not end the stream"
            _expect(osipc.EndOfStream, lambda: rx.recv(timeout=5), "recv after end()")


def _check_end_of_stream(make_url: Callable[[], str]) -> None:
    with _fresh(make_url) as url, osipc.receiver(url) as rx, osipc.sender(url) as tx:
        if not tx.capabilities.end_of_stream:
            _expect(osipc.Unsupported, lambda: tx.end(timeout=1), "end() without a marker")
            return
        tx.send(b"a", timeout=5)
        tx.send(b"b", timeout=5)
        tx.end(timeout=5)
        tx.send(b"after", timeout=5)
        got = list(rx)
        assert got == [b"a", b"b"], f"iteration must stop at end-of-stream, got {got!r}"
        assert rx.recv(timeout=5) == b"after", "each end() ends one stream; later data follows"


def _check_timeouts(make_url: Callable[[], str]) -> None:
    with _fresh(make_url) as url, osipc.receiver(url) as rx, osipc.sender(url):
        started = time.monotonic()
        _expect(osipc.Timeout, lambda: rx.recv(timeout=0), "recv(timeout=0) on an empty object")
        assert time.monotonic() - started < 1.0, "recv(timeout=0) must not wait"
        started = time.monotonic()
        exc = _expect(osipc.Timeout, lambda: rx.recv(timeout=0.2), "recv(timeout=0.2)")
        waited = time.monotonic() - started
        assert 0.19 <= waited < 3.0, f"recv(timeout=0.2) returned after {waited:.3f} s"
        assert isinstance(exc, TimeoutError), "Timeout must also be a TimeoutError"
        for bad in (-1, float("nan"), "1", True):
            _expect(
                osipc.InvalidArgument,
                lambda bad=bad: rx.recv(timeout=bad),  # type: ignore[misc]
                f"timeout={bad!r}",
            )


def _check_codecs(make_url: Callable[[], str]) -> None:
    with _fresh(make_url) as url:
        with osipc.receiver(url, codec="json") as rx, osipc.sender(url, codec="json") as tx:
            obj = {"n": 1, "s": "é", "l": [1.5, None, True]}
            tx.send(obj, timeout=5)
            assert rx.recv(timeout=5) == obj, "json codec round trip"
            _expect(osipc.EncodeError, lambda: tx.send({1, 2}), "json codec given a set")
            _expect(osipc.Timeout, lambda: rx.recv(timeout=0), "after a failed encode")
        with osipc.receiver(url, codec="json") as jrx, osipc.sender(url) as tx:
            _expect(osipc.EncodeError, lambda: tx.send({"a": 1}), "bytes codec given a dict")  # type: ignore[arg-type]
            _expect(osipc.Timeout, lambda: jrx.recv(timeout=0), "nothing sent on EncodeError")
            tx.send(b"\xff\xfe", timeout=5)
            exc = _expect(osipc.DecodeError, lambda: jrx.recv(timeout=5), "json given \\xff")
            assert getattr(exc, "codec", None) == "json", "DecodeError must name the codec"
            assert getattr(exc, "data", None) == b"\xff\xfe", "DecodeError must carry the data"
        with osipc.receiver(url, codec="str") as srx, osipc.sender(url, codec="str") as stx:
            stx.send("héllo", timeout=5)
            assert srx.recv(timeout=5) == "héllo", "str codec round trip"


def _check_batches(make_url: Callable[[], str]) -> None:
    with _fresh(make_url) as url, osipc.receiver(url) as rx, osipc.sender(url) as tx:
        assert tx.send_many([b"1", b"2", b"3"], timeout=5) == 3, "send_many returns the count"
        got: list[bytes] = []
        deadline = time.monotonic() + 5
        while len(got) < 3 and time.monotonic() < deadline:
            got += rx.recv_many(10, timeout=5)
        assert got == [b"1", b"2", b"3"], f"recv_many got {got!r}"
        assert tx.send_many([], timeout=1) == 0, "an empty batch sends nothing"
        _expect(osipc.EncodeError, lambda: tx.send_many([b"ok", 5], timeout=1), "bad batch")  # type: ignore[list-item]
        _expect(osipc.Timeout, lambda: rx.recv(timeout=0), "a bad batch must send nothing")
        _expect(osipc.InvalidArgument, lambda: rx.recv_many(0), "recv_many(0)")


def _check_recv_into(make_url: Callable[[], str]) -> None:
    with _fresh(make_url) as url, osipc.receiver(url) as rx, osipc.sender(url) as tx:
        tx.send(b"abcdef", timeout=5)
        small = bytearray(3)
        _expect(osipc.MessageTooLarge, lambda: rx.recv_into(small, timeout=5), "small buffer")
        big = bytearray(16)
        assert rx.recv_into(big, timeout=5) == 6, "recv_into returns the size"
        assert bytes(big[:6]) == b"abcdef", "recv_into fills the buffer"


def _check_close(make_url: Callable[[], str]) -> None:
    with _fresh(make_url) as url:
        rx = osipc.receiver(url)
        tx = osipc.sender(url)
        assert (rx.closed, tx.closed) == (False, False)
        tx.close()
        tx.close()
        rx.close()
        assert (rx.closed, tx.closed) == (True, True), "closed must be True after close()"
        _expect(osipc.Closed, lambda: tx.send(b"x"), "send after close")
        _expect(osipc.Closed, lambda: rx.recv(timeout=0), "recv after close")
        with osipc.receiver(url) as rx2:
            was_open = not rx2.closed
        assert (was_open, rx2.closed) == (True, True), "the context manager must close"
        osipc.info(url)  # close() must not destroy the object


def _in_thread(call: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    """Run ``call`` in a thread; the list gets what it raised (or a None-like marker)."""
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            call()
            outcome.append(AssertionError("it returned"))
        except BaseException as exc:  # reported by the caller
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _closed_while_waiting(handle: Any, call: Callable[[], object], what: str) -> None:
    """``call`` waits (5 s at most); close() from this thread must end it with Closed."""
    thread, outcome = _in_thread(call)
    time.sleep(0.2)  # well inside the wait
    started = time.monotonic()
    handle.close()
    thread.join(3.0)
    assert not thread.is_alive(), f"{what}: close() from another thread did not end the wait"
    took = time.monotonic() - started
    assert isinstance(outcome[0], osipc.Closed), f"{what}: expected Closed, got {outcome[0]!r}"
    assert took < 2.0, f"{what}: the wait ended {took:.2f} s after close(), not at once"


def _fill(tx: osipc.Sender[Any], seconds: float = 2.0) -> bool:
    """Send until the object refuses more (timeout=0); False if it still took messages
    after ``seconds`` (an unbounded or very large object)."""
    until = time.monotonic() + seconds
    payload = b"f" * min(1024, tx.capabilities.max_message_size or 1024)
    for batch in ([payload] * 16, [b"x"]):  # then the room that is left, if any
        while True:
            if time.monotonic() > until:
                return False
            try:
                tx.send_many(batch, timeout=0)
            except osipc.Timeout:
                break
    return True


def _check_waits(make_url: Callable[[], str]) -> None:
    with _fresh(make_url) as url, osipc.receiver(url) as rx, osipc.sender(url) as tx:
        _closed_while_waiting(rx, lambda: rx.recv(timeout=5), "a waiting recv()")
        if not _fill(tx):
            return  # nothing for a sender to wait for
        started = time.monotonic()
        exc = _expect(osipc.Timeout, lambda: tx.send(b"x", timeout=0.2), "send() when full")
        waited = time.monotonic() - started
        assert 0.19 <= waited < 3.0, f"send(timeout=0.2) on a full object took {waited:.3f} s"
        assert getattr(exc, "sent", 0) == 0
        _closed_while_waiting(tx, lambda: tx.send(b"x", timeout=5), "a send() waiting for room")


def _check_capabilities(make_url: Callable[[], str]) -> None:
    with _fresh(make_url) as url, osipc.receiver(url) as rx, osipc.sender(url) as tx:
        caps = rx.capabilities
        assert isinstance(caps, osipc.Capabilities)
        if caps.selectable:
            fd = rx.fileno()
            if select.select([fd], [], [], 0)[0]:  # spurious readiness is allowed, once
                _expect(osipc.Timeout, lambda: rx.recv(timeout=0), "recv with nothing sent")
                assert not select.select([fd], [], [], 0)[0], "readable with nothing to receive"
            tx.send(b"x", timeout=5)
            assert select.select([fd], [], [], 5)[0], "fileno() not readable with a message"
            assert rx.recv(timeout=5) == b"x"
            tx.send_many([b"y", b"z"], timeout=5)
            assert select.select([fd], [], [], 5)[0]
            assert rx.recv(timeout=5) == b"y"
            # one message may now sit in osipc's buffer rather than the kernel's
            assert select.select([fd], [], [], 1)[0], "fileno() must count buffered messages"
            assert rx.recv(timeout=5) == b"z"
        else:
            _expect(osipc.Unsupported, rx.fileno, "fileno() on a non-selectable receiver")
        limit = tx.capabilities.max_message_size
        if limit is not None:
            tx.send(b"m" * limit, timeout=5)
            assert rx.recv(timeout=5) == b"m" * limit, "a message of max_message_size"
            exc = _expect(osipc.MessageTooLarge, lambda: tx.send(b"m" * (limit + 1)), "too large")
            assert str(limit) in str(exc), "MessageTooLarge must name the limit"
            _expect(osipc.Timeout, lambda: rx.recv(timeout=0), "nothing sent when too large")


def _check_large(make_url: Callable[[], str]) -> None:
    with _fresh(make_url) as url, osipc.receiver(url) as rx, osipc.sender(url) as tx:
        if tx.capabilities.max_message_size is not None:
            return
        payloads = [os.urandom(1 << 20), b"small", os.urandom(70000)]
        errors: list[BaseException] = []

        def send() -> None:
            try:
                for payload in payloads:
                    tx.send(payload, timeout=10)
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        thread = threading.Thread(target=send)
        thread.start()
        got = _recv_n(rx, len(payloads), timeout=10)
        thread.join(10)
        assert not errors, f"sender failed: {errors[0]!r}"
        assert got == payloads, "large messages must arrive whole and in order"


def _check_lifecycle(make_url: Callable[[], str]) -> None:
    with _fresh(make_url) as url:
        _expect(osipc.NotFound, lambda: osipc.receiver(url, create=False), "create=False")
        _expect(osipc.NotFound, lambda: osipc.info(url), "info() of a missing object")
        with osipc.receiver(url):
            _expect(osipc.AlreadyExists, lambda: osipc.sender(url, exclusive=True), "exclusive")
            with osipc.sender(url, create=False):
                pass
        osipc.unlink(url)
        _expect(osipc.NotFound, lambda: osipc.unlink(url), "unlink twice")
        osipc.unlink(url, missing_ok=True)
        _expect(osipc.InvalidURL, lambda: osipc.sender(url, no_such_option=1), "unknown option")


CHECKS: dict[str, Callable[[Callable[[], str]], None]] = {
    "roundtrip": _check_roundtrip,
    "empty_payload_is_data": _check_empty_payload_is_data,
    "end_of_stream": _check_end_of_stream,
    "timeouts": _check_timeouts,
    "codecs": _check_codecs,
    "batches": _check_batches,
    "recv_into": _check_recv_into,
    "close": _check_close,
    "waits": _check_waits,
    "capabilities": _check_capabilities,
    "large_messages": _check_large,
    "lifecycle": _check_lifecycle,
}


def check_transport(make_url: Callable[[], str], *, skip: tuple[str, ...] = ()) -> list[str]:
    """Run every conformance check; return the names of the checks that ran.

    Raises:
        ConformanceError: listing every failed check and why.
    """
    failures = []
    ran = []
    for name, check in CHECKS.items():
        if name in skip:
            continue
        ran.append(name)
        try:
            check(make_url)
        except Exception as exc:
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
    if failures:
        raise ConformanceError("conformance failures:\n  " + "\n  ".join(failures))
    return ran


# -- leak checks -------------------------------------------------------------------------


@dataclass(frozen=True)
class KernelSnapshot:
    """Kernel objects whose names contain one of the given markers."""

    objects: frozenset[str] = field(default_factory=frozenset)
    mq_listed: bool = False


def _sysv_entries(names: set[str]) -> set[str]:
    # a name's own key and its ring's companion semaphores (NAME:tx, NAME:rx)
    keys = {_sysv_key(n) for name in names for n in (name, f"{name}:tx", f"{name}:rx")}
    found = set()
    for kind in ("msg", "sem", "shm"):
        try:
            with open(f"/proc/sysvipc/{kind}") as table:
                next(table, None)
                for line in table:
                    parts = line.split()
                    if parts and int(parts[0]) in keys:
                        found.add(f"sysv-{kind}:{int(parts[0]):#x}")
        except OSError:
            continue
    return found


def kernel_snapshot(markers: set[str], names: set[str] | None = None) -> KernelSnapshot:
    """Objects in /dev/shm and the mqueue mount (if any) whose names contain a marker,
    and SysV objects whose keys derive from ``names``."""
    found: set[str] = set()
    try:
        found |= {f"shm:{n}" for n in os.listdir("/dev/shm") if any(m in n for m in markers)}
    except OSError:
        pass
    mount = _limits.mqueue_mount()
    if mount is not None:
        try:
            found |= {f"mq:{n}" for n in os.listdir(mount) if any(m in n for m in markers)}
        except OSError:
            pass
    found |= _sysv_entries(names or set())
    return KernelSnapshot(frozenset(found), mount is not None)


def runtime_leftovers(root: str) -> list[str]:
    """Files under a runtime dir (FIFOs, sockets, records): each is a leak after a test."""
    left = []
    for dirpath, _dirs, files in os.walk(root):
        left += [os.path.join(dirpath, f) for f in files]
    return sorted(left)


def remove_leftover(entry: str) -> None:
    """Best-effort removal of one leaked object named as in KernelSnapshot."""
    kind, _, name = entry.partition(":")
    try:
        if kind == "shm":
            os.unlink(f"/dev/shm/{name}")
        elif kind == "mq":
            import posix_ipc

            posix_ipc.unlink_message_queue("/" + name)
        elif kind.startswith("sysv-"):
            _remove_sysv(kind[5:], int(name, 16))
    except Exception:
        pass


def _remove_sysv(kind: str, key: int) -> None:
    import sysv_ipc

    if kind == "msg":
        sysv_ipc.MessageQueue(key).remove()
    elif kind == "sem":
        sysv_ipc.Semaphore(key).remove()
    elif kind == "shm":
        sysv_ipc.SharedMemory(key).remove()
