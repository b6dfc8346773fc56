"""Queue: ``multiprocessing.Queue`` by name, over an osipc channel.

Kernel objects of ``Queue("NAME")`` on shm (the default):

* ``shm://NAME``: the osipc ring the messages wait in;
* ``shm://NAME--state``: what the queue is (transport, maxsize) and two counters,
  *written* (messages put) and *taken* (messages got), under the lock
  ``sem://NAME--state`` only while it is created;
* ``sem://NAME--put`` and ``sem://NAME--get``: ``osipc.Lock`` s that one putter and one
  getter at a time hold (the kernel releases them when a holder dies). Under them a
  message of several chunks goes in and comes out whole, and the counters change;
* ``sem://NAME--space`` (bounded queues): a semaphore getters post to wake putters.

**Crash safety of the bound.** ``maxsize`` is enforced as ``written - taken`` under the
put lock. A putter killed between sending and counting leaves a flag the next putter
sees; if it had begun sending the message's last frame it counts the message as sent
(too many, never too few). A getter killed between receiving and counting leaves
*taken* one short. Both only ever make the queue look fuller than it is, and both heal:
a getter that finds the ring empty sets *taken* to *written* (everything written has
been taken), and a putter that finds the queue full after a holder died checks against
the ring's own depth (``osipc.info``). So a killed process never takes a place for good,
and never lets the queue hold more than maxsize.

**Cut-off runs.** A putter killed (or timed out) before the last frame of a message of
several chunks leaves the head of that run in the ring, counted as nothing. A getter
that reaches it drops it. So that it never fills the ring of a queue that holds nothing
else (and no getter comes), the next putter drops it first when the counters say the
queue is empty and no getter is at work.

**When osipc gc removes the state.** Once every process has closed the queue, ``osipc
gc`` removes what it calls stale: the state block and the locks, and the ring too unless
it holds messages. Then the next opener makes a new state block from what the ring
holds: under the creation lock, with nobody else at the ring, it takes every frame out,
puts the whole messages back and counts them (a cut-off run, whose flag went with the
old state, is dropped there); the bound comes from the ring's osipc record, which gc
keeps and removes with the ring: the ring's creator records ``osipc_mp.Queue(maxsize=N)``
as its codec (``osipc ls`` shows it), so a bounded queue never comes back unbounded.

On mq the kernel bounds the queue (``maxmsg``) and the state block only records what the
queue is; a message is one frame of at most ``msgsize`` bytes.
"""

from __future__ import annotations

import os
import queue
import re
from types import TracebackType
from typing import Any

import osipc
from osipc_mp import _frames
from osipc_mp._common import (
    MAGIC_QUEUE,
    TRANSPORT_CODES,
    Deadline,
    StateBlock,
    channel_options,
    check_name,
    check_transport,
    common_options,
    companion,
    dumps,
    finalizer,
    loads,
    quietly,
    wait_time,
    waiting_frames,
)

DEFAULT_CAPACITY = 4 << 20  # bytes of a ring this module creates: a 4 MiB pickle fits whole
SLICE = 0.05  # longest sleep of a waiting putter between looks (a missed wake-up costs this)
LOOK = 0.2  # a getter waiting for data, or for the rest of a message, looks around this often
# put_nowait waits this long for another putter to finish (the stdlib's never contends)
PUT_LOCK_GRACE = 0.05

# Words of the state block (64-bit): putters' words and getters' words on their own lines.
W_TRANSPORT = 1
W_MAXSIZE = 4
# PENDING: a put is under way; LAST: it has begun sending its last frame; JUNK: a run
# cut short may be in the ring.
W_WRITTEN, W_PENDING, W_SUSPECT, W_LAST, W_JUNK = 8, 9, 10, 11, 12
W_TAKEN, W_READING = 16, 17

_CODE_NAMES = {code: name for name, code in TRANSPORT_CODES.items()}


def _describe(config: tuple[int, ...]) -> str:
    return f"a Queue on transport={_CODE_NAMES.get(config[0], config[0])!r}"


