from __future__ import annotations

import gc
import os
import subprocess
import sys
import warnings
from collections.abc import Callable

import osipc_mp
import pytest
from _helpers import peer

import osipc


def in_dev_shm(name: str) -> list[str]:
    return sorted(entry for entry in os.listdir("/dev/shm") if name in entry)


def test_each_kind_makes_the_objects_its_docs_name(names: Callable[[], str]) -> None:
    queue_name, bounded_name, pipe_name, value_name = names(), names(), names(), names()
    queue = osipc_mp.Queue(queue_name)
    bounded = osipc_mp.Queue(bounded_name, maxsize=1)
    pipe = osipc_mp.Pipe(pipe_name)
    a, b = pipe.end("a"), pipe.end("b")
    value = osipc_mp.Value(value_name, "i", 5)
    try:
        ring = [queue_name, f"sem.{queue_name}:rx", f"sem.{queue_name}:tx"]
        state = [f"{queue_name}--state", f"sem.{queue_name}--state"]
        locks = [f"sem.{queue_name}--get", f"sem.{queue_name}--put"]
        assert in_dev_shm(queue_name) == sorted(ring + state + locks)
        assert f"sem.{bounded_name}--space" in in_dev_shm(bounded_name)
        channels = [f"{pipe_name}--{end}" for end in "ab"]
        channels += [f"sem.{pipe_name}--{end}:{role}" for end in "ab" for role in ("rx", "tx")]
        ends = [f"sem.{pipe_name}--a", f"sem.{pipe_name}--b"]
        state = [f"{pipe_name}--state", f"sem.{pipe_name}--state"]
        assert in_dev_shm(pipe_name) == sorted(channels + ends + state)
        assert in_dev_shm(value_name) == sorted([value_name, f"sem.{value_name}"])
    finally:
        for handle in (queue, bounded, a, b, value):
            handle.close()


def test_close_never_removes_and_unlink_removes_everything(names: Callable[[], str]) -> None:
    queue_name, pipe_name, value_name = names(), names(), names()
    queue = osipc_mp.Queue(queue_name, maxsize=3)
    queue.put("kept")
    pipe = osipc_mp.Pipe(pipe_name)
    a, b = pipe.end("a"), pipe.end("b")
    value = osipc_mp.Value(value_name, "i", 5)
    lock = osipc_mp.Lock(value_name)  # the Value's lock, too
    for handle in (queue, a, b, value, lock):
        handle.close()
    assert all(in_dev_shm(name) for name in (queue_name, pipe_name, value_name))
    with osipc_mp.Queue(queue_name) as again:
        assert again.get(timeout=1) == "kept"
    for name in (queue_name, pipe_name, value_name):
        osipc_mp.unlink(name)
        assert in_dev_shm(name) == []
        osipc_mp.unlink(name)  # nothing left: not an error


def test_a_forked_childs_copy_of_a_removed_pipe_makes_nothing_again(name: str) -> None:
    # Two children hold copies of both ends. After the parent closed and removed the
    # pipe, one exits without having used them (the ends close at exit), the other
    # tries to send. Neither may make the pipe again.
    peer(
        """
        import os, sys
        import osipc, osipc_mp
        a, b = osipc_mp.Pipe(sys.argv[1]).end("a"), osipc_mp.Pipe(sys.argv[1]).end("b")
        r, w = os.pipe()
        children = []
        for role in ("exit", "send"):
            pid = os.fork()
            if pid == 0:
                os.close(w)
                os.read(r, 1)               # until the parent has removed the pipe
                if role == "send":
                    try:
                        b.send("into a pipe that is gone")
                    except osipc.NotFound:
                        sys.exit(0)
                    sys.exit(3)
                sys.exit(0)
            children.append(pid)
        os.close(r)
        b.send("hi")
        assert a.recv() == "hi"
        a.close()
        b.close()
        osipc_mp.unlink(sys.argv[1])
        os.close(w)
        for pid in children:
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0, status
        """,
        name,
        timeout=20,
    )
    assert in_dev_shm(name) == []
    assert [info.url for info in osipc.ls(all=True) if name in info.url] == []


