"""Fixtures for the systemd adapter's tests.

``manager``: a real ``systemd --user`` for the session (it starts in ~0.1 s). As root it
runs in a private mount namespace and a private PID namespace, whose init is a shell:
when that shell dies the kernel kills every process the manager started, so nothing
outlives the session, even when the test process is killed. In its mount namespace /run
is a fresh tmpfs, as after a boot: /run/systemd/system makes it believe it was booted
with systemd, and its XDG_RUNTIME_DIR (%t) is /run/user/0 in there, seen only by
processes in the namespace. Its default target is empty, so no stock user unit starts.
It does not answer processes outside its PID namespace (systemctl gets "Transport
endpoint is not connected"), so ``systemctl``, ``systemd-run`` and clients that need %t
run there through ``nsenter`` (``UserManager.command``). Without root or systemd those
tests skip with the reason; with both, anything that keeps the manager from starting
fails them, so a broken machine cannot pass by skipping.

``systemd``: one test's view of the manager; it stops every unit the test started (their
RemoveOnStop= removes the FIFOs and queues) before the leak check runs.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence

import pytest

SYSTEMD = "/usr/lib/systemd/systemd"
START_TIMEOUT = 10.0
COMMAND_TIMEOUT = 20.0
_PASSED = ("PYTHONPATH",)  # what services need from the test's environment

# Run by `sh` as init of the new PID namespace. systemd must not be PID 1 there (it would
# take itself for the system manager), so the shell stays. Its stdin is a pipe whose other
# end only the test process holds: when that closes (the session ends, or the test process
# dies) the manager gets SIGTERM and stops every unit cleanly (RemoveOnStop= runs); when
# the shell exits the kernel kills whatever is left in the namespace.
#
# Before that, in the private mount namespace only: /run becomes a fresh tmpfs, as after a
# boot, holding /run/systemd/system (so the manager believes it was booted with systemd),
# its XDG_RUNTIME_DIR (%t, /run/user/0, open to other users like /run: services with
# User= traverse it) and an mqueue file system (the host may have none at /dev/mqueue); and
# each directory given after those two (on the way to this Python and the packages under
# test, which other users cannot search, e.g. /root 0700) gets an overlay whose only
# change is o+x, so a service with User= or DynamicUser= can run this interpreter.
_MANAGER_SCRIPT = """
die() { echo "osipc test manager: $*" >&2; exit 97; }
runtime=$1 mqueue=$2
shift 2
mount -t tmpfs -o mode=0755 tmpfs /run || die "cannot mount a tmpfs on /run"
mkdir -p /run/systemd/system "$runtime" "$mqueue" /run/osipc-test/open || die "cannot populate /run"
chmod 0755 "$runtime" || die "cannot open $runtime"
mount -t mqueue mqueue "$mqueue" || die "cannot mount an mqueue file system on $mqueue"
layer=0
for dir in "$@"; do
    layer=$((layer + 1))
    top=/run/osipc-test/open/$layer
    mkdir "$top" "$top/upper" "$top/work" &&
        mount -t overlay overlay -o "lowerdir=$dir,upperdir=$top/upper,workdir=$top/work" \\
            "$dir" &&
        chmod o+x "$dir" || die "cannot open $dir to other users (overlay)"
