"""zmq+ipc:// and zmq+tcp://: binding rules, no endpoint stealing, broadcast without
slow-joiner loss, request/reply that never wedges, CURVE, and pyzmq's errors mapped."""

from __future__ import annotations

import errno
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from _helpers import NOBODY, cli, finish, need_root, peer, spawn

import osipc

zmq = pytest.importorskip("zmq", reason="zmq is not installed (pip install 'osipc[zmq]')")

from osipc.transports.zeromq import ZMQ_ERRORS, map_zmq  # noqa: E402


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def ipc(osipc_names: Callable[[str], str]) -> Callable[..., str]:
    def make(query: str = "") -> str:
        return f"zmq+ipc://{osipc_names('z')}{query}"

    return make


# -- conformance and start order ---------------------------------------------------------


def test_conformance_ipc(ipc: Callable[..., str]) -> None:
    assert osipc.testing.check_transport(ipc) == list(osipc.testing.CHECKS)


def test_conformance_tcp() -> None:
    # A TCP endpoint is not a named kernel object: it exists while bound and nothing is
    # left to unlink, so the name-lifecycle checks do not apply (tests below cover close).
    ran = osipc.testing.check_transport(
        lambda: f"zmq+tcp://127.0.0.1:{free_port()}", skip=("close", "lifecycle")
    )
    assert "roundtrip" in ran and "capabilities" in ran


PRODUCER = """
    import sys, osipc
    with osipc.sender(sys.argv[1], codec="json") as tx:
        for n in range(50):
            tx.send({"n": n}, timeout=30)
        tx.end(timeout=30)
"""
CONSUMER = """
    import sys, osipc
    with osipc.receiver(sys.argv[1], codec="json") as rx:
        got = [msg["n"] for msg in rx]
    print(got == list(range(50)), len(got))
"""


@pytest.mark.parametrize("consumer_first", [True, False], ids=["consumer-first", "producer-first"])
@pytest.mark.parametrize("kind", ["ipc", "tcp"])
def test_unrelated_processes_meet_in_either_order(
    ipc: Callable[..., str], kind: str, consumer_first: bool
) -> None:
    url = ipc() if kind == "ipc" else f"zmq+tcp://:{free_port()}"
    first, second = (CONSUMER, PRODUCER) if consumer_first else (PRODUCER, CONSUMER)
    a = spawn(first, url)
    time.sleep(0.3)
    b = spawn(second, url)
    assert "True 50\n" in [finish(a), finish(b)]
    if kind == "ipc":
        osipc.unlink(url)


def test_bind_sender_feeds_competing_receivers_exactly_once(ipc: Callable[..., str]) -> None:
    url = ipc("?bind=sender")
    worker = """
        import sys, json, osipc
        with osipc.receiver(sys.argv[1]) as rx:
            print("up", flush=True)
            print(json.dumps([int(m) for m in rx]))
    """
    workers = [spawn(worker, url) for _ in range(2)]
    for w in workers:
        assert w.stdout is not None and w.stdout.readline() == "up\n"
    with osipc.sender(url) as tx:
        time.sleep(0.5)  # both connect to the bound sender: PUSH deals to those it has
        for n in range(200):
            tx.send(str(n).encode(), timeout=30)
        for _ in workers:
            tx.end(timeout=30)
    import json

    got = [json.loads(finish(w)) for w in workers]
    assert sorted(got[0] + got[1]) == list(range(200)), "each message exactly once"
    assert got[0] and got[1], "both receivers took work"
    osipc.unlink(url)


# -- endpoints: stealing, reclaiming, modes, owners --------------------------------------


def test_a_second_binder_is_refused_not_silently_stealing(ipc: Callable[..., str]) -> None:
    url = ipc()
    with osipc.receiver(url) as rx:
        done = peer(
            """
            import sys, osipc
            try:
                osipc.receiver(sys.argv[1])
            except osipc.AlreadyExists as exc:
                print("refused:", exc)
            """,
            url,
        )
        assert "refused:" in done.stdout and str(os.getpid()) in done.stdout
        with osipc.sender(url) as tx:  # the first binder still gets the messages
            tx.send(b"still mine", timeout=5)
            assert rx.recv(timeout=5) == b"still mine"
    osipc.unlink(url)


