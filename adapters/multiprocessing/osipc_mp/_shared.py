"""Value and Array: ctypes objects in an ``osipc.SharedMemory`` block, found by name.

Layout of ``shm://NAME``: a 32-byte header, then the data (as ctypes lays it out)::

    magic b"omp2" | kind (0 Value, 1 Array) | code | 2 spare | count | item size | layout

``code`` is the ctypes type code ('i', 'd', ...) of a simple type, or 'S' (structure),
'U' (union), 'A' (ctypes array); ``layout`` is a 16-byte digest of the type's complete
layout (field names, types, offsets), so two processes agree on a structure without
sharing its class. The magic is written last, so a block that has it is initialised.
Creating takes the lock ``sem://NAME`` *before* the block exists, and every process that
finds the block missing or without its magic takes the same lock before looking again:
so the initial value is applied exactly once, by the creator, and a creator that dies
half-way (its lock released by the kernel) is finished by the next process that opens it.
"""

from __future__ import annotations

import ctypes
import hashlib
import operator
import os
import struct
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from types import TracebackType
from typing import Any, Union

import osipc
from osipc_mp._common import Block, attach_block, check_name, create_block, finalizer, quietly
from osipc_mp._synchronize import Lock, RLock

HEADER = struct.Struct("=4sBcHII16s")
MAGIC = b"omp2"
DATA = 32  # the data's offset: aligned for every ctypes type
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


def _layout(ctype: Any, where: str) -> str:
    """A text that two processes' ctypes types share only if their memory layouts match.

    Raises:
        osipc.InvalidArgument: the type is or holds a pointer, or is not a ctypes type.
    """
    pointer = osipc.InvalidArgument(
        f"{where} is or holds a pointer, which means nothing in another process; "
        "share numbers, characters, and structures or arrays of them"
    )
    if not isinstance(ctype, type):
        raise osipc.InvalidArgument(f"{where}: expected a ctypes type, got {ctype!r}")
    if issubclass(ctype, ctypes._SimpleCData):
        code = getattr(ctype, "_type_", None)
        if not isinstance(code, str) or code in _POINTERS:
            raise pointer
        swapped = "" if ctype in (getattr(ctype, "__ctype_le__", ctype),) else ">"
        return swapped + code
    if issubclass(ctype, (ctypes.Structure, ctypes.Union)):
        fields = []
        for field in getattr(ctype, "_fields_", ()):
            name, ftype = field[0], field[1]
            bits = f":{field[2]}" if len(field) > 2 else ""
            info = getattr(ctype, name)
            layout = _layout(ftype, f"{where}.{name}")
            fields.append(f"{name}={layout}{bits}@{info.offset}+{info.size}")
        kind = "S" if issubclass(ctype, ctypes.Structure) else "U"
        return f"{kind}{ctypes.sizeof(ctype)}{{{','.join(fields)}}}"
    if issubclass(ctype, ctypes.Array):
        return f"[{ctype._length_}]{_layout(ctype._type_, where + '[]')}"
    if issubclass(ctype, (ctypes._Pointer, ctypes._CFuncPtr)):  # type: ignore[attr-defined]
        raise pointer
    raise osipc.InvalidArgument(f"{where}: {ctype!r} is not a ctypes data type")


class _Type:
    """A ctypes type as stored in the header: its code and layout digest."""

    def __init__(self, typecode_or_type: object) -> None:
        ctype: Any
        if isinstance(typecode_or_type, str):
            ctype = TYPECODES.get(typecode_or_type)
            if ctype is None:
                raise osipc.InvalidArgument(
                    f"unknown typecode {typecode_or_type!r}; use one of "
                    f"{', '.join(map(repr, TYPECODES))} or a ctypes type such as "
                    "ctypes.c_int or a ctypes.Structure"
                )
        else:
            ctype = typecode_or_type
        layout = _layout(ctype, getattr(ctype, "__name__", repr(ctype)))
        self.ctype: Any = ctype
        if issubclass(ctype, ctypes._SimpleCData):
            self.code = ctype._type_
        elif issubclass(ctype, ctypes.Structure):
            self.code = "S"
        elif issubclass(ctype, ctypes.Union):
            self.code = "U"
        else:
            self.code = "A"
        self.digest = hashlib.blake2b(layout.encode(), digest_size=16).digest()
        self.size = ctypes.sizeof(ctype)
        self.fields: frozenset[str] = frozenset(
            field[0] for field in getattr(ctype, "_fields_", ())
        )


