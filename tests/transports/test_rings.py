"""The ring channels of shm:// and sysv+shm:// (one implementation, two backends):
exactly-once across processes, wrap-around, crash safety under SIGKILL, broadcast."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import mmap
import os
import pickle
import signal
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import sysv_ipc
from _helpers import NOBODY, SEND_DURING_SPIN, finish, need_root, peer, runtime_for, spawn

import osipc

Url = Callable[..., str]


@pytest.fixture(params=["shm", "sysv+shm"])
def scheme(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def ring(url: Url, scheme: str) -> Iterator[str]:
    target = url(scheme, capacity="64K")
    yield target
    osipc.unlink(target.split("?")[0], missing_ok=True)


# -- queue rings -------------------------------------------------------------------------


def test_messages_wrap_around_the_ring(url: Url, scheme: str) -> None:
    target = url(scheme, capacity="4096")
    with osipc.receiver(target) as rx, osipc.sender(target) as tx:
        for round_ in range(50):
            batch = [os.urandom(1 + (round_ * 97 + i * 31) % 1300) for i in range(3)]  # fits
            tx.send_many(batch, timeout=5)
            got = [rx.recv(timeout=5) for _ in batch]
            assert got == batch, f"round {round_}"
        big = os.urandom(tx.capabilities.max_message_size or 0)
        for _ in range(3):
            tx.send(big, timeout=5)
            buffer = bytearray(len(big))
            assert rx.recv_into(buffer, timeout=5) == len(big) and bytes(buffer) == big
    osipc.unlink(target)


def test_too_large_names_the_capacity(ring: str) -> None:
    with osipc.sender(ring) as tx:
        limit = tx.capabilities.max_message_size
        assert limit == 65536 - 8
        with pytest.raises(osipc.MessageTooLarge, match="capacity=65536") as info:
            tx.send(b"x" * (limit + 1))
        assert info.value.limit == limit


def test_a_full_ring_times_out_and_counts_what_went(url: Url, scheme: str) -> None:
    target = url(scheme, capacity="4096")
    with osipc.sender(target) as tx, osipc.receiver(target) as rx:
        started = time.monotonic()
        with pytest.raises(osipc.Timeout, match="full") as info:
            tx.send_many([b"x" * 1000] * 10, timeout=0.3)
        assert 0.29 <= time.monotonic() - started < 3
        assert info.value.sent == 4  # 4 x 1008 bytes fit in 4096
        assert len(rx.recv_many(10, timeout=1)) == 4
    osipc.unlink(target)


def test_recv_into_numpy_without_an_intermediate_copy(ring: str) -> None:
    numpy = pytest.importorskip("numpy")
    with osipc.sender(ring) as tx, osipc.receiver(ring) as rx:
        data = numpy.arange(1000, dtype=numpy.float64)
        tx.send(memoryview(data))
        out = numpy.zeros(2000, dtype=numpy.float64)
        assert rx.recv_into(out, timeout=5) == 8000
        assert (out[:1000] == data).all()


def test_spin_receives(url: Url, scheme: str) -> None:
    target = url(scheme, spin=200)
    with osipc.receiver(target) as rx, osipc.sender(target) as tx:
        timer = threading.Timer(0.05, lambda: tx.send(b"late"))
        timer.start()
        assert rx.recv(timeout=5) == b"late"
        timer.join()
    osipc.unlink(target)


@pytest.mark.parametrize("spin", [0, 300])
def test_close_ends_every_thread_waiting_in_recv(url: Url, scheme: str, spin: int) -> None:
    # A receive waits in one C call that keeps no waiting-call bookkeeping: close() from
    # another thread releases the mapping under it. Each waiter must wake and raise
    # Closed (never touch the released mapping: that would crash this process), again
    # and again, and the ring must stay usable.
    target = url(scheme, spin=spin)
    for round_ in range(10):
        rx = osipc.receiver(target)
        outcomes: list[object] = []

        def wait(timeout: float | None, rx: osipc.Receiver[bytes], into: list[object]) -> None:
            try:
                into.append(rx.recv(timeout=timeout))
            except Exception as exc:  # the outcome is the assertion
                into.append(exc)

        threads = [
            threading.Thread(target=wait, args=(timeout, rx, outcomes))
            for timeout in (None, 30, None, 30)
        ]
        for thread in threads:
            thread.start()
        time.sleep(0.05 + 0.01 * round_)
        started = time.monotonic()
        rx.close()
        for thread in threads:
            thread.join(5)
        assert not any(thread.is_alive() for thread in threads), f"round {round_}: left waiting"
        assert time.monotonic() - started < 1.0
        assert len(outcomes) == 4 and all(isinstance(o, osipc.Closed) for o in outcomes), outcomes
    with osipc.receiver(target) as rx, osipc.sender(target) as tx:
        tx.send(b"still fine", timeout=5)
        assert rx.recv(timeout=5) == b"still fine"
    osipc.unlink(target)


@pytest.mark.parametrize("spin", [0, 20_000])
@pytest.mark.parametrize("sender", ["another process", "another thread"])
def test_a_signal_handler_runs_while_a_recv_waits(
    url: Url, scheme: str, spin: int, sender: str
) -> None:
    # A signal need not interrupt the wait's sleep: it may come while the wait spins or
    # before the sleep begins, or go to another thread. Its handler must still run
    # within a slice, not when a message or the timeout comes (Ctrl-C on a receiver
    # that waits without a timeout would otherwise never get through).
    class Stop(OSError):  # (which no wait may take for its own)
        pass

    def handler(*_: object) -> None:
        raise Stop from KeyError("its own cause")

    target = url(scheme, spin=spin)
    idle = threading.Event()
    other = threading.Thread(target=idle.wait, args=(30,))  # a thread to signal
    other.start()
    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        with osipc.receiver(target) as rx:
            for trial in range(8):
                delay = 0.05 + trial * 0.0037  # lands at a different point of each round
                if sender == "another process":
                    kill = f"import os, time; time.sleep({delay}); os.kill({os.getpid()}, 10)"
                    signaller = spawn(kill)
                else:
                    signaller = threading.Timer(
                        delay, signal.pthread_kill, (other.ident, signal.SIGUSR1)
                    )
                    signaller.start()
                started = time.monotonic()
                with pytest.raises(Stop) as stopped:
                    rx.recv(timeout=5)
                assert isinstance(stopped.value.__cause__, KeyError)  # as it was raised
                waited = time.monotonic() - started
                if isinstance(signaller, threading.Timer):
                    signaller.join()
                else:
                    finish(signaller)
                assert waited < 1.5, f"trial {trial}: the handler ran after {waited:.2f} s"
    finally:
        signal.signal(signal.SIGUSR1, previous)
        idle.set()
        other.join()
    osipc.unlink(target)


def test_a_long_spin_is_not_cut_to_a_slice(url: Url, scheme: str) -> None:
    # spin= may be up to a second: the receive polls that long before it raises the data
    # flag and sleeps (then a sender pays no wake-up for what comes meanwhile).
    from osipc._ring import H_FLAG_DATA

    target = url(scheme, spin=500_000)
    try:
        with osipc.receiver(target) as rx, osipc.receiver(target) as watcher:
            if rx._accel is None:  # type: ignore[attr-defined]
                pytest.skip("the pure-Python receive raises its flag before it spins")
            flags: list[int] = []
            probe = threading.Timer(0.15, lambda: flags.append(watcher._h[H_FLAG_DATA]))
            probe.start()
            with pytest.raises(osipc.Timeout):
                rx.recv(timeout=0.3)
            probe.join()
            assert flags == [0], "the receive raised the data flag (slept) within its spin"
    finally:
        osipc.unlink(target)


def test_what_comes_during_the_spin_is_received_whole(url: Url, scheme: str) -> None:
    # A long spin= (0.5 s) so that each of another process's sends lands while the
    # receiver polls: an empty message is data, and an end-of-stream still ends.
    target = url(scheme, spin=500_000)
    with osipc.receiver(target) as rx:
        sender = spawn(SEND_DURING_SPIN, target)
        assert rx.recv(timeout=10) == b""
        assert rx.recv(timeout=10) == b"y" * 100
        with pytest.raises(osipc.EndOfStream):
            rx.recv(timeout=10)
        finish(sender)
    osipc.unlink(target)


def test_two_senders_two_receivers_exactly_once(ring: str) -> None:
    sender = """
        import os, sys, osipc
        with osipc.sender(sys.argv[1]) as tx:
            for i in range(2000):
                tx.send(b"%s-%d:" % (sys.argv[2].encode(), i) + b"." * (i * 37 % 3000), timeout=30)
    """
    receiver = """
        import sys, osipc
        with osipc.receiver(sys.argv[1]) as rx:
            got = [msg.split(b":")[0].decode() for msg in rx]
        print(" ".join(got))
    """
    # One of each side runs the pure-Python ring, the other the C part (where built):
    # both take the same locks and commit the same way, so they share a ring exactly once.
    pure = {**os.environ, "OSIPC_NO_ACCEL": "1"}
    receivers = [spawn(receiver, ring, env=env) for env in (pure, None)]
    senders = [spawn(sender, ring, name, env=env) for name, env in (("a", pure), ("b", None))]
    for proc in senders:
        finish(proc)
    with osipc.sender(ring) as tx:
        tx.end(timeout=5)
        tx.end(timeout=5)  # one end-of-stream per receiver
    got = [item for proc in receivers for item in finish(proc).split()]
    assert sorted(got) == sorted(f"{n}-{i}" for n in "ab" for i in range(2000))


def test_a_corrupt_record_size_is_broken_never_a_read_past_the_ring(ring: str) -> None:
    with osipc.sender(ring) as tx, osipc.receiver(ring) as rx:
        tx.send(b"x" * 16)
        backend = rx._backend  # type: ignore[attr-defined]
        struct.pack_into("@I", backend.mm, backend.data, 0x7FFFFFF0)  # a hostile size word
        for call in (lambda: rx.recv(timeout=0.5), lambda: rx.recv_many(2**70, timeout=0.5)):
            with pytest.raises(osipc.Broken, match="corrupt at position 0"):
                call()
        with pytest.raises(osipc.Broken, match="corrupt"):
            rx.recv_into(bytearray(64), timeout=0.5)


def test_frames_of_any_buffer_type_are_sent(ring: str) -> None:
    class Frame(bytearray):  # (a subclass may run Python code for its buffer: not in C)
        pass

    frames = [Frame(b"sub"), memoryview(b"view"), bytearray(b"array"), b"bytes"]
    with osipc.sender(ring) as tx, osipc.receiver(ring) as rx:
        for frame in frames:
            tx.send(frame)
        tx.send_many(frames)
        got = [rx.recv(timeout=1) for _ in range(2 * len(frames))]
    assert got == [bytes(frame) for frame in frames] * 2


def test_a_lock_released_while_a_waiter_checks_is_never_taken_over(url: Url, scheme: str) -> None:
    # The takeover rule (no live claimant, generation unchanged) once fired on a live
    # holder: it moved the generation, was preempted before its post, and cleared its claim
    # after it, while a waiter read the generation, failed its try and then scanned. Sleeps
    # stand in for the preemptions: the holder's post is slow, the waiter's failed tries
    # too.
    target = url(scheme, capacity="64K")
    osipc.sender(target).close()
    holder = spawn(
        """
        import sys, time, osipc
        from osipc._deadline import Deadline
        class SlowPost:
            def __init__(self, sem): self.sem = sem
            def release(self): time.sleep(0.1); self.sem.release()
        tx = osipc.sender(sys.argv[1])
        lock = tx._lock
        lock.acquire(Deadline(5))
        lock._sem = SlowPost(lock._sem)
        print("held", flush=True)
        time.sleep(0.2)
        lock.release()
        time.sleep(1)
        tx.close()
        """,
        target,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with osipc.sender(target) as tx:
        lock = tx._lock  # type: ignore[attr-defined]
        real_try, real_check = lock._try, lock._take_over_if_dead
        took_over: list[bool] = []  # per check: did it take the lock without its post?
        checking: list[bool] = []  # while a check runs: did its try get the lock?

        def slow_try(block: bool = False) -> bool:
            ok: bool = real_try(block)
            if checking:
                checking.append(ok)
                if not ok:
                    time.sleep(0.03)  # between the failed try and the scan of the claims
            return ok

        def check() -> bool:
            checking.append(False)
            try:
                result: bool = real_check()
                # A check whose own try got the lock (the post landed just before it) is
                # an ordinary acquisition, not a takeover.
                took_over.append(result and not any(checking))
            finally:
                checking.clear()
            return result

        lock._try, lock._take_over_if_dead = slow_try, check
        from osipc._deadline import Deadline

        lock.acquire(Deadline(3))
        try:
            assert took_over and not any(took_over), "took over from a live holder"
            assert not real_try(False), "the lock is held, yet anyone can take it"
        finally:
            lock.release()
    finish(holder)
    osipc.unlink(target)


def test_a_late_generation_store_never_makes_a_live_holder_look_dead(url: Url, scheme: str) -> None:
    # A release that moved the generation with `+= 1` after its post could be preempted
    # between the read and the write while the next holder released; its late store then
    # put back a value a waiter had read, and the waiter took the lock over from a live
    # holder. Events stand in for the preemptions: A's store waits, W's scan waits.
    from osipc._deadline import Deadline

    target = url(scheme, capacity="64K")
    a, b, w = osipc.sender(target), osipc.sender(target), osipc.sender(target)
    lock_a, lock_b, lock_w = a._lock, b._lock, w._lock  # type: ignore[attr-defined]
    gen = lock_a._gen
    a_storing, a_go, w_tried, w_go = (threading.Event() for _ in range(4))

    class LateStore:  # A's view of the header words: its generation store comes late
        def __init__(self, real: object) -> None:
            self.real = real

        def __getitem__(self, index: int) -> int:
            return self.real[index]  # type: ignore[index, no-any-return]

        def __setitem__(self, index: int, value: int) -> None:
            if index == gen:
                a_storing.set()
                a_go.wait(5)
            self.real[index] = value  # type: ignore[index]

    lock_a.acquire(Deadline(5))
    lock_a._words = LateStore(lock_a._words)
    releasing = threading.Thread(target=lock_a.release)
    releasing.start()
    assert a_storing.wait(5)  # A has posted; its generation store is late
    lock_b.acquire(Deadline(5))
    lock_b.release()  # B moves the generation
    lock_b.acquire(Deadline(5))  # and holds the lock again
    real_try = lock_w._try

    def slow_try(block: bool = False) -> bool:
        ok: bool = real_try(block)
        if not ok:
            w_tried.set()
            w_go.wait(5)
        return ok

    lock_w._try = slow_try
    took_over: list[bool] = []
    checking = threading.Thread(target=lambda: took_over.append(lock_w._take_over_if_dead()))
    checking.start()
    assert w_tried.wait(5)  # W read the generation, its try failed
    lock_b.release()  # B releases
    a_go.set()
    releasing.join(5)  # A's late store lands
    w_go.set()
    checking.join(5)
    anyone = real_try(False)
    if anyone:
        lock_b._sem.release()
    assert took_over == [False], "took the lock over from a live holder"
    lock_a._words = lock_a._words.real
    for handle in (a, b, w):
        handle.close()
    osipc.unlink(target)


def test_threads_of_mixed_processes_keep_the_lock_whole(url: Url, scheme: str) -> None:
    # Two producer and two consumer processes, one pure Python (OSIPC_NO_ACCEL=1), one
    # with the C part, three threads sharing each handle. A waiter once took a lock over
    # from a live holder that released it under its eyes (the generation moved before the
    # post, the claim went after it): two holders, then a semaphore stuck at 2.
    target = url(scheme, capacity="16K")
    producer = """
        import sys, threading, osipc
        tx = osipc.sender(sys.argv[1])
        def run(t):
            for i in range(0, 3000, 5):
                batch = [b"%s.%d.%d" % (sys.argv[2].encode(), t, i + j) for j in range(5)]
                if i % 15 == 0:
                    tx.send_many(batch, timeout=30)
                else:
                    for message in batch:
                        tx.send(message, timeout=30)
        threads = [threading.Thread(target=run, args=(t,)) for t in range(3)]
        for thread in threads: thread.start()
        for thread in threads: thread.join()
        tx.close()
    """
    consumer = """
        import hashlib, sys, threading, osipc
        rx = osipc.receiver(sys.argv[1])
        got = []
        def run():
            while True:
                try:
                    batch = rx.recv_many(4, timeout=30)
                except osipc.EndOfStream:
                    return
                got.extend(batch)
        threads = [threading.Thread(target=run) for _ in range(3)]
        for thread in threads: thread.start()
        for thread in threads: thread.join()
        rx.close()
        # a multiset fingerprint: a count and a sum of hashes (the whole list would fill
        # the stdout pipe while the test still sends end-of-stream markers)
        print(len(got), sum(int(hashlib.sha256(m).hexdigest()[:16], 16) for m in got))
    """
    osipc.sender(target).close()
    pure = {**os.environ, "OSIPC_NO_ACCEL": "1"}
    consumers = [spawn(consumer, target, env=env) for env in (pure, None)]
    producers = [spawn(producer, target, tag, env=env) for tag, env in (("P", pure), ("C", None))]
    for proc in producers:
        finish(proc, timeout=120)
    with osipc.sender(target) as tx:  # one end-of-stream per consumer thread, until all end
        deadline = time.monotonic() + 60
        while any(proc.poll() is None for proc in consumers) and time.monotonic() < deadline:
            tx.end(timeout=5)
            time.sleep(0.02)
    counts = [[int(n) for n in finish(proc, timeout=60).split()] for proc in consumers]
    want = [f"{tag}.{t}.{i}".encode() for tag in "PC" for t in range(3) for i in range(3000)]
    fingerprint = sum(int(hashlib.sha256(m).hexdigest()[:16], 16) for m in want)
    assert sum(count for count, _ in counts) == len(want), counts  # none lost, none twice
    assert sum(total for _, total in counts) == fingerprint
    osipc.unlink(target.split("?")[0])


def test_a_sender_killed_holding_the_lock_is_taken_over(ring: str) -> None:
    osipc.sender(ring).close()
    done = peer(
        """
        import os, signal, sys, osipc
        from osipc._deadline import Deadline
        tx = osipc.sender(sys.argv[1])
        tx._lock.acquire(Deadline(5))  # then die holding it, mid-send as it were
        os.kill(os.getpid(), signal.SIGKILL)
        """,
        ring,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL
    with osipc.sender(ring) as tx, osipc.receiver(ring) as rx:
        started = time.monotonic()
        tx.send(b"after", timeout=2)
        assert time.monotonic() - started < 1, "the dead holder's lock was recovered slowly"
        assert rx.recv(timeout=2) == b"after"


def test_a_receiver_killed_holding_the_lock_is_taken_over(ring: str) -> None:
    with osipc.sender(ring) as tx:
        tx.send(b"one")
        done = peer(
            """
            import os, signal, sys, osipc
            from osipc._deadline import Deadline
            rx = osipc.receiver(sys.argv[1])
            rx._lock.acquire(Deadline(5))
            os.kill(os.getpid(), signal.SIGKILL)
            """,
            ring,
            check=False,
        )
        assert done.returncode == -signal.SIGKILL
        with osipc.receiver(ring) as rx:
            # A reaped process's mapping (and with it its lease) can outlive it by a moment
            # when another process holds its mm (reading /proc/PID/stat, as `osipc ls` in a
            # parallel env does); until then the lock is rightly busy. Poll, never block.
            give_up = time.monotonic() + 5
            while True:
                try:
                    got = rx.recv(timeout=0)
                    break
                except osipc.Timeout:
                    assert time.monotonic() < give_up, "timeout=0 never recovered the dead holder"
                    time.sleep(0.01)
            assert got == b"one"


def test_a_process_killed_inside_the_admin_section_blocks_nobody(ring: str) -> None:
    # Takeover checks and slot claims run in the backend's admin section (a flock on
    # shm://, the ring's SysV semaphore with SEM_UNDO on sysv+shm://): the kernel ends it.
    osipc.sender(ring).close()
    done = peer(
        """
        import os, signal, sys, osipc
        tx = osipc.sender(sys.argv[1])
        tx._backend.admin().__enter__()
        os.kill(os.getpid(), signal.SIGKILL)
        """,
        ring,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL
    started = time.monotonic()
    with osipc.sender(ring) as tx, osipc.receiver(ring) as rx:  # each takes a slot in it
        tx.send(b"after", timeout=2)
        assert rx.recv(timeout=2) == b"after"
    assert time.monotonic() - started < 1, "the dead process's admin section outlived it"


@pytest.mark.slow
def test_killed_writers_and_readers_never_tear_or_wedge(url: Url, scheme: str) -> None:
    target = url(scheme, capacity="1M")
    writer = """
        import hashlib, os, sys, osipc
        with osipc.sender(sys.argv[1]) as tx:
            n = 0
            while True:
                body = os.urandom(20000 + (n * 7919) % 300000)
                tx.send(hashlib.sha256(body).digest() + body, timeout=30)
                n += 1
    """
    reader = """
        import hashlib, sys, osipc
        with osipc.receiver(sys.argv[1]) as rx:
            while True:
                msg = rx.recv(timeout=30)
                assert hashlib.sha256(msg[32:]).digest() == msg[:32], "torn"
    """

    def check(msg: bytes) -> None:
        assert hashlib.sha256(msg[32:]).digest() == msg[:32], "a torn message was visible"

    with osipc.receiver(target) as rx, osipc.sender(target) as tx:
        received = 0
        for round_ in range(30):
            victims = [spawn(writer, target) for _ in range(2)]
            if round_ % 3 == 0:
                victims.append(spawn(reader, target))
            rx.recv(timeout=30)  # writers are up and writing
            time.sleep(0.01 + round_ % 7 * 0.013)
            for proc in victims:
                proc.send_signal(signal.SIGKILL)
                proc.communicate()
                assert proc.returncode == -signal.SIGKILL, proc.returncode
            while True:
                try:
                    check(rx.recv(timeout=0.05))
                    received += 1
                except osipc.Timeout:
                    break
            started = time.monotonic()
            tx.send(b"probe", timeout=5)  # never wedged: a send and a recv get through
            assert rx.recv(timeout=5) == b"probe"
            assert time.monotonic() - started < 1
        assert received > 0
    osipc.unlink(target)


@contextlib.contextmanager
def _header_words(target: str, scheme: str) -> Iterator[memoryview]:
    """The ring's header as 8-byte words, mapped read-only by this (third) process."""
    name = target.split("://", 1)[1].split("?", maxsplit=1)[0]
    if scheme == "shm":
        fd = os.open(f"/dev/shm/{name}", os.O_RDONLY)
        with mmap.mmap(fd, 4096, prot=mmap.PROT_READ) as mapped:
            os.close(fd)
            with memoryview(mapped).cast("Q") as words:
                yield words
        return
    segment = sysv_ipc.SharedMemory(osipc.sysv_key(name), 0)
    try:
        header = (ctypes.c_uint64 * 512).from_address(segment.address)
        with memoryview(header).cast("B").cast("Q") as words:
            yield words
    finally:
        segment.detach()


