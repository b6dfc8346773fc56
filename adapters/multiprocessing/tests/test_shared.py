from __future__ import annotations

import array
import ctypes
import multiprocessing
import pickle
import signal
import subprocess
import sys
import threading
from collections.abc import Callable

import numpy
import osipc_mp
import pytest
from _helpers import peer, spawn

import osipc


def test_initial_value_applies_only_when_created(name: str) -> None:
    peer(
        """
        import sys
        from osipc_mp import Value, Array
        v = Value(sys.argv[1], 'i', 7)
        v.value = 8
        a = Array(sys.argv[1] + "a", 'd', [0.5, 1.5])
        a[1] = 2.5
        v.close(); a.close()
        """,
        name,
        timeout=10,
    )
    v = osipc_mp.Value(name, "i", 99)
    a = osipc_mp.Array(name + "a", "d", [9.0, 9.0])
    try:
        assert v.value == 8
        assert a[:] == [0.5, 2.5]
    finally:
        v.close()
        a.close()
        osipc_mp.unlink(name + "a")


def test_racing_creators_apply_one_initial_value(name: str) -> None:
    racer = """
        import sys
        from osipc_mp import Value
        sys.stdin.readline()
        v = Value(sys.argv[1], 'q', int(sys.argv[2]))
        first = v.value
        v.close()
        print(first)
        """
    racers = [spawn(racer, name, str(n), stdin=-1) for n in range(1, 5)]
    for proc in racers:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    seen = {proc.communicate(timeout=10)[0] for proc in racers}
    assert len(seen) == 1 and seen.pop().strip() in {"1", "2", "3", "4"}


def test_a_block_left_half_made_is_finished_and_a_foreign_one_refused(name: str) -> None:
    size = 32 + ctypes.sizeof(ctypes.c_int)
    with osipc.SharedMemory(f"shm://{name}", size=size):  # a creator that died right here
        pass
    v = osipc_mp.Value(name, "i", 5)
    try:
        assert v.value == 5
    finally:
        v.close()
    with osipc.SharedMemory(f"shm://{name}x", size=64) as foreign:
        foreign[:3] = b"abc"
    try:
        with pytest.raises(osipc.InvalidArgument, match="no osipc_mp Value"):
            osipc_mp.Value(name + "x", "i", 0)
        with osipc.SharedMemory(f"shm://{name}x") as foreign:
            assert foreign[:3] == b"abc"  # left alone
    finally:
        osipc_mp.unlink(name + "x")


def test_value_types_like_the_stdlib(name: str) -> None:
    made = [
        osipc_mp.Value(name + "d", "d", 2.5),
        osipc_mp.Value(name + "c", "c", b"x"),
        osipc_mp.Value(name + "b", ctypes.c_bool, True),
        osipc_mp.Value(name + "z", "l"),
    ]
    try:
        assert [v.value for v in made] == [2.5, b"x", True, 0]
        made[0].value *= 2
        assert made[0].value == 5.0
        assert "c_double(5.0)" in repr(made[0])
    finally:
        for v in made:
            v.close()
        for suffix in "dcbz":
            osipc_mp.unlink(name + suffix)


def test_array_indexing_slicing_len_and_text(name: str) -> None:
    arr = osipc_mp.Array(name, "i", range(5))
    text = osipc_mp.Array(name + "c", "c", b"hello")
    try:
        assert len(arr) == 5 and arr[-1] == 4 and arr[1:3] == [1, 2]
        arr[1:3] = [10, 20]
        assert list(arr) == [0, 10, 20, 3, 4]
        with pytest.raises(IndexError):
            arr[5]
        assert text.value == b"hello" and text[:] == b"hello"
        text.value = b"hi"
        assert text.raw == b"hi\x00lo"
        with pytest.raises(AttributeError, match="typecode 'c'"):
            arr.value  # noqa: B018
        attached = osipc_mp.Array(name, "i", None)  # whatever size it has
        assert attached[:] == [0, 10, 20, 3, 4]
        attached.close()
    finally:
        arr.close()
        text.close()
        osipc_mp.unlink(name + "c")


def test_lock_false_has_no_lock(name: str) -> None:
    v = osipc_mp.Value(name, "i", 1, lock=False)
    try:
        v.value += 1
        assert v.value == 2
        with pytest.raises(AttributeError, match="lock=False"):
            v.get_lock()
    finally:
        v.close()


def test_a_lock_can_be_passed_and_shared(name: str) -> None:
    lock = osipc_mp.RLock(name + "l")
    v = osipc_mp.Value(name, "i", 0, lock=lock)
    a = osipc_mp.Array(name + "a", "i", 2, lock=lock)
    try:
        assert v.get_lock() is lock and a.get_lock() is lock
        with v:  # the stdlib's wrappers are context managers for their lock
            v.value += 1
            a[0] = v.value
        assert a[:] == [1, 0]
    finally:
        v.close()
        a.close()
        lock.close()
        osipc_mp.unlink(name + "l")
        osipc_mp.unlink(name + "a")


