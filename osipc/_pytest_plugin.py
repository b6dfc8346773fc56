"""The ``osipc`` pytest plugin (registered through the ``pytest11`` entry point).

Fixtures:
    osipc_runtime     a fresh, private runtime dir (OSIPC_RUNTIME_DIR), removed afterwards.
    osipc_names       ``osipc_names("jobs")`` -> a name unique to this test and process,
                      safe in parallel tox envs that share the kernel's namespaces.
    osipc_leak_check  fails the test if it leaves a kernel object behind: files in the
                      runtime dir (FIFOs, records of objects never unlinked), /dev/shm and
                      mqueue entries carrying the test's name prefix, SysV objects with
                      the keys of its names. Leaks are removed after being reported.

Use them for every test with::

    @pytest.fixture(autouse=True)
    def _isolated(osipc_leak_check): ...

``OSIPC_REQUIRE=zmq,msgpack`` (comma-separated) turns any skipped test whose reason names
one of those into a failure, so an env that promises a dependency cannot pass by
skipping when the install is broken.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Generator, Iterator

import pytest

import osipc
from osipc import _inventory
from osipc.testing import kernel_snapshot, remove_leftover, runtime_leftovers

_counter = itertools.count()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, object, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    required = [name for name in os.environ.get("OSIPC_REQUIRE", "").split(",") if name]
    if not (report.skipped and required):
        return
    longrepr = report.longrepr
    reason = str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)
    promised = [name for name in required if name in reason]
    if promised:
        report.outcome = "failed"
        report.longrepr = (
            f"skipped, but this env promises {', '.join(promised)} (OSIPC_REQUIRE): {reason}"
        )


class NameFactory:
    """Hands out names ``PREFIX + stem + n``; remembers them for the leak check."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.issued: set[str] = set()
        self._n = itertools.count()

    def __call__(self, stem: str = "n") -> str:
        name = f"{self.prefix}{stem}{next(self._n)}"
        self.issued.add(name)
        return name


@pytest.fixture
def osipc_runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    # Short and under /tmp: zmq+ipc socket paths must stay under 107 bytes.
    path = tempfile.mkdtemp(prefix="osipc-t")
    os.chmod(path, 0o700)
    monkeypatch.setenv("OSIPC_RUNTIME_DIR", path)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


_session = os.urandom(3).hex()  # pids are recycled; a killed run's leftovers must not collide


@pytest.fixture
def osipc_names() -> NameFactory:
    return NameFactory(f"t{os.getpid()}{_session}x{next(_counter)}-")


@pytest.fixture
def osipc_leak_check(osipc_runtime: str, osipc_names: NameFactory) -> Iterator[None]:
    markers = {osipc_names.prefix}
    before = kernel_snapshot(markers, osipc_names.issued)
    yield
    after = kernel_snapshot(markers, osipc_names.issued)
    leaked = sorted(after.objects - before.objects)
    records = _inventory.load_records()
    files = runtime_leftovers(osipc_runtime)
    for entry in leaked:
        remove_leftover(entry)
    for record in records:
        try:
            osipc.unlink(f"{record['scheme']}://{record['name']}", missing_ok=True)
        except osipc.OsipcError:
            pass
    if leaked or files:
        shown = leaked + [os.path.relpath(f, osipc_runtime) for f in files]
        pytest.fail(
            "the test left kernel objects behind (now removed): " + ", ".join(shown),
            pytrace=False,
        )
