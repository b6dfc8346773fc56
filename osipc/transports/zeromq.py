"""zmq+ipc://NAME and zmq+tcp://HOST:PORT — ZeroMQ through pyzmq (the ``zmq`` extra).

The way past one machine, and the three patterns on one socket library:

==================  ===========================  ==================  ===============
pattern             osipc                        ZeroMQ sockets      binds by default
==================  ===========================  ==================  ===============
queue               sender / receiver            PUSH / PULL         the receiver
broadcast           publisher / subscriber       XPUB / SUB          the publisher
request/reply       client / server              DEALER / ROUTER     the server
==================  ===========================  ==================  ===============

**Who binds.** Exactly one role of a pattern binds, everyone else connects, and ZeroMQ
connects in the background and reconnects, so processes started in any order meet.
``bind=sender`` (or ``subscriber``, ``client``...) names another role as the binder,
e.g. one sender handing work to many competing receivers, or a bridge on a remote host
that serves its receivers: put it in the URL both sides use.

**Addresses.** ``zmq+ipc://NAME`` is a socket file ``RUNTIME/NAME.zmq`` (the whole path
must stay under 108 bytes); ``zmq+tcp://HOST:PORT`` binds on HOST and connects to it.
An empty host (``zmq+tcp://:5555``) binds to 127.0.0.1 only; ``*`` or ``0.0.0.0`` binds
every interface (connectors then use 127.0.0.1). **TCP without CURVE is unauthenticated
and unencrypted**: anyone who can reach the port can send and read. Use ``curve=``.

**No endpoint stealing.** libzmq lets a second process bind an ``ipc://`` path that is in
use, silently taking it over. osipc holds an ``flock`` on ``NAME.zmq.lock`` for as long
as a handle is bound, so a second binder gets :class:`~osipc.AlreadyExists`; a socket
file left by a binder that closed or died is reclaimed (the kernel dropped its lock).
Like every osipc name, the socket file stays after ``close()`` until ``osipc.unlink``
(or ``osipc gc`` once its creator is gone). TCP refuses a second bind natively
(EADDRINUSE, also AlreadyExists).

**Delivery.** Connecting senders set ZMQ_IMMEDIATE: with no peer connected,
``send`` waits (``Timeout`` after its timeout) instead of queueing for nobody. Publishers
use XPUB with ZMQ_XPUB_NODROP, so a slow subscriber makes ``send`` wait (``hwm`` messages
per subscriber) instead of losing messages silently. ``close()`` of a sender or publisher
waits up to ``linger`` seconds (default 5) for its queued messages to leave the process,
then drops what is left — never hangs; receivers close at once. ZeroMQ keeps nothing when
every process has gone: messages in flight to a receiver that exits are lost with it
(``capabilities.persistent`` is False; use mq:// or shm:// to survive that).

**Closing while the receiver is behind loses the end of the stream** (libzmq 4.3, and
plain pyzmq alike; libzmq#4660). Once a sender's queue has left the process, libzmq tears
the connection down, and two of its paths then drop messages without a word:

- ``zmq+ipc``: a receiving socket whose queue is full (``hwm``) stops reading the
  connection; when the sender's end closes meanwhile, it throws away what the kernel still
  holds for it once it has room again, up to a socket buffer (about 200 KB here: thousands
  of small messages; measured: 400-500 of a 30,000-message burst, in some runs);
- either scheme: the sending side drops the part of its last write (at most 8 KiB, or the
  rest of one larger message) that the kernel had no room for when it closed.

A PUSH/PULL pair carries nothing back, so the sender cannot learn that the receiver has
everything. To lose nothing, close (or exit) the sender only once the receiver has
confirmed: e.g. ``end()`` the stream and wait for the receiver's request on an
``osipc.server`` (the receiver sends it when it sees EndOfStream). Over ``zmq+ipc`` a
receiver ``hwm`` larger than any backlog it can build avoids the first path only.
mq:// and shm:// lose nothing when a sender closes or exits.

**Threads.** As with pyzmq, one thread at a time uses a handle (a server may reply from
any thread). close() may come from any thread at any time: a call that waits (a receive
without a timeout waits inside ZeroMQ) ends with :class:`~osipc.Closed` at once, one that
is moving a message finishes first, and the socket is closed once no call is inside it
(closing it under a call would crash the process).

**Slow joiners.** A subscriber receives what is published after its subscription reached
the publisher, which takes a moment after ``subscriber()`` returns; what is published
before is not for it. ``wait_for_subscribers=N`` on the publisher makes each ``send`` wait
(within its timeout) until N subscribers are connected and subscribed, so the first
messages are not lost.

**Wire format**, for plain pyzmq peers: queue data is one frame holding exactly the user's
bytes (a plain peer's multipart message arrives as one message per frame); broadcast is
two frames ``[topic, payload]`` (a pyzmq SUB subscribes by topic prefix); a request is
``[b"", id:8 bytes, payload]`` from a DEALER (a plain REQ socket's ``[b"", payload]`` is
answered too). End-of-stream is the two-frame message ``[b"\\xffosipc", b"end"]``
(broadcast: topic ``\\xffosipc:end``); topics starting with byte 0xff are reserved.

Options: ``bind``, ``hwm``, ``linger``, ``curve`` (this side's key file from ``osipc
keygen``; on the binding side it turns CURVE on), ``curve_server`` (connecting side: the
binder's public key file), ``curve_allow`` (binding side: a directory of the public keys
allowed to connect; others are refused), ``wait_for_subscribers``, ``topics``
(subscriber), and the common ``mode`` (the ipc socket file's permission bits, exact).
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import math
import os
import re
import resource
import select
import socket
import stat
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Callable, TypeVar, cast

import zmq

from osipc import _inventory, _limits
from osipc._abc import (
    AioSource,
    Capabilities,
    Frame,
    Handle,
    ObjectInfo,
    Receiver,
    Sender,
    Transport,
)
from osipc._address import (
    Address,
    CommonOptions,
    option,
    parse_choice,
    parse_int,
    runtime_dir,
    runtime_dir_path,
    validate_name,
)
from osipc._codecs import Buffer, Codec, codec_name
from osipc._deadline import Deadline, check_timeout
from osipc._errors import (
    AlreadyExists,
    Broken,
    Closed,
    DecodeError,
    EndOfStream,
    InvalidArgument,
    InvalidURL,
    NotFound,
    OsipcError,
    PermissionDenied,
    Timeout,
    TransportError,
    TransportUnavailable,
    Unsupported,
    map_os_error,
    os_errors,
    passed_on,
)
from osipc._reqrep import Client, Server

MAX_IPC_PATH = 107  # sun_path holds 108 bytes with the terminating NUL
CONTROL = b"\xffosipc"
END_FRAME = b"end"
END_TOPIC = b"\xffosipc:end"
HELLO = b"\xffosipc:hello:"  # a subscriber's unique topic: the publisher counts them
# A receiver blocked in libzmq is woken by close() from another thread with [CONTROL,
# WAKE_FRAME], sent over this in-process endpoint of its own context (never the network).
WAKE_FRAME = b"wake"
_WAKE_ENDPOINT = "inproc://osipc-wake"
# Waits poll ZeroMQ's fd, which signals that the socket's state changed rather than that it
# is ready; a slice bounds the wait should a change go unsignalled (another thread, e.g. a
# server's replier, may take the signal meant for the waiter).
SLICE_MS = 100
_ZMQ_HAUSNUMERO = 156384712  # libzmq's own error numbers start here
# bytes objects this large go without a copy (pyzmq holds them until libzmq has sent them:
# safe, as bytes cannot change); anything mutable is always copied, so a caller may reuse
# its buffer as soon as send() returns. Not lower: pyzmq's tracking of a zero-copy frame
# costs more than the copy up to about 128 KiB (measured here over ipc: at 64 KiB copies
# ran at 1.3-1.4 GB/s against 1.15-1.2 GB/s zero-copy; at 256 KiB and up zero-copy wins,
# 1.8x at 1 MiB).
_ZERO_COPY_MIN = 256 * 1024
# Plain ints: pyzmq's enum members cost a conversion on every call.
_NOBLOCK = int(zmq.NOBLOCK)
_SNDMORE = int(zmq.SNDMORE)
_POLLIN = int(zmq.POLLIN)
_POLLOUT = int(zmq.POLLOUT)
_EVENTS = int(zmq.EVENTS)
_RCVMORE = int(zmq.RCVMORE)
_R = TypeVar("_R")

# Every exception class pyzmq exports in zmq.error; a test fails if one is missing here.
ZMQ_ERRORS: dict[type[BaseException], type[OsipcError]] = {
    zmq.error.Again: Timeout,
    zmq.error.ContextTerminated: Closed,
    zmq.error.InterruptedSystemCall: TransportError,
    zmq.error.NotDone: Timeout,
    zmq.error.ZMQBaseError: TransportError,
    zmq.error.ZMQBindError: AlreadyExists,
    zmq.error.ZMQError: TransportError,
    zmq.error.ZMQVersionError: TransportUnavailable,
}
if hasattr(zmq.error, "DraftFDWarning"):  # pyzmq >= 26
    ZMQ_ERRORS[zmq.error.DraftFDWarning] = TransportError
_ZMQ_RAISED = tuple(ZMQ_ERRORS)


def map_zmq(exc: BaseException, what: str) -> OsipcError:
    """The osipc error for anything pyzmq raised while doing ``what``."""
    passed_on(exc)  # an osipc error already, or a signal handler's
    text = f"{what}: {exc}"
    if isinstance(exc, zmq.error.ZMQVersionError):
        return TransportUnavailable(text, hint="pip install --upgrade 'osipc[zmq]'")
    if isinstance(exc, zmq.error.ContextTerminated):
        return Closed(f"{what}: the handle was closed")
    code = getattr(exc, "errno", None)
    if isinstance(exc, zmq.error.Again) or code == errno.EAGAIN:
        return Timeout(text, errno=errno.EAGAIN)
    if code == errno.EADDRINUSE:
        return AlreadyExists(f"{text} (another process binds it)", errno=code)
    if code == zmq.EHOSTUNREACH:
        return Broken(f"{what}: the peer is gone", errno=errno.EHOSTUNREACH)
    if code == errno.EADDRNOTAVAIL:
        return TransportError(
            f"{text} (the host is not an address of this machine: the binding side must "
            "run where HOST is, or name another binder with bind=)",
            errno=code,
        )
    if code == errno.EINVAL:
        return InvalidArgument(text)
    if code == errno.ENOTSOCK:  # pyzmq's word for a socket closed meanwhile
        return Closed(f"{what}: the handle was closed")
    if isinstance(code, int) and 0 < code < _ZMQ_HAUSNUMERO:
        return map_os_error(OSError(code, str(exc)), what)
    for cls in type(exc).__mro__:
        target = ZMQ_ERRORS.get(cls)
        if target is not None:
            if issubclass(target, TransportError):
                return target(text, errno=code if isinstance(code, int) else None)
            return target(text)
    return TransportError(text)


# -- options -----------------------------------------------------------------------------

_ROLES = ("sender", "receiver", "publisher", "subscriber", "client", "server")
_DEFAULT_BINDER = {
    "sender": "receiver",
    "receiver": "receiver",
    "publisher": "publisher",
    "subscriber": "publisher",
    "client": "server",
    "server": "server",
}


def _parse_seconds(value: object) -> float:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError("expected seconds, e.g. 5 or 0.5") from None
    if isinstance(value, bool) or not 0 <= seconds <= 3600:
        raise ValueError("must be 0..3600 seconds")
    return seconds


def _parse_path(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a file path")
    return value


def _parse_topics(value: object) -> tuple[bytes, ...]:
    items: Iterable[object]
    if isinstance(value, (str, bytes)):
        items = value.split(",") if isinstance(value, str) else [value]
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = value
    else:
        raise ValueError("expected a list of topics (str or bytes)")
    topics = []
    for item in items:
        topic = _topic_bytes(item)
        topics.append(topic)
    return tuple(topics) or (b"",)


def _topic_bytes(topic: object) -> bytes:
    if isinstance(topic, str):
        data = topic.encode()
    elif isinstance(topic, bytes):
        data = topic
    else:
        raise ValueError(f"a topic is str or bytes, got {type(topic).__name__}")
    if data.startswith(b"\xff"):
        raise ValueError("topics starting with byte 0xff are reserved for osipc")
    return data


@dataclass(frozen=True)
class ZmqOptions(CommonOptions):
    bind: str = option("", parse_choice("", *_ROLES), "the role that binds (default: see docs)")
    hwm: int = option(1000, parse_int(1, 10_000_000), "messages queued per peer before waiting")
    linger: float = option(5.0, _parse_seconds, "close(): seconds to flush queued messages")
    curve: str = option("", _parse_path, "this side's key file (osipc keygen)")
    curve_server: str = option("", _parse_path, "connecting side: the binder's public key file")
    curve_allow: str = option("", _parse_path, "binding side: directory of allowed public keys")
    wait_for_subscribers: int = option(0, parse_int(0), "publisher: wait for N subscribers")
    topics: tuple[bytes, ...] = option((b"",), _parse_topics, "subscriber: topic prefixes")


def _capabilities(broadcast: bool = False, selectable: bool = True) -> Capabilities:
    return Capabilities(
        ordered=True,
        broadcast=broadcast,
        selectable=selectable,
        max_message_size=None,
        timeouts="native",
        end_of_stream=True,
        persistent=False,
    )


# -- endpoints ---------------------------------------------------------------------------


def ipc_path(address: Address) -> str:
    return os.path.join(runtime_dir_path(), address.name + ".zmq")


def _lock_path(path: str) -> str:
    return path + ".lock"


def _binder_pid(path: str) -> int | None:
    """The pid of the live process bound at ``path``, or None if nobody holds it."""
    try:
        fd = os.open(_lock_path(path), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _claim_ipc(address: Address, path: str) -> int:
    """Take the binder's lock of an ipc endpoint (AlreadyExists if a live process has it)
    and clear a socket file a dead binder left. Returns the lock's fd."""
    lock = _lock_path(path)
    while True:
        with os_errors(f"lock {lock}"):
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                raise AlreadyExists(
                    f"{address.base_url} is already bound by process {holder or '?'} ({path}); "
                    "only one process binds an endpoint: connect to it instead (see bind=), "
                    "or stop that process",
                    errno=errno.EADDRINUSE,
                ) from None
            try:
                same = os.stat(lock).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # a closing binder removed it between our open and our lock
                os.close(fd)
                continue
            with os_errors(f"claim {path}"):
                os.ftruncate(fd, 0)
                os.pwrite(fd, str(os.getpid()).encode(), 0)
                try:
                    st = os.lstat(path)
                except FileNotFoundError:
                    pass
                else:
                    if not stat.S_ISSOCK(st.st_mode):
                        raise TransportError(
                            f"{path} exists and is not a socket; remove it or choose another name",
                            errno=errno.EEXIST,
                        )
                    os.unlink(path)  # its binder is dead (we hold the lock): reclaim it
            return fd
        except BaseException:
            os.close(fd)
            raise


