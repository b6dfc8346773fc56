"""Shared by the tests: independent peer processes, other users, and what the machine has."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

PY = sys.executable
NOBODY = 65534
IS_ROOT = os.geteuid() == 0


# A peer "as another user" starts as root, imports what it needs, then drops to the uid
# and its groups for good, as daemons do: the kernel then checks every IPC permission as
# that user. (Dropping first is not possible here: the interpreters live under /root,
# which other users cannot read.)
# A peer for the spin tests: an empty message, then 100 bytes of "y", then end-of-stream,
# 50 ms apart, to the URL in argv[1] (each lands while a receiver with a long spin= polls).
SEND_DURING_SPIN = """
import sys, time, osipc
with osipc.sender(sys.argv[1]) as tx:
    for message in (b"", b"y" * 100):
        time.sleep(0.05)
        tx.send(message)
    time.sleep(0.05)
    tx.end()
"""

_AS_USER = """
import sys, os
import errno, hashlib, json, resource, select, signal, struct, time
import osipc, osipc._cli, osipc.testing, osipc._registry
for scheme in osipc.schemes():  # every transport and what it imports, while readable
    try:
        osipc._registry.get_transport(scheme)
    except osipc.TransportUnavailable:
        pass
uid = int(sys.argv.pop(1))
os.setgroups([])
os.setresgid(uid, uid, uid)
os.setresuid(uid, uid, uid)
assert os.getresuid() == (uid, uid, uid) and os.getgroups() == []
code = sys.argv.pop(1)
exec(compile(code, "<peer>", "exec"), {"__name__": "__main__"})
"""


def _argv(code: str, args: tuple[str, ...], user: int | None) -> list[str]:
    # -I: the peer imports the installed osipc, never a checkout in the working directory
    if user is not None:
        return [PY, "-I", "-c", _AS_USER, str(user), textwrap.dedent(code), *args]
    return [PY, "-I", "-c", textwrap.dedent(code), *args]


def peer(
    code: str,
    *args: str,
    user: int | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a separate Python process that knows only its arguments."""
    done = subprocess.run(
        _argv(code, args, user),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=tempfile.gettempdir(),
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"peer exited {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        )
    return done


_SPAWNED: list[subprocess.Popen[str]] = []


def spawn(
    code: str,
    *args: str,
    user: int | None = None,
    env: dict[str, str] | None = None,
    **popen: object,
) -> subprocess.Popen[str]:
    """Start a peer; one the test leaves running (it failed half-way) is killed after it."""
    proc: subprocess.Popen[str] = subprocess.Popen(  # type: ignore[call-overload]
        _argv(code, args, user),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tempfile.gettempdir(),
        **popen,
    )
    _SPAWNED.append(proc)
    return proc


def reap_spawned() -> list[str]:
    """Kill the peers a test left running; their command lines (for its failure)."""
    left = []
    while _SPAWNED:
        proc = _SPAWNED.pop()
        if proc.poll() is None:
            left.append(" ".join(str(arg) for arg in proc.args)[:200])  # type: ignore[union-attr]
            proc.kill()
        proc.communicate()  # reap it and close its pipes
    return left


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    """Wait for a spawned peer; fail with its output unless it exited 0."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"peer timed out\n--- stdout\n{out}\n--- stderr\n{err}") from None
    if proc.returncode != 0:
        raise AssertionError(f"peer exited {proc.returncode}\n--- stdout\n{out}\n--- stderr\n{err}")
    return out


def cli(
    *args: str, stdin: str | None = "", timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The `osipc` command as a real subprocess of the installed package."""
    return subprocess.run(
        [PY, "-I", "-m", "osipc", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=timeout,
        check=False,
        cwd=tempfile.gettempdir(),
    )


def need_root(why: str) -> None:
    if not IS_ROOT:
        pytest.skip(f"needs root: {why}")


@contextmanager
def runtime_for(uid: int) -> Iterator[dict[str, str]]:
    """An environment whose OSIPC_RUNTIME_DIR belongs to ``uid`` (for peers run as it)."""
    path = tempfile.mkdtemp(prefix=f"osipc-u{uid}-")
    os.chmod(path, 0o700)
    os.chown(path, uid, uid)
    env = dict(os.environ, OSIPC_RUNTIME_DIR=path)
    try:
        yield env
    finally:
        shutil.rmtree(path, ignore_errors=True)