def test_a_socket_left_by_a_killed_binder_is_reclaimed(ipc: Callable[..., str]) -> None:
    url = ipc()
    done = peer(
        """
        import os, signal, sys, osipc
        rx = osipc.receiver(sys.argv[1])
        os.kill(os.getpid(), signal.SIGKILL)
        """,
        url,
        check=False,
    )
    assert done.returncode == -9
    info = osipc.info(url)
    assert info.holder is None and info.state == "stale", info
    assert [a.url for a in osipc.gc(dry_run=True) if a.action == "removed"] == [info.url]
    with osipc.receiver(url) as rx, osipc.sender(url) as tx:
        tx.send(b"reclaimed", timeout=5)
        assert rx.recv(timeout=5) == b"reclaimed"
        assert osipc.info(url).holder == os.getpid()
        with pytest.raises(osipc.TransportError, match="bound by live process"):
            osipc.unlink(url)
    osipc.unlink(url)
    assert not os.path.exists(info.path or "")


def test_socket_file_mode_is_exact_whatever_the_umask(ipc: Callable[..., str]) -> None:
    url = ipc("?mode=0660")
    old = os.umask(0o077)
    try:
        with osipc.receiver(url):
            path = osipc.info(url).path
            assert path is not None
            assert stat.S_IMODE(os.lstat(path).st_mode) == 0o660
    finally:
        os.umask(old)
    osipc.unlink(url)


def test_a_socket_another_user_owns_is_refused(ipc: Callable[..., str]) -> None:
    need_root("to give the socket file to another user")
    url = ipc()
    with osipc.receiver(url) as rx:
        path = osipc.info(url).path
        assert path is not None
        os.chown(path, NOBODY, NOBODY)  # as if uid 65534 had bound it (the owner is the check)
        with pytest.raises(osipc.PermissionDenied, match="uid 65534"):
            osipc.sender(url)
        with osipc.sender(url, trust_existing=True) as tx:
            tx.send(b"trusted", timeout=10)
            assert rx.recv(timeout=10) == b"trusted"
    osipc.unlink(url)


# -- tcp ---------------------------------------------------------------------------------


def test_tcp_binds_loopback_unless_a_host_is_named() -> None:
    port = free_port()
    with osipc.receiver(f"zmq+tcp://:{port}"):
        with open("/proc/net/tcp") as table:
            listening = [line.split()[1] for line in table if line.split()[3] == "0A"]
        assert f"0100007F:{port:04X}" in listening, "bound to 127.0.0.1 only"
    port = free_port()
    with osipc.receiver(f"zmq+tcp://*:{port}"):
        with open("/proc/net/tcp") as table:
            listening = [line.split()[1] for line in table if line.split()[3] == "0A"]
        assert f"00000000:{port:04X}" in listening, "* binds every interface"


@pytest.mark.parametrize(
    "url",
    ["zmq+tcp://host", "zmq+tcp://host:0", "zmq+tcp://host:70000", "zmq+tcp://a b:1",
     "zmq+tcp://[zz]:5", "zmq+tcp://h:5/x"],
)  # fmt: skip
def test_bad_tcp_urls_are_refused_before_any_socket(url: str) -> None:
    with pytest.raises(osipc.InvalidURL):
        osipc.sender(url)


def test_a_second_tcp_binder_gets_already_exists() -> None:
    url = f"zmq+tcp://:{free_port()}"
    with osipc.receiver(url), pytest.raises(osipc.AlreadyExists, match="in use"):
        osipc.receiver(url)


def test_a_tcp_sender_without_receiver_times_out_and_closes_promptly() -> None:
    tx = osipc.sender(f"zmq+tcp://:{free_port()}")
    started = time.monotonic()
    with pytest.raises(osipc.Timeout, match="no receiver"):
        tx.send(b"x", timeout=0.2)
    tx.close()
    assert time.monotonic() - started < 2, "close must not wait for a peer that never came"


# -- broadcast ---------------------------------------------------------------------------

SUBSCRIBER = """
    import sys, json, osipc
    topics = json.loads(sys.argv[2])
    with osipc.subscriber(sys.argv[1], topics=topics) as sub:
        got = []
        for message in sub:
            got.append([sub.topic, message.decode()])
    print(json.dumps(got))
"""