def _check_ipc_peer(address: Address, path: str, options: ZmqOptions) -> None:
    """Before connecting: refuse a socket file another user made, and honour create=False."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if not options.create:
            raise NotFound(
                f"{address.base_url}: nothing is bound at {path} (create=False)",
                errno=errno.ENOENT,
            ) from None
        return  # the binder is not up yet: ZeroMQ connects when it is
    if not stat.S_ISSOCK(st.st_mode):
        raise TransportError(f"{path} exists and is not a socket", errno=errno.EEXIST)
    if st.st_uid != os.geteuid() and not options.trust_existing:
        raise PermissionDenied(
            f"{path} was created by uid {st.st_uid}, not by you (uid {os.geteuid()}); "
            "refusing to connect (pass trust_existing=True if that user is trusted)",
            errno=errno.EPERM,
        )
    if options.exclusive and _binder_pid(path) is not None:
        raise AlreadyExists(
            f"{address.base_url} is bound by process {_binder_pid(path)} (exclusive=True)",
            errno=errno.EEXIST,
        )
    if not options.create and _binder_pid(path) is None:
        raise NotFound(
            f"{address.base_url}: its binder is gone ({path} is stale; create=False)",
            errno=errno.ENOENT,
        )


def _load_cert(path: str, what: str, need_secret: bool) -> tuple[bytes, bytes | None]:
    import zmq.auth

    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise InvalidArgument(
            f"{what}={path!r}: cannot read a ZeroMQ key file ({exc}); "
            "make one with: osipc keygen NAME"
        ) from None
    if need_secret and not secret:
        raise InvalidArgument(
            f"{what}={path!r} holds only a public key; this side needs its secret key file "
            "(NAME.key_secret from osipc keygen)"
        )
    return public, secret


class _Endpoint:
    """One ZeroMQ socket in its own context, bound or connected per the rules above."""

    def __init__(
        self, address: Address, options: ZmqOptions, role: str, kind: int, codec: Codec[Any]
    ) -> None:
        self.address = address
        self.lock_fd = -1
        self.path = ""
        # Whatever sends (messages, broadcasts, replies) flushes at close, within linger.
        self.linger = options.linger if role in ("sender", "publisher", "server") else 0.0
        self.context: Any = None
        self.socket: Any = None
        self.waker: Any = None  # see wake()
        self.auth: Any = None
        self.binds = (options.bind or _DEFAULT_BINDER[role]) == role
        self.fd = -1  # what waits poll, with the handle's wake-up fd (see _ZmqHandle._wait)
        try:
            self._open(options, role, kind, codec)
        except BaseException:
            self.close(in_child=False)
            raise

    def _open(self, options: ZmqOptions, role: str, kind: int, codec: Codec[Any]) -> None:
        address = self.address
        if _ABORTS_WITHOUT_DESCRIPTORS:
            _check_descriptors(address)
        with _zmq_errors(f"open {address}"):
            self.context = zmq.Context(io_threads=1)  # (EMFILE, ENOMEM: mapped)
            sock = self.socket = self.context.socket(kind)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, options.hwm)
            sock.setsockopt(zmq.RCVHWM, options.hwm)
            if not self.binds:  # meet a binder that comes up later quickly
                sock.setsockopt(zmq.RECONNECT_IVL, 10)
                sock.setsockopt(zmq.RECONNECT_IVL_MAX, 100)
                # Not on clients: with IMMEDIATE libzmq drops a connection's unread
                # inbound messages (a reply!) when the peer disconnects.
                if role == "sender":
                    sock.setsockopt(zmq.IMMEDIATE, 1)
            if role == "publisher":
                sock.setsockopt(zmq.XPUB_NODROP, 1)
                sock.setsockopt(zmq.XPUB_VERBOSE, 1)
            if role == "server":
                sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
            if role == "receiver":
                sock.bind(_WAKE_ENDPOINT)
                # recv() without a timeout blocks in libzmq (see ZmqReceiver.recv), where
                # a signal that lands just before it, or in another thread, is not seen:
                # it gives up after a slice and goes on waiting in _wait's sliced poll,
                # where the Python handler runs
                sock.setsockopt(zmq.RCVTIMEO, SLICE_MS)
            self._curve(options)
            self.fd = int(sock.getsockopt(zmq.FD))
        if address.scheme == "zmq+ipc":
            self.path = ipc_path(address)
            runtime_dir()
            if len(self.path.encode()) > MAX_IPC_PATH:
                raise InvalidURL(
                    f"{address}: the socket path {self.path} is {len(self.path.encode())} "
                    f"bytes; ZeroMQ allows {MAX_IPC_PATH}: use a shorter name or "
                    "OSIPC_RUNTIME_DIR"
                )
            endpoint = "ipc://" + self.path
            if self.binds and not options.create:
                raise NotFound(
                    f"{address}: create=False, but the {role} is the side that binds (creates) "
                    "the endpoint; drop create=False, or name another binder with bind=",
                    errno=errno.ENOENT,
                )
            if self.binds:
                self.lock_fd = _claim_ipc(address, self.path)
                with _zmq_errors(f"bind {address} at {self.path}"):
                    sock.bind(endpoint)
                with os_errors(f"set the mode of {self.path}"):
                    os.chmod(self.path, options.mode)
                _inventory.write_record(
                    address, kind="zmq+ipc", mode=options.mode, codec=codec_name(codec),
                    instance=_inventory.path_instance(self.path),
                )  # fmt: skip
            else:
                _check_ipc_peer(address, self.path, options)
                with _zmq_errors(f"connect to {address}"):
                    sock.connect(endpoint)
        else:
            host, port = _split_tcp(address.name)
            if ":" in host:
                sock.setsockopt(zmq.IPV6, 1)
            if self.binds:
                bind_host = "127.0.0.1" if host == "" else "*" if host == "0.0.0.0" else host
                what = f"bind {address}"
                try:
                    sock.bind(f"tcp://{_bracket(bind_host)}:{port}")
                except zmq.ZMQError as exc:
                    if exc.errno == errno.EADDRINUSE:
                        raise AlreadyExists(
                            f"{address}: port {port} is in use (another process binds it); "
                            "connect to it instead (see bind=) or choose another port",
                            errno=errno.EADDRINUSE,
                        ) from None
                    raise map_zmq(exc, what) from None
            else:
                target = "127.0.0.1" if host in ("", "*", "0.0.0.0") else host
                target = "::1" if target == "::" else target
                with _zmq_errors(f"connect to {address}"):
                    sock.connect(f"tcp://{_bracket(target)}:{port}")

    def _curve(self, options: ZmqOptions) -> None:
        if not (options.curve or options.curve_server or options.curve_allow):
            return
        if not zmq.has("curve"):
            raise TransportUnavailable(
                "this libzmq was built without CURVE security",
                hint="pip install --force-reinstall pyzmq",
            )
        sock = self.socket
        if self.binds:
            if options.curve_server:
                raise InvalidURL(
                    f"{self.address}: curve_server= is for the connecting side; the binding "
                    "side gives its own key file with curve="
                )
            if not options.curve:
                raise InvalidURL(f"{self.address}: curve_allow= needs curve= (this side's key)")
            public, secret = _load_cert(options.curve, "curve", need_secret=True)
            sock.curve_secretkey = secret
            sock.curve_publickey = public
            sock.curve_server = True
            if options.curve_allow:
                self._allow(options.curve_allow)
        else:
            if not options.curve_server:
                raise InvalidURL(
                    f"{self.address}: a connecting side with CURVE needs curve_server= (the "
                    "binder's public key file)"
                )
            server_public, _ = _load_cert(options.curve_server, "curve_server", False)
            if options.curve:
                public, secret = _load_cert(options.curve, "curve", need_secret=True)
            else:
                public, secret = zmq.curve_keypair()  # anonymous: fine unless curve_allow
            sock.curve_serverkey = server_public
            sock.curve_publickey = public
            sock.curve_secretkey = secret

    def _allow(self, directory: str) -> None:
        from zmq.auth.thread import ThreadAuthenticator

        if not os.path.isdir(directory):
            raise InvalidArgument(
                f"curve_allow={directory!r} is not a directory of public key files"
            )
        self.auth = ThreadAuthenticator(self.context)
        self.auth.start()
        self.auth.configure_curve(domain="*", location=directory)

    def wake(self) -> None:
        """From any thread: make a receive blocked on this PULL socket return, with the
        message [CONTROL, WAKE_FRAME] (or a message that came first)."""
        try:
            if self.waker is None:
                self.waker = self.context.socket(zmq.PUSH)
                self.waker.setsockopt(zmq.LINGER, 0)
                self.waker.connect(_WAKE_ENDPOINT)
            self.waker.send_multipart([CONTROL, WAKE_FRAME], zmq.NOBLOCK)
        except zmq.ZMQError:  # a fresh in-process pipe has room: not expected
            pass

    def close(self, in_child: bool) -> None:
        sock, self.socket = self.socket, None
        waker, self.waker = self.waker, None
        context, self.context = self.context, None
        if in_child:  # not ours to close: the parent's ZeroMQ threads did not fork
            return
        try:
            if waker is not None:
                waker.close(linger=0)
            if sock is not None:
                sock.close(linger=int(self.linger * 1000))
            if self.auth is not None:
                self.auth.stop()
            if context is not None:
                context.term()  # waits at most the linger for queued messages
        except zmq.ZMQError:
            pass
        if self.lock_fd >= 0:
            # The socket file stays, like every osipc name, until osipc.unlink or gc
            # (connectors keep trying it; the next binder reclaims it). The lock goes.
            fd, self.lock_fd = self.lock_fd, -1
            try:
                os.unlink(_lock_path(self.path))
            except OSError:
                pass
            os.close(fd)


# libzmq before 4.3.5 aborts the whole process (an assertion) when a descriptor it needs
# cannot be made; a few more are needed per connection.
_ABORTS_WITHOUT_DESCRIPTORS = zmq.zmq_version_info() < (4, 3, 5)
_DESCRIPTORS_NEEDED = 16  # a context, its threads' mailboxes, the socket, a bind or two


def _check_descriptors(address: Address) -> None:
    """TransportError, instead of libzmq's abort, if few descriptors are left."""
    left = _limits.descriptors_left()
    if left is not None and left < _DESCRIPTORS_NEEDED:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        raise TransportError(
            f"open {address}: {left or 'no'} file descriptors "
            f"left of RLIMIT_NOFILE ({soft}), and ZeroMQ needs about {_DESCRIPTORS_NEEDED} "
            f"(libzmq {zmq.zmq_version()} would abort the process without them); close "
            "some, or raise the limit (ulimit -n, LimitNOFILE= in systemd)",
            errno=errno.EMFILE,
        )


