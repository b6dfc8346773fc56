"""The README's examples run as printed: the service under ``osipc-systemd run``, the
unit command with only --output moved."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from osipc_systemd._cli import main

import osipc

README = Path(__file__).resolve().parent.parent / "README.md"


def _blocks(language: str) -> list[str]:
    if not README.exists():
        pytest.skip("README.md is not next to the tests (installed elsewhere)")
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), re.S | re.M)


@pytest.mark.parametrize("stop", ["end-of-stream", "SIGTERM"])
def test_the_service_example_serves_jobs(osipc_names: Callable[[str], str], stop: str) -> None:
    """... and leaves its status FIFO empty however it stops (its jobs end, or systemctl
    stop sends SIGTERM): systemd holds the FIFO open too, and would take replies left in
    it for traffic and start the service again as soon as it exits."""
    jobs, status = osipc_names("jobs"), osipc_names("st")
    # held open all along, as systemd holds it, so what the service leaves stays
    replies = osipc.receiver(f"fifo://{status}?keep_open=1", codec="json")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    address = f"osipc-systemd-readme-{os.getpid()}-{os.urandom(4).hex()}"
    listener.bind("\0" + address)
    listener.settimeout(10)
    service = subprocess.Popen(
        [
            sys.executable, "-m", "osipc_systemd", "run",
            "--listen", f"jobs=mq://{jobs}?maxmsg=4&msgsize=1024",
            "--listen", f"status=fifo://{status}",
            "--", sys.executable, "-c", _blocks("python")[0],
        ],
        env=dict(os.environ, NOTIFY_SOCKET="@" + address),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert listener.recv(4096) == b"READY=1\nSTATUS=serving"
        with osipc.sender(f"mq://{jobs}", codec="json") as tx:
            tx.send({"n": 1})
            assert listener.recv(4096) == b"STATUS=working on {'n': 1}"
            assert replies.recv(timeout=10) == {"done": {"n": 1}}
            tx.send({"n": 2})  # a reply nobody reads
            assert listener.recv(4096) == b"STATUS=working on {'n': 2}"
            if stop == "SIGTERM":
                service.terminate()
            else:
                tx.end()  # the for loop ends, and so does the service
        _, err = service.communicate(timeout=10)
        assert service.returncode == 0, err
        with pytest.raises(osipc.Timeout):
            replies.recv(timeout=0)  # it drained the reply nobody read
    finally:
        replies.close()
        if service.poll() is None:
            service.kill()
            service.communicate()
        listener.close()
        osipc.unlink(f"mq://{jobs}", missing_ok=True)
        osipc.unlink(f"fifo://{status}", missing_ok=True)


def test_the_unit_example_writes_the_units_it_enables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _blocks("sh")[0].replace("\\\n", " ").splitlines()
    words = shlex.split(next(line for line in lines if line.startswith("osipc-systemd unit")))
    words[words.index("--output") + 1] = str(tmp_path)
    assert main(words[1:]) == 0
    err = capsys.readouterr().err  # nothing to warn about, but a missing /dev/mqueue
    expected = "" if os.path.ismount("/dev/mqueue") else "/dev/mqueue is not a mount point"
    assert err.count("\n") == int(bool(expected)) and expected in err
    enabled = next(line for line in lines if "systemctl" in line and "enable" in line)
    sockets = [word for word in enabled.split() if word.endswith(".socket")]
    assert sorted(os.listdir(tmp_path)) == sorted([*sockets, "jobs.service"])