class _Framing:
    """The codec an shm ring is created with: it passes osipc_mp's frames through as
    they are, and its name, which osipc records with the ring (``osipc ls`` shows it),
    carries the queue's bound. osipc gc removes that record only with the ring, so the
    bound survives gc removing the state block while the ring holds messages."""

    PATTERN = re.compile(r"osipc_mp\.Queue\(maxsize=(\d+)\)")

    def __init__(self, maxsize: int) -> None:
        self.name = f"osipc_mp.Queue(maxsize={maxsize})"

    def encode(self, obj: bytes) -> bytes:
        return obj

    def decode(self, data: bytes) -> bytes:
        return data

    @classmethod
    def recorded_bound(cls, codec: str | None) -> int | None:
        """The bound in a ring's recorded codec, None if it was not made by osipc_mp."""
        found = cls.PATTERN.fullmatch(codec or "")
        return None if found is None else int(found.group(1))


class _Core:
    """Everything one process holds open for one queue (what the finalizer closes)."""

    def __init__(self, name: str, transport: str, asked: int, options: dict[str, Any]) -> None:
        self.name = name
        self.transport = transport
        self.url = f"{transport}://{name}"
        self.pid = os.getpid()
        self.options = options
        self.common = common_options(options)
        self.tx: osipc.Sender[bytes] | None = None
        self.rx: osipc.Receiver[bytes] | None = None
        self.put_lock: osipc.Lock | None = None
        self.get_lock: osipc.Lock | None = None
        self.space: osipc.Semaphore | None = None
        self.state: StateBlock | None = None
        self.maxsize = 0
        self.limit: int | None = None
        try:
            self.state = StateBlock(
                name,
                MAGIC_QUEUE,
                (TRANSPORT_CODES[transport],),
                _describe,
                init=lambda words: self._create(words, asked),
                **self.common,
            )
            words = self.words
            found = int(words[W_MAXSIZE])
            if asked and found != asked:
                raise osipc.InvalidArgument(
                    f"queue {name!r} exists with maxsize={found}, not {asked}; pass "
                    "maxsize=0 to use it as it is, or unlink it to start again"
                )
            tx = self.tx if self.tx is not None else self._open_channel(found, creating=False)[0]
            self.limit = tx.capabilities.max_message_size
            if transport == "mq":
                self.maxsize = found or int(osipc.info(self.url).capacity or 0)
            else:
                self.maxsize = found
                self.put_lock = osipc.Lock(companion("sem", name, "put"), **self.common)
                self.get_lock = osipc.Lock(companion("sem", name, "get"), **self.common)
                if found:
                    self.space = osipc.Semaphore(
                        companion("sem", name, "space"), value=0, **self.common
                    )
        except BaseException:
            self.close()
            raise

    @property
    def words(self) -> memoryview:
        assert self.state is not None
        assert self.state.words is not None
        return self.state.words

    def _create(self, words: memoryview, asked: int) -> None:
        """The first opener, under the state lock: the channel, with this module's
        creation options, then the bound (the state's magic is written after this)."""
        _, existed = self._open_channel(asked, creating=True)
        for word in (W_WRITTEN, W_TAKEN, W_PENDING, W_SUSPECT, W_LAST, W_JUNK, W_READING):
            words[word] = 0
        words[W_MAXSIZE] = asked
        if existed and self.transport == "shm":
            # A ring left from before (osipc gc removed the state, say): what it holds,
            # counted, and the bound its creator recorded with it.
            words[W_WRITTEN] = self._rebuild()
            bound = _Framing.recorded_bound(osipc.info(self.url).codec)
            if bound is not None:
                words[W_MAXSIZE] = bound

    def _rebuild(self) -> int:
        """Under the state lock, with nobody else at the ring (gc removed the state only
        because nobody had the queue open; any other opener waits for this one): take
        everything out, put the whole messages back in order, and return how many. A run
        cut short (its putter was killed) and the rest of one whose getter was killed
        are dropped here, as getters would drop them, since the words that let putters
        and getters deal with them went with the old state."""
        assert self.tx is not None
        assert self.rx is not None
        kept: list[list[bytes] | None] = []  # each message's frames; None: an osipc end()
        run: list[bytes] | None = None
        for frame in waiting_frames(self.rx):
            if frame is None:
                kept.append(None)
                run = None
                continue
            kind = frame[1] if frame[:1] == b"\0" and len(frame) > 1 else None
            if kind == _frames.FIRST:
                run = [frame]
            elif kind in (_frames.MORE, _frames.LAST):
                if run is not None:
                    run.append(frame)
                    if kind == _frames.LAST:
                        kept.append(run)
                        run = None
            else:  # a message in one frame (or one getters will refuse: not dropped here)
                kept.append([frame])
                run = None
        for message in kept:  # they fitted before, and records take the same room anywhere
            if message is None:
                self.tx.end()
            else:
                for frame in message:
                    self.tx.send(frame, timeout=0)
        return sum(message is not None for message in kept)

    def _open_channel(self, maxsize: int, *, creating: bool) -> tuple[osipc.Sender[bytes], bool]:
        """The sender (the receiver is opened too), and whether the channel existed; one
        missing is created with the creation options (a 4 MiB ring recording the bound;
        on mq, ``maxmsg`` = maxsize)."""
        opts = self.options
        try:
            self.tx = osipc.sender(self.url, create=False, **opts)
        except osipc.NotFound:
            made = dict(opts)
            if self.transport == "shm":
                made.setdefault("capacity", DEFAULT_CAPACITY)
                made["codec"] = _Framing(maxsize)
            elif maxsize:
                made["maxmsg"] = maxsize
            self.tx = osipc.sender(self.url, **made)
            existed = False
        else:
            existed = True
            if creating and self.transport == "mq" and maxsize:
                found = osipc.info(self.url).capacity
                if found != maxsize:
                    raise osipc.InvalidArgument(
                        f"{self.url} exists with maxmsg={found}, not the maxsize={maxsize} "
                        "asked for; pass maxsize=0 to use it as it is, or unlink it"
                    )
        self.rx = osipc.receiver(self.url, **opts)
        return self.tx, existed

    def close(self) -> None:
        quietly(
            *(
                handle.close
                for handle in (self.tx, self.rx, self.put_lock, self.get_lock, self.space)
                if handle is not None
            ),
            *(() if self.state is None else (self.state.close,)),
        )


