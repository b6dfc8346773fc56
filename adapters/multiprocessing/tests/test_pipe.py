from __future__ import annotations

import array
import signal
import time
from collections.abc import Iterator
from multiprocessing import BufferTooShort

import osipc_mp
import pytest
from _helpers import finish, spawn

import osipc


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


def test_an_end_belongs_to_one_process(name: str) -> None:
    holder = spawn(
        """
        import sys
        from osipc_mp import Pipe
        conn = Pipe(sys.argv[1]).end("a")
        print("open", flush=True)
        sys.stdin.readline()
        conn.close()
        """,
        name,
        stdin=-1,
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
    osipc_mp.Pipe(name).end("a").close()  # free again once that process closed it


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
    with osipc_mp.Pipe(name).end("a") as a:  # sees "b" alive
        sender.send_signal(signal.SIGKILL)
        sender.communicate(timeout=10)
        assert a.recv() == "before dying"
        assert a.poll(5)
        with pytest.raises(EOFError):
            a.recv()


def test_closed_connection_and_bad_arguments(name: str) -> None:
    pipe = osipc_mp.Pipe(name)
    with pytest.raises(osipc.InvalidArgument, match='"a" and "b"'):
        pipe.end("c")
    with pytest.raises(osipc.InvalidArgument, match="transport"):
        osipc_mp.Pipe(name, transport="zmq")
    conn = pipe.end("a")
    conn.close()
    conn.close()
    assert conn.closed
    with pytest.raises(osipc.Closed):
        conn.send(1)
    with pytest.raises(osipc.Closed):
        conn.poll()
    with pytest.raises(osipc.EncodeError), pipe.end("b") as b:
        b.send(lambda: None)


def test_mq_transport(name: str) -> None:
    pipe = osipc_mp.Pipe(name, transport="mq", maxmsg=2, msgsize=256)
    with pipe.end("a") as a, pipe.end("b") as b:
        b.send("over mq")
        assert a.recv() == "over mq"
        with pytest.raises(osipc.MessageTooLarge):
            b.send_bytes(b"x" * 300)
