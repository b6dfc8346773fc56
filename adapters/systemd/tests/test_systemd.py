"""Against a real ``systemd --user`` (see conftest.py): generated units, systemd-run,
activation on the first message, descriptor names, READY/STATUS, the watchdog,
RemoveOnStop= and the manager's refusal of objects another user planted."""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _helpers import peer, runtime_for
from osipc_systemd._units import UnitSpec, parse_listen, render

import osipc

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "cmdqueue.py"
NOBODY = 65534
STARTED = "osipc-test: starting"

Names = Callable[[str], str]


def _gone(url: str) -> bool:
    try:
        osipc.info(url)
    except osipc.NotFound:
        return True
    return False


def _python(code: str) -> str:
    """An ExecStart= line running ``code`` with this interpreter: hex needs no quoting
    and holds no % or $ for systemd to expand, and no file other users must read."""
    return f"{sys.executable} -c \"exec(bytes.fromhex('{textwrap.dedent(code).encode().hex()}'))\""


def _attach(url: str, session: Any, unit: str, timeout: float = 15.0, **options: Any) -> Any:
    """A receiver on ``url`` once ``unit`` has created it; AssertionError, with the
    manager's view, as soon as the unit failed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return osipc.receiver(url, create=False, **options)
        except osipc.NotFound:
            failed = session.manager.show(unit)["ActiveState"] == "failed"
            if failed or time.monotonic() > deadline:
                status = session.systemctl("status", unit, check=False).stdout
                raise AssertionError(
                    f"{url} never appeared\n{status}\n--- service output\n{session.service_log()}"
                ) from None
            time.sleep(0.05)


def _units(
    name: str, runtime: str | None, session: Any, *listen: str, **spec: Any
) -> dict[str, str]:
    """The files `osipc-systemd unit` writes, logging the service to the test's tmp dir;
    ``runtime`` None: the default %t/osipc."""
    properties = [
        ("StandardOutput", f"append:{session.log}"),
        ("StandardError", f"append:{session.log}"),
        ("ExecStartPre", f"/bin/echo {STARTED} %n"),  # one line per start
        *(("Environment", item) for item in session.environment),
        *spec.pop("properties", []),
    ]
    return render(
        UnitSpec(
            name=name,
            listens=[parse_listen(text) for text in listen],
            properties=properties,
            **({} if runtime is None else {"runtime_dir": runtime}),
            **spec,
        )
    )


def _start_example(
    session: Any, unit: str, commands: str, status: str, runtime: str | None = None, **spec: Any
) -> dict[str, str]:
    """The example daemon's units (commands on an mq, status on a FIFO) installed, with
    both sockets started; the files written."""
    files = _units(
        unit,
        runtime,
        session,
        f"commands=mq://{commands}?maxmsg=4&msgsize=1024",
        f"status=fifo://{status}",
        exec_start=f"{sys.executable} {EXAMPLE}",
        **spec,
    )
    session.install(files)
    session.systemctl("start", f"{unit}-commands.socket", f"{unit}-status.socket")
    return files


def test_example_daemon_is_activated_by_its_first_command(
    systemd: Any, osipc_names: Names, osipc_runtime: str
) -> None:
    unit, commands, status = osipc_names("cmdq"), osipc_names("cmd"), osipc_names("st")
    _start_example(systemd, unit, commands, status, osipc_runtime, watchdog=5)
    manager = systemd.manager
    assert manager.show(f"{unit}.service")["ActiveState"] == "inactive"
    # the manager made both objects where osipc looks for them, with SocketMode=0600
    fifo = osipc.info(f"fifo://{status}")
    assert fifo.path == os.path.join(osipc_runtime, f"{status}.fifo")
    assert stat.S_ISFIFO(os.lstat(fifo.path).st_mode) and fifo.mode == 0o600
    queue = osipc.info(f"mq://{commands}")
    assert (queue.capacity, queue.max_message_size, queue.mode) == (4, 1024, 0o600)

    with (
        osipc.sender(f"mq://{commands}", codec="json") as tx,
        osipc.receiver(f"fifo://{status}", codec="json") as rx,
    ):
        tx.send({"cmd": "push", "job": "first"})  # starts the service
        state = manager.wait_for(f"{unit}.service", lambda s: s["ActiveState"] != "inactive")
        tx.send({"cmd": "status", "id": 1})
        answer = rx.recv(timeout=10)
        assert answer["id"] == 1 and answer["jobs"] == ["first"], systemd.service_log()
        # READY came (Type=notify: "active" only after it), then STATUS lines
        state = manager.wait_for(
            f"{unit}.service",
            lambda s: s["StatusText"] == "2 commands handled, 1 jobs queued",
        )
        assert state["ActiveState"] == "active" and state["SubState"] == "running"
        assert int(state["MainPID"]) == answer["pid"]  # both counted in the manager's PID ns

    systemd.systemctl("stop", f"{unit}.service", f"{unit}-commands.socket", f"{unit}-status.socket")
    state = manager.show(f"{unit}.service")
    assert (state["ActiveState"], state["Result"]) == ("inactive", "success"), systemd.service_log()
    # RemoveOnStop=yes: the manager removed both objects
    assert _gone(f"fifo://{status}") and _gone(f"mq://{commands}")


PROBE = """
import json, os, sys
import osipc_systemd
listen = osipc_systemd.listen_fds(unset_environment=False)
eps = osipc_systemd.endpoints()
report = {
    "listen": [[item.name, item.fd, item.kind, item.readable, item.writable] for item in listen],
    "types": {name: type(ep).__name__ for name, ep in eps.items()},
    "env": sorted(key for key in os.environ if key.startswith("LISTEN_")),
    "watchdog": osipc_systemd.watchdog_timeout(),
    "messages": {name: eps.receiver(name).recv(timeout=5).decode() for name in eps},
}
try:
    eps.sender("jobs")