def _create_or_finish(url: str, kind: int, ctype: _Type, count: int | None, initial: Any) -> Block:
    """With the creation lock held: the block, created, or completed if a creator died
    before writing its header (the initial value, then the header, magic last)."""
    if count is None:
        block = Block(url, create=False)
        if block[:4] != MAGIC:
            block.close()
            raise osipc.TransportError(
                f"{url} was never initialised (its creator died creating it); pass the size "
                "or initializer to create it here, or remove it with osipc_mp.unlink()"
            )
        return block
    size = DATA + max(1, ctype.size * count)
    block = create_block(url, size)
    if block[:4] == MAGIC:
        return block
    if block[:DATA] != bytes(DATA) or len(block) != size:
        found = bytes(block[:4])
        block.close()  # not ours to overwrite: only a creator that died leaves a zero header
        older = " (made by an older osipc_mp)" if found == b"omp1" else ""
        raise osipc.InvalidArgument(
            f"{url} exists but holds no osipc_mp Value or Array of this size{older}; choose "
            "another name, or remove it (osipc_mp.unlink) if it is a leftover"
        )
    data = (ctype.ctype * count).from_buffer(block, DATA)
    if initial is None:
        ctypes.memset(ctypes.addressof(data), 0, ctypes.sizeof(data))
    else:
        ctypes.memmove(ctypes.addressof(data), ctypes.addressof(initial), ctypes.sizeof(data))
    del data  # a live ctypes view would keep the block from closing
    code = ctype.code.encode("ascii")
    HEADER.pack_into(block, 0, b"\0\0\0\0", kind, code, 0, count, ctype.size, ctype.digest)
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


def _check(block: osipc.SharedMemory, kind: int, ctype: _Type, count: int | None) -> int:
    """The item count, after checking the block holds what the caller asked for."""
    _, found_kind, code, _, found_count, itemsize, digest = HEADER.unpack_from(block, 0)
    found_type = code.decode("ascii", "replace")
    kinds = ("a Value", "an Array")
    if found_kind != kind or digest != ctype.digest or itemsize != ctype.size:
        what = kinds[found_kind] if found_kind in (VALUE, ARRAY) else "something else"
        same = " with another layout" if found_type == ctype.code else ""
        raise osipc.InvalidArgument(
            f"{block.url} holds {what} of type code {found_type!r}{same} ({itemsize} bytes "
            f"each), not {kinds[kind]} of {ctype.ctype.__name__}; use the same type in every "
            "process"
        )
    if count is not None and count != found_count:
        raise osipc.InvalidArgument(
            f"{block.url} holds {found_count} items, not {count}; pass the same size in every "
            "process, or None to attach to it as it is"
        )
    if len(block) < DATA + itemsize * found_count:
        raise osipc.InvalidArgument(f"{block.url} is shorter than its header says")
    return int(found_count)


def _lock_for(name: str, lock: object) -> tuple[Lock | None, bool]:
    """(the lock to use, whether this object made it) for the stdlib's ``lock=``."""
    if lock is True:
        return RLock(name), True
    if lock is False:
        return None, False
    if isinstance(lock, Lock):
        return lock, False
    raise TypeError(
        f"lock must be True, False or an osipc_mp.Lock/RLock, got {lock!r}: other processes "
        "must find the lock by name (a multiprocessing.Lock only reaches the children its "
        "creator starts)"
    )


class _Shared:
    """What Value and Array have in common: the block, its lock, and the ctypes object."""

    def __init__(
        self,
        name: str,
        what: str,
        kind: int,
        ctype: _Type,
        *,
        count: int | None,
        initial: Any,
        lock: LockArg,
    ) -> None:
        """``initial``: a ctypes object of the block's data size, copied in at creation
        (None: zeros)."""
        self.name = check_name(name, what)
        self.url = f"shm://{name}"
        self.type = ctype
        self.lock, self.own_lock = _lock_for(name, lock)
        self.passed_lock = None if self.own_lock else self.lock
        self.block: Block | None = None
        self.obj: Any = None
        try:
            self.block = self._open(kind, count, initial)
            self.count = _check(self.block, kind, ctype, count)
        except BaseException:
            self.close()
            raise
        self.obj = (
            ctype.ctype.from_buffer(self.block, DATA)
            if kind == VALUE
            else (ctype.ctype * self.count).from_buffer(self.block, DATA)
        )

    def _open(self, kind: int, count: int | None, initial: Any) -> Block:
        block = attach_block(self.url)
        if block is not None:
            if block[:4] == MAGIC:
                return block
            block.close()
        guard = osipc.Lock(f"sem://{self.name}")
        try:
            _take_creation_lock(guard, self.name)
            try:
                return _create_or_finish(self.url, kind, self.type, count, initial)
            finally:
                guard.release()
        finally:
            guard.close()

    def get_lock(self) -> Lock:
        if self.lock is None:
            raise AttributeError(f"{self.name!r} was opened with lock=False: it has no lock")
        return self.lock

    def guard(self) -> AbstractContextManager[Any]:
        """What to hold around one access: the lock, or nothing with lock=False."""
        if self.obj is None:
            raise osipc.Closed(f"{self.url} is closed")
        return nullcontext() if self.lock is None else self.lock

    def close(self) -> None:
        """Unmap and close the lock (if it is this object's own). Raises BufferError if
        ctypes objects from ``get_obj()`` still point into the block."""
        self.obj = None  # the ctypes view pins the mapping
        if self.block is not None:
            self.block.close()
        if self.own_lock and self.lock is not None:
            self.lock.close()

    def finish(self) -> None:
        """The finalizer: close quietly (at exit, views may still exist: the kernel
        unmaps the block with the process)."""
        quietly(self.close)

    def unlink(self) -> None:
        for url in (self.url, f"sem://{self.name}"):
            osipc.unlink(url, missing_ok=True)

    def reduce_lock(self) -> LockArg:
        """What ``lock=`` reopens this object's lock in another process."""
        if self.passed_lock is not None:
            return self.passed_lock
        return self.lock is not None


