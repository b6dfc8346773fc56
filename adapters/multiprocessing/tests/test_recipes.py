"""The classic multiprocessing recipes, each side a separate script started on its own.

Every script below is the stdlib version (the multiprocessing docs' examples, split where
the parent starts a child) with two changes only: ``osipc_mp`` in the import, and a name
for each shared object. No close(), no timeouts, no handshakes: the harness runs each
script as it is (``python -X dev``, the test's names put in for the literal ones), with a
timeout around the process, and fails on anything on stderr (a ResourceWarning, say).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator

import osipc_mp
import pytest
from _helpers import spawn

import osipc

Start = Callable[..., "subprocess.Popen[str]"]


@pytest.fixture
def start(names: Callable[[], str]) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """start(script, "chat", "jobs"): run a recipe script with each quoted name replaced by
    a fresh one (the same name for the same literal throughout the test)."""
    chosen: dict[str, str] = {}
    started: list[subprocess.Popen[str]] = []

    def run(script: str, *literals: str) -> subprocess.Popen[str]:
        code = textwrap.dedent(script)
        for literal in literals:
            unique = chosen.setdefault(literal, names())
            code = code.replace(repr(literal), repr(unique))
        proc = subprocess.Popen(
            [sys.executable, "-X", "dev", "-I", "-c", code],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tempfile.gettempdir(),
        )
        started.append(proc)
        return proc

    yield run
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def done(proc: subprocess.Popen[str], timeout: float = 30) -> str:
    """Wait for a recipe script; its stdout, after checking it exited 0 and said nothing
    on stderr."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"the script hung\n--- stdout\n{out}\n--- stderr\n{err}") from None
    assert proc.returncode == 0, err
    assert err == ""
    return out


PIPE_SENDER = """
    from osipc_mp import Pipe

    def f(conn):
        conn.send([42, None, 'hello'])
        conn.close()

    if __name__ == '__main__':
        child_conn = Pipe('chat').end('b')
        f(child_conn)
    """
PIPE_RECEIVER = """
    from osipc_mp import Pipe

    if __name__ == '__main__':
        parent_conn = Pipe('chat').end('a')
        print(parent_conn.recv())   # prints "[42, None, 'hello']"
    """


def test_pipe_sender_and_receiver_in_either_order_again_and_again(start: Start) -> None:
    # The same name every run: what one run leaves (an END nobody read) must not touch
    # the next, whichever side starts first.
    for receiver_first in (True, True, False, False, True, False):
        if receiver_first:
            receiver = start(PIPE_RECEIVER, "chat")
            done(start(PIPE_SENDER, "chat"))
        else:
            done(start(PIPE_SENDER, "chat"))
            receiver = start(PIPE_RECEIVER, "chat")
        assert done(receiver) == "[42, None, 'hello']\n"


QUEUE_WORKER = """
    from osipc_mp import Queue

    def f(q):
        q.put([42, None, 'hello'])

    if __name__ == '__main__':
        q = Queue('jobs')
        f(q)
    """
QUEUE_MAIN = """
    from osipc_mp import Queue

    if __name__ == '__main__':
        q = Queue('jobs')
        print(q.get())    # prints "[42, None, 'hello']"
    """


def test_worker_puts_into_a_queue_before_or_after_the_reader_starts(start: Start) -> None:
    done(start(QUEUE_WORKER, "jobs"))  # it exits before anyone reads
    assert done(start(QUEUE_MAIN, "jobs")) == "[42, None, 'hello']\n"
    reader = start(QUEUE_MAIN, "jobs")
    done(start(QUEUE_WORKER, "jobs"))
    assert done(reader) == "[42, None, 'hello']\n"


ADDER = """
    from osipc_mp import Value

    def add(counter, n):
        for _ in range(n):
            with counter.get_lock():
                counter.value += 1

    if __name__ == '__main__':
        counter = Value('counter', 'i', 0)
        add(counter, 20000)
    """
COUNTER_MAIN = """
    from osipc_mp import Value

    if __name__ == '__main__':
        counter = Value('counter', 'i', 0)
        print(counter.value)
    """


def test_three_processes_increment_a_value_under_its_lock(start: Start) -> None:
    adders = [start(ADDER, "counter") for _ in range(3)]
    for adder in adders:
        done(adder, timeout=60)
    assert done(start(COUNTER_MAIN, "counter")) == "60000\n"


VALUE_WRITER = """
    from osipc_mp import Value, Array

    def f(n, a):
        n.value = 3.1415927
        for i in range(len(a)):
            a[i] = -a[i]

    if __name__ == '__main__':
        num = Value('num', 'd', 0.0)
        arr = Array('arr', 'i', range(10))
        f(num, arr)
    """
VALUE_READER = """
    from osipc_mp import Value, Array

    if __name__ == '__main__':
        num = Value('num', 'd', 0.0)
        arr = Array('arr', 'i', range(10))
        print(num.value)
        print(arr[:])
    """


def test_writer_and_reader_of_a_value_and_an_array(start: Start) -> None:
    # The reader first creates them, the writer then attaches (its 0.0 and range(10)
    # are not applied again) and changes them, and a reader after it sees the change.
    assert done(start(VALUE_READER, "num", "arr")) == "0.0\n[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n"
    done(start(VALUE_WRITER, "num", "arr"))
    out = done(start(VALUE_READER, "num", "arr"))
    assert out == "3.1415927\n[0, -1, -2, -3, -4, -5, -6, -7, -8, -9]\n"


