"""System V: sysv+mq:// typed messages, keys, limits, timeouts and EINTR, raw peers (plain
sysv_ipc and C); sysv+sem:// with SEM_UNDO; modes, owners, permissions and the inventory.
(The sysv+shm:// ring itself runs the ring tests in test_rings.py.)"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import sysv_ipc
from _helpers import NOBODY, cli, finish, need_root, peer, runtime_for, spawn

import osipc
from osipc import _limits

Url = Callable[..., str]
Names = Callable[[str], str]


def fnv_key(name: str) -> int:
    """DESIGN §2's key, written out again: 32-bit FNV-1a of "osipc:" + NAME, 31 bits."""
    value = 0x811C9DC5
    for byte in ("osipc:" + name).encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return (value & 0x7FFFFFFF) or 1


def proc_row(kind: str, key: int) -> dict[str, int] | None:
    with open(f"/proc/sysvipc/{kind}") as table:
        header = next(table).split()
        for line in table:
            row = {k: int(v, 8 if k == "perms" else 10) for k, v in zip(header, line.split())}
            if row["key"] == key:
                return row
    return None


def name_of(url: str) -> str:
    return url.split("://", 1)[1].split("?", 1)[0]


@pytest.fixture
def literal_key(osipc_names: Names) -> Iterator[int]:
    """A literal key no other test or env uses, removed afterwards whatever made it."""
    key = fnv_key(osipc_names("lit")) | 0x40000000
    yield key
    for scheme in ("sysv+mq", "sysv+sem"):
        osipc.unlink(f"{scheme}://{key:#x}", missing_ok=True)


# -- keys --------------------------------------------------------------------------------


def test_a_name_has_the_documented_key(url: Url) -> None:
    target = url("sysv+mq")
    with osipc.sender(target, mode=0o640):
        row = proc_row("msg", fnv_key(name_of(target)))
        assert row is not None and row["perms"] & 0o777 == 0o640
        assert osipc.sysv_key(name_of(target)) == fnv_key(name_of(target))
    osipc.unlink(target)
    assert proc_row("msg", fnv_key(name_of(target))) is None


def test_a_literal_key_is_the_key(literal_key: int) -> None:
    target = f"sysv+mq://{literal_key:#x}"
    with osipc.sender(target) as tx:
        tx.send(b"by key")
    assert proc_row("msg", literal_key) is not None
    assert sysv_ipc.MessageQueue(literal_key).receive(False) == (b"by key", 1)
    assert osipc.info(target).path.startswith(f"key {literal_key:#010x}")
    osipc.unlink(target)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ("sysv+mq://0x0", "IPC_PRIVATE"),
        ("sysv+mq://0x100000000", "32-bit"),
        ("sysv+shm://0x1ffffffff", "32-bit"),
        ("sysv+sem://0x0", "IPC_PRIVATE"),
        ("sysv+mq://a/b", "cannot contain '/'"),
    ],
)
def test_keys_are_range_checked_before_any_syscall(bad: str, match: str) -> None:
    with pytest.raises(osipc.InvalidURL, match=match):
        osipc.sender(bad) if "sem" not in bad else osipc.Semaphore(bad)


def test_keys_above_0x7fffffff_wrap_as_in_c() -> None:
    key = 0xFEDC0001
    with osipc.Semaphore(f"sysv+sem://{key:#x}", value=3) as sem:
        assert sysv_ipc.Semaphore(key - (1 << 32)).value == sem.value == 2
    osipc.unlink(f"sysv+sem://{key:#x}")


# -- typed messages ----------------------------------------------------------------------


@pytest.fixture
def mq_url(url: Url) -> Iterator[str]:
    target = url("sysv+mq")
    yield target
    osipc.unlink(target, missing_ok=True)


def test_a_receiver_takes_only_its_type(mq_url: str) -> None:
    with osipc.sender(mq_url) as tx:
        tx.send(b"one")  # the default type is 1
        tx.send(b"five-a", type=5)
        tx.send(b"three", type=3)
        tx.send(b"five-b", type=5)
        with osipc.receiver(mq_url, type=5) as fives:
            assert [fives.recv(timeout=1), fives.recv(timeout=1)] == [b"five-a", b"five-b"]
            assert fives.type == 5
            with pytest.raises(osipc.Timeout):
                fives.recv(timeout=0)
        with osipc.receiver(mq_url) as anything:  # type 0: in order of arrival
            assert [anything.recv(timeout=1), anything.recv(timeout=1)] == [b"one", b"three"]
            assert anything.type == 3