class _Synchronized:
    """``get_lock()``, ``get_obj()``, and ``with obj:`` taking the lock, as the stdlib's
    synchronized wrappers; plus ``close()`` and ``unlink()``."""

    _shared: _Shared

    def _start(self, shared: _Shared) -> None:
        object.__setattr__(self, "_shared", shared)
        object.__setattr__(self, "_finalizer", finalizer(self, _Shared.finish, shared))

    @property
    def name(self) -> str:
        return self._shared.name

    def get_lock(self) -> Lock:
        """The lock (an RLock unless one was passed). Raises AttributeError with lock=False."""
        return self._shared.get_lock()

    def get_obj(self) -> Any:
        """The ctypes object itself, unsynchronised; drop it before ``close()``."""
        return self._shared.obj

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
        Done by itself at exit and when the object is garbage collected.

        Raises:
            BufferError: ctypes objects from ``get_obj()`` (or items of an array of
                structures) are still alive.
        """
        self._shared.close()
        self._finalizer.detach()  # type: ignore[attr-defined]

    def unlink(self) -> None:
        """Remove ``shm://NAME`` and ``sem://NAME``; this process's mapping stays usable."""
        self._shared.unlink()


class Value(_Synchronized):
    """``multiprocessing.Value`` by name: ``Value("counter", "i", 0)`` in every process.

    ``typecode_or_type`` is a typecode ('i', 'd', 'c', ...), a ctypes simple type, or a
    ``ctypes.Structure``/``Union`` (of numbers, characters, arrays and structures: no
    pointers); ``args`` are its initial value, used only by the process that creates it:
    a later ``Value("counter", "i", 0)`` attaches to the same number, whatever it is now.
    ``.value`` (a structure: its fields, ``v.x``) reads and writes under the lock, as the
    stdlib; ``v.value += 1`` is two steps, so hold ``v.get_lock()`` around it.
    ``lock=False`` gives no lock (the name ``sem://NAME`` still exists: creation uses it
    once); ``lock=`` an ``osipc_mp.Lock``/``RLock`` shares that lock (a
    ``multiprocessing.Lock`` cannot reach unrelated processes: TypeError).

    Raises:
        osipc.InvalidArgument: an unknown typecode, a pointer type, or the name holds
            another type (compared by layout, not by class name).
    """

    def __init__(
        self, name: str, typecode_or_type: object, *args: Any, lock: LockArg = True
    ) -> None:
        ctype = _Type(typecode_or_type)
        initial = ctype.ctype(*args)  # bad arguments fail here, before anything is created
        self._start(_Shared(name, "Value", VALUE, ctype, count=1, initial=initial, lock=lock))

    @property
    def value(self) -> Any:
        shared = self._shared
        if shared.type.code in "SUA" and "value" not in shared.type.fields:
            raise AttributeError("value")  # __getattr__ says what to use
        with shared.guard():
            return shared.obj.value

    @value.setter
    def value(self, new: Any) -> None:
        with self._shared.guard():
            self._shared.obj.value = new

    def __getattr__(self, attr: str) -> Any:
        shared = self.__dict__.get("_shared")
        if shared is not None and attr in shared.type.fields:
            with shared.guard():
                return getattr(shared.obj, attr)
        if attr == "value" and shared is not None:
            raise AttributeError(
                f"a Value of {shared.type.ctype.__name__} has no .value (as in the stdlib): "
                "use its fields (v.x) or get_obj()"
            )
        raise AttributeError(f"'osipc_mp.Value' object has no attribute {attr!r}")

    def __setattr__(self, attr: str, new: Any) -> None:
        shared = self.__dict__.get("_shared")
        if shared is not None and attr in shared.type.fields:
            with shared.guard():
                setattr(shared.obj, attr, new)
            return
        object.__setattr__(self, attr, new)

    def __reduce__(self) -> tuple[Any, ...]:
        # the other process attaches by name; the initial value no longer matters
        shared = self._shared
        return (_reopen_value, (shared.name, shared.type.ctype, shared.reduce_lock()))

    def __repr__(self) -> str:
        obj = self._shared.obj
        shown = "closed" if obj is None else repr(obj)
        return f"<osipc_mp.Value {self.name!r} {shown}>"


