"""fifo:// beyond the conformance suite: shell peers, many writers and readers, killed
writers, timeouts without peers, end-of-stream by closing, inherited fds, ownership."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator

import pytest
from _helpers import NOBODY, finish, need_root, peer, spawn

import osipc
from osipc.transports.fifo import F_GETPIPE_SZ

Url = Callable[..., str]


@pytest.fixture
def fifo_url(url: Url) -> Iterator[str]:
    target = url("fifo")
    yield target
    osipc.unlink(target.split("?")[0], missing_ok=True)


def path_of(target: str) -> str:
    return str(osipc.info(target).path)


def test_shell_lines_arrive_as_messages(fifo_url: str) -> None:
    with osipc.receiver(fifo_url, framing="lines") as rx:
        path = path_of(fifo_url)
        subprocess.run(
            ["sh", "-c", f"echo hi > {path}; printf 'two\\nthree\\n' > {path}"],
            check=True,
            timeout=10,
        )
        assert [rx.recv(timeout=5) for _ in range(3)] == [b"hi", b"two", b"three"]
        subprocess.run(["sh", "-c", f"printf 'no newline' > {path}"], check=True, timeout=10)
        assert rx.recv(timeout=5) == b"no newline", "a last line without '\\n' still arrives"
        with pytest.raises(osipc.EndOfStream):
            rx.recv(timeout=5)


def test_lines_from_osipc_to_a_shell_reader(fifo_url: str) -> None:
    with osipc.receiver(fifo_url, framing="lines"):
        path = path_of(fifo_url)
    reader = subprocess.Popen(["head", "-n", "2", path], stdout=subprocess.PIPE, text=True)
    try:
        with osipc.sender(fifo_url, framing="lines") as tx:
            tx.send(b"first", timeout=10)
            tx.send(b"second", timeout=10)
        assert reader.communicate(timeout=10)[0] == "first\nsecond\n"
    finally:
        reader.kill()
        reader.wait()


def test_lines_refuse_what_a_line_cannot_carry(fifo_url: str) -> None:
    with osipc.sender(fifo_url, framing="lines") as tx:
        with pytest.raises(osipc.InvalidArgument, match="containing"):
            tx.send(b"a\nb")
        with pytest.raises(osipc.MessageTooLarge, match="PIPE_BUF") as info:
            tx.send(b"x" * 4096)
        assert info.value.limit == 4095
        with pytest.raises(osipc.Unsupported):
            tx.end()


def test_sender_without_receiver_times_out(fifo_url: str) -> None:
    with osipc.sender(fifo_url) as tx:
        started = time.monotonic()
        with pytest.raises(osipc.Timeout, match="no receiver") as info:
            tx.send(b"x", timeout=0.3)
        assert 0.29 <= time.monotonic() - started < 3
        assert isinstance(info.value, TimeoutError)
        with pytest.raises(osipc.Timeout, match="no receiver"):
            tx.send(b"x", timeout=0)


def test_receiver_without_sender_times_out_instead_of_ending(fifo_url: str) -> None:
    with osipc.receiver(fifo_url) as rx:
        started = time.monotonic()
        with pytest.raises(osipc.Timeout):
            rx.recv(timeout=0.3)
        assert 0.29 <= time.monotonic() - started < 3


def test_stream_ends_when_the_last_writer_closes(fifo_url: str) -> None:
    with osipc.receiver(fifo_url) as rx:
        first, second = osipc.sender(fifo_url), osipc.sender(fifo_url)
        first.send(b"1", timeout=5)
        second.send(b"2", timeout=5)
        first.close()
        assert rx.recv_many(5, timeout=5) == [b"1", b"2"]
        with pytest.raises(osipc.Timeout):
            rx.recv(timeout=0.2)  # one writer is still there
        second.close()
        with pytest.raises(osipc.EndOfStream):
            rx.recv(timeout=5)
        with pytest.raises(osipc.EndOfStream):
            rx.recv(timeout=5)  # reported on every call while no writer has it open
        with osipc.sender(fifo_url) as third:
            third.send(b"3", timeout=5)
            assert rx.recv(timeout=5) == b"3", "a new writer starts a new stream"


def test_keep_open_receivers_outlive_their_writers(fifo_url: str) -> None:
    with osipc.receiver(fifo_url, keep_open=True) as rx:
        for n in range(3):
            with osipc.sender(fifo_url) as tx:
                tx.send(str(n).encode(), timeout=5)
        assert rx.recv_many(5, timeout=5) == [b"0", b"1", b"2"]
        with pytest.raises(osipc.Timeout):
            rx.recv(timeout=0.2)
        with osipc.sender(fifo_url) as tx:
            tx.end(timeout=5)
        with pytest.raises(osipc.EndOfStream):
            rx.recv(timeout=5)


def test_pipe_size(fifo_url: str) -> None:
    with osipc.receiver(fifo_url, pipe_size=1 << 20):
        fd = os.open(path_of(fifo_url), os.O_RDONLY | os.O_NONBLOCK)
        try:
            assert fcntl.fcntl(fd, F_GETPIPE_SZ) == 1 << 20
        finally:
            os.close(fd)
    from osipc import _limits

    if _limits.has_cap_sys_resource():
        pytest.skip("CAP_SYS_RESOURCE may exceed fs.pipe-max-size")
    with pytest.raises(osipc.InvalidURL, match=r"fs\.pipe-max-size=\d+"):
        osipc.receiver(fifo_url, pipe_size=(_limits.pipe_max_size() or 0) * 2)


def test_receiver_close_gives_unread_messages_back(fifo_url: str) -> None:
    with osipc.sender(fifo_url) as tx:
        first = osipc.receiver(fifo_url)
        tx.send_many([b"a", b"b", b"c"], timeout=5)
        assert first.recv(timeout=5) == b"a"  # b and c now sit in first's buffer
        first.close()
        with osipc.receiver(fifo_url) as second:
            assert second.recv_many(5, timeout=5) == [b"b", b"c"]


def test_timed_out_large_message_is_withdrawn(fifo_url: str) -> None:
    with osipc.receiver(fifo_url) as rx, osipc.sender(fifo_url) as tx:
        with pytest.raises(osipc.Timeout):
            tx.send(b"L" * (1 << 20), timeout=0.2)  # the pipe fills; nobody reads
        drained = []
        reader_deadline = time.monotonic() + 5
        while time.monotonic() < reader_deadline:
            try:
                drained += rx.recv_many(100, timeout=0.1)
            except osipc.Timeout:
                break
        tx.send(b"next", timeout=5)
        assert rx.recv(timeout=5) == b"next"
        assert drained == [], "parts of the withdrawn message were delivered"


def test_data_that_is_not_frames_is_reported(fifo_url: str) -> None:
    with osipc.receiver(fifo_url) as rx:
        fd = os.open(path_of(fifo_url), os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, b"hello\n")
            with pytest.raises(osipc.Broken, match="framing=lines"):
                rx.recv(timeout=5)
        finally:
            os.close(fd)


def test_a_short_shell_write_to_a_frames_fifo_is_an_error_not_a_silent_drop(
    fifo_url: str,
) -> None:
    with osipc.receiver(fifo_url) as rx:
        path = path_of(fifo_url)
        subprocess.run(["sh", "-c", f"echo hi > {path}"], check=True, timeout=10)
        with pytest.raises(osipc.Broken, match="framing=lines"):
            rx.recv(timeout=5)  # 3 bytes: not even a frame header, yet never ignored


def test_a_writer_that_stops_mid_frame_is_reported_after_the_whole_messages(
    fifo_url: str,
) -> None:
    with osipc.receiver(fifo_url) as rx:
        fd = os.open(path_of(fifo_url), os.O_WRONLY | os.O_NONBLOCK)
        try:  # a DATA frame, then a header that promises 5 bytes and brings 2
            os.write(fd, b"\xc1\x02\x00\x00\x00ok" + b"\xc1\x05\x00\x00\x00ab")
        finally:
            os.close(fd)
        assert rx.recv(timeout=5) == b"ok"
        with pytest.raises(osipc.Broken, match="in the middle of a message; 7 bytes"):
            rx.recv(timeout=5)
        with pytest.raises(osipc.EndOfStream):
            rx.recv(timeout=5)


def test_concurrent_writers_of_large_messages_never_interleave(fifo_url: str) -> None:
    """Four processes send messages of 1 B to 300 KB; every one arrives whole, in its
    writer's order."""
    writer = """
        import hashlib, os, random, sys, osipc
        url, wid = sys.argv[1], int(sys.argv[2])
        rng = random.Random(wid)
        with osipc.sender(url) as tx:
            for seq in range(25):
                body = os.urandom(rng.choice([1, 100, 4000, 5000, 70000, 300000]))
                head = b"%d:%d:" % (wid, seq) + hashlib.sha256(body).digest()
                tx.send(head + body, timeout=30)
    """
    with osipc.receiver(fifo_url) as rx:
        holder = osipc.sender(fifo_url)  # so a writer finishing early does not end the stream
        writers = [spawn(writer, fifo_url, str(wid)) for wid in range(4)]
        seen: dict[int, int] = {}
        for _ in range(100):
            msg = rx.recv(timeout=30)
            wid_s, seq_s, rest = msg.split(b":", 2)
            digest, body = rest[:32], rest[32:]
            assert hashlib.sha256(body).digest() == digest, "a torn or mixed message"
            wid, seq = int(wid_s), int(seq_s)
            assert seq == seen.get(wid, -1) + 1, "out of order within a writer"
            seen[wid] = seq
        for proc in writers:
            finish(proc)
        holder.close()
        with pytest.raises(osipc.EndOfStream):
            rx.recv(timeout=10)