class _zmq_errors:
    """``with _zmq_errors("what"):`` maps pyzmq's exceptions at the boundary."""

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, cls: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is not None and isinstance(exc, _ZMQ_RAISED):
            raise map_zmq(exc, self.what) from None


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}\Z")


def _split_tcp(name: str) -> tuple[str, int]:
    host, _, port = name.rpartition(":")
    return host.strip("[]"), int(port)


# -- calls into a socket -----------------------------------------------------------------


class _ZmqHandle(Handle):
    """What every ZeroMQ handle shares: calls into its socket that close() never closes
    the socket under, and waits that close() from another thread ends at once.

    A ZeroMQ socket must not be used by two threads at once, and closing it under a call
    crashes the process (libzmq frees what the call is using). So, as with pyzmq, one
    thread at a time uses a handle (a server also replies from any thread, see
    ZmqServer), and close() may come from any thread at any time:

    - a call that waits does its waiting inside ``_waiting()`` (see Handle): close() wakes
      it through the wake-up fd, and the last waiting call out releases the socket;
    - every call into the socket runs inside ``_calling()``, which marks the handle busy
      and then checks that it is open; close() finding it busy leaves the release to the
      call, which makes it on its way out (``_finish_close``, ``_left_call``). The two
      hot paths (ZmqSender.send, ZmqReceiver.recv) do the same inline: two attribute
      stores cost a fraction of a lock.
    """

    _sock: Any
    _end: _Endpoint
    _busy = False  # a call is inside the socket (see _calling)
    _close_owed = False  # close() found it busy: the call releases the socket
    _send_now: Callable[..., Any]
    _recv_now: Callable[..., Any]

    def _attach(self, end: _Endpoint) -> None:
        self._end = end
        self._sock = end.socket
        self._busy = False
        self._close_owed = False
        # pyzmq's Socket.send is Python around the compiled send, for the routing_id and
        # group of draft socket types these sockets are not: a third of what sending a
        # small message costs. Call the compiled one.
        self._send_now = super(zmq.Socket, cast("zmq.Socket[bytes]", end.socket)).send
        self._recv_now = end.socket.recv

    def _calling(self) -> _Calling:
        """``with self._calling():`` around calls into the socket (Closed if closed)."""
        return _Calling(self)

    def _finish_close(self) -> None:
        # close(), or the last waiting call out: release the socket now, unless a call is
        # inside it; that call releases it on its way out. close() set ``_closed`` before
        # this reads ``_busy``, and a call sets ``_busy`` before it reads ``_closed``
        # (the GIL keeps these in order): at least one of the two sees the other.
        if not self._in_child:
            with self._state:
                if self._busy:
                    self._close_owed = True
                    self._wake_call()  # under the lock: the call cannot release first
                    return
        super()._finish_close()

    def _wake_call(self) -> None:
        """Make a call that is inside the socket return soon (see _finish_close). Calls
        that never block in libzmq need nothing; a receiver's may (ZmqReceiver.recv)."""

    def _left_call(self) -> None:
        """A call left the socket and found the handle closed: make a release that
        close() left to it."""
        with self._state:
            owed, self._close_owed = self._close_owed, False
        if owed:
            super()._finish_close()

    def _wait(self, event: int, deadline: Deadline, stale: bool = False) -> bool:
        """Inside ``_waiting()``: True once the socket can ``event`` (POLLIN: receive,
        POLLOUT: send), False once ``deadline`` passed; Closed when closed meanwhile.
        ``stale``: the socket said so, yet the call could not go (an XPUB with NODROP
        says POLLOUT while a subscriber has no room): wait for its state to change."""
        wake = self._wakeup_fd()  # before the check in _calling(): a close() after it
        poller: Any = None  # makes this readable, so the poll below cannot miss it
        while True:
            with self._calling():
                # (reading EVENTS also clears ZeroMQ's fd until the state changes again)
                if self._sock.getsockopt(_EVENTS) & event and not stale:
                    return True
            stale = False
            left = deadline.remaining()
            if left == 0:
                return False
            if poller is None:
                poller = select.poll()
                poller.register(self._end.fd, select.POLLIN)
                poller.register(wake, select.POLLIN)
            poller.poll(SLICE_MS if left is None else min(SLICE_MS, math.ceil(left * 1000)))

    def _attempt(
        self, op: Callable[[], _R], event: int, deadline: Deadline, idle: str, tried: bool = False
    ) -> _R:
        """``op()``: socket calls that raise zmq.Again when they cannot go yet, retried
        whenever the socket can ``event``, until ``deadline``; then Timeout, worded
        ``idle`` ("{within}" stands for the timeout). ``tried``: one try failed already.
        pyzmq's errors go to the caller to map."""
        if not tried:
            with self._calling():
                try:
                    return op()
                except zmq.Again:
                    pass
        if deadline.remaining() != 0:
            stale = False
            with self._waiting():
                while self._wait(event, deadline, stale):
                    with self._calling():
                        try:
                            return op()
                        except zmq.Again:
                            stale = True  # another thread took it, or EVENTS overstated
        raise Timeout(f"{self.url}: {idle.format(within=deadline.describe())}", errno=errno.EAGAIN)

    def _aio_events(self, event: int) -> AioSource:
        """For osipc.aio: ZeroMQ's fd becomes readable when the socket's state changes,
        not while it can send or receive; EVENTS says what it can do now."""

        def ready() -> bool:
            try:
                with self._calling():
                    return bool(self._sock.getsockopt(_EVENTS) & event)
            except zmq.ZMQError as exc:
                raise map_zmq(exc, f"watch {self.url}") from None

        return self._end.fd, False, ready


