"""shm:// beyond the ring (which test_rings.py covers): its kernel objects, SharedMemory
blocks, Semaphore and Lock, ownership, a full /dev/shm and the inventory."""

from __future__ import annotations

import errno
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator

import posix_ipc
import pytest
from _helpers import NOBODY, finish, need_root, peer, runtime_for, spawn

import osipc

Url = Callable[..., str]


@pytest.fixture
def ring(url: Url) -> Iterator[str]:
    target = url("shm", capacity="64K")
    yield target
    osipc.unlink(target.split("?")[0], missing_ok=True)


def shm_files(name: str) -> list[str]:
    return sorted(f for f in os.listdir("/dev/shm") if name in f)


# -- the POSIX side of rings (the ring itself: test_rings.py) --------------------------


def test_kernel_objects_of_a_ring(ring: str) -> None:
    name = ring[len("shm://") :].split("?", maxsplit=1)[0]
    with osipc.sender(ring, mode=0o640):
        assert shm_files(name) == [f"sem.{name}:rx", f"sem.{name}:tx", name]
        for entry in shm_files(name):
            assert oct(os.stat(f"/dev/shm/{entry}").st_mode & 0o777) == "0o640", entry
    osipc.unlink(ring)
    assert shm_files(name) == [], "unlink removes the segment and its semaphores together"


def test_an_uninitialised_segment_is_reported(osipc_names: Callable[[str], str]) -> None:
    name = osipc_names("raw")
    segment = posix_ipc.SharedMemory("/" + name, posix_ipc.O_CREX, size=65536)
    segment.close_fd()
    try:
        started = time.monotonic()
        with pytest.raises(osipc.TransportError, match="holds no ring: a creator that died"):
            osipc.receiver(f"shm://{name}")
        # nobody holds the creator's flock: no creator is at work, so no wait for one
        assert time.monotonic() - started < 1
        fd = os.open(f"/dev/shm/{name}", os.O_WRONLY)
        os.pwrite(fd, b"garbage!", 0)
        os.close(fd)
        with pytest.raises(osipc.InvalidArgument, match="not an osipc ring"):
            osipc.receiver(f"shm://{name}")
    finally:
        posix_ipc.unlink_shared_memory("/" + name)
    posix_ipc.SharedMemory("/" + name, posix_ipc.O_CREX).close_fd()  # 0 bytes, nobody at it
    try:
        started = time.monotonic()
        with pytest.raises(osipc.InvalidArgument, match="not an osipc ring"):
            osipc.receiver(f"shm://{name}")
        assert time.monotonic() - started < 1
    finally:
        posix_ipc.unlink_shared_memory("/" + name)


def test_a_creator_that_takes_too_long_is_a_timeout(osipc_names: Callable[[str], str]) -> None:
    """Not "not a ring" nor advice to remove what another process is still making."""
    name = osipc_names("slow")
    creator = spawn(
        """
        import fcntl, sys, time, posix_ipc
        segment = posix_ipc.SharedMemory("/" + sys.argv[1], posix_ipc.O_CREX)
        fcntl.flock(segment.fd, fcntl.LOCK_EX)  # as osipc's creator holds it while making
        print("making", flush=True)
        sys.stdin.read()
        """,
        name,
        stdin=subprocess.PIPE,
    )
    try:
        assert creator.stdout is not None and creator.stdout.readline() == "making\n"
        with pytest.raises(osipc.Timeout, match="still being made by another process"):
            osipc.receiver(f"shm://{name}")
    finally:
        finish(creator)
        posix_ipc.unlink_shared_memory("/" + name)


@pytest.mark.parametrize("kind", ["ring", "block"])
def test_an_opener_waits_for_a_creator_still_making_it(url: Url, kind: str) -> None:
    """Open-or-create works in either start order, also when the creator is preempted
    between creating the segment and sizing it (here: made to sleep there)."""
    target = url("shm", capacity="64K") if kind == "ring" else url("shm")
    creator = spawn(
        """
        import os, sys, time, osipc
        real = os.fchmod  # open_segment's first step after shm_open(O_EXCL)
        def slow(fd, mode):
            print("creating", flush=True)
            time.sleep(0.5)
            real(fd, mode)
        os.fchmod = slow
        if sys.argv[2] == "ring":
            handle = osipc.receiver(sys.argv[1])
        else:
            handle = osipc.SharedMemory(sys.argv[1], size=4096)
        sys.stdin.read()
        """,
        target,
        kind,
        stdin=subprocess.PIPE,
    )
    try:
        assert creator.stdout is not None and creator.stdout.readline() == "creating\n"
        if kind == "ring":
            with osipc.sender(target) as tx:
                tx.send(b"made")
        else:
            with osipc.SharedMemory(target, size=4096) as block:
                assert len(block) == 4096
    finally:
        finish(creator)
        osipc.unlink(target.split("?")[0], missing_ok=True)


