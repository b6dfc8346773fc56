"""osipc_systemd: osipc endpoints as systemd services.

Socket activation: systemd creates the FIFO (``ListenFIFO=``) or message queue
(``ListenMessageQueue=``), starts the service on the first message and passes the
descriptors; :func:`endpoints` adopts them as osipc handles, keyed by the socket
unit's ``FileDescriptorName=``::

    import osipc_systemd

    with osipc_systemd.endpoints(senders={"status"}, codec="json") as eps:
        jobs = eps.receiver("jobs")           # mq://jobs?fd=3 (a read-only queue)
        status = eps.sender("status")         # fifo:///run/osipc/status.fifo?fd=4
        osipc_systemd.ready(status="serving")
        for job in jobs:
            ...
        eps.drain(wait=0.5)                   # replies nobody read would restart us

Outside systemd :func:`endpoints` returns ``{}`` and every notification is a no-op
that returns False, so one program runs both ways. :func:`listen_fds` gives the raw
descriptors (name, fd, kind, an osipc ``url`` to adopt it with).

Notify (``NOTIFY_SOCKET``, path or ``@abstract``): :func:`ready`, :func:`status`,
:func:`stopping`, :func:`reloading`, :func:`extend_timeout`, :func:`watchdog` (one ping),
:func:`watchdog_timeout` (WatchdogSec= for this process, honouring WATCHDOG_PID),
:class:`Watchdog` (pings from a thread), :func:`notify` (any fields, optional fds).
Errors are raised, never swallowed: :class:`NotifyError` (an ``OSError`` with
``errno``) when the manager cannot be reached, ``osipc.InvalidArgument`` for bad
input or a damaged environment.

Units, from the shell::

    osipc-systemd unit jobs --exec "/usr/bin/python3 /opt/jobs.py" \\
        --listen "mq://jobs?maxmsg=10&msgsize=1024" --listen status=fifo://jobs-status \\
        --group jobs --mode 0660 --output /etc/systemd/system
    osipc-systemd check /etc/systemd/system/jobs.service   # RemoveIPC=, PrivateIPC=, ...
    osipc-systemd run --listen mq://jobs -- python3 jobs.py  # activation without systemd

One socket unit per endpoint (``jobs-jobs.socket``, ``jobs-status.socket``), because
``FileDescriptorName=`` names every descriptor of a socket unit alike.
"""

from osipc_systemd._activation import Endpoint, Endpoints, ListenFd, endpoints, listen_fds
from osipc_systemd._notify import (
    NotifyError,
    Watchdog,
    extend_timeout,
    notify,
    ready,
    reloading,
    status,
    stopping,
    watchdog,
    watchdog_timeout,
)

__version__ = "0.1.0"

__all__ = [
    "Endpoint",
    "Endpoints",
    "ListenFd",
    "NotifyError",
    "Watchdog",
    "__version__",
    "endpoints",
    "extend_timeout",
    "listen_fds",
    "notify",
    "ready",
    "reloading",
    "status",
    "stopping",
    "watchdog",
    "watchdog_timeout",
]