except TypeError as exc:
    report["as_sender"] = str(exc)
with open(sys.argv[1], "w") as out:
    json.dump(report, out)
osipc_systemd.ready(status="probed")
eps.close()
"""


@pytest.mark.parametrize("kind", ["mq", "fifo"])
def test_systemd_run_socket_properties_name_the_descriptor(
    systemd: Any, osipc_names: Names, osipc_runtime: str, tmp_path: Path, kind: str
) -> None:
    unit, name = osipc_names("run"), osipc_names("ep")
    report = tmp_path / "report.json"
    if kind == "mq":
        url, access = f"mq://{name}", [True, False]  # a read-only queue, as documented
        listen = [
            f"--socket-property=ListenMessageQueue=/{name}",
            "--socket-property=MessageQueueMaxMessages=2",
            "--socket-property=MessageQueueMessageSize=64",
        ]
    else:
        url, access = f"fifo://{name}", [True, True]  # systemd opens FIFOs read-write
        listen = [f"--socket-property=ListenFIFO={osipc_runtime}/{name}.fifo"]
    systemd.run(
        unit,
        [sys.executable, "-c", PROBE, str(report)],
        *listen,
        "--socket-property=FileDescriptorName=jobs",
        "--socket-property=RemoveOnStop=yes",
        "-p",
        "Type=notify",
        "-p",
        "WatchdogSec=30",
    )
    assert systemd.manager.show(f"{unit}.service")["ActiveState"] == "inactive"
    with osipc.sender(url) as tx:
        tx.send(b"hello", timeout=5)  # the first message starts the service
        state = systemd.manager.wait_for(
            f"{unit}.service", lambda s: report.exists() and s["ActiveState"] == "inactive"
        )
    assert state["Result"] == "success", systemd.service_log()
    got = json.loads(report.read_text())
    assert got["listen"] == [["jobs", 3, kind, *access]]
    assert got["types"]["jobs"].endswith("Receiver")
    assert got["env"] == []
    assert got["watchdog"] == 30.0
    assert got["messages"] == {"jobs": "hello"}
    # the hint fits what systemd passed: a FIFO may be a sender, a queue only by name
    hint = {"mq": f"a sender opened by name ({url})", "fifo": "pass senders={'jobs'}"}
    assert got["as_sender"].endswith(hint[kind])
    systemd.systemctl("stop", f"{unit}.socket")
    assert _gone(url)


SILENT = """
import time, osipc_systemd
osipc_systemd.ready()
time.sleep(60)
"""

KEEPALIVE = """
import time, osipc_systemd
with osipc_systemd.Watchdog() as dog:
    osipc_systemd.ready(status=f"pinging every {dog.interval}s")
    time.sleep(60)