def test_head_and_tail_never_go_back_while_others_commit(url: Url, scheme: str) -> None:
    # A reader outside the lock must never see a commit word step back, not even for a
    # moment: struct.pack_into zero-fills before it writes, which once let receivers see
    # an empty ring and a process killed at that instant leave the channel wedged.
    target = url(scheme, capacity="64K")
    peer_code = """
        import sys, time, osipc
        with osipc.sender(sys.argv[1]) as tx, osipc.receiver(sys.argv[1]) as rx:
            print("ready", flush=True)
            until = time.monotonic() + 1.5
            while time.monotonic() < until:
                tx.send_many([b"x" * 40] * 3)
                rx.recv_many(3)
                tx.send(b"y")
                rx.recv()
    """
    osipc.sender(target).close()  # create it, so it can be mapped before the peer runs
    proc = spawn(peer_code, target)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    try:
        with _header_words(target, scheme) as words:
            head = tail = 0
            while proc.poll() is None:
                for _ in range(10000):
                    now_head, now_tail = words[8], words[16]
                    assert now_head >= head and now_tail >= tail, (head, now_head, tail, now_tail)
                    head, tail = now_head, now_tail
            assert head > 0 and tail == head, "the peer committed nothing?"
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    finish(proc)
    osipc.unlink(target)


