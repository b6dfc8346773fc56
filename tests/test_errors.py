"""The error tree (DESIGN §5) and the mapping of every backend exception."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import pickle
from collections.abc import Callable

import posix_ipc
import pytest
import sysv_ipc
from _helpers import peer

import osipc
from osipc._errors import map_os_error
from osipc.transports._posix_ipc import POSIX_IPC_ERRORS, map_posix_ipc
from osipc.transports._sysv import SYSV_IPC_ERRORS, map_sysv_ipc

TREE = {
    osipc.InvalidArgument: (osipc.OsipcError, ValueError),
    osipc.InvalidURL: (osipc.InvalidArgument, ValueError),
    osipc.UnknownScheme: (osipc.InvalidURL,),
    osipc.TransportUnavailable: (osipc.OsipcError, ImportError),
    osipc.EncodeError: (osipc.OsipcError, ValueError),
    osipc.DecodeError: (osipc.OsipcError, ValueError),
    osipc.Unsupported: (osipc.OsipcError, io.UnsupportedOperation),
    osipc.Closed: (osipc.OsipcError, ValueError),
    osipc.EndOfStream: (osipc.OsipcError, EOFError),
    osipc.TransportError: (osipc.OsipcError, OSError),
    osipc.NotFound: (osipc.TransportError, FileNotFoundError),
    osipc.AlreadyExists: (osipc.TransportError, FileExistsError),
    osipc.PermissionDenied: (osipc.TransportError, PermissionError),
    osipc.Timeout: (osipc.TransportError, TimeoutError),
    osipc.Broken: (osipc.TransportError, BrokenPipeError),
    osipc.MessageTooLarge: (osipc.TransportError,),
    osipc.Overrun: (osipc.TransportError,),
}


@pytest.mark.parametrize(("cls", "parents"), TREE.items(), ids=lambda v: getattr(v, "__name__", ""))
def test_tree(cls: type, parents: tuple[type, ...]) -> None:
    for parent in parents:
        assert issubclass(cls, parent)
    assert cls.__doc__ and "\n" not in cls.__doc__.strip(), "one-line docstring"


def test_every_error_class_is_in_the_tree() -> None:
    exported = {getattr(osipc, n) for n in osipc.__all__}
    errors = {c for c in exported if isinstance(c, type) and issubclass(c, BaseException)}
    assert errors == set(TREE) | {osipc.OsipcError}


def test_transport_errors_keep_message_and_errno_and_pickle() -> None:
    exc = osipc.Timeout("mq://x: no message within 1 s", errno=errno.EAGAIN)
    assert str(exc) == "mq://x: no message within 1 s"
    assert exc.errno == errno.EAGAIN
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is osipc.Timeout and str(back) == str(exc) and back.errno == exc.errno
    big = pickle.loads(pickle.dumps(osipc.MessageTooLarge("too big", size=9, limit=8)))
    assert (big.size, big.limit, big.errno) == (9, 8, errno.EMSGSIZE)
    hint = pickle.loads(pickle.dumps(osipc.TransportUnavailable("no zmq", hint="pip x")))
    assert hint.hint == "pip x" and "pip x" in str(hint)
    dec = pickle.loads(pickle.dumps(osipc.DecodeError("bad", codec="json", data=b"\xff")))
    assert (dec.codec, dec.data) == ("json", b"\xff")


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (errno.ENOENT, osipc.NotFound),
        (errno.EEXIST, osipc.AlreadyExists),
        (errno.EACCES, osipc.PermissionDenied),
        (errno.EPERM, osipc.PermissionDenied),
        (errno.EAGAIN, osipc.Timeout),
        (errno.EPIPE, osipc.Broken),
        (errno.EMSGSIZE, osipc.MessageTooLarge),
        (errno.EBADF, osipc.Closed),
        (errno.ENOSPC, osipc.TransportError),
    ],
)
def test_os_errors_map_by_errno(code: int, cls: type) -> None:
    mapped = map_os_error(OSError(code, "boom"), "open fifo://x")
    assert type(mapped) is cls
    assert "open fifo://x" in str(mapped)


def test_every_posix_ipc_exception_class_is_mapped() -> None:
    exported = [
        value
        for value in vars(posix_ipc).values()
        if isinstance(value, type) and issubclass(value, BaseException)
    ]
    assert exported, "posix_ipc exports exception classes"
    missing = [cls.__name__ for cls in exported if cls not in POSIX_IPC_ERRORS]
    assert not missing, f"posix_ipc exceptions with no mapping: {missing}"
    for cls in exported:
        mapped = map_posix_ipc(cls("detail"), "doing x")
        assert isinstance(mapped, POSIX_IPC_ERRORS[cls]) and isinstance(mapped, osipc.OsipcError)
        assert "doing x" in str(mapped)


def test_posix_ipc_builtin_errors_are_mapped() -> None:
    assert isinstance(map_posix_ipc(ValueError("Invalid parameter(s)"), "x"), osipc.InvalidArgument)
    emfile = map_posix_ipc(
        OSError("This process already has the maximum number of files open"), "x"
    )
    assert isinstance(emfile, osipc.TransportError) and emfile.errno == errno.EMFILE


def test_every_sysv_ipc_exception_class_is_mapped() -> None:
    exported = [
        value
        for value in vars(sysv_ipc).values()
        if isinstance(value, type) and issubclass(value, BaseException)
    ]
    assert len(exported) >= 6, "sysv_ipc exports its exception classes"
    missing = [cls.__name__ for cls in exported if cls not in SYSV_IPC_ERRORS]
    assert not missing, f"sysv_ipc exceptions with no mapping: {missing}"
    for cls in exported:
        mapped = map_sysv_ipc(cls("detail"), "doing x")
        assert isinstance(mapped, SYSV_IPC_ERRORS[cls]) and isinstance(mapped, osipc.OsipcError)
        assert "doing x" in str(mapped) and "detail" in str(mapped)
    assert map_sysv_ipc(sysv_ipc.PermissionsError("no"), "x").errno == errno.EACCES
    assert isinstance(map_sysv_ipc(ValueError("bad"), "x"), osipc.InvalidArgument)
    assert isinstance(map_sysv_ipc(OSError(errno.ENOSPC, "full"), "x"), osipc.TransportError)


def test_running_out_of_descriptors_is_an_osipc_error(url: Callable[..., str]) -> None:
    # With RLIMIT_NOFILE reached, every call that needs a descriptor says so in an osipc
    # error: pyzmq's context, the wake-up and fileno() descriptors, a semaphore's attach
    # (each once let its backend's exception out), and mq:// creation names the limit hit
    # (it once blamed RLIMIT_MSGQUEUE).
    names = {scheme: url(scheme) for scheme in ("sem", "mq", "fifo", "shm", "zmq+ipc")}
    code = """
        import json, os, resource, sys
        import osipc, osipc._registry
        names = json.loads(sys.argv[1])
        osipc.Semaphore(names["sem"]).close()  # exists: the call below attaches
        rx_mq, rx_fifo = osipc.receiver(names["mq"]), osipc.receiver(names["fifo"])
        calls = {
            "attach sem://": lambda: osipc.Semaphore(names["sem"], create=False),
            "mq:// fileno()": rx_mq.fileno,
            "fifo:// fileno()": rx_fifo.fileno,
            "create shm://": lambda: osipc.sender(names["shm"]),
            "create mq://": lambda: osipc.sender(names["mq"] + "x"),
        }
        try:  # (its module imported now: an import needs a descriptor too)
            osipc._registry.get_transport("zmq+ipc")
            calls["zmq+ipc:// receiver"] = lambda: osipc.receiver(names["zmq+ipc"])
        except osipc.TransportUnavailable:
            pass
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        filler = []
        try:
            while True:
                filler.append(os.open("/dev/null", os.O_RDONLY))
        except OSError:
            pass
        outcomes = {}
        for what, call in calls.items():
            try:
                call()
                outcomes[what] = "no error"
            except osipc.TransportError as exc:
                outcomes[what] = f"osipc: {exc}"
            except BaseException as exc:
                outcomes[what] = f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
        for fd in filler:
            os.close(fd)
        rx_mq.close(), rx_fifo.close()
        print(json.dumps(outcomes))
    """  # noqa: E501
    try:
        outcomes = json.loads(peer(code, json.dumps(names)).stdout)
    finally:
        for target in [*names.values(), names["mq"] + "x"]:
            with contextlib.suppress(osipc.TransportUnavailable):  # (zmq in no env of core)
                osipc.unlink(target, missing_ok=True)
    assert len(outcomes) >= 5
    for what, outcome in outcomes.items():
        assert outcome.startswith("osipc: "), f"{what}: {outcome}"
    assert "RLIMIT_MSGQUEUE" not in outcomes["create mq://"], outcomes["create mq://"]