"""


WEDGED = """
import time, osipc_systemd
start = time.monotonic()
with osipc_systemd.Watchdog(healthy=lambda: time.monotonic() - start < 3) as dog:
    osipc_systemd.ready(status="healthy for 3 s")
    time.sleep(60)
"""


def _lifetime(manager: Any, unit: str) -> float:
    keys = "ExecMainStartTimestampMonotonic,ExecMainExitTimestampMonotonic"
    out = manager.systemctl("show", "-p", keys, unit).stdout
    stamps = dict(line.partition("=")[::2] for line in out.splitlines())
    start, end = (int(stamps[key]) for key in keys.split(","))
    return (end - start) / 1e6


def test_the_watchdog_kills_a_silent_or_unhealthy_service_and_spares_a_pinging_one(
    systemd: Any, osipc_names: Names
) -> None:
    silent, alive, wedged = osipc_names("silent"), osipc_names("alive"), osipc_names("wedged")
    # the timer runs from exec: leave the pinging ones 2 s to start Python on a busy host
    for unit, code, timeout in (
        (silent, SILENT, "1"),
        (alive, KEEPALIVE, "2"),
        (wedged, WEDGED, "2"),
    ):
        systemd.run(
            unit,
            [sys.executable, "-c", code],
            "-p",
            "Type=notify",
            "-p",
            f"WatchdogSec={timeout}",
            "-p",
            "TimeoutStopSec=2",
        )
    started = time.monotonic()
    state = systemd.manager.wait_for(
        f"{silent}.service", lambda s: s["ActiveState"] in ("failed", "inactive"), timeout=15
    )
    assert state["Result"] == "watchdog", systemd.service_log()
    time.sleep(max(0.0, 4.5 - (time.monotonic() - started)))  # over two of its timeouts
    state = systemd.manager.show(f"{alive}.service")
    assert (state["ActiveState"], state["StatusText"]) == ("active", "pinging every 1.0s")
    # healthy=False stops the pings of a live thread: systemd kills the service, after
    # it outlived WatchdogSec=2 (which a service that never pinged cannot do)
    state = systemd.manager.wait_for(
        f"{wedged}.service", lambda s: s["ActiveState"] in ("failed", "inactive"), timeout=15
    )
    assert state["Result"] == "watchdog", systemd.service_log()
    assert _lifetime(systemd.manager, f"{wedged}.service") > 2.5


GRACEFUL = """
import signal, time, osipc_systemd
stop = []
signal.signal(signal.SIGTERM, lambda signo, frame: stop.append(signo))
osipc_systemd.ready()
while not stop:
    time.sleep(0.02)
osipc_systemd.stopping(status="draining")
osipc_systemd.extend_timeout(10)
time.sleep(1.5)  # longer than TimeoutStopSec=1
"""


def test_stopping_and_extend_timeout_reach_the_manager(systemd: Any, osipc_names: Names) -> None:
    unit = osipc_names("graceful")
    systemd.run(
        unit, [sys.executable, "-c", GRACEFUL], "-p", "Type=notify", "-p", "TimeoutStopSec=1"
    )
    systemd.manager.wait_for(f"{unit}.service", lambda s: s["ActiveState"] == "active")
    asked = time.monotonic()
    systemd.systemctl("stop", "--no-block", f"{unit}.service")
    state = systemd.manager.wait_for(f"{unit}.service", lambda s: s["StatusText"] == "draining")
    assert state["ActiveState"] == "deactivating", state
    state = systemd.manager.wait_for(
        f"{unit}.service", lambda s: s["ActiveState"] != "deactivating"
    )
    # not killed at TimeoutStopSec=1 (that leaves it failed, Result=timeout): the
    # extension was honoured, and it stopped on its own after its 1.5 s
    assert state["Result"] == "success", systemd.service_log()
    assert time.monotonic() - asked > 1.4


STREAM = """
import osipc_systemd
with osipc_systemd.endpoints() as eps:
    server = eps.socket("conn")
    osipc_systemd.ready()
    connection, _ = server.accept()
    with connection:
        connection.sendall(b"hello, " + connection.recv(100))