class _Calling:
    """``_ZmqHandle._calling()``: marks the handle busy for the calls inside. It nests
    (it puts back the mark it found); the hot paths inline it and never run inside it."""

    __slots__ = ("_handle", "_was")

    def __init__(self, handle: _ZmqHandle) -> None:
        self._handle = handle
        self._was = False

    def __enter__(self) -> None:
        handle = self._handle
        self._was = handle._busy
        handle._busy = True
        if handle._closed:
            self.__exit__()
            raise handle._raise_closed()

    def __exit__(self, *exc_info: object) -> None:
        handle = self._handle
        handle._busy = self._was
        if not self._was and handle._closed:
            handle._left_call()


class _Locked(_Calling):
    """A server's ``_calling()``: its lock, as replies may come from any thread."""

    __slots__ = ()

    def __enter__(self) -> None:
        handle = cast("ZmqServer", self._handle)
        handle._lock.acquire()
        if handle._closed:
            handle._lock.release()
            raise handle._raise_closed()

    def __exit__(self, *exc_info: object) -> None:
        cast("ZmqServer", self._handle)._lock.release()


def _copy(frame: Buffer) -> bool:
    """Whether pyzmq must copy ``frame`` (see _ZERO_COPY_MIN)."""
    return frame.__class__ is not bytes or len(frame) < _ZERO_COPY_MIN


