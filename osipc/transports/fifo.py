r"""fifo://NAME — a named pipe at ``RUNTIME/NAME.fifo`` (``fifo:///abs/path`` literally).

Features: queue semantics for many senders and many receivers, any message size,
end-of-stream (``end()``, or the last writer closing), pollable receivers, adoption of an
inherited descriptor (``fd=``, e.g. systemd's ``ListenFIFO=``), shell interop with
``framing=lines``.

URL:     ``fifo://NAME?framing=frames|lines&pipe_size=N&keep_open=1&fd=N&mode=0600``

Options: ``framing``   ``frames`` (default) or ``lines``: one message per ``\n``-terminated
                       line, so ``echo hi > RUNTIME/x.fifo`` arrives as ``b"hi"``.
         ``pipe_size`` kernel buffer in bytes (F_SETPIPE_SZ; at most fs.pipe-max-size).
         ``keep_open`` receivers hold a write end themselves, so writers coming and going
                       never end the stream (only ``end()`` does), as systemd does.
         ``fd``        adopt this open FIFO descriptor instead of opening the path.
         and the common ``create``, ``exclusive``, ``mode``, ``trust_existing``.

Frame format (``framing=frames``), little-endian, for C and shell peers::

    DATA   C1 len:u32 payload                     a whole message
    END    C0 00000000                            end of stream
    FIRST  C2 len:u32 stream:u32 pid:u32 payload  first part of a larger message
    MORE   C3 len:u32 stream:u32 pid:u32 payload  a middle part
    LAST   C4 len:u32 stream:u32 pid:u32 payload  the last part
    ABORT  C5 00000000 stream:u32 pid:u32          the parts so far are withdrawn

osipc writes every frame with one ``write`` of at most PIPE_BUF (4096) bytes, which the
kernel never interleaves, so senders need no lock (none that a killed sender could leave
held). Messages that do not fit are cut into FIRST/MORE/LAST parts tagged with the
sender's stream id; parts of concurrent senders may interleave and the receiver
reassembles them. Another writer sharing the FIFO must do the same: a DATA frame longer
than PIPE_BUF is only safe from a writer that is alone. Receivers share the pipe under a lock
(``flock`` on the FIFO) that a receiver keeps while it holds an unfinished message, so no
other receiver can take the rest of it. A sender killed mid-message leaves only parts that
receivers discard once its pid is gone: never a torn message.

Limits: a FIFO holds data only while some process has it open, so messages left unread
when the last process closes it are gone (use ``mq://`` for a persistent queue). A sender
waits for a receiver to open the FIFO (``Timeout`` when none does). ``lines`` refuses
messages containing ``\n`` and lines longer than PIPE_BUF, which shell writers could tear.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import stat
import struct
import threading
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from osipc import _accel, _inventory, _limits
from osipc._abc import Capabilities, Frame, ObjectInfo, Receiver, Sender, Transport
from osipc._address import (
    Address,
    CommonOptions,
    check_path_length,
    option,
    parse_bool,
    parse_choice,
    parse_int,
    refuse_with_fd,
    runtime_dir,
    runtime_dir_path,
    validate_name,
)
from osipc._codecs import Buffer, Codec, codec_name
from osipc._deadline import SIGNAL_SLICE, Backoff, Deadline
from osipc._errors import (
    AlreadyExists,
    Broken,
    InvalidArgument,
    InvalidURL,
    MessageTooLarge,
    NotFound,
    PermissionDenied,
    Timeout,
    TransportError,
    map_os_error,
    os_errors,
    passed_on,
)
from osipc._fd import FdHolder

PIPE_BUF = _limits.PIPE_BUF
_MSGC, _ = _accel.load("_msgc")  # a small frame in one write, in C (optional)
F_SETPIPE_SZ = 1031
F_GETPIPE_SZ = 1032

DATA, END, FIRST, MORE, LAST, ABORT = 0xC1, 0xC0, 0xC2, 0xC3, 0xC4, 0xC5
_SHORT = struct.Struct("<BI")  # DATA, END
_PART = struct.Struct("<BIII")  # FIRST, MORE, LAST, ABORT
SMALL_MAX = PIPE_BUF - _SHORT.size  # largest payload sent as one DATA frame
PART_MAX = PIPE_BUF - _PART.size
_END_FRAME = _SHORT.pack(END, 0)
_OPEN_FLAGS = os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class FifoOptions(CommonOptions):
    framing: str = option("frames", parse_choice("frames", "lines"), "frames or lines")
    pipe_size: int = option(0, parse_int(0), "kernel pipe buffer in bytes (0: default)")
    keep_open: bool = option(False, parse_bool, "receiver: writers leaving never end it")
    fd: int = option(-1, parse_int(0), "adopt this inherited FIFO descriptor")


def _capabilities(framing: str, selectable: bool) -> Capabilities:
    lines = framing == "lines"
    return Capabilities(
        ordered=True,
        selectable=selectable,
        max_message_size=PIPE_BUF - 1 if lines else None,
        timeouts="native",
        end_of_stream=not lines,
        persistent=False,
    )


# -- opening -----------------------------------------------------------------------------


def fifo_path(address: Address, create: bool = True) -> str:
    if address.name.startswith("/"):
        return address.name
    return os.path.join(runtime_dir(create=create), address.name + ".fifo")


def _check_fifo(st: os.stat_result, path: str, options: FifoOptions) -> None:
    if not stat.S_ISFIFO(st.st_mode):
        raise TransportError(
            f"{path} exists and is not a FIFO; remove it or choose another name",
            errno=errno.EEXIST,
        )
    if st.st_uid != os.geteuid() and not options.trust_existing:
        raise PermissionDenied(
            f"{path} was created by uid {st.st_uid}, not by you (uid {os.geteuid()}); "
            "refusing to attach (pass trust_existing=True if that user is trusted)",
            errno=errno.EPERM,
        )


def _ensure_fifo(address: Address, options: FifoOptions, codec: Codec[Any]) -> str:
    """Create the FIFO (mode exact) or check the existing one; return its path."""
    path = fifo_path(address)
    what = f"{address.base_url} ({path})"
    if options.create:
        try:
            with os_errors(f"create {what}"):
                os.mkfifo(path, options.mode)
        except AlreadyExists:
            if options.exclusive:
                raise AlreadyExists(f"{what} exists (exclusive=True)", errno=errno.EEXIST) from None
        else:
            # The umask may have narrowed the mode: fix it through an fd that cannot be a
            # symlink planted after mkfifo. (A reader end opens at once and is closed again.)
            with os_errors(f"set the mode of {what}"):
                fd = os.open(path, os.O_RDONLY | _OPEN_FLAGS)
                try:
                    st = os.fstat(fd)
                    _check_fifo(st, path, options)
                    os.fchmod(fd, options.mode)
                    instance = _inventory.fd_instance(fd)
                finally:
                    os.close(fd)
            _inventory.write_record(
                address, kind="fifo", mode=options.mode, codec=codec_name(codec), instance=instance
            )
            return path
    with os_errors(f"open {what}"):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            raise NotFound(f"{what} does not exist (create=False)", errno=errno.ENOENT) from None
    if stat.S_ISLNK(st.st_mode):
        raise PermissionDenied(f"{path} is a symlink; osipc does not follow it", errno=errno.ELOOP)
    _check_fifo(st, path, options)
    return path


def _adopt(fd: int, address: Address, options: FifoOptions, writable: bool) -> FdHolder:
    """Take over an inherited FIFO descriptor: osipc owns it from now on (makes it
    non-blocking, as it waits in poll(), and closes it with the handle)."""
    refuse_with_fd(address, options, ())
    role = "sender" if writable else "receiver"
    try:
        st = os.fstat(fd)
    except OSError as exc:
        raise InvalidArgument(
            f"{address}: fd {fd} is not an open descriptor ({exc.strerror})"
        ) from None
    with os_errors(f"adopt fd {fd} for {address}"):
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    if not stat.S_ISFIFO(st.st_mode):
        raise InvalidArgument(f"{address}: fd {fd} is not a FIFO")
    access = flags & os.O_ACCMODE
    if access == (os.O_RDONLY if writable else os.O_WRONLY):
        need = "writing" if writable else "reading"
        raise InvalidArgument(f"{address}: fd {fd} is not open for {need}, as a {role} needs")
    with os_errors(f"adopt fd {fd} for {address}"):
        os.set_blocking(fd, False)
        os.set_inheritable(fd, False)
    return FdHolder(fd)


def _set_pipe_size(fd: int, size: int, address: Address) -> None:
    if not size:
        return
    limit = _limits.pipe_max_size()
    if limit is not None and size > limit and not _limits.has_cap_sys_resource():
        raise InvalidURL(
            f"{address}: pipe_size={size} exceeds fs.pipe-max-size={limit} "
            "(/proc/sys/fs/pipe-max-size); ask for less or raise the sysctl"
        )
    try:
        fcntl.fcntl(fd, F_SETPIPE_SZ, size)
    except OSError as exc:
        if exc.errno == errno.EPERM:
            raise PermissionDenied(
                f"{address}: pipe_size={size} refused: it exceeds fs.pipe-max-size={limit} "
                "or this user's pipe buffer quota (fs.pipe-user-pages-soft); ask for less",
                errno=errno.EPERM,
            ) from exc
        if exc.errno == errno.EBUSY:
            return  # more data is buffered than the new size: keep the larger buffer
        raise map_os_error(exc, f"set pipe_size on {address}") from exc


def _wait(fd: int, events: int, deadline: Deadline, wake: int = -1) -> int:
    """The events of ``fd`` once it shows one of ``events``, or 0 when the deadline passed,
    the descriptor ``wake`` became readable, or a slice (``Deadline.poll_ms``) ended first:
    the caller looks around and waits again."""
    poller = select.poll()
    poller.register(fd, events)
    if wake >= 0:
        poller.register(wake, select.POLLIN)
    for ready_fd, ready_events in poller.poll(deadline.poll_ms()):
        if ready_fd == fd:
            return ready_events
    return 0


def _small(frame: Buffer, lines: bool, url: str) -> Buffer | None:
    """One write for ``frame`` (header + payload, or a line), or None if it needs parts."""
    size = len(frame)
    if lines:
        if b"\n" in frame:
            raise InvalidArgument(
                f"{url}: framing=lines cannot carry a message containing '\\n'; "
                "use the default framing=frames"
            )
        if size >= PIPE_BUF:
            raise MessageTooLarge(
                f"{url}: a {size}-byte line exceeds PIPE_BUF-1 ({PIPE_BUF - 1}) bytes, beyond "
                "which concurrent writers can interleave; use framing=frames for larger messages",
                size=size,
                limit=PIPE_BUF - 1,
            )
        return bytes(frame) + b"\n"
    if size > SMALL_MAX:
        return None
    header = _SHORT.pack(DATA, size)
    return header + frame if isinstance(frame, bytes) else b"".join((header, frame))


def _pack(
    frames: Iterable[Buffer | None], lines: bool, stream: int, pid: int, url: str
) -> Iterator[tuple[Buffer, int, bool]]:
    """Cut messages (None: end-of-stream) into writes of at most PIPE_BUF bytes, each of
    which the kernel keeps whole. Yields (bytes to write, messages that write completes,
    whether a message is left half-sent after it)."""
    chunk = bytearray()
    count = 0
    for frame in frames:
        piece = _END_FRAME if frame is None else _small(frame, lines, url)
        if piece is not None:
            if chunk and len(chunk) + len(piece) > PIPE_BUF:
                yield bytes(chunk), count, False
                chunk.clear()
                count = 0
            chunk += piece
            count += 1
            continue
        if chunk:
            yield bytes(chunk), count, False
            chunk.clear()
            count = 0
        assert frame is not None
        view = memoryview(frame).cast("B")
        size = len(view)
        if size > 0xFFFFFFFF:
            raise MessageTooLarge(
                f"{url}: {size} bytes exceeds the 4 GiB frame limit", size=size, limit=0xFFFFFFFF
            )
        for offset in range(0, size, PART_MAX):
            end = min(offset + PART_MAX, size)
            last = end == size
            tag = FIRST if offset == 0 else (LAST if last else MORE)
            header = _PART.pack(tag, end - offset, stream, pid)
            yield b"".join((header, view[offset:end])), int(last), not last
    if chunk:
        yield bytes(chunk), count, False


# -- sender ------------------------------------------------------------------------------


class FifoSender(Sender[Any]):
    def __init__(
        self, address: Address, options: FifoOptions, codec: Codec[Any], path: str | None
    ) -> None:
        super().__init__(address, _capabilities(options.framing, selectable=False), codec)
        self._options = options
        self._path = path
        self._fd = FdHolder()
        self._lines = options.framing == "lines"
        self._stream = _new_stream()
        self._pid = os.getpid()
        self._parts_lock = threading.Lock()
        self._abort_owed = False

    def _adopt(self, fd: int) -> None:
        self._fd = _adopt(fd, self._address, self._options, writable=True)
        _set_pipe_size(self._fd.fd, self._options.pipe_size, self._address)

    # -- connection ----------------------------------------------------------------------

    def _no_receiver(self, deadline: Deadline) -> Timeout:
        return Timeout(
            f"{self.url}: no receiver opened the FIFO {deadline.describe()}", errno=errno.ENXIO
        )

    def _connect(self, deadline: Deadline) -> int:
        """Open the write end, waiting for a receiver; a FIFO cannot be opened for writing
        until someone reads it, and the kernel offers no wake-up for that moment."""
        assert self._path is not None
        backoff = Backoff()
        wake = self._wakeup_fd() if deadline.timeout != 0 else -1
        while True:
            try:
                fd = os.open(self._path, os.O_WRONLY | _OPEN_FLAGS)
            except OSError as exc:
                if exc.errno == errno.ENXIO:
                    if backoff.wait(deadline, wake):
                        self._check_open()
                        continue
                    raise self._no_receiver(deadline) from None
                if exc.errno == errno.ENOENT:
                    raise NotFound(
                        f"{self.url}: {self._path} was removed while this sender was open",
                        errno=errno.ENOENT,
                    ) from None
                raise map_os_error(exc, f"open {self.url} for writing") from exc
            holder = FdHolder(fd)
            try:
                with os_errors(f"check {self._path}"):
                    _check_fifo(os.fstat(fd), self._path, self._options)
                _set_pipe_size(fd, self._options.pipe_size, self._address)
            except BaseException:
                holder.close()
                raise
            self._fd = holder
            return fd

    def _write(self, buf: Buffer, deadline: Deadline) -> None:
        """Write one buffer of at most PIPE_BUF bytes, atomically, within the deadline.
        Called with ``_parts_lock`` held."""
        backoff: Backoff | None = None
        while True:
            self._check_open()
            fd = self._fd.fd
            if fd < 0:
                fd = self._connect(deadline)
            try:
                os.write(fd, buf)
                return
            except BlockingIOError:
                if not _wait(fd, select.POLLOUT, deadline, self._wakeup_fd()):
                    self._check_open()
                    if not deadline.expired():
                        continue
                    raise Timeout(
                        f"{self.url}: the FIFO is full (the receiver is not keeping up) "
                        f"{deadline.describe()}; raise pipe_size= or the timeout",
                        errno=errno.EAGAIN,
                    ) from None
            except BrokenPipeError:
                # The receiver left. Keep our end open so data it did not read survives
                # for the next receiver, and wait for one.
                if self._path is not None and self._replaced():
                    self._fd.close()
                    continue
                backoff = backoff or Backoff()
                if not backoff.wait(deadline, self._wakeup_fd()):
                    raise self._no_receiver(deadline) from None
            except OSError as exc:
                raise map_os_error(exc, f"write to {self.url}") from exc

    def _replaced(self) -> bool:
        """True if the path now names a different FIFO than the one we hold."""
        assert self._path is not None
        try:
            now = os.stat(self._path)
            held = os.fstat(self._fd.fd)
        except OSError:
            return False
        return (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino)

    # -- Sender --------------------------------------------------------------------------

    def _send(self, frame: Buffer, timeout: float | None) -> None:
        fd = self._fd.fd
        if fd >= 0 and not self._lines and not self._abort_owed:
            # the common case: a small frame, room in the pipe, a receiver present
            try:
                if _MSGC is not None:
                    if _MSGC.pipe_send(fd, frame, SMALL_MAX):  # (None: too large for one)
                        return
                elif len(frame) <= SMALL_MAX:
                    header = _SHORT.pack(DATA, len(frame))
                    whole = header + frame if type(frame) is bytes else b"".join((header, frame))
                    os.write(fd, whole)
                    return
            except (BlockingIOError, BrokenPipeError):
                pass
            except OSError as exc:
                raise map_os_error(exc, f"write to {self.url}") from exc
        self._write_all([frame], Deadline(timeout))

    def _send_batch(self, frames: list[Buffer], deadline: Deadline) -> None:
        self._write_all(frames, deadline)

    def _write_all(self, frames: Sequence[Buffer | None], deadline: Deadline) -> None:
        """Write messages in order; a Timeout carries how many went whole, and a message
        left half-written is withdrawn (ABORT) before anything else is sent."""
        sent = 0
        with self._waiting(), self._parts_lock:
            self._settle_abort(deadline)
            half_sent = False
            for buf, done, half_after in _pack(
                frames, self._lines, self._stream, self._pid, self.url
            ):
                try:
                    self._write(buf, deadline)
                except (Timeout, Broken) as exc:
                    self._abort_owed = half_sent
                    if isinstance(exc, Timeout):
                        exc.sent = sent
                    raise
                sent += done
                half_sent = half_after

    def _settle_abort(self, deadline: Deadline) -> None:
        """Withdraw a message left half-written by an earlier Timeout."""
        if self._abort_owed:
            self._write(_PART.pack(ABORT, 0, self._stream, self._pid), deadline)
            self._abort_owed = False

    def _send_end(self, deadline: Deadline) -> None:
        self._write_all([None], deadline)

    def _close(self) -> None:
        if self._abort_owed and self._fd.fd >= 0 and not self._in_child:
            try:
                self._settle_abort(Deadline(0.5))
            except Exception:  # receivers drop the parts once this process is gone
                pass
        self._fd.close()


# -- receiver ----------------------------------------------------------------------------


class FifoReceiver(Receiver[Any]):
    def __init__(self, address: Address, options: FifoOptions, codec: Codec[Any]) -> None:
        super().__init__(address, _capabilities(options.framing, selectable=True), codec)
        self._options = options
        self._fd = FdHolder()
        self._keep = FdHolder()
        self._locked = False
        self._leftover = b""
        # stream id -> (writer pid, parts so far) for messages sent in parts
        self._partial: dict[int, tuple[int, list[bytes]]] = {}
        self._lines = options.framing == "lines"
        self._read_size = 65536
        self._reading = threading.RLock()  # (knows its owner: see _recv_batch)
        self._broken: Broken | None = None  # raised once the messages before it are out

    def _open_path(self, path: str) -> None:
        with os_errors(f"open {self.url} ({path}) for reading"):
            try:
                fd = os.open(path, os.O_RDONLY | _OPEN_FLAGS)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise PermissionDenied(
                        f"{path} is a symlink; osipc does not follow it", errno=errno.ELOOP
                    ) from None
                raise
        self._fd = FdHolder(fd)
        with os_errors(f"check {path}"):
            _check_fifo(os.fstat(fd), path, self._options)
        if self._options.keep_open:
            with os_errors(f"open {path} to keep it open"):
                self._keep = FdHolder(os.open(path, os.O_WRONLY | _OPEN_FLAGS))
        self._setup()

    def _adopt(self, fd: int) -> None:
        self._fd = _adopt(fd, self._address, self._options, writable=False)
        self._setup()

    def _setup(self) -> None:
        _set_pipe_size(self._fd.fd, self._options.pipe_size, self._address)
        try:
            self._read_size = max(65536, fcntl.fcntl(self._fd.fd, F_GETPIPE_SZ))
        except OSError:
            pass

    def _raw_fileno(self) -> int:
        return self._fd.fd

    def _close(self) -> None:
        super()._close()
        if not self._in_child and self._fd.fd >= 0:
            self._requeue()
        self._unlock()
        self._fd.close()
        self._keep.close()

    def _requeue(self) -> None:
        """Give messages read ahead but not delivered back to the FIFO, so the next
        receiver gets them (after what is in the pipe now) instead of losing them."""
        frames = [f for f in self._pending if f is not None or not self._lines]
        self._pending.clear()
        torn = sum(len(part) for _, parts in self._partial.values() for part in parts)
        self._partial.clear()
        given_back = 0
        if frames:
            try:
                # /proc/self/fd/N reopens this very FIFO (a magic link: no O_NOFOLLOW)
                fd = os.open(
                    f"/proc/self/fd/{self._fd.fd}", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC
                )
            except OSError:
                fd = -1
            try:
                # pid 0: parts no receiver will drop as a dead writer's
                for buf, done, _ in _pack(frames, self._lines, _new_stream(), 0, self.url):
                    if fd < 0:
                        break
                    os.write(fd, buf)
                    given_back += done
            except OSError:
                pass
            finally:
                if fd >= 0:
                    os.close(fd)
        if given_back < len(frames) or torn:
            warnings.warn(
                f"{self.url}: closed while holding {len(frames) - given_back} message(s) it "
                f"could not give back to the FIFO and {torn} bytes of an unfinished one; "
                "they are lost",
                RuntimeWarning,
                stacklevel=4,
            )

    # -- reading -------------------------------------------------------------------------

    def _recv(self, timeout: float | None) -> Frame | None:
        return self._recv_batch(1, Deadline(timeout))[0]

    def _recv_batch(self, max_count: int, deadline: Deadline) -> list[Frame | None]:
        # Threads sharing this handle take turns reading and parsing (the readers' flock
        # cannot tell them apart: they share one descriptor).
        with self._waiting():
            reading = self._reading
            try:
                # (in slices: a signal handler due meanwhile runs; see SIGNAL_SLICE)
                while not reading.acquire(timeout=deadline.slice(SIGNAL_SLICE)):
                    self._check_open()
                    if deadline.expired():
                        raise Timeout(
                            f"{self.url}: no message {deadline.describe()} (another thread reads)"
                        )
                pending = self._pending
                if pending and pending[0] is None and self._broken is not None:
                    broken, self._broken = self._broken, None
                    raise broken  # after every whole message before it, before the end
                if not pending:
                    self._fill(deadline)
                count = min(max_count, len(pending))
                if self._broken is not None and None in pending:
                    count = min(count, pending.index(None))  # the error comes first
                    if not count:
                        broken, self._broken = self._broken, None
                        raise broken
                return [pending.popleft() for _ in range(count)]
            finally:
                # (asked, not remembered: a signal handler's exception can come between
                # the acquire and any note of it, and must not keep the turn forever)
                if reading._is_owned():  # type: ignore[attr-defined]  # (CPython 3.9+)
                    reading.release()

    def _lock(self, deadline: Deadline, backoff: Backoff) -> bool:
        """Take the readers' lock; False if the deadline passed while another reader held it."""
        while not self._locked:
            try:
                fcntl.flock(self._fd.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._locked = True
            except BlockingIOError:
                if not backoff.wait(deadline, self._wakeup_fd()):
                    return False
                self._check_open()
            except OSError as exc:
                raise map_os_error(exc, f"lock {self.url}") from exc
        return True

    def _unlock(self) -> None:
        if self._locked:
            self._locked = False
            try:
                fcntl.flock(self._fd.fd, fcntl.LOCK_UN)
            except OSError as exc:
                passed_on(exc)  # (a signal handler's goes on; a closed fd has no lock)

    def _fill(self, deadline: Deadline) -> None:
        """Read until at least one item (a frame, or None for end-of-stream) is pending."""
        self._check_open()
        fd = self._fd.fd
        wake = self._wakeup_fd() if deadline.timeout != 0 else -1
        backoff = Backoff(0.0002, 0.01)
        while True:
            if self._lock(deadline, backoff):
                try:
                    data = os.read(fd, self._read_size)
                except BlockingIOError:
                    data = None
                except OSError as exc:
                    self._unlock()
                    raise map_os_error(exc, f"read {self.url}") from exc
                if data == b"":
                    # read() says EOF whenever no writer is connected, also before the
                    # first one came; only POLLHUP means writers came and all left.
                    if _wait(fd, select.POLLIN, Deadline(0)) & select.POLLHUP:
                        self._at_eof()
                        return
                    data = None
                if data:
                    if self._leftover:
                        data = self._leftover + data
                    if self._lines:
                        self._parse_lines(data)
                    else:
                        self._parse_frames(data)
                if not (self._leftover or self._partial):
                    self._unlock()
                if self._pending:
                    return
            elif deadline.expired():
                raise Timeout(f"{self.url}: no message {deadline.describe()}")
            if self._partial:
                self._drop_dead_writers()
            if not _wait(fd, select.POLLIN, deadline, wake):
                self._check_open()
                if deadline.expired():
                    raise Timeout(f"{self.url}: no message {deadline.describe()}")

    def _at_eof(self) -> None:
        """Every writer has closed the FIFO: deliver what is complete, then end."""
        self._unlock()
        if self._lines and self._leftover:
            self._pending.append(self._leftover)  # a last line without '\n'
            self._leftover = b""
        lost = len(self._leftover) + sum(
            len(part) for _, parts in self._partial.values() for part in parts
        )
        self._leftover = b""
        self._partial.clear()
        self._pending.append(None)
        if lost:
            # osipc writers send whole frames of at most PIPE_BUF bytes: only another
            # writer (or one killed mid-message, whose parts are dropped) leaves a piece
            self._broken = Broken(
                f"{self.url}: the last writer closed the FIFO in the middle of a message; "
                f"{lost} bytes of it were discarded (a writer that does not send osipc "
                "frames? see the frame format in osipc/transports/fifo.py, or use "
                "framing=lines for text)",
                errno=errno.EPROTO,
            )

    def _parse_lines(self, data: bytes) -> None:
        lines = data.split(b"\n")
        self._leftover = lines.pop()
        self._pending.extend(lines)

    def _parse_frames(self, data: bytes) -> None:
        pending = self._pending
        unpack = _SHORT.unpack_from
        end = len(data)
        pos = 0
        if end and not END <= data[0] <= ABORT:  # the first byte tells: no need to wait
            self._corrupt(data[:16])
        while end - pos >= 5:
            tag, size = unpack(data, pos)
            if tag == DATA:
                stop = pos + 5 + size
                if stop > end:
                    break
                pending.append(data[pos + 5 : stop])
                pos = stop
            elif tag == END:
                pending.append(None)
                pos += 5
            elif FIRST <= tag <= ABORT:
                if end - pos < _PART.size:
                    break
                _, size, stream, pid = _PART.unpack_from(data, pos)
                stop = pos + _PART.size + size
                if stop > end:
                    break
                self._part(tag, stream, pid, data[pos + _PART.size : stop])
                pos = stop
            else:
                self._corrupt(data[pos : pos + 16])
        self._leftover = data[pos:]

    def _part(self, tag: int, stream: int, pid: int, payload: bytes) -> None:
        if tag == FIRST:
            self._partial[stream] = (pid, [payload])
            return
        entry = self._partial.get(stream)
        if tag == ABORT:
            self._partial.pop(stream, None)
            return
        if entry is None:
            warnings.warn(
                f"{self.url}: discarded the rest of a message whose start was read by a "
                "receiver that closed before it was complete",
                RuntimeWarning,
                stacklevel=6,
            )
            return
        entry[1].append(payload)
        if tag == LAST:
            del self._partial[stream]
            self._pending.append(b"".join(entry[1]))

    def _drop_dead_writers(self) -> None:
        for stream, (pid, _) in list(self._partial.items()):
            if not _pid_alive(pid):
                del self._partial[stream]
        if not (self._partial or self._leftover):
            self._unlock()

    def _corrupt(self, sample: bytes) -> None:
        self._unlock()
        self._leftover = b""
        hint = (
            "; the writer sends lines: open with framing=lines"
            if sample[:1].isascii() and sample[:1] not in (b"\xc0", b"\xc1")
            else ""
        )
        raise Broken(
            f"{self.url}: the FIFO carries data that is not osipc frames (starts {sample!r}){hint}",
            errno=errno.EPROTO,
        )


def _new_stream() -> int:
    return int.from_bytes(os.urandom(4), "little")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- transport ---------------------------------------------------------------------------


class FifoTransport(Transport):
    scheme = "fifo"
    summary = "named pipe (FIFO) in the runtime dir; shell-friendly with framing=lines"
    options = FifoOptions
    capabilities = _capabilities("frames", selectable=True)

    def parse_name(self, url: str, netloc: str, path: str) -> str:
        if not netloc and path.startswith("/"):
            if os.path.normpath(path) != path or path.endswith("/"):
                raise InvalidURL(
                    f"{url!r}: the FIFO path must be absolute and normalised "
                    "(no '.', '..', '//' or trailing '/')"
                )
            return check_path_length(path, url)
        return super().parse_name(url, netloc, path)

    def open_sender(self, address: Address, options: Any, codec: Codec[Any]) -> Sender[Any]:
        if options.fd >= 0:
            sender = FifoSender(address, options, codec, None)
            sender._adopt(options.fd)
            return sender
        path = _ensure_fifo(address, options, codec)
        sender = FifoSender(address, options, codec, path)
        try:
            # Connect now if a receiver is there, so an idle sender keeps the stream open;
            # otherwise the first send waits for one (start order never matters).
            sender._connect(Deadline(0))
        except Timeout:
            pass
        except BaseException:
            sender.close()
            raise
        return sender

    def open_receiver(self, address: Address, options: Any, codec: Codec[Any]) -> Receiver[Any]:
        receiver = FifoReceiver(address, options, codec)
        try:
            if options.fd >= 0:
                receiver._adopt(options.fd)
            else:
                receiver._open_path(_ensure_fifo(address, options, codec))
        except BaseException:
            receiver.close()
            raise
        return receiver

    def unlink(self, address: Address) -> None:
        path = fifo_path(address, create=False)
        with os_errors(f"remove {address.base_url} ({path})"):
            st = os.lstat(path)
            if not stat.S_ISFIFO(st.st_mode):
                raise TransportError(f"{path} is not a FIFO; osipc will not remove it")
            os.unlink(path)

    def info(self, address: Address) -> ObjectInfo:
        path = fifo_path(address, create=False)
        with os_errors(f"{address.base_url} ({path})"):
            st = os.lstat(path)
        if not stat.S_ISFIFO(st.st_mode):
            raise NotFound(f"{path} is not a FIFO", errno=errno.ENOENT)
        return ObjectInfo(
            url=address.base_url,
            kind="fifo",
            path=path,
            owner=st.st_uid,
            mode=stat.S_IMODE(st.st_mode),
            identity=(st.st_dev, st.st_ino),
            instance=_inventory.path_instance(path),  # with its birth time: see there
        )

    def inventory(self) -> list[ObjectInfo]:
        root = runtime_dir_path()
        try:
            entries = os.listdir(root)
        except OSError:
            return []
        found = []
        for entry in sorted(entries):
            if not entry.endswith(".fifo"):
                continue
            name = entry[: -len(".fifo")]
            try:
                validate_name(name, entry)
                found.append(self.info(Address("fifo", name)))
            except (InvalidURL, NotFound):
                continue
        return found
