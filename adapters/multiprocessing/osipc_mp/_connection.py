"""Pipe and Connection: ``multiprocessing.Pipe`` whose two ends two unrelated processes open.

Kernel objects of ``Pipe("NAME")``: the channel ``shm://NAME--a`` carries what end "a"
receives and ``shm://NAME--b`` what "b" receives (only ``NAME--a`` with ``duplex=False``);
``sem://NAME--a`` and ``sem://NAME--b`` are locks an end's process holds while the end is
open (the kernel releases them when it dies); ``shm://NAME--state`` (changed under
``sem://NAME--state``) records the pipe's configuration, each end's sessions and the
forked processes that hold copies of an end (see ``_End``).

**Sessions.** Each time an end is opened it starts a new *session*, numbered one up
from the last (from a base above every number an earlier state block of this name gave
out, see ``_init_state``); session k of "a" talks to session k of "b", as the two ends
of one stdlib pipe do, and every frame carries its sender's session number. So a reader
drops what an earlier session left behind unread (as a stdlib pipe's unread data goes
when it is closed; a session that closes takes it out of its channel when no later peer
session has begun), a stale end-of-stream never ends the next conversation, and a
reader knows its peer's session has ended when the peer closed (an END frame after what
it sent, or the OVER word of a session that sent nothing), or when its lock is free
although it had opened (killed, even before the reader ever looked) and no forked copy
of it is left. A session that ended without sending anything (it only waited to
receive, or did nothing) has nothing for anyone: the peer that opens after it skips
it, and if no peer session paired with it, the next session of its own end takes its
number. Sending to a peer session that has ended raises BrokenPipeError
(``osipc.Broken``). When an end is reopened after its previous session died without
its END, the new session first sends that END (tagged with the old session) if a
reader may still need it.

**When osipc gc removes the state.** Once nobody has the pipe open, ``osipc gc`` removes
the state block and the locks as stale, and keeps a channel that holds frames (a sender
that exited before its reader came). Their sessions' numbers then mean nothing to the
next state block, so its creator (under the creation lock, with nobody else at the
pipe) takes the frames out and puts them back renumbered: each run a sending session
left becomes one of the first sessions of the new block, in order, over, with its END,
so the readers that come next pair with one run each, as they would have without gc,
and a sender that comes after gc follows them. A run whose first remaining frame is not
its session's first message (OPENING, see ``_frames``) was being read by a reader that
died: it goes, as the next reader would have dropped it, and so does a lone END.
"""

from __future__ import annotations

import errno
import os
import time
import weakref
from collections import deque
from multiprocessing import BufferTooShort
from types import TracebackType
from typing import Any

import osipc
from osipc_mp import _frames
from osipc_mp._common import (
    MAGIC_PIPE,
    TRANSPORT_CODES,
    StateBlock,
    channel_options,
    check_name,
    check_transport,
    common_options,
    companion,
    dumps,
    finalizer,
    holding,
    loads,
    quietly,
    waiting_frames,
)

ENDS = ("a", "b")
PEER_CHECK = 0.2  # seconds between looks at whether a silent peer session has ended
CLOSE_WAIT = 1.0  # at most this long for room for the end-of-stream marker in close()
DROP_WAIT = 0.5  # at most this long dropping what an ended session left (a writer may go on)
HANDOFF_WAIT = 30.0  # an end passed to another process is kept alive this long for it
SLOTS = 32  # forked processes that can share one end's session at once
FORK_WAIT = HANDOFF_WAIT  # a child fills in its place at once; one it never fills lapses
FORK_LOCK_WAIT = 2.0  # before fork(): at most this long for the state lock

# Words of the state block: the configuration, then per end its session's words and the
# table of the forked processes that use the session with its owner (USERS: SLOTS entries
# of pid, start time, and the time a place kept for a child being forked lapses).
W_DUPLEX, W_TRANSPORT, W_BASE = 1, 2, 3
GEN, CLOSED, OVER, MARKED, SENT, HANDOFF, HANDOFF_UNTIL, OWED = range(8)
USERS = 10
U_PID, U_START, U_UNTIL = range(3)
_END_WORDS = USERS + 3 * SLOTS
_END_BASE = {"a": 8, "b": 8 + _END_WORDS}
STATE_WORDS = 256
assert _END_BASE["b"] + _END_WORDS <= STATE_WORDS

_CODE_NAMES = {code: name for name, code in TRANSPORT_CODES.items()}


def _describe(config: tuple[int, ...]) -> str:
    duplex, transport = config
    return (
        f"a Pipe with duplex={bool(duplex)} and transport={_CODE_NAMES.get(transport, transport)!r}"
    )