def test_wait_for_subscribers_loses_none_of_the_first_messages(ipc: Callable[..., str]) -> None:
    import json

    url = ipc()
    with osipc.publisher(url, wait_for_subscribers=2) as pub:
        subs = [spawn(SUBSCRIBER, url, json.dumps(t)) for t in ([""], ["odd"])]
        for n in range(20):
            pub.send(str(n).encode(), topic="odd" if n % 2 else "even", timeout=30)
        pub.end(timeout=10)
        every, odd = (json.loads(finish(s)) for s in subs)
    assert [m for _, m in every] == [str(n) for n in range(20)], "the first message arrived"
    assert odd == [["odd", str(n)] for n in range(1, 20, 2)], "topic prefixes filter"
    osipc.unlink(url)


def test_too_few_subscribers_is_a_timeout_naming_the_count(ipc: Callable[..., str]) -> None:
    url = ipc()
    with (
        osipc.publisher(url, wait_for_subscribers=2) as pub,
        osipc.subscriber(url),
        pytest.raises(osipc.Timeout, match="1 of the 2 subscribers"),
    ):
        pub.send(b"x", timeout=1)
    osipc.unlink(url)


def test_a_slow_subscriber_makes_the_publisher_wait_never_drop(ipc: Callable[..., str]) -> None:
    url = ipc("?hwm=10")
    with osipc.publisher(url, wait_for_subscribers=1) as pub, osipc.subscriber(url) as sub:
        sent = 0
        while sent < 100_000:
            try:
                pub.send(b"p" * 1000, timeout=0.5)
            except osipc.Timeout:
                break
            sent += 1
        assert sent < 100_000, "a subscriber that does not read must make send wait"
        got = 0
        while True:
            try:
                sub.recv(timeout=1)
                got += 1
            except osipc.Timeout:
                break
        assert got == sent, f"published {sent}, the subscriber received {got}"
    osipc.unlink(url)


def test_reserved_topics_are_refused(ipc: Callable[..., str]) -> None:
    url = ipc()
    with osipc.publisher(url) as pub:
        with pytest.raises(osipc.InvalidArgument, match="reserved"):
            pub.send(b"x", topic=b"\xffosipc:end")
        with pytest.raises(osipc.InvalidURL, match="reserved"):
            osipc.subscriber(url, topics=[b"\xffx"])
    osipc.unlink(url)


def test_a_plain_pyzmq_subscriber_reads_osipc_broadcasts(ipc: Callable[..., str]) -> None:
    url = ipc()
    with osipc.publisher(url, wait_for_subscribers=1) as pub:
        path = osipc.info(url).path
        done = spawn(
            """
            import sys, zmq, osipc
            sock = zmq.Context().socket(zmq.SUB)
            sock.subscribe(b"t")
            sock.subscribe(b"\\xffosipc:hello:plain")  # join the count like osipc does
            sock.connect("ipc://" + sys.argv[1])
            print(sock.recv_multipart())
            """,
            str(path),
        )
        pub.send(b"payload", topic="t", timeout=30)
        assert finish(done).strip() == "[b't', b'payload']"
    osipc.unlink(url)


@pytest.mark.parametrize("batch", [False, True])
def test_a_plain_pyzmq_push_peer_and_the_end_marker(ipc: Callable[..., str], batch: bool) -> None:
    url = ipc()
    with osipc.receiver(url) as rx:
        done = spawn(
            """
            import sys, zmq
            context = zmq.Context()
            sock = context.socket(zmq.PUSH)
            sock.connect("ipc://" + sys.argv[1])
            sock.send(b"exact bytes")
            sock.send(b"\\xffosipc")                    # data that equals the marker's head
            sock.send_multipart([b"one", b"two"])         # a frame is a message
            sock.send_multipart([b"\\xffosipc", b"bogus"])  # the head, but not the marker
            sock.send_multipart([b"\\xffosipc", b"end"])    # the end-of-stream marker
            sock.close(linger=5000)
            context.term()  # returns once all of it left (an exit alone may drop it)
            """,
            str(osipc.info(url).path),
        )
        if batch:
            finish(done)  # all of it is there: one batch takes the four, and stops
            got = rx.recv_many(10, timeout=30)
        else:
            got = [rx.recv(), rx.recv(), rx.recv(timeout=30), rx.recv(timeout=30)]
        assert got == [b"exact bytes", b"\xffosipc", b"one", b"two"]
        with pytest.raises(osipc.DecodeError, match="not osipc's end-of-stream marker"):
            rx.recv(timeout=30)
        with pytest.raises(osipc.EndOfStream):
            rx.recv(timeout=30)
        finish(done)
    osipc.unlink(url)


