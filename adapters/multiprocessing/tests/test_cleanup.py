from __future__ import annotations

import os

import osipc_mp
import pytest

import osipc


def in_dev_shm(name: str) -> list[str]:
    return sorted(entry for entry in os.listdir("/dev/shm") if name in entry)


def test_close_never_removes_and_unlink_removes_everything(name: str) -> None:
    queue = osipc_mp.Queue(name, maxsize=3)
    queue.put("kept")
    pipe = osipc_mp.Pipe(name)
    a, b = pipe.end("a"), pipe.end("b")
    value = osipc_mp.Value(name + "v", "i", 5)  # shm://NAME is the queue's
    lock = osipc_mp.Lock(name + "v")  # the Value's lock, too
    for handle in (queue, a, b, value, lock):
        handle.close()
    made = in_dev_shm(name)
    assert made  # all still there after close()
    with osipc_mp.Queue(name) as again:
        assert again.get(timeout=1) == "kept"
    osipc_mp.unlink(name)
    osipc_mp.unlink(name + "v")
    assert in_dev_shm(name) == []
    osipc_mp.unlink(name)  # nothing left: not an error


def test_each_object_unlinks_its_own(name: str) -> None:
    queue = osipc_mp.Queue(name + "q", maxsize=1)
    pipe = osipc_mp.Pipe(name + "p")
    conn = pipe.end("a")
    array = osipc_mp.Array(name + "v", "d", 4)
    lock = osipc_mp.RLock(name + "l")
    assert in_dev_shm(name)
    queue.unlink()
    pipe.unlink()
    array.unlink()
    lock.unlink()
    assert in_dev_shm(name) == []
    assert array[:] == [0.0] * 4  # a mapping that exists keeps working
    for handle in (queue, conn, array, lock):
        handle.close()


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