"""


def test_a_listen_stream_socket_arrives_as_a_socket(
    systemd: Any, osipc_names: Names, osipc_runtime: str
) -> None:
    unit = osipc_names("stream")
    path = os.path.join(osipc_runtime, "conn.sock")
    systemd.run(
        unit,
        [sys.executable, "-c", STREAM],
        f"--socket-property=ListenStream={path}",
        "--socket-property=FileDescriptorName=conn",
        "--socket-property=RemoveOnStop=yes",
        "-p",
        "Type=notify",
    )
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(10)
        client.connect(path)  # starts the service
        client.sendall(b"socket")
        assert client.recv(100) == b"hello, socket", systemd.service_log()
    state = systemd.manager.wait_for(
        f"{unit}.service", lambda s: s["ActiveState"] in ("inactive", "failed")
    )
    assert state["Result"] == "success", systemd.service_log()
    systemd.systemctl("stop", f"{unit}.socket")
    assert not os.path.exists(path)


def test_the_manager_refuses_a_fifo_another_user_planted(
    systemd: Any, osipc_names: Names, osipc_runtime: str
) -> None:
    unit, name = osipc_names("sq"), osipc_names("f")
    path = os.path.join(osipc_runtime, f"{name}.fifo")
    os.mkfifo(path, 0o600)
    os.chmod(path, 0o600)
    os.chown(path, NOBODY, NOBODY)
    try:
        systemd.install(
            _units(unit, osipc_runtime, systemd, f"fifo://{name}", exec_start="/bin/true")
        )
        done = systemd.systemctl("start", f"{unit}-{name}.socket", check=False)
        assert done.returncode != 0
        state = systemd.manager.show(f"{unit}-{name}.socket")
        assert (state["ActiveState"], state["Result"]) == ("failed", "resources")
        assert os.lstat(path).st_uid == NOBODY  # left alone, not adopted
    finally:
        os.unlink(path)


def test_the_manager_refuses_a_queue_another_user_planted(
    systemd: Any, osipc_names: Names, osipc_runtime: str
) -> None:
    unit, name = osipc_names("sq"), osipc_names("q")
    with runtime_for(NOBODY) as env:
        peer(
            """
            import sys, osipc
            osipc.receiver("mq://" + sys.argv[1], mode=0o600, maxmsg=2, msgsize=64).close()
            """,
            name,
            user=NOBODY,
            env=env,
        )
    try:
        assert osipc.info(f"mq://{name}").owner == NOBODY
        files = _units(
            unit, osipc_runtime, systemd, f"mq://{name}?maxmsg=2&msgsize=64", exec_start="/bin/true"
        )
        systemd.install(files)
        done = systemd.systemctl("start", f"{unit}-{name}.socket", check=False)
        assert done.returncode != 0
        state = systemd.manager.show(f"{unit}-{name}.socket")
        assert (state["ActiveState"], state["Result"]) == ("failed", "resources")
    finally:
        osipc.unlink(f"mq://{name}", missing_ok=True)


def test_checked_in_example_units_load(systemd: Any) -> None:
    """The example's units as shipped (%t paths, WatchdogSec=) load without complaint."""
    examples = Path(EXAMPLE).parent / "units"
    names = systemd.install_dir(str(examples))
    for name in names:
        state = systemd.manager.show(name)
        assert state["LoadState"] == "loaded", (name, state)
    out = systemd.systemctl("show", "-p", "Listen", "cmdqueue-status.socket").stdout
    assert out.strip() == f"Listen={systemd.manager.runtime}/osipc/cmdqueue-status.fifo (FIFO)"


