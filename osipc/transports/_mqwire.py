"""The wire rule of osipc's message-queue transports (mq://, sysv+mq://), which
osipc/_msgc.c applies too: unless ``raw``, a payload that is empty or starts with ESCAPE
goes out with one ESCAPE byte in front, and a zero-length message ends the stream."""

from __future__ import annotations

from osipc._codecs import Buffer

ESCAPE = 0xC1
ESCAPE_BYTE = b"\xc1"


def escapes(frame: Buffer, raw: bool) -> bool:
    """Whether ``frame`` goes out with an ESCAPE byte in front."""
    return not raw and (len(frame) == 0 or frame[0] == ESCAPE)


def on_wire(frame: Buffer, raw: bool) -> Buffer:
    """``frame`` as it goes out."""
    return ESCAPE_BYTE + bytes(frame) if escapes(frame, raw) else frame


def unescape(data: bytes, raw: bool) -> bytes | None:
    """A message as it came off the wire: its payload, or None for the end of the stream."""
    if raw:
        return data
    if not data:
        return None
    return data[1:] if data[0] == ESCAPE else data
