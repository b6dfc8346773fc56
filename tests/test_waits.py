"""Closing a handle from another thread while a call of it waits, a signal handler that
must run while one waits, and the smaller promises around sending: priorities where there
are none, batches checked first."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _helpers import cli, peer

import osipc

Url = Callable[..., str]

try:
    import zmq  # noqa: F401

    HAVE_ZMQ = True
except ImportError:
    HAVE_ZMQ = False

# sysv+mq is not here: a System V queue has no wake-up for a waiter blocked in msgrcv or
# msgsnd without a timeout (waits with one are covered by the conformance suite).
SCHEMES = [
    ("mem", {"capacity": 4}),
    ("fifo", {"pipe_size": 4096}),
    ("mq", {"maxmsg": 2, "msgsize": 64}),
    ("shm", {"capacity": "4096"}),
    ("sysv+shm", {"capacity": "4096"}),
    pytest.param(
        "zmq+ipc",
        {"hwm": 1},
        marks=pytest.mark.skipif(not HAVE_ZMQ, reason="needs pyzmq (the zmq extra)"),
    ),
]


def _wait_in_thread(call: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _close_under(handle: Any, call: Callable[[], object]) -> float:
    """Close ``handle`` while ``call`` (in a thread) waits without a timeout; the seconds
    until the call raised Closed."""
    thread, outcome = _wait_in_thread(call)
    time.sleep(0.3)
    assert thread.is_alive(), f"the call did not wait: {outcome}"
    started = time.monotonic()
    handle.close()
    thread.join(5)
    assert not thread.is_alive(), "close() from another thread left the call waiting"
    assert len(outcome) == 1 and isinstance(outcome[0], osipc.Closed), outcome
    return time.monotonic() - started


@pytest.mark.parametrize(("scheme", "options"), SCHEMES)
def test_close_ends_a_recv_waiting_without_timeout(
    url: Url, scheme: str, options: dict[str, Any]
) -> None:
    target = url(scheme, **options)
    with osipc.sender(target):  # (a FIFO receiver waits for data, not for a writer)
        rx = osipc.receiver(target)
        assert _close_under(rx, rx.recv) < 1.0
        with osipc.receiver(target) as again:  # the object is fine; a new handle works
            with osipc.sender(target) as tx:
                tx.send(b"still here", timeout=5)
            assert again.recv(timeout=5) == b"still here"
    osipc.unlink(target, missing_ok=True)


class _Stop(OSError):
    """What the test's SIGUSR1 handler raises: an OSError, which no wait may take for its own."""


@contextlib.contextmanager
def _signal_to_another_thread(handle: Any, after: float) -> Iterator[None]:
    """SIGUSR1, whose handler raises _Stop, sent ``after`` seconds in to another thread.

    Only the main thread runs Python signal handlers, so the handler is due at once, but
    nothing interrupts the main thread's sleep: the same state as a signal that lands in
    the instant before a wait's sleep begins (found as a service example that, now and
    then, ignored systemctl stop). If the handler never runs, ``handle`` is closed after
    5 s, so the wait ends in Closed instead of hanging the suite."""

    def handler(*_: object) -> None:
        raise _Stop

    idle = threading.Event()
    other = threading.Thread(target=idle.wait, args=(30,))
    other.start()
    previous = signal.signal(signal.SIGUSR1, handler)
    signaller = threading.Timer(after, signal.pthread_kill, (other.ident, signal.SIGUSR1))
    rescue = threading.Timer(5, handle.close)
    try:
        signaller.start()
        rescue.start()
        yield
    finally:
        signaller.cancel()
        rescue.cancel()
        signal.signal(signal.SIGUSR1, previous)
        idle.set()
        other.join()
        signaller.join()