AS_ANOTHER_USER = """
import os, osipc, osipc_systemd
with osipc_systemd.endpoints(codec="json") as eps:
    requests = eps.receiver("requests")
    osipc_systemd.ready()
    reply = requests.recv(timeout=20)["reply"]
    osipc.receiver("fifo://" + reply).close()  # by name, in its OSIPC_RUNTIME_DIR
    made = osipc.info("fifo://" + reply)
    runtime = os.environ["OSIPC_RUNTIME_DIR"]
    with osipc.sender(f"mq://{reply}?maxmsg=2&msgsize=1024", codec="json") as tx:  # by name
        tx.send({"uid": os.getuid(), "runtime": runtime, "runtime_owner": os.stat(runtime).st_uid,
                 "fifo": made.path, "fifo_owner": made.owner})
    requests.recv(timeout=20)  # the client has the answer
    osipc.unlink("mq://" + reply)
    osipc.unlink("fifo://" + reply)
"""


@pytest.mark.parametrize(
    "who", [{"user": "nobody"}, {"properties": [("DynamicUser", "yes")]}], ids=["user", "dynamic"]
)
def test_a_service_of_another_user_makes_objects_by_name(
    systemd: Any, osipc_names: Names, osipc_runtime: str, who: dict[str, Any]
) -> None:
    """The socket units create %t/osipc as the manager's user; the service gets its own
    RuntimeDirectory= for what it makes by name, since osipc refuses another user's."""
    if "properties" in who and f"{os.path.realpath(sys.prefix)}/".startswith(
        ("/tmp/", "/var/tmp/")
    ):
        pytest.skip("this Python lives in /tmp, which DynamicUser='s PrivateTmp= hides")
    unit, requests, reply = osipc_names("usr"), osipc_names("req"), osipc_names("rep")
    files = _units(
        unit,
        osipc_runtime,
        systemd,
        f"requests=fifo://{requests}",
        exec_start=_python(AS_ANOTHER_USER),
        **who,
    )
    systemd.install(files)
    systemd.systemctl("start", f"{unit}-requests.socket")
    try:
        # the client: root, so the FIFO SocketUser= gave the service is someone else's
        with osipc.sender(f"fifo://{requests}", codec="json", trust_existing=True) as tx:
            tx.send({"reply": reply})  # starts the service
            with _attach(
                f"mq://{reply}", systemd, f"{unit}.service", codec="json", trust_existing=True
            ) as rx:
                answer = rx.recv(timeout=10)
            tx.send({"done": True})
        state = systemd.manager.wait_for(
            f"{unit}.service", lambda s: s["ActiveState"] in ("inactive", "failed")
        )
    finally:
        osipc.unlink(f"mq://{reply}", missing_ok=True)
    assert state["Result"] == "success", systemd.service_log()
    own = f"{systemd.manager.runtime}/osipc-{unit}"
    assert answer["runtime"] == own
    assert answer["uid"] != 0 and answer["runtime_owner"] == answer["uid"]
    assert answer["fifo"] == f"{own}/{reply}.fifo" and answer["fifo_owner"] == answer["uid"]
    if "user" in who:
        assert answer["uid"] == NOBODY


DEFAULT_LAYOUT_CLIENT = """
import json, os, sys, osipc
commands, status = sys.argv[1:]
with osipc.sender("mq://" + commands, codec="json") as tx, \\
        osipc.receiver("fifo://" + status, codec="json") as rx:  # both by name
    tx.send({"cmd": "push", "job": "by name"})  # starts the service
    tx.send({"cmd": "status", "id": 3})
    answer = rx.recv(timeout=10)
path = osipc.info("fifo://" + status).path
mounts = [line.split() for line in open("/proc/self/mountinfo")]
point, kind = max(
    ((m[4], m[m.index("-") + 1]) for m in mounts if path.startswith(m[4].rstrip("/") + "/")),
    key=lambda found: len(found[0]),
)
print(json.dumps({"answer": answer, "path": path, "fs": kind}))
"""