def test_mismatched_type_or_size_is_refused(name: str) -> None:
    v = osipc_mp.Value(name, "i", 1)
    a = osipc_mp.Array(name + "a", "i", 3)
    try:
        with pytest.raises(osipc.InvalidArgument, match="type code 'i'"):
            osipc_mp.Value(name, "d", 1.0)
        with pytest.raises(osipc.InvalidArgument, match="a Value"):
            osipc_mp.Array(name, "i", 1)
        with pytest.raises(osipc.InvalidArgument, match="3 items, not 4"):
            osipc_mp.Array(name + "a", "i", 4)
        assert v.value == 1
    finally:
        v.close()
        a.close()
        osipc_mp.unlink(name + "a")


def test_bad_arguments_are_typed_errors(name: str) -> None:
    with pytest.raises(osipc.InvalidArgument, match="unknown typecode"):
        osipc_mp.Value(name, "x")
    with pytest.raises(osipc.InvalidArgument, match="pointer"):
        osipc_mp.Value(name, ctypes.c_char_p)
    with pytest.raises(TypeError):
        osipc_mp.Value(name, "i", "not a number")
    with pytest.raises(osipc.InvalidArgument, match=">= 0"):
        osipc_mp.Array(name, "i", -1)
    with pytest.raises(TypeError):
        osipc_mp.Array(name, "i", 1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="lock"):
        osipc_mp.Value(name, "i", lock="yes")  # type: ignore[arg-type]
    with pytest.raises(osipc.NotFound):
        osipc_mp.Array(name, "i", None)  # attach only: there is none


def test_closed_value_refuses_use(name: str) -> None:
    v = osipc_mp.Value(name, "i", 1)
    v.close()
    with pytest.raises(osipc.Closed):
        v.value  # noqa: B018


def test_creating_under_its_own_lock_is_an_error_not_a_hang(name: str) -> None:
    with osipc_mp.Lock(name) as held:
        assert held
        with pytest.raises(RuntimeError, match="holds the lock"):
            osipc_mp.Value(name, "i", 0)


def test_pickled_value_reopens_by_name(name: str) -> None:
    v = osipc_mp.Value(name, "i", 5)
    again = pickle.loads(pickle.dumps(v))
    try:
        assert again.value == 5 and again.name == name
    finally:
        again.close()
        v.close()


def test_lock_excludes_other_processes_and_survives_a_killed_holder(name: str) -> None:
    holder = spawn(
        """
        import sys, time
        from osipc_mp import Lock
        lock = Lock(sys.argv[1])
        lock.acquire()
        print("held", flush=True)
        time.sleep(60)
        """,
        name,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline() == "held\n"
    lock = osipc_mp.Lock(name)
    try:
        assert not lock.acquire(block=False)
        assert not lock.acquire(timeout=0.05)
        holder.send_signal(signal.SIGKILL)
        holder.communicate(timeout=10)
        assert lock.acquire(timeout=5)  # the kernel released the dead holder's lock
        lock.release()
        with pytest.raises(ValueError):  # released too many times, as the stdlib
            lock.release()
    finally:
        lock.close()


def test_rlock_is_reentrant_per_thread(name: str) -> None:
    rlock = osipc_mp.RLock(name)
    try:
        with rlock, rlock:
            other: list[bool] = []
            thread = threading.Thread(target=lambda: other.append(rlock.acquire(timeout=0.05)))
            thread.start()
            thread.join(5)
            assert other == [False]
        with pytest.raises(AssertionError, match="not owned"):
            rlock.release()
    finally:
        rlock.close()


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double)]


def test_structures_like_the_stdlib(names: Callable[[], str]) -> None:
    # multiprocessing.Value(Point, 1.0, 2.0) and Array(Point, [(1, 2), ...]), by name; the
    # other process declares the structure itself (another class, the same layout).
    value_name, array_name = names(), names()
    v = osipc_mp.Value(value_name, Point, 1.0, 2.0)
    arr = osipc_mp.Array(array_name, Point, [(1.0, 2.0), (3.0, 4.0)])
    try:
        assert (v.x, v.y) == (1.0, 2.0)
        with v.get_lock():
            v.x += 10
        out = peer(
            """
            import ctypes, sys
            from osipc_mp import Value, Array

            class Pt(ctypes.Structure):
                _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double)]

            v = Value(sys.argv[1], Pt, 0.0, 0.0)        # exists: not reset
            arr = Array(sys.argv[2], Pt, 2)
            print(v.x, v.y, [(p.x, p.y) for p in arr])
            v.y = -1.0
            arr[1] = Pt(5.0, 6.0)
            """,
            value_name,
            array_name,
            timeout=10,
        ).stdout
        assert out == "11.0 2.0 [(1.0, 2.0), (3.0, 4.0)]\n"
        assert v.y == -1.0
        item = arr[1]
        assert (item.x, item.y) == (5.0, 6.0)
        del item  # a view into the array: it would keep the block mapped
        with pytest.raises(AttributeError, match="fields"):
            v.value  # noqa: B018 - as the stdlib's: a structure has no .value

        class Other(ctypes.Structure):
            _fields_ = [("x", ctypes.c_double), ("z", ctypes.c_double)]

        with pytest.raises(osipc.InvalidArgument, match="another layout"):
            osipc_mp.Value(value_name, Other)

        class WithPointer(ctypes.Structure):
            _fields_ = [("p", ctypes.POINTER(ctypes.c_int))]

        with pytest.raises(osipc.InvalidArgument, match="pointer"):
            osipc_mp.Value(names(), WithPointer)
    finally:
        v.close()
        arr.close()


