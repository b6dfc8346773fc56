"""Names, timeouts, pickling, state blocks and finalizers shared by the look-alikes."""

from __future__ import annotations

import errno
import math
import pickle
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable

import osipc

# osipc allows 200 characters; the longest suffix added here is "--space".
NAME_MAX = 190
SEP = "--"  # between a name and the suffix of a companion object: never in a user's name
TRANSPORTS = ("shm", "mq")
TRANSPORT_CODES = {"shm": 1, "mq": 2}
# Options that apply to every kernel object (the others go to the channels only).
COMMON_OPTIONS = ("mode", "trust_existing")
CREATION_WAIT = 10.0  # seconds to wait for another process that is creating an object


def check_name(name: object, what: str) -> str:
    """``name`` if it can name an object here; the characters are osipc's to judge."""
    if not isinstance(name, str):
        raise TypeError(f"{what} name must be a str such as 'jobs', got {type(name).__name__}")
    if not 1 <= len(name) <= NAME_MAX:
        raise osipc.InvalidURL(
            f"{what} name {name!r} must be 1-{NAME_MAX} characters (osipc_mp adds suffixes "
            "such as '--a' and '--state' to osipc's 200-character limit)"
        )
    if SEP in name:
        raise osipc.InvalidURL(
            f"{what} name {name!r} contains {SEP!r}, which osipc_mp keeps for the names of "
            f"the objects it adds (such as {name.split(SEP)[0] or 'NAME'}{SEP}state); "
            "use another name"
        )
    return name


def companion(scheme: str, name: str, suffix: str) -> str:
    """The URL of one of the objects osipc_mp adds to ``name``: ``scheme://NAME--suffix``."""
    return f"{scheme}://{name}{SEP}{suffix}"


def check_transport(transport: object) -> str:
    if transport not in TRANSPORTS:
        raise osipc.InvalidArgument(
            f"transport must be one of {', '.join(map(repr, TRANSPORTS))}, got {transport!r}"
        )
    return str(transport)


def channel_options(options: dict[str, Any], what: str) -> dict[str, Any]:
    """The osipc options for a channel; creation itself is osipc_mp's to decide."""
    for refused in ("create", "exclusive", "codec"):
        if refused in options:
            raise osipc.InvalidArgument(
                f"{what} does not take {refused}=: it opens the name, creating what is missing, "
                "and pickles (see the osipc_mp docs)"
            )
    return dict(options)


def common_options(options: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in options.items() if key in COMMON_OPTIONS}


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

    def slice(self, most: float) -> float:
        """The time left, but at most ``most`` (for waits that look around now and then)."""
        left = self.remaining()
        return most if left is None else min(left, most)

    def expired(self) -> bool:
        return self.end is not None and time.monotonic() >= self.end


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


# -- blocks ------------------------------------------------------------------------------


class Block(osipc.SharedMemory):
    """``osipc.SharedMemory`` that closes quietly when it is garbage collected.

    A Value's finalizer cannot unmap its block while ctypes objects from ``get_obj()``
    still point into it (at exit, say); the block is then collected after the last of
    them, and closes without the ResourceWarning a stdlib object would not give either.
    """

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def attach_block(url: str) -> Block | None:
    """The block if it exists with a size, else None (missing, or its creator is sizing it:
    the caller then takes the creation lock and looks again)."""
    try:
        return Block(url, create=False)
    except osipc.NotFound:
        return None
    except osipc.TransportError as exc:
        if type(exc) is osipc.TransportError:  # 0 bytes: its creator is sizing it
            return None
        raise


def create_block(url: str, size: int, **common: Any) -> Block:
    """With the creation lock held: the block, created (zero-filled) or as it is."""
    try:
        return Block(url, size=size, exclusive=True, **common)
    except osipc.AlreadyExists:
        try:
            return Block(url, **common)
        except osipc.TransportError as exc:
            if type(exc) is not osipc.TransportError:
                raise
            osipc.unlink(url, missing_ok=True)  # 0 bytes: a creator died before sizing it
            return Block(url, size=size, exclusive=True, **common)


@contextmanager
def holding(lock: osipc.Lock, what: str, timeout: float = CREATION_WAIT) -> Iterator[None]:
    """Hold ``lock`` (a short critical section), with an error that names ``what``."""
    try:
        lock.acquire(timeout=timeout)
    except osipc.Timeout:
        holder = lock.holder
        raise osipc.Timeout(
            f"{what}: {lock.url} was held for {timeout:g} s"
            + (f" by process {holder}" if holder else "")
            + " (it is held only for moments; is that process stopped?)"
        ) from None
    try:
        yield
    finally:
        lock.release()


