"""The ring channel: one implementation over any shared mapping (POSIX or SysV).

A ring is one shared segment: a header, a slot table (one cache line per attached
handle), and a data area of ``capacity`` bytes holding variable-size records that may
wrap around its end. Two kinds:

* **queue** (``osipc.sender`` / ``osipc.receiver``): many producers and many consumers;
  each message is delivered once. Producers append at ``head`` under the producers' lock,
  consumers take from ``tail`` under the consumers' lock.
* **broadcast** (``osipc.publisher`` / ``osipc.subscriber``): every subscriber reads every
  record published after it joined, at its own cursor, without a lock. With
  ``overflow=block`` the publisher waits for the slowest live subscriber; with
  ``overflow=error`` it never waits and a subscriber that fell more than a ring behind gets
  :class:`~osipc.Overrun` saying how many messages it missed, then continues.

**Commit protocol.** A record is written completely, then made visible by one aligned
8-byte store of ``head``; the counters beside it follow. A process killed at any instant
leaves either no new record or a whole one, never a torn one. Shared words are stored
through memoryviews cast to ``Q``/``I`` (one fixed-size ``memcpy``: one store), never with
``struct.pack_into``, which zero-fills its whole span before it writes the fields: readers
would glimpse a head of 0, and a process killed in between would leave it there.

**Robust locks.** The locks are semaphores (fast, but a dead holder never releases them).
A handle writes its *claim* into its own slot before it tries the semaphore and clears it
after releasing, so whoever holds a lock is always among its claimants. A waiter that
finds the lock taken while no claimant is alive, and no release happened while it looked
(the lock's generation word did not move), knows the holder is dead and takes the lock
over: the semaphore stays taken, the survivor now holds it. Checks run under a flock (the
kernel drops it with its owner) so two survivors never both take over. Liveness comes
from the backend (a lease the kernel releases on death).

**Waiting** is a futex on the word that changes: ``head`` for data, ``tail`` (or the
subscribers' generation) for space, the lock generation for the lock. Sleepers raise a
flag first; wakers read the flags after releasing (a full barrier), so no wake-up is lost;
sleeps are sliced so that even a flag lost to a race costs at most one slice of latency.

**The C part.** Where osipc/_ringc.c was compiled (setup.py; optional), a queue handle's
uncontended send, receive, batches and recv_into run there, one call each: the same steps
in the same order, several times cheaper. Everything else (waits, takeover, broadcast,
end-of-stream records) stays here, and so do equivalent pure-Python fast paths for where it
was not built or ``OSIPC_NO_ACCEL=1`` turns it off. Both interoperate on one ring.

Records are ``size:u32 kind:u32`` (queue) or ``size:u32 kind:u32 seq:u64`` (broadcast),
payload, padding to 8 (16) bytes. All words are native-endian; x86-64's store order makes
the commit visible only after the record (other architectures need barriers that CPython
cannot issue, so rings refuse them).
"""

from __future__ import annotations

import errno
import os
import platform
import struct
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal

from osipc import _accel, _futex
from osipc._abc import Capabilities, Frame, Receiver, Sender, Transport, waits
from osipc._address import (
    Address,
    CommonOptions,
    check_existing,
    option,
    parse_choice,
    parse_int,
    parse_size,
)
from osipc._codecs import Buffer, Codec
from osipc._deadline import SIGNAL_SLICE, Backoff, Deadline, check_timeout
from osipc._errors import (
    Broken,
    EndOfStream,
    InvalidArgument,
    MessageTooLarge,
    OsipcError,
    Overrun,
    Timeout,
    TransportError,
    TransportUnavailable,
    map_os_error,
)

MAGIC = b"OSIPCRNG"
VERSION = 2  # 2: sysv+shm's locks are semaphores inside the segment (OFF_TX_SEM, OFF_RX_SEM)
KIND_QUEUE, KIND_BROADCAST = 1, 2
KIND_NAMES = {KIND_QUEUE: "queue", KIND_BROADCAST: "broadcast"}
OVERFLOW_BLOCK, OVERFLOW_ERROR = 0, 1
REC_DATA, REC_END = 1, 2
ROLE_SENDER, ROLE_RECEIVER, ROLE_PUBLISHER, ROLE_SUBSCRIBER = 1, 2, 3, 4
CLAIM_TX, CLAIM_RX = 1, 2

HEADER = struct.Struct("@8sIIQIIQ")  # magic, version, kind, capacity, slots, overflow, data
OFF_HEAD = 64  # head, tx_gen, produced, seq, reserve        (written by producers)
OFF_TX_GEN = 72
PROD = struct.Struct("@QQQQQ")
OFF_TAIL = 128  # tail, rx_gen, consumed                      (written by consumers)
OFF_RX_GEN = 136
CONS = struct.Struct("@QQQ")
OFF_FLAGS = 192  # data, space, tx-lock, rx-lock waiters      (written only by sleepers)
OFF_SUB_GEN = 256  # broadcast: bumped by subscribers a blocked publisher waits on
OFF_TX_SEM = 320  # a backend without named semaphores keeps its locks' sem_t here
OFF_RX_SEM = 384
OFF_SLOTS = 512
SLOT_SIZE = 64
SLOT = struct.Struct("@IIQQQII")  # pid, claim, start, cursor, seq, sleeping, role
SLOT_CLAIM, SLOT_CURSOR, SLOT_ROLE = 4, 16, 36
Q = struct.Struct("@Q")
U32 = struct.Struct("@I")
# Indices of the shared words in the header's 8-byte (W_) and 4-byte (H_) views.
W_HEAD, W_TX_GEN, W_PRODUCED, W_SEQ, W_RESERVE = 8, 9, 10, 11, 12
W_TAIL, W_RX_GEN, W_CONSUMED = 16, 17, 18
W_SUB_GEN = 32
H_FLAG_DATA, H_FLAG_SPACE, H_FLAG_TX, H_FLAG_RX = 48, 49, 50, 51
SLOT_PID, SLOT_START, SLOT_SEQ, SLOT_SLEEPING = 0, 8, 24, 32
REC = struct.Struct("@II")
BREC = struct.Struct("@IIQ")

DEFAULT_CAPACITY = 1 << 20
DEFAULT_SLOTS = 64
INIT_WAIT = 2.0  # how long an attacher waits for a creator to finish initialising
SLICE = 0.02  # longest sleep before re-checking state a lost wake-up could hide
# A wait polls this long before it sleeps (spin=, in microseconds, changes it; 0: never).
# A message or room that comes sooner then costs neither side a system call, and the
# other side no wake-up latency: measured here, it lifts 64 KiB and 1 MiB streams by
# about half. Longer spins only burn CPU while a peer is idle.
DEFAULT_SPIN = 20e-6
TAKEOVER_AFTER = 0.001  # a lock unchanged this long gets its holder's liveness checked

SUPPORTED = platform.machine().lower() in ("x86_64", "amd64", "i686", "i386", "x86")


