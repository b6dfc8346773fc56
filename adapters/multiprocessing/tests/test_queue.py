from __future__ import annotations

import hashlib
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

import osipc_mp
import pytest
from _helpers import cli, finish, peer, spawn

import osipc


@pytest.fixture
def q(name: str) -> Iterator[osipc_mp.Queue]:
    opened = osipc_mp.Queue(name, maxsize=2)
    yield opened
    opened.close()


def test_empty_and_full_like_the_stdlib(q: osipc_mp.Queue) -> None:
    assert q.empty() and not q.full() and q.qsize() == 0
    with pytest.raises(queue.Empty):
        q.get_nowait()
    q.put_nowait("a")
    q.put("b", block=False)
    assert q.full() and q.qsize() == 2 and not q.empty()
    with pytest.raises(queue.Full):
        q.put_nowait("c")
    with pytest.raises(queue.Full):
        q.put("c", block=False, timeout=5)  # block=False ignores the timeout
    assert [q.get_nowait(), q.get(block=False, timeout=5)] == ["a", "b"]
    with pytest.raises(queue.Empty):
        q.get(block=False, timeout=5)


def test_timeouts_wait_then_raise(q: osipc_mp.Queue) -> None:
    started = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.1)
    assert 0.09 <= time.monotonic() - started < 2
    q.put(1)
    q.put(2)
    started = time.monotonic()
    with pytest.raises(queue.Full):
        q.put(3, timeout=0.1)
    assert 0.09 <= time.monotonic() - started < 2
    with pytest.raises(queue.Full):
        q.put(3, timeout=0)  # block=True, timeout=0: one look, as queue.Queue
    with pytest.raises(ValueError, match="non-negative"):
        q.put(3, timeout=-1)
    with pytest.raises(ValueError, match="non-negative"):
        q.get(timeout=-0.5)
    assert q.qsize() == 2  # a refused put took no place


def test_maxsize_is_the_creators_and_holds_across_processes(name: str) -> None:
    out = peer(
        """
        import queue, sys
        from osipc_mp import Queue
        q = Queue(sys.argv[1], maxsize=3)
        for n in range(3):
            q.put(n, timeout=1)
        try:
            q.put(3, timeout=0.05)
        except queue.Full:
            print("full")
        """,
        name,
        timeout=10,
    ).stdout
    assert out == "full\n"
    q = osipc_mp.Queue(name)  # maxsize=0: take the queue as it is
    try:
        assert q.maxsize == 3 and q.full()
        with pytest.raises(osipc.InvalidArgument, match="maxsize=3, not 5"):
            osipc_mp.Queue(name, maxsize=5)
        # a blocked put in another process goes through as soon as there is room
        putter = spawn(
            """
            import sys
            from osipc_mp import Queue
            q = Queue(sys.argv[1])
            print("putting", flush=True)
            q.put("late", timeout=10)
            """,
            name,
        )
        assert putter.stdout is not None
        assert putter.stdout.readline() == "putting\n"
        time.sleep(0.3)
        assert q.qsize() == 3  # it is still waiting
        assert q.get(timeout=1) == 0
        finish(putter, timeout=10)
        assert [q.get(timeout=1) for _ in range(3)] == [1, 2, "late"]
    finally:
        q.close()


def test_unbounded_queue_holds_more_than_any_slot_count(name: str) -> None:
    with osipc_mp.Queue(name) as q:
        for n in range(1000):
            q.put_nowait(n)
        assert q.qsize() == 1000 and not q.full()
        assert [q.get_nowait() for _ in range(1000)] == list(range(1000))


def test_any_picklable_object_round_trips(name: str) -> None:
    items = [None, 0, 1.5, "text", b"\x00bytes", ("t", 1), {"k": [1, {2}]}, ValueError("x")]
    with osipc_mp.Queue(name) as q:
        for item in items:
            q.put(item)
        got = [q.get(timeout=1) for _ in items]
    assert got[:-1] == items[:-1]
    assert isinstance(got[-1], ValueError) and got[-1].args == ("x",)


