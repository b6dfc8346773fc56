"""Value and Array: ctypes objects in an ``osipc.SharedMemory`` block, found by name.

Layout of ``shm://NAME``: a 16-byte header, then the data (as ctypes lays it out)::

    magic b"omp1" | kind (0 Value, 1 Array) | ctypes type code | 2 spare | count | item size

The magic is written last, so a block that has it is initialised. Creating takes the
lock ``sem://NAME`` *before* the block exists, and every process that finds the block
missing or without its magic takes the same lock before looking again: so the initial
value is applied exactly once, by the creator, and a creator that dies half-way (its
lock released by the kernel) is finished by the next process that opens the name.
"""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from types import TracebackType
from typing import Any, Union

import osipc
from osipc_mp._common import check_name
from osipc_mp._synchronize import Lock, RLock

HEADER = struct.Struct("=4sBcHII")
MAGIC = b"omp1"
DATA = 16  # the data's offset: aligned for every ctypes simple type
VALUE, ARRAY = 0, 1

# The stdlib's table (multiprocessing.sharedctypes.typecode_to_type).
TYPECODES: dict[str, Any] = {
    "c": ctypes.c_char,
    "u": ctypes.c_wchar,
    "b": ctypes.c_byte,
    "B": ctypes.c_ubyte,
    "h": ctypes.c_short,
    "H": ctypes.c_ushort,
    "i": ctypes.c_int,
    "I": ctypes.c_uint,
    "l": ctypes.c_long,
    "L": ctypes.c_ulong,
    "q": ctypes.c_longlong,
    "Q": ctypes.c_ulonglong,
    "f": ctypes.c_float,
    "d": ctypes.c_double,
}
_POINTERS = {"z", "Z", "P", "O"}  # an address means nothing in another process

LockArg = Union[bool, Lock]


def simple_type(typecode_or_type: object) -> Any:
    """The ctypes type for a typecode ('i', 'd', 'c', ...) or a ctypes simple type."""
    if isinstance(typecode_or_type, str):
        ctype = TYPECODES.get(typecode_or_type)
        if ctype is None:
            raise osipc.InvalidArgument(
                f"unknown typecode {typecode_or_type!r}; use one of "
                f"{', '.join(map(repr, TYPECODES))} or a ctypes type such as ctypes.c_int"
            )
        return ctype
    code = getattr(typecode_or_type, "_type_", None)
    if (
        isinstance(typecode_or_type, type)
        and issubclass(typecode_or_type, ctypes._SimpleCData)
        and isinstance(code, str)
        and code not in _POINTERS
    ):
        return typecode_or_type
    raise osipc.InvalidArgument(
        f"expected a typecode such as 'i' or a ctypes number or character type such as "
        f"ctypes.c_double, got {typecode_or_type!r} (structures and pointers cannot be shared "
        "by name)"
    )


def _attach(url: str) -> osipc.SharedMemory | None:
    """The block if it exists and is initialised, else None (the caller takes the lock)."""
    try:
        block = osipc.SharedMemory(url, create=False)
    except osipc.NotFound:
        return None
    except osipc.TransportError as exc:
        if type(exc) is osipc.TransportError:  # 0 bytes: its creator is sizing it
            return None
        raise
    if block[:4] == MAGIC:
        return block
    block.close()
    return None


