"""Stub of the optional C part osipc/_msgc.c: one message in one call."""

from typing import Any

def mq_send(
    mqd: int, frame: Any, priority: int, raw: bool, limit: int, seconds: float, /
) -> bool | float | None: ...
def mq_recv(
    mqd: int, msgsize: int, raw: bool, seconds: float, /
) -> tuple[bytes | None, int] | bool | float | None: ...
def msg_send(msqid: int, mtype: int, frame: Any, raw: bool, limit: int, /) -> bool | None: ...
def msg_recv(
    msqid: int, type_filter: int, maxsize: int, raw: bool, /
) -> tuple[bytes | None, int] | None: ...