def test_a_negative_type_takes_the_lowest_type_first(mq_url: str) -> None:
    # msgrcv(2): msgtyp < 0 takes the first message of the lowest type <= |msgtyp|
    with osipc.sender(mq_url, type=7) as tx, osipc.receiver(mq_url, type=-4) as rx:
        for mtype in (4, 9, 2, 3, 2):
            tx.send(b"%d" % mtype, type=mtype)
        tx.send(b"seven")
        got = [rx.recv(timeout=1) for _ in range(4)]
        assert got == [b"2", b"2", b"3", b"4"], "Linux honours a negative msgtyp"
        with pytest.raises(osipc.Timeout):
            rx.recv(timeout=0)  # 9 and 7 are above 4
        with osipc.receiver(mq_url) as rest:
            assert [rest.recv(timeout=1), rest.recv(timeout=1)] == [b"9", b"seven"]
            assert rest.type == 7


def test_end_of_stream_goes_to_the_type_it_names(mq_url: str) -> None:
    with osipc.sender(mq_url, type=2) as tx:
        tx.send(b"")  # empty is data
        tx.end()
        tx.send(b"for three", type=3)
        tx.end(type=3)
    with osipc.receiver(mq_url, type=3) as three:
        assert list(three) == [b"for three"]
    with osipc.receiver(mq_url, type=2) as two:
        assert list(two) == [b""]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2", 1 << 63])
def test_a_send_type_is_at_least_1(mq_url: str, bad: object) -> None:
    with osipc.sender(mq_url) as tx:
        with pytest.raises(osipc.InvalidArgument, match=">= 1"):
            tx.send(b"x", type=bad)  # type: ignore[call-arg]
        with pytest.raises(osipc.InvalidArgument, match=">= 1"):
            tx.end(type=bad)  # type: ignore[call-arg]
    assert osipc.info(mq_url).depth == 0, "nothing was written"


def test_a_sender_cannot_have_a_negative_type(mq_url: str) -> None:
    with pytest.raises(osipc.InvalidURL, match="receiver's filter"):
        osipc.sender(mq_url + "?type=-3")


# -- limits ------------------------------------------------------------------------------


def test_too_large_names_kernel_msgmax(mq_url: str) -> None:
    msgmax = _limits.sysv("msgmax")
    assert msgmax is not None
    with osipc.sender(mq_url) as tx:
        assert tx.capabilities.max_message_size == msgmax
        tx.send(b"x" * msgmax)
        with pytest.raises(osipc.MessageTooLarge, match=f"kernel.msgmax={msgmax}") as info:
            tx.send(b"x" * (msgmax + 1))
        assert (info.value.size, info.value.limit) == (msgmax + 1, msgmax)
        with pytest.raises(osipc.MessageTooLarge, match="escape byte"):
            tx.send(b"\xc1" + b"x" * (msgmax - 1))  # the escape makes it one byte too many
    assert osipc.info(mq_url).depth == 1


def test_too_large_names_the_queue_byte_limit(url: Url) -> None:
    target = url("sysv+mq", maxbytes=1000)
    with osipc.sender(target) as tx:
        assert tx.capabilities.max_message_size == 1000
        with pytest.raises(osipc.MessageTooLarge, match=r"msg_qbytes=1000 \(maxbytes="):
            tx.send(b"x" * 1001)
    osipc.unlink(target)


