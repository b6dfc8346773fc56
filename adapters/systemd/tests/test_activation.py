"""Socket activation emulated without systemd: a trampoline puts real FIFO, queue and
socket descriptors at 3, 4, ... and sets LISTEN_PID to the service's own pid (exec keeps
it), exactly what the manager hands a service. Also ``osipc-systemd run``."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import osipc_systemd
import pytest
from _helpers import NOBODY, need_root, peer, runtime_for

import osipc

# Moves the inherited descriptors to 3, 4, ... (via fds above that range first, since
# dup2(fd, fd) would keep close-on-exec), sets LISTEN_PID to its own pid and execs.
TRAMPOLINE = """
import fcntl, os, sys
fds = [int(fd) for fd in sys.argv[1].split(",") if fd]
moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3 + len(fds)) for fd in fds]
for index, fd in enumerate(moved):
    os.dup2(fd, 3 + index)
os.environ["LISTEN_PID"] = str(os.getpid()) if sys.argv[2] == "self" else sys.argv[2]
os.execv(sys.executable, [sys.executable, "-c", sys.argv[3]])
"""

Activate = Callable[..., subprocess.CompletedProcess[str]]
EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


@pytest.fixture
def activate() -> Activate:
    """activate(code, fds, names, pid="self", count=None, env=None): run ``code`` as if
    systemd had passed ``fds`` named ``names`` (colon-separated; None: no LISTEN_FDNAMES)."""

    def run(code: str, *args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return _launch(textwrap.dedent(code), *args, **kwargs)

    return run


def _launch(
    code: str,
    fds: Sequence[int],
    names: str | None,
    *,
    pid: str = "self",
    count: int | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    environ = dict(os.environ, LISTEN_FDS=str(len(fds) if count is None else count))
    environ.pop("LISTEN_FDNAMES", None)
    if names is not None:
        environ["LISTEN_FDNAMES"] = names
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", TRAMPOLINE, ",".join(map(str, fds)), pid, code],
        capture_output=True,
        text=True,
        timeout=30,
        env=environ,
        pass_fds=list(fds),
        check=False,
        cwd=tempfile.gettempdir(),
    )


def _result(done: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr
    return json.loads(lines[-1])  # type: ignore[no-any-return]


class Objects:
    """A FIFO opened read-write and a queue opened read-only, as the manager opens them."""

    def __init__(self, fifo_url: str, mq_url: str) -> None:
        self.fifo_url, self.mq_url = fifo_url, mq_url
        self.fifo_path = ""
        self.fifo_fd = self.mq_fd = -1

    def open(self) -> None:
        osipc.receiver(self.fifo_url).close()
        self.fifo_path = osipc.info(self.fifo_url).path or ""
        self.fifo_fd = os.open(self.fifo_path, os.O_RDWR | os.O_CLOEXEC)
        with osipc.sender(self.mq_url) as tx:
            tx.send(b"job 1")
        self.mq_fd = _open_queue_readonly(self.mq_url)

    def close(self) -> None:
        for fd in (self.fifo_fd, self.mq_fd):
            if fd >= 0:
                os.close(fd)
        osipc.unlink(self.fifo_url, missing_ok=True)
        osipc.unlink(self.mq_url.partition("?")[0], missing_ok=True)


def _open_queue_readonly(url: str) -> int:
    import posix_ipc  # the test may use the backend directly; the adapter may not

    name = url.partition("://")[2].partition("?")[0]
    queue = posix_ipc.MessageQueue("/" + name, 0, read=True, write=False)
    fd = os.dup(queue.mqd)
    queue.close()
    return fd


@pytest.fixture
def objects(osipc_names: Callable[[str], str]) -> Iterator[Objects]:
    made = Objects(f"fifo://{osipc_names('f')}", f"mq://{osipc_names('q')}?maxmsg=4&msgsize=256")
    try:
        made.open()
        yield made
    finally:
        made.close()


SERVICE = """
import fcntl, json, os, sys
import osipc_systemd
flags = {}
listen = osipc_systemd.listen_fds(unset_environment=False)
for item in listen:
    flags[item.name] = bool(fcntl.fcntl(item.fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)
eps = osipc_systemd.endpoints(senders={"status"})
report = {
    "kinds": {item.name: item.kind for item in listen},
    "urls": {item.name: item.url for item in listen},
    "access": {item.name: [item.readable, item.writable] for item in listen},
    "types": {name: type(ep).__name__ for name, ep in eps.items()},
    "cloexec": flags,
    "env": sorted(key for key in os.environ if key.startswith("LISTEN_")),
}
report["job"] = eps.receiver("jobs").recv(timeout=5).decode()
eps.sender("status").send(b"all good", timeout=5)
eps.socket("peer").sendall(b"hello over the socket")
eps.close()
print(json.dumps(report))
"""


def test_endpoints_adopt_fifo_queue_and_socket(objects: Objects, activate: Activate) -> None:
    near, far = socket.socketpair()
    try:
        done = activate(SERVICE, [objects.fifo_fd, objects.mq_fd, far.fileno()], "status:jobs:peer")
        report = _result(done)
        assert near.recv(100) == b"hello over the socket"
    finally:
        near.close()
        far.close()
    assert report["kinds"] == {"status": "fifo", "jobs": "mq", "peer": "socket"}
    queue_name = objects.mq_url.partition("://")[2].partition("?")[0]
    assert report["urls"] == {
        "status": f"fifo://{objects.fifo_path}?fd=3",
        "jobs": f"mq://{queue_name}?fd=4",
        "peer": "",
    }
    assert report["access"] == {
        "status": [True, True],
        "jobs": [True, False],
        "peer": [True, True],
    }
    types = report["types"]
    assert isinstance(types, dict)
    assert "Sender" in types["status"] and "Receiver" in types["jobs"]
    assert types["peer"] == "socket"
    assert report["cloexec"] == {"status": True, "jobs": True, "peer": True}
    assert report["env"] == []  # unset, so the service's children see none of it
    assert report["job"] == "job 1"
    with osipc.receiver(objects.fifo_url) as rx:
        assert rx.recv(timeout=5) == b"all good"


DRAIN = """
    import json, threading, time, osipc, osipc_systemd
    eps = osipc_systemd.endpoints(senders={"status"})
    status = eps.sender("status")
    report = {"at_start": eps.drain()}  # nothing there
    status.send(b"one")
    status.send(b"two")
    report["dropped"] = eps.drain("status")  # at once: 2 frames of 5 + 3 bytes
    status.send(b"for a reader")
    got = []

    def reader():
        time.sleep(0.3)
        with osipc.receiver(status.url.partition("?")[0], create=False) as rx:
            got.append(rx.recv(timeout=5).decode())

    thread = threading.Thread(target=reader)
    thread.start()
    started = time.monotonic()
    report["read_in_time"] = eps.drain(wait=10)  # returns once the reader took it
    report["waited"] = time.monotonic() - started
    thread.join()
    report["reader_got"] = got
    for call, args in (("jobs", {}), ("nope", {}), ("status", {"wait": -1})):
        try:
            eps.drain(call, **args)
        except (KeyError, TypeError, osipc.InvalidArgument) as exc:
            report[call] = f"{type(exc).__name__}: {exc}"
    try:
        eps.sender("jobs")
    except TypeError as exc:
        report["jobs_as_sender"] = str(exc)
    status.send(b"left behind")  # after the last drain: stays for the test to find
    eps.close()
    try:
        eps.drain()
    except osipc.Closed as exc:
        report["closed"] = str(exc)
    print(json.dumps(report))
"""


def test_drain_empties_the_fifos_the_service_writes_to(
    objects: Objects, activate: Activate
) -> None:
    """What a service leaves in a FIFO systemd holds open looks like traffic and starts
    it again; drain() throws it away through the descriptor, after readers had ``wait``
    seconds to take it, and says how much that was."""
    report = _result(activate(DRAIN, [objects.fifo_fd, objects.mq_fd], "status:jobs"))
    assert (report["at_start"], report["dropped"]) == (0, 16)
    assert report["read_in_time"] == 0 and report["reader_got"] == ["for a reader"]
    waited = report["waited"]
    assert isinstance(waited, float) and 0.25 < waited < 5
    assert "TypeError: endpoint 'jobs' is a receiver (mq://" in str(report["jobs"])
    assert "not a FIFO systemd passed that this service writes to" in str(report["jobs"])
    assert "KeyError" in str(report["nope"]) and "no descriptor named 'nope'" in str(report["nope"])
    assert "InvalidArgument: drain(wait=-1): wait must be >= 0" in str(report["status"])
    assert "drain() before close()" in str(report["closed"])
    # a queue cannot become a sender, so the hint is not senders= but the name
    hint = str(report["jobs_as_sender"])
    assert "senders=" not in hint
    queue = objects.mq_url.partition("?")[0]
    assert hint.endswith(
        f"its queues read-only, so send to it through a sender opened by name ({queue})"
    )
    # only what came after the last drain is left (the test holds the FIFO open)
    with osipc.receiver(f"{objects.fifo_url}?keep_open=1", create=False) as rx:
        assert rx.recv(timeout=5) == b"left behind"
        with pytest.raises(osipc.Timeout):
            rx.recv(timeout=0)


def test_without_names_the_objects_name_them(objects: Objects, activate: Activate) -> None:
    code = """
        import json, osipc_systemd
        print(json.dumps(sorted(osipc_systemd.endpoints().keys())))
    """
    done = activate(code, [objects.fifo_fd, objects.mq_fd], None)
    assert done.returncode == 0, done.stderr
    fifo_name = objects.fifo_url.partition("://")[2]
    queue_name = objects.mq_url.partition("://")[2].partition("?")[0]
    assert json.loads(done.stdout) == sorted([fifo_name, queue_name])


def test_fds_meant_for_another_process_are_ignored(objects: Objects, activate: Activate) -> None:
    code = """
        import json, os, osipc_systemd
        found = osipc_systemd.endpoints()
        print(json.dumps([len(found), sorted(k for k in os.environ if k.startswith("LISTEN_"))]))
    """
    done = activate(code, [objects.fifo_fd], "x", pid="1")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [0, []]


def test_unset_environment_false_keeps_the_variables(objects: Objects, activate: Activate) -> None:
    code = """
        import json, os, osipc_systemd
        osipc_systemd.listen_fds(unset_environment=False)
        print(json.dumps(sorted(k for k in os.environ if k.startswith("LISTEN_"))))
    """
    done = activate(code, [objects.fifo_fd], "x")
    assert json.loads(done.stdout) == ["LISTEN_FDNAMES", "LISTEN_FDS", "LISTEN_PID"]


ERROR = """
    import osipc, osipc_systemd
    try:
        osipc_systemd.endpoints(senders={SENDERS})
    except osipc.InvalidArgument as exc:
        print(exc)
    else:
        print("no error")
"""


@pytest.mark.parametrize(
    "case",
    [
        ("a:a", None, "()", "several descriptors named 'a'"),
        ("a", None, "()", "names 1 descriptors but LISTEN_FDS=2"),
        ("a:b:c", 3, "()", "fd 5 was passed to this process, but it is not open"),
        ("a:b", None, "{'b'}", "not open for writing"),
    ],
)
def test_damaged_environment_and_wrong_roles_raise(
    objects: Objects, activate: Activate, case: tuple[str, int | None, str, str]
) -> None:
    names, count, senders, message = case
    code = ERROR.replace("{SENDERS}", senders)
    done = activate(code, [objects.fifo_fd, objects.mq_fd], names, count=count)
    assert done.returncode == 0, done.stderr
    assert message in done.stdout


def test_malformed_numbers_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LISTEN_PID", "me")
    monkeypatch.setenv("LISTEN_FDS", "1")
    with pytest.raises(osipc.InvalidArgument, match="LISTEN_PID='me'"):
        osipc_systemd.listen_fds()
    assert "LISTEN_FDS" not in os.environ  # unset whatever happened
    monkeypatch.setenv("LISTEN_PID", str(os.getpid()))
    monkeypatch.setenv("LISTEN_FDS", "-1")
    with pytest.raises(osipc.InvalidArgument, match="LISTEN_FDS='-1'"):
        osipc_systemd.listen_fds()


def test_outside_systemd_there_are_no_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        monkeypatch.delenv(key, raising=False)
    with osipc_systemd.endpoints(senders={"status"}, codec="json") as eps:
        assert eps == {}
        with pytest.raises(KeyError, match="systemd passed no descriptor named 'jobs'"):
            eps.receiver("jobs")


def test_typed_accessors_say_what_an_endpoint_is(osipc_names: Callable[[str], str]) -> None:
    url = f"fifo://{osipc_names('f')}"
    eps = osipc_systemd.Endpoints()
    eps["rx"] = osipc.receiver(url)
    eps["raw"] = os.dup(0)
    try:
        with pytest.raises(TypeError, match=r"is a receiver .*not an osipc sender.*senders="):
            eps.sender("rx")
        with pytest.raises(TypeError, match="not a socket"):
            eps.socket("rx")
        with pytest.raises(TypeError, match="neither FIFO, message queue nor socket"):
            eps.receiver("raw")
        with pytest.raises(TypeError, match=r"is a receiver .*not a FIFO systemd passed"):
            eps.drain("rx")
        assert eps.drain() == 0  # none of them: nothing to drain
    finally:
        eps.close()
        osipc.unlink(url)
    assert eps == {}
    eps.close()  # twice is fine


def test_close_reports_a_descriptor_it_could_not_close(
    osipc_names: Callable[[str], str],
) -> None:
    url = f"fifo://{osipc_names('f')}"
    rx = osipc.receiver(url)
    not_open = 1_000_000  # above any fd limit: never open, never recycled
    eps = osipc_systemd.Endpoints(raw=not_open, rx=rx)
    try:
        with pytest.raises(osipc.TransportError, match=r"close fd 1000000 of endpoint 'raw'") as e:
            eps.close()
        assert e.value.errno == errno.EBADF and "something else closed it" in str(e.value)
        assert rx.closed  # the others are closed all the same
        assert eps == {}
        eps.close()  # and a second close does nothing
    finally:
        rx.close()
        osipc.unlink(url)


# -- osipc-systemd run ------------------------------------------------------------------


def _notify_listener() -> tuple[socket.socket, str]:
    name = f"osipc-systemd-test-{os.getpid()}-{os.urandom(4).hex()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(10)
    return sock, "@" + name


@contextlib.contextmanager
def _example_daemon(commands: str, status: str) -> Iterator[tuple[subprocess.Popen[str], Any]]:
    """examples/cmdqueue.py under `osipc-systemd run`, with a notify socket; the daemon
    and the listener, both cleaned up with the two endpoints."""
    listener, address = _notify_listener()
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "osipc_systemd",
            "run",
            "--listen",
            f"commands=mq://{commands}?maxmsg=4&msgsize=1024",
            "--listen",
            f"status=fifo://{status}",
            "--",
            sys.executable,
            os.path.join(EXAMPLES, "cmdqueue.py"),
        ],
        env=dict(os.environ, NOTIFY_SOCKET=address),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.recv(4096) == b"READY=1\nSTATUS=waiting for commands"
        yield daemon, listener
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate()
        listener.close()
        for url in (f"mq://{commands}", f"fifo://{status}"):
            osipc.unlink(url, missing_ok=True)


def test_run_activates_the_example_daemon(osipc_names: Callable[[str], str]) -> None:
    commands, status = osipc_names("cmd"), osipc_names("st")
    with _example_daemon(commands, status) as (daemon, listener):
        with (
            osipc.sender(f"mq://{commands}", codec="json") as tx,
            osipc.receiver(f"fifo://{status}", codec="json") as rx,
        ):
            tx.send({"cmd": "push", "job": "build"})
            tx.send({"cmd": "status", "id": 7})
            answer = rx.recv(timeout=10)
            assert answer["id"] == 7 and answer["jobs"] == ["build"]
            assert answer["pid"] == daemon.pid  # exec kept the pid LISTEN_PID named
            assert listener.recv(4096) == b"STATUS=1 commands handled, 1 jobs queued"
            tx.send({"cmd": "stop"})
        _, err = daemon.communicate(timeout=10)
        assert daemon.returncode == 0, err


def test_the_example_daemon_pops_skips_junk_and_drains_at_exit(
    osipc_names: Callable[[str], str],
) -> None:
    commands, status = osipc_names("cmd"), osipc_names("st")
    with _example_daemon(commands, status) as (daemon, listener):
        with (
            osipc.sender(f"mq://{commands}", codec="json") as tx,
            osipc.sender(f"mq://{commands}") as raw,
            osipc.receiver(f"fifo://{status}", codec="json") as rx,
        ):
            for command in ({"cmd": "push", "job": "a"}, {"cmd": "push", "job": "b"}):
                tx.send(command)
            tx.send({"cmd": "pop"})  # drops the oldest
            tx.send({"cmd": "dance"})
            tx.send([1, 2])  # JSON, but not a command
            raw.send(b"{not json")
            tx.send({"cmd": "status", "id": 1})
            answer = rx.recv(timeout=10)
            assert answer["jobs"] == ["b"]
            assert answer["handled"] == 6  # the message that is not JSON does not count
            tx.send({"cmd": "status", "id": 2})  # an answer nobody reads
            tx.send({"cmd": "stop"})
            _, err = daemon.communicate(timeout=10)
            assert daemon.returncode == 0, err
            # it drained the FIFO before exiting: under systemd, data left in it would
            # look like traffic and start the daemon again at once
            with pytest.raises((osipc.Timeout, osipc.EndOfStream)):
                rx.recv(timeout=0)
        assert "unknown command {'cmd': 'dance'}" in err
        assert "unknown command [1, 2]" in err
        assert "ignoring a message that is not JSON" in err
        listener.setblocking(False)
        statuses = []
        with contextlib.suppress(BlockingIOError):
            while True:
                statuses.append(listener.recv(4096))
        assert statuses[-2:] == [
            b"STATUS=7 commands handled, 1 jobs queued",
            b"STOPPING=1\nSTATUS=stopping after 8 commands",  # stop counts too
        ]


def test_run_passes_descriptors_like_the_manager(
    osipc_names: Callable[[str], str], cli: Activate
) -> None:
    fifo, queue = osipc_names("f"), osipc_names("q")
    code = textwrap.dedent(
        """
        import fcntl, json, os, stat
        print(json.dumps({
            "env": [os.environ["LISTEN_FDS"], os.environ["LISTEN_FDNAMES"],
                    os.environ["LISTEN_PID"] == str(os.getpid())],
            "modes": [fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE for fd in (3, 4)],
            "fifo": stat.S_ISFIFO(os.fstat(3).st_mode),
            "inheritable": [os.get_inheritable(fd) for fd in (3, 4)],
        }))
        """
    )
    done = cli(
        "run", "--listen", f"fifo://{fifo}?mode=0640", "--listen", f"mq://{queue}",
        "--", sys.executable, "-c", code,
    )  # fmt: skip
    try:
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["env"] == ["2", f"{fifo}:{queue}", True]
        assert report["modes"] == [os.O_RDWR, os.O_RDONLY]  # as systemd opens them
        assert report["fifo"] is True and report["inheritable"] == [True, True]
        info = osipc.info(f"fifo://{fifo}")
        assert info.mode == 0o640 and stat.S_ISFIFO(os.lstat(info.path or "").st_mode)
    finally:
        osipc.unlink(f"fifo://{fifo}", missing_ok=True)
        osipc.unlink(f"mq://{queue}", missing_ok=True)


@pytest.mark.parametrize(
    ("listen", "message"),
    [
        ("shm://ring", "only fifo:// and mq://"),
        ("fifo://x?fd=3", "fd= makes no sense"),
        ("mq://bad/name", "mq://"),
    ],
)
def test_run_refuses_what_it_cannot_pass(listen: str, message: str, cli: Activate) -> None:
    done = cli("run", "--listen", listen, "--", "true")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert message in done.stderr


@pytest.mark.parametrize(
    ("listens", "message"),
    [
        (["a:b=fifo://{f}"], "the descriptor name 'a:b' must be 1-200 characters"),
        (["fifo:///tmp/{f}:x.fifo"], "the descriptor name '{f}:x' must be"),
        (["j=fifo://{f}", "j=mq://{q}"], "the descriptor name 'j' is given twice"),
        (["{q}=fifo://{f}", "mq://{q}"], "the descriptor name '{q}' is given twice"),
        (["a=mq://{q}", "b=mq://{q}?maxmsg=2&msgsize=64"], "the endpoint mq://{q} is given twice"),
        (["mq://{q}", "shm://{f}"], "only fifo:// and mq://"),
    ],
)
def test_run_refuses_names_systemd_could_not_pass_before_making_anything(
    osipc_names: Callable[[str], str], cli: Activate, listens: list[str], message: str
) -> None:
    """':' separates LISTEN_FDNAMES: such a name broke it, and the service then blamed
    systemd. Every check comes before any object is made (the leak check sees to it)."""
    names = {"f": osipc_names("f"), "q": osipc_names("q")}
    args = [arg for text in listens for arg in ("--listen", text.format(**names))]
    done = cli("run", *args, "--", "true")
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and message.format(**names) in done.stderr


def test_run_refuses_a_fifo_or_queue_another_user_planted(
    osipc_names: Callable[[str], str], osipc_runtime: str, cli: Activate
) -> None:
    """As systemd refuses them: a squatter's object is never handed to the service."""
    need_root("objects owned by another user")
    fifo, queue = osipc_names("f"), osipc_names("q")
    path = os.path.join(osipc_runtime, f"{fifo}.fifo")
    os.mkfifo(path, 0o600)
    os.chown(path, NOBODY, NOBODY)
    with runtime_for(NOBODY) as env:
        peer(
            """
            import sys, osipc
            osipc.receiver("mq://" + sys.argv[1], maxmsg=2, msgsize=64).close()
            """,
            queue,
            user=NOBODY,
            env=env,
        )
    try:
        for url in (f"fifo://{fifo}", f"mq://{queue}"):
            done = cli("run", "--listen", url, "--", "true")
            assert done.returncode == 1, done.stderr
            assert f"created by uid {NOBODY}, not by you" in done.stderr
            assert "trust_existing" in done.stderr and done.stderr.count("\n") == 1
    finally:
        os.unlink(path)
        osipc.unlink(f"mq://{queue}", missing_ok=True)


def test_run_reports_a_missing_command(osipc_names: Callable[[str], str], cli: Activate) -> None:
    url = f"mq://{osipc_names('q')}"
    try:
        done = cli("run", "--listen", url, "--", "/nonexistent/daemon")
        assert done.returncode == 1
        assert "cannot run '/nonexistent/daemon'" in done.stderr
        with pytest.raises(osipc.NotFound):  # made for a command that never ran: removed
            osipc.info(url)
    finally:
        osipc.unlink(url, missing_ok=True)


def test_a_failed_run_removes_only_the_endpoints_it_made(
    osipc_names: Callable[[str], str], cli: Activate
) -> None:
    """The third endpoint cannot be made (a message size past the kernel's hard limit):
    the first, made by this run, is removed again; the second, there before, stays."""
    made, there = f"fifo://{osipc_names('f')}", f"mq://{osipc_names('q')}"
    bad = f"mq://{osipc_names('b')}?msgsize=99999999"
    osipc.receiver(there, maxmsg=2, msgsize=64).close()
    try:
        done = cli("run", "--listen", made, "--listen", there, "--listen", bad, "--", "true")
        assert done.returncode == 1 and "exceeds the kernel's hard limit" in done.stderr
        with pytest.raises(osipc.NotFound):
            osipc.info(made)
        assert osipc.info(there).kind == "mq"
    finally:
        for url in (made, there, bad.partition("?")[0]):
            osipc.unlink(url, missing_ok=True)