def _send_parts(
    handle: _ZmqHandle,
    parts: tuple[Buffer, ...],
    deadline: Deadline,
    peer: str,
    tried: bool = False,
) -> None:
    """Send one (multipart) message whole within the deadline, or Timeout with nothing
    sent. ``tried``: a try just failed (zmq.Again)."""
    send = handle._send_now
    last = len(parts) - 1

    def now() -> None:
        send(parts[0], _NOBLOCK | (_SNDMORE if last else 0), _copy(parts[0]))
        for index in range(1, last + 1):  # the rest of a message is never refused
            send(parts[index], _SNDMORE if index < last else 0, _copy(parts[index]))

    try:
        handle._attempt(
            now, _POLLOUT, deadline,
            f"no {peer} took the message {{within}} (none connected, or they are not "
            "keeping up)",
            tried,
        )  # fmt: skip
    except zmq.ZMQError as exc:
        raise map_zmq(exc, f"send to {handle.url}") from None


# -- queue -------------------------------------------------------------------------------


class ZmqSender(_ZmqHandle, Sender[Any]):
    def __init__(self, address: Address, options: ZmqOptions, codec: Codec[Any]) -> None:
        self._attach(_Endpoint(address, options, "sender", zmq.PUSH, codec))
        super().__init__(address, _capabilities(selectable=False), codec)

    def _aio_source(self, writing: bool) -> AioSource | None:
        return self._aio_events(_POLLOUT)

    def send(self, obj: Any, *, timeout: float | None = None, priority: int = 0) -> None:
        """Send one object; see Sender.send (waits while no receiver is connected)."""
        # The hot path (bytes, no timeout) inlines _calling() and the first try of
        # _send_parts: a message that can go costs pyzmq's send and a few loads.
        if obj.__class__ is bytes and timeout is None and self._plain and not priority:
            self._busy = True
            try:
                if not self._closed:
                    send = self._send_now  # (a local: LOAD_METHOD misses on attributes)
                    send(obj, _NOBLOCK, len(obj) < _ZERO_COPY_MIN)
                    return
            except zmq.Again:
                pass  # no room, or no receiver yet
            except zmq.ZMQError as exc:
                raise map_zmq(exc, f"send to {self.url}") from None
            finally:
                self._busy = False
                if self._closed:
                    self._left_call()
            if not self._closed:
                _send_parts(self, (obj,), Deadline(None), "receiver", tried=True)
                return
        super().send(obj, timeout=timeout, priority=priority)

    def _send(self, frame: Buffer, timeout: float | None) -> None:
        _send_parts(self, (frame,), Deadline(timeout), "receiver")

    def _send_batch(self, frames: list[Buffer], deadline: Deadline) -> None:
        send, count, sent = self._send_now, len(frames), 0
        try:
            while sent < count:
                with self._calling():  # as many as can go now, in one call
                    try:
                        while sent < count:
                            frame = frames[sent]
                            # (_copy(), inlined)
                            send(
                                frame,
                                _NOBLOCK,
                                frame.__class__ is not bytes or len(frame) < _ZERO_COPY_MIN,
                            )
                            sent += 1
                    except zmq.Again:
                        pass
                if sent < count:  # no room: wait for it, and send that one
                    _send_parts(self, (frames[sent],), deadline, "receiver", tried=True)
                    sent += 1
        except TransportError as exc:
            exc.sent = sent
            raise
        except zmq.ZMQError as exc:
            error = map_zmq(exc, f"send to {self.url}")
            if isinstance(error, TransportError):
                error.sent = sent
            raise error from None

    def _send_end(self, deadline: Deadline) -> None:
        _send_parts(self, (CONTROL, END_FRAME), deadline, "receiver")

    def _close(self) -> None:
        self._end.close(self._in_child)