def _reopen_value(name: str, ctype: Any, lock: LockArg) -> Value:
    return Value(name, ctype, lock=lock)


class Array(_Synchronized):
    """``multiprocessing.Array`` by name: ``Array("grid", "d", 10)`` or
    ``Array("grid", "d", [0.5, 1.5])``.

    ``size_or_initializer`` sizes it (zeros) or gives its items (anything with ``len()``
    whose items the ctypes type takes: a list, ``range``, bytes, a numpy array, tuples for
    a structure type), used only by the process that creates it; every process must pass
    the same size (or ``None``: attach to the existing array, whatever its size;
    ``osipc.NotFound`` if there is none). Indexing, slicing, ``len`` and, for typecode 'c',
    ``.value`` and ``.raw`` work as in the stdlib, each access under the lock; an item of
    an array of structures is a view into the array, not locked, as in the stdlib.

    Raises:
        osipc.InvalidArgument: an unknown typecode, or the name holds another type or size.
    """

    def __init__(
        self,
        name: str,
        typecode_or_type: object,
        size_or_initializer: Any,
        *,
        lock: LockArg = True,
    ) -> None:
        ctype = _Type(typecode_or_type)
        count: int | None
        initial: Any = None
        given = size_or_initializer
        if given is None:
            count = None
        elif isinstance(given, bool):
            raise TypeError("size_or_initializer must be a size or a sequence, not a bool")
        elif not hasattr(given, "__len__") and hasattr(given, "__index__"):
            count = operator.index(given)  # an int, or a numpy integer
            if count < 0:
                raise osipc.InvalidArgument(f"an Array size must be >= 0, got {count}")
        elif hasattr(given, "__len__"):
            count = len(given)
            # as multiprocessing.sharedctypes.RawArray; bad items fail before anything exists
            initial = (ctype.ctype * count)(*given)
        else:
            raise TypeError(
                "size_or_initializer must be a size, a sized iterable of items (a list, "
                f"range, bytes, numpy array, ...) or None, got {given!r}"
            )
        self._start(_Shared(name, "Array", ARRAY, ctype, count=count, initial=initial, lock=lock))

    def __len__(self) -> int:
        return self._shared.count

    def __getitem__(self, index: Any) -> Any:
        with self._shared.guard():
            return self._shared.obj[index]

    def __iter__(self) -> Iterator[Any]:
        """The items as they are now (one snapshot, taken under the lock)."""
        with self._shared.guard():
            return iter(list(self._shared.obj))

    def __setitem__(self, index: Any, new: Any) -> None:
        with self._shared.guard():
            self._shared.obj[index] = new

    def _text_only(self, attribute: str) -> None:
        if self._shared.type.ctype is not ctypes.c_char:
            raise AttributeError(f"'{attribute}' exists only for arrays of typecode 'c'")

    @property
    def value(self) -> bytes:
        """Typecode 'c': the bytes up to the first NUL."""
        self._text_only("value")
        with self._shared.guard():
            return bytes(self._shared.obj.value)

    @value.setter
    def value(self, new: bytes) -> None:
        self._text_only("value")
        with self._shared.guard():
            self._shared.obj.value = new

    @property
    def raw(self) -> bytes:
        """Typecode 'c': every byte."""
        self._text_only("raw")
        with self._shared.guard():
            return bytes(self._shared.obj.raw)

    @raw.setter
    def raw(self, new: bytes) -> None:
        self._text_only("raw")
        with self._shared.guard():
            self._shared.obj.raw = new

    def __reduce__(self) -> tuple[Any, ...]:
        shared = self._shared
        return (_reopen_array, (shared.name, shared.type.ctype, shared.reduce_lock()))

    def __repr__(self) -> str:
        obj = self._shared.obj
        shown = "closed" if obj is None else repr(obj[:])
        return f"<osipc_mp.Array {self.name!r} {shown}>"


def _reopen_array(name: str, ctype: Any, lock: LockArg) -> Array:
    return Array(name, ctype, None, lock=lock)