def test_maxbytes_above_kernel_msgmnb_is_refused_unless_privileged(url: Url) -> None:
    msgmnb = _limits.sysv("msgmnb")
    assert msgmnb is not None
    target = url("sysv+mq", maxbytes=msgmnb + 1)
    if _limits.has_cap_sys_resource():
        osipc.sender(target).close()
        assert osipc.receiver(target).capabilities.max_message_size is not None
        osipc.unlink(target)
        need_root("to check the refusal as a user without CAP_SYS_RESOURCE")
        with runtime_for(NOBODY) as env:
            done = peer(
                """
                import sys, osipc
                try:
                    osipc.sender(sys.argv[1])
                except osipc.InvalidURL as exc:
                    print(exc)
                """,
                target,
                user=NOBODY,
                env=env,
            )
        assert f"kernel.msgmnb={msgmnb}" in done.stdout
    else:
        with pytest.raises(osipc.InvalidURL, match=f"kernel.msgmnb={msgmnb}"):
            osipc.sender(target)


def test_a_full_queue_times_out_and_says_so(url: Url) -> None:
    target = url("sysv+mq", maxbytes=300)
    with osipc.sender(target) as tx:
        tx.send_many([b"x" * 100] * 3, timeout=0)
        started = time.monotonic()
        with pytest.raises(osipc.Timeout, match="full") as info:
            tx.send(b"y", timeout=0.2)
        assert 0.19 < time.monotonic() - started < 2 and info.value.errno == errno.EAGAIN
        with osipc.receiver(target) as rx:
            threading.Timer(0.1, lambda: rx.recv(timeout=1)).start()
            tx.send(b"y", timeout=5)  # waits for the room
    osipc.unlink(target)


def test_a_timed_wait_does_not_spin_a_core(mq_url: str) -> None:
    with osipc.receiver(mq_url) as rx:
        cpu, wall = time.thread_time(), time.monotonic()
        with pytest.raises(osipc.Timeout):
            rx.recv(timeout=1)
        cpu, wall = time.thread_time() - cpu, time.monotonic() - wall
    assert 0.99 < wall < 1.5
    assert cpu < 0.3, f"a 1 s wait cost {cpu:.3f} s of CPU"


def test_a_message_ends_a_timed_wait_promptly(mq_url: str) -> None:
    with osipc.receiver(mq_url) as rx:
        child = spawn(
            """
            import sys, time, osipc
            time.sleep(0.3)
            with osipc.sender(sys.argv[1]) as tx:
                tx.send(b"late")
            """,
            mq_url,
        )
        assert rx.recv(timeout=10) == b"late"
        finish(child)


# -- EINTR -------------------------------------------------------------------------------


class Stop(OSError):
    """An OSError: the waits' own error mapping must not take it for the backend's."""


@pytest.fixture
def alarm() -> Iterator[Callable[[float, bool], None]]:
    previous = signal.getsignal(signal.SIGALRM)

    def arm(after: float, raise_: bool) -> None:
        def handler(*_: object) -> None:
            fired.append(time.monotonic())
            if raise_:
                raise Stop

        signal.signal(signal.SIGALRM, handler)
        signal.setitimer(signal.ITIMER_REAL, after)

    fired: list[float] = []
    yield arm
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("timeout", [None, 5.0], ids=["blocking", "timed"])
def test_a_signal_handler_gets_out_of_a_wait(
    mq_url: str, alarm: Callable[[float, bool], None], timeout: float | None
) -> None:
    with osipc.receiver(mq_url) as rx:
        alarm(0.1, True)
        started = time.monotonic()
        with pytest.raises(Stop):
            rx.recv(timeout=timeout)
        assert time.monotonic() - started < 2


def test_a_quiet_signal_does_not_shorten_or_end_a_wait(
    mq_url: str, alarm: Callable[[float, bool], None]
) -> None:
    with osipc.receiver(mq_url) as rx:
        alarm(0.1, False)
        started = time.monotonic()
        with pytest.raises(osipc.Timeout):
            rx.recv(timeout=0.4)
        assert 0.39 < time.monotonic() - started < 2
        with osipc.sender(mq_url) as tx:
            alarm(0.1, False)
            threading.Timer(0.3, lambda: tx.send(b"after the signal")).start()
            assert rx.recv() == b"after the signal"  # blocking in msgrcv across EINTR


def test_a_semaphore_removed_under_a_handle_is_an_osipc_error(osipc_names: Names) -> None:
    target = f"sysv+sem://{osipc_names('s')}"
    sem = osipc.Semaphore(target, value=1)
    osipc.unlink(target)
    for use in (sem.release, lambda: sem.value, lambda: sem.acquire(timeout=0)):
        with pytest.raises(osipc.OsipcError):  # never sysv_ipc's own exceptions
            use()
    sem.close()