class StateBlock:
    """A small ``osipc.SharedMemory`` of 64-bit words, ``shm://NAME--state``, that says
    what ``NAME`` is (a Queue or a Pipe, over which transport, ...) and holds its shared
    counters. Word 0 is the kind's magic, written last by the creator (under the lock
    ``sem://NAME--state``), so a block that has it is complete; words 1..``len(config)``
    are the configuration every opener must agree on.

    Kept open (mapped) for the life of the object, so ``osipc gc`` sees it in use.
    ``size`` is in words (each kind has its own; a block of another size is refused).
    ``create=False``: a missing block is ``osipc.NotFound``, never made.
    """

    def __init__(
        self,
        name: str,
        magic: bytes,
        config: tuple[int, ...],
        describe: Callable[[tuple[int, ...]], str],
        init: Callable[[memoryview], None] | None = None,
        *,
        size: int = 32,
        create: bool = True,
        **common: Any,
    ) -> None:
        self.size = size
        self.url = companion("shm", name, "state")
        self.block: Block | None = None
        self.words: memoryview | None = None
        self.lock = osipc.Lock(companion("sem", name, "state"), create=create, **common)
        try:
            block = attach_block(self.url)
            if block is not None and bytes(block[:8]) == b"\0" * 8:
                block.close()  # its creator is still writing it
                block = None
            if block is None and not create:
                raise osipc.NotFound(f"{self.url} does not exist", errno=errno.ENOENT)
            if block is None:
                with holding(self.lock, f"creating {name!r}"):
                    block = create_block(self.url, size * 8, **common)
                    self.block = block
                    if len(block) == size * 8 and bytes(block[:8]) == b"\0" * 8:
                        words = memoryview(block).cast("Q")
                        self.words = words
                        for index in range(1, size):  # a creator may have died half-way
                            words[index] = 0
                        for index, value in enumerate(config, 1):
                            words[index] = value
                        if init is not None:
                            init(words)
                        words[0] = int.from_bytes(magic, "little")  # last: it is complete
            self.block = block
            found = bytes(block[:8])
            if found != magic:
                what = KINDS.get(found, "something other than an osipc_mp object")
                raise osipc.InvalidArgument(
                    f"{name!r} is {what}, not {KINDS.get(magic, magic)}; use another name, or "
                    "remove it with osipc_mp.unlink() if it is a leftover"
                )
            if len(block) != size * 8:
                raise osipc.InvalidArgument(
                    f"{self.url} is {len(block)} bytes, not the {size * 8} of this version of "
                    "osipc_mp; remove it with osipc_mp.unlink() (or use another name)"
                )
            if self.words is None:
                self.words = memoryview(block).cast("Q")
            existing = tuple(self.words[1 : 1 + len(config)])
            if existing != config:
                raise osipc.InvalidArgument(
                    f"{name!r} exists as {describe(existing)}, not {describe(config)}: open it "
                    "the same way in every process (or unlink it to start again)"
                )
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.words is not None:
            self.words.release()
            self.words = None
        if self.block is not None:
            self.block.close()
            self.block = None
        self.lock.close()


MAGIC_QUEUE = b"ompQueu1"
MAGIC_PIPE = b"ompPipe1"
KINDS = {MAGIC_QUEUE: "a Queue", MAGIC_PIPE: "a Pipe"}


def waiting_frames(rx: osipc.Receiver[Any]) -> Iterator[bytes | None]:
    """What ``rx``'s channel holds now, taken in order without waiting (None for a plain
    osipc end-of-stream); the iteration ends when the channel is empty."""
    while True:
        try:
            yield rx.recv(timeout=0)
        except osipc.EndOfStream:
            yield None
        except osipc.Timeout:
            return


# -- lifetime ----------------------------------------------------------------------------


def quietly(*closers: Callable[[], object]) -> None:
    """Call each closer, ignoring failures: for finalizers at exit or garbage collection,
    where there is nobody to report to (and modules may be half torn down)."""
    for close in closers:
        try:
            close()
        except Exception:
            pass


def finalizer(owner: object, close: Callable[..., None], *args: Any) -> weakref.finalize[Any, Any]:
    """Run ``close(*args)`` once: at ``owner``'s explicit close, when it is garbage
    collected, or at interpreter exit, whichever comes first, as stdlib objects close
    their descriptors: quietly, without ResourceWarning. ``close`` must not refer to
    ``owner`` (it would never be collected)."""
    return weakref.finalize(owner, close, *args)