def test_two_receivers_get_every_message_exactly_once(fifo_url: str) -> None:
    reader = """
        import sys, osipc
        with osipc.receiver(sys.argv[1]) as rx:
            print("ready", flush=True)
            got = [msg.decode() for msg in rx]
        print(" ".join(got))
    """
    writer = """
        import sys, osipc
        with osipc.sender(sys.argv[1]) as tx:
            for i in range(300):
                tx.send(b"%s-%d" % (sys.argv[2].encode(), i) + b"." * (i * 37 % 9000), timeout=30)
    """
    readers = [spawn(reader, fifo_url) for _ in range(2)]
    for proc in readers:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    # Connected now that readers exist: the stream stays open until every writer is done.
    with osipc.sender(fifo_url):
        writers = [spawn(writer, fifo_url, name) for name in ("a", "b")]
        for proc in writers:
            finish(proc)
    got = [line.rstrip(".") for proc in readers for line in finish(proc).split()]
    expected = {f"{name}-{i}" for name in "ab" for i in range(300)}
    assert sorted(got) == sorted(expected), "lost or duplicated messages"
    assert all(line for line in got)


@pytest.mark.slow
def test_killed_writers_never_leave_a_torn_message(fifo_url: str) -> None:
    writer = """
        import hashlib, os, sys, osipc
        with osipc.sender(sys.argv[1]) as tx:
            n = 0
            while True:
                body = os.urandom(200000 + n % 7 * 1000)
                tx.send(hashlib.sha256(body).digest() + body, timeout=30)
                n += 1
    """
    with osipc.receiver(fifo_url) as rx, osipc.sender(fifo_url):
        received = 0
        for round_ in range(8):
            proc = spawn(writer, fifo_url)
            msg = rx.recv(timeout=30)  # the writer is running: now kill it mid-stream
            assert hashlib.sha256(msg[32:]).digest() == msg[:32], "torn message"
            received += 1
            time.sleep(round_ * 0.007)
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
            while True:
                try:
                    msg = rx.recv(timeout=0.5)
                except osipc.Timeout:
                    break
                assert hashlib.sha256(msg[32:]).digest() == msg[:32], "torn message"
                received += 1
        assert received >= 8
        with osipc.sender(fifo_url) as tx:
            tx.send(b"still works", timeout=5)
        assert rx.recv(timeout=5) == b"still works"