@pytest.mark.parametrize("scheme", ["sem", "sysv+sem"])
def test_closing_a_held_lock_whose_object_was_removed_goes_on(
    osipc_names: Names, scheme: str
) -> None:
    target = f"{scheme}://{osipc_names('l')}"
    lock = osipc.Lock(target)
    lock.acquire()
    osipc.unlink(target)
    lock.close()  # nothing to give back to: closing goes on, quietly
    assert lock.closed


def test_a_signal_handler_gets_out_of_a_semaphore_wait(
    osipc_names: Names, alarm: Callable[[float, bool], None]
) -> None:
    target = f"sysv+sem://{osipc_names('s')}"
    sem = osipc.Semaphore(target, value=0)
    try:
        alarm(0.1, True)
        with pytest.raises(Stop):
            sem.acquire(timeout=5)
        alarm(0.1, False)
        started = time.monotonic()
        with pytest.raises(osipc.Timeout):
            sem.acquire(timeout=0.4)
        assert 0.39 < time.monotonic() - started < 2
    finally:
        sem.close()
        osipc.unlink(target)


# -- raw peers: plain sysv_ipc and C -----------------------------------------------------


def test_raw_is_exact_bytes_and_types_for_a_sysv_ipc_peer(url: Url) -> None:
    target = url("sysv+mq", raw=1)
    with osipc.sender(target) as tx, osipc.receiver(target) as rx:
        plain = sysv_ipc.MessageQueue(fnv_key(name_of(target)))
        tx.send(b"\xc1", type=9)
        tx.send(b"")
        assert plain.receive(False) == (b"\xc1", 9)
        assert plain.receive(False) == (b"", 1), "raw: an empty message is data"
        plain.send(b"\xc1\x00from sysv_ipc", type=4)
        plain.send(b"", type=2)
        assert (rx.recv(timeout=1), rx.type) == (b"\xc1\x00from sysv_ipc", 4)
        assert (rx.recv(timeout=1), rx.type) == (b"", 2)
        with pytest.raises(osipc.Unsupported, match="end-of-stream"):
            tx.end()
    osipc.unlink(target)


def test_framed_escapes_only_empty_and_0xc1_payloads(mq_url: str) -> None:
    with osipc.sender(mq_url) as tx:
        plain = sysv_ipc.MessageQueue(fnv_key(name_of(mq_url)))
        tx.send(b"text")
        tx.send(b"")
        tx.send(b"\xc1z")
        tx.end()
        got = [plain.receive(False)[0] for _ in range(4)]
    assert got == [b"text", b"\xc1", b"\xc1\xc1z", b""]


C_PEER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/ipc.h>
#include <sys/msg.h>

struct message { long mtype; char mtext[8192]; };

static key_t osipc_key(const char *name) {   /* DESIGN section 2, in C */
    uint32_t h = 2166136261u;
    const char *p;
    for (p = "osipc:"; *p; p++) h = (h ^ (unsigned char)*p) * 16777619u;
    for (p = name; *p; p++) h = (h ^ (unsigned char)*p) * 16777619u;
    h &= 0x7fffffffu;
    return (key_t)(h ? h : 1);
}