def test_each_object_unlinks_its_own(names: Callable[[], str]) -> None:
    queue_name, pipe_name, array_name, lock_name = names(), names(), names(), names()
    queue = osipc_mp.Queue(queue_name, maxsize=1)
    pipe = osipc_mp.Pipe(pipe_name)
    conn = pipe.end("a")
    array = osipc_mp.Array(array_name, "d", 4)
    lock = osipc_mp.RLock(lock_name)
    queue.unlink()
    pipe.unlink()
    array.unlink()
    lock.unlink()
    for name in (queue_name, pipe_name, array_name, lock_name):
        assert in_dev_shm(name) == []
    assert array[:] == [0.0] * 4  # a mapping that exists keeps working
    for handle in (queue, conn, array, lock):
        handle.close()


def test_names_of_different_objects_never_collide(names: Callable[[], str]) -> None:
    # Pipe("x") once used shm://x.a, which is also Queue("x.a"): now its objects are
    # x--a, and "--" is refused in names; the same name for two kinds is an error.
    name = names()
    with osipc_mp.Pipe(name).end("a"), osipc_mp.Queue(name + ".a") as other:
        other.put("mine")
        assert other.get(timeout=1) == "mine"
    with osipc_mp.Queue(name + ".a") as other:
        with pytest.raises(osipc.InvalidArgument, match="is a Queue, not a Pipe"):
            osipc_mp.Pipe(name + ".a").end("b")
        with pytest.raises(osipc.InvalidArgument, match="ring channel, not a SharedMemory"):
            osipc_mp.Value(name + ".a", "i", 0)
    osipc_mp.unlink(name + ".a")


def test_mq_queue_is_removed(name: str) -> None:
    queue = osipc_mp.Queue(name, transport="mq", maxsize=1, msgsize=128)
    queue.close()
    assert osipc.info(f"mq://{name}").capacity == 1
    osipc_mp.unlink(name)
    with pytest.raises(osipc.NotFound):
        osipc.info(f"mq://{name}")


def test_unlink_checks_the_name() -> None:
    with pytest.raises(TypeError):
        osipc_mp.unlink(None)  # type: ignore[arg-type]
    with pytest.raises(osipc.InvalidURL):
        osipc_mp.unlink("../etc")


def test_objects_left_open_close_quietly_at_exit(name: str) -> None:
    # Only the import changed from a stdlib script that never closes anything: under
    # -X dev (every ResourceWarning shown) it must print nothing more than the stdlib.
    done = subprocess.run(
        [
            sys.executable,
            "-X",
            "dev",
            "-I",
            "-c",
            """
import sys
from osipc_mp import Queue, Pipe, Value, Array, Lock, RLock

n = sys.argv[1]
q, bounded = Queue(n + "q"), Queue(n + "b", 2, transport="mq", msgsize=128)
q.put([1, 2])
bounded.put("x")
conn = Pipe(n + "p").end("a")
v, arr = Value(n + "v", "d", 1.5), Array(n + "a", "i", range(3))
view = arr.get_obj()      # still alive at exit
lock, rlock = Lock(n + "l"), RLock(n + "r")
lock.acquire()
print(q.get(), bounded.get(), v.value, arr[:])
""",
            name,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    try:
        assert done.returncode == 0, done.stderr
        assert done.stdout == "[1, 2] x 1.5 [0, 1, 2]\n"
        assert done.stderr == ""
    finally:
        for suffix in "qbpvalr":
            osipc_mp.unlink(name + suffix)


def test_objects_dropped_unclosed_close_quietly(names: Callable[[], str]) -> None:
    made = [names() for _ in range(4)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        queue = osipc_mp.Queue(made[0], maxsize=1)
        queue.put(1)
        conn = osipc_mp.Pipe(made[1]).end("b")
        conn.send("dropped")
        value = osipc_mp.Value(made[2], "i")
        lock = osipc_mp.RLock(made[3])
        del queue, conn, value, lock
        gc.collect()
    assert [str(w.message) for w in caught] == []
    with osipc_mp.Pipe(made[1]).end("a") as a:  # dropping it ended its session
        assert a.recv() == "dropped"
        with pytest.raises(EOFError):
            a.recv()