# -- threads and buffers -----------------------------------------------------------------

# Closing a ZeroMQ socket under a call that is inside it crashes the process (libzmq
# frees what the call uses), so this runs in a process of its own. Its calls never wait:
# hwm is large and a feeder keeps the receiver busy.
BUSY_WHILE_CLOSED = """
    import sys, threading, time, osipc
    url, rounds = sys.argv[1], int(sys.argv[2])
    closed = []

    def busy(call, got=None):
        try:
            while True:
                call()
                if got is not None:
                    got.set()
        except osipc.Closed:
            closed.append(call)

    def start(call, got=None):
        thread = threading.Thread(target=busy, args=(call, got))
        thread.start()
        return thread

    with osipc.receiver(url, hwm=10**7) as rx:  # senders closed while a thread sends
        for n in range(rounds):
            tx = osipc.sender(url, hwm=10**7, linger=0)
            tx.send(b"connected", timeout=30)
            thread = start(lambda: tx.send(b"m" * 64))
            time.sleep(n % 3 / 1000)
            tx.close()
            thread.join(30)
            try:
                while True:
                    rx.recv_many(100_000, timeout=0)
            except osipc.Timeout:
                pass
    osipc.unlink(url)
    feeder = osipc.sender(url, linger=0)
    feeding = start(lambda: feeder.send(b"f" * 64, timeout=30))
    for n in range(rounds // 4):  # receivers closed while a thread receives
        rx = osipc.receiver(url)
        got = threading.Event()
        thread = start(rx.recv, got)
        got.wait(30)
        time.sleep(n % 3 / 1000)
        rx.close()
        thread.join(30)
    feeder.close()
    feeding.join(30)
    osipc.unlink(url)
    print(len(closed))
"""