class Pipe:
    """The name of a pipe whose ends unrelated processes open: ``Pipe("chat").end("a")``
    in one, ``Pipe("chat").end("b")`` in the other, in any order.

    ``duplex=True``: both ends send and receive. ``duplex=False``: like the stdlib's
    ``r, w = Pipe(False)``, "a" only receives and "b" only sends. Every process must
    open the pipe the same way (``osipc.InvalidArgument`` otherwise). ``transport`` and
    the other keyword arguments are as for :class:`~osipc_mp.Queue` (``capacity=`` sizes
    a channel on shm, ``msgsize=`` a frame on mq). ``unlink()`` removes the pipe.
    """

    def __init__(
        self, name: str, duplex: bool = True, *, transport: str = "shm", **options: Any
    ) -> None:
        self.name = check_name(name, "Pipe")
        self.duplex = bool(duplex)
        self.transport = check_transport(transport)
        self.options = channel_options(options, "Pipe")

    def channel(self, end: str) -> str:
        """The URL of the channel end ``end`` receives from."""
        return companion(self.transport, self.name, end)

    def end(self, which: str) -> Connection:
        """Open end "a" or "b" as a :class:`Connection` (a new session of that end).

        Raises:
            osipc.AlreadyExists: another process (or handle) has this end open.
            osipc.InvalidArgument: ``which`` is not "a" or "b", or the pipe exists with
                another ``duplex`` or ``transport``.
        """
        if which not in ENDS:
            raise osipc.InvalidArgument(f'a pipe has ends "a" and "b", not {which!r}')
        return Connection(_End(self, which, resume=None))

    def unlink(self) -> None:
        """Remove the channels, the end locks and the state; what was in flight is lost."""
        _unlink(self.name)

    def __repr__(self) -> str:
        return f"<osipc_mp.Pipe {self.name!r} duplex={self.duplex} transport={self.transport}>"


def _unlink(name: str) -> None:
    urls = [companion("shm", name, "state"), companion("sem", name, "state")]
    for end in ENDS:
        urls += [companion(scheme, name, end) for scheme in ("shm", "mq", "sem")]
    for url in urls:
        osipc.unlink(url, missing_ok=True)


def _maps(pid: int, identity: tuple[int, int]) -> bool:
    """Does process ``pid`` map the file ``identity`` (st_dev, st_ino)? True also when
    its maps cannot be read (a process made undumpable, or another user's): it may."""
    dev, ino = identity
    try:
        with open(f"/proc/{pid}/maps", "rb") as file:
            maps = file.read()
    except (FileNotFoundError, ProcessLookupError):
        return False  # it has exited
    except OSError:
        return True
    return f" {os.major(dev):02x}:{os.minor(dev):02x} {ino} ".encode() in maps