GONE = """
import sys, osipc
try:
    osipc.info("fifo://" + sys.argv[1])
except osipc.NotFound:
    print("gone")
"""


def test_default_layout_serves_clients_by_name(systemd: Any, osipc_names: Names) -> None:
    """Units as generated by default (FIFOs in %t/osipc, on the tmpfs %t is) and a
    client that, like root's clients of /run/osipc, finds both endpoints by name."""
    unit, commands, status = osipc_names("dfl"), osipc_names("cmd"), osipc_names("st")
    files = _start_example(systemd, unit, commands, status)
    assert "ListenFIFO=%t/osipc/" in files[f"{unit}-status.socket"]
    report = json.loads(systemd.client(DEFAULT_LAYOUT_CLIENT, commands, status))
    assert report["answer"]["id"] == 3 and report["answer"]["jobs"] == ["by name"]
    assert report["path"] == f"{systemd.manager.runtime}/osipc/{status}.fifo"
    assert report["fs"] == "tmpfs"
    systemd.systemctl("stop", f"{unit}.service", f"{unit}-commands.socket", f"{unit}-status.socket")
    assert systemd.client(GONE, status).strip() == "gone"  # RemoveOnStop=yes
    assert _gone(f"mq://{commands}")


ECHO = """
import osipc_systemd
with osipc_systemd.endpoints() as eps:
    osipc_systemd.ready()
    print("got", eps.receiver("jobs").recv(timeout=20).decode(), flush=True)
"""


def test_a_group_member_reaches_a_queue_the_socket_unit_chowned(
    systemd: Any, osipc_names: Names, osipc_runtime: str
) -> None:
    """SocketGroup= does not chown queues: the generated ExecStartPost= does, so --group
    G --mode 0660 lets a member of G (here a process of uid and gid nobody) send."""
    unit, queue = osipc_names("grp"), osipc_names("q")
    files = _units(
        unit,
        osipc_runtime,
        systemd,
        f"jobs=mq://{queue}?maxmsg=2&msgsize=64",
        exec_start=_python(ECHO),
        group=str(NOBODY),
        mode=0o660,
        mqueue_dir=systemd.manager.mqueue,
    )
    systemd.install(files)
    systemd.systemctl("start", f"{unit}-jobs.socket")
    info = osipc.info(f"mq://{queue}")
    assert (info.owner, info.mode) == (0, 0o660)
    with runtime_for(NOBODY) as env:
        peer(
            """
            import sys, osipc
            with osipc.sender("mq://" + sys.argv[1], create=False, trust_existing=True) as tx:
                tx.send(b"from a member of the group", timeout=5)
            """,
            queue,
            user=NOBODY,
            env=env,
        )
    state = systemd.manager.wait_for(
        f"{unit}.service",
        lambda s: "got" in systemd.service_log() and s["ActiveState"] in ("inactive", "failed"),
    )
    assert state["Result"] == "success", systemd.service_log()
    assert "got from a member of the group" in systemd.service_log()
    systemd.systemctl("stop", f"{unit}-jobs.socket")
    assert _gone(f"mq://{queue}")


def _exits_once(session: Any, unit: str, quiet: float = 0.5) -> None:
    """``unit``, started once, exits successfully, and systemd does not start it again
    (it does at once when the exit left data in a FIFO its socket listens on)."""

    def starts() -> int:
        return session.service_log().count(f"{STARTED} {unit}\n")

    state = session.manager.wait_for(
        unit, lambda s: starts() > 1 or s["ActiveState"] in ("inactive", "failed")
    )
    assert starts() == 1, f"{unit} was started again\n{session.service_log()}"
    assert state["Result"] == "success", session.service_log()
    time.sleep(quiet)
    state = session.manager.show(unit)
    assert (starts(), state["ActiveState"]) == (1, "inactive"), (
        f"{unit} was started again: {state}\n{session.service_log()}"
    )