def _load_accelerator() -> tuple[Any, str]:
    """(the C part or None, why not): see the module docstring."""
    module, status = _accel.load("_ringc")
    layout = (
        4,  # the locking and commit protocol's version (_ringc.c's PROTOCOL)
        OFF_HEAD, OFF_TX_GEN, OFF_HEAD + 16, OFF_TAIL, OFF_RX_GEN, OFF_TAIL + 16,
        H_FLAG_DATA * 4, H_FLAG_SPACE * 4, H_FLAG_TX * 4, H_FLAG_RX * 4,
        REC.size, REC_DATA, CLAIM_TX, CLAIM_RX,
    )  # fmt: skip
    if module is not None and tuple(module.LAYOUT) != layout:  # pragma: no cover - stale build
        return None, "built for another ring layout (a stale build): reinstall osipc"
    return module, status


ACCEL, ACCEL_STATUS = _load_accelerator()


def require_support(url: str) -> None:
    if not SUPPORTED:
        raise TransportUnavailable(
            f"{url}: ring channels rely on x86's store order, and this is "
            f"{platform.machine()}; use mq:// or fifo:// here"
        )
    if not _futex.available():
        raise TransportUnavailable(f"{url}: no futex system call known for {platform.machine()}")


def data_offset(slots: int) -> int:
    return (OFF_SLOTS + slots * SLOT_SIZE + 4095) & ~4095


def segment_size(capacity: int, slots: int) -> int:
    return data_offset(slots) + capacity


def record_header(kind: int) -> int:
    return 16 if kind == KIND_BROADCAST else 8


def max_message(capacity: int, kind: int) -> int:
    return min(capacity - record_header(kind), 0xFFFFFFFF)  # a record's size is 32 bits


def write_header(mm: Any, kind: int, capacity: int, slots: int, overflow: int) -> None:
    """Initialise a fresh (zeroed) segment; the magic goes last, so attachers that see
    it see a complete header."""
    HEADER.pack_into(mm, 0, b"\0" * 8, VERSION, kind, capacity, slots, overflow, data_offset(slots))
    mm[0:8] = MAGIC


def read_header(mm: Any) -> tuple[int, int, int, int, int] | None:
    """(kind, capacity, slots, overflow, data offset), or None while the magic is absent."""
    magic, version, kind, capacity, slots, overflow, data = HEADER.unpack_from(mm, 0)
    if magic != MAGIC:
        return None
    if version != VERSION or kind not in KIND_NAMES:
        raise TransportError(
            f"unsupported ring format (version {version}, kind {kind}; this osipc reads "
            f"version {VERSION}): another osipc version made it; remove it (osipc rm) once "
            "its users are gone, and create it again"
        )
    return kind, capacity, slots, overflow, data


def is_ring(mm: Any) -> bool:
    return len(mm) >= 8 and bytes(mm[0:8]) == MAGIC


def stats(mm: Any) -> dict[str, int]:
    """Numbers for ``osipc info``: queued messages and bytes, capacity. For a broadcast
    ring with overflow=block, queued means not yet read by the slowest live subscriber
    (those of overflow=error keep no cursor where others can see it)."""
    header = read_header(mm)
    if header is None:
        return {}
    kind, capacity, slots, overflow, data = header
    head, _, produced, seq, _ = PROD.unpack_from(mm, OFF_HEAD)
    tail, _, consumed = CONS.unpack_from(mm, OFF_TAIL)
    whole = len(mm) >= data + capacity
    if kind == KIND_QUEUE:
        depth = _queued(mm, data, capacity, tail, head, align=8) if whole else None
        return {
            "depth": max(0, produced - consumed) if depth is None else depth,
            "used": head - tail,
            "capacity": capacity,
            "slots": slots,
        }
    numbers = {"published": seq, "capacity": capacity, "slots": slots, "overflow": overflow}
    if overflow == OVERFLOW_BLOCK:
        slowest = min(_subscriber_cursors(mm, slots), default=head)
        numbers["used"] = head - slowest
        depth = _queued(mm, data, capacity, slowest, head, align=16) if whole else None
        if depth is not None:
            numbers["depth"] = depth
    return numbers


def _subscriber_cursors(mm: Any, slots: int) -> list[int]:
    """The cursors of the live subscribers (overflow=block rings keep them in slots)."""
    from osipc._inventory import process_alive

    cursors = []
    for index in range(slots):
        pid, _, start, cursor, _, _, role = SLOT.unpack_from(mm, OFF_SLOTS + index * SLOT_SIZE)
        if pid and role == ROLE_SUBSCRIBER and process_alive(pid, start or None):
            cursors.append(cursor)
    return cursors


def _queued(mm: Any, data: int, capacity: int, tail: int, head: int, *, align: int) -> int | None:
    """Messages between ``tail`` and ``head``, counted by walking their records (``align``:
    8 for queue records, 16 for broadcast ones; the counters can be off by a batch after a
    crash between a commit and its count); None if the walk does not land on ``head`` (a
    reader moved meanwhile)."""
    count, position = 0, tail
    extra = 15 if align == 8 else 31  # the record header (8 or 16 bytes) and the rounding
    while position < head and position - tail <= capacity:
        size = U32.unpack_from(mm, data + position % capacity)[0]
        position += (size + extra) & ~(align - 1)
        count += 1
    return count if position == head else None


def slot_word(index: int, field: int) -> int:
    """Index of an 8-byte field of slot ``index`` in the header's word view."""
    return (OFF_SLOTS + index * SLOT_SIZE + field) // 8


def slot_half(index: int, field: int) -> int:
    """Index of a 4-byte field of slot ``index`` in the header's half-word view."""
    return (OFF_SLOTS + index * SLOT_SIZE + field) // 4


def slot_pids(mm: Any, slots: int) -> list[tuple[int, int]]:
    """(slot, pid) of every slot in use, as recorded (liveness is the backend's word)."""
    used = []
    for index in range(slots):
        pid = U32.unpack_from(mm, OFF_SLOTS + index * SLOT_SIZE)[0]
        if pid:
            used.append((index, pid))
    return used


# -- options and capabilities ------------------------------------------------------------