def test_adopt_an_inherited_fd_like_systemd(fifo_url: str) -> None:
    with osipc.receiver(fifo_url):
        path = path_of(fifo_url)
    # systemd opens ListenFIFO= O_RDWR and hands the fd to the service
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    try:
        child = spawn(
            """
            import sys, osipc
            with osipc.receiver("fifo://svc", fd=int(sys.argv[1])) as rx:
                print(rx.recv(timeout=10).decode(), rx.recv(timeout=10).decode())
            """,
            str(fd),
            pass_fds=(fd,),
        )
    finally:
        os.close(fd)
    with osipc.sender(fifo_url) as tx:
        tx.send(b"hello", timeout=10)
        tx.send(b"service", timeout=10)
    assert finish(child).split() == ["hello", "service"]


def test_adopted_fd_is_checked(fifo_url: str, tmp_path: object) -> None:
    with tempfile.TemporaryFile() as regular, pytest.raises(osipc.InvalidArgument, match="FIFO"):
        osipc.receiver("fifo://x", fd=regular.fileno())
    with tempfile.TemporaryFile() as regular:
        closed = regular.fileno()
    with pytest.raises(osipc.InvalidArgument, match=f"fd {closed} is not an open descriptor"):
        osipc.receiver("fifo://x", fd=closed)
    for option in ("mode=0644", "exclusive=1", "create=0"):
        with pytest.raises(osipc.InvalidURL, match="would not apply"):
            osipc.receiver(f"fifo://x?fd=0&{option}")
    with osipc.receiver(fifo_url):
        fd = os.open(path_of(fifo_url), os.O_RDONLY | os.O_NONBLOCK)
        try:
            with pytest.raises(osipc.InvalidArgument, match="not open for writing"):
                osipc.sender("fifo://x", fd=fd)
        finally:
            os.close(fd)


