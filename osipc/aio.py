"""asyncio faces of every endpoint: sender, receiver, publisher, subscriber, client, server.

::

    async with osipc.aio.receiver("mq://jobs", codec="json") as rx:
        async for job in rx:                      # ends at end-of-stream
            ...
    async with osipc.aio.sender("shm://jobs") as tx:
        await tx.send(b"x", timeout=1.0)

Same URLs, options, codecs and errors as the synchronous API, and the same timeout rule:
``None`` waits, ``0`` tries once, ``> 0`` waits at most that long, then ``Timeout``. Each
async handle wraps a synchronous one (``.sync``); :func:`wrap` makes an async face for a
handle you already have (``osipc_systemd.endpoints()``, say). Opening never waits (it
creates or attaches), so the factories are plain functions.

**How they wait.** Every operation first tries without waiting, on the loop's thread: a
ring or a queue with messages in it costs what the synchronous call costs. Otherwise:

* where the mechanism has a pollable fd (fifo and mq receivers, mq senders and clients,
  every ZeroMQ socket) the loop watches it (``add_reader``/``add_writer``; for ZeroMQ its
  edge-triggered fd together with ``EVENTS``) and tries again when it is ready. No thread.
* where none exists (shm:// and sysv+shm:// rings, sysv+mq://, mem://, fifo senders, an
  mq server's replies) a bounded pool of ``WORKERS`` threads, shared by the process, waits
  in slices of at most ``SLICE`` seconds; a waiting endpoint holds a thread for one slice
  at a time, never a thread per message. Thousands of idle ring endpoints share the pool,
  each one answering within a few slices. A ring's ``recv`` first polls for its ``spin=``
  (20 µs by default) on the loop's thread: a message that comes that soon (as in a
  stream) then costs no hand-off to a worker, which would cost more than the poll.

**Cancellation loses nothing.** A try on the loop's thread is atomic with respect to
cancellation. A message a worker thread takes after its task was cancelled stays in the
handle and is the next one ``recv`` returns, in order; so does an end-of-stream or an
``Overrun`` notice. A cancelled ``send`` either did not happen or had completed by the
time ``CancelledError`` reaches the caller. A cancelled ``request`` is abandoned like one
that timed out: its late reply is dropped, and the client's next request works.

One loop, one handle: use a handle from the thread of the loop that first awaited on it.
Plain asyncio (uvloop works as well); anyio and trio are not supported.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar

# modules, not names: this public module exports only its own
from osipc import _abc, _api, _codecs, _errors, _reqrep
from osipc._deadline import Deadline as _Deadline
from osipc._deadline import check_timeout as _check_timeout

__all__ = [
    "AsyncClient",
    "AsyncReceiver",
    "AsyncRequest",
    "AsyncSender",
    "AsyncServer",
    "client",
    "publisher",
    "receiver",
    "sender",
    "server",
    "subscriber",
    "wrap",
]

_T = TypeVar("_T")
_R = TypeVar("_R")
_H = TypeVar("_H", bound=_abc.Handle)

SLICE = 0.05
"""Longest a worker thread waits on one endpoint before it is free for another."""
WORKERS = 32
"""Worker threads shared by every endpoint without a pollable fd."""


# -- the worker pool -----------------------------------------------------------------------

_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = concurrent.futures.ThreadPoolExecutor(WORKERS, "osipc-aio")
    return _pool


def _forget_pool() -> None:  # a forked child has the pool object but not its threads
    global _pool
    _pool = None


os.register_at_fork(after_in_child=_forget_pool)

# -- watching fds --------------------------------------------------------------------------


class _Watch:
    """Every task waiting for one fd in one direction on one loop (asyncio allows one
    callback per fd and direction): one registration, all of them woken together."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, write: bool) -> None:
        self.loop, self.fd, self.write = loop, fd, write
        self.waiters: set[asyncio.Future[bool]] = set()
        self.table = _watches.setdefault(loop, {})
        self.table[fd, write] = self
        if write:
            loop.add_writer(fd, self.fire)
        else:
            loop.add_reader(fd, self.fire)

    def fire(self) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(True)
        self.waiters.clear()
        self.stop()

    def discard(self, waiter: asyncio.Future[bool]) -> None:
        self.waiters.discard(waiter)
        if not self.waiters:
            self.stop()

    def stop(self) -> None:
        if self.table.get((self.fd, self.write)) is self:
            del self.table[self.fd, self.write]
            if self.write:
                self.loop.remove_writer(self.fd)
            else:
                self.loop.remove_reader(self.fd)


