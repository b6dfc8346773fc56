"""mq:// beyond the conformance suite: priorities, the kernel's limits named in errors,
inherited descriptors, the frame escape, C peers, ownership and permissions."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator

import posix_ipc
import pytest
from _helpers import NOBODY, finish, need_root, peer, runtime_for, spawn

import osipc
from osipc import _limits

Url = Callable[..., str]
SMALL = {"maxmsg": 8, "msgsize": 256}


@pytest.fixture
def mq_url(url: Url) -> Iterator[str]:
    target = url("mq", **SMALL)
    yield target
    osipc.unlink(target.split("?")[0], missing_ok=True)


def test_priorities_come_first_and_fifo_within_one(mq_url: str) -> None:
    with osipc.sender(mq_url) as tx, osipc.receiver(mq_url) as rx:
        tx.send(b"low1")
        tx.send(b"high", priority=9)
        tx.send(b"low2")
        tx.send_many([b"mid1", b"mid2"], priority=5)
        tx.end()  # priority 0: after everything already queued
        got = list(rx)
        assert got == [b"high", b"mid1", b"mid2", b"low1", b"low2"]
        tx.send(b"p", priority=32767)
        assert rx.recv(timeout=1) == b"p" and rx.priority == 32767
        for bad in (-1, 32768, 1.5, True, 0.0, None, False):
            with pytest.raises(osipc.InvalidArgument, match=r"0\.\.32767"):
                tx.send(b"x", priority=bad)  # type: ignore[arg-type]
            with pytest.raises(osipc.InvalidArgument, match=r"0\.\.32767"):
                tx.send_many([b"x"], priority=bad)  # type: ignore[arg-type]
        with pytest.raises(osipc.Timeout):
            rx.recv(timeout=0)  # nothing went


def test_info_reports_the_queue(mq_url: str) -> None:
    with osipc.sender(mq_url, mode=0o640) as tx:
        tx.send(b"a")
        tx.send(b"b")
        info = osipc.info(mq_url)
    assert (info.kind, info.depth, info.capacity, info.max_message_size) == ("mq", 2, 8, 256)
    assert info.owner == os.geteuid() and info.mode == 0o640 and info.state == "live"
    assert info.path == "/" + mq_url[len("mq://") :].split("?", maxsplit=1)[0]


@pytest.mark.parametrize(
    ("option", "value", "sysctl"),
    [("maxmsg", 11, "msg_max"), ("msgsize", 8193, "msgsize_max")],
)
def test_sizes_beyond_the_sysctls_name_them(url: Url, option: str, value: int, sysctl: str) -> None:
    limit = _limits.mqueue(sysctl)
    assert limit is not None
    if _limits.has_cap_sys_resource():
        pytest.skip("CAP_SYS_RESOURCE may exceed the sysctls")
    with pytest.raises(osipc.InvalidURL) as info:
        osipc.sender(url("mq", **{option: limit + 1}))
    assert f"fs.mqueue.{sysctl}={limit}" in str(info.value)
    assert f"/proc/sys/fs/mqueue/{sysctl}" in str(info.value)


@pytest.mark.parametrize(
    ("option", "value", "hard"), [("maxmsg", 65537, 65536), ("msgsize", 10**8, 16777216)]
)
def test_sizes_beyond_the_kernels_hard_limits_say_so(
    url: Url, option: str, value: int, hard: int
) -> None:
    # No sysctl goes past HARD_MSGMAX / HARD_MSGSIZEMAX: advising one would mislead.
    with pytest.raises(osipc.InvalidURL, match=f"hard limit of {hard}") as info:
        osipc.sender(url("mq", **{option: value}))
    assert "sysctl" not in str(info.value)


def test_message_too_large_names_msgsize_and_its_limit(mq_url: str) -> None:
    with osipc.sender(mq_url) as tx, osipc.receiver(mq_url) as rx:
        with pytest.raises(osipc.MessageTooLarge) as info:
            tx.send(b"x" * 257)
        assert "msgsize=256" in str(info.value) and "fs.mqueue.msgsize_max=" in str(info.value)
        assert (info.value.size, info.value.limit) == (257, 256)
        tx.send(b"x" * 256)
        with pytest.raises(osipc.MessageTooLarge, match="0xC1"):
            tx.send(b"\xc1" + b"x" * 255)  # the escape byte makes it 257
        assert rx.recv(timeout=1) == b"x" * 256
        with pytest.raises(osipc.Timeout):
            rx.recv(timeout=0)


def test_a_queue_bigger_than_the_rlimit_is_refused_before_the_syscall(url: Url) -> None:
    done = peer(
        """
        import resource, sys, osipc
        _, hard = resource.getrlimit(resource.RLIMIT_MSGQUEUE)
        resource.setrlimit(resource.RLIMIT_MSGQUEUE, (1000, hard))
        try:
            osipc.sender(sys.argv[1])
        except osipc.InvalidURL as exc:
            print(exc)
        """,
        url("mq", maxmsg=4, msgsize=1024),
    )
    assert "RLIMIT_MSGQUEUE (1000 bytes" in done.stdout and "needs 4480 bytes" in done.stdout


def test_running_out_of_the_per_user_budget_says_so() -> None:
    """A fresh uid has the whole budget: default-size queues run out after exactly
    RLIMIT_MSGQUEUE / 82880 of them, with an error naming the limit, not EMFILE's words."""
    need_root("to give a peer a uid of its own (RLIMIT_MSGQUEUE is per user)")
    uid = 3_000_000 + os.getpid() % 1_000_000
    with runtime_for(uid) as env:
        done = peer(
            """
            import osipc, os
            made = []
            try:
                while len(made) < 50:
                    url = f"mq://budget-{os.getpid()}-{len(made)}"
                    osipc.sender(url).close()
                    made.append(url)
            except osipc.TransportError as exc:
                print(len(made))
                print(exc)
            finally:
                for url in made:
                    osipc.unlink(url)
            """,
            user=uid,
            env=env,
        )
    count, message = done.stdout.split("\n", 1)
    soft = _limits.rlimit_msgqueue()[0]
    assert int(count) == soft // _limits.mq_bytes(10, 8192)
    assert "RLIMIT_MSGQUEUE" in message and f"{soft} bytes" in message
    assert "maximum number of files" not in message