def test_objects_larger_than_the_ring_travel_whole(name: str) -> None:
    # The stdlib has no size limit. One that fits the ring (4 MiB by default) is queued at
    # once; a larger one goes in chunks while a getter takes it.
    with osipc_mp.Queue(name) as q:
        mib = b"\x01" * (1 << 20)
        q.put(mib)
        q.put({"two": b"\x02" * (2 << 20)})
        assert q.qsize() == 2
        assert q.get(timeout=5) == mib
        assert q.get(timeout=5) == {"two": b"\x02" * (2 << 20)}
        getter = spawn(
            """
            import hashlib, sys
            from osipc_mp import Queue
            big = Queue(sys.argv[1]).get(timeout=30)
            print(len(big), hashlib.sha256(big).hexdigest())
            """,
            name,
        )
        huge = bytes(range(256)) * (40 << 12)  # 10 MiB: larger than the ring
        q.put(huge, timeout=30)
        assert finish(getter, timeout=30) == f"{len(huge)} {hashlib.sha256(huge).hexdigest()}\n"


def test_a_put_of_chunks_that_times_out_leaves_nothing_half(name: str) -> None:
    with osipc_mp.Queue(name, capacity=1 << 16) as q:
        with pytest.raises(queue.Full):
            q.put(b"x" * 300_000, timeout=0.2)  # the first chunk went; nobody took it
        assert q.qsize() == 0
        got: list[object] = []
        getter = threading.Thread(target=lambda: got.append(q.get(timeout=10)))
        getter.start()
        q.put("whole", timeout=10)  # room once the getter has dropped the cut chunk
        getter.join(10)
        assert got == ["whole"]  # the cut run was dropped, not delivered
        with pytest.raises(queue.Empty):
            q.get_nowait()


BIG_PUTTER = """
    import sys
    from osipc_mp import Queue
    q = Queue(sys.argv[1], capacity=1 << 16)
    print("putting", flush=True)
    q.put(b"z" * (1 << 20))          # 16 chunks through a 64 KiB ring: it waits after 4
    """


def kill_mid_put(name: str) -> None:
    """Run BIG_PUTTER and SIGKILL it once the ring is full of the head of its run."""
    putter = spawn(BIG_PUTTER, name)
    assert putter.stdout is not None
    assert putter.stdout.readline() == "putting\n"
    deadline = time.monotonic() + 10
    while (osipc.info(f"shm://{name}").used_bytes or 0) < 60_000:  # it waits for room now
        assert time.monotonic() < deadline, "the putter never filled the ring"
        time.sleep(0.05)
    putter.kill()
    putter.communicate(timeout=10)


def test_a_run_whose_only_putter_was_killed_is_dropped_by_the_getter(name: str) -> None:
    # No putter follows the killed one: the getter takes the head of the run, finds the
    # ring empty and the put lock free, and must drop what it has, not deliver it.
    with osipc_mp.Queue(name, capacity=1 << 16) as q:
        kill_mid_put(name)
        assert q.qsize() == 0  # a run cut short is no message
        with pytest.raises(queue.Empty):
            q.get(timeout=1)
        assert (osipc.info(q.url).depth or 0) == 0  # it took the chunks out of the ring
        q.put("after")
        assert q.get(timeout=1) == "after"
        assert q.qsize() == 0  # the next putter did not count the cut run as a message


def test_a_killed_putters_chunks_never_wedge_the_next_put(name: str) -> None:
    # The ring is full of the head of a dead putter's run and nothing else: the queue is
    # empty (qsize 0, not full), so the next put must go in at once, with no getter.
    kill_mid_put(name)
    with osipc_mp.Queue(name, capacity=1 << 16) as q:
        assert q.qsize() == 0 and not q.full()
        peer(
            "import sys, osipc_mp; osipc_mp.Queue(sys.argv[1]).put('small', timeout=2)",
            name,
            timeout=20,
        )
        assert q.qsize() == 1
        assert q.get(timeout=1) == "small"
        with pytest.raises(queue.Empty):
            q.get(timeout=0.1)
        assert q.qsize() == 0
        assert (osipc.info(q.url).depth or 0) == 0  # nothing of the dead run is left


