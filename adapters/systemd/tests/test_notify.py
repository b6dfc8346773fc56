"""sd_notify against real datagram sockets (path and abstract), as the manager reads them."""

from __future__ import annotations

import array
import errno
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator

import osipc_systemd
import pytest

import osipc


class Listener:
    """A notify socket like the manager's: datagrams with the sender's credentials."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(address)
        self.sock.settimeout(5)

    def recv(self) -> bytes:
        return self.sock.recv(65536)

    def recvmsg(self) -> tuple[bytes, list[tuple[int, int, bytes]]]:
        size = socket.CMSG_SPACE(4 * 4) + socket.CMSG_SPACE(12)
        data, ancillary, _, _ = self.sock.recvmsg(65536, size)
        return data, ancillary

    def pending(self) -> list[bytes]:
        got = []
        self.sock.settimeout(0)
        try:
            while True:
                got.append(self.sock.recv(65536))
        except BlockingIOError:
            pass
        finally:
            self.sock.settimeout(5)
        return got


@pytest.fixture
def path_listener(monkeypatch: pytest.MonkeyPatch) -> Iterator[Listener]:
    directory = tempfile.mkdtemp(prefix="osd-")  # short: AF_UNIX paths end at 107 bytes
    path = os.path.join(directory, "notify")
    listener = Listener(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    try:
        yield listener
    finally:
        listener.sock.close()
        shutil.rmtree(directory)


@pytest.fixture
def abstract_listener(monkeypatch: pytest.MonkeyPatch) -> Iterator[Listener]:
    name = f"osipc-systemd-test-{os.getpid()}-{os.urandom(4).hex()}"
    listener = Listener("\0" + name)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    try:
        yield listener
    finally:
        listener.sock.close()


@pytest.fixture(autouse=True)
def _no_inherited_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(key, raising=False)


def test_outside_systemd_every_call_is_a_no_op() -> None:
    assert osipc_systemd.ready() is False
    assert osipc_systemd.status("x") is False
    assert osipc_systemd.stopping() is False
    assert osipc_systemd.watchdog() is False
    assert osipc_systemd.extend_timeout(1) is False
    assert osipc_systemd.notify("FOO=1") is False
    assert osipc_systemd.watchdog_timeout() is None
    with osipc_systemd.Watchdog() as dog:
        assert not dog.enabled


def test_messages_reach_a_path_socket(path_listener: Listener) -> None:
    assert osipc_systemd.ready(status="serving") is True
    assert path_listener.recv() == b"READY=1\nSTATUS=serving"
    osipc_systemd.status("3 jobs")
    assert path_listener.recv() == b"STATUS=3 jobs"
    osipc_systemd.stopping()
    assert path_listener.recv() == b"STOPPING=1"
    osipc_systemd.watchdog()
    assert path_listener.recv() == b"WATCHDOG=1"
    osipc_systemd.extend_timeout(1.5)
    assert path_listener.recv() == b"EXTEND_TIMEOUT_USEC=1500000"
    osipc_systemd.reloading()
    first, second = path_listener.recv().split(b"\n")
    assert first == b"RELOADING=1" and second.startswith(b"MONOTONIC_USEC=")
    assert abs(int(second.partition(b"=")[2]) / 1e6 - time.monotonic()) < 5


def test_messages_reach_an_abstract_socket_with_our_credentials(
    abstract_listener: Listener,
) -> None:
    osipc_systemd.ready()
    data, ancillary = abstract_listener.recvmsg()
    assert data == b"READY=1"
    creds = [item for item in ancillary if item[1] == socket.SCM_CREDENTIALS]
    pid, uid, _gid = array.array("i", creds[0][2][:12])
    assert (pid, uid) == (os.getpid(), os.geteuid())  # what the manager checks


def test_descriptors_ride_along(path_listener: Listener) -> None:
    read_end, write_end = os.pipe()
    try:
        osipc_systemd.notify("FDSTORE=1", "FDNAME=pipe", fds=[write_end])
        data, ancillary = path_listener.recvmsg()
        assert data == b"FDSTORE=1\nFDNAME=pipe"
        rights = [item for item in ancillary if item[1] == socket.SCM_RIGHTS]
        (received,) = array.array("i", rights[0][2])
        os.write(received, b"through the store")
        os.close(received)
        assert os.read(read_end, 100) == b"through the store"
    finally:
        os.close(read_end)
        os.close(write_end)


def test_unreachable_socket_raises_a_clear_oserror(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/nonexistent/osipc-notify")
    with pytest.raises(osipc_systemd.NotifyError) as caught:
        osipc_systemd.ready()
    assert isinstance(caught.value, OSError) and isinstance(caught.value, osipc.OsipcError)
    assert caught.value.errno == errno.ENOENT
    assert "NOTIFY_SOCKET=/nonexistent/osipc-notify" in str(caught.value)
    assert "nothing listens there" in str(caught.value)


def test_a_stream_socket_is_refused_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tempfile.mkdtemp(prefix="osd-")
    path = os.path.join(directory, "stream")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(path)
        server.listen()
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        with pytest.raises(osipc_systemd.NotifyError) as caught:
            osipc_systemd.status("x")
        assert caught.value.errno is not None
    finally:
        server.close()
        shutil.rmtree(directory)


@pytest.mark.parametrize("value", ["relative/path", "vsock:2:1234"])
def test_unsupported_notify_socket_forms(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", value)
    with pytest.raises(osipc.InvalidArgument, match="neither an absolute path nor"):
        osipc_systemd.ready()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: osipc_systemd.status("two\nlines"), "one line"),
        (lambda: osipc_systemd.ready(status="nul\0"), "one line"),
        (osipc_systemd.notify, "at least one"),
        (lambda: osipc_systemd.notify("NOEQUALS"), "KEY=VALUE"),
        (lambda: osipc_systemd.notify("=value"), "KEY=VALUE"),
        (lambda: osipc_systemd.status("x" * 5000), "4096 bytes"),
        (lambda: osipc_systemd.extend_timeout(0), "must be > 0"),
    ],
)
def test_bad_input_is_refused_even_outside_systemd(call: object, match: str) -> None:
    with pytest.raises(osipc.InvalidArgument, match=match):
        call()  # type: ignore[operator]


def test_watchdog_timeout_honours_watchdog_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "2500000")
    assert osipc_systemd.watchdog_timeout() == 2.5
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert osipc_systemd.watchdog_timeout() == 2.5
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert osipc_systemd.watchdog_timeout() is None
    monkeypatch.delenv("WATCHDOG_PID")
    monkeypatch.setenv("WATCHDOG_USEC", "0")
    assert osipc_systemd.watchdog_timeout() is None
    monkeypatch.setenv("WATCHDOG_USEC", "soon")
    with pytest.raises(osipc.InvalidArgument, match="WATCHDOG_USEC"):
        osipc_systemd.watchdog_timeout()


def test_watchdog_thread_pings_at_half_the_timeout(
    path_listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    with osipc_systemd.Watchdog() as dog:
        assert dog.enabled and dog.interval == 0.05
        for _ in range(3):
            assert path_listener.recv() == b"WATCHDOG=1"
    assert dog.pings >= 3
    time.sleep(0.1)
    path_listener.pending()
    time.sleep(0.1)
    assert path_listener.pending() == []  # stopped for good


def test_unhealthy_work_stops_the_pings(path_listener: Listener) -> None:
    healthy = [True]
    with osipc_systemd.Watchdog(0.02, healthy=lambda: healthy[0]):
        assert path_listener.recv() == b"WATCHDOG=1"
        healthy[0] = False
        time.sleep(0.1)
        path_listener.pending()
        time.sleep(0.1)
        assert path_listener.pending() == []


def _wait_for(condition: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_failed_ping_is_reported_at_once_on_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/nonexistent/osipc-notify")
    dog = osipc_systemd.Watchdog(0.01).start()
    try:
        # seen without anyone calling check(): the thread itself reports it
        _wait_for(lambda: "watchdog" in capsys.readouterr().err or None)
    finally:
        with pytest.raises(osipc_systemd.NotifyError):
            dog.stop()
    assert isinstance(dog.error, osipc_systemd.NotifyError)
    with pytest.raises(osipc_systemd.NotifyError):
        dog.check()


def test_a_failed_ping_goes_to_on_error_in_its_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/nonexistent/osipc-notify")
    seen: list[tuple[Exception, str]] = []
    dog = osipc_systemd.Watchdog(
        0.01, on_error=lambda exc: seen.append((exc, threading.current_thread().name))
    ).start()
    _wait_for(lambda: seen)
    with pytest.raises(osipc_systemd.NotifyError) as caught:
        dog.stop()
    assert seen == [(caught.value, "osipc-systemd-watchdog")]  # once: the pings ended
    assert "nothing listens there" in str(caught.value)


def test_an_exception_in_healthy_stops_the_pings_and_is_reported(
    path_listener: Listener, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = []

    def healthy() -> bool:
        calls.append(1)
        if len(calls) > 2:
            raise ZeroDivisionError("the check itself is broken")
        return True

    dog = osipc_systemd.Watchdog(0.01, healthy=healthy).start()
    _wait_for(lambda: dog.error is not None)
    with pytest.raises(ZeroDivisionError, match="the check itself is broken"):
        dog.stop()
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "healthy() raised" in err and "ZeroDivisionError: the check itself is broken" in err
    assert path_listener.pending() == [b"WATCHDOG=1", b"WATCHDOG=1"]  # none after


def test_a_failed_ping_rides_along_with_the_bodys_exception(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/nonexistent/osipc-notify")
    dog = osipc_systemd.Watchdog(0.01)

    def body() -> None:
        with dog:
            _wait_for(lambda: dog.error is not None)
            raise KeyError("the body's own")

    with pytest.raises(KeyError) as caught:
        body()
    assert caught.value.__context__ is dog.error  # printed with the traceback
    assert isinstance(dog.error, osipc_systemd.NotifyError)
    assert "a ping failed" in capsys.readouterr().err


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception notes are Python 3.11+")
def test_with_the_bodys_context_taken_a_failed_ping_becomes_a_note(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/nonexistent/osipc-notify")
    dog = osipc_systemd.Watchdog(0.01)

    def body() -> None:
        with dog:
            _wait_for(lambda: dog.error is not None)
            try:
                raise ValueError("first")
            except ValueError:
                raise KeyError("while handling") from None

    with pytest.raises(KeyError) as caught:
        body()
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    notes = caught.value.__notes__  # type: ignore[attr-defined]
    assert notes == [f"The osipc_systemd.Watchdog had failed: NotifyError: {dog.error}"]
    capsys.readouterr()


def test_watchdog_interval_must_be_positive() -> None:
    with pytest.raises(osipc.InvalidArgument, match="must be > 0"):
        osipc_systemd.Watchdog(0)