WORK_SENDER = """
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

    if __name__ == '__main__':
        Work(Pipe('work').end('b')).run()
    """
WORK_RECEIVER = """
    from osipc_mp import Pipe

    if __name__ == '__main__':
        conn = Pipe('work').end('a')
        while True:
            try:
                msg = conn.recv()
            except EOFError:           # the sender is done: no terminate() needed
                break
            print(type(msg).__name__, msg)
        print("done")
    """
WORK_OUTPUT = [
    "dict {'job': 0, 'tags': ['a', 'b'], 'ok': True}",
    "dict {'job': 1, 'tags': ['a', 'b'], 'ok': True}",
    "str plain text, not JSON",
    "int 7",
    "NoneType None",
    "done",
]


def test_work_class_sends_and_the_receiver_loop_ends_by_itself(start: Start) -> None:
    # Neither side calls close(): the sender just returns and exits, as stdlib scripts do.
    receiver = start(WORK_RECEIVER, "work")
    done(start(WORK_SENDER, "work"))
    assert done(receiver).splitlines() == WORK_OUTPUT
    done(start(WORK_SENDER, "work"))  # and the other way round, on the same name
    assert done(start(WORK_RECEIVER, "work")).splitlines() == WORK_OUTPUT


POOL = """
    import time
    import random

    from multiprocessing import current_process
    from osipc_mp import Queue

    #
    # Function run by worker processes
    #

    def worker(input, output):
        for func, args in iter(input.get, 'STOP'):
            result = calculate(func, args)
            output.put(result)

    #
    # Function used to calculate result
    #

    def calculate(func, args):
        result = func(*args)
        return '%s says that %s%s = %s' % \\
            (current_process().name, func.__name__, args, result)

    #
    # Functions referenced by tasks
    #

    def mul(a, b):
        time.sleep(0.05*random.random())
        return a * b

    def plus(a, b):
        time.sleep(0.05*random.random())
        return a + b

    #
    #
    #

    def test():
        NUMBER_OF_PROCESSES = 4
        TASKS1 = [(mul, (i, 7)) for i in range(20)]
        TASKS2 = [(plus, (i, 8)) for i in range(10)]

        # Create queues
        task_queue = Queue('tasks')
        done_queue = Queue('results')

        # Submit tasks
        for task in TASKS1:
            task_queue.put(task)

        # Start worker processes: each is a script of its own here, started apart

        # Get and print results
        print('Unordered results:')
        for i in range(len(TASKS1)):
            print('\\t', done_queue.get())

        # Add more tasks using `put()`
        for task in TASKS2:
            task_queue.put(task)

        # Get and print some more results
        for i in range(len(TASKS2)):
            print('\\t', done_queue.get())

        # Tell child processes to stop
        for i in range(NUMBER_OF_PROCESSES):
            task_queue.put('STOP')

    if __name__ == '__main__':
        MAIN
    """


def test_worker_pool_over_two_queues_stops_on_sentinels(start: Start) -> None:
    # The docs' pool example, its workers started apart (sleeps shortened from 0.5).
    main = start(POOL.replace("MAIN", "test()"), "tasks", "results")
    workers = [
        start(POOL.replace("MAIN", "worker(Queue('tasks'), Queue('results'))"), "tasks", "results")
        for _ in range(4)
    ]
    out = done(main, timeout=60).splitlines()
    for worker in workers:
        assert done(worker) == ""  # each stopped at its STOP
    expected = [f"MainProcess says that mul({i}, 7) = {i * 7}" for i in range(20)]
    expected += [f"MainProcess says that plus({i}, 8) = {i + 8}" for i in range(10)]
    assert out[0] == "Unordered results:"
    assert sorted(line.strip() for line in out[1:]) == sorted(expected)


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
"""
    parent = spawn(
        """
        import os, subprocess, sys
        from osipc_mp import Queue, Value

        q, v = Queue(sys.argv[1]), Value(sys.argv[1] + "v", "i", 41)
        q.put("from the parent")
        child = [sys.executable, "-I", "-c", sys.argv[2], sys.argv[1], str(os.getpid())]
        print(subprocess.Popen(child, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid)
        """,
        name,
        child,
    )
    out, err = parent.communicate(timeout=10)
    assert parent.returncode == 0, err
    grandchild = int(out)
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
    # The docs' Queue example as it is, with the import and the name changed: the Queue
    # passed to a spawned multiprocessing child travels as its name.
    script = """
from multiprocessing import Process, set_start_method
from osipc_mp import Queue
import sys

def f(q):
    q.put([42, None, 'hello'])

if __name__ == '__main__':
    set_start_method(sys.argv[2])
    q = Queue(sys.argv[1])
    p = Process(target=f, args=(q,))
    p.start()
    print(q.get())    # prints "[42, None, 'hello']"
    p.join()
"""
    path = f"{tmp_path}/recipe.py"
    with open(path, "w") as file:
        file.write(script)
    for method in ("spawn", "fork"):
        finished = subprocess.run(
            [sys.executable, "-X", "dev", "-I", path, name, method],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert finished.returncode == 0, finished.stderr
        assert finished.stdout == "[42, None, 'hello']\n"
        assert finished.stderr == ""
    assert not osipc.info(f"shm://{name}").depth