def test_unpicklable_object_is_an_error_at_put_and_takes_no_place(q: osipc_mp.Queue) -> None:
    with pytest.raises(osipc.EncodeError, match="cannot pickle"):
        q.put(lambda: None)
    q.put(1)
    q.put(2)  # both places are still free
    assert q.qsize() == 2


def test_osipc_pickle_receivers_read_the_queue(name: str) -> None:
    with osipc_mp.Queue(name) as q:
        q.put({"n": 1})
        with osipc.receiver(f"shm://{name}", codec="pickle") as rx:
            assert rx.recv(timeout=1) == {"n": 1}


def test_mq_transport_bounds_by_the_kernel(name: str) -> None:
    with osipc_mp.Queue(name, maxsize=2, transport="mq", msgsize=512) as q:
        assert q.url == f"mq://{name}" and q.maxsize == 2
        q.put("a")
        q.put("b")
        assert q.full() and q.qsize() == 2
        with pytest.raises(queue.Full):
            q.put("c", timeout=0.05)
        assert q.get_nowait() == "a"
        with pytest.raises(osipc.MessageTooLarge):
            q.put(b"x" * 600)  # there is room, but the pickle is over msgsize
        assert q.get(timeout=1) == "b"
        with pytest.raises(queue.Empty):
            q.get(timeout=0.05)
        with pytest.raises(osipc.InvalidArgument, match="maxsize=2, not 3"):
            osipc_mp.Queue(name, maxsize=3, transport="mq")


def test_mq_maxsize_beyond_the_kernel_limit_names_it(name: str) -> None:
    with pytest.raises(osipc.InvalidArgument, match="msg_max"):
        osipc_mp.Queue(name, maxsize=11, transport="mq", msgsize=512)
    with osipc_mp.Queue(name, maxsize=2, transport="mq", msgsize=512) as q:
        assert q.maxsize == 2  # the failed creation left nothing that decides for it


def test_every_process_must_use_the_same_transport(name: str) -> None:
    mq = osipc_mp.Queue(name, maxsize=1, transport="mq", msgsize=128)
    try:
        with pytest.raises(osipc.InvalidArgument, match=r"transport='mq', not .*'shm'"):
            osipc_mp.Queue(name)
    finally:
        mq.close()
    other = name + "s"
    try:
        shm = osipc_mp.Queue(other)
        with pytest.raises(osipc.InvalidArgument, match=r"transport='shm', not .*'mq'"):
            osipc_mp.Queue(other, transport="mq", msgsize=128)
        shm.close()
    finally:
        osipc_mp.unlink(other)


def test_osipc_gc_keeps_what_an_open_bounded_queue_uses(name: str) -> None:
    # The creator is gone and this process has the queue open: nothing of it is stale.
    peer("import sys, osipc_mp; osipc_mp.Queue(sys.argv[1], maxsize=2)", name, timeout=10)
    with osipc_mp.Queue(name) as q:
        assert q.maxsize == 2
        done = cli("gc")
        assert done.returncode == 0, done.stderr
        assert name not in done.stdout, done.stdout  # it removed none of the queue's objects
        q.put(1)
        q.put(2)
        with pytest.raises(queue.Full):
            q.put_nowait(3)
        out = peer(
            "import sys, osipc_mp; print(osipc_mp.Queue(sys.argv[1]).maxsize)", name, timeout=10
        ).stdout
        assert out == "2\n"  # a new process finds the bound, too
    done = cli("gc")  # nobody has it open now: gc removes what holds no messages
    assert done.returncode == 0, done.stderr
    with osipc_mp.Queue(name) as q:  # the ring it kept is counted when the queue is remade
        assert q.qsize() == 2
        assert [q.get(timeout=1), q.get(timeout=1)] == [1, 2]