def _process_start(pid: int) -> int | None:
    """The start time of process ``pid`` (clock ticks after boot) while it can still use
    anything, else None: exited, or a zombie its parent has not reaped yet."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            stat = file.read()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2 :].split()  # after "pid (comm) "; comm may hold ")"
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


# Every end open in this process, for the fork hooks below.
_OPEN: weakref.WeakSet[_End] = weakref.WeakSet()


def _open_ends() -> list[_End]:
    while True:
        try:
            return list(_OPEN)
        except RuntimeError:  # another thread opened one meanwhile
            continue


def _before_fork() -> None:
    for end in _open_ends():
        end.keep_place_for_child()


def _after_fork_in_parent() -> None:
    for end in _open_ends():
        end.kept = None  # the child has it now


def _after_fork_in_child() -> None:
    for end in _open_ends():
        end.join_in_child()


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)


class _End:
    """One process's hold on one end of a pipe: its handles, its session, and what it
    has received but not yet delivered. Kept apart from :class:`Connection` so the
    finalizer that closes it at exit or garbage collection needs no reference to it.

    **Forked copies.** The process that opened the end (the *owner*) holds the end's
    lock. A child forked while the end is open holds a copy, as a forked child holds a
    stdlib pipe's descriptors: it is one of the session's *users*, in the state block's
    table (pid and start time, so the kernel tells when it has died, even unreaped) for
    as long as it maps the state block (so not after an exec, which unmaps everything).
    The session ends when the owner and every user have closed or died; the last one
    sends the END. Before fork() the parent keeps a place in the table for the child
    (which fills it in with its pid at once), so that the parent closing its copy right
    after fork() -- the stdlib's idiom -- can never end the session under the child.
    """

    def __init__(self, pipe: Pipe, which: str, resume: int | None) -> None:
        self.pipe = pipe
        self.end = which
        self.peer = "b" if which == "a" else "a"
        self.readable = pipe.duplex or which == "a"
        self.writable = pipe.duplex or which == "b"
        self.closed = True  # until built: finish() then has nothing to do
        self.moved = False  # passed to another process (pickled)
        self.pid = os.getpid()  # the process these handles belong to
        self.owner = True  # False in a forked copy
        self.slot: int | None = None  # a forked copy's place in the users table ...
        self.slot_pid = 0  # ... valid in this process only
        self.kept: int | None = None  # the place kept for a child being forked now
        self.session = 0
        self.owed: list[int] = []  # END markers of earlier sessions still to send
        self.said_sent = False
        self.ready: deque[bytes] = deque()  # whole messages received, not yet delivered
        self.run: _frames.Assembly | None = None
        self.eof = False
        self.checked = 0.0
        self.tx: osipc.Sender[bytes] | None = None
        self.rx: osipc.Receiver[bytes] | None = None
        self.mine: osipc.Lock | None = None
        self.peer_lock: osipc.Lock | None = None
        self.state: StateBlock | None = None
        self.state_id: tuple[int, int] | None = None  # (st_dev, st_ino) of the state block
        self.limit: int | None = None
        common = common_options(pipe.options)
        try:
            self.mine = osipc.Lock(companion("sem", pipe.name, which), **common)
            self._claim(wait=2.0 if resume else 0.0)
            self._open_shared(common)
            if resume is None:
                self._start_session()
            else:
                self._resume_session(resume)
        except BaseException:
            self.release()
            raise
        self.closed = False
        _OPEN.add(self)

    # -- opening ---------------------------------------------------------------------------

    def _claim(self, wait: float) -> None:
        assert self.mine is not None
        try:
            self.mine.acquire(timeout=wait)
        except osipc.Timeout:
            holder = self.mine.holder
            where = f"process {holder}" if holder else "another process"
            raise osipc.AlreadyExists(
                f"end {self.end!r} of pipe {self.pipe.name!r} is open in {where}; an end "
                "belongs to one process at a time (close it there first)",
                errno=errno.EBUSY,
            ) from None

    def _open_shared(self, common: dict[str, Any], create: bool = True) -> None:
        """The state, the peer's lock and the channels (``create=False``: NotFound if any
        is missing, for a forked copy of an end whose pipe may have been removed)."""
        pipe = self.pipe
        self.state = StateBlock(
            pipe.name,
            MAGIC_PIPE,
            (int(pipe.duplex), TRANSPORT_CODES[pipe.transport]),
            _describe,
            init=self._init_state,
            size=STATE_WORDS,
            create=create,
            **common,
        )
        assert self.state.words is not None
        self.state_id = None
        self.peer_lock = osipc.Lock(companion("sem", pipe.name, self.peer), create=create, **common)
        # The channels before the session: a failure here must not leave a session that
        # its peer would take for one that ended.
        options = dict(pipe.options, create=create)
        if self.readable:
            self.rx = osipc.receiver(pipe.channel(self.end), **options)
        if self.writable:
            self.tx = osipc.sender(pipe.channel(self.peer), **options)
            self.limit = self.tx.capabilities.max_message_size

    def _init_state(self, words: memoryview) -> None:
        """A new state block, under its creation lock. Its sessions are numbered above a
        base from the clock (microseconds), so above any an earlier block of this name
        gave out (an end pickled then can never resume a session of this one), unless it
        gave out more than one a microsecond. Runs that wait in the channels from before
        (osipc gc removed that block) become its first sessions (see the module docs)."""
        base = time.time_ns() // 1000
        words[W_BASE] = base
        for end in ENDS:
            at = _END_BASE[end]
            for field in (GEN, CLOSED, OVER, MARKED, SENT):
                words[at + field] = base
        for end in ENDS:
            runs = self._renumber_waiting(end, base)
            if runs:
                at = _END_BASE["b" if end == "a" else "a"]  # the end that sent them
                for field in (GEN, CLOSED, OVER, MARKED, SENT):
                    words[at + field] = base + runs

    def _renumber_waiting(self, end: str, base: int) -> int:
        """Under the creation lock of a new state block, with nobody else at the pipe:
        put the runs waiting in ``end``'s channel back as sessions ``base + 1, ...``,
        each ending with its END, dropping those a reader had begun; their number."""
        options = dict(self.pipe.options, create=False)
        try:
            rx = osipc.receiver(self.pipe.channel(end), **options)
        except osipc.NotFound:
            return 0
        try:
            tx = osipc.sender(self.pipe.channel(end), **options)
        except BaseException:
            rx.close()
            raise
        with rx, tx:
            runs: dict[int, list[bytes]] = {}  # by old session, in the channel's order
            for frame in waiting_frames(rx):
                if frame is None:
                    continue  # a plain osipc end(): readers pass over it
                if len(frame) >= _frames.P_HEAD.size:  # (shorter: no osipc_mp frame)
                    _, session = _frames.P_HEAD.unpack_from(frame)
                    runs.setdefault(session, []).append(frame)
            number = base
            for frames in runs.values():
                if not frames[0][0] & _frames.P_OPENING:
                    continue  # what a reader that died left of it, or a lone END
                number += 1
                for frame in frames:  # they fitted before, and take the same room anywhere
                    tx.send(_frames.pipe_renumbered(frame, number), timeout=0)
                if frames[-1][0] != _frames.P_END:  # its sender was killed
                    try:
                        tx.send(_frames.pipe_end(number), timeout=0)
                    except osipc.Timeout:
                        pass  # full: its reader sees the session over instead
        return number - base

    def _reopen_in_child(self) -> None:
        """In a forked child, on first use: the parent's session with new handles (osipc
        closed the parent's in the child), as one of its users; the end's lock stays the
        owner's."""
        if self.slot is None or self.slot_pid != os.getpid():
            raise osipc.Unsupported(
                f"end {self.end!r} of pipe {self.pipe.name!r} was open in process {self.pid} "
                f"when it forked this one, but this process is not among the end's users "
                f"(at most {SLOTS} processes share an end): close the end before forking "
                "processes that do not use it, or open it by name where it is needed"
            )
        pipe = self.pipe
        common = common_options(pipe.options)
        self.owner = False
        parent, old_state = self.pid, self.state
        self.state = None
        self.tx = self.rx = self.mine = self.peer_lock = None
        self.pid = os.getpid()
        try:
            # Never create: a pipe removed since the fork is gone for this copy too (a
            # child that exits after its parent unlinked the pipe must not make it again).
            self.mine = osipc.Lock(companion("sem", pipe.name, self.end), create=False, **common)
            self._open_shared(common, create=False)
        except osipc.NotFound as exc:
            self.closed = True
            _OPEN.discard(self)
            self.release()
            raise osipc.NotFound(
                f"pipe {pipe.name!r} was removed after process {parent} forked with end "
                f"{self.end!r} open ({exc})",
                errno=errno.ENOENT,
            ) from exc
        except BaseException:
            self.closed = True
            _OPEN.discard(self)
            self.release()
            raise
        finally:
            # Unmapped only now: the child maps the state block throughout (see _user).
            if old_state is not None:
                quietly(old_state.close)

    def _word(self, end: str, field: int) -> int:
        assert self.state is not None
        assert self.state.words is not None
        return int(self.state.words[_END_BASE[end] + field])

    def _set(self, end: str, field: int, value: int) -> None:
        assert self.state is not None
        assert self.state.words is not None
        self.state.words[_END_BASE[end] + field] = value

    # -- users: forked copies --------------------------------------------------------------

    def _user(self, end: str, slot: int) -> int | None:
        """Who is in place ``slot`` of ``end``'s users table: a live process's pid, 0 for
        a place kept for a child being forked, None if the place is free (or its process
        has died, or the child it was kept for never came)."""
        at = USERS + 3 * slot
        pid = self._word(end, at + U_PID)
        if pid:
            if _process_start(pid) != self._word(end, at + U_START):
                return None
            # A child that exec'd (subprocess.Popen with preexec_fn, fork + exec) keeps
            # its pid and start time, but exec unmapped the state block: it holds no
            # copy, as exec closes a stdlib pipe's descriptors.
            return pid if pid == os.getpid() or self._maps_state(pid) else None
        return 0 if time.monotonic_ns() < self._word(end, at + U_UNTIL) else None

    def _maps_state(self, pid: int) -> bool:
        """Does process ``pid`` still map this pipe's state block (True if unknown)?"""
        if self.state_id is None:
            assert self.state is not None
            try:
                self.state_id = osipc.info(self.state.url).identity
            except osipc.OsipcError:
                return True
            if self.state_id is None:
                return True
        return _maps(pid, self.state_id)

    def _users(self, end: str) -> list[int]:
        """The users of ``end``'s session other than this process (see ``_user``)."""
        me = os.getpid()
        found = (self._user(end, slot) for slot in range(SLOTS))
        return [pid for pid in found if pid is not None and pid != me]

    def _set_user(self, slot: int, pid: int, start: int, until: int) -> None:
        at = USERS + 3 * slot
        self._set(self.end, at + U_START, start)  # before the pid, which readers look at
        self._set(self.end, at + U_PID, pid)
        self._set(self.end, at + U_UNTIL, until)

    def keep_place_for_child(self) -> None:
        """Before fork(): keep a place among this end's users for the child."""
        self.kept = None
        if self.closed:
            return
        try:
            if self.pid != os.getpid():
                self._reopen_in_child()
            assert self.state is not None
            with holding(self.state.lock, "pipe state", timeout=FORK_LOCK_WAIT):
                for slot in range(SLOTS):
                    if self._user(self.end, slot) is None:
                        until = time.monotonic_ns() + int(FORK_WAIT * 1e9)
                        self._set_user(slot, 0, 0, until)
                        self.kept = slot
                        return
        except Exception:
            pass  # no place: the child cannot use the end, and is told so if it tries

    def join_in_child(self) -> None:
        """After fork(), in the child: take the place the parent kept (no lock: it is
        this child's alone, unless it lapsed, which takes FORK_WAIT)."""
        slot, self.kept = self.kept, None
        self.owner = False
        self.slot = None
        self.ready.clear()  # the parent delivers what it had received, not us too
        self.run = None
        state = self.state
        if slot is None or state is None or state.words is None:
            return
        at = USERS + 3 * slot
        if self._word(self.end, at + U_PID) or not self._word(self.end, at + U_UNTIL):
            return  # lapsed, and taken by another
        me = os.getpid()
        self._set_user(slot, me, _process_start(me) or 0, 0)
        self.slot, self.slot_pid = slot, me

    def _leave(self) -> None:
        """Under the state lock: give up this forked copy's place among the users."""
        if self.slot is not None and self._user(self.end, self.slot) == os.getpid():
            self._set_user(self.slot, 0, 0, 0)
        self.slot = None

    def _owner_done(self, end: str, session: int) -> bool:
        """Has the process that opened ``end``'s ``session`` closed it, or died?"""
        if self._word(end, CLOSED) >= session:
            return True
        if self._word(end, HANDOFF) == session and time.monotonic_ns() < self._word(
            end, HANDOFF_UNTIL
        ):
            return False  # on its way to another process
        lock = self.mine if end == self.end else self.peer_lock
        assert lock is not None
        return lock.holder is None

    # -- sessions --------------------------------------------------------------------------

    def _start_session(self) -> None:
        assert self.state is not None
        me, peer = self.end, self.peer
        with holding(self.state.lock, f"opening end {me!r} of pipe {self.pipe.name!r}"):
            handoff = self._word(me, HANDOFF)
            if (
                handoff
                and handoff == self._word(me, GEN)
                and time.monotonic_ns() < self._word(me, HANDOFF_UNTIL)
            ):
                raise osipc.AlreadyExists(
                    f"end {me!r} of pipe {self.pipe.name!r} is being passed to another "
                    "process (it was pickled); open it there, or wait until that is over",
                    errno=errno.EBUSY,
                )
            users = [self._user(me, slot) for slot in range(SLOTS)]
            user = next((pid for pid in users if pid is not None), None)
            if user is not None:
                where = f"process {user}" if user else "a process being forked"
                raise osipc.AlreadyExists(
                    f"end {me!r} of pipe {self.pipe.name!r} is still open in {where}, a "
                    "child forked while it was open (it holds a copy, as a forked child "
                    "holds a stdlib pipe's descriptors); close it there first",
                    errno=errno.EBUSY,
                )
            for slot in range(SLOTS):
                self._set_user(slot, 0, 0, 0)
            self._set(me, HANDOFF, 0)
            previous = self._word(me, GEN)
            session = previous + 1
            if (
                previous
                and self._word(me, SENT) < previous
                and self._word(me, MARKED) < previous
                and self._word(peer, GEN) < previous
            ):
                # Our previous session sent nothing (not even an END) and no peer session
                # paired with it: it left no trace, so this one takes its number, and the
                # peer that opens next talks to us, not to a session that had nothing.
                session = previous
                for field in (CLOSED, OVER):
                    self._set(me, field, min(self._word(me, field), previous - 1))
            # A peer session that ended without sending anything (it only waited to
            # receive, or did nothing at all) has nothing for us: talk to the next one.
            while (
                session <= self._word(peer, GEN)
                and self._word(peer, SENT) < session
                and self._ended(peer, session)
            ):
                session += 1
            owed = [
                s
                for s in sorted({self._word(me, OWED), previous})
                if s
                and self._word(me, MARKED) < s < session
                and self.writable
                and not self._ended(peer, s)
            ]
            self._set(me, OWED, owed[-1] if owed else 0)
            self._set(me, GEN, session)
        self.session = session
        self.owed = owed
        if owed:
            self._pay_owed(timeout=0)

    def _resume_session(self, session: int) -> None:
        assert self.state is not None
        me = self.end
        with holding(self.state.lock, f"opening end {me!r} of pipe {self.pipe.name!r}"):
            if self._word(me, GEN) != session:
                raise osipc.Broken(
                    f"end {me!r} of pipe {self.pipe.name!r} passed to this process was "
                    "reopened elsewhere before it arrived (its session is over)",
                    errno=errno.EPIPE,
                )
            self._set(me, HANDOFF, 0)
            owed = self._word(me, OWED)
        self.session = session
        self.owed = [owed] if owed and owed > self._word(me, MARKED) else []
        self.said_sent = self._word(me, SENT) >= session

    # -- the peer --------------------------------------------------------------------------

    def _ended(self, end: str, session: int) -> bool:
        """Has session ``session`` of ``end`` ended: replaced, or its owner and every
        user (but this process: it does not wait for itself) closed or died?"""
        gen = self._word(end, GEN)
        if gen < session:
            return False  # not opened yet
        if gen > session or self._word(end, OVER) >= session:
            return True
        return self._owner_done(end, session) and not self._users(end)

    def _peer_ended(self, cheap: bool = False) -> bool:
        """Has the peer session ended? ``cheap``: only what shared memory tells at once,
        plus the lock and the users (some 100 us) at most once per PEER_CHECK."""
        peer, session = self.peer, self.session
        gen = self._word(peer, GEN)
        if gen > session or (gen == session and self._word(peer, OVER) >= session):
            return True
        if gen < session:
            return False
        if cheap:
            now = time.monotonic()
            if now - self.checked < PEER_CHECK:
                return False
            self.checked = now
        return self._ended(peer, session)

    # -- sending ---------------------------------------------------------------------------

    def live(self) -> None:
        if self.closed:
            if self.moved:
                raise osipc.Closed(
                    f"end {self.end!r} of pipe {self.pipe.name!r} was passed to another "
                    "process (pickled); it is used there now"
                )
            raise osipc.Closed(f"end {self.end!r} of pipe {self.pipe.name!r} is closed")
        if self.pid != os.getpid():
            self._reopen_in_child()

    def sender(self) -> osipc.Sender[bytes]:
        self.live()
        if self.tx is None:
            raise osipc.Unsupported(
                f"end {self.end!r} of the one-way pipe {self.pipe.name!r} only receives"
            )
        return self.tx

    def _put(self, frame: bytes, timeout: float | None = None) -> None:
        """Send one frame, raising Broken if the peer session ends while we wait for room
        (a stdlib pipe's writer gets EPIPE when its reader goes, however full it is)."""
        tx = self.tx
        assert tx is not None
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            left = PEER_CHECK if end is None else min(PEER_CHECK, max(0.0, end - time.monotonic()))
            try:
                tx.send(frame, timeout=left)
                return
            except osipc.Timeout:
                if self._peer_ended():
                    raise self._broken() from None
                if end is not None and time.monotonic() >= end:
                    raise

    def _broken(self) -> osipc.Broken:
        return osipc.Broken(
            f"pipe {self.pipe.name!r}: end {self.peer!r} closed (or its process ended); "
            "nothing more can be sent to it",
            errno=errno.EPIPE,
        )

    def _pay_owed(self, timeout: float | None) -> None:
        """Send the END markers earlier sessions of this end owe their readers."""
        assert self.tx is not None
        assert self.state is not None
        while self.owed:
            session = self.owed[0]
            if session > self._word(self.end, MARKED):  # else another copy sent it
                try:
                    self.tx.send(_frames.pipe_end(session), timeout=timeout)
                except osipc.Timeout:
                    return  # the channel is full: before our first message, then
            self.owed.pop(0)
            with holding(self.state.lock, "pipe state"):
                self._set(self.end, MARKED, max(session, self._word(self.end, MARKED)))
                if not self.owed:
                    self._set(self.end, OWED, 0)

    def send_payload(self, payload: bytes) -> None:
        self.sender()
        if self._peer_ended(cheap=True):
            raise self._broken()
        if self.owed:
            self._pay_owed(timeout=None)
        opening = False
        if not self.said_sent:
            opening = self._word(self.end, SENT) < self.session  # (not a forked copy's)
            self._set(self.end, SENT, self.session)  # before the first frame: see _start
            self.said_sent = True
        for frame in _frames.pipe_frames(payload, self.session, self.limit, opening):
            self._put(frame)

    # -- receiving -------------------------------------------------------------------------

    def receiver(self) -> osipc.Receiver[bytes]:
        self.live()
        if self.rx is None:
            raise osipc.Unsupported(
                f"end {self.end!r} of the one-way pipe {self.pipe.name!r} only sends"
            )
        return self.rx

    def fill(self, timeout: float | None) -> bool:
        """Make sure a whole message waits in ``ready``, or EOF is known; False if neither
        within ``timeout`` (None: no limit)."""
        rx = self.receiver()
        if self.ready or self.eof:
            return True
        end = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            left = PEER_CHECK if end is None else min(PEER_CHECK, max(0.0, end - time.monotonic()))
            try:
                frame = rx.recv(timeout=left)
            except osipc.EndOfStream:
                continue  # a plain osipc end() in the channel: not a session's END
            except osipc.Timeout:
                if self._peer_ended():
                    # It has gone: everything it sent is in the channel by now.
                    while not (self.ready or self.eof):
                        try:
                            self._take(rx.recv(timeout=0))
                        except osipc.EndOfStream:
                            continue
                        except osipc.Timeout:
                            self.run = None  # a message it did not finish: dropped
                            self.eof = True
                    return True
                if end is not None and time.monotonic() >= end:
                    return False
                continue
            self._take(frame)
            if self.ready or self.eof:
                return True

    def _take(self, frame: bytes) -> None:
        """File one frame: a whole message goes to ``ready``, END of our peer session
        sets EOF, frames of other sessions are dropped."""
        if len(frame) < _frames.P_HEAD.size:
            raise osipc.DecodeError(
                f"{self.pipe.channel(self.end)}: a {len(frame)}-byte frame that is not an "
                "osipc_mp pipe frame (is another program writing to this channel?)",
                codec="pickle",
                data=frame,
            )
        kind, session = _frames.P_HEAD.unpack_from(frame)
        kind &= ~_frames.P_OPENING
        if session < self.session:
            return  # left by an earlier session whose reader has gone: dropped
        if session > self.session:
            # A later session of the peer: ours ended without its END (never expected,
            # since a new session sends the old END first). This frame is not ours.
            self.run = None
            self.eof = True
            return
        view = memoryview(frame)
        if kind == _frames.P_WHOLE:
            self.run = None
            self.ready.append(frame[_frames.P_HEAD.size :])
        elif kind == _frames.P_FIRST:
            (total,) = _frames.P_TOTAL.unpack_from(frame, _frames.P_HEAD.size)
            self.run = _frames.Assembly(total)
            self.run.add(view[_frames.P_FIRST_SIZE :])
        elif kind in (_frames.P_MORE, _frames.P_LAST):
            if self.run is None:
                return  # the rest of a message whose head this end never saw
            self.run.add(view[_frames.P_HEAD.size :])
            if kind == _frames.P_LAST:
                run, self.run = self.run, None
                if run.complete():
                    self.ready.append(bytes(run.buffer))
        elif kind == _frames.P_END:
            self.run = None
            self.eof = True
        else:
            raise osipc.DecodeError(
                f"{self.pipe.channel(self.end)}: a frame of unknown kind {kind}",
                codec="pickle",
                data=frame,
            )

    # -- closing ---------------------------------------------------------------------------

    def finish(self) -> None:
        """Close this copy of the end; the last of its session's owner and users to close
        ends the session (an END after everything sent, unless the peer has ended; the
        session recorded as over; what is left in its channel dropped). Quiet: also the
        finalizer at exit and garbage collection."""
        if self.closed:
            return
        try:
            if self.pid != os.getpid() and self.slot is not None and self.slot_pid == os.getpid():
                self._reopen_in_child()  # a forked copy never used here: to leave the session
            mine = self.pid == os.getpid() and (self.owner or self.slot is not None)
            if mine and self.state is not None:
                self._finish_session()
        except Exception:
            pass  # the peer sees the end's lock go, or this process die, instead
        finally:
            self.closed = True
            _OPEN.discard(self)
            self.release()

    def _finish_session(self) -> None:
        assert self.state is not None
        me, session = self.end, self.session
        with holding(self.state.lock, "pipe state"):
            last = (
                self._word(me, GEN) == session
                and self._word(me, OVER) < session
                and not self._users(me)
                and (self.owner or self._owner_done(me, session))
            )
            if not last:
                if self.owner:
                    self._set(me, CLOSED, max(session, self._word(me, CLOSED)))
                else:
                    self._leave()
                return
        marked = False
        # A session that sent nothing writes no END either (one nobody reads would stay
        # in the channel): its reader sees it over, within PEER_CHECK.
        sent = self._word(me, SENT) >= session
        if self.tx is not None and sent and not self._peer_ended():
            try:
                self._pay_owed(timeout=CLOSE_WAIT)
                if not self.owed:
                    self._put(_frames.pipe_end(session), timeout=CLOSE_WAIT)
                    marked = True
            except (osipc.Timeout, osipc.Broken):
                pass  # full, or it went meanwhile: it sees the session over instead
        with holding(self.state.lock, "pipe state"):
            if self.owner:
                self._set(me, CLOSED, max(session, self._word(me, CLOSED)))
            else:
                self._leave()
            self._set(me, OVER, max(session, self._word(me, OVER)))
            if marked:
                self._set(me, MARKED, max(session, self._word(me, MARKED)))
            if self._word(self.peer, GEN) <= session:
                # What is left in our channel was for this session, which is over (as a
                # stdlib pipe's unread data goes with it); a later peer session's frames
                # would be for our next one, but under the lock none can have begun.
                self._drop_leftovers()

    def _drop_leftovers(self) -> None:
        """Under the state lock: empty this end's channel of what nobody will read."""
        if self.rx is None:
            return
        stop = time.monotonic() + DROP_WAIT
        for _ in waiting_frames(self.rx):
            if time.monotonic() >= stop:
                return

    def hand_off(self) -> int:
        """Give the end up for another process that resumes this session (pickling)."""
        self.live()
        if not self.owner:
            raise TypeError(
                f"end {self.end!r} of pipe {self.pipe.name!r} was inherited from the parent "
                "process (fork); pass the pipe's name and open the end where it is needed"
            )
        if self.ready or self.run is not None:
            raise TypeError(
                f"end {self.end!r} of pipe {self.pipe.name!r} holds messages it has received "
                "(poll() found them): recv them before passing the end to another process"
            )
        assert self.state is not None
        with holding(self.state.lock, "pipe state"):
            self._set(self.end, HANDOFF, self.session)
            self._set(self.end, HANDOFF_UNTIL, time.monotonic_ns() + int(HANDOFF_WAIT * 1e9))
            self._set(self.end, OWED, self.owed[0] if self.owed else 0)
        self.closed = self.moved = True
        _OPEN.discard(self)
        self.release()
        return self.session

    def release(self) -> None:
        """Close the handles; closing the end's lock releases the end."""
        handles: list[Any] = [self.tx, self.rx, self.peer_lock, self.state, self.mine]
        quietly(*(handle.close for handle in handles if handle is not None))