int main(int argc, char **argv) {
    if (argv[1][0] == 'k') { printf("%#x\n", (unsigned)osipc_key(argv[2])); return 0; }
    int q = msgget((key_t)strtoul(argv[2], NULL, 16), 0);
    if (q < 0) { perror("msgget"); return 2; }
    struct message m;
    if (argv[1][0] == 's') {
        size_t n = strlen(argv[4]);
        m.mtype = atol(argv[3]);
        memcpy(m.mtext, argv[4], n);
        if (msgsnd(q, &m, n, 0) != 0) { perror("msgsnd"); return 3; }
    } else {
        ssize_t n = msgrcv(q, &m, sizeof m.mtext, atol(argv[3]), 0);
        if (n < 0) { perror("msgrcv"); return 4; }
        printf("%ld:%.*s\n", m.mtype, (int)n, m.mtext);
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def c_peer(tmp_path_factory: pytest.TempPathFactory) -> str:
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("no C compiler (gcc) on this machine for the C interop test")
    folder = tmp_path_factory.mktemp("csysv")
    source, binary = folder / "sysvpeer.c", folder / "sysvpeer"
    source.write_text(C_PEER)
    subprocess.run([gcc, "-Wall", "-o", str(binary), str(source)], check=True, timeout=60)
    return str(binary)


def run_c(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=10, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_c_program_exchanges_typed_messages(literal_key: int, c_peer: str) -> None:
    target = f"sysv+mq://{literal_key:#x}?raw=1"
    with osipc.receiver(target, type=6) as rx, osipc.sender(target, type=3) as tx:
        run_c(c_peer, "send", hex(literal_key), "5", "type five")
        run_c(c_peer, "send", hex(literal_key), "6", "hello from C")
        assert (rx.recv(timeout=5), rx.type) == (b"hello from C", 6)
        tx.send(b"hello from Python")
        tx.send(b"typed", type=8)
        assert run_c(c_peer, "recv", hex(literal_key), "8") == "8:typed\n"
        assert run_c(c_peer, "recv", hex(literal_key), "-4") == "3:hello from Python\n"
        assert run_c(c_peer, "recv", hex(literal_key), "0") == "5:type five\n"


def test_a_c_program_computes_the_same_key(c_peer: str, osipc_names: Names) -> None:
    for name in ("jobs", "a.b-c_d", osipc_names("k"), "ünïcode"):
        assert int(run_c(c_peer, "key", name), 16) == osipc.sysv_key(name)


# -- sysv+sem: Semaphore and Lock with SEM_UNDO ------------------------------------------


@pytest.fixture
def sem_url(osipc_names: Names) -> Iterator[str]:
    target = f"sysv+sem://{osipc_names('s')}"
    yield target
    osipc.unlink(target, missing_ok=True)


def test_semaphore_counts_across_processes(sem_url: str) -> None:
    with osipc.Semaphore(sem_url, value=2, undo=False) as sem:  # noqa: F841 - holds one
        peer(
            "import sys, osipc; osipc.Semaphore(sys.argv[1], undo=False).acquire(timeout=1)",
            sem_url,
        )
        other = osipc.Semaphore(sem_url)
        assert other.value == 0, "without undo, what the peer took stays taken"
        with pytest.raises(osipc.Timeout, match="not acquired"):
            other.acquire(timeout=0.1)
        peer(
            "import sys, osipc; osipc.Semaphore(sys.argv[1], undo=False).release(3)", sem_url
        )  # with undo, the kernel would take them back when the peer exits
        other.acquire(timeout=1)
        other.close()
    info = osipc.info(sem_url)
    assert (info.kind, info.value, info.mode) == ("sysv-semaphore", 3, 0o600)


def test_undo_gives_back_what_a_dead_process_took(sem_url: str) -> None:
    osipc.Semaphore(sem_url, value=3).close()
    done = peer(
        """
        import os, signal, sys, osipc
        sem = osipc.Semaphore(sys.argv[1])  # undo is on by default
        sem.acquire(timeout=1)
        sem.acquire(timeout=1)
        print(sem.value, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """,
        sem_url,
        check=False,
    )
    assert (done.returncode, done.stdout) == (-signal.SIGKILL, "1\n")
    with osipc.Semaphore(sem_url, create=False) as sem:
        assert sem.value == 2  # and the with block took one back


def test_semaphore_rules(sem_url: str) -> None:
    with pytest.raises(osipc.NotFound):
        osipc.Semaphore(sem_url, create=False)
    with pytest.raises(osipc.InvalidArgument, match=r"SEMVMX"):
        osipc.Semaphore(sem_url, value=32768)
    sem = osipc.Semaphore(sem_url, value=32766)
    with pytest.raises(osipc.AlreadyExists):
        osipc.Semaphore(sem_url, exclusive=True)
    sem.release()
    with pytest.raises(osipc.InvalidArgument, match=r"past its maximum.*32767"):
        sem.release()
    with pytest.raises(osipc.Unsupported, match="semaphore, not a channel"):
        osipc.receiver(sem_url)
    with pytest.raises(osipc.Unsupported, match="SharedMemory"):
        osipc.SharedMemory(sem_url.replace("sysv+sem", "sysv+shm"), size=64)
    sem.close()


def test_a_sigkilled_holder_never_leaves_the_lock_locked(sem_url: str) -> None:
    holder = spawn(
        """
        import sys, time, osipc
        lock = osipc.Lock(sys.argv[1])
        lock.acquire()
        print("holding", flush=True)
        time.sleep(60)
        """,
        sem_url,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
    lock = osipc.Lock(sem_url)
    assert lock.holder == holder.pid and lock.locked()
    with pytest.raises(osipc.Timeout, match=f"held by pid {holder.pid}"):
        lock.acquire(timeout=0.1)
    holder.kill()
    holder.communicate()
    started = time.monotonic()
    lock.acquire(timeout=1)
    assert time.monotonic() - started < 0.5, "the kernel's undo released it at once"
    lock.release()
    lock.close()


def test_lock_excludes_processes(sem_url: str, url: Url) -> None:
    counter = url("shm")
    worker = """
        import struct, sys, osipc
        lock = osipc.Lock(sys.argv[1])
        with osipc.SharedMemory(sys.argv[2]) as block:
            for _ in range(300):
                with lock:
                    value = struct.unpack_from("q", block)[0]
                    struct.pack_into("q", block, 0, value + 1)
        lock.close()
    """
    with osipc.SharedMemory(counter, size=8) as block:
        procs = [spawn(worker, sem_url, counter) for _ in range(3)]
        for proc in procs:
            finish(proc)
        assert int.from_bytes(block[:8], "little") == 900
    osipc.unlink(counter)


# -- modes, owners, permissions ----------------------------------------------------------


def test_modes_are_exact_whatever_the_umask(url: Url, osipc_names: Names) -> None:
    queue, ring, sem = url("sysv+mq"), url("sysv+shm"), f"sysv+sem://{osipc_names('s')}"
    old = os.umask(0o077)
    try:
        osipc.sender(queue, mode=0o664).close()
        osipc.sender(ring, mode=0o646).close()
        osipc.Semaphore(sem, mode=0o660).close()
    finally:
        os.umask(old)
    name = name_of(ring)
    assert [osipc.info(u).mode for u in (queue, ring, sem)] == [0o664, 0o646, 0o660]
    row = proc_row("sem", fnv_key(f"{name}:tx"))  # the ring's semaphore has its mode too
    assert row is not None and row["perms"] & 0o777 == 0o646
    assert proc_row("sem", fnv_key(f"{name}:rx")) is None, "format 2 makes one semaphore"
    for target in (queue, ring, sem):
        osipc.unlink(target)
    assert proc_row("sem", fnv_key(f"{name}:tx")) is None, "rm takes the ring's semaphore"


@pytest.mark.parametrize("kind", ["sysv+mq", "sysv+shm", "sysv+sem"])
def test_an_object_created_by_another_user_is_refused(url: Url, kind: str) -> None:
    need_root("to create objects as another user")
    target = url(kind)
    make = (
        "osipc.Semaphore(sys.argv[1], mode=0o666).close()"
        if kind == "sysv+sem"
        else "osipc.sender(sys.argv[1], mode=0o666).close()"
    )
    with runtime_for(NOBODY) as env:
        peer(f"import sys, osipc; {make}", target, user=NOBODY, env=env)
    try:
        attach = osipc.Semaphore if kind == "sysv+sem" else osipc.receiver
        with pytest.raises(osipc.PermissionDenied, match=r"uid 65534.*trust_existing=True"):
            attach(target)
        attach(target, trust_existing=True).close()
    finally:
        osipc.unlink(target)


@pytest.mark.parametrize("kind", ["sysv+mq", "sysv+shm", "sysv+sem"])
def test_the_kernel_refuses_an_unprivileged_user(url: Url, kind: str) -> None:
    need_root("to run a peer as nobody")
    target = url(kind)  # mode 0600, root's
    (osipc.Semaphore(target) if kind == "sysv+sem" else osipc.sender(target)).close()
    try:
        with runtime_for(NOBODY) as env:
            done = peer(
                """
                import sys, osipc
                opens = [osipc.Semaphore] if "sem" in sys.argv[1] else [
                    osipc.sender, osipc.receiver]
                for open_ in opens:
                    try:
                        open_(sys.argv[1], trust_existing=True)
                    except osipc.OsipcError as exc:
                        print(type(exc).__name__, isinstance(exc, PermissionError), exc.errno)
                """,
                target,
                user=NOBODY,
                env=env,
            )
        expected = 1 if kind == "sysv+sem" else 2
        assert done.stdout.split() == ["PermissionDenied", "True", str(errno.EACCES)] * expected
    finally:
        osipc.unlink(target)


# -- inventory ---------------------------------------------------------------------------


def test_ls_info_gc_and_rm(url: Url, osipc_names: Names) -> None:
    full, empty, ring = url("sysv+mq"), url("sysv+mq"), url("sysv+shm", capacity="16K")
    sem = f"sysv+sem://{osipc_names('s')}"
    assert cli("send", full, "a", "b").returncode == 0  # made by processes now gone
    assert cli("send", ring, "c").returncode == 0
    peer("import sys, osipc; osipc.receiver(sys.argv[1]).close()", empty)
    peer("import sys, osipc; osipc.Semaphore(sys.argv[1]).close()", sem)
    info = osipc.info(full)
    assert (info.kind, info.depth, info.used_bytes, info.state) == ("sysv-mq", 2, 2, "stale")
    info = osipc.info(ring)
    assert (info.kind, info.depth, info.capacity_bytes) == ("sysv-shm-queue", 1, 16384)
    found = {obj.url: (obj.kind, obj.state) for obj in osipc.ls()}
    assert found == {
        full: ("sysv-mq", "stale"),
        empty: ("sysv-mq", "stale"),
        ring.split("?")[0]: ("sysv-shm-queue", "stale"),
        sem: ("sysv-semaphore", "stale"),
    }, "a ring's own semaphores are part of it, not listed apart"
    actions = {a.url: a.action for a in osipc.gc()}
    assert actions == {full: "kept", ring.split("?")[0]: "kept", empty: "removed", sem: "removed"}
    assert proc_row("msg", fnv_key(name_of(empty))) is None
    assert cli("rm", full, ring).returncode == 0
    name = name_of(ring)
    for kind, key in (("msg", name_of(full)), ("shm", name), ("sem", f"{name}:tx")):
        assert proc_row(kind, fnv_key(key)) is None
    assert osipc.ls() == []


def test_ls_all_shows_what_osipc_did_not_create(literal_key: int) -> None:
    queue = sysv_ipc.MessageQueue(literal_key, sysv_ipc.IPC_CREX, mode=0o640)
    queue.send(b"theirs")
    sem = sysv_ipc.Semaphore(literal_key, sysv_ipc.IPC_CREX)
    found = {obj.url: (obj.kind, obj.state, obj.depth) for obj in osipc.ls(all=True)}
    assert found[f"sysv+mq://{literal_key:#010x}"] == ("sysv-mq", "foreign", 1)
    assert found[f"sysv+sem://{literal_key:#010x}"][:2] == ("sysv-semaphore", "foreign")
    assert osipc.gc(force=True) == [], "gc never touches what osipc did not create"
    assert queue.current_messages == 1 and sem.value == 0


def test_maxbytes_of_a_queue_being_created_is_waited_for_not_refused(url: Url) -> None:
    # A creator sets msg_qbytes just after msgget: an attacher asking for the same
    # maxbytes= in between sees the kernel's default, and must not call it a mismatch.
    target = url("sysv+mq")
    raw = sysv_ipc.MessageQueue(osipc.sysv_key(name_of(target)), sysv_ipc.IPC_CREX, mode=0o600)
    assert raw.max_size == _limits.sysv("msgmnb")
    setter = threading.Timer(0.05, lambda: setattr(raw, "max_size", 4096))
    setter.start()
    try:
        with osipc.sender(target, maxbytes=4096) as tx:
            assert tx.capabilities.max_message_size == 4096
        with pytest.raises(osipc.InvalidArgument, match="exists with maxbytes=4096"):
            osipc.sender(target, maxbytes=2048)
    finally:
        setter.join()
        raw.remove()