def test_a_bounded_queue_keeps_its_bound_when_gc_removes_its_state(name: str) -> None:
    # Everyone exited with messages waiting: osipc gc keeps the ring (it holds messages)
    # but removes the state block and the locks. The bound must come back with the queue.
    fill = """
        import sys
        from osipc_mp import Queue
        q = Queue(sys.argv[1], maxsize=int(sys.argv[2]))
        q.put("one")
        q.put("two")
        """
    peer(fill, name, "2", timeout=10)
    done = cli("gc")
    assert done.returncode == 0, done.stderr
    assert f"kept shm://{name}:" in done.stdout, done.stdout
    assert f"removed shm://{name}--state:" in done.stdout, done.stdout  # what this is about
    out = peer(
        """
        import queue, sys
        from osipc_mp import Queue
        q = Queue(sys.argv[1])           # maxsize=0: take the queue as it is
        print(q.maxsize, q.qsize(), q.full())
        try:
            q.put_nowait("three")
        except queue.Full:
            print("full")
        print(q.get(timeout=1), q.get(timeout=1))
        """,
        name,
        timeout=10,
    ).stdout
    assert out == "2 2 True\nfull\none two\n"
    with pytest.raises(osipc.InvalidArgument, match="maxsize=2, not 3"):
        osipc_mp.Queue(name, maxsize=3)
    peer(fill, name, "2", timeout=10)  # and the next run, as if nothing had happened
    assert cli("gc").returncode == 0
    with osipc_mp.Queue(name) as q:
        assert q.maxsize == 2 and q.full()


def test_a_queue_remade_after_gc_holds_exactly_its_whole_messages(name: str) -> None:
    # A putter killed half-way through a message of chunks leaves its first chunk in the
    # ring (it fills it); gc then removes the state, and the flag that said so, but
    # keeps the ring. The queue made again from the ring must hold nothing, not a
    # message that fills it.
    putter = spawn(
        """
        import sys
        from osipc_mp import Queue
        q = Queue(sys.argv[1], maxsize=2, capacity=1 << 16)
        print("big", flush=True)
        q.put(b"z" * (1 << 20))       # fills the ring, then waits for a getter forever
        """,
        name,
    )
    assert putter.stdout is not None
    assert putter.stdout.readline() == "big\n"
    deadline = time.monotonic() + 10
    while not osipc.info(f"shm://{name}").depth and time.monotonic() < deadline:
        time.sleep(0.01)
    putter.kill()
    putter.communicate(timeout=10)

    def gc_keeps_only_the_ring() -> None:
        done = cli("gc")
        assert done.returncode == 0, done.stderr
        assert f"kept shm://{name}:" in done.stdout, done.stdout
        assert f"removed shm://{name}--state:" in done.stdout, done.stdout

    gc_keeps_only_the_ring()
    out = peer(
        """
        import queue, sys, osipc
        from osipc_mp import Queue
        q = Queue(sys.argv[1])
        print(q.maxsize, q.qsize())
        q.put_nowait("first")
        q.put_nowait("second")
        try:
            q.put_nowait("one too many")
        except queue.Full:
            print("full")
        print(q.get_nowait())
        osipc.sender(f"shm://{sys.argv[1]}").end()  # an osipc end() waits in the ring too
        """,
        name,
        timeout=10,
    ).stdout
    assert out == "2 0\nfull\nfirst\n"
    gc_keeps_only_the_ring()  # the end() stays, in its place
    with osipc_mp.Queue(name) as q:
        assert q.qsize() == 1
        assert q.get_nowait() == "second"
        with pytest.raises(osipc.EndOfStream):
            q.get_nowait()
        assert q.empty()
        assert osipc.info(f"shm://{name}").depth == 0