class _ZmqReceiving(_ZmqHandle, Receiver[Any]):
    """What PULL and SUB receivers share: readiness for ``fileno()`` and osipc.aio."""

    _idle = "nothing arrived"  # how a Timeout says what did not happen

    def _raw_fileno(self) -> int:
        return self._end.fd

    def _buffered(self) -> bool:
        if self._pending:
            return True
        try:
            with self._calling():
                # ZeroMQ's fd is edge-triggered: messages it already holds do not make
                # it readable
                return bool(self._sock.getsockopt(_EVENTS) & _POLLIN)
        except (Closed, zmq.ZMQError):
            return False

    def _close(self) -> None:
        super()._close()
        self._end.close(self._in_child)


class ZmqReceiver(_ZmqReceiving):
    def __init__(self, address: Address, options: ZmqOptions, codec: Codec[Any]) -> None:
        self._attach(_Endpoint(address, options, "receiver", zmq.PULL, codec))
        super().__init__(address, _capabilities(), codec)
        self._plain = self._decode_fast is not None
        self._bad: DecodeError | None = None  # met inside a batch: reported by the next call

    def recv(self, *, timeout: float | None = None) -> Any:
        """Receive one object; see Receiver.recv."""
        if timeout is not None:
            timeout = check_timeout(timeout)  # before a message is taken
        # The hot path (bytes, nothing held, nobody watching fileno) inlines _calling()
        # and the first try of _recv: a message that is there costs what pyzmq's recv
        # costs, plus a comparison.
        if self._plain and not self._pending and self._readiness is None and self._bad is None:
            empty = False
            self._busy = True
            try:
                if not self._closed:
                    recv = self._recv_now  # (a local: LOAD_METHOD misses on attributes)
                    frame = recv() if timeout is None else recv(_NOBLOCK)
                    if frame != CONTROL:
                        return frame
                    self._pending.append(self._control(frame))  # reported below
            except zmq.Again:
                empty = True
            except zmq.ZMQError as exc:
                raise map_zmq(exc, f"receive from {self.url}") from None
            finally:
                self._busy = False
                if self._closed:
                    self._left_call()
            if empty and not self._closed:
                got = self._recv(timeout, tried=True)
                if got is None:
                    raise EndOfStream(f"{self.url}: end of stream")
                return got
        return super().recv(timeout=timeout)

    def _wake_call(self) -> None:
        self._end.wake()

    def _recv(self, timeout: float | None, tried: bool = False) -> Frame | None:
        if self._bad is not None:
            bad, self._bad = self._bad, None
            raise bad
        return self._next_within(Deadline(timeout), tried)

    def _next_within(self, deadline: Deadline, tried: bool) -> Frame | None:
        try:
            return self._attempt(self._take, _POLLIN, deadline, self._idle + " {within}", tried)
        except zmq.ZMQError as exc:
            raise map_zmq(exc, f"receive from {self.url}") from None

    def _take(self) -> Frame | None:
        """The next message (None: end-of-stream); zmq.Again if there is none."""
        frame: bytes = self._recv_now(_NOBLOCK)
        return self._control(frame) if frame == CONTROL else frame

    def _recv_batch(self, max_count: int, deadline: Deadline) -> list[Frame | None]:
        if self._bad is not None:
            bad, self._bad = self._bad, None
            raise bad
        frames: list[Frame | None] = []
        try:
            self._fill(frames, max_count)
            if not frames:  # wait for one, then take what came with it
                frames.append(self._next_within(deadline, tried=True))
                if frames[0] is not None:
                    self._fill(frames, max_count)
        except zmq.ZMQError as exc:
            raise map_zmq(exc, f"receive from {self.url}") from None
        return frames

    def _fill(self, frames: list[Frame | None], max_count: int) -> None:
        """Add the messages that are there, up to ``max_count``, up to end-of-stream."""
        recv = self._recv_now
        with self._calling():
            while len(frames) < max_count:
                try:
                    frame: Frame | None = recv(_NOBLOCK)
                except zmq.Again:
                    return
                if frame == CONTROL:
                    try:
                        frame = self._control(frame)
                    except DecodeError as exc:
                        if not frames:
                            raise
                        self._bad = exc  # after the good ones, for the next call
                        return
                    if frame is None:
                        frames.append(None)
                        return
                frames.append(frame)

    def _control(self, first: bytes) -> Frame | None:
        """A frame that may begin the end marker: only such frames ask for RCVMORE,
        which costs pyzmq more than a receive."""
        if not self._sock.getsockopt(_RCVMORE):
            return first  # data that happens to equal the marker's first frame
        parts = [first, *self._sock.recv_multipart(_NOBLOCK)]
        if parts == [CONTROL, END_FRAME]:
            return None
        if parts == [CONTROL, WAKE_FRAME] and self._closed:
            raise self._raise_closed()  # close() woke a blocking recv
        raise DecodeError(
            f"{self.url}: a {len(parts)}-frame message starting with the reserved frame "
            f"{CONTROL!r} arrived; it is not osipc's end-of-stream marker",
            codec="zmq",
            data=b"".join(parts),
        )


# -- broadcast ---------------------------------------------------------------------------


