"""``osipc-systemd unit`` and ``check``: the files, the warnings, the exit codes."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from osipc_systemd._cli import main
from osipc_systemd._units import login_uid, login_uids, read_unit

Cli = Callable[..., subprocess.CompletedProcess[str]]
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def generate(tmp_path: Path, *args: str) -> dict[str, dict[str, dict[str, str]]]:
    out = tmp_path / "units"
    assert main(["unit", *args, "--output", str(out)]) == 0
    return {name: read_unit((out / name).read_text()) for name in sorted(os.listdir(out))}


def test_one_socket_per_endpoint_and_a_notify_service(tmp_path: Path) -> None:
    units = generate(
        tmp_path,
        "jobs",
        "--exec",
        "/usr/bin/python3 /opt/jobs.py --verbose",
        "--listen",
        "mq://jobs?maxmsg=8&msgsize=2048",
        "--listen",
        "status=fifo://jobs-status?mode=0640&pipe_size=65536",
        "--user",
        "worker",
        "--group",
        "clients",
        "--mode",
        "0660",
        "--watchdog",
        "5",
    )
    assert sorted(units) == ["jobs-jobs.socket", "jobs-status.socket", "jobs.service"]
    queue = units["jobs-jobs.socket"]["Socket"]
    assert queue == {
        "ListenMessageQueue": "/jobs",
        "MessageQueueMaxMessages": "8",
        "MessageQueueMessageSize": "2048",
        "FileDescriptorName": "jobs",
        "Service": "jobs.service",
        "SocketMode": "0660",
        # SocketUser=/SocketGroup= would not chown a queue
        "ExecStartPost": "chown worker:clients /dev/mqueue/jobs",
        "RemoveOnStop": "yes",
    }
    fifo = units["jobs-status.socket"]["Socket"]
    assert fifo["ListenFIFO"] == "%t/osipc/jobs-status.fifo"  # osipc's RUNTIME/NAME.fifo
    # others open it by path: passable whether osipc (0700) or systemd made the dir
    assert fifo["DirectoryMode"] == "0711"
    assert fifo["ExecStartPost"] == "/bin/chmod go+x %t/osipc"
    assert fifo["FileDescriptorName"] == "status"
    assert fifo["SocketMode"] == "0640"  # the URL's mode wins for its endpoint
    assert fifo["PipeSize"] == "65536"
    assert (fifo["SocketUser"], fifo["SocketGroup"]) == ("worker", "clients")
    assert units["jobs-status.socket"]["Install"] == {"WantedBy": "sockets.target"}
    service = units["jobs.service"]["Service"]
    assert service == {
        "Type": "notify",
        "NotifyAccess": "main",
        "ExecStart": "/usr/bin/python3 /opt/jobs.py --verbose",
        "Sockets": "jobs-jobs.socket jobs-status.socket",
        # User=worker could not use %t/osipc (the manager's): it gets its own
        "RuntimeDirectory": "osipc-jobs",
        "RuntimeDirectoryMode": "0750",
        "RuntimeDirectoryPreserve": "yes",
        "Environment": "OSIPC_RUNTIME_DIR=%t/osipc-jobs",
        "User": "worker",
        "Group": "clients",
        "WatchdogSec": "5",
    }


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ([], {"Environment": "OSIPC_RUNTIME_DIR=%t/osipc"}),  # the manager's user
        (["--user", "root"], {"Environment": "OSIPC_RUNTIME_DIR=%t/osipc", "User": "root"}),
        (  # the last User= is the one systemd uses
            ["--user", "worker", "--property", "User=root"],
            {"Environment": "OSIPC_RUNTIME_DIR=%t/osipc", "User": "root"},
        ),
        (
            ["--property", "User=worker"],
            {
                "RuntimeDirectory": "osipc-s",
                "RuntimeDirectoryMode": "0700",
                "RuntimeDirectoryPreserve": "yes",
                "Environment": "OSIPC_RUNTIME_DIR=%t/osipc-s",
                "User": "worker",
            },
        ),
        (
            # a preserved one would become a symlink into %t/private, which osipc refuses
            ["--property", "DynamicUser=yes"],
            {
                "RuntimeDirectory": "osipc-s",
                "RuntimeDirectoryMode": "0700",
                "Environment": "OSIPC_RUNTIME_DIR=%t/osipc-s",
                "DynamicUser": "yes",
            },
        ),
    ],
)
def test_a_service_of_another_user_gets_its_own_runtime_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], expected: dict[str, str]
) -> None:
    units = generate(tmp_path, "s", "--exec", "/bin/true", "--listen", "fifo://x", *extra)
    service = units["s.service"]["Service"]
    for key in ("Type", "NotifyAccess", "ExecStart", "Sockets"):
        del service[key]
    assert service == expected
    assert units["s-x.socket"]["Socket"]["ListenFIFO"] == "%t/osipc/x.fifo"  # not moved
    capsys.readouterr()


@pytest.mark.parametrize(
    ("extra", "chown"),
    [
        (["--user", "worker"], "worker"),
        (["--group", "clients"], ":clients"),
        (["--user", "7", "--group", "8", "--mqueue-dir", "/mnt/mq"], "7:8"),
    ],
)
def test_queues_are_chowned_where_the_mqueue_file_system_is(
    tmp_path: Path, extra: list[str], chown: str
) -> None:
    units = generate(tmp_path, "s", "--exec", "/bin/true", "--listen", "mq://q", *extra)
    socket = units["s-q.socket"]["Socket"]
    where = "/mnt/mq" if "--mqueue-dir" in extra else "/dev/mqueue"
    assert socket["ExecStartPost"] == f"chown {chown} {where}/q"
    assert "SocketUser" not in socket and "SocketGroup" not in socket
    assert socket["RemoveOnStop"] == "yes"


@pytest.mark.parametrize(("where", "warned"), [("/proc", False), ("{tmp}", True)])
def test_a_chown_where_no_file_system_is_mounted_is_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str, warned: bool
) -> None:
    where = where.format(tmp=tmp_path)  # /proc: some mount point; tmp_path: none
    args = ["unit", "s", "--exec", "/bin/true", "--listen", "mq://q", "--group", "g"]
    assert main([*args, "--mqueue-dir", where, "--output", str(tmp_path / "units")]) == 0
    err = capsys.readouterr().err
    assert (f"{where} is not a mount point on this machine" in err) is warned
    assert err.count("\n") == int(warned)


@pytest.mark.parametrize(
    ("extra", "shared"),
    [
        ([], False),
        (["--user", "root", "--group", "0"], False),  # the manager's own
        (["--group", "clients"], True),
        (["--user", "worker"], True),
        (["--mode", "0604"], True),
        (["--mode", "0640"], True),  # the group: "others" of the directory, root's
        (["--mode", "0660", "--socket-property", "SocketMode=0600"], False),  # the last wins
        (["--socket-property", "SocketGroup=clients"], True),
        (["--runtime-dir", "/run/mine", "--group", "clients"], True),
    ],
)
def test_the_runtime_dir_lets_others_through_when_they_open_a_fifo_by_path(
    tmp_path: Path, extra: list[str], shared: bool
) -> None:
    """osipc makes its runtime dir 0700 and systemd keeps an existing one as it is, so
    a FIFO others open by path gets a chmod go+x; else the directory is made as osipc
    makes it. A FIFO given by path, and a queue, leave directories alone."""
    units = generate(
        tmp_path,
        "s",
        "--exec",
        "/bin/true",
        "--listen",
        "fifo://f",
        "--listen",
        "fifo:///srv/pipes/p.fifo",
        "--listen",
        "mq://q",
        *extra,
    )
    socket = units["s-f.socket"]["Socket"]
    runtime = extra[extra.index("--runtime-dir") + 1] if "--runtime-dir" in extra else "%t/osipc"
    assert socket["ListenFIFO"] == f"{runtime}/f.fifo"
    assert socket["DirectoryMode"] == ("0711" if shared else "0700")
    assert socket.get("ExecStartPost") == (f"/bin/chmod go+x {runtime}" if shared else None)
    for other in ("s-p.socket", "s-q.socket"):
        assert "DirectoryMode" not in units[other]["Socket"]
        assert "chmod" not in units[other]["Socket"].get("ExecStartPost", "")


def test_without_user_or_group_queues_stay_the_managers(tmp_path: Path) -> None:
    units = generate(tmp_path, "s", "--exec", "/bin/true", "--listen", "mq://q")
    assert "ExecStartPost" not in units["s-q.socket"]["Socket"]


def test_runtime_dir_and_absolute_fifo_paths(tmp_path: Path) -> None:
    units = generate(
        tmp_path,
        "svc",
        "--exec",
        "/bin/true",
        "--listen",
        "fifo://in",
        "--listen",
        "fifo:///srv/pipes/raw.fifo",
        "--runtime-dir",
        "/run/my-osipc",
        "--property",
        "Nice=5",
        "--socket-property",
        "DirectoryMode=0750",
    )
    assert units["svc-in.socket"]["Socket"]["ListenFIFO"] == "/run/my-osipc/in.fifo"
    assert units["svc-raw.socket"]["Socket"]["ListenFIFO"] == "/srv/pipes/raw.fifo"
    assert units["svc-raw.socket"]["Socket"]["DirectoryMode"] == "0750"
    service = units["svc.service"]["Service"]
    assert service["Environment"] == "OSIPC_RUNTIME_DIR=/run/my-osipc"
    assert service["Nice"] == "5"


def test_without_output_the_files_go_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["unit", "a", "--exec", "/bin/true", "--listen", "mq://a"]) == 0
    out = capsys.readouterr().out
    assert "### a-a.socket\n" in out and "### a.service\n" in out
    assert "# Generated by: osipc-systemd unit a --exec /bin/true --listen mq://a" in out


def test_generated_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("needs systemd-analyze")
    generate(
        tmp_path,
        "verified",
        "--exec",
        f"{sys.executable} -c pass",
        "--listen",
        "mq://verified?maxmsg=4&msgsize=128",
        "--listen",
        "out=fifo://verified-out",
        "--listen",
        "shared=fifo://verified-shared?mode=0660",  # opens the runtime dir: ExecStartPost=
        "--watchdog",
        "2.5",
    )
    units = sorted(str(path) for path in (tmp_path / "units").iterdir())
    runtime = tempfile.mkdtemp(prefix="osd-")
    try:
        done = subprocess.run(
            ["systemd-analyze", "--user", "verify", *units],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env=dict(os.environ, XDG_RUNTIME_DIR=runtime),
        )
    finally:
        shutil.rmtree(runtime)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # not even "Unknown key"


def test_examples_are_up_to_date(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHON=sys.executable, OUTPUT=str(tmp_path))
    done = subprocess.run(
        [str(EXAMPLES / "regenerate")], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    checked_in = EXAMPLES / "units"
    assert sorted(os.listdir(tmp_path)) == sorted(os.listdir(checked_in))
    _, mismatch, errors = filecmp.cmpfiles(tmp_path, checked_in, os.listdir(checked_in), False)
    assert not mismatch and not errors, "run adapters/systemd/examples/regenerate"


HAZARDS = [
    (["--user", "worker", "--property", "RemoveIPC=yes"], "owned by User=worker:"),
    (["--group", "clients", "--property", "RemoveIPC=yes"], "owned by Group=clients:"),
    (
        ["--property", "DynamicUser=yes"],
        "DynamicUser=yes in x.service implies RemoveIPC=yes and PrivateTmp=yes",
    ),
    (["--property", "PrivateIPC=true"], "PrivateIPC=yes in x.service"),
    (
        ["--property", "PrivateTmp=yes", "--runtime-dir", "/tmp/osipc-x"],
        "FIFOs it creates in /tmp/osipc-x are invisible",
    ),
    (["--property", "RuntimeDirectory=osipc"], "RuntimeDirectory=osipc in x.service"),
    (
        ["--user", "worker", "--socket-property", "RemoveOnStop=no"],
        "RemoveOnStop=no in x-x.socket: its FIFO gets another owner",
    ),
]


@pytest.mark.parametrize(("extra", "warning"), HAZARDS)
def test_settings_that_delete_or_hide_objects_are_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], warning: str
) -> None:
    out = tmp_path / "units"
    args = ["unit", "x", "--exec", "/bin/true", "--listen", "fifo://x", *extra]
    assert main([*args, "--output", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("osipc-systemd: warning: ") and warning in err
    assert err.count("\n") == 1
    # and `check` finds the same in the written files
    assert main(["check", *(str(path) for path in out.iterdir())]) == 1
    assert warning in capsys.readouterr().err


def test_the_private_ipc_warning_names_what_it_hides(capsys: pytest.CaptureFixture[str]) -> None:
    """An IPC namespace has its own mqueue and SysV objects; /dev/shm is not part of it."""
    main(["unit", "x", "--exec", "/bin/true", "--listen", "fifo://x", "--property", "PrivateIPC=1"])
    err = capsys.readouterr().err
    assert "mq:// and sysv+ objects it opens by name are invisible" in err
    assert "shm:// rings (in /dev/shm) still work" in err


def test_a_chowned_queue_kept_at_stop_is_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["unit", "x", "--exec", "/bin/true", "--listen", "mq://q", "--group", "clients"]
    assert main([*args, "--socket-property", "RemoveOnStop=no", "--output", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "RemoveOnStop=no in x-q.socket: its queue gets another owner" in err


@pytest.mark.parametrize(
    ("command", "warned"),
    [
        ("chown worker /dev/mqueue/q", True),  # as osipc-systemd writes it
        ("-/usr/bin/chown worker:clients /dev/mqueue/q", True),  # as a person might
        ("/bin/echo chowned /dev/mqueue/q", False),
    ],
)
def test_check_finds_a_queue_chowned_by_hand_and_kept_at_stop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, warned: bool
) -> None:
    unit = tmp_path / "x-q.socket"
    unit.write_text(f"[Socket]\nListenMessageQueue=/q\nRemoveOnStop=no\nExecStartPost={command}\n")
    assert main(["check", str(unit)]) == (1 if warned else 0)
    err = capsys.readouterr().err
    assert ("RemoveOnStop=no in x-q.socket: its queue gets another owner" in err) is warned


def test_dynamic_user_with_a_preserved_runtime_dir_is_warned_about(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["unit", "x", "--exec", "/bin/true", "--listen", "fifo://x"]
    preserve = ["--property", "DynamicUser=yes", "--property", "RuntimeDirectoryPreserve=yes"]
    assert main([*args, *preserve]) == 0
    err = capsys.readouterr().err
    assert "makes %t/osipc-x a symlink into %t/private, and osipc refuses" in err


def test_a_service_with_only_queues_has_no_fifos_to_lose(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its own RuntimeDirectory= (DynamicUser=) holds no FIFO of the socket units, so
    nothing suggests RuntimeDirectoryPreserve=, which DynamicUser= cannot take."""
    out = tmp_path / "units"
    args = ["unit", "x", "--exec", "/bin/true", "--listen", "mq://q", "--output", str(out)]
    assert main([*args, "--property", "DynamicUser=yes"]) == 0
    err = capsys.readouterr().err
    assert "RuntimeDirectory" not in err
    assert err.count("\n") == 1 and "DynamicUser=yes in x.service implies" in err
    # check says the same of the files: only the hazard DynamicUser= itself brings
    assert main(["check", *(str(path) for path in out.iterdir())]) == 1
    assert capsys.readouterr().err == err