def test_killed_getters_and_putters_never_cost_a_place(
    name: str,
    kill: Callable[[subprocess.Popen[str], float], str],
    rounds: Callable[[int, int], int],
) -> None:
    # A putter keeps the bounded queue full while getters are SIGKILLed at random
    # instants in the middle of their work (and now and then the putter): afterwards the
    # queue must hold exactly maxsize again and refuse the next.
    maxsize = 4
    getter = """
        import sys
        from osipc_mp import Queue
        q = Queue(sys.argv[1])
        print("ready", flush=True)
        while True:
            q.get()
        """
    putter = """
        import sys
        from osipc_mp import Queue
        q = Queue(sys.argv[1])
        print("ready", flush=True)
        n = 0
        while True:
            q.put(n)
            n += 1
        """
    osipc_mp.Queue(name, maxsize=maxsize).close()
    feeding = spawn(putter, name)
    try:
        for turn in range(rounds(12, 60)):
            proc = spawn(getter, name)
            assert proc.stdout is not None
            assert proc.stdout.readline() == "ready\n"
            kill(proc, 0.03)
            if turn % 4 == 3:
                kill(feeding, 0.01)
                feeding = spawn(putter, name)
    finally:
        feeding.kill()
        feeding.communicate()
    with osipc_mp.Queue(name) as q:
        while True:  # drain what the putter left
            try:
                q.get(timeout=0.5)
            except queue.Empty:
                break
        assert q.qsize() == 0
        for n in range(maxsize):
            q.put_nowait(n)
        assert q.full()
        with pytest.raises(queue.Full):
            q.put_nowait("one too many")
        assert [q.get_nowait() for _ in range(maxsize)] == list(range(maxsize))


def test_a_bounded_queue_is_not_wedged_by_a_getter_killed_after_taking(name: str) -> None:
    # A getter killed after it took the message but before it counted it: the queue looks
    # full (1 of 1) but is empty. A put that waits gets the place once any getter looks.
    with osipc_mp.Queue(name, maxsize=1) as q:
        q.put("taken by the victim")
        peer(
            """
            import os, signal, sys
            from osipc_mp import Queue
            q = Queue(sys.argv[1])
            from osipc_mp._queue import W_READING
            words = q._core.words   # the test reaches in to die at the worst instant
            q._core.get_lock.acquire()
            words[W_READING] = 1                       # as get() does under its lock
            q._core.rx.recv(timeout=5)                 # took the message, did not count it
            os.kill(os.getpid(), signal.SIGKILL)
            """,
            name,
            timeout=10,
            check=False,
        )
        assert q.qsize() == 1  # the counters say full
        q.put("fits: the ring itself shows the place is free", timeout=5)
        assert q.get(timeout=5) == "fits: the ring itself shows the place is free"
        q.put_nowait("and the count is exact again")
        with pytest.raises(queue.Full):
            q.put_nowait("over")


def test_a_putter_killed_around_its_send_never_costs_a_place(name: str) -> None:
    # The instants a random kill rarely hits: after announcing a put but before sending,
    # and after sending but before counting. Neither may cost a place or add one.
    victim = """
        import os, pickle, signal, sys
        from osipc_mp import Queue
        from osipc_mp._queue import W_PENDING
        q = Queue(sys.argv[1])
        core = q._core                      # the test reaches in to die at these instants
        core.put_lock.acquire()
        core.words[W_PENDING] = 1           # as put() does under its lock
        if sys.argv[2] == "send":
            core.tx.send(pickle.dumps("sent"))
        os.kill(os.getpid(), signal.SIGKILL)
        """
    with osipc_mp.Queue(name, maxsize=1) as q:
        peer(victim, name, "none", timeout=10, check=False)
        q.put_nowait("fits: nothing was sent")
        assert q.get_nowait() == "fits: nothing was sent"
        peer(victim, name, "send", timeout=10, check=False)
        with pytest.raises(queue.Full):
            q.put_nowait("over: the victim's message is there")
        assert q.get_nowait() == "sent"
        q.put_nowait("fits again")
        with pytest.raises(queue.Full):
            q.put_nowait("over")
        assert q.get_nowait() == "fits again"