class ZmqPublisher(_ZmqHandle, Sender[Any]):
    """XPUB with NODROP: a slow subscriber makes ``send`` wait, never loses messages."""

    def __init__(self, address: Address, options: ZmqOptions, codec: Codec[Any]) -> None:
        self._attach(_Endpoint(address, options, "publisher", zmq.XPUB, codec))
        self._want = options.wait_for_subscribers
        self._subscribers: set[bytes] = set()
        super().__init__(address, _capabilities(broadcast=True, selectable=False), codec)

    def _aio_source(self, writing: bool) -> AioSource | None:
        # progress: a subscription to read, or room to send once enough have joined
        def ready() -> bool:
            try:
                with self._calling():
                    events = self._sock.getsockopt(_EVENTS)
            except zmq.ZMQError as exc:
                raise map_zmq(exc, f"watch {self.url}") from None
            return bool(events & _POLLIN) or (
                len(self._subscribers) >= self._want and bool(events & _POLLOUT)
            )

        return self._end.fd, False, ready

    @property
    def subscribers(self) -> int:
        """Subscribers connected and subscribed now (as far as this publisher has heard)."""
        self._drain()
        return len(self._subscribers)

    def send(
        self, obj: Any, *, timeout: float | None = None, priority: int = 0, topic: str | bytes = ""
    ) -> None:
        """Publish one object under ``topic`` (subscribers filter by topic prefix)."""
        if self._closed:
            raise self._raise_closed()
        if priority:
            raise self._no_priorities(priority)
        try:
            head = _topic_bytes(topic)
        except ValueError as exc:
            raise InvalidArgument(f"topic {topic!r}: {exc}") from None
        frame: Any = obj if self._plain and obj.__class__ is bytes else self._encode(obj)
        self._publish(head, frame, Deadline(timeout))

    def _publish(self, head: bytes, frame: Buffer, deadline: Deadline) -> None:
        self._drain()
        if len(self._subscribers) < self._want:
            self._await_subscribers(deadline)
        _send_parts(self, (head, frame), deadline, "subscriber")

    def _await_subscribers(self, deadline: Deadline) -> None:
        try:
            with self._waiting():
                while len(self._subscribers) < self._want:
                    if not self._wait(_POLLIN, deadline):
                        raise Timeout(
                            f"{self.url}: {len(self._subscribers)} of the {self._want} "
                            f"subscribers it waits for (wait_for_subscribers) joined "
                            f"{deadline.describe()}",
                            errno=errno.EAGAIN,
                        )
                    self._drain()
        except zmq.ZMQError as exc:
            raise map_zmq(exc, f"publish on {self.url}") from None

    def _drain(self) -> None:
        """Read subscription messages: a subscriber's hello topic says it is there."""
        sock, recv = self._sock, self._recv_now
        try:
            with self._calling():
                while sock.getsockopt(_EVENTS) & _POLLIN:
                    message = recv(_NOBLOCK)
                    if message[1:].startswith(HELLO):
                        if message[0] == 1:
                            self._subscribers.add(message[1:])
                        else:
                            self._subscribers.discard(message[1:])
        except zmq.ZMQError as exc:
            raise map_zmq(exc, f"publish on {self.url}") from None

    def _send(self, frame: Buffer, timeout: float | None) -> None:
        self._publish(b"", frame, Deadline(timeout))

    def _send_end(self, deadline: Deadline) -> None:
        self._publish(END_TOPIC, b"", deadline)

    def _close(self) -> None:
        self._end.close(self._in_child)


class ZmqSubscriber(_ZmqReceiving):
    _idle = "nothing was published"

    def __init__(self, address: Address, options: ZmqOptions, codec: Codec[Any]) -> None:
        end = _Endpoint(address, options, "subscriber", zmq.SUB, codec)
        self._attach(end)
        self._topic = b""
        sock = end.socket
        with _zmq_errors(f"subscribe to {address}"):
            for topic in options.topics:
                sock.setsockopt(zmq.SUBSCRIBE, topic)
            sock.setsockopt(zmq.SUBSCRIBE, END_TOPIC)
            # Sorted last (0xff), so it reaches the publisher after the real topics.
            sock.setsockopt(zmq.SUBSCRIBE, HELLO + os.urandom(8).hex().encode())
        super().__init__(address, _capabilities(broadcast=True), codec)

    @property
    def topic(self) -> str:
        """The topic of the message the last ``recv`` returned."""
        return self._topic.decode("utf-8", "backslashreplace")

    def _recv(self, timeout: float | None) -> Frame | None:
        idle = self._idle + " {within}"
        try:
            head, parts = self._attempt(self._take, _POLLIN, Deadline(timeout), idle)
        except zmq.ZMQError as exc:
            raise map_zmq(exc, f"receive from {self.url}") from None
        if head == END_TOPIC:
            return None
        if len(parts) != 1:
            raise DecodeError(
                f"{self.url}: a {len(parts) + 1}-frame message arrived; osipc broadcasts "
                "are [topic, payload]",
                codec="zmq",
                data=head + b"".join(parts),
            )
        self._topic = head
        return parts[0]

    def _take(self) -> tuple[bytes, list[bytes]]:
        """The next message, as (first frame, the others); zmq.Again if there is none."""
        sock = self._sock
        head: bytes = self._recv_now(_NOBLOCK)
        return head, (sock.recv_multipart(_NOBLOCK) if sock.getsockopt(_RCVMORE) else [])


# -- request/reply -----------------------------------------------------------------------


class ZmqClient(_ZmqHandle, Client[Any]):
    """DEALER: requests carry an id, so a timed-out request never wedges the client."""

    def __init__(self, address: Address, options: ZmqOptions, codec: Codec[Any]) -> None:
        self._attach(_Endpoint(address, options, "client", zmq.DEALER, codec))
        self._next_id = int.from_bytes(os.urandom(4), "little") << 32
        super().__init__(address, _capabilities(selectable=False), codec)

    def _send_request(self, frame: Buffer, deadline: Deadline) -> object:
        self._next_id += 1
        rid = self._next_id.to_bytes(8, "little")
        _send_parts(self, (b"", rid, frame), deadline, "server")
        return rid

    def _await_reply(self, ticket: object, deadline: Deadline) -> bytes:
        idle = "no reply {within} (the server is slow or gone; a late reply is discarded)"
        try:
            return self._attempt(lambda: self._reply_to(ticket), _POLLIN, deadline, idle)
        except zmq.ZMQError as exc:
            raise map_zmq(exc, f"request on {self.url}") from None

    def _reply_to(self, ticket: object) -> bytes:
        """The reply to ``ticket``, if it came; zmq.Again if not."""
        sock = self._sock
        while True:
            parts = sock.recv_multipart(_NOBLOCK)
            if len(parts) == 3 and parts[1] == ticket:
                return parts[2]  # type: ignore[no-any-return]
            # a late reply to a request that timed out: nobody waits for it any more

    def _aio_source(self, writing: bool) -> AioSource | None:
        return self._aio_events(_POLLOUT if writing else _POLLIN)

    def _close(self) -> None:
        self._end.close(self._in_child)


