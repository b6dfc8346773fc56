"""The classic multiprocessing recipes, each side a separate process started on its own.

Every script is the stdlib version with two changes: ``osipc_mp`` instead of
``multiprocessing`` in the import, and a name (from argv) for each shared object.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import osipc_mp
from _helpers import finish, peer, spawn


def test_pipe_sender_and_receiver(name: str) -> None:
    receiver = spawn(
        """
        import sys
        from osipc_mp import Pipe

        parent_conn = Pipe(sys.argv[1]).end("a")
        print(parent_conn.recv())   # prints "[42, None, 'hello']"
        parent_conn.close()
        """,
        name,
    )
    peer(
        """
        import sys
        from osipc_mp import Pipe

        def f(conn):
            conn.send([42, None, 'hello'])
            conn.close()

        f(Pipe(sys.argv[1]).end("b"))
        """,
        name,
        timeout=10,
    )
    assert finish(receiver, timeout=10) == "[42, None, 'hello']\n"


def test_worker_puts_into_a_queue_and_exits_before_anyone_reads(name: str) -> None:
    peer(
        """
        import sys
        from osipc_mp import Queue

        def f(q):
            q.put([42, None, 'hello'])

        f(Queue(sys.argv[1]))
        """,
        name,
        timeout=10,
    )
    out = peer(
        """
        import sys
        from osipc_mp import Queue

        q = Queue(sys.argv[1])
        print(q.get(timeout=5))    # prints "[42, None, 'hello']"
        q.close()
        """,
        name,
        timeout=10,
    ).stdout
    assert out == "[42, None, 'hello']\n"


def test_three_processes_increment_a_value_under_its_lock(name: str) -> None:
    adder = """
        import sys
        from osipc_mp import Value

        def add(counter, n):
            for _ in range(n):
                with counter.get_lock():
                    counter.value += 1

        counter = Value(sys.argv[1], 'i', 0)
        print("ready", flush=True)
        sys.stdin.readline()               # all three start adding together
        add(counter, 2000)
        counter.close()
        """
    adders = [spawn(adder, name, stdin=subprocess.PIPE) for _ in range(3)]
    try:
        for proc in adders:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "ready\n"
        for proc in adders:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
    finally:
        for proc in adders:
            finish(proc, timeout=20)
    counter = osipc_mp.Value(name, "i", 0)
    try:
        assert counter.value == 6000
    finally:
        counter.close()


def test_writer_and_reader_of_a_value_and_an_array(name: str) -> None:
    num_name, arr_name = name + "n", name + "a"
    reader = spawn(
        """
        import sys
        from osipc_mp import Value, Array

        num = Value(sys.argv[1], 'd', 0.0)
        arr = Array(sys.argv[2], 'i', range(10))
        print("created", flush=True)
        sys.stdin.readline()               # the writer has run
        print(num.value)
        print(arr[:])
        num.close(); arr.close()
        """,
        num_name,
        arr_name,
        stdin=subprocess.PIPE,
    )
    try:
        assert reader.stdout is not None
        assert reader.stdout.readline() == "created\n"
        peer(
            """
            import sys
            from osipc_mp import Value, Array

            def f(n, a):
                n.value = 3.1415927
                for i in range(len(a)):
                    a[i] = -a[i]

            num = Value(sys.argv[1], 'd', 0.0)        # exists: the 0.0 is not applied
            arr = Array(sys.argv[2], 'i', range(10))
            f(num, arr)
            num.close(); arr.close()
            """,
            num_name,
            arr_name,
            timeout=10,
        )
        assert reader.stdin is not None
        reader.stdin.write("go\n")
        reader.stdin.flush()
        out = finish(reader, timeout=10)
    finally:
        osipc_mp.unlink(num_name)
        osipc_mp.unlink(arr_name)
    assert out == "3.1415927\n[0, -1, -2, -3, -4, -5, -6, -7, -8, -9]\n"


def test_work_class_sends_messages_and_the_receiver_loop_ends_by_itself(name: str) -> None:
    receiver = spawn(
        """
        import sys
        from osipc_mp import Pipe

        conn = Pipe(sys.argv[1]).end("a")
        while True:
            try:
                msg = conn.recv()
            except EOFError:               # the sender closed: no terminate() needed
                break
            print(type(msg).__name__, msg)
        conn.close()
        print("done")
        """,
        name,
    )
    peer(
        """
        import sys
        from osipc_mp import Pipe

        class Work:
            def __init__(self, conn):
                self.conn = conn

            def run(self):
                for job in range(2):
                    self.conn.send({"job": job, "tags": ["a", "b"], "ok": True})
                self.conn.send("plain text, not JSON")
                self.conn.send(7)
                self.conn.send(None)
                self.conn.close()

        Work(Pipe(sys.argv[1]).end("b")).run()
        """,
        name,
        timeout=10,
    )
    assert finish(receiver, timeout=10).splitlines() == [
        "dict {'job': 0, 'tags': ['a', 'b'], 'ok': True}",
        "dict {'job': 1, 'tags': ['a', 'b'], 'ok': True}",
        "str plain text, not JSON",
        "int 7",
        "NoneType None",
        "done",
    ]


def test_worker_pool_over_two_queues_stops_on_sentinels(name: str) -> None:
    tasks, results = name + "t", name + "r"
    worker = """
        import sys
        from osipc_mp import Queue

        def worker(input, output):
            for func, args in iter(input.get, 'STOP'):
                output.put((func, sum(args)))

        worker(Queue(sys.argv[1]), Queue(sys.argv[2]))
        """
    workers = [spawn(worker, tasks, results) for _ in range(2)]
    try:
        task_queue, done_queue = osipc_mp.Queue(tasks), osipc_mp.Queue(results)
        for n in range(10):
            task_queue.put(("sum", (n, n)), timeout=5)
        for _ in workers:
            task_queue.put("STOP", timeout=5)
        got = sorted(done_queue.get(timeout=10)[1] for _ in range(10))
        task_queue.close()
        done_queue.close()
        for proc in workers:
            finish(proc, timeout=10)
    finally:
        for proc in workers:
            proc.kill()
            proc.communicate()
        osipc_mp.unlink(tasks)
        osipc_mp.unlink(results)
    assert got == [2 * n for n in range(10)]


def test_parent_exits_before_its_child_touches_the_queue(name: str) -> None:
    # With multiprocessing this is FileNotFoundError from SemLock: the parent's resource
    # tracker removed the queue's semaphore when it exited. Here the child finds it by name.
    child = """
