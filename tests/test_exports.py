"""The public surface: sorted __all__, exactly the public names, and the registry table."""

from __future__ import annotations

import os
import sys

import pytest

import osipc
import osipc.abc
import osipc.aio
import osipc.testing
from osipc import _registry


@pytest.mark.parametrize("module", [osipc, osipc.abc, osipc.aio, osipc.testing])
def test_all_is_sorted_and_exact(module: object) -> None:
    exported = list(module.__all__)  # type: ignore[attr-defined]
    assert exported == sorted(exported), "keep __all__ sorted"
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and getattr(value, "__module__", "").startswith("osipc")
        and not isinstance(value, type(os))
    }
    assert public <= set(exported) | {"annotations"}, f"not exported: {public - set(exported)}"
    for name in exported:
        assert hasattr(module, name), name


def test_public_objects_come_from_private_modules() -> None:
    for name in osipc.__all__:
        value = getattr(osipc, name)
        module = getattr(value, "__module__", "osipc._x")
        # DESIGN §1 puts the synchronisation objects in the public osipc.sync
        assert module.startswith("osipc._") or module == "osipc.sync", (
            f"{name} is defined in {module}, not a private module"
        )


def test_registry_is_sorted_and_complete() -> None:
    assert list(_registry.TRANSPORTS) == sorted(_registry.TRANSPORTS)
    assert set(_registry.INSTALL_HINTS) == set(_registry.TRANSPORTS)
    for scheme, target in _registry.TRANSPORTS.items():
        module, _, cls = target.partition(":")
        assert module.startswith("osipc.transports.") and cls
        try:
            loaded = _registry.get_transport(scheme).scheme
        except osipc.TransportUnavailable as exc:  # e.g. zmq+* where pyzmq is absent
            loaded = exc.hint
        assert loaded in (scheme, _registry.INSTALL_HINTS[scheme])


def test_transport_modules_are_imported_only_when_used() -> None:
    from _helpers import peer

    out = peer(
        """
        import sys, osipc
        print(sorted(m for m in sys.modules if m.startswith("osipc.transports.")))
        try:
            osipc.info("fifo://nothing-here")
        except osipc.NotFound:
            pass
        print(sorted(m for m in sys.modules if m.startswith("osipc.transports.")))
        """
    ).stdout.splitlines()
    assert out[0] == "[]"
    assert out[1] == "['osipc.transports.fifo']"


def test_py_typed_is_shipped() -> None:
    assert os.path.exists(os.path.join(os.path.dirname(osipc.__file__), "py.typed"))


@pytest.mark.skipif(os.environ.get("OSIPC_EXPECT_INSTALLED") != "1", reason="only under tox")
def test_tests_run_against_the_installed_wheel() -> None:
    assert "site-packages" in osipc.__file__, osipc.__file__
    assert not os.path.exists(os.path.join(os.path.dirname(osipc.__file__), "..", "tox.ini"))


@pytest.mark.parametrize("module", ["zmq", "msgpack"])
def test_promised_extras_import(module: str) -> None:
    if module not in os.environ.get("OSIPC_REQUIRE", "").split(","):
        pytest.skip(f"this env does not promise {module} (OSIPC_REQUIRE)")
    __import__(module)  # must import, never skip, where promised
    assert module in sys.modules