def test_check_reads_drop_ins_and_the_socket_units_beside(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "units"
    args = ["unit", "x", "--exec", "/bin/true", "--listen", "fifo://x", "--runtime-dir", "/run/p"]
    elsewhere = ["--property", "Environment=OSIPC_RUNTIME_DIR=/run/elsewhere"]
    assert main([*args, *elsewhere, "--output", str(out)]) == 0
    capsys.readouterr()
    service = str(out / "x.service")
    assert main(["check", service]) == 0
    dropins = out / "x.service.d"
    dropins.mkdir()
    (dropins / "10-private.conf").write_text("[Service]\nPrivateIPC=yes\n")
    (dropins / "20-runtime.conf").write_text("[Service]\nRuntimeDirectory=p\n")
    (dropins / "30-ignored.txt").write_text("[Service]\nRemoveIPC=yes\n")
    assert main(["check", service]) == 1
    err = capsys.readouterr().err
    assert "PrivateIPC=yes in x.service" in err
    # the FIFOs are where the socket unit beside it says: ListenFIFO=/run/p/x.fifo
    assert "RuntimeDirectory=p in x.service" in err
    assert "RemoveIPC" not in err and err.count("\n") == 2
    (out / "x-x.socket").unlink()  # then only the service's own OSIPC_RUNTIME_DIR is known
    assert main(["check", service]) == 1
    assert "RuntimeDirectory=p" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["--property", "RemoveIPC=yes"],  # root's objects are never removed
        ["--group", "root", "--property", "RemoveIPC=yes"],
        ["--property", "RuntimeDirectory=osipc", "--property", "RuntimeDirectoryPreserve=yes"],
        ["--property", "PrivateTmp=yes"],  # the FIFOs are in %t, not /tmp
        ["--property", "RuntimeDirectory=other"],
        ["--user", "worker", "--group", "clients"],  # its own, preserved, runtime dir
    ],
)
def test_harmless_settings_pass_quietly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str]
) -> None:
    out = tmp_path / "units"
    args = ["unit", "x", "--exec", "/bin/true", "--listen", "fifo://x", *extra]
    assert main([*args, "--output", str(out)]) == 0
    assert capsys.readouterr().err == ""
    assert main(["check", *(str(path) for path in out.iterdir())]) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "shm://ring"], "systemd can create only fifo:// (ListenFIFO=) and mq://"),
        (["--listen", "zmq+ipc://x"], "not zmq+ipc://"),
        (["--listen", "mq://jobs?maxmsg=4"], "give both maxmsg and msgsize"),
        (["--listen", "mq://jobs?raw=1"], "option 'raw' is not one a unit can set"),
        (["--listen", "fifo://x?framing=lines"], "osipc_systemd.endpoints(options=...)"),
        (["--listen", "mq://a/b"], "breaks osipc's rule"),
        (["--listen", "fifo:///run/../etc/x"], "absolute, normalised"),
        (["--listen", "mq://x?mode=999"], "not an octal file mode"),
        (["--listen", "mq://x?maxmsg=0&msgsize=1"], "must be a positive integer"),
        (["--listen", "a=mq://x", "--listen", "a=fifo://y"], "descriptor name 'a' is given twice"),
        (["--listen", "mq://x", "--listen", "y=mq://x"], "endpoint 'mq://x' is given twice"),
        (["--listen", "bad:name=mq://x"], "descriptor name 'bad:name'"),
        (["--listen", "mq://x", "--runtime-dir", "run/rel"], "must be an absolute path"),
        (["--listen", "mq://x", "--user", "bad user"], "must be a user or group name"),
        (["--listen", "mq://x", "--property", "=x"], "is not of the form Key=value"),
        (["--listen", "mq://x", "--watchdog", "0"], "must be > 0 seconds"),
        (["--listen", "mq://x", "--exec", "two\nlines"], "must be one non-empty line"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    if "--exec" not in args:
        args = [*args, "--exec", "/bin/true"]
    assert main(["unit", "svc", *args]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("osipc-systemd: error: ") and captured.err.count("\n") == 1
    assert message in captured.err


@pytest.mark.parametrize(
    ("name", "listen", "message"),
    [
        ("n" * 200, f"{'f' * 60}=mq://x", "socket unit name 'nnn"),
        ("svc", f"fifo:///run/{'a' * 256}", "is 256 characters long; file systems allow 255"),
    ],
)
def test_names_too_long_for_systemd_are_refused_up_front(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, listen: str, message: str
) -> None:
    """Not a 'File name too long' from the file system, nor a 300-character line."""
    assert (
        main(["unit", name, "--exec", "/bin/true", "--listen", listen, "--output", str(tmp_path)])
        == 1
    )
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and len(err) < 400
    assert list(tmp_path.iterdir()) == []
    if name != "svc":
        assert "would be 268 characters long; systemd allows 255: shorten NAME" in err


def test_the_longest_names_systemd_allows_are_written(tmp_path: Path) -> None:
    fdname = "f" * (255 - 200 - len("-.socket"))
    units = generate(tmp_path, "n" * 200, "--exec", "/bin/true", "--listen", f"{fdname}=mq://x")
    assert max(len(name) for name in units) == 255


def test_bad_unit_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["unit", "../evil", "--exec", "/bin/true", "--listen", "mq://x"]) == 1
    assert "unit name '../evil'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["unit"],
        ["unit", "x", "--listen", "mq://x"],  # no --exec
        ["unit", "x", "--exec", "/bin/true"],  # no --listen
        ["unit", "x", "--exec", "/bin/true", "--listen", "mq://x", "--mode", "rw"],
        ["check"],
        ["run", "--listen", "mq://x"],  # no command
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(args)
    assert caught.value.code == 2
    assert "usage" in capsys.readouterr().err


def test_real_subprocess_exit_codes(cli: Cli, tmp_path: Path) -> None:
    done = cli("unit", "x", "--exec", "/bin/true", "--listen", "mq://x", "--output", str(tmp_path))
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.split() == [str(tmp_path / n) for n in ("x-x.socket", "x.service")]
    done = cli("unit", "x", "--exec", "/bin/true", "--listen", "shm://x")
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr
    done = cli("unit", "x")
    assert done.returncode == 2
    done = cli("check", str(tmp_path / "missing.service"))
    assert done.returncode == 1
    missing = tmp_path / "missing.service"
    assert done.stderr == f"osipc-systemd: error: {missing}: No such file or directory\n"


CHOWNED = "mq://q, which the socket units chown to 1500"
BY_NAME = "the mq://, sysv+ and shm:// objects the service makes by name"


@pytest.mark.parametrize(
    ("extra", "lost"),
    [
        (["--user", "1500"], [CHOWNED, BY_NAME]),
        (["--user", "1500", "--property", "User=nobody"], [CHOWNED]),
        (["--user", "1500", "--property", "DynamicUser=yes"], [CHOWNED]),
        (["--property", "User=1500"], [BY_NAME]),
        (["--group", "1500"], []),  # logind goes by the owner, not the group
        (["--user", "nobody"], []),  # 65534: above UID_MAX, never logs in
        (["--user", "root"], []),
    ],
)
def test_a_login_user_is_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], lost: list[str]
) -> None:
    """logind's RemoveIPC= deletes a login user's IPC objects at logout (uid 1500 is
    one by /etc/login.defs here, or by shadow's defaults without it)."""
    args = ["unit", "x", "--exec", "/bin/true", "--listen", "mq://q", "--listen", "fifo://f"]
    assert main([*args, *extra, "--mqueue-dir", "/proc", "--output", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    found = [line for line in err.splitlines() if "is a login user" in line]
    assert len(found) == int(bool(lost)), err
    for text in (CHOWNED, BY_NAME):
        assert (text in "".join(found)) == (text in lost)
    if lost:
        assert "user 1500 is a login user (uid 1500" in found[0]
        assert "set RemoveIPC=no in /etc/systemd/logind.conf" in found[0]


def test_login_users_are_those_login_defs_names(tmp_path: Path) -> None:
    defs = tmp_path / "login.defs"
    defs.write_text("# comment\nUID_MIN\t\t 2000\nUID_MAX 2999\nSYS_UID_MAX 1999\n")
    assert login_uids(str(defs)) == range(2000, 3000)
    assert [login_uid(u, str(defs)) for u in ("1999", "2000", "2999", "3000")] == [
        None,
        2000,
        2999,
        None,
    ]
    assert login_uid("root", str(defs)) is None
    assert login_uid("no-such-user-here", str(defs)) is None  # unknown here: cannot tell
    defs.write_text("UID_MAX 5000\n")  # UID_MIN: shadow's default
    assert login_uids(str(defs)) == range(1000, 5001)
    assert login_uids(str(tmp_path / "missing")) == range(1000, 60001)