def test_a_stale_semaphore_of_another_user_is_permission_denied(url: Url) -> None:
    need_root("to leave a semaphore another user may not replace")
    target = url("shm", capacity="64K")
    name = target.split("://")[1].split("?")[0]
    posix_ipc.Semaphore(f"/{name}:tx", posix_ipc.O_CREX, mode=0o600).close()
    try:
        with runtime_for(NOBODY) as env:
            done = peer(
                """
                import sys, osipc
                try:
                    osipc.receiver(sys.argv[1])
                except osipc.PermissionDenied as exc:
                    print("denied", ":tx" in str(exc))
                """,
                target,
                user=NOBODY,
                env=env,
            )
        assert done.stdout.split() == ["denied", "True"], done.stderr
        assert shm_files(name) == [f"sem.{name}:tx"]  # the half-made segment was removed
    finally:
        posix_ipc.unlink_semaphore(f"/{name}:tx")


def test_unlinking_another_users_objects_is_permission_denied(url: Url) -> None:
    need_root("to create objects another user may not remove")
    ring, block = url("shm", capacity="64K", mode="0o666"), url("shm")
    osipc.receiver(ring).close()
    osipc.SharedMemory(block, size=64, mode=0o666).close()
    try:
        with runtime_for(NOBODY) as env:
            done = peer(
                """
                import sys, osipc
                for url in sys.argv[1:]:
                    try:
                        osipc.unlink(url)
                    except osipc.PermissionDenied as exc:
                        print("denied", url in str(exc))
                """,
                ring.split("?")[0],
                block,
                user=NOBODY,
                env=env,
            )
        assert done.stdout.split() == ["denied", "True"] * 2, done.stderr
    finally:
        osipc.unlink(ring.split("?")[0])
        osipc.unlink(block)


def test_slots_run_out_with_a_clear_error(url: Url) -> None:
    target = url("shm", slots=2)
    taken = pytest.raises(osipc.TransportError, match="all 2 slots")
    with osipc.sender(target), osipc.receiver(target), taken:
        osipc.receiver(target)
    osipc.unlink(target)


# -- SharedMemory ------------------------------------------------------------------------


def test_a_block_outlives_processes_that_attach_and_exit(url: Url) -> None:
    target = url("shm")
    with osipc.SharedMemory(target, size=4096) as block:
        block[:5] = b"hello"
        peer(
            """
            import sys, osipc
            with osipc.SharedMemory(sys.argv[1]) as block:
                assert bytes(block[:5]) == b"hello"
                block[5:11] = b" world"
            """,
            target,
        )  # multiprocessing.shared_memory's tracker would unlink the segment here
        assert bytes(block[:11]) == b"hello world"
        assert osipc.info(target).kind == "shm-block"
    with osipc.SharedMemory(target) as again:
        assert bytes(again[:11]) == b"hello world" and len(again) == 4096
    osipc.unlink(target)


def test_a_block_is_a_buffer(url: Url) -> None:
    numpy = pytest.importorskip("numpy")
    target = url("shm")
    try:
        with osipc.SharedMemory(target, size=64) as block:
            view = memoryview(block)
            view[0] = 7
            with pytest.raises(BufferError, match="delete them"):
                block.close()
            view.release()
            array = numpy.frombuffer(block, dtype=numpy.uint8)  # no copy: same memory
            array[1] = 9
            assert block[:2] == b"\x07\x09"
            del array
            with pytest.raises(TypeError, match="send its URL"):
                pickle.dumps(block)
    finally:
        osipc.unlink(target)