def _full(target: str, tx: Any, payload: bytes = b"p" * 48) -> None:
    """Send ``payload`` until ``target`` has no room for another."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            tx.send(payload, timeout=0)
        except osipc.Timeout:
            return
    pytest.fail(f"{target} never filled up")


# sysv+mq with a timeout only: without one it blocks in msgrcv (see its docstring)
WITH_SYSV_MQ = [*SCHEMES, ("sysv+mq", {})]


@pytest.mark.parametrize(("scheme", "options"), WITH_SYSV_MQ)
@pytest.mark.parametrize("after", [0.05, 0.25])
def test_a_signal_handler_runs_while_a_recv_waits(
    url: Url, scheme: str, options: dict[str, Any], after: float
) -> None:
    target = url(scheme, **options)
    timeout = 10.0 if scheme == "sysv+mq" else None
    with osipc.sender(target), osipc.receiver(target) as rx:
        started = time.monotonic()
        with _signal_to_another_thread(rx, after), pytest.raises(_Stop):
            rx.recv(timeout=timeout)
        waited = time.monotonic() - started - after
        assert waited < 2.0, f"the handler ran {waited:.2f} s late"  # (5: never)
    osipc.unlink(target, missing_ok=True)


@pytest.mark.parametrize(("scheme", "options"), WITH_SYSV_MQ)
def test_a_signal_handler_runs_while_a_send_waits_for_room(
    url: Url, scheme: str, options: dict[str, Any]
) -> None:
    target = url(scheme, **options)
    timeout = 10.0 if scheme == "sysv+mq" else None
    with contextlib.ExitStack() as stack:
        tx = stack.enter_context(osipc.sender(target))
        if not scheme.startswith("zmq"):  # (a ZeroMQ sender waits for a receiver to connect)
            stack.enter_context(osipc.receiver(target))
            _full(target, tx)
        started = time.monotonic()
        with _signal_to_another_thread(tx, 0.1), pytest.raises(_Stop):
            tx.send(b"p" * 48, timeout=timeout)
        waited = time.monotonic() - started - 0.1
        assert waited < 2.0, f"the handler ran {waited:.2f} s late"  # (5: never)
    osipc.unlink(target, missing_ok=True)


def test_a_signal_handler_runs_while_a_fifo_recv_waits_for_its_turn(url: Url) -> None:
    # Threads sharing a FIFO receiver take turns; one that waits for its turn while
    # another thread's recv waits for data must still run a handler due meanwhile.
    target = url("fifo")
    with osipc.receiver(target) as rx, osipc.sender(target) as tx:
        first, _ = _wait_in_thread(rx.recv)  # holds the turn until a message comes
        time.sleep(0.2)
        started = time.monotonic()
        with _signal_to_another_thread(rx, 0.1), pytest.raises(_Stop):
            rx.recv(timeout=None)
        waited = time.monotonic() - started - 0.1
        assert waited < 2.0, f"the handler ran {waited:.2f} s late"  # (5: never)
        if not rx.closed:
            tx.send(b"for the first thread", timeout=5)
        first.join(5)
    osipc.unlink(target, missing_ok=True)


@pytest.mark.parametrize(("scheme", "options"), SCHEMES)
def test_close_ends_a_send_waiting_for_room(url: Url, scheme: str, options: dict[str, Any]) -> None:
    target = url(scheme, **options)
    payload = b"p" * 48
    if scheme.startswith("zmq"):  # a ZeroMQ sender waits for a receiver to connect
        tx = osipc.sender(target)
        assert _close_under(tx, lambda: tx.send(payload)) < 1.0
        return
    with osipc.receiver(target) as rx:
        tx = osipc.sender(target)
        _full(target, tx, payload)
        assert _close_under(tx, lambda: tx.send(payload)) < 1.0
        assert rx.recv(timeout=5) == payload  # what was sent before stays
    osipc.unlink(target, missing_ok=True)


def test_a_closed_mq_receiver_gives_back_what_it_took(url: Url) -> None:
    target = url("mq", maxmsg=4, msgsize=64)
    with osipc.sender(target) as tx:
        tx.send(b'"a big one"', priority=5, timeout=5)
        tx.send_many([b"[1]", b"oops", b"[3]"], priority=2, timeout=5)
    rx = osipc.receiver(target)
    with pytest.raises(osipc.MessageTooLarge, match="kept for the next recv"):
        rx.recv_into(bytearray(4), timeout=5)
    rx.close()  # it held the message: it goes back to the queue, not to nobody
    with osipc.receiver(target, codec="json") as rx:
        assert rx.recv(timeout=5) == "a big one"
        assert rx.priority == 5, "given back at its own priority"
        assert rx.recv(timeout=5) == [1]
        with pytest.raises(osipc.DecodeError) as info:
            rx.recv_many(3, timeout=5)  # took "oops" and [3]: holds [3]
        assert info.value.data == b"oops"
    with osipc.receiver(target) as rx:  # the next receiver gets the rest: none lost
        assert rx.recv(timeout=5) == b"[3]"
        with pytest.raises(osipc.Timeout):
            rx.recv(timeout=0)
    osipc.unlink(target)


@pytest.mark.parametrize(
    ("scheme", "options", "limit"),
    [("mq", {"maxmsg": 4, "msgsize": 64}, 64), ("sysv+mq", {"maxbytes": 256}, 256)],
)
def test_a_batch_with_a_message_too_large_sends_nothing(
    url: Url, scheme: str, options: dict[str, Any], limit: int
) -> None:
    target = url(scheme, **options)
    with osipc.receiver(target) as rx, osipc.sender(target) as tx:
        with pytest.raises(osipc.MessageTooLarge, match=str(limit)) as info:
            tx.send_many([b"ok", b"x" * (limit + 1)], timeout=5)
        assert info.value.sent == 0
        with pytest.raises(osipc.Timeout):
            rx.recv(timeout=0)
    osipc.unlink(target)


def test_send_many_wants_a_batch(url: Url) -> None:
    target = url("mem")
    with osipc.sender(target) as tx:
        for wrong in (b"abc", "abc", 5):
            with pytest.raises(osipc.InvalidArgument, match="iterable of messages"):
                tx.send_many(wrong)  # type: ignore[arg-type]


@pytest.mark.parametrize("scheme", ["mem", "fifo", "shm", "sysv+mq"])
def test_priority_is_refused_where_there_are_none(url: Url, scheme: str) -> None:
    target = url(scheme)
    with osipc.receiver(target) as rx, osipc.sender(target) as tx:
        assert not tx.capabilities.priorities
        with pytest.raises(osipc.Unsupported, match="priorities"):
            tx.send(b"x", priority=3)
        with pytest.raises(osipc.Unsupported, match="priorities"):
            tx.send_many([b"x"], priority=3)
        tx.send(b"y", priority=0, timeout=5)
        assert rx.recv(timeout=5) == b"y" and rx.priority == 0
    osipc.unlink(target)


def test_the_cli_refuses_priority_where_there_are_none(url: Url) -> None:
    target = url("fifo")
    done = cli("send", target, "hi", "--priority", "3")
    assert done.returncode == 2, done
    assert "--priority needs a transport with priorities" in done.stderr
    assert "Traceback" not in done.stderr
    with pytest.raises(osipc.NotFound):
        osipc.info(target)  # refused before anything was created


def test_the_cli_reports_its_own_file_errors_in_one_line(tmp_path: Any) -> None:
    pytest.importorskip("zmq", reason="keygen needs pyzmq (the zmq extra)")
    (tmp_path / "file").write_text("")
    done = cli("keygen", "server", "--dir", str(tmp_path / "file" / "sub"))
    assert done.returncode == 1, done
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("osipc: error:")


# The peer of the test below: SIGALRM every 50 us while it sends and receives (or acquires
# and releases) on argv[1]; the handler raises argv[2]'s class, only while a call runs.
_SPRAY = """
import contextlib, gc, json, signal, sys, time
import osipc