class Connection:
    """One end of a :class:`Pipe`, with the API of ``multiprocessing.connection.Connection``.

    ``send(obj)`` pickles (``recv()`` unpickles, **running code chosen by the sender**);
    ``send_bytes``/``recv_bytes``/``recv_bytes_into`` move bytes as they are. A message
    of any size goes (larger ones in chunks, reassembled whole). Messages wait in the
    channel, so a sender may finish and exit before its peer starts.

    End of stream: when the other end's session is over -- it called ``close()``, or its
    process exited (normally: ``close()`` runs then by itself; or killed, even before this
    end opened) -- ``recv`` raises EOFError (``osipc.EndOfStream``) after everything it
    sent, and ``send`` raises BrokenPipeError (``osipc.Broken``). ``poll()`` is True when
    ``recv`` would not block, EOF included.

    Passed to another process (pickled, as ``multiprocessing.Process(args=...)`` does
    with the spawn and forkserver start methods), the end moves there and this object
    becomes unusable. A child forked with the end open holds a copy, as with a stdlib
    pipe: the end is over when every copy is closed or its process has exited (but a
    process never waits for its own copy of the other end). Differences from the stdlib: no
    ``fileno()`` (an shm channel has no descriptor: wait with ``poll(timeout)``); using
    a closed connection raises ``osipc.Closed`` (a ValueError, not OSError); the wrong
    direction raises ``osipc.Unsupported`` (an OSError).
    """

    def __init__(self, state: _End) -> None:
        self._s = state
        self._finalizer = finalizer(self, _End.finish, state)

    @property
    def pipe(self) -> Pipe:
        return self._s.pipe

    @property
    def end(self) -> str:
        return self._s.end

    @property
    def peer(self) -> str:
        return self._s.peer

    @property
    def readable(self) -> bool:
        return self._s.readable

    @property
    def writable(self) -> bool:
        return self._s.writable

    @property
    def session(self) -> int:
        """This end's session number (see the module docs)."""
        return self._s.session

    # -- sending ---------------------------------------------------------------------------

    def send(self, obj: Any) -> None:
        """Send a picklable object, waiting for room in the channel.

        Raises:
            osipc.EncodeError: it cannot be pickled; nothing was sent.
            BrokenPipeError: (``osipc.Broken``) the other end's session is over.
        """
        self._s.sender()
        self._s.send_payload(dumps(obj))

    def send_bytes(self, buf: Any, offset: int = 0, size: int | None = None) -> None:
        """Send ``size`` bytes of a bytes-like object from ``offset``, as one message."""
        self._s.sender()
        view = memoryview(buf)
        if view.itemsize > 1:
            view = view.cast("B")
        total = view.nbytes
        if offset < 0:
            raise ValueError("offset is negative")
        if total < offset:
            raise ValueError("buffer length < offset")
        if size is None:
            size = total - offset
        elif size < 0:
            raise ValueError("size is negative")
        elif offset + size > total:
            raise ValueError("buffer length < offset + size")
        self._s.send_payload(bytes(view[offset : offset + size]))

    # -- receiving -------------------------------------------------------------------------

    def _next(self) -> bytes:
        state = self._s
        state.fill(None)
        if state.ready:
            return state.ready.popleft()
        raise osipc.EndOfStream(
            f"pipe {state.pipe.name!r}: end {state.peer!r} closed (or its process ended)"
        )

    def recv(self) -> Any:
        """The next object, waiting as long as it takes.

        Raises:
            EOFError: (``osipc.EndOfStream``) the other end's session is over and
                everything it sent has been received.
            osipc.DecodeError: the message is not a pickle this process can load.
        """
        return loads(self._next(), self._s.pipe.channel(self._s.end))

    def recv_bytes(self, maxlength: int | None = None) -> bytes:
        """The next message's bytes.

        Raises:
            osipc.MessageTooLarge: (an OSError, as the stdlib's) it is longer than
                ``maxlength``; it stays for the next call.
            EOFError: as ``recv``.
        """
        if maxlength is not None and maxlength < 0:
            raise ValueError("negative maxlength")
        frame = self._next()
        if maxlength is not None and len(frame) > maxlength:
            self._s.ready.appendleft(frame)
            raise osipc.MessageTooLarge(
                f"bad message length: the next message has {len(frame)} bytes, more than "
                f"maxlength={maxlength}",
                size=len(frame),
                limit=maxlength,
            )
        return frame

    def recv_bytes_into(self, buf: Any, offset: int = 0) -> int:
        """Write the next message into ``buf`` at byte ``offset``; return its length.

        Raises:
            multiprocessing.BufferTooShort: it does not fit; the exception holds it
                (``exc.args[0]``) and it is consumed, as in the stdlib.
            EOFError: as ``recv``.
        """
        view = memoryview(buf)
        if view.readonly:
            raise TypeError("recv_bytes_into needs a writable buffer")
        view = view.cast("B")
        if offset < 0:
            raise ValueError("negative offset")
        if offset > view.nbytes:
            raise ValueError("offset too large")
        frame = self._next()
        if view.nbytes - offset < len(frame):
            raise BufferTooShort(frame)
        view[offset : offset + len(frame)] = frame
        return len(frame)

    def poll(self, timeout: float | None = 0.0) -> bool:
        """True if ``recv`` has something to return (a message or EOF) within ``timeout``
        seconds (0: look once; None: wait as long as it takes)."""
        return self._s.fill(timeout)

    # -- lifetime --------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._s.closed

    def close(self) -> None:
        """End this end's session: the peer's ``recv`` raises EOFError after what was sent
        (and its ``send`` BrokenPipeError); close the handles. Idempotent; also done at
        exit and when the object is garbage collected. The pipe stays (``unlink()``)."""
        self._finalizer()

    def fileno(self) -> int:
        """Unsupported: wait with ``poll(timeout)`` (an shm channel has no descriptor, so
        ``multiprocessing.connection.wait`` cannot watch a Connection)."""
        raise osipc.Unsupported(
            f"pipe {self._s.pipe.name!r}: a Connection has no file descriptor; wait with "
            "poll(timeout)"
        )

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __reduce__(self) -> Any:
        # The end moves to whoever unpickles it (a multiprocessing child, say): it resumes
        # this session there. Until it does (HANDOFF_WAIT at most), the peer waits for it.
        state = self._s
        session = state.hand_off()
        self._finalizer.detach()
        return (_resume, (state.pipe, state.end, session))

    def __copy__(self) -> Connection:
        raise TypeError("a Connection cannot be copied: an end belongs to one process")

    def __deepcopy__(self, memo: dict[int, Any] | None) -> Connection:
        raise TypeError("a Connection cannot be copied: an end belongs to one process")

    def __repr__(self) -> str:
        state = self._s
        shown = "moved" if state.moved else ("closed" if state.closed else "open")
        return (
            f"<osipc_mp.Connection {state.pipe.name!r} end {state.end!r} "
            f"session {state.session} {shown}>"
        )


def _resume(pipe: Pipe, end: str, session: int) -> Connection:
    return Connection(_End(pipe, end, resume=session))
