from __future__ import annotations

import os
from collections.abc import Callable

import osipc_mp
import pytest

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
