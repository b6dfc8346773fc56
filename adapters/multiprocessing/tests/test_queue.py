from __future__ import annotations

import queue
import signal
import time
from collections.abc import Iterator

import osipc_mp
import pytest
from _helpers import finish, peer, spawn

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
    peer(
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
        q.close()
        """,
        name,
        timeout=10,
    )
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
            q.put("late", timeout=10)
            q.close()
            """,
            name,
        )
        time.sleep(0.3)
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


def test_a_killed_putter_leaves_no_half_message(name: str) -> None:
    putter = spawn(
        """
        import sys
        from osipc_mp import Queue
        q = Queue(sys.argv[1], capacity=1 << 20)
        print("ready", flush=True)
        while True:
            q.put(b"x" * 50_000)
        """,
        name,
    )
    assert putter.stdout is not None
    assert putter.stdout.readline() == "ready\n"
    time.sleep(0.1)
    putter.send_signal(signal.SIGKILL)
    putter.communicate(timeout=10)
    with osipc_mp.Queue(name) as q:
        while True:
            try:
                assert q.get(timeout=0.05) == b"x" * 50_000
            except queue.Empty:
                break
        q.put("still works")
        assert q.get(timeout=1) == "still works"


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
        q = Queue(sys.argv[1])
        pid = os.fork()
        if pid == 0:
            q.put("from the child")
            os._exit(0)
        os.waitpid(pid, 0)
        print(q.get(timeout=5))
        q.close()
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
    with pytest.raises(osipc.InvalidURL):
        osipc_mp.Queue(name, colour="blue")
    with osipc_mp.Queue(name) as q, pytest.raises(TypeError):
        q.get(timeout="soon")  # type: ignore[arg-type]
