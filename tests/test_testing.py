"""osipc.testing's own guarantees: the leak check fails a leaking test."""

from __future__ import annotations

import pytest


def test_the_leak_check_fails_tests_that_leave_objects(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture(autouse=True)
        def _isolated(osipc_leak_check):
            yield
        """
    )
    pytester.makepyfile(
        """
        import os, osipc

        def test_leaks_a_fifo(osipc_names):
            osipc.receiver(f"fifo://{osipc_names('f')}").close()

        def test_leaks_a_queue(osipc_names):
            osipc.sender(f"mq://{osipc_names('q')}?maxmsg=1&msgsize=8").close()

        def test_leaks_shared_memory(osipc_names):
            open(f"/dev/shm/{osipc_names('s')}", "w").close()

        def test_cleans_up(osipc_names):
            url = f"mq://{osipc_names('c')}?maxmsg=1&msgsize=8"
            osipc.sender(url).close()
            osipc.unlink(url)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4, errors=3)
    result.stdout.fnmatch_lines(
        [
            "*left kernel objects behind (now removed): .meta/fifo/*.json*",
            "*left kernel objects behind (now removed): *.meta/mq/*.json*",
            "*left kernel objects behind (now removed): shm:t*s0*",
        ]
    )
    rerun = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", "cleans_up")
    rerun.assert_outcomes(passed=1)


def test_osipc_require_turns_a_skip_into_a_failure(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        """
        import pytest

        def test_needs_zmq():
            pytest.importorskip("no_such_zmq_binding")

        def test_needs_something_else():
            pytest.skip("no such thing here")
        """
    )
    monkeypatch.setenv("OSIPC_REQUIRE", "zmq")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1, skipped=1)
    result.stdout.fnmatch_lines(["*this env promises zmq (OSIPC_REQUIRE)*"])
    monkeypatch.delenv("OSIPC_REQUIRE")
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(skipped=2)