def test_block_rules(url: Url, ring: str) -> None:
    target = url("shm")
    with pytest.raises(osipc.NotFound, match="pass size="):
        osipc.SharedMemory(target)
    old = os.umask(0o077)
    try:
        block = osipc.SharedMemory(target, size=100, mode=0o660)
    finally:
        os.umask(old)
    with block:
        assert osipc.info(target).mode == 0o660
        with pytest.raises(osipc.InvalidArgument, match="has 100 bytes"):
            osipc.SharedMemory(target, size=200)
        with pytest.raises(osipc.AlreadyExists):
            osipc.SharedMemory(target, size=100, exclusive=True)
        for opener in (osipc.receiver, osipc.subscriber):  # (its record says what it is)
            with pytest.raises(osipc.InvalidArgument, match="SharedMemory block, not a ring"):
                opener(target)
    with osipc.SharedMemory(url("shm"), size=1 << 20) as large:  # zeros, no ring header:
        started = time.monotonic()  # no wait for a creator, no advice to remove it
        with pytest.raises(osipc.InvalidArgument, match="SharedMemory block, not a ring"):
            osipc.sender(large.url)
        assert time.monotonic() - started < 1
    osipc.unlink(large.url)
    osipc.sender(ring).close()
    with pytest.raises(osipc.InvalidArgument, match="ring channel, not a SharedMemory"):
        osipc.SharedMemory(ring.split("?", maxsplit=1)[0])
    with pytest.raises(osipc.InvalidURL, match="unknown option 'capacity'"):
        osipc.SharedMemory(ring)
    with pytest.raises(osipc.InvalidArgument, match="size must be"):
        osipc.SharedMemory(target, size=0)
    osipc.unlink(target)
    for sized in (url("shm", size="4K"), url("shm")):  # suffixes as capacity= takes them
        with osipc.SharedMemory(sized, size=None if "?" in sized else "64K") as block:
            assert len(block) == (4096 if "?" in sized else 65536)
        osipc.unlink(sized.split("?")[0])


def test_a_full_dev_shm_is_a_clean_error_not_sigbus(tmp_path: os.PathLike[str]) -> None:
    need_root("to mount a small tmpfs on /dev/shm in a private mount namespace")
    code = textwrap.dedent(
        """
        import os, osipc
        from osipc.transports import posix_shm
        for url, make in (("shm://big", lambda: osipc.SharedMemory("shm://big", size=4 << 20)),
                          ("shm://ring", lambda: osipc.sender("shm://ring?capacity=4M"))):
            try:
                make()
            except osipc.TransportError as exc:
                print(exc.errno, "MiB" in str(exc) and "/dev/shm" in str(exc))
        # Room taken by someone else between the check of free space and the allocation
        # (here: no check): the allocation itself fails cleanly; nothing of it is left.
        posix_shm._shm_free = lambda: None
        first = osipc.SharedMemory("shm://a", size=600 << 10)
        first[:] = b"x" * len(first)  # really there: no SIGBUS
        try:
            osipc.SharedMemory("shm://b", size=600 << 10)
        except osipc.TransportError as exc:
            print(exc.errno, sorted(os.listdir("/dev/shm")))
        first.close()
        osipc.unlink("shm://a")
        # A ring whose segment fits but whose semaphores do not: none of it is left, and
        # once there is room it is made anew.
        filler = os.open("/dev/shm/filler", os.O_CREAT | os.O_WRONLY, 0o600)
        try:
            while True:
                os.write(filler, b"x" * 4096)
        except OSError:
            os.close(filler)
        os.truncate("/dev/shm/filler", os.path.getsize("/dev/shm/filler") - 3 * 4096)
        try:
            osipc.receiver("shm://r?capacity=4096&slots=2")
        except osipc.TransportError as exc:
            print(exc.errno, sorted(os.listdir("/dev/shm")))
        os.unlink("/dev/shm/filler")
        osipc.receiver("shm://r?capacity=4096&slots=2").close()
        osipc.unlink("shm://r")
        print("made anew")
        """
    )
    script = f"mount -t tmpfs -o size=1m tmpfs /dev/shm && exec {sys.executable} -I -c '{code}'"
    done = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, OSIPC_RUNTIME_DIR=str(tmp_path)),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n") == [
        *[f"{errno.ENOSPC} True"] * 2,
        f"{errno.ENOSPC} ['a']",
        f"{errno.ENOSPC} ['filler']",
        "made anew",
        "",
    ]
    shutil.rmtree(os.path.join(str(tmp_path), ".meta"), ignore_errors=True)


