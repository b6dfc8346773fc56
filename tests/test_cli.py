"""The `osipc` command: in-process through main(argv), and as a real subprocess."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import pytest
from _helpers import cli

import osipc
from osipc._cli import human_size, main, show_bytes

Url = Callable[..., str]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_send_then_recv_in_process(capsys: pytest.CaptureFixture[str], url: Url) -> None:
    target = url("mq", maxmsg=8, msgsize=128)
    assert run(capsys, "send", target, "one", "two", "--end") == (0, "", "")
    assert run(capsys, "recv", target, "--timeout", "1") == (0, "one\ntwo\n", "")
    osipc.unlink(target)


def test_send_reads_stdin_lines(url: Url) -> None:
    target = url("mq", maxmsg=8, msgsize=128)
    done = cli("send", target, stdin="alpha\nbeta\n\ngamma")
    assert done.returncode == 0, done.stderr
    got = cli("recv", target, "-n", "4", "--timeout", "5")
    assert got.stdout == "alpha\nbeta\n\ngamma\n"
    osipc.unlink(target)


def test_recv_count_timeout_and_json(capsys: pytest.CaptureFixture[str], url: Url) -> None:
    target = url("mq", maxmsg=8, msgsize=128)
    with osipc.sender(target) as tx:
        tx.send(b'{"a": [1, 2]}')
        tx.send(b'"x"')
    assert run(capsys, "recv", target, "-n", "2", "--json", "--timeout", "1") == (
        0,
        '{"a":[1,2]}\n"x"\n',
        "",
    )
    code, out, err = run(capsys, "recv", target, "-n", "1", "--timeout", "0.1")
    assert (code, out) == (1, "")
    assert err.startswith("osipc: error: ") and "no message" in err and err.count("\n") == 1
    assert run(capsys, "recv", target, "--timeout", "0.1") == (0, "", ""), "a quiet queue ends it"
    osipc.sender(target).send(b"not json")
    code, _, err = run(capsys, "recv", target, "--json", "--timeout", "1")
    assert code == 1 and "json codec" in err
    osipc.unlink(target)


def test_bytes_are_shown_as_text_or_escaped() -> None:
    assert show_bytes(b"hello w\xc3\xb6rld") == "hello wörld"
    assert show_bytes(b"\x00\xffbin") == "\\x00\\xffbin"
    assert show_bytes(b"two\nlines") == "two\\nlines"
    assert show_bytes("é\\\n".encode()) == "é\\\\\\n"
    assert show_bytes(b"") == ""
    # A backslash on screen always starts an escape: the text \x00 is not the byte 0.
    assert show_bytes(b"\\x00") == "\\\\x00" != show_bytes(b"\x00")
    assert show_bytes(b"C:\\dir") == "C:\\\\dir"


def _wait_for_fifo(path: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while not (os.path.exists(path) and stat.S_ISFIFO(os.stat(path).st_mode)):
        assert process.poll() is None and time.monotonic() < deadline, "no FIFO appeared"
        time.sleep(0.01)


def _osipc(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-I", "-m", "osipc", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tempfile.gettempdir(),
    )


def test_send_and_recv_over_a_fifo_as_separate_commands(url: Url, osipc_runtime: str) -> None:
    target = url("fifo")
    sending = _osipc("send", target, "one", "", "two", "--timeout", "30")  # waits for a reader
    _wait_for_fifo(os.path.join(osipc_runtime, target[len("fifo://") :] + ".fifo"), sending)
    got = cli("recv", target, "--timeout", "30")  # ends when the sender closes the FIFO
    out, err = sending.communicate(timeout=30)
    assert (sending.returncode, out, err) == (0, "", "")
    assert (got.returncode, got.stdout, got.stderr) == (0, "one\n\ntwo\n", "")
    osipc.unlink(target)


def test_a_shell_writes_lines_into_a_fifo(url: Url, osipc_runtime: str) -> None:
    target = url("fifo")
    path = os.path.join(osipc_runtime, target[len("fifo://") :] + ".fifo")
    receiving = _osipc("recv", target + "?framing=lines", "--timeout", "30")
    _wait_for_fifo(path, receiving)
    shell = subprocess.run(
        ["sh", "-c", f"{{ echo hi; echo 'from sh'; }} > {path}"], timeout=30, check=False
    )
    out, err = receiving.communicate(timeout=30)
    assert shell.returncode == 0 and (receiving.returncode, out, err) == (0, "hi\nfrom sh\n", "")
    osipc.unlink(target)


def test_sizes_are_shown_as_ls_h_does() -> None:
    assert [human_size(n) for n in (None, 0, 1023, 1024, 1792, 65536, 16 << 20)] == [
        "-", "0", "1023", "1.0K", "1.8K", "64K", "16M"
    ]  # fmt: skip


def test_mem_urls_are_refused_between_commands(capsys: pytest.CaptureFixture[str]) -> None:
    # A mem:// queue dies with the command: `osipc send mem://x hi` would lose "hi".
    done = cli("send", "mem://x", "hi")
    assert done.returncode == 2 and "lives inside one process" in done.stderr, done.stderr
    for argv in (["recv", "MEM://x"], ["bridge", "mq://x", "mem://y"]):
        code, _, err = run(capsys, *argv)
        assert code == 2 and err.count("\n") == 1 and "fifo:// or mq://" in err


def test_errors_are_one_line_without_traceback() -> None:
    for argv in (
        ["send", "mq://..", "x"],
        ["info", "mq://does-not-exist-here"],
        ["recv", "nope://x"],
    ):
        done = cli(*argv)
        assert done.returncode == 1, argv
        assert done.stderr.startswith("osipc: error: ") and done.stderr.count("\n") == 1, (
            done.stderr
        )
        assert "Traceback" not in done.stderr
    assert "did you mean" in cli("recv", "fif://x").stderr


def test_usage_errors_exit_2() -> None:
    for argv in ([], ["frobnicate"], ["recv"], ["recv", "mq://x", "-n", "many"]):
        done = cli(*argv)
        assert done.returncode == 2, (argv, done.stderr)
        assert "usage" in done.stderr and "Traceback" not in done.stderr


def test_ls_info_rm(capsys: pytest.CaptureFixture[str], url: Url) -> None:
    queue, fifo = url("mq", maxmsg=8, msgsize=128), url("fifo")
    assert cli("send", queue, "x").returncode == 0  # created by a process that has exited
    osipc.receiver(fifo).close()
    code, out, _ = run(capsys, "ls")
    assert code == 0 and out.splitlines()[0].split()[:6] == [
        "URL", "KIND", "STATE", "DEPTH", "CAPACITY", "SIZE"
    ]  # fmt: skip
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert rows[queue.split("?")[0]][1:4] == ["mq", "stale", "1"], "creator done, nobody attached"
    assert rows[queue.split("?")[0]][5] == "1.8K", "8 x 128 bytes, and the kernel's share"
    code, out, _ = run(capsys, "ls", "--json")
    listed = {entry["url"]: entry for entry in json.loads(out)}
    assert listed[fifo]["kind"] == "fifo" and listed[fifo]["mode"] == "0600"
    code, out, _ = run(capsys, "info", queue)
    assert code == 0 and "depth:" in out and "max_message_size:  128" in out
    code, out, _ = run(capsys, "info", queue, "--json")
    assert json.loads(out)["depth"] == 1
    assert run(capsys, "rm", queue, fifo) == (0, "", "")
    code, _, err = run(capsys, "rm", queue)
    assert (code == 1 and "does not exist" in err.lower()) or "no queue" in err.lower()
    assert run(capsys, "rm", "-f", queue)[0] == 0
    assert "no osipc objects" in run(capsys, "ls")[1]


def test_gc(capsys: pytest.CaptureFixture[str], url: Url) -> None:
    empty, full = url("mq", maxmsg=8, msgsize=128), url("mq", maxmsg=8, msgsize=128)
    assert cli("send", empty).returncode == 0 and cli("send", full, "keep me").returncode == 0
    alive = url("mq", maxmsg=8, msgsize=128)
    mine = osipc.sender(alive)  # created by this (live) process: never collected
    code, out, _ = run(capsys, "gc", "--dry-run")
    assert code == 0 and f"would remove {empty.split('?')[0]}" in out
    assert osipc.info(empty)
    code, out, _ = run(capsys, "gc")
    assert f"removed {empty.split('?')[0]}" in out and f"kept {full.split('?')[0]}" in out
    assert "--force" in out
    with pytest.raises(osipc.NotFound):
        osipc.info(empty)
    code, out, _ = run(capsys, "gc", "--force")
    assert f"removed {full.split('?')[0]}" in out
    assert run(capsys, "gc")[1] == "nothing to collect\n"
    assert osipc.info(alive).state == "live"
    mine.close()
    osipc.unlink(alive)


def test_schemes_and_doctor(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "schemes")
    assert code == 0
    for scheme in ("fifo://", "mem://", "mq://"):
        assert any(line.startswith(scheme) and " ok " in line for line in out.splitlines())
    code, out, _ = run(capsys, "doctor")
    assert code == 0
    for key in (
        "fs.mqueue.msg_max:",
        "fs.mqueue.msgsize_max:",
        "fs.mqueue.queues_max:",
        "RLIMIT_MSGQUEUE:",
        "kernel.msgmax:",
        "kernel.msgmnb:",
        "/dev/shm:",
        "mqueue mounted:",
        "runtime dir:",
        "C part for shm://:",
        "C part for mq://:",
    ):
        assert key in out, key
    assert "default-size queues per user" in out
    code, out, _ = run(capsys, "doctor", "--json")
    assert "fs.mqueue.msg_max" in json.loads(out)["facts"]


def test_version() -> None:
    done = cli("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"osipc {osipc.__version__}"