class ZmqServer(_ZmqHandle, Server[Any]):
    """ROUTER with ROUTER_MANDATORY: a reply to a client that is gone raises Broken.

    Requests may be answered from any thread: every call into the socket holds the
    server's lock (waits do not), and close() takes it before closing the socket."""

    def __init__(self, address: Address, options: ZmqOptions, codec: Codec[Any]) -> None:
        self._attach(_Endpoint(address, options, "server", zmq.ROUTER, codec))
        self._lock = threading.RLock()  # re-entrant: close() from a signal handler
        super().__init__(address, _capabilities(), codec)

    def _calling(self) -> _Calling:
        return _Locked(self)

    def _next(self, timeout: float | None) -> tuple[object, bytes]:
        try:
            return self._attempt(
                self._request, _POLLIN, Deadline(timeout), "no request arrived {within}"
            )
        except zmq.ZMQError as exc:
            raise map_zmq(exc, f"receive from {self.url}") from None

    def _request(self) -> tuple[object, bytes]:
        """The next request; zmq.Again if none came."""
        sock = self._sock
        while True:
            parts = sock.recv_multipart(_NOBLOCK)
            if len(parts) == 4 and parts[1] == b"":  # osipc client: id, "", rid, data
                return (parts[0], parts[2]), parts[3]
            if len(parts) == 3 and parts[1] == b"":  # a plain REQ socket
                return (parts[0], None), parts[2]
            # anything else is not a request this server can answer: skip it

    def _aio_source(self, writing: bool) -> AioSource | None:
        return self._aio_events(_POLLOUT if writing else _POLLIN)

    def _reply(self, token: object, frame: Buffer, deadline: Deadline) -> None:
        identity, rid = cast("tuple[bytes, bytes | None]", token)
        parts = (identity, b"", frame) if rid is None else (identity, b"", rid, frame)
        try:
            _send_parts(self, parts, deadline, "client")
        except Broken:
            raise Broken(
                f"{self.url}: the client that sent this request is gone; nobody waits "
                "for the reply",
                errno=errno.EHOSTUNREACH,
            ) from None

    def _close(self) -> None:
        if self._in_child:  # the lock may be held by a thread the child does not have
            self._end.close(in_child=True)
            return
        with self._lock:  # no call is inside the socket (waits do not hold the lock)
            self._end.close(in_child=False)


# -- transports --------------------------------------------------------------------------


class _ZmqTransport(Transport):
    options = ZmqOptions
    capabilities = _capabilities()

    def open_sender(self, address: Address, options: Any, codec: Codec[Any]) -> Sender[Any]:
        return ZmqSender(address, options, codec)

    def open_receiver(self, address: Address, options: Any, codec: Codec[Any]) -> Receiver[Any]:
        return ZmqReceiver(address, options, codec)

    def open_publisher(self, address: Address, options: Any, codec: Codec[Any]) -> Sender[Any]:
        return ZmqPublisher(address, options, codec)

    def open_subscriber(self, address: Address, options: Any, codec: Codec[Any]) -> Receiver[Any]:
        return ZmqSubscriber(address, options, codec)

    def open_client(self, address: Address, options: Any, codec: Codec[Any]) -> Client[Any]:
        return ZmqClient(address, options, codec)

    def open_server(self, address: Address, options: Any, codec: Codec[Any]) -> Server[Any]:
        return ZmqServer(address, options, codec)


class ZmqIpcTransport(_ZmqTransport):
    scheme = "zmq+ipc"
    summary = "ZeroMQ over a unix socket in the runtime dir; queue, broadcast, request/reply"

    def unlink(self, address: Address) -> None:
        path = ipc_path(address)
        holder = _binder_pid(path)
        if holder is not None:
            raise TransportError(
                f"{address.base_url} is bound by live process {holder}; it goes away when "
                "that process closes it",
                errno=errno.EBUSY,
            )
        with os_errors(f"remove {address.base_url} ({path})"):
            st = os.lstat(path)
            if not stat.S_ISSOCK(st.st_mode):
                raise TransportError(f"{path} is not a socket; osipc will not remove it")
            os.unlink(path)
        try:
            os.unlink(_lock_path(path))
        except OSError:
            pass

    def info(self, address: Address) -> ObjectInfo:
        path = ipc_path(address)
        with os_errors(f"{address.base_url} ({path})"):
            st = os.lstat(path)
        if not stat.S_ISSOCK(st.st_mode):
            raise NotFound(f"{path} is not a socket", errno=errno.ENOENT)
        holder = _binder_pid(path)
        return ObjectInfo(
            url=address.base_url,
            kind="zmq+ipc",
            path=path,
            owner=st.st_uid,
            mode=stat.S_IMODE(st.st_mode),
            holder=holder or None,
            attached=(holder,) if holder else (),
            instance=_inventory.path_instance(path),
        )

    def inventory(self) -> list[ObjectInfo]:
        try:
            entries = os.listdir(runtime_dir_path())
        except OSError:
            return []
        found = []
        for entry in sorted(entries):
            if not entry.endswith(".zmq"):
                continue
            try:
                validate_name(entry[: -len(".zmq")], entry)
                found.append(self.info(Address("zmq+ipc", entry[: -len(".zmq")])))
            except (InvalidURL, NotFound):
                continue
        return found


class ZmqTcpTransport(_ZmqTransport):
    scheme = "zmq+tcp"
    summary = "ZeroMQ over TCP (HOST:PORT): reaches other machines; use curve= off-host"

    def parse_name(self, url: str, netloc: str, path: str) -> str:
        if path:
            raise InvalidURL(f"{url!r}: zmq+tcp URLs are zmq+tcp://HOST:PORT, without a path")
        host, colon, port = netloc.rpartition(":")
        if not colon or not port.isdigit() or not 0 < int(port) < 65536:
            raise InvalidURL(
                f"{url!r}: give a port 1..65535, as zmq+tcp://HOST:PORT (an empty HOST binds "
                "127.0.0.1; * or 0.0.0.0 binds every interface)"
            )
        if host.startswith("["):
            try:
                ipaddress.IPv6Address(host.strip("[]"))
            except ValueError:
                raise InvalidURL(f"{url!r}: {host} is not an IPv6 address") from None
        elif host not in ("", "*") and not _HOST.match(host):
            raise InvalidURL(f"{url!r}: {host!r} is not a host name or IP address")
        return f"{'0.0.0.0' if host == '*' else host}:{int(port)}"

    def unlink(self, address: Address) -> None:
        raise Unsupported(
            f"{address.base_url}: a TCP endpoint is not a kernel object; it goes away when "
            "its binder closes"
        )

    def info(self, address: Address) -> ObjectInfo:
        host, port = _split_tcp(address.name)
        target = "127.0.0.1" if host in ("", "0.0.0.0") else host
        try:
            with socket.create_connection((target, port), timeout=1):
                pass
        except OSError as exc:
            raise NotFound(
                f"{address.base_url}: nothing listens there ({exc.strerror or exc})",
                errno=errno.ENOENT,
            ) from None
        return ObjectInfo(url=address.base_url, kind="zmq+tcp", path=f"{target}:{port}")