def _create_or_finish(
    url: str, kind: int, ctype: Any, count: int | None, initial: Any
) -> osipc.SharedMemory:
    """With the creation lock held: the block, created, or completed if a creator died
    before writing its header (the initial value, then the header, magic last)."""
    if count is None:
        block = osipc.SharedMemory(url, create=False)
        if block[:4] != MAGIC:
            block.close()
            raise osipc.TransportError(
                f"{url} was never initialised (its creator died creating it); pass the size "
                "or initializer to create it here, or remove it with osipc_mp.unlink()"
            )
        return block
    size = DATA + ctypes.sizeof(ctype) * count
    try:
        block = osipc.SharedMemory(url, size=size, exclusive=True)
    except osipc.AlreadyExists:
        try:
            block = osipc.SharedMemory(url)
        except osipc.TransportError as exc:
            if type(exc) is not osipc.TransportError:
                raise
            osipc.unlink(url)  # 0 bytes: a creator died before sizing it
            block = osipc.SharedMemory(url, size=size, exclusive=True)
    if block[:4] == MAGIC:
        return block
    if block[:DATA] != bytes(DATA) or len(block) != size:
        block.close()  # not ours to overwrite: only a creator that died leaves a zero header
        raise osipc.InvalidArgument(
            f"{url} exists but holds no osipc_mp Value or Array of this size; choose another "
            "name, or remove it (osipc_mp.unlink) if it is a leftover"
        )
    data = (ctype * count).from_buffer(block, DATA)
    if initial is None:
        ctypes.memset(ctypes.addressof(data), 0, ctypes.sizeof(data))
    else:
        ctypes.memmove(ctypes.addressof(data), ctypes.addressof(initial), ctypes.sizeof(data))
    del data  # a live ctypes view would keep the block from closing
    code = ctype._type_.encode("ascii")
    HEADER.pack_into(block, 0, b"\0\0\0\0", kind, code, 0, count, ctypes.sizeof(ctype))
    block[:4] = MAGIC  # after everything else: attachers trust a block that has it
    return block


def _take_creation_lock(guard: osipc.Lock, name: str) -> None:
    try:
        guard.acquire(timeout=0)
        return
    except osipc.Timeout:
        pass
    if guard.holder == os.getpid():
        raise RuntimeError(
            f"this process holds the lock {name!r} and {name!r} does not exist yet: creating "
            "it needs that lock; create the Value or Array before taking its lock"
        )
    guard.acquire()  # another process is creating it: a short wait


def _check(block: osipc.SharedMemory, kind: int, ctype: Any, count: int | None) -> int:
    """The item count, after checking the block holds what the caller asked for."""
    _, found_kind, code, _, found_count, itemsize = HEADER.unpack_from(block, 0)
    found_type = code.decode("ascii", "replace")
    kinds = ("a Value", "an Array")
    if found_kind != kind or found_type != ctype._type_ or itemsize != ctypes.sizeof(ctype):
        what = kinds[found_kind] if found_kind in (VALUE, ARRAY) else "something else"
        raise osipc.InvalidArgument(
            f"{block.url} holds {what} of type code {found_type!r} ({itemsize} bytes each), "
            f"not {kinds[kind]} of {ctype.__name__}; use the same typecode in every process"
        )
    if count is not None and count != found_count:
        raise osipc.InvalidArgument(
            f"{block.url} holds {found_count} items, not {count}; pass the same size in every "
            "process, or None to attach to it as it is"
        )
    if len(block) < DATA + itemsize * found_count:
        raise osipc.InvalidArgument(f"{block.url} is shorter than its header says")
    return int(found_count)


