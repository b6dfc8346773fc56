"""multiprocessing's Queue, Pipe, Value, Array and Lock, by name, between unrelated processes.

``multiprocessing`` shares these objects only with the children a parent starts, and it
shows: a child that touches a queue after its parent exited gets FileNotFoundError from
SemLock; a receive loop can only be stopped with ``terminate()``. Here every object has
a name, and any process of the same user that knows the name reaches it, started in any
order, before or after the others exit::

    import osipc_mp as mp                          # the only change: the import ...

    q = mp.Queue("jobs")                           # ... and a name for each object
    q.put({"n": 1})                                # another process: mp.Queue("jobs").get()

    conn = mp.Pipe("chat").end("a")                # the other process opens end "b"
    while True:
        try:
            print(conn.recv())
        except EOFError:                           # "b" closed, or its process ended
            break

    counter = mp.Value("counter", "i", 0)          # 0 only if this call creates it
    with counter.get_lock():
        counter.value += 1

    mp.unlink("jobs"); mp.unlink("chat"); mp.unlink("counter")   # close() never removes

What each object is (osipc URLs, see ``osipc ls``); ``NAME--...`` names belong to
osipc_mp, so a name given to osipc_mp may not contain ``--``:

* :class:`Queue` ``(name, maxsize=0, *, transport="shm")``: the ring ``shm://NAME`` (or
  ``mq://NAME``), its state ``shm://NAME--state``, and on shm the locks
  ``sem://NAME--put``, ``sem://NAME--get`` (and ``sem://NAME--space`` when bounded).
* :class:`Pipe` ``(name, duplex=True)``, ``.end("a" | "b")`` -> :class:`Connection`:
  the channels ``shm://NAME--a`` and ``shm://NAME--b``, the end locks ``sem://NAME--a``
  and ``sem://NAME--b``, and its state ``shm://NAME--state``.
* :class:`Value` ``(name, typecode, *initial)`` and :class:`Array` ``(name, typecode,
  size_or_initializer)``: ``osipc.SharedMemory`` ``shm://NAME``, lock ``sem://NAME``.
* :class:`Lock` and :class:`RLock` ``(name)``: ``osipc.Lock("sem://NAME")``, released by
  the kernel when a holder dies.

Differences from the stdlib:

* Pickles are only ever unpickled when *you* call ``get``/``recv``, but unpickling runs
  code chosen by the sender: share names only with processes you trust. Objects are
  created with mode 0600 (your user only).
* Initial values apply when a name is created, never when another process opens it.
* ``close()`` (done by itself at exit and on garbage collection, quietly, as the
  stdlib's objects close) closes this process's handles; the kernel objects stay until
  ``unlink()`` (or ``osipc_mp.unlink(name)``, or ``osipc gc`` once nobody uses them).
* ``Queue.put`` has no feeder thread: it returns when the object is in the queue, and an
  unpicklable object raises there. ``qsize()`` and ``empty()`` are snapshots. On ``mq`` a
  queue holds at most fs.mqueue.msg_max messages of at most ``msgsize`` bytes.
* Closed objects raise ``osipc.Closed`` (a ValueError); errors are osipc's, each also
  the builtin the stdlib would raise (EOFError, BrokenPipeError, TimeoutError, OSError,
  ValueError).
"""

from __future__ import annotations

import osipc
from osipc_mp._common import check_name
from osipc_mp._connection import Connection, Pipe
from osipc_mp._connection import _unlink as _unlink_pipe
from osipc_mp._queue import Queue
from osipc_mp._queue import _unlink as _unlink_queue
from osipc_mp._shared import Array, Value
from osipc_mp._synchronize import Lock, RLock

__all__ = ["Array", "Connection", "Lock", "Pipe", "Queue", "RLock", "Value", "unlink"]


def unlink(name: str) -> None:
    """Remove every object osipc_mp may have made under ``name`` (Queue, Pipe, Value,
    Array, Lock): what exists goes, what does not is skipped. Processes that have them
    open keep working on the old objects; new opens create new ones.

    It also removes plain osipc objects with those URLs (``shm://NAME``, ``mq://NAME``,
    ``sem://NAME``): do not share a name between osipc_mp and other uses.
    """
    check_name(name, "an osipc_mp")
    _unlink_queue(name)  # shm://NAME, mq://NAME and the queue's companions
    _unlink_pipe(name)
    osipc.unlink(f"sem://{name}", missing_ok=True)  # a Value's, Array's or Lock's