def _parse_spin(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("expected microseconds to spin, e.g. 50")
    try:
        micros = float(value)
    except ValueError:
        raise ValueError("expected microseconds to spin, e.g. 50") from None
    if not 0 <= micros <= 1_000_000:
        raise ValueError("must be 0..1000000 microseconds")
    return micros / 1e6


def _parse_capacity(value: object) -> int:
    size = parse_size(value)
    if size < 4096:
        raise ValueError("must be at least 4096 bytes")
    if size > 1 << 40:
        raise ValueError("must be at most 1 TiB")
    return (size + 15) & ~15


@dataclass(frozen=True)
class RingOptions(CommonOptions):
    capacity: int = option(DEFAULT_CAPACITY, _parse_capacity, "data bytes at creation")
    slots: int = option(DEFAULT_SLOTS, parse_int(2, 4096), "most handles attached")
    spin: float = option(DEFAULT_SPIN, _parse_spin, "microseconds to poll before sleeping")
    overflow: str = option("block", parse_choice("block", "error"), "broadcast: block|error")


def capabilities(kind: int, capacity: int) -> Capabilities:
    return Capabilities(
        ordered=True,
        broadcast=kind == KIND_BROADCAST,
        selectable=False,
        max_message_size=max_message(capacity, kind),
        timeouts="native",
        end_of_stream=True,
        persistent=True,
    )


# -- backends ----------------------------------------------------------------------------


class RingBackend(ABC):
    """What a memory/semaphore backend gives a ring handle: the mapping, its header as
    8-byte ``words`` and 4-byte ``halves`` (the only way shared words are written), the
    address for futexes, this handle's slot, the locks, and liveness of other slots."""

    mm: Any
    words: Any
    halves: Any
    address: int
    slot: int
    kind: int
    capacity: int
    slots: int
    overflow: int
    data: int
    tx: ClaimLock
    rx: ClaimLock | None
    accel: Any  # the C part's view of a queue ring (ACCEL.Ring), or None

    @abstractmethod
    def alive(self, slot: int) -> bool:
        """True if the handle holding ``slot`` is alive (its process holds the lease)."""

    @abstractmethod
    def admin(self) -> AbstractContextManager[None]:
        """A short cross-process critical section the kernel releases if its holder dies."""

    @abstractmethod
    def close(self, in_child: bool) -> None:
        """Release the slot (unless ``in_child``: the parent still uses it) and unmap."""


class ClaimLock:
    """One of a ring's two locks: a semaphore made robust by claims against a holder that
    dies (see the module docstring).

    ``sem`` needs ``acquire(False) -> bool`` and ``release()``, like
    ``_multiprocessing.SemLock``; with an int ``handle`` (its ``sem_t*``) the C part takes
    it too. Threads sharing one handle take turns through ``local`` before they touch the
    semaphore: the claims protocol knows processes, not threads, and one thread must never
    take the lock over from another thread of its own handle. ``acquire``/``release`` take
    and drop ``local`` too; the handles' inlined fast paths do it themselves.
    """

    def __init__(
        self, sem: Any, backend: RingBackend, gen_word: int, flag_half: int, value: int
    ) -> None:
        self._sem = sem
        self._backend = backend
        self._words, self._halves = backend.words, backend.halves
        self._gen = gen_word
        self._flag = flag_half
        self._value = value
        self._claim = slot_half(backend.slot, SLOT_CLAIM)
        self._try = sem.acquire
        self.local = threading.Lock()
        self._stamp_next = int.from_bytes(os.urandom(4), "little")  # per lifetime of a slot
        self._stamp_tag = backend.slot << 1  # (the C part's stamps have the low bit set)

    def stamp(self) -> int:
        """A value for the lock's generation word that no store ever wrote before. A
        release moves the word by storing one, never by ``+= 1``: that read-modify-write,
        racing with the next holder's release, could put back a value a waiter had read,
        and the takeover rule would then mistake a live holder for a dead one. Called with
        ``local`` held."""
        self._stamp_next += 1
        return ((self._stamp_next << 13) | self._stamp_tag) & 0xFFFF_FFFF_FFFF_FFFF

    def enter(self, deadline: Deadline) -> None:
        """Take ``local`` within the deadline (Timeout if another thread keeps it), in
        slices: a signal handler due meanwhile runs (see SIGNAL_SLICE)."""
        while not self.local.acquire(True, deadline.slice(SIGNAL_SLICE)):
            if deadline.expired():
                raise Timeout(f"the ring's lock is busy {deadline.describe()} (another thread)")

    def fast(self) -> tuple[Any, Any, int, int]:
        """(try_acquire(False) -> bool, release(), claim index in ``halves``, claim value):
        the uncontended path, inlined by the handles; the rest goes through acquire()."""
        return self._try, self._sem.release, self._claim, self._value

    def accel_spec(self) -> tuple[Any, ...] | None:
        """The lock as the C part takes it: (semaphore whose ``handle`` is its sem_t*,
        claim byte offset, claim value), or None if it cannot (no such handle)."""
        if not isinstance(getattr(self._sem, "handle", None), int):
            return None  # not a _multiprocessing.SemLock: no sem_t* to hand over
        return self._sem, self._claim * 4, self._value

    def acquire(self, deadline: Deadline) -> None:
        self.enter(deadline)
        try:
            self._halves[self._claim] = self._value
            if not self._try(False):
                self._contended(deadline)
        except BaseException:
            self._halves[self._claim] = 0
            self.local.release()
            raise

    def release(self) -> None:
        # Post, move the generation, drop the claim, in this order: a waiter that finds
        # the claim gone then finds the generation moved too, and never takes over a lock
        # released under its eyes (it once did: two holders). The C part does the same.
        self._sem.release()
        self._words[self._gen] = self.stamp()
        self._halves[self._claim] = 0
        self.local.release()

    def _contended(self, deadline: Deadline) -> None:
        words, halves, claim = self._words, self._halves, self._claim
        address = self._backend.address + self._gen * 8
        gen = words[self._gen]
        moved = time.monotonic()  # when the lock last changed hands
        while True:
            left = deadline.remaining()
            # A healthy lock changes hands within microseconds; one that has not for a
            # while, or a caller out of time, gets its holder's liveness checked.
            if (left == 0 or time.monotonic() - moved >= TAKEOVER_AFTER) and (
                self._take_over_if_dead()
            ):
                return
            halves[self._flag] = 1  # wake me when it is released
            if self._try(False):
                return
            halves[claim] = 0  # a sleeper is not a candidate holder
            if left == 0:
                raise Timeout(f"the ring's lock is busy {deadline.describe()}")
            nap = TAKEOVER_AFTER if left is None else min(left, TAKEOVER_AFTER)
            _futex.wait(address, gen, nap)
            halves[claim] = self._value
            if self._try(False):
                return
            now = words[self._gen]
            if now != gen:
                gen, moved = now, time.monotonic()

    def _take_over_if_dead(self) -> bool:
        backend, words, halves = self._backend, self._words, self._halves
        with backend.admin():
            before = words[self._gen]
            if self._try(False):
                return True
            dead = []
            for index in range(backend.slots):
                if index == backend.slot:
                    continue
                claim = slot_half(index, SLOT_CLAIM)
                if halves[claim] != self._value:
                    continue
                if backend.alive(index):
                    return False  # the holder (or a passer-by) is alive: keep waiting
                dead.append(claim)
            if words[self._gen] != before:
                return False  # it was released meanwhile: the normal path will get it
            # Taken, no live claimant, no release while we looked: its holder is dead.
            # The semaphore stays taken; this handle holds the lock from now on.
            for claim in dead:
                halves[claim] = 0
            words[self._gen] = self.stamp()
            return True


class SegmentBackend(RingBackend):
    """The create/attach flow every segment-based backend shares (POSIX and SysV alike).

    Subclasses provide the segment (``_segment``), the mapping (``_map``), the companion
    semaphores (``_create_locks``/``_open_locks``/``_semaphores``), leases (``_claim_slot``,
    ``alive``), ``admin`` and the release of it all (``_release``).
    """

    record_kind = "shm"

    def __init__(self, address: Address, options: Any, codec: Any, kind: int, role: int) -> None:
        require_support(address.url or address.base_url)
        self._address = address
        self.mm: Any = None
        self.words: Any = None
        self.halves: Any = None
        self.slot = -1
        self._anchor: Any = None
        self.accel = None
        self._making = False  # this call created the segment and has not finished it
        try:
            self._open(options, codec, kind, role)
        except BaseException:
            making = self._making
            self.close(in_child=False)
            if making:  # never leave a half-made ring (and its semaphores) behind
                self._discard()
            raise

    # -- for subclasses ------------------------------------------------------------------

    @abstractmethod
    def _segment(self, options: Any, size: int) -> tuple[bool, int]:
        """Create (``size`` bytes) or attach: (created, actual size); owner checked."""

    @abstractmethod
    def _instance(self) -> str:
        """Which object the segment is, for its record (``_inventory.fd_instance``...)."""

    @abstractmethod
    def _map(self, size: int) -> Any:
        """A writable, sliceable buffer over the segment (slicing gives bytes)."""

    @abstractmethod
    def _create_locks(self, kind: int, options: Any) -> None:
        """Create the ring's semaphores (any stale ones of the name replaced)."""

    @abstractmethod
    def _open_locks(self, kind: int) -> None:
        """Open the semaphores of an existing ring."""

    @abstractmethod
    def _semaphores(self) -> tuple[Any, Any]:
        """The semaphores under the producers' and the consumers' lock (the second is
        unused by broadcast rings), once attached."""

    def _locks(self, kind: int) -> tuple[ClaimLock, ClaimLock | None]:
        """(producers' lock, consumers' lock or None for broadcast)."""
        tx_sem, rx_sem = self._semaphores()
        tx = ClaimLock(tx_sem, self, W_TX_GEN, H_FLAG_TX, CLAIM_TX)
        if kind != KIND_QUEUE:
            return tx, None
        return tx, ClaimLock(rx_sem, self, W_RX_GEN, H_FLAG_RX, CLAIM_RX)

    @abstractmethod
    def _claim_slot(self, index: int) -> bool:
        """Atomically take slot ``index`` if free; True if taken."""

    @abstractmethod
    def _release(self, in_child: bool) -> None:
        """Unmap and close what the subclass opened."""

    @abstractmethod
    def _discard(self) -> None:
        """Remove the segment and semaphores this handle created but could not finish
        (after ``_release``); errors are swallowed: the caller raises why it failed."""

    def _made(self) -> None:
        """The ring is made: header written, record kept. Default: nothing to say."""

    #: Whether an attacher found the segment only once its creator had finished with it
    #: (POSIX: the creator's flock): then a missing header is final, not to be waited for.
    settled = False

    # -- the flow ------------------------------------------------------------------------

    def _open(self, options: Any, codec: Any, kind: int, role: int) -> None:
        from osipc import _inventory
        from osipc._codecs import codec_name

        size = segment_size(options.capacity, options.slots)
        created, actual = self._segment(options, size)
        if created:
            self._making = True
            self._create_locks(kind, options)
            self.mm = self._map(size)
            overflow = OVERFLOW_ERROR if options.overflow == "error" else OVERFLOW_BLOCK
            write_header(self.mm, kind, options.capacity, options.slots, overflow)
            _inventory.write_record(
                self._address,
                kind=f"{self.record_kind}-{KIND_NAMES[kind]}",
                mode=options.mode,
                codec=codec_name(codec),
                max_message_size=max_message(options.capacity, kind),
                instance=self._instance(),
            )
            self._making = False
            self._made()
        else:
            if actual < OFF_SLOTS:
                raise self._not_a_ring()
            self.mm = self._map(actual)
            header = self._wait_for_header()
            found = header[0]
            if found != kind:
                wanted = (
                    "osipc.publisher/subscriber"
                    if found == KIND_BROADCAST
                    else "osipc.sender/receiver"
                )
                raise InvalidArgument(
                    f"{self._address} is a {KIND_NAMES[found]} ring; open it with {wanted}"
                )
            if actual < segment_size(header[1], header[2]):
                raise self._not_a_ring()
            _, capacity, slots, overflow, _ = header
            check_existing(
                self._address,
                options,
                {
                    "capacity": capacity,
                    "slots": slots,
                    "overflow": "error" if overflow == OVERFLOW_ERROR else "block",
                },
            )
            self._open_locks(kind)
        self.kind, self.capacity, self.slots, self.overflow, self.data = read_header(self.mm)  # type: ignore[misc]
        top = memoryview(self.mm).cast("B")[: self.data]  # the header and the slots
        self.words, self.halves = top.cast("Q"), top.cast("I")
        # The casts stand on their own. Release this one now: this frame may outlive the
        # call (kept by an exception's traceback, a cycle only the garbage collector
        # ends), and an export left in it would keep close() from unmapping the segment.
        top.release()
        self._anchor, self.address = _futex.address_of(self.mm)
        self.slot = self._take_slot(role)
        self.tx, self.rx = self._locks(kind)
        if ACCEL is not None and self.rx is not None:
            tx, rx = self.tx.accel_spec(), self.rx.accel_spec()
            if tx is not None and rx is not None:
                self.accel = ACCEL.Ring(
                    self.mm, self.data, self.capacity, tx, rx,
                    (self.slot << 1) | 1, int.from_bytes(os.urandom(4), "little"),
                )  # fmt: skip

    def _recorded_as_block(self) -> bool:
        """This user's record says the segment is an osipc.SharedMemory block."""
        from osipc import _inventory

        record = _inventory.find_record(self._address)
        return record is not None and record.get("kind") == f"{self.record_kind}-block"

    def _not_a_ring(self) -> InvalidArgument:
        if self._recorded_as_block():
            return InvalidArgument(
                f"{self._address} is an osipc.SharedMemory block, not a ring channel; "
                "attach to it with osipc.SharedMemory, or use another name for the channel"
            )
        return InvalidArgument(
            f"{self._address} exists but is not an osipc ring channel (an osipc.SharedMemory "
            "block, or another program's segment); use another name"
        )

    def _wait_for_header(self) -> tuple[int, int, int, int, int]:
        """An attacher may arrive while the creator is still initialising: wait for the
        magic, which is written last (unless ``settled``: the creator has finished or
        died); a creator that died half-way is reported."""
        backoff = Backoff(0.0005, 0.05)
        deadline = Deadline(0.0 if self.settled else INIT_WAIT)
        while True:
            header = read_header(self.mm)
            if header is not None:
                return header
            if bytes(self.mm[0:8]) != b"\0" * 8 or self._recorded_as_block():
                raise self._not_a_ring()
            if not backoff.wait(deadline):
                raise TransportError(
                    f"{self._address} exists but holds no ring: a creator that died while "
                    "making it, an osipc.SharedMemory block of another user, or another "
                    "program's segment; if nothing uses it, remove it: "
                    f"osipc rm {self._address.base_url}"
                )

    def _take_slot(self, role: int) -> int:
        import os

        from osipc._inventory import proc_start_time

        pid = os.getpid()
        start = proc_start_time(pid) or 0
        for index in range(self.slots):
            if self._claim_slot(index):
                self._fill_slot(index, pid, start, role)
                return index
        raise TransportError(
            f"{self._address}: all {self.slots} slots are in use (one per attached handle); "
            "close handles, or create the channel with more slots=",
            errno=errno.EUSERS,
        )

    def _fill_slot(self, index: int, pid: int, start: int, role: int) -> None:
        """Write a slot field by field, the pid last (SysV liveness reads pid and start)."""
        words, halves = self.words, self.halves
        halves[slot_half(index, SLOT_CLAIM)] = 0
        words[slot_word(index, SLOT_START)] = start
        words[slot_word(index, SLOT_CURSOR)] = 0
        words[slot_word(index, SLOT_SEQ)] = 0
        halves[slot_half(index, SLOT_SLEEPING)] = 0
        halves[slot_half(index, SLOT_ROLE)] = role
        halves[slot_half(index, SLOT_PID)] = pid

    def close(self, in_child: bool) -> None:
        if self.accel is not None:
            self.accel.release()  # its buffer export must go before the mapping
            self.accel = None
        if self.words is not None:
            if self.slot >= 0 and not in_child:
                self._fill_slot(self.slot, 0, 0, 0)
            self.words.release()
            self.halves.release()
        self._anchor = None
        self._release(in_child)
        self.mm = None


# -- handles -----------------------------------------------------------------------------


def _align(size: int, to: int) -> int:
    return (size + to - 1) & ~(to - 1)


class _RingHandle:
    """Shared by the four ring handles: record I/O over the mapping and the waits."""

    _backend: RingBackend
    url: str
    _accel: Any = None  # the backend's C view, for queue handles where it was built

    def _setup(self, backend: RingBackend, spin: float) -> None:
        self._backend = backend
        self._mm = backend.mm
        self._view = memoryview(backend.mm).cast("B")  # ctypes arrays export format 'c'
        self._cap = backend.capacity
        self._data = backend.data
        self._hdr = record_header(backend.kind)
        self._max = max_message(backend.capacity, backend.kind)
        self._spin = spin
        self._w, self._h = backend.words, backend.halves

    def _accel_error(self, exc: OSError | ValueError) -> Exception:
        """The C part's errors: released (closed by another thread meanwhile), or a
        semaphore the kernel no longer has. What a signal handler raised during a wait
        goes on as it is: its traceback reaches into the handler, while the C part's
        own errors begin in the caller's frame (and a ValueError on an open handle is
        not the C part's either): raised again here, its cause and context kept."""
        trace = exc.__traceback__
        if trace is not None and trace.tb_next is not None:
            raise exc
        if isinstance(exc, ValueError):
            if self._closed:  # type: ignore[attr-defined]
                return self._raise_closed()  # type: ignore[attr-defined,no-any-return]
            raise exc
        return map_os_error(exc, f"{self.url}: release the ring's lock")

    def _release_view(self) -> None:
        view = getattr(self, "_view", None)
        if view is not None:
            view.release()

    # -- records -------------------------------------------------------------------------

    def _write(self, position: int, frame: Buffer | None, seq: int) -> None:
        cap, base = self._cap, self._data
        offset = position % cap
        size = 0 if frame is None else len(frame)
        if self._hdr == 8:
            REC.pack_into(self._mm, base + offset, size, REC_END if frame is None else REC_DATA)
        else:
            BREC.pack_into(
                self._mm, base + offset, size, REC_END if frame is None else REC_DATA, seq
            )
        if frame is None or not size:
            return
        start = offset + self._hdr
        if start >= cap:
            start -= cap
        end = start + size
        view = self._view
        if end <= cap:
            view[base + start : base + end] = frame
        else:
            first = cap - start
            source = memoryview(frame).cast("B")
            view[base + start : base + cap] = source[:first]
            view[base : base + size - first] = source[first:]

    def _payload_span(self, position: int, size: int) -> tuple[int, int, int]:
        """(start, end, wrapped bytes) of a payload in mapping offsets."""
        cap, base = self._cap, self._data
        start = position % cap + self._hdr
        if start >= cap:
            start -= cap
        end = start + size
        if end <= cap:
            return base + start, base + end, 0
        return base + start, base + cap, end - cap

    def _read(self, position: int, size: int) -> bytes:
        start, end, wrapped = self._payload_span(position, size)
        if not wrapped:
            return self._mm[start:end]  # type: ignore[no-any-return]
        return self._mm[start:end] + self._mm[self._data : self._data + wrapped]  # type: ignore[no-any-return]

    def _read_into(self, position: int, size: int, target: memoryview) -> None:
        start, end, wrapped = self._payload_span(position, size)
        first = end - start
        target[:first] = self._view[start:end]
        if wrapped:
            target[first:size] = self._view[self._data : self._data + wrapped]

    # -- waiting -------------------------------------------------------------------------

    def _sleep(self, offset: int, seen: int, deadline: Deadline, what: str) -> None:
        """Sleep until the word at ``offset`` differs from ``seen`` (spinning first if
        asked to), a slice passes, or the deadline; Timeout once it has passed."""
        accel = self._accel
        if accel is not None:  # the same, in C: no ctypes round per sleep
            if self._spin and accel.spin(offset, seen, self._spin):
                return
            left = deadline.remaining()
            if left == 0:
                raise Timeout(f"{self.url}: {what} {deadline.describe()}")
            accel.wait(offset, seen, SLICE if left is None else min(left, SLICE))
            self._check_open()  # type: ignore[attr-defined]
            return
        if self._spin:
            until = time.perf_counter() + self._spin
            unpack = Q.unpack_from
            mm = self._mm
            while time.perf_counter() < until:
                if unpack(mm, offset)[0] != seen:
                    return
                os.sched_yield()  # a peer on this same CPU must get to run
        left = deadline.remaining()
        if left == 0:
            raise Timeout(f"{self.url}: {what} {deadline.describe()}")
        address = self._backend.address + offset
        _futex.wait(address, seen, SLICE if left is None else min(left, SLICE))
        self._check_open()  # type: ignore[attr-defined]  # (a slice is the most close() waits)

    def _wake_after_release(self, producer: bool) -> None:
        """After a producer's release: wake consumers waiting for data and producers
        waiting for the lock; after a consumer's: producers waiting for room, consumers
        waiting for the lock. Reading the flags after the release (a full barrier) is
        what makes a concurrent sleeper's flag visible here, or our change visible to it."""
        # The waker clears the data and space flags, so a burst costs one wake-up, not
        # one per message; a sleeper whose flag this clears after it raised it re-checks
        # within a slice. Lock waiters clear their own flag once they hold the lock.
        halves = self._h
        if producer:
            if halves[H_FLAG_DATA]:
                halves[H_FLAG_DATA] = 0
                _futex.wake(self._backend.address + OFF_HEAD)
            if halves[H_FLAG_TX]:
                _futex.wake(self._backend.address + OFF_TX_GEN)
        else:
            if halves[H_FLAG_SPACE]:
                halves[H_FLAG_SPACE] = 0
                _futex.wake(self._backend.address + OFF_TAIL)
            if halves[H_FLAG_RX]:
                _futex.wake(self._backend.address + OFF_RX_GEN)


class RingSender(_RingHandle, Sender[Any]):
    """Queue producer and broadcast publisher (the difference is in ``_space``)."""

    def __init__(
        self, address: Address, capabilities: Capabilities, codec: Codec[Any],
        backend: RingBackend, spin: float,
    ) -> None:  # fmt: skip
        super().__init__(address, capabilities, codec)
        self._setup(backend, spin)
        self._tail_seen = 0
        self._lock = backend.tx
        self._broadcast = backend.kind == KIND_BROADCAST
        self._try, self._release, self._claim, _ = backend.tx.fast()
        self._local = backend.tx.local
        self._accel = backend.accel

    def _too_large(self, size: int) -> MessageTooLarge:
        return MessageTooLarge(
            f"{self.url}: a {size}-byte message exceeds the ring's {self._max}-byte limit "
            f"(capacity={self._cap} minus a {self._hdr}-byte record header); create the "
            "channel with a larger capacity= (it cannot grow once created)",
            size=size,
            limit=self._max,
        )

    def _send(self, frame: Buffer, timeout: float | None) -> None:
        # The common case inlined: the lock is free, there is room, no wrap. Everything
        # else (and broadcast) takes _put, which handles it all.
        size = len(frame)
        if size > self._max:
            raise self._too_large(size)
        accel = self._accel
        if accel is not None:
            try:
                if accel.send(frame):
                    return
            except (OSError, ValueError) as exc:
                raise self._accel_error(exc) from None
            self._put([frame], Deadline(timeout))
            return
        if self._broadcast:
            self._put([frame], Deadline(timeout))
            return
        mm, words, halves, claim, local = self._mm, self._w, self._h, self._claim, self._local
        need = (size + 15) & ~7
        if not local.acquire(False):  # another thread of this handle is in: wait in _put
            self._put([frame], Deadline(timeout))
            return
        halves[claim] = CLAIM_TX
        if not self._try(False):
            halves[claim] = 0
            local.release()
            self._put([frame], Deadline(timeout))
            return
        head = words[W_HEAD]
        cap = self._cap
        if head + need - self._tail_seen > cap:
            self._tail_seen = words[W_TAIL]
        offset = head % cap
        if head + need - self._tail_seen > cap or offset + need > cap:
            self._lock.release()
            self._put([frame], Deadline(timeout))
            return
        start = self._data + offset
        REC.pack_into(mm, start, size, REC_DATA)
        self._view[start + 8 : start + 8 + size] = frame
        words[W_HEAD] = head + need  # the commit
        words[W_PRODUCED] += 1
        self._release()  # then the generation, then the claim: see ClaimLock.release
        words[W_TX_GEN] = self._lock.stamp()
        halves[claim] = 0
        local.release()
        if halves[H_FLAG_DATA] or halves[H_FLAG_TX]:
            self._wake_after_release(producer=True)

    def _send_batch(self, frames: list[Buffer], deadline: Deadline) -> None:
        for frame in frames:
            if len(frame) > self._max:
                raise self._too_large(len(frame))
        sent = 0
        if self._accel is not None:
            try:
                sent = self._accel.send_many(frames, 0)
            except (OSError, ValueError) as exc:
                raise self._accel_error(exc) from None
            if sent == len(frames):
                return
        try:
            self._put(frames[sent:] if sent else frames, deadline)
        except Timeout as exc:
            exc.sent = sent + (exc.sent or 0)
            raise

    def _send_end(self, deadline: Deadline) -> None:
        self._put([None], deadline)

    def _space(self, head: int, need: int) -> bool:
        """True if ``need`` more bytes fit after ``head`` (re-reading the far side's state
        only when the cached view says no)."""
        cap = self._cap
        if head + need - self._tail_seen <= cap:
            return True
        if not self._broadcast:
            self._tail_seen = self._w[W_TAIL]
        elif self._backend.overflow == OVERFLOW_ERROR:
            return True
        else:
            self._tail_seen = self._slowest_subscriber(head)
        return head + need - self._tail_seen <= cap

    def _slowest_subscriber(self, head: int) -> int:
        backend, words, halves = self._backend, self._w, self._h
        while True:
            slowest, slowest_slot = head, -1
            for index in range(backend.slots):
                if halves[slot_half(index, SLOT_ROLE)] != ROLE_SUBSCRIBER:
                    continue
                cursor = words[slot_word(index, SLOT_CURSOR)]
                if cursor < slowest:
                    slowest, slowest_slot = cursor, index
            if slowest_slot < 0 or backend.alive(slowest_slot):
                return slowest
            # a dead subscriber must not hold the publisher back
            halves[slot_half(slowest_slot, SLOT_ROLE)] = 0

    @waits
    def _put(self, frames: Sequence[Buffer | None], deadline: Deadline) -> None:
        mm, words, lock, hdr = self._mm, self._w, self._lock, self._hdr
        align = 16 if self._broadcast else 8
        error_mode = self._broadcast and self._backend.overflow == OVERFLOW_ERROR
        sent = 0
        total = len(frames)
        while True:
            lock.acquire(deadline)
            committed = False
            first = sent
            try:
                head, _, produced, seq, _ = PROD.unpack_from(mm, OFF_HEAD)
                if error_mode:
                    needed = sum(
                        _align(hdr + (0 if f is None else len(f)), align) for f in frames[sent:]
                    )
                    words[W_RESERVE] = head + needed  # before the records it may overwrite
                cap, base, view, mask = self._cap, self._data, self._view, align - 1
                while sent < total:
                    frame = frames[sent]
                    size = 0 if frame is None else len(frame)
                    need = (hdr + size + mask) & ~mask
                    if head + need - self._tail_seen > cap and not self._space(head, need):
                        break
                    offset = head % cap
                    if hdr == 8 and frame is not None and offset + need <= cap:
                        at = base + offset
                        REC.pack_into(mm, at, size, REC_DATA)
                        view[at + 8 : at + 8 + size] = frame
                    else:
                        self._write(head, frame, seq)
                    head += need
                    seq += 1
                    sent += 1
                if sent > first:
                    words[W_HEAD] = head  # the commit
                    words[W_PRODUCED] = produced + sent - first
                    words[W_SEQ] = seq
                    words[W_RESERVE] = head
                    committed = True
                elif not error_mode:
                    self._h[H_FLAG_SPACE] = 1  # set under the lock: we will sleep
            finally:
                lock.release()
            if committed:
                self._wake_after_release(producer=True)
            if sent == total:
                return
            try:
                self._wait_for_space(deadline)
            except Timeout as exc:
                exc.sent = sent
                raise

    def _wait_for_space(self, deadline: Deadline) -> None:
        if self._broadcast:
            seen = self._w[W_SUB_GEN]
            self._sleep(OFF_SUB_GEN, seen, deadline, "no room: the slowest subscriber lags")
        else:
            self._sleep(OFF_TAIL, self._tail_seen, deadline, "the ring is full")

    def _close(self) -> None:
        self._release_view()
        self._backend.close(self._in_child)


class RingReceiver(_RingHandle, Receiver[Any]):
    """Queue consumer: each message to exactly one receiver."""

    def __init__(
        self, address: Address, capabilities: Capabilities, codec: Codec[Any],
        backend: RingBackend, spin: float,
    ) -> None:  # fmt: skip
        super().__init__(address, capabilities, codec)
        self._setup(backend, spin)
        self._head_seen = 0  # a lower bound of the head
        self._tail_last = 0  # a lower bound of the tail: the last one this handle saw
        assert backend.rx is not None
        self._lock = backend.rx
        self._try, self._release, self._claim, _ = backend.rx.fast()
        self._local = backend.rx.local
        self._accel = backend.accel
        if backend.accel is not None:
            self._poll = backend.accel.recv  # (raises ValueError once close() released it)

    def _recv(self, timeout: float | None) -> Frame | None:
        accel = self._accel
        if accel is not None:
            try:
                got: Frame | None = accel.recv()
            except (OSError, ValueError) as exc:
                raise self._accel_error(exc) from None
            if got is not None:
                return got
            # The whole wait in one C call (spin=, then sleeps): no Deadline, no
            # waiting-call bookkeeping, no Python between a wake-up and the return.
            until = -1.0 if timeout is None else time.monotonic() + timeout if timeout else 0.0
            try:
                got = accel.recv_block(self._spin, until, SLICE)
            except (OSError, ValueError) as exc:
                raise self._accel_error(exc) from None
            if got is False:
                raise Timeout(f"{self.url}: no message {Deadline(timeout).describe()}")
            if got is None:  # the lock is busy, or an end-of-stream record is next
                return self._take(1, Deadline.until(until, timeout))[0]
            return got
        # The common case inlined: the lock is free and a record is there; else _take.
        mm, words, halves, claim = self._mm, self._w, self._h, self._claim
        if self._head_seen <= self._tail_last:  # all this handle knew of is gone: new ones?
            head = words[W_HEAD]
            if head <= self._tail_last:  # surely empty (the tail only grows): go and wait,
                return self._take(1, Deadline(timeout))[0]  # without a lock round for nothing
            self._head_seen = head
        local = self._local
        if not local.acquire(False):  # another thread of this handle is in: wait in _take
            return self._take(1, Deadline(timeout))[0]
        halves[claim] = CLAIM_RX
        if not self._try(False):
            halves[claim] = 0
            local.release()
            return self._take(1, Deadline(timeout))[0]
        tail = words[W_TAIL]
        if self._head_seen <= tail:
            self._head_seen = words[W_HEAD]
            if self._head_seen <= tail:
                self._lock.release()
                return self._take(1, Deadline(timeout))[0]
        cap = self._cap
        start = self._data + tail % cap
        size, kind = REC.unpack_from(mm, start)
        if size > self._max or tail + ((size + 15) & ~7) > self._head_seen:
            self._lock.release()
            return self._take(1, Deadline(timeout))[0]  # which reports the corruption
        start += 8
        end = start + size
        payload = mm[start:end] if end <= self._data + cap else self._read(tail, size)
        tail += (size + 15) & ~7
        words[W_TAIL] = tail  # the commit
        words[W_CONSUMED] += 1
        self._tail_last = tail
        self._release()  # then the generation, then the claim: see ClaimLock.release
        words[W_RX_GEN] = self._lock.stamp()
        halves[claim] = 0
        local.release()
        if halves[H_FLAG_SPACE] or halves[H_FLAG_RX]:
            self._wake_after_release(producer=False)
        return None if kind == REC_END else payload

    def _recv_batch(self, max_count: int, deadline: Deadline) -> list[Frame | None]:
        if self._accel is not None:
            batch = self._quick(max_count)
            if batch is not None:
                return batch
        return self._take(max_count, deadline)

    @waits
    def _take(self, max_count: int, deadline: Deadline) -> list[Frame | None]:
        mm, words, lock = self._mm, self._w, self._lock
        while True:
            lock.acquire(deadline)
            out: list[Frame | None] = []
            committed = False
            try:
                tail, _, consumed = CONS.unpack_from(mm, OFF_TAIL)
                head = self._head_seen  # a lower bound of the real head: re-read when used up
                if head <= tail:
                    head = self._head_seen = words[W_HEAD]
                cap, base = self._cap, self._data
                limit = base + cap
                while tail < head and len(out) < max_count:
                    start = base + tail % cap
                    size, kind = REC.unpack_from(mm, start)
                    if size > self._max or tail + ((size + 15) & ~7) > head:
                        raise self._corrupt(tail)
                    if kind == REC_END:
                        out.append(None)
                    elif start + 8 + size <= limit:
                        out.append(mm[start + 8 : start + 8 + size])
                    else:
                        out.append(self._read(tail, size))
                    tail += (size + 15) & ~7
                self._tail_last = tail
                if out:
                    words[W_TAIL] = tail  # the commit
                    words[W_CONSUMED] = consumed + len(out)
                    committed = True
                else:
                    self._h[H_FLAG_DATA] = 1  # set under the lock: we will sleep
            finally:
                lock.release()
            if committed:
                self._wake_after_release(producer=False)
                return out
            self._sleep(OFF_HEAD, head, deadline, "no message")
            if self._accel is not None:  # woken: the C part takes it if the lock is free
                batch = self._quick(max_count)
                if batch is not None:
                    return batch

    def _recv_spun(self) -> Frame | Literal[False] | None:
        """The C part's spin= for the next record (see Receiver._recv_spun), holding the
        GIL, so no close() can come meanwhile: a message that comes within spin= costs
        no waiting-call bookkeeping (_recv's wait), nor a worker's hand-off (osipc.aio's)."""
        accel = self._accel
        if accel is None or not self._spin:
            return False
        try:
            spun: Frame | Literal[False] | None = accel.recv_spin(self._spin)
        except (OSError, ValueError) as exc:
            raise self._accel_error(exc) from None
        if spun is None:  # the lock is busy, or an end-of-stream record is next
            try:
                return self._take(1, Deadline(0.0))[0]
            except Timeout:
                return False  # (busy: the wait that follows takes it)
        return spun

    def _corrupt(self, position: int) -> Broken:
        return Broken(
            f"{self.url}: the ring is corrupt at position {position} (a record's size runs "
            "past the data committed); remove it (osipc rm) and create it again"
        )

    def _quick(self, max_count: int) -> list[Frame | None] | None:
        """The C part's one try (None: nothing for it; the Python path decides)."""
        try:
            if max_count == 1:
                one: Frame | None = self._accel.recv()
                return None if one is None else [one]
            batch: list[Frame | None] | None = self._accel.recv_many(min(max_count, 1 << 30))
            return batch
        except (OSError, ValueError) as exc:
            raise self._accel_error(exc) from None

    def recv_into(self, buffer: Any, *, timeout: float | None = None) -> int:
        """Copy the next message's payload straight from the ring into ``buffer`` (no
        intermediate bytes object); see Receiver.recv_into."""
        try:
            view = memoryview(buffer).cast("B")
        except TypeError as exc:
            raise InvalidArgument(f"recv_into needs a writable buffer: {exc}") from None
        if view.readonly:
            raise InvalidArgument("recv_into needs a writable buffer, got a read-only one")
        if self._closed:
            raise self._raise_closed()
        if self._pending:
            return super().recv_into(buffer, timeout=timeout)
        if timeout is not None:
            timeout = check_timeout(timeout)
        if self._accel is not None:
            try:
                copied: int = self._accel.recv_into(view)
            except (OSError, ValueError) as exc:
                raise self._accel_error(exc) from None
            if copied >= 0:
                return copied
        return self._wait_and_recv_into(view, Deadline(timeout))

    @waits
    def _wait_and_recv_into(self, view: memoryview, deadline: Deadline) -> int:
        mm, words, lock = self._mm, self._w, self._lock
        while True:
            lock.acquire(deadline)
            size = -1
            committed = False
            try:
                tail, _, consumed = CONS.unpack_from(mm, OFF_TAIL)
                head = self._head_seen
                if head <= tail:
                    head = self._head_seen = words[W_HEAD]
                if tail < head:
                    size, kind = REC.unpack_from(mm, self._data + tail % self._cap)
                    if size > self._max or tail + ((size + 15) & ~7) > head:
                        raise self._corrupt(tail)
                    if kind == REC_END:
                        size = -2
                    elif size > len(view):
                        raise MessageTooLarge(
                            f"{self.url}: the next message has {size} bytes and does not fit "
                            f"the {len(view)}-byte buffer; it stays queued for the next recv",
                            size=size,
                            limit=len(view),
                        )
                    else:
                        self._read_into(tail, size, view)
                    words[W_TAIL] = tail + _align(8 + max(size, 0), 8)  # the commit
                    words[W_CONSUMED] = consumed + 1
                    committed = True
                else:
                    self._h[H_FLAG_DATA] = 1
            finally:
                lock.release()
            if committed:
                self._wake_after_release(producer=False)
                if size == -2:
                    raise EndOfStream(f"{self.url}: end of stream")
                return size
            self._sleep(OFF_HEAD, head, deadline, "no message")

    def _close(self) -> None:
        super()._close()
        self._release_view()
        self._backend.close(self._in_child)


class RingSubscriber(_RingHandle, Receiver[Any]):
    """Broadcast subscriber: its own cursor; sees everything published after it joined."""

    def __init__(
        self, address: Address, capabilities: Capabilities, codec: Codec[Any],
        backend: RingBackend, spin: float,
    ) -> None:  # fmt: skip
        super().__init__(address, capabilities, codec)
        self._setup(backend, spin)
        self._block = backend.overflow == OVERFLOW_BLOCK
        self._cursor_word = slot_word(backend.slot, SLOT_CURSOR)
        self._role_half = slot_half(backend.slot, SLOT_ROLE)
        self._join(Deadline(5.0))

    def _join(self, deadline: Deadline) -> None:
        """Start at the newest message. Under the publishers' lock, so the cursor and the
        sequence number agree and a blocking publisher sees this subscriber from now on."""
        self._backend.tx.acquire(deadline)
        try:
            head, _, _, seq, _ = PROD.unpack_from(self._mm, OFF_HEAD)
            self._cursor, self._seq = head, seq
            self._w[self._cursor_word] = head
            self._h[self._role_half] = ROLE_SUBSCRIBER
        finally:
            self._backend.tx.release()

    def _overrun(self) -> OsipcError:
        missed_from = self._seq
        self._join(Deadline(5.0))
        missed = max(0, self._seq - missed_from)
        return Overrun(
            f"{self.url}: this subscriber fell more than the ring's capacity "
            f"({self._cap} bytes) behind and missed {missed} message(s); it continues with "
            "the next one published (use overflow=block to make the publisher wait instead)",
            missed=missed,
        )

    def _recv(self, timeout: float | None) -> Frame | None:
        return self._take(1, Deadline(timeout))[0]

    def _recv_batch(self, max_count: int, deadline: Deadline) -> list[Frame | None]:
        return self._take(max_count, deadline)

    @waits
    def _take(self, max_count: int, deadline: Deadline) -> list[Frame | None]:
        mm, words, cap, base = self._mm, self._w, self._cap, self._data
        while True:
            head = words[W_HEAD]
            if head != self._cursor:
                break
            self._sleep(OFF_HEAD, head, deadline, "no message")
        out: list[Frame | None] = []
        cursor, seq = self._cursor, self._seq
        while cursor < head and len(out) < max_count:
            # overflow=error: the publisher raises the reserve before it overwrites, so a
            # reserve more than a ring ahead, before or after the copy, means overwritten.
            if not self._block and words[W_RESERVE] - cursor > cap:
                raise self._overrun()
            size, kind, record_seq = BREC.unpack_from(mm, base + cursor % cap)
            if size > self._max:
                if self._block:
                    raise Broken(f"{self.url}: the ring is corrupt at position {cursor}")
                raise self._overrun()
            payload = None if kind == REC_END else self._read(cursor, size)
            if not self._block and words[W_RESERVE] - cursor > cap:
                raise self._overrun()  # overwritten while we copied it
            out.append(payload)
            cursor += _align(16 + size, 16)
            # The record's number, not a count: a publisher killed between its commit and
            # the sequence word leaves the next records numbered from the old value.
            seq = record_seq + 1
        self._cursor, self._seq = cursor, seq
        if self._block:
            words[self._cursor_word] = cursor
            if self._h[H_FLAG_SPACE]:
                words[W_SUB_GEN] += 1
                _futex.wake(self._backend.address + OFF_SUB_GEN)
        return out

    def _close(self) -> None:
        super()._close()
        if not self._in_child:
            self._h[self._role_half] = 0
        self._release_view()
        self._backend.close(self._in_child)


class RingTransport(Transport):
    """A scheme whose channels are rings; ``backend`` is its SegmentBackend."""

    backend: type[SegmentBackend]
    options = RingOptions
    capabilities = capabilities(KIND_QUEUE, DEFAULT_CAPACITY)

    def _open(self, cls: Any, address: Address, options: Any, codec: Any, role: int) -> Any:
        kind = KIND_BROADCAST if role in (ROLE_PUBLISHER, ROLE_SUBSCRIBER) else KIND_QUEUE
        backend = self.backend(address, options, codec, kind, role)
        try:
            return cls(address, capabilities(kind, backend.capacity), codec, backend, options.spin)
        except BaseException:
            backend.close(in_child=False)
            raise

    def open_sender(self, address: Address, options: Any, codec: Any) -> Sender[Any]:
        return self._open(RingSender, address, options, codec, ROLE_SENDER)  # type: ignore[no-any-return]

    def open_receiver(self, address: Address, options: Any, codec: Any) -> Receiver[Any]:
        return self._open(RingReceiver, address, options, codec, ROLE_RECEIVER)  # type: ignore[no-any-return]

    def open_publisher(self, address: Address, options: Any, codec: Any) -> Sender[Any]:
        return self._open(RingSender, address, options, codec, ROLE_PUBLISHER)  # type: ignore[no-any-return]

    def open_subscriber(self, address: Address, options: Any, codec: Any) -> Receiver[Any]:
        return self._open(RingSubscriber, address, options, codec, ROLE_SUBSCRIBER)  # type: ignore[no-any-return]