class _Shared:
    """What Value and Array have in common: the block, its lock, and the ctypes object."""

    def __init__(
        self,
        name: str,
        what: str,
        kind: int,
        ctype: Any,
        *,
        count: int | None,
        initial: Any,
        lock: LockArg,
    ) -> None:
        """``initial``: a ctypes object of the block's data size, copied in at creation
        (None: zeros)."""
        self.name = check_name(name, what)
        self.url = f"shm://{name}"
        self._type = ctype
        if lock is True:
            self._lock: Lock | None = RLock(name)
        elif lock is False:
            self._lock = None
        elif isinstance(lock, Lock):
            self._lock = lock
        else:
            raise TypeError(f"lock must be True, False or an osipc_mp Lock/RLock, got {lock!r}")
        self._own_lock = lock is True
        try:
            self._block = self._open(kind, count, initial)
            self.count = _check(self._block, kind, self._type, count)
        except BaseException:
            self._close_lock()
            if getattr(self, "_block", None) is not None:
                self._block.close()
            raise
        self._obj: Any = (
            self._type.from_buffer(self._block, DATA)
            if kind == VALUE
            else (self._type * self.count).from_buffer(self._block, DATA)
        )

    def _open(self, kind: int, count: int | None, initial: Any) -> osipc.SharedMemory:
        block = _attach(self.url)
        if block is not None:
            return block
        guard = osipc.Lock(f"sem://{self.name}")
        try:
            _take_creation_lock(guard, self.name)
            try:
                return _create_or_finish(self.url, kind, self._type, count, initial)
            finally:
                guard.release()
        finally:
            guard.close()

    def get_lock(self) -> Lock:
        if self._lock is None:
            raise AttributeError(f"{self.name!r} was opened with lock=False: it has no lock")
        return self._lock

    def guard(self) -> AbstractContextManager[Any]:
        """What to hold around one access: the lock, or nothing with lock=False."""
        if self._obj is None:
            raise osipc.Closed(f"{self.url} is closed")
        return nullcontext() if self._lock is None else self._lock

    def _close_lock(self) -> None:
        if self._own_lock and self._lock is not None:
            self._lock.close()

    def close(self) -> None:
        self._obj = None  # the ctypes view pins the mapping
        self._close_lock()
        self._block.close()

    def unlink(self) -> None:
        for url in (self.url, f"sem://{self.name}"):
            osipc.unlink(url, missing_ok=True)


class _Synchronized:
    """``get_lock()``, ``get_obj()``, and ``with obj:`` taking the lock, as the stdlib's
    synchronized wrappers; plus ``close()`` and ``unlink()``."""

    _shared: _Shared

    @property
    def name(self) -> str:
        return self._shared.name

    def get_lock(self) -> Lock:
        """The lock (an RLock unless one was passed). Raises AttributeError with lock=False."""
        return self._shared.get_lock()

    def get_obj(self) -> Any:
        """The ctypes object itself, unsynchronised; drop it before ``close()``."""
        return self._shared._obj

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        return self.get_lock().acquire(block, timeout)

    def release(self) -> None:
        self.get_lock().release()

    def __enter__(self) -> bool:
        return self.get_lock().__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.get_lock().release()

    def close(self) -> None:
        """Unmap and close the lock; the object stays for other processes (``unlink()``).

        Raises:
            BufferError: references from ``get_obj()`` are still alive.
        """
        self._shared.close()

    def unlink(self) -> None:
        """Remove ``shm://NAME`` and ``sem://NAME``; this process's mapping stays usable."""
        self._shared.unlink()


class Value(_Synchronized):
    """``multiprocessing.Value`` by name: ``Value("counter", "i", 0)`` in every process.

    ``typecode_or_type`` is a typecode ('i', 'd', 'c', ...) or a ctypes simple type;
    ``args`` are its initial value, used only by the process that creates it: a later
    ``Value("counter", "i", 0)`` attaches to the same number, whatever it is now.
    ``.value`` reads and writes under the lock, as the stdlib; ``v.value += 1`` is two
    steps, so hold ``v.get_lock()`` around it. ``lock=False`` gives no lock (the name
    ``sem://NAME`` still exists: creation uses it once).

    Raises:
        osipc.InvalidArgument: an unknown typecode, or the name holds another type.
    """

    def __init__(
        self, name: str, typecode_or_type: object, *args: Any, lock: LockArg = True
    ) -> None:
        ctype = simple_type(typecode_or_type)
        initial = ctype(*args)  # bad arguments fail here, before anything is created
        self._shared = _Shared(name, "Value", VALUE, ctype, count=1, initial=initial, lock=lock)

    @property
    def value(self) -> Any:
        with self._shared.guard():
            return self._shared._obj.value

    @value.setter
    def value(self, new: Any) -> None:
        with self._shared.guard():
            self._shared._obj.value = new

    def __reduce__(self) -> tuple[Any, ...]:
        # the other process attaches by name; the initial value no longer matters
        return (_reopen_value, (self.name, self._shared._type, self._shared._lock is not None))

    def __repr__(self) -> str:
        obj = self._shared._obj
        shown = "closed" if obj is None else repr(obj)
        return f"<osipc_mp.Value {self.name!r} {shown}>"