def test_a_killed_putter_never_leaves_half_a_message(
    name: str,
    kill: Callable[[subprocess.Popen[str], float], str],
    rounds: Callable[[int, int], int],
) -> None:
    # Messages of several chunks (300 kB through a 64 kB ring) while this process drains
    # them: a kill lands mid-run almost always. Every message delivered must be whole.
    putter = """
        import sys
        from osipc_mp import Queue
        q = Queue(sys.argv[1], capacity=1 << 16)
        print("ready", flush=True)
        n = int(sys.argv[2])
        while True:
            print("put", n, flush=True)
            q.put((n, bytes([n % 251]) * 300_000))
            n += 1
        """
    q = osipc_mp.Queue(name, capacity=1 << 16)
    got: list[int] = []
    bad: list[str] = []
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set():
            try:
                n, data = q.get(timeout=0.1)
            except queue.Empty:
                continue
            if n >= 0 and data != bytes([n % 251]) * 300_000:
                bad.append(f"message {n} is not whole ({len(data)} bytes)")
            got.append(n)

    thread = threading.Thread(target=drain)
    thread.start()
    started: list[int] = []
    try:
        base = 0
        for _ in range(rounds(6, 30)):
            proc = spawn(putter, name, str(base))
            assert proc.stdout is not None
            assert proc.stdout.readline() == "ready\n"
            out = kill(proc, 0.15)
            started += [int(line.split()[1]) for line in out.splitlines() if line]
            base += 1000
        q.put((-1, b""))  # after every putter: it must still work
        deadline = time.monotonic() + 10
        while -1 not in got and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(10)
        q.close()
    assert not bad
    assert -1 in got
    cut = [n for n in started if n not in got]
    assert cut, "no kill landed in the middle of a message: the test proved nothing"
    assert len(got) == len(set(got))  # nothing twice


def test_closed_queue_refuses_use(name: str) -> None:
    q = osipc_mp.Queue(name)
    q.close()
    q.close()
    with pytest.raises(osipc.Closed):
        q.put(1)
    with pytest.raises(ValueError):  # osipc.Closed is a ValueError, as the stdlib's error
        q.get()


def test_forked_child_reopens_the_queue(name: str) -> None:
    out = peer(
        """
        import os, sys
        from osipc_mp import Queue
        q = Queue(sys.argv[1], maxsize=1)
        pid = os.fork()
        if pid == 0:
            q.put("from the child")
            os._exit(0)
        os.waitpid(pid, 0)
        print(q.get(timeout=5))
        """,
        name,
        timeout=10,
    ).stdout
    assert out == "from the child\n"


def test_bad_arguments_are_typed_errors(name: str) -> None:
    with pytest.raises(TypeError):
        osipc_mp.Queue(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        osipc_mp.Queue(name, maxsize="3")  # type: ignore[arg-type]
    with pytest.raises(osipc.InvalidArgument, match="transport"):
        osipc_mp.Queue(name, transport="fifo")
    with pytest.raises(osipc.InvalidURL):
        osipc_mp.Queue("a/b")
    with pytest.raises(osipc.InvalidURL, match="1-190"):
        osipc_mp.Queue("x" * 191)
    with pytest.raises(osipc.InvalidURL, match="'--'"):
        osipc_mp.Queue(name + "--a")  # the suffixes of its companions: never a user's name
    with pytest.raises(osipc.InvalidArgument, match="create="):
        osipc_mp.Queue(name, create=False)
    with pytest.raises(osipc.InvalidURL):
        osipc_mp.Queue(name, colour="blue")
    with osipc_mp.Queue(name) as q, pytest.raises(TypeError):
        q.get(timeout="soon")  # type: ignore[arg-type]