def test_initializers_are_anything_with_a_length_as_in_the_stdlib(
    names: Callable[[], str],
) -> None:
    class Sized:
        def __len__(self) -> int:
            return 3

        def __iter__(self):  # type: ignore[no-untyped-def]
            return iter([7, 8, 9])

    made = [
        osipc_mp.Array(names(), "d", numpy.array([0.5, 1.5])),
        osipc_mp.Array(names(), "i", numpy.arange(4)),
        osipc_mp.Array(names(), "h", array.array("h", [1, -1])),
        osipc_mp.Array(names(), "B", range(3)),
        osipc_mp.Array(names(), "i", Sized()),
        osipc_mp.Array(names(), "i", numpy.int64(2)),  # a numpy integer is a size
    ]
    try:
        expected = [[0.5, 1.5], [0, 1, 2, 3], [1, -1], [0, 1, 2], [7, 8, 9], [0, 0]]
        assert [a[:] for a in made] == expected
        view = numpy.frombuffer(made[0].get_obj(), dtype=numpy.float64)
        assert view.tolist() == [0.5, 1.5]
        del view
    finally:
        for a in made:
            a.close()
    with pytest.raises(TypeError, match="sized iterable"):
        osipc_mp.Array(names(), "i", 2.5)
    with pytest.raises(TypeError):
        osipc_mp.Array(names(), "i", ["not", "numbers"])


def test_a_passed_lock_travels_with_a_pickled_value(names: Callable[[], str]) -> None:
    value_name, lock_name = names(), names()
    lock = osipc_mp.RLock(lock_name)
    v = osipc_mp.Value(value_name, "i", 5, lock=lock)
    again = pickle.loads(pickle.dumps(v))
    plain = pickle.loads(pickle.dumps(osipc_mp.Array(value_name + "a", "i", 1, lock=False)))
    try:
        assert again.get_lock().url == lock.url == f"sem://{lock_name}"
        with pytest.raises(AttributeError, match="lock=False"):
            plain.get_lock()
    finally:
        again.get_lock().close()
        for obj in (again, v, plain, lock):
            obj.close()
        osipc_mp.unlink(value_name + "a")


def test_a_multiprocessing_lock_is_refused_with_the_fix(name: str) -> None:
    with pytest.raises(TypeError, match=r"osipc_mp\.Lock/RLock.*children"):
        osipc_mp.Value(name, "i", 0, lock=multiprocessing.Lock())


def test_value_get_lock_survives_a_killed_reentrant_holder(name: str) -> None:
    holder = spawn(
        """
        import sys, time
        from osipc_mp import Value
        v = Value(sys.argv[1], "i", 0)
        with v.get_lock():
            with v.get_lock():             # held twice by this thread
                v.value = 1
                print("held", flush=True)
                time.sleep(60)
        """,
        name,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline() == "held\n"
    v = osipc_mp.Value(name, "i", 0)
    try:
        assert not v.get_lock().acquire(timeout=0.05)
        holder.send_signal(signal.SIGKILL)
        holder.communicate(timeout=10)
        assert v.get_lock().acquire(timeout=5)  # the kernel released both levels
        v.value += 1
        v.get_lock().release()
        assert v.value == 2
    finally:
        v.close()


def test_a_value_with_its_lock_passed_to_a_spawned_process(name: str, tmp_path: object) -> None:
    script = """
import multiprocessing, sys
from osipc_mp import Value, RLock

def add(counter):
    for _ in range(500):
        with counter.get_lock():
            counter.value += 1

if __name__ == '__main__':
    multiprocessing.set_start_method("spawn")
    counter = Value(sys.argv[1], 'i', 0, lock=RLock(sys.argv[1] + "l"))
    procs = [multiprocessing.Process(target=add, args=(counter,)) for _ in range(2)]
    for p in procs: p.start()
    add(counter)
    for p in procs: p.join()
    print(counter.value, counter.get_lock().url)
"""
    path = f"{tmp_path}/recipe.py"
    with open(path, "w") as file:
        file.write(script)
    try:
        done = subprocess.run(
            [sys.executable, "-X", "dev", "-I", path, name],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        osipc_mp.unlink(name + "l")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"1500 sem://{name}l\n"
    assert done.stderr == ""
