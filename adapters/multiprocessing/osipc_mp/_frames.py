"""How a message larger than a channel's largest frame travels: as a run of chunks.

Queue frames: a message that fits is one frame, its pickle as it is (a pickle starts with
0x80, so osipc's own ``pickle`` receivers read these queues too). A larger one is a run
``FIRST(total) MORE* LAST``, each frame ``0x00 kind [total:u64] piece``. Writers send a
run while holding the queue's put lock and readers take it while holding its get lock,
so runs never interleave and one reader gets a whole run; a run cut short (its writer
died or gave up) is dropped by the reader, so a half message is never delivered.

Pipe frames all carry the sending end's session: ``kind:u8 session:u64 [total:u64]
piece``, with the same FIRST/MORE/LAST runs, WHOLE for a message in one frame and END
for the end of a session's stream (see ``_connection``). The first frame of the first
message a session sends has OPENING set in its kind: a channel's frames of a session
that do not begin with it are what a reader left of a stream it had begun to read.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

# Queue
CHUNK = 0
FIRST, MORE, LAST = 1, 2, 3
Q_HEAD = struct.Struct("<BB")
Q_TOTAL = struct.Struct("<Q")
Q_FIRST_SIZE = Q_HEAD.size + Q_TOTAL.size

# Pipe
P_WHOLE, P_FIRST, P_MORE, P_LAST, P_END = 1, 2, 3, 4, 5
P_OPENING = 0x80  # a flag in the kind (see the module docs)
P_HEAD = struct.Struct("<BQ")
P_TOTAL = Q_TOTAL
P_FIRST_SIZE = P_HEAD.size + P_TOTAL.size


def queue_frames(payload: bytes, limit: int | None) -> Iterator[bytes]:
    """The frames of one queue message, none longer than ``limit`` (None: no limit)."""
    if limit is None or (len(payload) <= limit and payload[:1] != b"\0"):
        yield payload
        return
    piece = limit - Q_FIRST_SIZE
    if piece < 1:
        raise ValueError(f"a channel whose largest message is {limit} bytes cannot carry chunks")
    view = memoryview(payload)
    total = len(payload)
    yield b"".join((Q_HEAD.pack(CHUNK, FIRST), Q_TOTAL.pack(total), view[:piece]))
    start = piece
    while start < total:
        end = start + piece
        kind = LAST if end >= total else MORE
        yield b"".join((Q_HEAD.pack(CHUNK, kind), view[start:end]))
        start = end
    if total <= piece:  # everything fitted in FIRST (it began with 0x00): close the run
        yield Q_HEAD.pack(CHUNK, LAST)


def pipe_frames(
    payload: bytes, session: int, limit: int | None, opening: bool = False
) -> Iterator[bytes]:
    """The frames of one pipe message sent in ``session`` (``opening``: its first)."""
    flag = P_OPENING if opening else 0
    if limit is None or len(payload) + P_HEAD.size <= limit:
        yield b"".join((P_HEAD.pack(P_WHOLE | flag, session), payload))
        return
    piece = limit - P_FIRST_SIZE
    if piece < 1:
        raise ValueError(f"a channel whose largest message is {limit} bytes cannot carry chunks")
    view = memoryview(payload)
    total = len(payload)
    yield b"".join((P_HEAD.pack(P_FIRST | flag, session), P_TOTAL.pack(total), view[:piece]))
    start = piece
    while start < total:
        end = start + piece
        kind = P_LAST if end >= total else P_MORE
        yield b"".join((P_HEAD.pack(kind, session), view[start:end]))
        start = end


def pipe_end(session: int) -> bytes:
    return P_HEAD.pack(P_END, session)


def pipe_renumbered(frame: bytes, session: int) -> bytes:
    """``frame`` as sent in ``session``."""
    return b"".join((P_HEAD.pack(frame[0], session), frame[P_HEAD.size :]))


class Assembly:
    """One chunked message being put back together."""

    __slots__ = ("buffer", "total")

    def __init__(self, total: int) -> None:
        self.total = total
        self.buffer = bytearray()

    def add(self, piece: memoryview | bytes) -> None:
        self.buffer += piece

    def complete(self) -> bool:
        return len(self.buffer) == self.total