def _reopen_value(name: str, ctype: Any, lock: bool) -> Value:
    return Value(name, ctype, lock=lock)


class Array(_Synchronized):
    """``multiprocessing.Array`` by name: ``Array("grid", "d", 10)`` or
    ``Array("grid", "d", [0.5, 1.5])``.

    ``size_or_initializer`` sizes it (zeros) or gives its items, used only by the process
    that creates it; every process must pass the same size (or ``None``: attach to the
    existing array, whatever its size; ``osipc.NotFound`` if there is none). Indexing,
    slicing, ``len`` and, for typecode 'c', ``.value`` and ``.raw`` work as in the stdlib,
    each access under the lock.

    Raises:
        osipc.InvalidArgument: an unknown typecode, or the name holds another type or size.
    """

    def __init__(
        self,
        name: str,
        typecode_or_type: object,
        size_or_initializer: int | Sequence[Any] | bytes | None,
        *,
        lock: LockArg = True,
    ) -> None:
        ctype = simple_type(typecode_or_type)
        count: int | None
        initial: Any = None
        if size_or_initializer is None:
            count = None
        elif isinstance(size_or_initializer, int) and not isinstance(size_or_initializer, bool):
            if size_or_initializer < 0:
                raise osipc.InvalidArgument(
                    f"an Array size must be >= 0, got {size_or_initializer}"
                )
            count = size_or_initializer
        elif isinstance(size_or_initializer, (Sequence, bytes)):
            count = len(size_or_initializer)
            # as multiprocessing.sharedctypes.RawArray; bad items fail before anything exists
            initial = (ctype * count)(*size_or_initializer)
        else:
            raise TypeError(
                "size_or_initializer must be a size, a sequence of items or None, "
                f"got {size_or_initializer!r}"
            )
        self._shared = _Shared(name, "Array", ARRAY, ctype, count=count, initial=initial, lock=lock)

    def __len__(self) -> int:
        return self._shared.count

    def __getitem__(self, index: Any) -> Any:
        with self._shared.guard():
            return self._shared._obj[index]

    def __iter__(self) -> Iterator[Any]:
        """The items as they are now (one snapshot, taken under the lock)."""
        with self._shared.guard():
            return iter(list(self._shared._obj))

    def __setitem__(self, index: Any, new: Any) -> None:
        with self._shared.guard():
            self._shared._obj[index] = new

    def _text_only(self, attribute: str) -> None:
        if self._shared._type is not ctypes.c_char:
            raise AttributeError(f"'{attribute}' exists only for arrays of typecode 'c'")

    @property
    def value(self) -> bytes:
        """Typecode 'c': the bytes up to the first NUL."""
        self._text_only("value")
        with self._shared.guard():
            return bytes(self._shared._obj.value)

    @value.setter
    def value(self, new: bytes) -> None:
        self._text_only("value")
        with self._shared.guard():
            self._shared._obj.value = new

    @property
    def raw(self) -> bytes:
        """Typecode 'c': every byte."""
        self._text_only("raw")
        with self._shared.guard():
            return bytes(self._shared._obj.raw)

    @raw.setter
    def raw(self, new: bytes) -> None:
        self._text_only("raw")
        with self._shared.guard():
            self._shared._obj.raw = new

    def __reduce__(self) -> tuple[Any, ...]:
        return (_reopen_array, (self.name, self._shared._type, self._shared._lock is not None))

    def __repr__(self) -> str:
        obj = self._shared._obj
        shown = "closed" if obj is None else repr(obj[:])
        return f"<osipc_mp.Array {self.name!r} {shown}>"


def _reopen_array(name: str, ctype: Any, lock: bool) -> Array:
    return Array(name, ctype, None, lock=lock)
