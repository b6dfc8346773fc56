"""Metadata records, live/stale/gone, and gc that never touches what osipc did not make."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable

import posix_ipc
import pytest
import sysv_ipc
from _helpers import IS_ROOT, NOBODY, cli, finish, peer, runtime_for, spawn
from _helpers import _argv as peer_argv

import osipc
from osipc import _inventory
from osipc._address import sysv_key

Url = Callable[..., str]


def test_a_record_describes_the_creator(url: Url, osipc_runtime: str) -> None:
    target = url("mq", maxmsg=4, msgsize=64)
    with osipc.sender(target, codec="json", mode=0o640):
        (record,) = _inventory.load_records()
    assert record["url"] == target.split("?")[0] and record["kind"] == "mq"
    assert record["creator_pid"] == os.getpid() and record["uid"] == os.geteuid()
    assert record["creator_start"] == _inventory.proc_start_time(os.getpid())
    assert (record["mode"], record["codec"], record["capacity"], record["max_message_size"]) == (
        "0640",
        "json",
        4,
        64,
    )
    meta = os.path.join(osipc_runtime, ".meta")
    assert oct(os.stat(meta).st_mode & 0o777) == "0o700"
    osipc.unlink(target)
    assert _inventory.load_records() == [], "unlink removes the record"


def test_attaching_never_writes_a_record(url: Url) -> None:
    target = url("mq", maxmsg=4, msgsize=64)
    assert cli("send", target).returncode == 0
    before = _inventory.load_records()
    osipc.receiver(target).close()
    assert _inventory.load_records() == before
    osipc.unlink(target)


@pytest.mark.parametrize(
    ("scheme", "options"),
    [
        ("fifo", {}),
        ("mq", {"maxmsg": 4, "msgsize": 64}),
        ("shm", {"capacity": 4096}),
        ("sysv+shm", {"capacity": 4096}),  # attached, not open: found in /proc/PID/maps
    ],
)
def test_live_while_the_creator_runs_or_anyone_holds_it(
    url: Url, scheme: str, options: dict[str, object]
) -> None:
    target = url(scheme, **options)
    creator = spawn(
        "import sys, osipc\n"
        "rx = osipc.receiver(sys.argv[1])\n"
        "print('up', flush=True)\n"
        "sys.stdin.read()",
        target,
        stdin=subprocess.PIPE,
    )
    assert creator.stdout is not None and creator.stdout.readline() == "up\n"
    info = osipc.info(target)
    assert info.state == "live" and info.creator_pid == creator.pid and creator.pid in info.attached
    holder = osipc.receiver(target)  # attached by this process
    finish(creator)  # closes its stdin: it exits
    info = osipc.info(target)
    assert (info.state, info.attached) == ("live", (os.getpid(),)), "creator gone, still attached"
    assert [a.action for a in osipc.gc()] == [], "gc removed an object in use"
    holder.close()
    assert osipc.info(target).state == "stale"
    assert [a.action for a in osipc.gc()] == ["removed"]
    with pytest.raises(osipc.NotFound):
        osipc.info(target)


def test_a_recycled_pid_is_not_the_creator(url: Url, osipc_runtime: str) -> None:
    target = url("mq", maxmsg=4, msgsize=64)
    osipc.sender(target).close()
    (path,) = [os.path.join(d, f) for d, _, fs in os.walk(osipc_runtime) for f in fs]
    with open(path) as handle:
        record = json.load(handle)
    record["creator_start"] -= 1  # same pid, different process
    with open(path, "w") as handle:
        json.dump(record, handle)
    assert osipc.info(target).state == "stale"
    osipc.unlink(target)


def test_an_object_removed_behind_osipcs_back_is_gone(url: Url) -> None:
    target = url("mq", maxmsg=4, msgsize=64)
    assert cli("send", target).returncode == 0
    posix_ipc.unlink_message_queue("/" + target[len("mq://") :].split("?")[0])
    (entry,) = osipc.ls()
    assert (entry.state, entry.exists) == ("gone", False)
    assert [(a.url, a.action) for a in osipc.gc()] == [(target.split("?")[0], "forgotten")]
    assert osipc.ls() == []


def _replace_mq(name: str, runtime: str) -> Callable[[], None]:
    posix_ipc.unlink_message_queue("/" + name)  # another program removes osipc's queue...
    posix_ipc.MessageQueue("/" + name, posix_ipc.O_CREX, max_messages=1, max_message_size=8)
    return lambda: posix_ipc.MessageQueue("/" + name).close()  # ...and makes its own


def _replace_shm(name: str, runtime: str) -> Callable[[], None]:
    posix_ipc.unlink_shared_memory("/" + name)
    os.close(posix_ipc.SharedMemory("/" + name, posix_ipc.O_CREX, size=4096).fd)
    return lambda: os.close(posix_ipc.SharedMemory("/" + name).fd)


def _replace_fifo(name: str, runtime: str) -> Callable[[], None]:
    path = os.path.join(runtime, name + ".fifo")
    os.unlink(path)
    os.mkfifo(path, 0o600)
    return lambda: os.stat(path) and None


def _replace_sysv_mq(name: str, runtime: str) -> Callable[[], None]:
    sysv_ipc.MessageQueue(sysv_key(name)).remove()
    sysv_ipc.MessageQueue(sysv_key(name), sysv_ipc.IPC_CREX)
    return lambda: sysv_ipc.MessageQueue(sysv_key(name)) and None


def _remove_foreign(scheme: str, name: str, runtime: str) -> None:
    removals: list[Callable[[], object]] = {
        "mq": [lambda: posix_ipc.unlink_message_queue("/" + name)],
        "shm": [
            lambda: posix_ipc.unlink_shared_memory("/" + name),
            # the old ring's semaphores: gc leaves them, as a new ring of the name uses its own
            lambda: posix_ipc.unlink_semaphore(f"/{name}:tx"),
            lambda: posix_ipc.unlink_semaphore(f"/{name}:rx"),
        ],
        "fifo": [lambda: os.unlink(os.path.join(runtime, name + ".fifo"))],
        "sysv+mq": [lambda: sysv_ipc.MessageQueue(sysv_key(name)).remove()],
    }[scheme]
    for remove in removals:
        try:
            remove()
        except (OSError, posix_ipc.Error, sysv_ipc.Error):
            pass


@pytest.mark.parametrize(
    ("scheme", "query", "replace"),
    [
        ("mq", "?maxmsg=1&msgsize=8", _replace_mq),
        ("shm", "?capacity=4K", _replace_shm),
        ("fifo", "", _replace_fifo),
        ("sysv+mq", "", _replace_sysv_mq),
    ],
    ids=["mq", "shm", "fifo", "sysv+mq"],
)
def test_gc_forgets_a_record_whose_object_was_replaced_and_spares_the_new_one(
    osipc_names: Callable[[str], str],
    osipc_runtime: str,
    scheme: str,
    query: str,
    replace: Callable[[str, str], Callable[[], None]],
) -> None:
    # The record names an object; the name outlives it. gc must judge the object the
    # record was written for, never another program's object that took the name later.
    name = osipc_names("replaced")
    target = f"{scheme}://{name}"
    peer("import sys, osipc; osipc.receiver(sys.argv[1]).close()", target + query)
    assert osipc.info(target).state == "stale", "the creator has exited: osipc's own is stale"
    try:
        still_there = replace(name, osipc_runtime)
        info = osipc.info(target)
        assert (info.state, info.creator_pid) == ("replaced", None)
        assert [(a.action, a.url) for a in osipc.gc(force=True)] == [("forgotten", target)]
        still_there()  # raises if gc removed the other program's object
        assert osipc.ls() == [], "the record is gone"
        assert osipc.info(target).state == "foreign"
    finally:
        _remove_foreign(scheme, name, osipc_runtime)


def test_gc_never_touches_what_osipc_did_not_create(
    osipc_runtime: str, osipc_names: Callable[[str], str]
) -> None:
    name = osipc_names("foreign")
    fifo_path = os.path.join(osipc_runtime, name + ".fifo")
    os.mkfifo(fifo_path, 0o600)
    queue = posix_ipc.MessageQueue("/" + name, posix_ipc.O_CREX, max_messages=1, max_message_size=8)
    queue.close()
    try:
        assert osipc.gc(force=True) == []
        assert os.path.exists(fifo_path)
        posix_ipc.MessageQueue("/" + name).close()  # still there
        assert osipc.ls() == []
        foreign = {obj.url: obj.state for obj in osipc.ls(all=True)}
        assert foreign.get(f"fifo://{name}") == "foreign"
    finally:
        os.unlink(fifo_path)
        posix_ipc.unlink_message_queue("/" + name)


def test_ls_all_lists_foreign_queues_where_mqueue_is_mounted(
    osipc_names: Callable[[str], str], osipc_runtime: str, tmp_path: os.PathLike[str]
) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare to mount mqueue in a private mount namespace")
    name = osipc_names("listed")
    mine = f"mq://{osipc_names('mine')}?maxmsg=1&msgsize=8"
    osipc.sender(mine).close()
    queue = posix_ipc.MessageQueue("/" + name, posix_ipc.O_CREX, max_messages=1, max_message_size=8)
    queue.close()
    mountpoint = os.path.join(str(tmp_path), "mq")
    os.mkdir(mountpoint)
    script = textwrap.dedent(
        f"""
        mount -t mqueue none {mountpoint} || exit 3
        exec {sys.executable} -I -m osipc ls --all --json
        """
    )
    try:
        done = subprocess.run(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        states = {entry["url"]: entry["state"] for entry in json.loads(done.stdout)}
        assert states[f"mq://{name}"] == "foreign"
        assert states[mine.split("?", maxsplit=1)[0]] == "live"
    finally:
        posix_ipc.unlink_message_queue("/" + name)
        osipc.unlink(mine)


def test_ls_all_says_when_queues_cannot_be_listed() -> None:
    from osipc import _limits

    if _limits.mqueue_mount() is None:
        done = cli("ls", "--all")
    else:  # tests/run-pytest mounts one (as /dev/mqueue is on many machines): unmount it
        if not IS_ROOT or shutil.which("unshare") is None:
            pytest.skip("an mqueue file system is mounted, and only root can unmount it")
        script = textwrap.dedent(
            f"""
            while m=$(awk '$3 == "mqueue" {{print $2; exit}}' /proc/self/mounts); [ -n "$m" ]
            do umount "$m" || exit 3; done
            exec {sys.executable} -I -m osipc ls --all
            """
        )
        done = subprocess.run(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            cwd=tempfile.gettempdir(),
        )
    assert done.returncode == 0, done.stderr
    assert "no mqueue file system is mounted (mount -t mqueue" in done.stderr


_GC_AS_USER = """
import json, sys, osipc
states = {obj.url: obj.state for obj in osipc.ls()}
actions = {a.url: a.action for a in osipc.gc(force=len(sys.argv) > 1)}
print(json.dumps([states, actions]))
"""


def test_gc_by_another_user_keeps_what_it_cannot_tell_is_unused(url: Url) -> None:
    # nobody cannot read root's /proc/PID/fd: a queue that root (or any other user) may
    # have open is not known to be unused, so nobody's gc must not call it stale.
    if not IS_ROOT or shutil.which("unshare") is None:
        pytest.skip("needs root (to run peers as nobody) and unshare")
    private = url("mq", maxmsg=1, msgsize=8)  # mode 0600: only nobody can open it
    shared = url("mq", maxmsg=1, msgsize=8, mode="0666")
    private_url, shared_url = private.split("?")[0], shared.split("?")[0]
    with runtime_for(NOBODY) as env:
        peer(
            "import sys, osipc\nfor target in sys.argv[1:]: osipc.sender(target).close()",
            private,
            shared,
            user=NOBODY,
            env=env,
        )
        try:
            # In a PID namespace of its own the only process nobody cannot inspect is
            # the root shell that started it: nobody's own private queue is still
            # collected (root's processes do not count against a 0600 object), the
            # shared one is kept.
            in_pid_ns = ["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", '"$@"; exit $?']
            done = subprocess.run(
                [*in_pid_ns, "sh", *peer_argv(_GC_AS_USER, (), NOBODY)],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            states, actions = json.loads(done.stdout)
            assert states == {private_url: "stale", shared_url: "unknown"}
            assert actions == {private_url: "removed", shared_url: "kept"}
            # The audit's case: root has the shared queue open, nobody runs gc.
            with osipc.receiver(shared_url, trust_existing=True):
                states, actions = json.loads(peer(_GC_AS_USER, user=NOBODY, env=env).stdout)
                assert (states, actions) == ({shared_url: "unknown"}, {shared_url: "kept"})
                osipc.info(shared_url)  # still there
                _, actions = json.loads(peer(_GC_AS_USER, "force", user=NOBODY, env=env).stdout)
                assert actions == {shared_url: "removed"}, "--force removes it anyway"
        finally:
            for target in (private_url, shared_url):
                osipc.unlink(target, missing_ok=True)


def test_records_survive_a_sigkilled_creator(url: Url) -> None:
    target = url("mq", maxmsg=4, msgsize=64)
    done = peer(
        "import os, signal, sys, osipc\n"
        "osipc.sender(sys.argv[1])\n"
        "os.kill(os.getpid(), signal.SIGKILL)",
        target,
        check=False,
    )
    assert done.returncode == -9
    info = osipc.info(target)
    assert info.state == "stale" and info.creator_pid is not None
    assert [a.action for a in osipc.gc()] == ["removed"]