def test_absolute_paths(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(str(tmp_path), "abs.fifo")
    target = f"fifo://{path}"
    with osipc.receiver(target) as rx, osipc.sender(target) as tx:
        tx.send(b"abs", timeout=5)
        assert rx.recv(timeout=5) == b"abs"
    assert stat.S_ISFIFO(os.lstat(path).st_mode)
    osipc.unlink(target)
    assert not os.path.exists(path)
    regular = os.path.join(str(tmp_path), "file")
    open(regular, "w").close()
    with pytest.raises(osipc.TransportError, match="not a FIFO"):
        osipc.unlink(f"fifo://{regular}")
    assert os.path.exists(regular), "unlink must never remove a non-FIFO"
    for bad in ("fifo:///tmp/../etc/x", "fifo:///tmp//x", "fifo:///tmp/x/"):
        with pytest.raises(osipc.InvalidURL, match="normalised"):
            osipc.sender(bad)


def test_mode_is_exact_whatever_the_umask(fifo_url: str) -> None:
    old = os.umask(0o077)
    try:
        with osipc.receiver(fifo_url, mode=0o664):
            pass
    finally:
        os.umask(old)
    assert osipc.info(fifo_url).mode == 0o664


def test_symlink_in_place_of_the_fifo_is_refused(osipc_runtime: str, tmp_path: object) -> None:
    target = os.path.join(osipc_runtime, "victim")
    open(target, "w").close()
    os.symlink(target, os.path.join(osipc_runtime, "link.fifo"))
    try:
        with pytest.raises(osipc.OsipcError, match=r"symlink|not a FIFO"):
            osipc.receiver("fifo://link")
        with pytest.raises(osipc.OsipcError, match=r"symlink|not a FIFO"):
            osipc.sender("fifo://link", create=False)
    finally:
        os.unlink(os.path.join(osipc_runtime, "link.fifo"))
        os.unlink(target)


def test_a_fifo_created_by_another_user_is_refused(fifo_url: str) -> None:
    need_root("to create a FIFO owned by another user")
    with osipc.receiver(fifo_url):
        path = path_of(fifo_url)
    os.chown(path, NOBODY, NOBODY)
    with pytest.raises(osipc.PermissionDenied, match="trust_existing=True"):
        osipc.receiver(fifo_url)
    with osipc.receiver(fifo_url, trust_existing=True):
        pass


def test_unprivileged_user_is_refused_by_the_kernel(tmp_path: os.PathLike[str]) -> None:
    need_root("to run a peer as nobody")
    shared = tempfile.mkdtemp(prefix="osipc-shared-")
    os.chmod(shared, 0o755)
    target = f"fifo://{shared}/private.fifo"
    try:
        with osipc.receiver(target, mode=0o600):
            done = peer(
                """
                import sys, osipc
                try:
                    osipc.sender(sys.argv[1], trust_existing=True).send(b"x", timeout=1)
                except osipc.OsipcError as exc:
                    print(type(exc).__name__, exc.errno)
                """,
                target,
                user=NOBODY,
                env=dict(os.environ, OSIPC_RUNTIME_DIR=shared + "/nobody"),
            )
            assert done.stdout.split() == ["PermissionDenied", str(errno.EACCES)]
        osipc.unlink(target)
    finally:
        for entry in os.listdir(shared):
            full = os.path.join(shared, entry)
            os.rmdir(full) if os.path.isdir(full) else os.unlink(full)
        os.rmdir(shared)