target, kind = sys.argv[1], sys.argv[2]
raised = type("FromTheHandler", (OSError if kind == "OSError" else ValueError,), {})
scheme = target.split("://")[0]
stack = contextlib.ExitStack()
if scheme.endswith("sem"):
    sem = stack.enter_context(osipc.Semaphore(target, value=1))

    def op():
        while sem.value > 1:  # (a release whose return the handler cut off)
            sem.acquire(timeout=0)
        if sem.value < 1:
            sem.release()
        sem.acquire(timeout=0)
        sem.release()

else:
    rx = stack.enter_context(osipc.receiver(target))
    tx = stack.enter_context(osipc.sender(target))
    if scheme.endswith("shm") and rx._accel is None:
        print(json.dumps({"skip": "no C part"}))
        sys.exit()

    def op():
        with contextlib.suppress(osipc.Timeout):
            while True:  # (what an interrupted round left)
                rx.recv(timeout=0)
        tx.send(b"m", timeout=0)
        rx.recv(timeout=0)

inside, fired, caught, other = [False], [0], 0, []

def handler(*_):
    if inside[0]:
        inside[0] = False
        fired[0] += 1
        raise raised("from the handler")

# (a finalizer the collector ran meanwhile would lose what the handler raised in it:
# Python's rule for any __del__, not the calls' doing)
gc.collect()
gc.disable()
signal.signal(signal.SIGALRM, handler)
signal.setitimer(signal.ITIMER_REAL, 50e-6, 50e-6)
end = time.monotonic() + 0.4
while time.monotonic() < end and len(other) < 5:
    try:
        inside[0] = True
        op()
        inside[0] = False
    except raised:
        inside[0] = False
        caught += 1
    except Exception as exc:
        inside[0] = False
        other.append(f"{type(exc).__name__}: {exc} (cause {exc.__cause__!r})")