done
umask 0000
"$0" --user --unit=osipc-test.target </dev/null &
manager=$!
read -r _ || true
kill -TERM "$manager" 2>/dev/null
wait "$manager"
"""


def _closed_directories() -> list[str]:
    """Directories other users cannot search on the way to this interpreter and the
    packages under test (services run as another user need them)."""
    import osipc_systemd

    import osipc

    wanted = {
        os.path.dirname(os.path.abspath(sys.executable)),
        os.path.realpath(sys.executable),
        os.path.realpath(sys.prefix),
        os.path.realpath(sys.base_prefix),
        os.path.dirname(os.path.realpath(osipc.__file__)),
        os.path.dirname(os.path.realpath(osipc_systemd.__file__)),
    }
    closed = set()
    for path in wanted:
        parts = path.split("/")
        for end in range(2, len(parts) + 1):
            directory = "/".join(parts[:end])
            try:
                st = os.stat(directory)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode) and not st.st_mode & stat.S_IXOTH:
                closed.add(directory)
    return sorted(closed)


@pytest.fixture(autouse=True)
def _isolated(osipc_leak_check: None) -> None:
    """Every test: a private runtime dir, unique names, and a failure if it leaks."""


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``osipc-systemd ARGS`` as a real subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "osipc_systemd", *args],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
        env=env,
        cwd=tempfile.gettempdir(),
    )


@pytest.fixture
def cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    return run_cli


class UserManager:
    """A ``systemd --user`` in private mount and PID namespaces; see the module docstring."""

    def __init__(self) -> None:
        self.root = tempfile.mkdtemp(prefix="osipc-sd-")
        # both on the tmpfs /run of the manager's namespace: only visible in there
        self.runtime = f"/run/user/{os.geteuid()}"
        self.mqueue = "/run/osipc-test/mqueue"
        self.config = os.path.join(self.root, "config")
        self.unit_dir = os.path.join(self.config, "systemd", "user")
        for path in (self.unit_dir, os.path.join(self.root, "home")):
            os.makedirs(path, mode=0o700)
        self.env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": os.path.join(self.root, "home"),
            "XDG_CONFIG_HOME": self.config,
            "XDG_DATA_HOME": os.path.join(self.root, "data"),
            "XDG_RUNTIME_DIR": self.runtime,
            "LANG": "C.UTF-8",
        }
        self.log = os.path.join(self.root, "manager.log")
        # an empty default target: none of the stock user units (dbus.socket, gpg-agent
        # sockets, ...) start, so parallel managers sharing the cgroup tree never meet
        with open(os.path.join(self.unit_dir, "osipc-test.target"), "w") as target:
            target.write("[Unit]\nDescription=osipc-systemd tests\n")
        self._proc: subprocess.Popen[bytes] | None = None
        self._lifeline = -1
        self.init_pid = 0

    def start(self) -> None:
        lifeline, self._lifeline = os.pipe()
        with open(self.log, "wb") as log:
            self._proc = subprocess.Popen(
                [
                    "unshare",
                    "--mount",
                    "--pid",
                    "--fork",
                    "--mount-proc",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    _MANAGER_SCRIPT,
                    SYSTEMD,
                    self.runtime,
                    self.mqueue,
                    *_closed_directories(),
                ],
                env=self.env,
                stdin=lifeline,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        os.close(lifeline)
        deadline = time.monotonic() + START_TIMEOUT
        while not self.init_pid:
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the namespace did not start: {self.log_tail()}")
            self.init_pid = _child_of(self._proc.pid)
            time.sleep(0.01)
        while True:
            done = self.systemctl("show", "-p", "SystemState", "--value", check=False)
            if done.stdout.strip() in ("running", "degraded"):
                return
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"its namespace exited with status {self._proc.returncode}: {self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"systemd --user did not come up within {START_TIMEOUT:g} s "
                    f"({done.stdout.strip() or done.stderr.strip()}): {self.log_tail()}"
                )
            time.sleep(0.05)

    def log_tail(self) -> str:
        try:
            with open(self.log, encoding="utf-8", errors="replace") as handle:
                return " | ".join(handle.read().strip().splitlines()[-5:]) or "no output"
        except OSError:
            return "no output"

    def command(
        self,
        *argv: str,
        check: bool = True,
        timeout: float = COMMAND_TIMEOUT,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the manager's namespaces, with its environment (plus ``env``)."""
        done = subprocess.run(
            ["nsenter", "-t", str(self.init_pid), "-m", "-p", "--", *argv],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}"
            )
        return done

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.command("systemctl", "--user", "--no-pager", *args, check=check)

    def show(self, unit: str) -> dict[str, str]:
        keys = "ActiveState,SubState,Result,StatusText,MainPID,LoadState"
        out = self.systemctl("show", "-p", keys, unit).stdout
        return dict(line.partition("=")[::2] for line in out.splitlines() if "=" in line)

    def wait_for(
        self, unit: str, ready: Callable[[dict[str, str]], bool], timeout: float = 10.0
    ) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            state = self.show(unit)
            if ready(state):
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"{unit} did not get there within {timeout:g} s: {state}")
            time.sleep(0.05)

    def close(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if self._lifeline >= 0:
            os.close(self._lifeline)  # SIGTERM: a clean exit stops every unit
            self._lifeline = -1
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        if proc.poll() is None:
            # killing the namespace's init kills everything in it
            for pid in (self.init_pid, proc.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            proc.wait(timeout=10)
        self._proc = None
        shutil.rmtree(self.root, ignore_errors=True)


def _child_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as handle:
            children = handle.read().split()
    except OSError:
        return 0
    return int(children[0]) if children else 0


def _manager_unavailable() -> str | None:
    """Why no manager can run here at all (the tests then skip), or None."""
    if os.geteuid() != 0:
        return "needs root: a systemd --user manager in private mount and PID namespaces"
    if not os.access(SYSTEMD, os.X_OK):
        return f"needs systemd ({SYSTEMD} is missing)"
    return None


def _manager_broken() -> str | None:
    """What stops a manager on a machine that has root and systemd (the tests then fail)."""
    for tool in ("unshare", "nsenter", "setpriv", "systemctl", "systemd-run"):
        if shutil.which(tool) is None:
            return f"{tool} is not on PATH"
    if not os.path.isdir("/run"):
        return "/run is missing (a tmpfs is mounted on it)"
    return None


@pytest.fixture(scope="session")
def manager() -> Iterator[UserManager]:
    """As root with systemd installed these tests must run: anything that stops the
    manager is a failure, never a skip, so a broken machine cannot pass by skipping."""
    unavailable = _manager_unavailable()
    if unavailable:
        pytest.skip(unavailable)
    broken = _manager_broken()
    if broken:
        pytest.fail(f"root and systemd are here, but the test manager cannot run: {broken}")
    instance = UserManager()
    try:
        try:
            instance.start()
        except (RuntimeError, OSError) as exc:
            pytest.fail(f"root and systemd are here, but systemd --user did not start: {exc}")
        yield instance
    finally:
        instance.close()


class Session:
    """One test's units on the shared manager: installed, started, and always stopped."""

    def __init__(self, manager: UserManager, log_dir: str) -> None:
        self.manager = manager
        self.log = os.path.join(log_dir, "services.log")
        # services start from the manager's clean environment: let them import what we do
        self.environment = [f"{key}={os.environ[key]}" for key in _PASSED if key in os.environ]
        self._units: list[str] = []
        self._files: list[str] = []

    def install(self, files: dict[str, str]) -> None:
        for name, text in files.items():
            path = os.path.join(self.manager.unit_dir, name)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
            self._files.append(path)
            self._units.append(name)
        self.manager.systemctl("daemon-reload")

    def install_dir(self, directory: str) -> list[str]:
        files = {}
        for name in sorted(os.listdir(directory)):
            with open(os.path.join(directory, name), encoding="utf-8") as handle:
                files[name] = handle.read()
        self.install(files)
        return list(files)

    def run(self, unit: str, argv: Sequence[str], *options: str) -> None:
        """``systemd-run --user --unit UNIT OPTIONS ARGV`` (options: -p ..., --socket-property)."""
        self._units += [f"{unit}.service", f"{unit}.socket"]
        passed = [f"--setenv={item}" for item in self.environment]
        try:
            self.manager.command(
                "systemd-run",
                "--user",
                "--quiet",
                "--unit",
                unit,
                "-p",
                f"StandardOutput=append:{self.log}",
                "-p",
                f"StandardError=append:{self.log}",
                *passed,
                *options,
                *argv,
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- service output\n{self.service_log()}") from None

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.manager.systemctl(*args, check=check)

    def client(
        self,
        code: str,
        *args: str,
        user: int | None = None,
        group: int | None = None,
        env: dict[str, str] | None = None,
    ) -> str:
        """Run ``code`` as a separate Python process beside the manager's services (its
        namespaces and environment: XDG_RUNTIME_DIR=%t, so osipc's runtime dir is
        %t/osipc, plus ``env``), as ``user`` and ``group`` (no other groups) if given;
        its stdout, or AssertionError with its output and the services'."""
        passed = dict(item.split("=", 1) for item in self.environment)
        prefix = []
        if user is not None:
            gid = user if group is None else group
            prefix = ["setpriv", f"--reuid={user}", f"--regid={gid}", "--clear-groups"]
        done = self.manager.command(
            *prefix,
            sys.executable,
            "-c",
            textwrap.dedent(code),
            *args,
            check=False,
            env={**passed, **(env or {})},
        )
        if done.returncode != 0:
            raise AssertionError(
                f"client exited {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n"
                f"{done.stderr}\n--- service output\n{self.service_log()}"
            )
        return done.stdout

    def service_log(self) -> str:
        try:
            with open(self.log, encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except OSError:
            return ""

    def close(self) -> None:
        if self._units:
            self.manager.systemctl("stop", *self._units, check=False)
            self.manager.systemctl("reset-failed", *self._units, check=False)
        for path in self._files:
            os.unlink(path)
        if self._files:
            self.manager.systemctl("daemon-reload", check=False)


@pytest.fixture
def systemd(manager: UserManager, tmp_path: object) -> Iterator[Session]:
    session = Session(manager, str(tmp_path))
    try:
        yield session
    finally:
        session.close()