GROUP_CLIENT = """
import json, sys, osipc
commands, fifo = sys.argv[1:]
with osipc.sender(f"mq://{commands}?trust_existing=1", create=False, codec="json") as tx:
    tx.send({"cmd": "push", "job": "shared"}, timeout=5)  # starts the service
    tx.send({"cmd": "status", "id": 1}, timeout=5)
    with osipc.receiver(f"fifo://{fifo}?trust_existing=1", create=False, codec="json") as rx:
        answer = rx.recv(timeout=10)  # by path: the FIFO is in root's runtime dir
    tx.send({"cmd": "status", "id": 2}, timeout=5)  # an answer nobody reads
    tx.send({"cmd": "stop"}, timeout=5)
print(json.dumps(answer))
"""

CLIENT = 65533  # a user of its own, in the group nobody


def test_a_group_reaches_fifos_in_a_runtime_dir_osipc_made_0700(
    systemd: Any, osipc_names: Names
) -> None:
    """Root used osipc before the socket units started (the usual install order), so
    %t/osipc is 0700, and systemd keeps an existing directory's mode. With --group G
    --mode 0660 the units open it to passing through: a member of G (not the service's
    user) reaches the FIFO by path, and the example daemon, run as --user, answers and
    drains what nobody read through its descriptor, so it is not started again."""
    unit, commands, status = osipc_names("grp"), osipc_names("cmd"), osipc_names("st")
    runtime = f"{systemd.manager.runtime}/osipc"
    systemd.manager.command("sh", "-c", 'mkdir -p "$1" && chmod 0700 "$1"', "-", runtime)
    _start_example(
        systemd,
        unit,
        commands,
        status,
        user="nobody",
        group=str(NOBODY),
        mode=0o660,
        mqueue_dir=systemd.manager.mqueue,
    )
    mode = systemd.manager.command("stat", "-c", "%a %U", runtime).stdout.split()
    assert mode == ["711", "root"]  # passable, not listable, and still osipc's to use
    with runtime_for(CLIENT) as env:
        answer = json.loads(
            systemd.client(
                GROUP_CLIENT,
                commands,
                f"{runtime}/{status}.fifo",
                user=CLIENT,
                group=NOBODY,
                env={"OSIPC_RUNTIME_DIR": env["OSIPC_RUNTIME_DIR"]},
            )
        )
    assert answer["id"] == 1 and answer["jobs"] == ["shared"]
    _exits_once(systemd, f"{unit}.service")
    assert "bytes of answers nobody read were dropped" in systemd.service_log()
    # and root's osipc still takes the directory for its runtime dir
    assert systemd.client(OWN_FIFO, osipc_names("own")).strip() == runtime


OWN_FIFO = """
import os, sys, osipc
url = "fifo://" + sys.argv[1]
osipc.receiver(url).close()
print(os.path.dirname(osipc.info(url).path))
osipc.unlink(url)
"""


def test_the_example_daemon_drains_through_its_descriptor(systemd: Any, osipc_names: Names) -> None:
    """With DynamicUser= the daemon may not open its status FIFO by path (root's, mode
    0600): it drains answers nobody read through the descriptor systemd passed, at
    start and at exit, and so is not started again."""
    if f"{os.path.realpath(sys.prefix)}/".startswith(("/tmp/", "/var/tmp/")):
        pytest.skip("this Python lives in /tmp, which DynamicUser='s PrivateTmp= hides")
    unit, commands, status = osipc_names("dyn"), osipc_names("cmd"), osipc_names("st")
    _start_example(systemd, unit, commands, status, properties=[("DynamicUser", "yes")])
    with osipc.sender(f"mq://{commands}", codec="json") as tx:
        tx.send({"cmd": "status", "id": 1})  # starts the service; nobody reads the answer
        tx.send({"cmd": "stop"})
    _exits_once(systemd, f"{unit}.service")
    assert "bytes of answers nobody read were dropped" in systemd.service_log()