import os, sys, time
from osipc_mp import Queue, Value
parent = int(sys.argv[2])
while os.path.exists(f"/proc/{parent}"):       # until the parent has gone (and been reaped)
    time.sleep(0.01)
q, v, reply = Queue(sys.argv[1]), Value(sys.argv[1] + "v", "i", 0), Queue(sys.argv[1] + "r")
reply.put((q.get(timeout=5), v.value), timeout=5)
q.close(); v.close(); reply.close()
"""
    parent = spawn(
        """
        import os, subprocess, sys
        from osipc_mp import Queue, Value

        q, v = Queue(sys.argv[1]), Value(sys.argv[1] + "v", "i", 41)
        q.put("from the parent")
        q.close(); v.close()
        child = [sys.executable, "-I", "-c", sys.argv[2], sys.argv[1], str(os.getpid())]
        print(subprocess.Popen(child, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid)
        """,
        name,
        child,
    )
    grandchild = int(finish(parent, timeout=10))
    reply = osipc_mp.Queue(name + "r")
    try:
        assert reply.get(timeout=10) == ("from the parent", 41)
    finally:
        reply.close()
        try:  # on failure, it must not create anything after the cleanup below
            with open(f"/proc/{grandchild}/cmdline", "rb") as cmdline:
                if name.encode() in cmdline.read():  # still it, not a recycled pid
                    os.kill(grandchild, signal.SIGKILL)
        except (FileNotFoundError, ProcessLookupError):
            pass
        osipc_mp.unlink(name + "v")
        osipc_mp.unlink(name + "r")


def test_multiprocessing_process_gets_a_queue_by_name(name: str, tmp_path: object) -> None:
    # A Queue passed to a spawned multiprocessing child travels as its name.
    script = """
import multiprocessing, sys
from osipc_mp import Queue

def f(q):
    q.put([42, None, 'hello'])

if __name__ == '__main__':
    q = Queue(sys.argv[1])
    p = multiprocessing.get_context("spawn").Process(target=f, args=(q,))
    p.start()
    print(q.get(timeout=10))
    p.join(10)
    q.close()
    print(p.exitcode)
"""
    path = f"{tmp_path}/recipe.py"
    with open(path, "w") as file:
        file.write(script)
    done = subprocess.run(
        [sys.executable, "-I", path, name], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[42, None, 'hello']\n0\n"