def test_close_from_another_thread_never_closes_the_socket_under_a_call(
    ipc: Callable[..., str],
) -> None:
    rounds = 200  # each may crash an unprotected process; most do within 100
    done = peer(BUSY_WHILE_CLOSED, ipc(), str(rounds), timeout=120, check=False)
    assert done.returncode == 0, f"the process died (exit {done.returncode}): {done.stderr}"
    assert done.stdout.split() == [str(rounds + rounds // 4 + 1)], "every busy call ended Closed"


# The way the module docstring gives to close without losing the end of a stream: libzmq
# drops what is in flight when a sender closes while its receiver is behind, so the
# sender waits until the receiver says it saw the end.
BURST_SENDER = """
    import sys, osipc
    url, done_url, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with osipc.sender(url) as tx, osipc.server(done_url) as done:
        for n in range(count):
            tx.send(n.to_bytes(4, "little") + bytes(60))
        tx.end()
        done.recv(timeout=60).reply(b"")  # the receiver has all of it: close
"""
SLOW_RECEIVER = """
    import sys, time, osipc
    url, done_url = sys.argv[1], sys.argv[2]
    with osipc.receiver(url) as rx:
        print("up", flush=True)
        time.sleep(0.5)  # behind: the burst fills every queue and the socket buffer
        got = [int.from_bytes(message[:4], "little") for message in rx]
    with osipc.client(done_url) as done:
        done.request(b"got the end", timeout=60)
    print(got == list(range(len(got))), len(got))
"""


def test_a_sender_that_waits_for_the_receiver_loses_none_of_a_burst(
    ipc: Callable[..., str],
) -> None:
    url, done_url, count = ipc(), ipc(), 30_000
    receiver = spawn(SLOW_RECEIVER, url, done_url)
    assert receiver.stdout is not None and receiver.stdout.readline() == "up\n"
    sender = spawn(BURST_SENDER, url, done_url, str(count))
    finish(sender)
    assert finish(receiver).split() == ["True", str(count)]
    osipc.unlink(url)
    osipc.unlink(done_url)


def test_a_buffer_may_be_reused_as_soon_as_send_returns(ipc: Callable[..., str]) -> None:
    url = ipc()
    with osipc.receiver(url) as rx, osipc.sender(url) as tx:
        tx.send(b"connected", timeout=30)
        assert rx.recv(timeout=30) == b"connected"
        buffer = bytearray(256 << 10)  # large enough that pyzmq could send it without a copy
        for n in range(16):
            buffer[:] = bytes([n]) * len(buffer)
            if n % 2:
                tx.send_many([buffer])
            else:
                tx.send(buffer)
        for n in range(16):
            message = rx.recv(timeout=30)
            assert message == bytes([n]) * len(buffer), f"message {n} changed after send()"
    osipc.unlink(url)


# -- request/reply -----------------------------------------------------------------------

SERVER = """
    import sys, time, osipc
    with osipc.server(sys.argv[1], codec="json") as srv:
        print("up", flush=True)
        for req in srv:
            if req.data == "stop":
                req.reply("bye")
                break
            if req.data == "slow":
                time.sleep(1.0)
            req.reply({"echo": req.data, "pid": __import__("os").getpid()})
"""


@pytest.mark.parametrize("scheme", ["zmq+ipc", "mq"])
def test_request_reply_across_processes_never_wedges(
    osipc_names: Callable[[str], str], scheme: str
) -> None:
    url = f"{scheme}://{osipc_names('rr')}" + ("?maxmsg=4&msgsize=512" if scheme == "mq" else "")
    with osipc.client(url, codec="json") as client:
        started = time.monotonic()
        with pytest.raises(osipc.Timeout, match=r"no (reply|server)"):
            client.request("nobody home", timeout=0.3)
        assert time.monotonic() - started < 2
        server = spawn(SERVER, url)
        assert server.stdout is not None and server.stdout.readline() == "up\n"
        assert client.request(1, timeout=10)["echo"] in (1, "nobody home")
        # (mq keeps the first request queued for the server; its late reply is skipped)
        reply = client.request([1, 2], timeout=10)
        assert reply["echo"] == [1, 2], "each reply answers its own request"
        with pytest.raises(osipc.Timeout):
            client.request("slow", timeout=0.2)
        assert client.request("after", timeout=10)["echo"] == "after", "late reply discarded"
        assert client.request("stop", timeout=10) == "bye"
        finish(server)
    osipc.unlink(url)
    assert not [i for i in osipc.ls() if ".reply-" in i.url], "reply queues removed at close"


def test_a_plain_req_socket_is_answered(ipc: Callable[..., str]) -> None:
    url = ipc()
    with osipc.server(url) as srv:
        path = osipc.info(url).path
        req = spawn(
            """
            import sys, zmq
            sock = zmq.Context().socket(zmq.REQ)
            sock.connect("ipc://" + sys.argv[1])
            sock.send(b"ping")
            print(sock.recv())
            """,
            str(path),
        )
        request = srv.recv(timeout=30)
        assert request.data == b"ping"
        request.reply(b"pong")
        with pytest.raises(osipc.InvalidArgument, match="already answered"):
            request.reply(b"again")
        assert finish(req).strip() == "b'pong'"
    osipc.unlink(url)


@pytest.mark.parametrize("scheme", ["zmq+ipc", "mq"])
def test_a_reply_to_a_client_that_is_gone_is_broken(
    osipc_names: Callable[[str], str], scheme: str
) -> None:
    url = f"{scheme}://{osipc_names('gone')}" + ("?maxmsg=4&msgsize=256" if scheme == "mq" else "")
    with osipc.server(url) as srv:
        done = peer(
            """
            import sys, osipc
            with osipc.client(sys.argv[1]) as c:
                try:
                    c.request(b"hello?", timeout=0.5)
                except osipc.Timeout:
                    print("gave up")
            """,
            url,
        )
        assert "gave up" in done.stdout
        request = srv.recv(timeout=10)
        time.sleep(0.5)  # ZeroMQ notices the disconnect a moment after the exit
        with pytest.raises(osipc.Broken, match="gone"):
            request.reply(b"too late", timeout=1)
    osipc.unlink(url)


def test_a_killed_mq_client_leaves_a_reply_queue_gc_removes(
    osipc_names: Callable[[str], str],
) -> None:
    url = f"mq://{osipc_names('kc')}?maxmsg=2&msgsize=128"
    done = peer(
        """
        import os, signal, sys, osipc
        c = osipc.client(sys.argv[1])
        os.kill(os.getpid(), signal.SIGKILL)
        """,
        url,
        check=False,
    )
    assert done.returncode == -9
    stale = [i for i in osipc.ls() if ".reply-" in i.url]
    assert len(stale) == 1 and stale[0].state == "stale", stale
    removed = [a.url for a in osipc.gc() if a.action == "removed"]
    assert stale[0].url in removed
    assert url.split("?", maxsplit=1)[0] in removed, "the request queue it created is stale too"


def test_request_reply_is_refused_where_the_scheme_has_none(
    osipc_names: Callable[[str], str],
) -> None:
    with pytest.raises(osipc.Unsupported, match="request/reply"):
        osipc.client(f"fifo://{osipc_names('f')}")
    with pytest.raises(osipc.InvalidURL, match="raw"):
        osipc.server(f"mq://{osipc_names('m')}?raw=1")


# -- CURVE -------------------------------------------------------------------------------


def test_curve_keys_from_keygen_secure_tcp(tmp_path: os.PathLike[str]) -> None:
    keys = str(tmp_path)
    for name in ("server", "friend", "stranger"):
        made = cli("keygen", name, "--dir", keys)
        assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(os.stat(os.path.join(keys, "server.key_secret")).st_mode) == 0o600
    assert cli("keygen", "server", "--dir", keys).returncode == 1, "never overwrites silently"
    allowed = os.path.join(keys, "allowed")
    os.mkdir(allowed)
    os.link(os.path.join(keys, "friend.key"), os.path.join(allowed, "friend.key"))
    port = free_port()
    base = f"zmq+tcp://:{port}"
    server_opts = f"?curve={keys}/server.key_secret&curve_allow={allowed}"
    with osipc.receiver(base + server_opts) as rx:
        friend = f"{base}?curve_server={keys}/server.key&curve={keys}/friend.key_secret"
        with osipc.sender(friend) as tx:
            tx.send(b"secret", timeout=10)
            assert rx.recv(timeout=10) == b"secret"
        stranger = f"{base}?curve_server={keys}/server.key&curve={keys}/stranger.key_secret"
        for url in (stranger, base):  # an unknown key, and no CURVE at all
            with osipc.sender(url) as tx, pytest.raises(osipc.Timeout):
                tx.send(b"let me in", timeout=0.5)
        with pytest.raises(osipc.Timeout):
            rx.recv(timeout=0.2)
    with pytest.raises(osipc.InvalidArgument, match="osipc keygen"):
        osipc.receiver(f"zmq+tcp://:{free_port()}?curve={keys}/missing")
    with pytest.raises(osipc.InvalidURL, match="curve_server"):
        osipc.sender(f"{base}?curve={keys}/friend.key_secret")


# -- errors and availability -------------------------------------------------------------


def test_every_zmq_error_class_is_mapped() -> None:
    exported = {
        value
        for value in vars(zmq.error).values()
        if isinstance(value, type) and issubclass(value, BaseException)
    }
    assert len(exported) >= 8, "zmq.error exports its exception classes"
    missing = exported - set(ZMQ_ERRORS)
    assert not missing, f"zmq.error classes with no mapping: {missing}"
    for cls in exported:
        try:
            instance = cls("detail") if cls is not zmq.error.ZMQError else cls(errno.EINVAL)
        except TypeError:
            instance = cls()  # type: ignore[call-arg]
        mapped = map_zmq(instance, "doing x")
        assert isinstance(mapped, osipc.OsipcError), (cls, mapped)
    assert isinstance(map_zmq(zmq.error.Again(), "x"), osipc.Timeout)
    assert isinstance(map_zmq(zmq.ZMQError(errno.EADDRINUSE), "x"), osipc.AlreadyExists)
    assert isinstance(map_zmq(zmq.ZMQError(zmq.EHOSTUNREACH), "x"), osipc.Broken)
    assert isinstance(map_zmq(zmq.ZMQError(zmq.ETERM), "x"), osipc.TransportError)


def test_without_pyzmq_osipc_imports_and_names_the_extra() -> None:
    done = subprocess.run(
        [sys.executable, "-I", "-c",
         "import sys; sys.modules['zmq'] = None\n"
         "import osipc\n"
         "try:\n"
         "    osipc.sender('zmq+ipc://x')\n"
         "except osipc.TransportUnavailable as exc:\n"
         "    print(exc.hint)\n"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.stdout.strip() == "pip install 'osipc[zmq]'", done.stderr
