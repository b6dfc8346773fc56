from __future__ import annotations

import array
import hashlib
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing import BufferTooShort

import osipc_mp
import pytest
from _helpers import cli, finish, peer, spawn

import osipc

RECEIVE_ALL = """
    import sys
    from osipc_mp import Pipe
    conn = Pipe(sys.argv[1]).end(sys.argv[2] if len(sys.argv) > 2 else "a")
    conn.poll()                     # receiving from here on
    print("open", flush=True)
    while True:
        try:
            print(repr(conn.recv()), flush=True)
        except EOFError:
            print("EOF", flush=True)
            break
    """


def send_for(
    conn: osipc_mp.Connection,
    seconds: float,
    data: bytes = b"anyone?",
    sent: threading.Event | None = None,
) -> None:
    """Keep sending for ``seconds`` (a test expects an error to end it sooner)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        conn.send_bytes(data)
        if sent is not None:
            sent.set()
        time.sleep(0.01)


@pytest.fixture
def ends(name: str) -> Iterator[tuple[osipc_mp.Connection, osipc_mp.Connection]]:
    pipe = osipc_mp.Pipe(name)
    a = pipe.end("a")
    b = pipe.end("b")
    yield a, b
    a.close()
    b.close()


def test_duplex_both_ways(ends: tuple[osipc_mp.Connection, osipc_mp.Connection]) -> None:
    a, b = ends
    a.send({"to": "b"})
    b.send(["to", "a"])
    assert b.recv() == {"to": "b"}
    assert a.recv() == ["to", "a"]


def test_poll_waits_only_as_long_as_asked(
    ends: tuple[osipc_mp.Connection, osipc_mp.Connection],
) -> None:
    a, b = ends
    assert not a.poll()
    started = time.monotonic()
    assert not a.poll(0.1)
    assert 0.09 <= time.monotonic() - started < 2
    b.send(1)
    assert a.poll(1) and a.poll()  # still there until received
    assert a.recv() == 1


def test_close_gives_eof_after_everything_sent(name: str) -> None:
    pipe = osipc_mp.Pipe(name)
    with pipe.end("b") as b:
        b.send("last words")
    with pipe.end("a") as a:  # opened after "b" closed: the stream is still there
        assert a.recv() == "last words"
        assert a.poll(0)  # EOF is something to receive
        with pytest.raises(EOFError) as caught:
            a.recv()
        assert isinstance(caught.value, osipc.EndOfStream)
        with pytest.raises(EOFError):
            a.recv()  # and stays, as the stdlib's


def test_a_sender_that_exits_without_close_ends_the_stream(name: str) -> None:
    # What stdlib scripts do: send, then just exit. Receivers started before and after.
    sender = """
        import sys
        from osipc_mp import Pipe
        conn = Pipe(sys.argv[1]).end("b")
        conn.send("one")
        conn.send("two")
        """
    before = spawn(RECEIVE_ALL, name)
    assert before.stdout is not None
    assert before.stdout.readline() == "open\n"
    peer(sender, name, timeout=10)
    assert finish(before, timeout=10) == "'one'\n'two'\nEOF\n"
    peer(sender, name, timeout=10)
    assert peer(RECEIVE_ALL, name, timeout=10).stdout == "open\n'one'\n'two'\nEOF\n"


def test_a_sender_killed_before_the_receiver_opens_ends_the_stream(name: str) -> None:
    peer(
        """
        import os, signal, sys
        from osipc_mp import Pipe
        conn = Pipe(sys.argv[1]).end("b")
        conn.send("before dying")
        os.kill(os.getpid(), signal.SIGKILL)
        """,
        name,
        timeout=10,
        check=False,
    )
    started = time.monotonic()
    assert peer(RECEIVE_ALL, name, timeout=10).stdout == "open\n'before dying'\nEOF\n"
    assert time.monotonic() - started < 5


def test_a_killed_peer_is_eof_once_its_messages_are_read(name: str) -> None:
    sender = spawn(
        """
        import sys, time
        from osipc_mp import Pipe
        conn = Pipe(sys.argv[1]).end("b")
        conn.send("before dying")
        print("sent", flush=True)
        time.sleep(60)
        """,
        name,
    )
    assert sender.stdout is not None
    assert sender.stdout.readline() == "sent\n"
    with osipc_mp.Pipe(name).end("a") as a:
        sender.send_signal(signal.SIGKILL)
        sender.communicate(timeout=10)
        assert a.recv() == "before dying"
        assert a.poll(5)
        with pytest.raises(EOFError):
            a.recv()


def test_send_to_an_end_that_has_gone_is_a_broken_pipe(name: str) -> None:
    pipe = osipc_mp.Pipe(name)
    a, b = pipe.end("a"), pipe.end("b")
    try:
        b.send("read")
        assert a.recv() == "read"
        a.close()
        with pytest.raises(BrokenPipeError) as caught:
            b.send("nobody reads this")
        assert isinstance(caught.value, osipc.Broken)
        with pytest.raises(EOFError):  # its close() also ended what "b" receives
            b.recv()
    finally:
        b.close()
    killed = spawn(RECEIVE_ALL, name)  # a new session of "a", then killed
    assert killed.stdout is not None
    assert killed.stdout.readline() == "open\n"
    with pipe.end("b") as b:
        b.send("for the new session")
        killed.send_signal(signal.SIGKILL)
        killed.communicate(timeout=10)
        with pytest.raises(BrokenPipeError):  # noticed within PEER_CHECK (0.2 s)
            send_for(b, 5.0)


def test_a_full_channel_to_a_killed_reader_breaks_instead_of_hanging(name: str) -> None:
    pipe = osipc_mp.Pipe(name, capacity=1 << 16)
    with pipe.end("b") as b:  # first: it makes the channels, small
        reader = spawn(RECEIVE_ALL, name)
        assert reader.stdout is not None
        assert reader.stdout.readline() == "open\n"
        reader.send_signal(signal.SIGSTOP)  # alive but not reading: the channel fills
        filled = threading.Event()

        def kill_once_full() -> None:
            filled.wait(10)
            time.sleep(0.5)  # the sender is blocked on a full channel by now
            reader.kill()

        killer = threading.Thread(target=kill_once_full)
        killer.start()
        try:
            with pytest.raises(BrokenPipeError):
                send_for(b, 10.0, b"x" * 30_000, filled)  # two fit
        finally:
            filled.set()
            killer.join(10)
            reader.communicate(timeout=10)


def test_stale_ends_of_stream_never_end_the_next_conversation(name: str) -> None:
    # A receiver that reads one message and closes leaves the sender's END unread, and
    # its own close() is not sent to a sender that has gone. The next run starts clean.
    sender = """
        import sys
        from osipc_mp import Pipe
        conn = Pipe(sys.argv[1]).end("b")
        conn.send(int(sys.argv[2]))
        conn.send("more than is read")
        """
    receive_one = """
        import sys
        from osipc_mp import Pipe
        print(Pipe(sys.argv[1]).end("a").recv(), flush=True)
        """
    for run in range(3):
        peer(sender, name, str(run), timeout=10)
        assert peer(receive_one, name, timeout=10).stdout == f"{run}\n"


def test_a_receiver_that_gave_up_does_not_break_the_next_sender(name: str) -> None:
    # The receiver waited and was interrupted before any sender came: it sent nothing,
    # so the next sender talks to the next receiver rather than getting BrokenPipeError.
    waiting = spawn(RECEIVE_ALL, name)
    assert waiting.stdout is not None
    assert waiting.stdout.readline() == "open\n"
    waiting.send_signal(signal.SIGINT)
    waiting.communicate(timeout=10)
    peer(
        """
        import sys
        from osipc_mp import Pipe
        Pipe(sys.argv[1]).end("b").send("for whoever reads next")
        """,
        name,
        timeout=10,
    )
    assert peer(RECEIVE_ALL, name, timeout=10).stdout == "open\n'for whoever reads next'\nEOF\n"


SEND_ARG = """
    import sys
    from osipc_mp import Pipe
    Pipe(sys.argv[1]).end("b").send(sys.argv[2])
    """


def test_an_end_opened_and_closed_idle_does_not_poison_the_next_run(name: str) -> None:
    # A session that neither sent nor received ended with nothing for anyone: the next
    # run pairs past it, whichever end it was and whichever side of the run starts first.
    idle = """
        import sys
        from osipc_mp import Pipe
        Pipe(sys.argv[1]).end(sys.argv[2]).close()
        """
    for run, end in enumerate("abab"):
        peer(idle, name, end, timeout=10)
        if run < 2:
            peer(SEND_ARG, name, f"run {run}", timeout=10)
            got = peer(RECEIVE_ALL, name, timeout=10).stdout
        else:
            receiver = spawn(RECEIVE_ALL, name)
            assert receiver.stdout is not None
            assert receiver.stdout.readline() == "open\n"
            peer(SEND_ARG, name, f"run {run}", timeout=10)
            got = "open\n" + finish(receiver, timeout=10)
        assert got == f"open\n'run {run}'\nEOF\n", (run, end)


def test_a_restarted_sender_first_ends_its_killed_predecessors_stream(name: str) -> None:
    with osipc_mp.Pipe(name).end("a") as a:
        for text in ("from the first", "from the second"):
            peer(
                """
                import os, signal, sys
                from osipc_mp import Pipe
                Pipe(sys.argv[1]).end("b").send(sys.argv[2])
                os.kill(os.getpid(), signal.SIGKILL)
                """,
                name,
                text,
                timeout=10,
                check=False,
            )
        assert a.recv() == "from the first"
        with pytest.raises(EOFError):  # not "from the second": that is the next session's
            a.recv()
    with osipc_mp.Pipe(name).end("a") as a:
        assert a.recv() == "from the second"
        with pytest.raises(EOFError):
            a.recv()


def depths(name: str) -> list[int]:
    return [osipc.info(f"shm://{name}--{end}").depth or 0 for end in "ab"]


def test_finished_runs_leave_the_channels_empty_for_gc(name: str) -> None:
    # Every run below is over; nothing in the channels is for anyone, so nothing may stay
    # there (osipc gc keeps a channel that holds frames: the pipe would never go).
    replier = spawn(
        """
        import sys
        from osipc_mp import Pipe
        conn = Pipe(sys.argv[1]).end("b")
        conn.send(conn.recv().upper())
        sys.stdin.readline()        # still open when "a" closes after its answer
        """,
        name,
        stdin=subprocess.PIPE,
    )
    assert replier.stdout is not None
    asker = """
        import sys
        from osipc_mp import Pipe
        conn = Pipe(sys.argv[1]).end("a")
        conn.send("question")
        print(conn.recv())
        """
    assert peer(asker, name, timeout=10).stdout == "QUESTION\n"
    assert replier.stdin is not None
    replier.stdin.write("\n")
    replier.stdin.flush()
    finish(replier, timeout=10)
    assert depths(name) == [0, 0]  # the END "a" sent to "b" went with "b"
    read_one = """
        import os, signal, sys
        from osipc_mp import Pipe
        conn = Pipe(sys.argv[1]).end("a")
        print(conn.recv(), flush=True)
        if sys.argv[2] == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        """
    send_two = """
        import sys
        from osipc_mp import Pipe
        conn = Pipe(sys.argv[1]).end("b")
        conn.send("first")
        conn.send("second")
        """
    for how in ("exit", "kill"):
        peer(send_two, name, timeout=10)
        peer(send_two, name, timeout=10)  # the next run waits behind the first
        for _ in range(2):  # each reads one message of its run
            got = peer(read_one, name, how, check=False, timeout=10)
            assert got.stdout == "first\n", got.stderr
        if how == "kill":  # nobody closed: the next session of "a" drops what was left
            assert depths(name) == [2, 0]  # "second" and the END of the second run
            osipc_mp.Pipe(name).end("a").close()
        assert depths(name) == [0, 0], how
    done = cli("gc")
    assert done.returncode == 0, done.stderr
    assert "kept" not in done.stdout, done.stdout
    assert f"removed shm://{name}--a:" in done.stdout, done.stdout


def test_messages_waiting_in_a_pipe_survive_gc_removing_its_state(name: str) -> None:
    # The sender exited, nobody reads yet: osipc gc keeps the channel (it holds frames)
    # but removes the state block and the locks. The next reader must still get what
    # waits, then EOF; and the runs after it go on as before.
    def gc_keeps_only_the_channel() -> None:
        done = cli("gc")
        assert done.returncode == 0, done.stderr
        assert f"kept shm://{name}--a:" in done.stdout, done.stdout
        assert f"removed shm://{name}--state:" in done.stdout, done.stdout

    peer(SEND_ARG, name, "waited through gc", timeout=10)
    gc_keeps_only_the_channel()
    assert peer(RECEIVE_ALL, name, timeout=10).stdout == "open\n'waited through gc'\nEOF\n"
    for run in range(2):
        peer(SEND_ARG, name, f"run {run}", timeout=10)
        assert peer(RECEIVE_ALL, name, timeout=10).stdout == f"open\n'run {run}'\nEOF\n"
    # Two runs' messages wait, then gc, then a third run: each reader after it gets one
    # run, in order, as without gc (runs never merge).
    peer(SEND_ARG, name, "first", timeout=10)
    peer(SEND_ARG, name, "second", timeout=10)
    gc_keeps_only_the_channel()
    peer(SEND_ARG, name, "third", timeout=10)
    for run in ("first", "second", "third"):
        assert peer(RECEIVE_ALL, name, timeout=10).stdout == f"open\n'{run}'\nEOF\n"
    # A reader killed after 2 of 5 messages: without gc, the next reader drops what it
    # left (it was that session's); with gc between them, too.
    peer(
        """
        import sys
        from osipc_mp import Pipe
        conn = Pipe(sys.argv[1]).end("b")
        for n in range(5):
            conn.send(n)
        """,
        name,
        timeout=10,
    )
    read_two = """
        import os, signal, sys
        from osipc_mp import Pipe
        conn = Pipe(sys.argv[1]).end("a")
        print(conn.recv(), conn.recv(), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    assert peer(read_two, name, check=False, timeout=10).stdout == "0 1\n"
    gc_keeps_only_the_channel()
    peer(SEND_ARG, name, "after the killed reader", timeout=10)
    got = peer(RECEIVE_ALL, name, timeout=10).stdout
    assert got == "open\n'after the killed reader'\nEOF\n"
    # A reader killed after the message, before its END: only the END waits, and it
    # ends nothing of the next run's.
    peer(SEND_ARG, name, "read", timeout=10)
    killed = """
        import os, signal, sys
        from osipc_mp import Pipe
        conn = Pipe(sys.argv[1]).end("a")
        print(conn.recv(), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    assert peer(killed, name, check=False, timeout=10).stdout == "read\n"
    gc_keeps_only_the_channel()
    receiver = spawn(RECEIVE_ALL, name)
    assert receiver.stdout is not None
    assert receiver.stdout.readline() == "open\n"
    peer(SEND_ARG, name, "next run", timeout=10)
    assert finish(receiver, timeout=10) == "'next run'\nEOF\n"
    assert depths(name) == [0, 0]


def test_bytes_api_like_the_stdlib(ends: tuple[osipc_mp.Connection, osipc_mp.Connection]) -> None:
    a, b = ends
    b.send_bytes(b"0123456789", 2, 3)
    b.send_bytes(array.array("i", [1, 2]))
    b.send_bytes(b"")
    b.send_bytes(b"too long for the buffer")
    assert a.recv_bytes() == b"234"
    into = array.array("i", [0, 0, 0])
    assert a.recv_bytes_into(into, 4) == 8
    assert into.tolist() == [0, 1, 2]
    assert a.recv_bytes(maxlength=0) == b""  # an empty message is data, not EOF
    with pytest.raises(OSError, match="bad message length"):
        a.recv_bytes(maxlength=4)
    small = bytearray(4)
    with pytest.raises(BufferTooShort) as caught:
        a.recv_bytes_into(small)
    assert caught.value.args[0] == b"too long for the buffer"
    with pytest.raises(ValueError, match="offset"):
        b.send_bytes(b"abc", 4)
    with pytest.raises(ValueError, match="size"):
        b.send_bytes(b"abc", 1, 3)
    with pytest.raises(ValueError, match="negative"):
        a.recv_bytes(-1)
    with pytest.raises(ValueError, match="offset too large"):
        a.recv_bytes_into(small, 5)


def test_messages_larger_than_a_channel_arrive_whole(name: str) -> None:
    # The stdlib has no size limit; a channel carries 1 MiB at once, more in chunks.
    receiver = spawn(
        """
        import hashlib, sys
        from osipc_mp import Pipe
        conn = Pipe(sys.argv[1]).end("a")
        for _ in range(2):
            data = conn.recv_bytes()
            print(len(data), hashlib.sha256(data).hexdigest(), flush=True)
        print(conn.recv()["n"])
        """,
        name,
    )
    two_mib = bytes(range(256)) * (8 << 10)
    five_mib = bytes(range(255, -1, -1)) * (20 << 10)
    with osipc_mp.Pipe(name).end("b") as b:
        b.send_bytes(two_mib)
        b.send_bytes(five_mib)
        b.send({"n": 7, "pad": b"p" * (3 << 20)})
    expected = [f"{len(d)} {hashlib.sha256(d).hexdigest()}" for d in (two_mib, five_mib)]
    assert finish(receiver, timeout=30).splitlines() == [*expected, "7"]


def test_a_killed_writer_never_leaves_half_a_message(
    name: str,
    kill: Callable[[subprocess.Popen[str], float], str],
    rounds: Callable[[int, int], int],
) -> None:
    writer = """
        import sys
        from osipc_mp import Pipe
        conn = Pipe(sys.argv[1], capacity=1 << 16).end("b")
        print("ready", flush=True)
        n = int(sys.argv[2])
        while True:
            print("send", n, flush=True)
            conn.send((n, bytes([n % 251]) * 200_000))
            n += 1
        """
    pipe = osipc_mp.Pipe(name, capacity=1 << 16)
    cut = whole = 0
    for turn in range(rounds(5, 25)):
        proc = spawn(writer, name, str(turn * 1000))
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        with pipe.end("a") as a:  # this session's reader, draining while it is killed
            received: list[int] = []
            stop = threading.Event()

            def drain(
                a: osipc_mp.Connection = a,
                received: list[int] = received,
                stop: threading.Event = stop,
            ) -> None:
                while not stop.is_set():
                    try:
                        n, data = a.recv()
                    except EOFError:
                        return
                    assert data == bytes([n % 251]) * 200_000, f"message {n} is not whole"
                    received.append(n)

            thread = threading.Thread(target=drain)
            thread.start()
            out = kill(proc, 0.15)
            thread.join(10)
            assert not thread.is_alive()  # EOF came by itself
        sent = [int(line.split()[1]) for line in out.splitlines() if line]
        whole += len(received)
        cut += sum(1 for n in sent if n not in received)
    assert whole
    assert cut, "no kill landed in the middle of a message: the test proved nothing"


def test_one_way_pipe_has_a_reading_a_and_a_writing_b(name: str) -> None:
    pipe = osipc_mp.Pipe(name, duplex=False)
    with pipe.end("a") as r, pipe.end("b") as w:
        assert (r.readable, r.writable, w.readable, w.writable) == (True, False, False, True)
        w.send("one way")
        assert r.recv() == "one way"
        with pytest.raises(osipc.Unsupported, match="only receives"):
            r.send("back")
        with pytest.raises(osipc.Unsupported, match="only sends"):
            w.recv()


def test_every_process_must_open_the_pipe_the_same_way(name: str) -> None:
    with osipc_mp.Pipe(name).end("a"):
        with pytest.raises(osipc.InvalidArgument, match=r"duplex=True .*not .*duplex=False"):
            osipc_mp.Pipe(name, duplex=False).end("b")
        with pytest.raises(osipc.InvalidArgument, match=r"transport='shm'.*not .*'mq'"):
            osipc_mp.Pipe(name, transport="mq").end("b")
        with pytest.raises(osipc.InvalidArgument, match="is a Pipe, not a Queue"):
            osipc_mp.Queue(name)


def test_an_end_belongs_to_one_process(name: str) -> None:
    holder = spawn(
        """
        import sys
        from osipc_mp import Pipe
        conn = Pipe(sys.argv[1]).end("a")
        print("open", flush=True)
        sys.stdin.readline()
        """,
        name,
        stdin=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "open\n"
        with pytest.raises(osipc.AlreadyExists, match="is open in process"):
            osipc_mp.Pipe(name).end("a")
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        finish(holder, timeout=10)
    osipc_mp.Pipe(name).end("a").close()  # free again once that process exited


def test_the_stdlib_idiom_with_every_start_method_both_ways(name: str, tmp_path: object) -> None:
    # The stdlib's Pipe example with both ends named, and the parent closing its copy of
    # the child's end right after start(), as the stdlib recommends: with fork (Linux's
    # default) the child holds a copy of both ends, as a forked child holds a stdlib
    # pipe's descriptors; with spawn and forkserver the end is pickled and moves there.
    script = """
import multiprocessing, sys, time
from osipc_mp import Pipe

def sender(conn):
    for n in range(3):
        time.sleep(0.05)          # the parent has closed its copy by now
        conn.send(n)
    conn.close()

def receiver(conn):
    got = []
    while True:
        try:
            got.append(conn.recv())
        except EOFError:
            break
    print("child got", got, flush=True)

if __name__ == '__main__':
    multiprocessing.set_start_method(sys.argv[2])
    parent_conn, child_conn = Pipe(sys.argv[1]).end("a"), Pipe(sys.argv[1]).end("b")
    p = multiprocessing.Process(target=sender, args=(child_conn,))
    p.start()
    child_conn.close()
    got = []
    while True:
        try:
            got.append(parent_conn.recv())
        except EOFError:
            break
    p.join()
    parent_conn.close()
    print("parent got", got, p.exitcode, flush=True)
    parent_conn, child_conn = Pipe(sys.argv[1]).end("a"), Pipe(sys.argv[1]).end("b")
    p = multiprocessing.Process(target=receiver, args=(child_conn,))
    p.start()
    child_conn.close()
    for n in range(3):
        parent_conn.send(n)
    parent_conn.close()
    p.join()
    print("exit", p.exitcode)
"""
    path = f"{tmp_path}/recipe.py"
    with open(path, "w") as file:
        file.write(script)
    for method in ("fork", "spawn", "forkserver"):
        done = subprocess.run(
            [sys.executable, "-X", "dev", "-I", path, name, method],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, (method, done.stderr)
        expected = "parent got [0, 1, 2] 0\nchild got [0, 1, 2]\nexit 0\n"
        assert (method, done.stdout) == (method, expected), done.stderr
        assert done.stderr == ""


def test_a_forked_childs_copy_holds_the_end_until_it_closes_or_dies(name: str) -> None:
    # As a stdlib pipe's descriptor in a forked child: the parent's close does not end
    # the stream while the child holds its copy; the child's death does. And nobody else
    # opens the end meanwhile.
    holder = spawn(
        """
        import os, sys, time
        from osipc_mp import Pipe
        conn = Pipe(sys.argv[1]).end("b")
        pid = os.fork()
        if pid == 0:
            conn.send("from the child")
            time.sleep(60)
            os._exit(0)
        conn.close()                   # at once: the child may not even have run yet
        print(pid, flush=True)
        os.waitpid(pid, 0)
        """,
        name,
    )
    assert holder.stdout is not None
    child = int(holder.stdout.readline())
    with osipc_mp.Pipe(name).end("a") as a:
        assert a.recv() == "from the child"
        assert not a.poll(0.5)  # its copy is open: no EOF
        with pytest.raises(osipc.AlreadyExists, match=f"process {child}"):
            osipc_mp.Pipe(name).end("b")
        os.kill(child, signal.SIGKILL)
        assert a.poll(5)
        with pytest.raises(EOFError):
            a.recv()
    finish(holder, timeout=10)


def test_a_forked_child_that_execs_holds_no_copy_of_the_end(name: str) -> None:
    # subprocess.Popen with preexec_fn forks (so the fork hooks run) and then execs, as
    # do fork() + exec*() and pty.fork(): exec closes a stdlib pipe's descriptors, so the
    # program started holds nothing, however long it runs.
    sender = spawn(
        """
        import os, subprocess, sys
        from osipc_mp import Pipe
        conn = Pipe(sys.argv[1]).end("b")
        conn.send("hello")
        helper = subprocess.Popen(["sleep", "60"], preexec_fn=os.setpgrp)
        conn.close()
        print(helper.pid, flush=True)
        sys.stdin.readline()
        helper.kill()
        helper.wait()
        """,
        name,
        stdin=subprocess.PIPE,
    )
    assert sender.stdout is not None
    assert sender.stdin is not None
    helper = int(sender.stdout.readline())
    try:
        with osipc_mp.Pipe(name).end("a") as a:
            assert a.recv() == "hello"
            assert a.poll(5)  # at once, not when sleep ends
            with pytest.raises(EOFError):
                a.recv()
        osipc_mp.Pipe(name).end("b").close()  # nobody holds "b"
        assert _process_alive(helper)  # (the helper still runs: the test meant it)
    finally:
        sender.stdin.write("\n")
        sender.stdin.flush()
        finish(sender, timeout=10)


def _process_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_a_pickled_end_is_resumed_and_the_original_refuses_use(name: str) -> None:
    pipe = osipc_mp.Pipe(name)
    with pipe.end("a") as a:
        b = pipe.end("b")
        b.send("before")
        data = pickle.dumps(b)
        with pytest.raises(osipc.Closed, match="passed to another process"):
            b.send("after it moved")
        with pytest.raises(osipc.AlreadyExists, match="being passed"):
            pipe.end("b")
        moved = pickle.loads(data)
        assert moved.session == b.session
        moved.send("after")
        moved.close()
        assert [a.recv(), a.recv()] == ["before", "after"]
        with pytest.raises(EOFError):
            a.recv()


def test_closed_connection_and_bad_arguments(name: str) -> None:
    pipe = osipc_mp.Pipe(name)
    with pytest.raises(osipc.InvalidArgument, match='"a" and "b"'):
        pipe.end("c")
    with pytest.raises(osipc.InvalidArgument, match="transport"):
        osipc_mp.Pipe(name, transport="zmq")
    with pytest.raises(osipc.InvalidURL, match="'--'"):
        osipc_mp.Pipe(name + "--a")
    conn = pipe.end("a")
    with pytest.raises(osipc.Unsupported, match="poll"):
        conn.fileno()
    conn.close()
    conn.close()
    assert conn.closed
    with pytest.raises(osipc.Closed):
        conn.send(1)
    with pytest.raises(osipc.Closed):
        conn.poll()
    with pytest.raises(osipc.EncodeError), pipe.end("b") as b:
        b.send(lambda: None)


def test_mq_transport_carries_messages_larger_than_msgsize(name: str) -> None:
    pipe = osipc_mp.Pipe(name, transport="mq", maxmsg=2, msgsize=256)
    with pipe.end("a") as a, pipe.end("b") as b:
        b.send("over mq")
        assert a.recv() == "over mq"
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.append(a.recv_bytes()))
        reader.start()
        b.send_bytes(b"x" * 3000)  # 13 frames through a queue of 2
        reader.join(10)
        assert got == [b"x" * 3000]