@pytest.mark.parametrize(
    ("what", "fails"),
    [
        ("ring", "allocating the segment"),
        ("ring", "making the semaphores"),
        ("block", "allocating the segment"),
    ],
)
def test_cleanup_after_a_failed_creation_spares_a_successor(
    osipc_names: Callable[[str], str], monkeypatch: pytest.MonkeyPatch, what: str, fails: str
) -> None:
    # A creation that fails part-way removes what it made. If meanwhile another process
    # removed the half-made segment and made its own of the name, that one is not ours.
    from osipc.transports import posix_shm

    name = osipc_names("s")

    def replaced_then(error: BaseException) -> Callable[..., object]:
        def fault(*_: object) -> object:
            posix_ipc.unlink_shared_memory("/" + name)  # "another process" ...
            theirs = posix_ipc.SharedMemory("/" + name, posix_ipc.O_CREX, size=4096)
            os.close(theirs.fd)  # ... made its own
            raise error

        return fault

    if fails == "allocating the segment":
        monkeypatch.setattr(os, "posix_fallocate", replaced_then(OSError(errno.EIO, "EIO")))
    else:
        monkeypatch.setattr(
            posix_shm, "create_semaphore", replaced_then(osipc.TransportError("no room"))
        )
    try:
        make: Callable[[], object] = (
            (lambda: osipc.sender(f"shm://{name}?capacity=4096"))
            if what == "ring"
            else (lambda: osipc.SharedMemory(f"shm://{name}", size=8192))
        )
        with pytest.raises(osipc.TransportError):
            make()
        assert os.stat(f"/dev/shm/{name}").st_size == 4096, "the successor was removed"
    finally:
        monkeypatch.undo()
        osipc.unlink(f"shm://{name}", missing_ok=True)


def test_a_block_created_by_another_user_is_refused(url: Url) -> None:
    need_root("to create a block as another user")
    target = url("shm")
    with runtime_for(NOBODY) as env:
        peer(
            "import sys, osipc; osipc.SharedMemory(sys.argv[1], size=64, mode=0o666).close()",
            target,
            user=NOBODY,
            env=env,
        )
    try:
        with pytest.raises(osipc.PermissionDenied, match="trust_existing"):
            osipc.SharedMemory(target)
        osipc.SharedMemory(target, trust_existing=True).close()
    finally:
        osipc.unlink(target)


# -- Semaphore and Lock ------------------------------------------------------------------


@pytest.fixture
def sem_url(osipc_names: Callable[[str], str]) -> Iterator[str]:
    target = f"sem://{osipc_names('s')}"
    yield target
    osipc.unlink(target, missing_ok=True)


def test_semaphore_counts_across_processes(sem_url: str) -> None:
    with osipc.Semaphore(sem_url, value=2) as sem:  # noqa: F841 - acquires one unit
        other = osipc.Semaphore(sem_url)
        assert other.value == 1
        peer("import sys, osipc; osipc.Semaphore(sys.argv[1]).acquire(timeout=1)", sem_url)
        assert other.value == 0
        started = time.monotonic()
        with pytest.raises(osipc.Timeout, match="not acquired"):
            other.acquire(timeout=0.2)
        assert time.monotonic() - started >= 0.19
        timer = threading.Timer(0.1, lambda: peer(
            "import sys, osipc; osipc.Semaphore(sys.argv[1]).release(2)", sem_url
        ))  # fmt: skip
        timer.start()
        other.acquire(timeout=10)
        timer.join()
        assert other.value == 1
        other.close()
    assert osipc.Semaphore(sem_url).value == 2
    info = osipc.info(sem_url)
    assert (info.kind, info.value, info.mode) == ("semaphore", 2, 0o600)


def test_semaphore_rules(sem_url: str) -> None:
    with pytest.raises(osipc.NotFound):
        osipc.Semaphore(sem_url, create=False)
    sem = osipc.Semaphore(sem_url, value=0)
    with pytest.raises(osipc.AlreadyExists):
        osipc.Semaphore(sem_url, exclusive=True)
    for bad in (-1, 2**31, 1.5):
        with pytest.raises(osipc.InvalidArgument):
            osipc.Semaphore(sem_url, value=bad)  # type: ignore[arg-type]
    with pytest.raises(osipc.InvalidArgument):
        sem.release(0)
    with pytest.raises(osipc.Unsupported, match=r"semaphore, not a channel.*shm:// or mq://"):
        osipc.sender(sem_url)
    with pytest.raises(osipc.Unsupported, match=r"semaphore, not a channel.*sysv\+mq://"):
        osipc.receiver("sysv+sem://" + sem_url.split("://")[1])
    sem.close()
    with pytest.raises(osipc.Closed):
        sem.acquire(timeout=0)