class Queue:
    """``multiprocessing.Queue`` by name: ``Queue("jobs")`` in any process, started in any
    order, reaches the same queue. Objects travel as pickles: **unpickling runs code
    chosen by the sender**, so share a queue only with processes you trust (the objects
    are created 0600: only your user can open them).

    ``transport="shm"`` (default): the osipc ring ``shm://NAME``, 4 MiB unless its creator
    passes ``capacity=``. An object of any size goes: a pickle larger than the ring's
    largest message travels in chunks, taken whole by one getter; ``put`` then returns
    once a getter has begun taking it (a pickle that fits returns at once).
    ``transport="mq"``: the POSIX message queue ``mq://NAME``; a pickle must fit
    ``msgsize`` (8192 bytes here: MessageTooLarge otherwise), and there are at most
    fs.mqueue.msg_max (10 here) messages, so ``maxsize=0`` there means the kernel's
    default depth, not unbounded. Other keyword arguments are osipc options of the
    channel (``capacity``, ``msgsize``, ``mode``, ...).

    ``maxsize`` is fixed by the process that creates the queue; others pass 0 (take it
    as it is) or the same number. A SIGKILLed process never takes a place for good
    (see the module's notes). Every process must open it with the same ``transport``.

    ``put``/``get`` follow ``queue.Queue``: ``block=False`` ignores ``timeout``, a negative
    timeout is a ValueError, and ``queue.Full`` / ``queue.Empty`` report a wait that ran
    out. There is no feeder thread: ``put`` returns once the object is in the queue, and
    an object that cannot be pickled is an ``osipc.EncodeError`` from ``put`` itself.
    ``qsize()``, ``empty()`` and ``full()`` are snapshots that another process may change
    the next instant. ``close()`` (also at exit, or when the object is garbage collected)
    never removes the queue; ``unlink()`` does.
    """

    def __init__(
        self, name: str, maxsize: int = 0, *, transport: str = "shm", **options: Any
    ) -> None:
        self.name = check_name(name, "Queue")
        self.transport = check_transport(transport)
        if isinstance(maxsize, bool) or not isinstance(maxsize, int):
            raise TypeError(f"maxsize must be an int, got {maxsize!r}")
        options = channel_options(options, "Queue")
        if transport == "mq" and maxsize > 0 and "maxmsg" in options:
            raise osipc.InvalidArgument("give the depth once: maxsize= or maxmsg=, not both")
        self.url = f"{transport}://{name}"
        self._asked = max(0, maxsize)  # the stdlib takes maxsize <= 0 as "no bound"
        self._options = options
        self._closed = False
        self._open()

    def _open(self) -> None:
        self._core = _Core(self.name, self.transport, self._asked, self._options)
        self._finalizer = finalizer(self, _Core.close, self._core)

    def _live(self) -> _Core:
        if self._closed:
            raise osipc.Closed(f"Queue {self.name!r} is closed")
        core = self._core
        if core.pid != os.getpid():  # a forked child: osipc closed the parent's handles here
            self._finalizer.detach()
            core.close()
            self._open()
            core = self._core
        return core

    @property
    def maxsize(self) -> int:
        """The bound (0: none; on mq, the queue's depth)."""
        return self._core.maxsize

    # -- put ------------------------------------------------------------------------------

    def put(self, obj: Any, block: bool = True, timeout: float | None = None) -> None:
        """Put ``obj`` into the queue, waiting for room as ``queue.Queue.put`` does.

        Raises:
            queue.Full: no room in time (also when the ring's bytes are full).
            osipc.EncodeError: ``obj`` cannot be pickled; nothing was put.
            osipc.MessageTooLarge: (mq only) its pickle exceeds the queue's msgsize.
            osipc.Closed: this queue was closed.
        """
        wait = wait_time(block, timeout)
        core = self._live()
        payload = dumps(obj)
        assert core.tx is not None
        if core.put_lock is None:  # mq: one frame; the kernel keeps the bound
            try:
                core.tx.send(payload, timeout=wait)
            except osipc.Timeout:
                raise queue.Full from None
            return
        self._put_shm(core, payload, Deadline(wait))

    def _put_shm(self, core: _Core, payload: bytes, deadline: Deadline) -> None:
        assert core.tx is not None
        assert core.put_lock is not None
        words = core.words
        while True:
            left = deadline.remaining()
            try:
                core.put_lock.acquire(timeout=None if left is None else max(left, PUT_LOCK_GRACE))
            except osipc.Timeout:
                raise queue.Full from None
            try:
                if words[W_PENDING]:  # a putter died in the middle of a put
                    if words[W_LAST]:  # it may have sent it all: count it (never too few)
                        words[W_WRITTEN] += 1
                        words[W_SUSPECT] = 1
                    else:  # its last frame never went: what it sent is a cut-off run
                        words[W_JUNK] = 1
                    words[W_PENDING] = 0
                if words[W_JUNK]:
                    self._drop_junk(core)
                room = not core.maxsize or self._room(core)
                if room:
                    self._send(core, payload, deadline)
                    return
            finally:
                core.put_lock.release()
            if deadline.expired():
                raise queue.Full
            assert core.space is not None
            try:  # a getter posts when it takes a message; a lost post costs one SLICE
                core.space.acquire(timeout=deadline.slice(SLICE))
            except osipc.Timeout:
                pass

    def _room(self, core: _Core) -> bool:
        """Under the put lock: is there a place? Checks against the ring itself when a
        killed process may have left the counters showing the queue fuller than it is."""
        words = core.words
        if words[W_WRITTEN] - min(words[W_TAKEN], words[W_WRITTEN]) < core.maxsize:
            return True
        assert core.get_lock is not None
        if not words[W_SUSPECT] and not words[W_READING]:
            return False  # no death since the counters were last exact: it is full
        try:  # no getter active: the ring's depth is an upper bound of what is in it
            core.get_lock.acquire(timeout=0)
        except osipc.Timeout:
            return False  # a live getter is at work: it heals the counters itself
        try:
            frames = int(osipc.info(core.url).depth or 0)
            words[W_TAKEN] = max(words[W_TAKEN], words[W_WRITTEN] - frames)
            words[W_SUSPECT] = words[W_READING] = 0
        finally:
            core.get_lock.release()
        return words[W_WRITTEN] - min(words[W_TAKEN], words[W_WRITTEN]) < core.maxsize

    def _drop_junk(self, core: _Core) -> None:
        """Under the put lock: take a cut-off run out of a ring that holds no message.

        Exact counters are needed for that (nothing written and not yet taken: then no
        putter is at work, under our lock, and every frame is what getters would drop);
        with a getter at work or messages waiting, the getters drop the run instead.
        """
        assert core.get_lock is not None
        assert core.rx is not None
        words = core.words
        if words[W_WRITTEN] > words[W_TAKEN]:
            return
        try:
            core.get_lock.acquire(timeout=0)
        except osipc.Timeout:
            return
        try:
            if words[W_WRITTEN] > words[W_TAKEN]:  # a getter died holding one: not junk
                return
            for _ in waiting_frames(core.rx):
                pass
            words[W_JUNK] = 0
        finally:
            core.get_lock.release()

    def _send(self, core: _Core, payload: bytes, deadline: Deadline) -> None:
        """Under the put lock: send the message's frames and count it."""
        assert core.tx is not None
        words = core.words
        tx = core.tx
        sent = 0
        words[W_LAST] = 0
        words[W_PENDING] = 1
        try:
            frames = iter(_frames.queue_frames(payload, core.limit))
            frame = next(frames)
            for following in frames:
                tx.send(frame, timeout=deadline.remaining())
                sent += 1
                frame = following
            words[W_LAST] = 1  # from here on a death may leave the whole message
            tx.send(frame, timeout=deadline.remaining())
        except osipc.Timeout:
            # Nothing, or the head of a run that getters (or the next putter) drop.
            if sent:
                words[W_JUNK] = 1
            words[W_PENDING] = 0
            raise queue.Full from None
        except BaseException:
            if not sent:
                words[W_PENDING] = 0
            raise  # after a frame went, PENDING stays: the next putter settles it
        words[W_WRITTEN] += 1
        words[W_PENDING] = 0

    # -- get ------------------------------------------------------------------------------

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return the next object, waiting as ``queue.Queue.get`` does. Once
        the first chunk of a large message has arrived, the rest is waited for whatever
        the timeout (for as long as its putter is alive).

        Raises:
            queue.Empty: nothing arrived in time.
            osipc.DecodeError: the message is not a pickle this process can load.
            osipc.EndOfStream: (an EOFError) an osipc sender called ``end()``.
            osipc.Closed: this queue was closed.
        """
        wait = wait_time(block, timeout)
        core = self._live()
        assert core.rx is not None
        if core.get_lock is None:  # mq
            try:
                frame = core.rx.recv(timeout=wait)
            except osipc.Timeout:
                raise queue.Empty from None
            return loads(frame, self.url)
        deadline = Deadline(wait)
        try:
            core.get_lock.acquire(timeout=deadline.remaining())
        except osipc.Timeout:
            raise queue.Empty from None
        words = core.words
        try:
            words[W_READING] = 1
            payload = self._take(core, deadline)
            words[W_READING] = 0
        finally:
            core.get_lock.release()
        space = core.space
        if space is not None and space.value < 1:
            space.release()  # wake a putter waiting for a place
        return loads(payload, self.url)

    def _take(self, core: _Core, deadline: Deadline) -> bytes:
        """Under the get lock: the next whole message, counted as taken."""
        assert core.rx is not None
        assert core.put_lock is not None
        rx, words = core.rx, core.words
        run: _frames.Assembly | None = None
        while True:
            written = words[W_WRITTEN]
            try:
                frame = rx.recv(timeout=LOOK if run is not None else deadline.slice(LOOK))
            except osipc.Timeout:
                # The ring is empty: every message counted before the look has been taken
                # (this heals a getter killed before it counted its message).
                words[W_TAKEN] = written
                if run is not None and core.put_lock.holder is None:
                    try:  # its putter is gone: anything it sent is in the ring by now
                        frame = rx.recv(timeout=0)
                    except osipc.Timeout:
                        run = None  # it died or gave up half-way: not a message
                        continue
                elif run is None and deadline.expired():
                    raise queue.Empty from None
                else:
                    continue
            if frame[:1] != b"\0":  # a message in one frame (a pickle)
                words[W_TAKEN] += 1
                return frame
            kind = frame[1] if len(frame) > 1 else -1
            if kind == _frames.FIRST:
                (total,) = _frames.Q_TOTAL.unpack_from(frame, _frames.Q_HEAD.size)
                run = _frames.Assembly(total)  # a run cut short before it is dropped
                run.add(memoryview(frame)[_frames.Q_FIRST_SIZE :])
            elif kind in (_frames.MORE, _frames.LAST):
                if run is None:  # the rest of a run whose getter was killed: dropped
                    if kind == _frames.LAST:
                        words[W_TAKEN] += 1  # it had been counted as written
                    continue
                run.add(memoryview(frame)[_frames.Q_HEAD.size :])
                if kind == _frames.LAST:
                    words[W_TAKEN] += 1
                    if run.complete():
                        return bytes(run.buffer)
                    run = None  # pragma: no cover - a corrupt run: dropped
            else:
                raise osipc.DecodeError(
                    f"{self.url}: a frame that is neither a pickle nor an osipc_mp chunk",
                    codec="pickle",
                    data=frame,
                )

    def put_nowait(self, obj: Any) -> None:
        self.put(obj, False)

    def get_nowait(self) -> Any:
        return self.get(False)

    # -- state ----------------------------------------------------------------------------

    def qsize(self) -> int:
        """Objects in the queue now (a snapshot; on mq from ``osipc.info``: milliseconds)."""
        core = self._live()
        if core.put_lock is None:
            depth = osipc.info(self.url).depth
            if depth is None:  # pragma: no cover - mq always tells
                raise NotImplementedError(f"{self.url} does not tell its depth")
            return depth
        words = core.words
        written = int(words[W_WRITTEN])
        return max(0, written - int(words[W_TAKEN]))

    def empty(self) -> bool:
        return self.qsize() == 0

    def full(self) -> bool:
        """True when a ``put_nowait`` would find no place (never, without a bound on shm)."""
        core = self._live()
        return bool(core.maxsize) and self.qsize() >= core.maxsize

    def close(self) -> None:
        """Close this process's handles (idempotent); the queue and its contents stay.
        Done by itself at exit or when the object is garbage collected."""
        self._closed = True
        self._finalizer()

    def join_thread(self) -> None:
        """Nothing to wait for: there is no feeder thread (kept for compatibility)."""

    def cancel_join_thread(self) -> None:
        """Nothing to cancel: there is no feeder thread (kept for compatibility)."""

    def unlink(self) -> None:
        """Remove the queue and its companions; its contents are lost."""
        _unlink(self.name)

    def __enter__(self) -> Queue:
        self._live()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __reduce__(self) -> tuple[Any, ...]:
        # passed to a multiprocessing child, it opens the queue by name there
        return (_reopen, (self.name, self.transport, self._options))

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"maxsize={self._core.maxsize}"
        return f"<osipc_mp.Queue {self.url} {state}>"


def _reopen(name: str, transport: str, options: dict[str, Any]) -> Queue:
    return Queue(name, transport=transport, **options)


def _unlink(name: str) -> None:
    urls = [f"shm://{name}", f"mq://{name}", companion("shm", name, "state")]
    urls += [companion("sem", name, suffix) for suffix in ("state", "put", "get", "space")]
    for url in urls:
        osipc.unlink(url, missing_ok=True)