_watches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[int, bool], _Watch]]
_watches = weakref.WeakKeyDictionary()


async def _settle(jobs: list[concurrent.futures.Future[Any]]) -> None:
    """Until the worker jobs are done; their outcomes are not ours (kept, or dropped)."""
    waiting = [asyncio.wrap_future(job) for job in jobs]
    for future in waiting:  # retrieved, or asyncio logs "exception was never retrieved"
        future.add_done_callback(_retrieve)
    await asyncio.wait(waiting)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _timed_out(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


# -- the shared machinery ------------------------------------------------------------------


_Self = TypeVar("_Self", bound="_AsyncHandle[Any]")
Keep = Callable[[Any, "BaseException | None"], None]
"""Takes the outcome (result, error) of a worker whose task was cancelled."""


class _Job:
    """What a worker and the task that sent it agree on, under ``lock``: the outcome once
    there is one, and whether the task stopped waiting for it."""

    __slots__ = ("abandoned", "lock", "outcome")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.outcome: tuple[Any, BaseException | None] | None = None
        self.abandoned = False


class _AsyncHandle(Generic[_H]):
    """What every async face shares: trying on the loop, waiting on an fd or on the
    pool, cancellation bookkeeping, and closing."""

    def __init__(self, handle: _H) -> None:
        self.sync = handle
        self._closing = False
        self._jobs: set[concurrent.futures.Future[Any]] = set()  # on worker threads now
        self._abandoned: set[concurrent.futures.Future[Any]] = set()  # of cancelled tasks
        self._waits: dict[asyncio.Future[bool], _Watch] = {}

    @property
    def url(self) -> str:
        return self.sync.url

    @property
    def closed(self) -> bool:
        return self.sync.closed

    @property
    def capabilities(self) -> Any:
        return self.sync.capabilities

    def __repr__(self) -> str:
        return f"<async {self.sync!r}>"

    # -- closing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the handle; tasks waiting on it get Closed. Waits at most one SLICE for a
        worker thread still inside it. Idempotent; never unlinks the object."""
        self._closing = True
        self._wake_waiters()
        concurrent.futures.wait(list(self._jobs))
        self.sync.close()

    async def aclose(self) -> None:
        """Close without blocking the loop (see close)."""
        self._closing = True
        self._wake_waiters()
        jobs = list(self._jobs)
        if jobs:
            await _settle(jobs)
        self.sync.close()

    async def __aenter__(self: _Self) -> _Self:
        if self.closed:
            raise self.sync._raise_closed()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _wake_waiters(self) -> None:
        for waiter, watch in list(self._waits.items()):
            if not waiter.done():
                waiter.set_result(True)  # it tries again, and finds the handle closed
            watch.discard(waiter)
        self._waits.clear()

    def _check_open(self) -> None:
        if self._closing or self.sync.closed:
            raise self.sync._raise_closed()

    # -- waiting ---------------------------------------------------------------------------

    async def _run(
        self,
        attempt: Callable[[], _R],
        blocking: Callable[[float], Any],
        finish: Callable[[Any], _R],
        deadline: _Deadline,
        *,
        writing: bool,
        what: str,
        hint: str = "",
        keep: Keep | None = None,
    ) -> _R:
        """``attempt()`` once without waiting (it raises Timeout when it cannot), then
        wait for readiness and try again until ``deadline``. Without an fd, worker threads
        run ``blocking(seconds)`` instead, and ``finish`` turns its result into ours;
        ``keep`` takes the result of a worker whose task was cancelled."""
        abandoned = list(self._abandoned)  # a cancelled task's worker may hold older
        if abandoned:  # messages: those go first
            await _settle(abandoned)
        try:
            return attempt()
        except _errors.Timeout:
            if deadline.remaining() == 0:
                raise _errors.Timeout(f"{self.url}: {what} {deadline.describe()}{hint}") from None
        source = self.sync._aio_source(writing)
        if source is None:
            return finish(await self._on_threads(blocking, deadline, what, hint, keep))
        fd, write, ready = source
        pause = 0.0  # grows while readiness keeps turning out to be spurious
        while True:
            self._check_open()  # aclose() may be waiting for workers before it closes
            if pause:
                left = deadline.remaining()
                await asyncio.sleep(pause if left is None else min(pause, left))
                self._check_open()
            if not ready():
                await self._readable(fd, write, deadline.remaining())
            try:
                return attempt()
            except _errors.Timeout:
                if deadline.remaining() == 0:
                    raise _errors.Timeout(
                        f"{self.url}: {what} {deadline.describe()}{hint}"
                    ) from None
                # another reader got there first, a lock was busy, half a message came
                pause = min(max(pause * 2, 0.0005), 0.02)

    async def _readable(self, fd: int, write: bool, timeout: float | None) -> None:
        """Until ``fd`` is ready, ``timeout`` passes or the handle is closed."""
        if timeout == 0:
            return
        loop = asyncio.get_running_loop()
        watch = _watches.get(loop, {}).get((fd, write)) or _Watch(loop, fd, write)
        waiter: asyncio.Future[bool] = loop.create_future()
        watch.waiters.add(waiter)
        self._waits[waiter] = watch
        timer = None if timeout is None else loop.call_later(timeout, _timed_out, waiter)
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
            self._waits.pop(waiter, None)
            watch.discard(waiter)

    def _guarded(
        self, blocking: Callable[[float], _R], seconds: float, job: _Job, keep: Keep | None
    ) -> _R:
        """On a worker thread: nothing once closing began (close() waits for workers).
        If the task that wanted the outcome was cancelled meanwhile, ``keep`` gets it
        here, before the future completes: whoever waits for this future also waits for
        that (a done-callback would not do: others see the future done before it runs)."""
        self._check_open()
        try:
            result: Any = blocking(seconds)
        except BaseException as exc:
            outcome: tuple[Any, BaseException | None] = (None, exc)
        else:
            outcome = (result, None)
        with job.lock:
            job.outcome = outcome
            abandoned = job.abandoned
        if abandoned and keep is not None:
            keep(*outcome)
        if outcome[1] is not None:
            raise outcome[1]
        return result  # type: ignore[no-any-return]

    async def _on_threads(
        self,
        blocking: Callable[[float], Any],
        deadline: _Deadline,
        what: str,
        hint: str,
        keep: Keep | None,
    ) -> Any:
        while True:
            self._check_open()
            left = deadline.remaining()
            if left == 0:
                raise _errors.Timeout(f"{self.url}: {what} {deadline.describe()}{hint}")
            ticket = _Job()
            job = _executor().submit(
                self._guarded, blocking, SLICE if left is None else min(left, SLICE), ticket,
                keep,
            )  # fmt: skip
            self._jobs.add(job)
            job.add_done_callback(self._jobs.discard)
            try:
                return await asyncio.wrap_future(job)
            except _errors.Timeout:
                continue
            except asyncio.CancelledError:
                if not job.cancel():  # it ran, or runs: its outcome must not be lost
                    with ticket.lock:
                        outcome, ticket.abandoned = ticket.outcome, True
                    if outcome is not None and keep is not None:
                        keep(*outcome)  # it had finished: nobody will take it but us
                    elif outcome is None:  # the worker keeps it; later calls wait for that
                        self._abandoned.add(job)
                        job.add_done_callback(self._abandoned.discard)
                        if keep is None:  # a send: settled before the caller hears of it
                            await _settle([job])
                raise


# -- senders -------------------------------------------------------------------------------


class AsyncSender(_AsyncHandle[_abc.Sender[_T]]):
    """The async face of an osipc.Sender (and of a publisher)."""

    async def send(self, obj: _T, *, timeout: float | None = None, **options: Any) -> None:
        """Send one object; see osipc.Sender.send (``options``: ``priority=`` on mq, ``type=``
        on sysv+mq, ``topic=`` for a zmq publisher)."""
        send: Callable[..., None] = self.sync.send
        deadline = _Deadline(timeout)
        if not self._abandoned:  # the hot path, inlined
            try:
                send(obj, timeout=0, **options)
                return
            except _errors.Timeout:
                if deadline.timeout == 0:
                    raise _errors.Timeout(
                        f"{self.url}: no room to send {deadline.describe()}"
                    ) from None

        def attempt() -> None:
            send(obj, timeout=0, **options)

        def blocking(seconds: float) -> None:
            send(obj, timeout=seconds, **options)

        await self._run(attempt, blocking, _none, deadline, writing=True, what="no room to send")

    async def send_many(
        self, objs: Iterable[_T], *, timeout: float | None = None, priority: int = 0
    ) -> int:
        """Send every object in order; see osipc.Sender.send_many (``exc.sent`` on a
        Timeout or another TransportError counts the whole batch)."""
        remaining = list(_abc._iterable(objs))
        total = len(remaining)

        def push(seconds: float) -> None:
            nonlocal remaining
            try:
                self.sync.send_many(remaining, timeout=seconds, priority=priority)
            except _errors.TransportError as exc:
                remaining = remaining[exc.sent :]
                raise
            remaining = []

        try:
            await self._run(
                lambda: push(0), push, _none, _Deadline(timeout), writing=True,
                what="no room to send",
            )  # fmt: skip
        except _errors.TransportError as exc:
            exc.sent = total - len(remaining)
            raise
        return total

    async def end(self, *, timeout: float | None = None) -> None:
        """Send end-of-stream; see osipc.Sender.end."""
        end = self.sync.end
        await self._run(
            lambda: end(timeout=0), lambda seconds: end(timeout=seconds), _none,
            _Deadline(timeout), writing=True, what="no room to send",
        )  # fmt: skip


def _none(_: object) -> None:
    return None


# -- receivers -----------------------------------------------------------------------------


class AsyncReceiver(_AsyncHandle[_abc.Receiver[_T]]):
    """The async face of an osipc.Receiver (and of a subscriber); ``async for`` ends at
    end-of-stream."""

    def __init__(self, handle: _abc.Receiver[_T]) -> None:
        super().__init__(handle)
        self._error: BaseException | None = None  # what an abandoned worker was told

    async def recv(self, *, timeout: float | None = None) -> _T:
        """Receive one object; see osipc.Receiver.recv."""
        sync = self.sync
        if timeout is not None:
            _check_timeout(timeout)
        tried = False
        if (  # the hot path: what Receiver.recv does when nothing is held, inlined
            not self._abandoned
            and self._error is None
            and not sync._pending
            and sync._readiness is None
            and not sync._closed
        ):
            tried = True
            got: _abc.Frame | Literal[False] | None = None
            poll = sync._poll
            if poll is not None:  # one C call where the transport has one
                try:
                    got = poll()
                except (OSError, ValueError) as exc:
                    _errors.passed_on(exc)  # (a signal handler's goes out as it is)
                    # the C part's: _recv below says what went wrong
            if got is None:  # nothing there, or what only _recv can say
                # a ring's spin= here costs the loop less than a worker's hand-off
                got = False if timeout == 0 else sync._recv_spun()
                if got is False:
                    try:
                        got = sync._recv(0.0)
                    except _errors.Timeout:
                        got = False
                if got is None:
                    raise _errors.EndOfStream(f"{self.url}: end of stream")
            if got is not False:
                if sync._decode_fast is not None:
                    return got  # type: ignore[return-value]
                return _codecs.decode(sync.codec, got, self.url)  # type: ignore[no-any-return]
        deadline = _Deadline(timeout)
        if tried and deadline.timeout == 0:
            raise _errors.Timeout(f"{self.url}: nothing arrived {deadline.describe()}")

        def attempt() -> _T:
            self._raise_kept()
            return sync.recv(timeout=0)

        def finish(frames: list[_abc.Frame | None]) -> _T:
            sync._pending.extendleft(reversed(frames))
            return sync.recv(timeout=0)

        return await self._run(
            attempt, lambda seconds: self._take(1, seconds), finish, deadline,
            writing=False, what="nothing arrived", keep=self._keep,
        )  # fmt: skip

    async def recv_many(self, max_count: int, *, timeout: float | None = None) -> list[_T]:
        """Wait for at least one object, then return up to ``max_count`` that are there;
        see osipc.Receiver.recv_many."""
        sync = self.sync

        def attempt() -> list[_T]:
            self._raise_kept()
            return sync.recv_many(max_count, timeout=0)

        def finish(frames: list[_abc.Frame | None]) -> list[_T]:
            sync._pending.extendleft(reversed(frames))
            return sync.recv_many(max_count, timeout=0)

        return await self._run(
            attempt, lambda seconds: self._take(max_count, seconds), finish, _Deadline(timeout),
            writing=False, what="nothing arrived", keep=self._keep,
        )  # fmt: skip

    async def recv_into(self, buffer: Any, *, timeout: float | None = None) -> int:
        """Copy the next message's raw payload into ``buffer``; see osipc.Receiver.recv_into.
        Straight from the kernel object when it is ready at once (the ring's C part copies
        from shared memory); a message a worker thread waited for is copied from its bytes."""
        sync = self.sync

        def attempt() -> int:
            self._raise_kept()
            return sync.recv_into(buffer, timeout=0)

        def finish(frames: list[_abc.Frame | None]) -> int:
            sync._pending.extendleft(reversed(frames))
            return sync.recv_into(buffer, timeout=0)

        return await self._run(
            attempt, lambda seconds: self._take(1, seconds), finish, _Deadline(timeout),
            writing=False, what="nothing arrived", keep=self._keep,
        )  # fmt: skip

    def __aiter__(self) -> AsyncIterator[_T]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[_T]:
        while True:
            try:
                yield await self.recv()
            except _errors.EndOfStream:
                return

    # On a worker thread: frames straight from the transport (None: end-of-stream).
    def _take(self, max_count: int, seconds: float) -> list[_abc.Frame | None]:
        sync = self.sync
        if max_count == 1:
            return [sync._recv(seconds)]
        return sync._recv_batch(max_count, _Deadline(seconds))

    def _keep(self, frames: list[_abc.Frame | None] | None, error: BaseException | None) -> None:
        if error is None:
            assert frames is not None
            self.sync._pending.extendleft(reversed(frames))
        elif isinstance(error, (_errors.Overrun, _errors.TransportError)) and not isinstance(
            error, _errors.Timeout
        ):
            self._error = error  # news the cancelled task would have had: the next recv's

    def _raise_kept(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error


# -- request/reply -------------------------------------------------------------------------


class AsyncClient(_AsyncHandle[_reqrep.Client[_T]]):
    """The async face of an osipc.Client."""

    def __init__(self, handle: _reqrep.Client[_T]) -> None:
        super().__init__(handle)
        self._turn: asyncio.Lock | None = None  # made on the loop (3.9 binds it at creation)

    async def request(self, obj: _T, *, timeout: float | None = None) -> _T:
        """Send ``obj`` to a server and return its reply; see osipc.Client.request. Tasks
        sharing a client take turns (a reply answers the request that is waiting)."""
        self._check_open()
        if self._turn is None:
            self._turn = asyncio.Lock()
        deadline = _Deadline(timeout)
        try:
            await asyncio.wait_for(self._turn.acquire(), deadline.remaining())
        except asyncio.TimeoutError:
            raise _errors.Timeout(
                f"{self.url}: other requests on this client kept it busy {deadline.describe()}"
            ) from None
        try:
            return await self._request(obj, deadline)
        finally:
            self._turn.release()

    async def _request(self, obj: _T, deadline: _Deadline) -> _T:
        sync = self.sync
        frame = sync._encode(obj)

        def send(seconds: float) -> object:
            self._check_open()
            return sync._send_request(frame, _Deadline(seconds))

        ticket = await self._run(
            lambda: send(0), send, _same, deadline, writing=True,
            what="no server took the request", keep=_drop,
        )  # fmt: skip

        def reply(seconds: float) -> bytes:
            self._check_open()
            return sync._await_reply(ticket, _Deadline(seconds))

        answer = await self._run(
            lambda: reply(0), reply, _same, deadline, writing=False,
            what="no reply",
            hint=" (no server, or it is slow; a late reply is discarded)",
            keep=_drop,
        )  # fmt: skip
        return sync._decode(answer)


def _same(value: Any) -> Any:
    return value


def _drop(result: Any, error: BaseException | None) -> None:
    """A cancelled request's outcome: nobody waits for it (like a timed-out one)."""


class AsyncRequest(Generic[_T]):
    """One request an AsyncServer received: ``data`` and ``await reply(obj)``, once."""

    __slots__ = ("_replied", "_server", "_token", "data")

    def __init__(self, server: AsyncServer[_T], token: object, data: _T) -> None:
        self.data = data
        self._server = server
        self._token = token
        self._replied = False

    async def reply(self, obj: _T, *, timeout: float | None = None) -> None:
        """Send ``obj`` back to the client that asked; see Request.reply."""
        if self._replied:
            raise _errors.InvalidArgument(
                "this request was already answered; reply once per request"
            )
        server = self._server
        server._check_open()
        sync = server.sync
        frame = sync._encode(obj)

        def send(seconds: float) -> None:
            server._check_open()
            sync._reply(self._token, frame, _Deadline(seconds))

        await server._run(
            lambda: send(0), send, _none, _Deadline(timeout), writing=True,
            what="the client's reply path stayed full",
        )  # fmt: skip
        self._replied = True

    def __repr__(self) -> str:
        return f"<AsyncRequest {self.data!r} from {self._server.url}>"


class AsyncServer(_AsyncHandle[_reqrep.Server[_T]]):
    """The async face of an osipc.Server; ``async for`` yields requests until the handle is
    closed (or, on mq://, end-of-stream is sent to it)."""

    def __init__(self, handle: _reqrep.Server[_T]) -> None:
        super().__init__(handle)
        self._kept: deque[tuple[object, bytes] | BaseException] = deque()

    async def recv(self, *, timeout: float | None = None) -> AsyncRequest[_T]:
        """The next request; see osipc.Server.recv."""
        sync = self.sync

        def take(seconds: float) -> tuple[object, bytes]:
            self._check_open()
            if self._kept:
                kept = self._kept.popleft()
                if isinstance(kept, BaseException):
                    raise kept
                return kept
            return sync._next(seconds)

        token, frame = await self._run(
            lambda: take(0), take, _same, _Deadline(timeout), writing=False,
            what="no request arrived", keep=self._keep,
        )  # fmt: skip
        return AsyncRequest(self, token, sync._decode(frame))

    def __aiter__(self) -> AsyncIterator[AsyncRequest[_T]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[AsyncRequest[_T]]:
        while True:
            try:
                yield await self.recv()
            except _errors.EndOfStream:
                return
            except _errors.Closed:
                if self.closed:
                    return
                raise

    def _keep(self, request: tuple[object, bytes] | None, error: BaseException | None) -> None:
        if error is None:
            assert request is not None
            self._kept.append(request)
        elif isinstance(error, _errors.EndOfStream):
            self._kept.append(error)


# -- opening -------------------------------------------------------------------------------


def sender(url: str, *, codec: Any = None, **options: Any) -> AsyncSender[Any]:
    """:func:`osipc.sender`, async."""
    return AsyncSender(_api.sender(url, codec=codec, **options))


def receiver(url: str, *, codec: Any = None, **options: Any) -> AsyncReceiver[Any]:
    """:func:`osipc.receiver`, async."""
    return AsyncReceiver(_api.receiver(url, codec=codec, **options))


def publisher(url: str, *, codec: Any = None, **options: Any) -> AsyncSender[Any]:
    """:func:`osipc.publisher`, async (``await pub.send(obj, topic=...)`` on zmq)."""
    return AsyncSender(_api.publisher(url, codec=codec, **options))


def subscriber(url: str, *, codec: Any = None, **options: Any) -> AsyncReceiver[Any]:
    """:func:`osipc.subscriber`, async."""
    return AsyncReceiver(_api.subscriber(url, codec=codec, **options))


def client(url: str, *, codec: Any = None, **options: Any) -> AsyncClient[Any]:
    """:func:`osipc.client`, async: ``await client.request(obj, timeout=)``."""
    return AsyncClient(_api.client(url, codec=codec, **options))


def server(url: str, *, codec: Any = None, **options: Any) -> AsyncServer[Any]:
    """:func:`osipc.server`, async: ``async for request in server: await
    request.reply(obj)``."""
    return AsyncServer(_api.server(url, codec=codec, **options))


def wrap(handle: Any) -> Any:
    """The async face of an open synchronous handle (which it then owns: closing the
    async face closes it)."""
    if isinstance(handle, _abc.Sender):
        return AsyncSender(handle)
    if isinstance(handle, _abc.Receiver):
        return AsyncReceiver(handle)
    if isinstance(handle, _reqrep.Client):
        return AsyncClient(handle)
    if isinstance(handle, _reqrep.Server):
        return AsyncServer(handle)
    raise _errors.InvalidArgument(
        f"wrap() takes an osipc sender, receiver, client or server, not {type(handle).__name__}"
    )