@pytest.mark.parametrize("scheme", ["sem", "sysv+sem"])
def test_a_lock_and_a_semaphore_of_one_name_are_refused(url: Url, scheme: str) -> None:
    """Each would corrupt the other (a waiting Lock took units as wake-ups)."""
    counted, locked = url(scheme), url(scheme)
    sem, lock = osipc.Semaphore(counted, value=3), osipc.Lock(locked)
    try:
        with pytest.raises(osipc.InvalidArgument, match=r"is an osipc\.Semaphore, not a Lock"):
            osipc.Lock(counted)
        with pytest.raises(osipc.InvalidArgument, match=r"is an osipc\.Lock, not a Semaphore"):
            osipc.Semaphore(locked)
        assert sem.value == 3
        lock.acquire(timeout=0)
        lock.release()
        if scheme == "sem":  # a lock nobody holds is still called a lock
            assert osipc.info(locked).kind == "sem-lock"
    finally:
        sem.close()
        lock.close()
        osipc.unlink(counted)
        osipc.unlink(locked)


@pytest.mark.parametrize("scheme", ["sem", "sysv+sem"])
def test_a_release_past_the_maximum_gives_back_nothing(url: Url, scheme: str) -> None:
    top = 2**31 - 1 if scheme == "sem" else 32767
    target = url(scheme)
    sem = osipc.Semaphore(target, value=top - 3)
    started = time.monotonic()
    for n in (4, 2**31):  # one past the room left, and more than any count
        with pytest.raises(osipc.InvalidArgument, match=r"past its maximum.*nothing was"):
            sem.release(n)
    assert time.monotonic() - started < 1  # checked first, not unit by unit
    assert sem.value == top - 3
    sem.release(3)
    assert sem.value == top
    sem.close()
    osipc.unlink(target)


@pytest.mark.parametrize("scheme", ["sem", "sysv+sem"])
def test_an_empty_semaphore_without_waiting_is_a_timeout_at_once(url: Url, scheme: str) -> None:
    target = url(scheme)
    sem = osipc.Semaphore(target, value=0)
    started = time.monotonic()
    with pytest.raises(osipc.Timeout):
        sem.acquire(timeout=0)  # (sysv_ipc's acquire(0) would block for good)
    assert time.monotonic() - started < 1
    sem.close()
    osipc.unlink(target)


def _closed_while_acquiring(
    handle: osipc.Semaphore | osipc.Lock, timeout: float | None
) -> tuple[BaseException | str | None, float]:
    """Start ``handle.acquire(timeout=timeout)`` on a thread, close ``handle`` from this
    one once it waits: (what the acquire raised, None if it returned, or "still waiting"
    3 s on; seconds from the close to then)."""
    outcome: list[BaseException | None] = []

    def wait() -> None:
        try:
            handle.acquire(timeout=timeout)
            outcome.append(None)
        except BaseException as exc:  # reported to the test
            outcome.append(exc)

    thread = threading.Thread(target=wait, daemon=True)  # (a regression must not hang exit)
    thread.start()
    time.sleep(0.2)
    started = time.monotonic()
    handle.close()
    thread.join(timeout=3)
    return (outcome[0] if outcome else "still waiting"), time.monotonic() - started


@pytest.mark.parametrize("scheme", ["sem", "sysv+sem"])
@pytest.mark.parametrize("what", ["semaphore", "lock"])
@pytest.mark.parametrize("timeout", [None, 5.0], ids=["blocking", "timed"])
def test_close_from_another_thread_ends_a_waiting_acquire(
    url: Url, scheme: str, what: str, timeout: float | None
) -> None:
    target = url(scheme)
    holder = osipc.Lock(target) if what == "lock" else osipc.Semaphore(target, value=0)
    if what == "lock":
        holder.acquire()  # held by this handle; the waiter is a second one
    waiter = osipc.Lock(target) if what == "lock" else osipc.Semaphore(target)
    outcome, took = _closed_while_acquiring(waiter, timeout)
    assert isinstance(outcome, osipc.Closed), outcome
    assert took < 1
    if what == "lock":  # nothing taken by the closed handle: the holder gives it back
        holder.release()
        other = osipc.Lock(target)
        other.acquire(timeout=1)
        other.release()
        other.close()
    else:
        holder.release()  # the unit is there for the next one, not lost to the closed one
        assert holder.value == 1
    holder.close()
    osipc.unlink(target)