signal.setitimer(signal.ITIMER_REAL, 0, 0)
op()  # and the handles still work
stack.close()
print(json.dumps({"fired": fired[0], "caught": caught, "other": other}))
"""


@pytest.mark.skipif(
    sys.version_info < (3, 10),
    reason="Python 3.9 may run a handler between a with block's end and its __exit__, "
    "leaving any lock held (bpo-29988)",
)
@pytest.mark.parametrize("accel", ["C", "pure Python"])
@pytest.mark.parametrize("raised", ["OSError", "ValueError"])
@pytest.mark.parametrize(
    ("scheme", "options"),
    [
        ("mq", {"maxmsg": 4, "msgsize": 64}),
        ("sysv+mq", {}),
        ("fifo", {}),
        ("shm", {"capacity": 4096}),
        ("sysv+shm", {"capacity": 4096}),
        ("sem", {}),
        ("sysv+sem", {}),
    ],
)
def test_what_a_signal_handler_raises_reaches_the_caller_as_it_is(
    url: Url, scheme: str, options: dict[str, Any], raised: str, accel: str
) -> None:
    # A Python signal handler runs at the first bytecode after the C call its signal came
    # in, so what it raises seems to come from that call. An OSError or ValueError there
    # once came out mapped (TransportError, InvalidArgument), was swallowed, or left the
    # handle wedged. Signals every 50 us land everywhere in the calls (of a peer, which a
    # wedge cannot hang); each exception the handler raises must reach the caller as it
    # is, and the calls must go on working.
    target = url(scheme, **options)
    # (pure Python here too: py39-core, the env without the C parts, skips this test)
    env = dict(os.environ, OSIPC_NO_ACCEL="1") if accel == "pure Python" else None
    try:
        outcome = json.loads(peer(_SPRAY, target, raised, env=env, timeout=30).stdout)
    finally:
        osipc.unlink(target, missing_ok=True)
    if "skip" in outcome:
        pytest.skip("without the C part a ring's lock section is Python (see README.md)")
    assert not outcome["other"], outcome["other"]
    assert outcome["fired"] > 20, "too few signals landed to tell"
    missed = outcome["fired"] - outcome["caught"]
    assert not missed, f"{missed} of {outcome['fired']} were swallowed"
