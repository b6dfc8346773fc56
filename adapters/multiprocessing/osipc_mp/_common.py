"""Names, timeouts and pickling shared by the look-alikes."""

from __future__ import annotations

import math
import pickle
import time
from typing import Any

import osipc

# osipc allows 200 characters; the longest suffix added here is ".maxsize".
NAME_MAX = 190
TRANSPORTS = ("shm", "mq")


def check_name(name: object, what: str) -> str:
    """``name`` if it can name an object here; the characters are osipc's to judge."""
    if not isinstance(name, str):
        raise TypeError(f"{what} name must be a str such as 'jobs', got {type(name).__name__}")
    if not 1 <= len(name) <= NAME_MAX:
        raise osipc.InvalidURL(
            f"{what} name {name!r} must be 1-{NAME_MAX} characters (osipc_mp adds suffixes "
            "such as '.a' and '.slots' to osipc's 200-character limit)"
        )
    return name


def check_transport(transport: object) -> str:
    if transport not in TRANSPORTS:
        raise osipc.InvalidArgument(
            f"transport must be one of {', '.join(map(repr, TRANSPORTS))}, got {transport!r}"
        )
    return str(transport)


def wait_time(block: bool, timeout: float | None) -> float | None:
    """The stdlib's (block, timeout) as an osipc timeout: None blocks, 0 polls.

    ``block=False`` ignores ``timeout``, as ``queue.Queue`` does; a negative timeout is
    the same ValueError the stdlib raises.
    """
    if not block:
        return 0.0
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be None or a number of seconds, got {timeout!r}")
    if math.isnan(timeout) or timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")
    return float(timeout)


class Deadline:
    """The time left of one wait that spans several blocking calls."""

    __slots__ = ("end",)

    def __init__(self, timeout: float | None) -> None:
        self.end = None if timeout is None else time.monotonic() + timeout

    def remaining(self) -> float | None:
        if self.end is None:
            return None
        return max(0.0, self.end - time.monotonic())


def dumps(obj: object) -> bytes:
    """A pickle, as osipc's ``pickle`` codec makes it, so its receivers can read ours."""
    try:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # PicklingError, TypeError, AttributeError, RecursionError
        raise osipc.EncodeError(f"cannot pickle {type(obj).__name__}: {exc}") from exc


def loads(data: bytes, url: str) -> Any:
    """Unpickle a message: this runs code chosen by whoever sent it."""
    try:
        return pickle.loads(data)
    except Exception as exc:  # UnpicklingError, or a class this process cannot import
        raise osipc.DecodeError(
            f"{url}: a message is not a pickle this process can load: {exc}",
            codec="pickle",
            data=data,
        ) from exc