@pytest.mark.parametrize("scheme", ["sem", "sysv+sem"])
def test_closing_a_lock_its_other_thread_waits_on_ends_the_wait_and_frees_it(
    url: Url, scheme: str
) -> None:
    """One handle, two threads: this one holds the lock, the other waits on the same
    handle; closing the handle ends that wait with Closed and gives the lock back (before,
    the waiter hung and other processes stayed locked out)."""
    target = url(scheme)
    shared = osipc.Lock(target)
    shared.acquire()
    outcome, _ = _closed_while_acquiring(shared, None)
    assert isinstance(outcome, osipc.Closed), outcome
    done = peer(
        "import sys, osipc; osipc.Lock(sys.argv[1]).acquire(timeout=2); print('taken')", target
    )
    assert done.stdout == "taken\n"
    osipc.unlink(target)


def test_a_thread_of_the_handle_may_release_what_another_took(sem_url: str) -> None:
    """As threading.Lock: the holder may wait for another thread to release it."""
    lock = osipc.Lock(sem_url)
    lock.acquire()
    threading.Timer(0.2, lock.release).start()
    lock.acquire(timeout=3)  # the holder's own wait ends once the other thread released
    lock.release()
    with pytest.raises(osipc.InvalidArgument, match="does not hold"):
        lock.release()
    lock.close()


def test_a_signal_handler_gets_out_of_a_blocked_acquire(sem_url: str) -> None:
    class Stop(OSError):  # (not to be taken for posix_ipc's error)
        pass

    def handler(*_: object) -> None:
        raise Stop

    sem = osipc.Semaphore(sem_url, value=0)
    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.1)
    try:
        with pytest.raises(Stop):  # posix_ipc would swallow it and go on waiting
            sem.acquire(timeout=5)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        sem.close()


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
    assert time.monotonic() - started < 0.5
    assert lock.holder == os.getpid()
    lock.release()
    with pytest.raises(osipc.InvalidArgument, match="does not hold"):
        lock.release()
    lock.close()


def test_threads_sharing_a_lock_exclude_each_other(sem_url: str) -> None:
    lock = osipc.Lock(sem_url)
    inside: list[int] = []
    clash: list[bool] = []

    def work() -> None:
        for _ in range(200):
            with lock:
                inside.append(1)
                if len(inside) > 1:
                    clash.append(True)
                inside.pop()

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not clash
    lock.close()


# -- inventory ---------------------------------------------------------------------------


def test_ls_info_gc_and_rm_know_rings_blocks_and_semaphores(
    url: Url, osipc_names: Callable[[str], str]
) -> None:
    from _helpers import cli

    queue, block, sem = url("shm", capacity="64K"), url("shm"), f"sem://{osipc_names('s')}"
    assert cli("send", queue, "a", "b").returncode == 0  # created by a process that has exited
    peer("import sys, osipc; osipc.SharedMemory(sys.argv[1], size=4096).close()", block)
    peer("import sys, osipc; osipc.Semaphore(sys.argv[1]).close()", sem)
    info = osipc.info(queue)
    assert (info.kind, info.depth, info.capacity_bytes, info.used_bytes) == (
        "shm-queue",
        2,
        65536,
        32,
    )
    states = {obj.url: (obj.kind, obj.state) for obj in osipc.ls()}
    assert states == {
        queue.split("?")[0]: ("shm-queue", "stale"),
        block: ("shm-block", "stale"),
        sem: ("semaphore", "stale"),
    }
    actions = {a.url: a.action for a in osipc.gc()}
    assert actions == {queue.split("?")[0]: "kept", block: "removed", sem: "removed"}
    name = queue[len("shm://") :].split("?")[0]
    assert shm_files(name), "a ring holding messages is kept"
    assert cli("rm", queue).returncode == 0
    assert shm_files(name) == [] and shm_files(block[len("shm://") :]) == []
    assert osipc.ls() == []


def test_ls_all_shows_what_osipc_did_not_create(osipc_names: Callable[[str], str]) -> None:
    name = osipc_names("foreign")
    segment = posix_ipc.SharedMemory("/" + name, posix_ipc.O_CREX, size=4096)
    segment.close_fd()
    sem = posix_ipc.Semaphore("/" + name, posix_ipc.O_CREX)
    try:
        found = {obj.url: (obj.kind, obj.state) for obj in osipc.ls(all=True)}
        assert found[f"shm://{name}"] == ("shm-block", "foreign")
        assert found[f"sem://{name}"] == ("semaphore", "foreign")
        assert osipc.gc(force=True) == []
    finally:
        posix_ipc.unlink_shared_memory("/" + name)
        sem.unlink()