def test_queues_max_is_named(tmp_path: os.PathLike[str]) -> None:
    need_root("to lower fs.mqueue.queues_max in a private IPC namespace")
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux)")
    env = dict(os.environ, OSIPC_RUNTIME_DIR=str(tmp_path))
    code = textwrap.dedent(
        """
        import osipc
        open("/proc/sys/fs/mqueue/queues_max", "w").write("1")
        osipc.sender("mq://first?maxmsg=1&msgsize=16").close()
        try:
            osipc.sender("mq://second?maxmsg=1&msgsize=16")
        except osipc.TransportError as exc:
            print(exc)
        """
    )
    done = subprocess.run(
        ["unshare", "--ipc", "--", sys.executable, "-I", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "fs.mqueue.queues_max=1" in done.stdout
    shutil.rmtree(os.path.join(str(tmp_path), ".meta"), ignore_errors=True)  # ns is gone


def test_escape_keeps_text_unchanged_on_the_wire(mq_url: str) -> None:
    name = "/" + mq_url[len("mq://") :].split("?", maxsplit=1)[0]
    with osipc.sender(mq_url) as tx, osipc.receiver(mq_url) as rx:
        raw = posix_ipc.MessageQueue(name)
        try:
            tx.send(b"plain text")
            tx.send(b"\xc1starts with the escape")
            tx.send(b"")
            assert raw.receive(0)[0] == b"plain text", "text goes unchanged"
            assert raw.receive(0)[0] == b"\xc1\xc1starts with the escape"
            assert raw.receive(0)[0] == b"\xc1", "an empty payload is escaped, not a marker"
            raw.send(b"from a raw peer")
            raw.send(b"\xc1\xc1x")
            raw.send(b"")
        finally:
            raw.close()
        assert rx.recv(timeout=1) == b"from a raw peer"
        assert rx.recv(timeout=1) == b"\xc1x"
        with pytest.raises(osipc.EndOfStream):
            rx.recv(timeout=1)


def test_raw_mode_is_exact_bytes(url: Url) -> None:
    target = url("mq", raw=1, **SMALL)
    with osipc.sender(target) as tx, osipc.receiver(target) as rx:
        tx.send(b"\xc1")
        tx.send(b"")
        assert rx.recv(timeout=1) == b"\xc1"
        assert rx.recv(timeout=1) == b"", "raw: zero-length is data"
        assert not tx.capabilities.end_of_stream
        with pytest.raises(osipc.Unsupported, match="end-of-stream"):
            tx.end()
    osipc.unlink(target.split("?")[0])


def test_mode_is_exact_whatever_the_umask(url: Url) -> None:
    target = url("mq", mode="0664", **SMALL)
    old = os.umask(0o077)
    try:
        osipc.sender(target).close()
    finally:
        os.umask(old)
    assert osipc.info(target).mode == 0o664
    osipc.unlink(target)


def test_adopt_an_inherited_read_only_queue_fd_like_systemd(mq_url: str) -> None:
    name = "/" + mq_url[len("mq://") :].split("?", maxsplit=1)[0]
    with osipc.sender(mq_url) as tx:
        # systemd's ListenMessageQueue= gives the service a read-only descriptor
        queue = posix_ipc.MessageQueue(name, read=True, write=False)
        try:
            child = spawn(
                """
                import sys, time, osipc
                with osipc.receiver("mq://svc", fd=int(sys.argv[1])) as rx:
                    started = time.monotonic()
                    try:
                        rx.recv(timeout=0.2)
                    except osipc.Timeout:
                        waited = time.monotonic() - started
                    print("ready", flush=True)
                    first = rx.recv(timeout=10)
                    print(first.decode(), rx.priority, rx.capabilities.max_message_size,
                          0.19 < waited < 2)
                    try:
                        osipc.sender("mq://svc", fd=int(sys.argv[1]))
                    except osipc.InvalidArgument as exc:
                        print("ListenMessageQueue" in str(exc))
                    for msg in rx:
                        print(repr(msg))
                """,
                str(queue.mqd),
                pass_fds=(queue.mqd,),
            )
        finally:
            queue.close()
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        tx.send(b"hello", priority=3)
        osipc.unlink(mq_url)  # adopted descriptors keep working after mq_unlink
        tx.send(b"after unlink")
        tx.send(b"\xc1x")
        tx.end()
        lines = finish(child).splitlines()
    assert lines == ["hello 3 256 True", "True", "b'after unlink'", "b'\\xc1x'"]


def test_adopt_an_inherited_queue_fd_for_sending(url: Url) -> None:
    # The ctypes mq_timedsend path: posix_ipc cannot wrap a descriptor it did not open.
    target = url("mq", maxmsg=2, msgsize=8)
    name = "/" + target[len("mq://") :].split("?", maxsplit=1)[0]
    with osipc.receiver(target) as rx:
        raw = posix_ipc.MessageQueue(name, read=True, write=True)
        try:
            with osipc.sender("mq://svc", fd=os.dup(raw.mqd)) as tx:
                assert tx.capabilities.max_message_size == 8
                tx.send(b"low")
                tx.send(b"\xc1hi", priority=7)
                assert raw.receive(0) == (b"\xc1\xc1hi", 7), "escaped, at its priority"
                assert raw.receive(0) == (b"low", 0)
                with pytest.raises(osipc.MessageTooLarge, match=r"0xC1 escape.*msgsize=8"):
                    tx.send(b"\xc1" + b"x" * 7)
                tx.send_many([b"1", b"2"])
                started = time.monotonic()
                with pytest.raises(osipc.Timeout, match="full"):
                    tx.send(b"3", timeout=0.2)
                assert 0.19 <= time.monotonic() - started < 2
                drain = threading.Timer(0.2, lambda: raw.receive(0))
                drain.start()
                try:
                    tx.send(b"3", timeout=10)  # waits in poll() until there is room
                finally:
                    drain.join()
                assert [rx.recv(timeout=1) for _ in range(2)] == [b"2", b"3"]
                tx.end(timeout=1)
            with pytest.raises(osipc.EndOfStream):
                rx.recv(timeout=1)
        finally:
            raw.close()
    osipc.unlink(target)


def test_a_descriptor_that_is_not_a_queue_is_refused() -> None:
    with tempfile.TemporaryFile() as regular, pytest.raises(osipc.InvalidArgument, match="POSIX"):
        osipc.receiver("mq://x", fd=regular.fileno())
    with tempfile.TemporaryFile() as regular:
        closed = regular.fileno()
    with pytest.raises(osipc.InvalidArgument, match="not an open descriptor"):
        osipc.receiver("mq://x", fd=closed)
    for option in ("maxmsg=2", "msgsize=64", "mode=0644", "exclusive=1"):
        with pytest.raises(osipc.InvalidURL, match="would not apply"):
            osipc.receiver(f"mq://x?fd=0&{option}")


def test_a_queue_created_by_another_user_is_refused(url: Url) -> None:
    need_root("to run a peer as another user")
    target = url("mq", mode="0666", **SMALL)
    with runtime_for(NOBODY) as env:
        peer("import sys, osipc; osipc.sender(sys.argv[1]).close()", target, user=NOBODY, env=env)
    try:
        with pytest.raises(osipc.PermissionDenied, match=r"uid 65534.*trust_existing=True"):
            osipc.sender(target)
        with osipc.sender(target, trust_existing=True) as tx:
            tx.send(b"trusted")
        assert osipc.info(target).depth == 1
    finally:
        osipc.unlink(target)


def test_the_kernel_refuses_an_unprivileged_user(url: Url) -> None:
    need_root("to run a peer as nobody")
    target = url("mq", **SMALL)  # mode 0600, owned by root
    osipc.sender(target).close()
    try:
        with runtime_for(NOBODY) as env:
            done = peer(
                """
                import sys, osipc
                for role in (osipc.sender, osipc.receiver):
                    try:
                        role(sys.argv[1], trust_existing=True)
                    except osipc.OsipcError as exc:
                        print(type(exc).__name__, isinstance(exc, PermissionError), exc.errno)
                """,
                target,
                user=NOBODY,
                env=env,
            )
        assert done.stdout.split() == ["PermissionDenied", "True", str(errno.EACCES)] * 2
    finally:
        osipc.unlink(target)


C_PEER = r"""
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
    mqd_t q = mq_open(argv[2], argv[1][0] == 's' ? O_WRONLY : O_RDONLY);
    if (q == (mqd_t)-1) { perror("mq_open"); return 2; }
    if (argv[1][0] == 's') {
        if (mq_send(q, argv[3], strlen(argv[3]), 7) != 0) { perror("mq_send"); return 3; }
    } else {
        char buf[8192]; unsigned prio;
        ssize_t n = mq_receive(q, buf, sizeof buf, &prio);
        if (n < 0) { perror("mq_receive"); return 4; }
        printf("%u:%.*s\n", prio, (int)n, buf);
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def c_peer(tmp_path_factory: pytest.TempPathFactory) -> str:
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("no C compiler (gcc) on this machine for the C interop test")
    folder = tmp_path_factory.mktemp("cpeer")
    source, binary = folder / "mqpeer.c", folder / "mqpeer"
    source.write_text(C_PEER)
    subprocess.run([gcc, "-o", str(binary), str(source), "-lrt"], check=True, timeout=60)
    return str(binary)


def test_a_c_program_is_a_peer(mq_url: str, c_peer: str) -> None:
    name = "/" + mq_url[len("mq://") :].split("?", maxsplit=1)[0]
    with osipc.receiver(mq_url) as rx, osipc.sender(mq_url) as tx:
        subprocess.run([c_peer, "send", name, "hello from C"], check=True, timeout=10)
        assert rx.recv(timeout=5) == b"hello from C" and rx.priority == 7
        tx.send(b"hello from Python", priority=4)
        done = subprocess.run(
            [c_peer, "recv", name], capture_output=True, text=True, timeout=10, check=False
        )
        assert done.stdout == "4:hello from Python\n"


def test_a_receiver_closed_while_it_waits_never_takes_another_queue_s_message(url: Url) -> None:
    # The waiting thread's descriptor is closed under it and its number may be reused by
    # a queue opened meanwhile: after the wait it must read the handle anew (Closed), not
    # receive from whatever now has that number.
    first, second = url("mq", maxmsg=4, msgsize=64), url("mq", maxmsg=4, msgsize=64)
    rx1, tx1, tx2 = osipc.receiver(first), osipc.sender(first), osipc.sender(second)
    out: list[object] = []

    def wait() -> None:
        try:
            out.append(rx1.recv(timeout=3))
        except osipc.OsipcError as exc:
            out.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.2)
    rx1.close()
    with osipc.receiver(second) as rx2:
        tx2.send(b"meant for rx2")
        tx1.send(b"wakes the old wait")
        waiter.join(5)
        assert len(out) == 1 and isinstance(out[0], osipc.Closed), out
        assert rx2.recv(timeout=1) == b"meant for rx2"
    for handle in (tx1, tx2):
        handle.close()
    osipc.unlink(first.split("?")[0])
    osipc.unlink(second.split("?")[0])