def test_threads_sharing_handles_never_take_the_lock_from_each_other(url: Url, scheme: str) -> None:
    # The claims that make a dead holder's lock recoverable name a handle, not a thread:
    # a thread polling with timeout=0 once "took over" the lock another thread of its
    # own handle held, and both consumed the same message (osipc.aio polls like that).
    target = url(scheme, capacity="64K")
    count = 20000
    got: list[int] = []
    with osipc.receiver(target) as rx, osipc.sender(target) as tx:

        def send(first: int, poll: bool) -> None:
            for n in range(first, count, 2):
                while True:
                    try:
                        tx.send(b"%d" % n, timeout=0 if poll else 5)
                        break
                    except osipc.Timeout:
                        assert poll, "a blocking send timed out"
                        time.sleep(0)  # let the other threads have the GIL

        def receive(poll: bool) -> None:
            while True:
                try:
                    message = rx.recv(timeout=0 if poll else 0.05)
                except osipc.Timeout:
                    if len(got) >= count:
                        return
                    time.sleep(0)
                    continue
                got.append(int(message))  # list.append is atomic

        threads = [
            threading.Thread(target=send, args=(0, True)),
            threading.Thread(target=send, args=(1, False)),
            threading.Thread(target=receive, args=(True,)),
            threading.Thread(target=receive, args=(False,)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert len(got) == count and sorted(got) == list(range(count)), (len(got), len(set(got)))
    osipc.unlink(target)


def test_a_ring_of_another_format_is_refused_with_the_way_out(ring: str) -> None:
    with osipc.sender(ring) as tx:
        halves = tx._backend.halves  # type: ignore[attr-defined]
        halves[2] = 1  # the format version (sysv+shm's locks were SysV semaphores in 1)
        try:
            with pytest.raises(osipc.TransportError, match=r"version 1.*osipc rm"):
                osipc.receiver(ring)
        finally:
            halves[2] = 2


def test_a_queue_ring_is_not_a_broadcast_ring(ring: str) -> None:
    osipc.sender(ring).close()
    with pytest.raises(osipc.InvalidArgument, match=r"queue ring.*sender/receiver"):
        osipc.subscriber(ring)


# -- broadcast ---------------------------------------------------------------------------


def test_every_subscriber_sees_every_message(url: Url, scheme: str) -> None:
    target = url(scheme, capacity="16K")
    subscriber = """
        import sys, osipc
        with osipc.subscriber(sys.argv[1]) as rx:
            print("ready", flush=True)
            got = [int(m.split(b":")[0]) for m in rx]
        print(got == list(range(500)), len(got))
    """
    with osipc.publisher(target) as pub:
        subs = [spawn(subscriber, target) for _ in range(2)]
        for proc in subs:
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        for i in range(500):  # many more bytes than the ring: the slow one holds it back
            pub.send(b"%d:" % i + b"x" * (i % 200), timeout=30)
        pub.end(timeout=30)
    assert [finish(proc) for proc in subs] == ["True 500\n", "True 500\n"]
    osipc.unlink(target)


def test_a_late_subscriber_sees_only_what_follows(url: Url, scheme: str) -> None:
    target = url(scheme)
    with osipc.publisher(target) as pub:
        pub.send(b"before")
        with osipc.subscriber(target) as sub:
            pub.send(b"after")
            assert sub.recv(timeout=1) == b"after"
            with pytest.raises(osipc.Timeout):
                sub.recv(timeout=0)
    osipc.unlink(target)


def test_overflow_block_waits_for_the_slowest_and_ignores_the_dead(url: Url, scheme: str) -> None:
    target = url(scheme, capacity="4096")
    with osipc.publisher(target) as pub, osipc.subscriber(target) as sub:
        pub.send(b"x" * 3000, timeout=1)
        with pytest.raises(osipc.Timeout, match="slowest subscriber"):
            pub.send(b"y" * 3000, timeout=0.2)
        assert len(sub.recv(timeout=1)) == 3000
        pub.send(b"y" * 3000, timeout=1)
        done = peer(
            """
            import os, signal, sys, osipc
            sub = osipc.subscriber(sys.argv[1])
            print("joined", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
            """,
            target,
            check=False,
        )
        assert done.stdout == "joined\n"
        assert len(sub.recv(timeout=1)) == 3000
        # The dead one joined at the head and never read: after one more message (which
        # fits either way) it is a ring behind, and must not block the next.
        for payload in (b"z" * 3000, b"w" * 3000):
            pub.send(payload, timeout=1)
            assert sub.recv(timeout=1) == payload
    osipc.unlink(target)


def test_info_on_a_broadcast_ring_counts_what_the_slowest_subscriber_has_left(
    url: Url, scheme: str
) -> None:
    target = url(scheme, capacity="64K")
    base = target.split("?")[0]
    with osipc.publisher(target) as pub, osipc.subscriber(target) as fast:
        slow = osipc.subscriber(target)
        for _ in range(5):
            pub.send(b"x" * 100)  # a 16-byte header and the payload, in 16-byte steps: 128
        assert [len(fast.recv(timeout=1)) for _ in range(5)] == [100] * 5
        assert slow.recv(timeout=1) and slow.recv(timeout=1)
        info = osipc.info(base)
        assert (info.kind.endswith("broadcast"), info.depth, info.used_bytes) == (True, 3, 384)
        slow.close()  # only live subscribers count
        info = osipc.info(base)
        assert (info.depth, info.used_bytes) == (0, 0)
    osipc.unlink(base)


def test_overflow_error_reports_how_many_were_missed(url: Url, scheme: str) -> None:
    target = url(scheme, capacity="4096", overflow="error")
    with osipc.publisher(target) as pub, osipc.subscriber(target) as sub:
        for i in range(5):
            pub.send(b"%d" % i)
        assert sub.recv(timeout=1) == b"0"
        for i in range(5, 100):
            pub.send(b"%d" % i + b"." * 200, timeout=0)  # never waits
        with pytest.raises(osipc.Overrun) as info:
            sub.recv(timeout=1)
        assert info.value.missed == 99, "messages 1..99 went past it"
        assert "missed 99" in str(info.value)
        pub.send(b"next")
        assert sub.recv(timeout=1) == b"next"
        assert pickle.loads(pickle.dumps(info.value)).missed == 99
    osipc.unlink(target)


def test_an_unprivileged_user_cannot_attach_to_a_private_ring(ring: str) -> None:
    need_root("to run a peer as nobody")
    osipc.sender(ring).close()  # mode 0600, root's
    with runtime_for(NOBODY) as env:
        done = peer(
            """
            import sys, osipc
            try:
                osipc.receiver(sys.argv[1], trust_existing=True)
            except osipc.OsipcError as exc:
                print(type(exc).__name__, exc.errno)
            """,
            ring,
            user=NOBODY,
            env=env,
        )
    assert done.stdout.split() == ["PermissionDenied", str(errno.EACCES)]
