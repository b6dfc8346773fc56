"""Metadata records of the objects osipc creates, and ls / info / gc over them.

Each object osipc creates gets a record, ``RUNTIME/.meta/SCHEME/NAME.json``, written by
the process whose exclusive create succeeded: url, kind, creator pid and the pid's start
time (so a recycled pid is not mistaken for the creator), uid, mode, codec, capacity,
creation time, and the object's **instance**: which object of that name it is (device and
inode of a FIFO, queue, segment, semaphore or socket, read from the creator's descriptor;
id and creator uid of a SysV object), since a name outlives the objects it has named.

An object is **live** while its creator runs or any process holds it open (found by
matching the object's device and inode against ``/proc/*/fd``, so C peers and systemd
count too), **stale** when neither, **unknown** when its creator is gone but processes
that may hold it could not be inspected (a user other than root cannot read another
user's ``/proc/PID/fd``; ``gc`` keeps these unless forced), **gone** when its record
outlives it, **replaced**
when the object of its name is not the one the record was written for (someone removed
osipc's and made their own). ``gc`` removes stale objects and forgets the records of gone
and replaced ones: it never removes an object osipc did not create.
"""

from __future__ import annotations

import ctypes
import json
import os
import tempfile
import time
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, unquote

from osipc._abc import ObjectInfo, Transport
from osipc._address import Address, runtime_dir
from osipc._errors import NotFound, OsipcError, os_errors

META_DIR = ".meta"


def _records_root(create: bool) -> str:
    root = os.path.join(runtime_dir(create=create), META_DIR)
    if create and not os.path.isdir(root):
        with os_errors(f"create {root}"):
            try:
                os.mkdir(root, 0o700)
            except FileExistsError:
                pass
    return root


def _record_path(root: str, address: Address) -> str:
    return os.path.join(root, address.scheme, quote(address.name, safe="") + ".json")


def proc_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            stat = stat_file.read()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(b")") + 2 :].split()
    return int(fields[19])


def process_alive(pid: int | None, start_time: int | None) -> bool:
    if not pid:
        return False
    current = proc_start_time(pid)
    return current is not None and (start_time is None or current == start_time)


class _StatxTimestamp(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_int64), ("tv_nsec", ctypes.c_uint32), ("pad", ctypes.c_int32)]


class _Statx(ctypes.Structure):  # struct statx, <linux/stat.h>: 256 bytes
    _fields_ = [
        ("mask", ctypes.c_uint32), ("blksize", ctypes.c_uint32), ("attributes", ctypes.c_uint64),
        ("nlink", ctypes.c_uint32), ("uid", ctypes.c_uint32), ("gid", ctypes.c_uint32),
        ("mode", ctypes.c_uint16), ("pad", ctypes.c_uint16), ("ino", ctypes.c_uint64),
        ("size", ctypes.c_uint64), ("blocks", ctypes.c_uint64),
        ("attributes_mask", ctypes.c_uint64), ("atime", _StatxTimestamp),
        ("btime", _StatxTimestamp), ("ctime", _StatxTimestamp), ("mtime", _StatxTimestamp),
        ("rest", ctypes.c_uint32 * 4), ("spare", ctypes.c_uint64 * 14),
    ]  # fmt: skip


_STATX_BTIME, _AT_EMPTY_PATH, _AT_SYMLINK_NOFOLLOW, _AT_FDCWD = 0x800, 0x1000, 0x100, -100
_statx: Any = None


def _birth(fd: int, path: str) -> str:
    """' born SEC.NSEC' from statx(2), or '' where the file system keeps no birth time
    (mqueue) or libc has no statx. Disk file systems reuse a freed inode number at once
    (ext4 gives a FIFO made right after another's removal the same one); with the birth
    time, a later object of the same inode number is told apart."""
    global _statx
    if _statx is None:
        _statx = getattr(ctypes.CDLL(None, use_errno=True), "statx", False)
        if _statx:
            _statx.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint,
                               ctypes.POINTER(_Statx)]  # fmt: skip
    if not _statx:
        return ""
    flags = _AT_EMPTY_PATH if fd != _AT_FDCWD else _AT_SYMLINK_NOFOLLOW
    result = _Statx()
    if _statx(fd, os.fsencode(path), flags, _STATX_BTIME, ctypes.byref(result)) != 0:
        return ""
    if not result.mask & _STATX_BTIME:
        return ""
    return f" born {result.btime.tv_sec}.{result.btime.tv_nsec:09d}"


def file_instance(st: os.stat_result) -> str:
    """The instance of an object that is a file to the kernel: its device and inode
    (``fd_instance`` and ``path_instance`` add its birth time where there is one)."""
    return f"inode {st.st_dev}:{st.st_ino}"


def fd_instance(fd: int) -> str:
    """The instance of the object open on ``fd``."""
    with os_errors("inspect a new object"):
        return file_instance(os.fstat(fd)) + _birth(fd, "")


def path_instance(path: str) -> str:
    """The instance of the object at ``path`` (not following a symlink)."""
    with os_errors(f"inspect {path}"):
        return file_instance(os.lstat(path)) + _birth(_AT_FDCWD, path)


def sysv_instance(ipc_id: int, cuid: int) -> str:
    """The instance of a SysV object: its id (the kernel does not reuse one soon: each
    new object of a slot gets a new sequence number) and the uid that created it."""
    return f"sysv id {ipc_id} cuid {cuid}"


def instance_of(info: ObjectInfo) -> str | None:
    """The instance ``info`` describes, comparable with a record's; None if unknown."""
    if info.instance is not None:
        return info.instance
    if info.identity is not None:
        return f"inode {info.identity[0]}:{info.identity[1]}"
    return None


def _replaced(info: ObjectInfo, record: dict[str, Any]) -> bool:
    """The record was written for another object of this name (records written before
    osipc kept instances, or by transports that keep none, are taken at their word)."""
    recorded, current = record.get("instance"), instance_of(info)
    if not (recorded and current) or recorded == current:
        return False
    # A birth time counts where both sides have one (info() of some transports has none).
    recorded_inode, _, recorded_birth = str(recorded).partition(" born ")
    current_inode, _, current_birth = current.partition(" born ")
    return recorded_inode != current_inode or bool(recorded_birth and current_birth)


def write_record(
    address: Address,
    *,
    kind: str,
    mode: int,
    codec: str | None,
    capacity: int | None = None,
    max_message_size: int | None = None,
    instance: str | None = None,
) -> None:
    """Record that this process created ``address`` (atomically replacing any old record).

    ``instance`` says which object it is (``fd_instance``, ``path_instance`` or
    ``sysv_instance``), so that ``gc`` never takes a later object of the same name,
    made by someone else, for it."""
    root = _records_root(create=True)
    path = _record_path(root, address)
    pid = os.getpid()
    record = {
        "url": address.base_url,
        "scheme": address.scheme,
        "name": address.name,
        "kind": kind,
        "creator_pid": pid,
        "creator_start": proc_start_time(pid),
        "uid": os.geteuid(),
        "mode": f"{mode:04o}",
        "codec": codec,
        "capacity": capacity,
        "max_message_size": max_message_size,
        "created": time.time(),
        "instance": instance,
    }
    with os_errors(f"write the osipc record {path}"):
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(record, out)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise


def remove_record(address: Address) -> None:
    try:
        root = _records_root(create=False)
    except NotFound:
        return
    with os_errors("remove an osipc record"):
        try:
            os.unlink(_record_path(root, address))
        except FileNotFoundError:
            pass


def load_records() -> list[dict[str, Any]]:
    """Every record in RUNTIME; unreadable ones are skipped (they are not osipc's to judge)."""
    try:
        root = _records_root(create=False)
    except NotFound:
        return []
    records = []
    for dirpath, _dirs, files in os.walk(root):
        for filename in sorted(files):
            if not filename.endswith(".json") or filename.startswith(".tmp-"):
                continue
            try:
                with open(os.path.join(dirpath, filename)) as record_file:
                    record = json.load(record_file)
            except (OSError, ValueError):
                continue
            if isinstance(record, dict) and "scheme" in record and "name" in record:
                record["name"] = unquote(filename[: -len(".json")])
                records.append(record)
    return records


@dataclass(frozen=True)
class Holders:
    """What a scan of /proc found: the pids holding each object, and the processes whose
    descriptors this user may not read (other users', for anyone but root), by their uids."""

    pids: dict[tuple[int, int], list[int]]
    hidden: dict[int, frozenset[int]]

    def may_hide(self, info: ObjectInfo) -> list[int]:
        """Pids that could not be inspected and may hold ``info`` open: any of them when
        its mode lets group or others open it, else those running as its owner. (Root
        may open anything, yet a root process that attached to another user's private
        object, with trust_existing=True, is not counted: else no user's gc could ever
        collect anything while root runs processes.)"""
        if info.identity is None or not self.hidden:
            return []
        if info.mode is None or info.owner is None or info.mode & 0o077:
            return sorted(self.hidden)
        return sorted(pid for pid, uids in self.hidden.items() if info.owner in uids)


def _uids(pid: str) -> frozenset[int] | None:
    """Real, effective, saved and file-system uids of ``pid`` (None: it has exited)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("Uid:"):
                    return frozenset(int(uid) for uid in line.split()[1:])
    except (OSError, ValueError):
        return None
    return frozenset()


def holders(identities: set[tuple[int, int]]) -> Holders:
    """Pids holding each (st_dev, st_ino) open or mapped, from /proc/*/fd and
    /proc/*/maps (glibc maps a named semaphore and closes its descriptor).

    Only processes this user may inspect are seen (all of them for root, or for any user
    with CAP_SYS_PTRACE); those whose descriptors it may not list are in ``hidden``, so
    that nothing is called unused just because its users could not be seen.
    """
    found: dict[tuple[int, int], list[int]] = {ident: [] for ident in identities}
    hidden: dict[int, frozenset[int]] = {}
    if not identities:
        return Holders(found, hidden)
    mapped = {
        f"{os.major(dev):02x}:{os.minor(dev):02x} {ino}": (dev, ino) for dev, ino in identities
    }
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        seen: set[tuple[int, int]] = set()
        denied = False
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except PermissionError:
            fds, denied = [], True
        except OSError:  # it has exited
            fds = []
        for fd in fds:
            try:
                st = os.stat(f"/proc/{entry}/fd/{fd}")
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in found:
                seen.add(key)
        try:
            with open(f"/proc/{entry}/maps") as maps:
                for line in maps:
                    fields = line.split(None, 5)
                    if len(fields) > 4 and fields[4] != "0":
                        key2 = mapped.get(f"{fields[3]} {fields[4]}")
                        if key2 is not None:
                            seen.add(key2)
        except OSError:  # a process whose fds are readable and maps are not (seen: a
            pass  # sandbox's pid 1, even for root) counts as inspected: best effort
        if denied and pid != os.getpid():
            uids = _uids(entry)
            if uids is not None:
                hidden[pid] = uids
        for key in seen:
            found[key].append(pid)
    return Holders(found, hidden)


def _with_record(info: ObjectInfo, record: dict[str, Any] | None) -> ObjectInfo:
    if record is None:
        return info
    kind = info.kind
    if record.get("kind") == "lock" and kind == "semaphore":
        kind = "sem-lock"  # (a lock nobody holds looks like any semaphore of value 0)
    return replace(
        info,
        kind=kind,
        creator_pid=record.get("creator_pid"),
        created=record.get("created"),
        codec=record.get("codec"),
    )


def _judge(infos: list[tuple[ObjectInfo, dict[str, Any] | None]]) -> list[ObjectInfo]:
    """Fill in ``attached`` and ``state`` for objects (and their records, if any)."""
    identities = {info.identity for info, _ in infos if info.identity is not None}
    scan = holders(identities)
    judged = []
    for info, record in infos:
        attached = tuple(scan.pids.get(info.identity, ())) if info.identity else ()
        own = record  # the record, if it is this object's
        if record is None:
            state = "foreign"
        elif not info.exists:
            state = "gone"
        elif _replaced(info, record):
            state, own = "replaced", None  # its creator and codec are another object's
        elif attached or process_alive(record.get("creator_pid"), record.get("creator_start")):
            state = "live"
        elif scan.may_hide(info):
            state = "unknown"  # processes this user may not inspect could hold it open
        else:
            state = "stale"
        judged.append(replace(_with_record(info, own), attached=attached, state=state))
    return judged


def find_record(address: Address) -> dict[str, Any] | None:
    """This user's record of ``address``, or None."""
    try:
        root = _records_root(create=False)
    except NotFound:
        return None
    try:
        with open(_record_path(root, address)) as record_file:
            record = json.load(record_file)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def describe(transport: Transport, address: Address) -> ObjectInfo:
    """``osipc.info``: the object, its record and its state. Raises NotFound."""
    info = transport.info(address)
    return _judge([(info, find_record(address))])[0]


def _record_infos() -> list[tuple[ObjectInfo, dict[str, Any] | None, Transport | None]]:
    from osipc import _registry

    rows: list[tuple[ObjectInfo, dict[str, Any] | None, Transport | None]] = []
    for record in load_records():
        address = Address(record["scheme"], record["name"])
        try:
            transport = _registry.get_transport(address.scheme)
            info = transport.info(address)
        except NotFound:
            info = ObjectInfo(url=address.base_url, kind=str(record.get("kind")), exists=False)
            transport = _registry.get_transport(address.scheme)
        except OsipcError:  # a transport that cannot load here: show the record as is
            info = ObjectInfo(url=address.base_url, kind=str(record.get("kind")))
            transport = None
        rows.append((info, record, transport))
    return rows


def ls(include_foreign: bool = False) -> list[ObjectInfo]:
    from osipc import _registry

    rows = [(info, record) for info, record, _ in _record_infos()]
    if include_foreign:
        known = {info.url for info, _ in rows}
        for scheme in _registry.schemes():
            try:
                transport = _registry.get_transport(scheme)
            except OsipcError:
                continue
            rows += [(info, None) for info in transport.inventory() if info.url not in known]
    return sorted(_judge(rows), key=lambda info: info.url)


@dataclass(frozen=True)
class GcAction:
    """What ``gc`` did (or would do, with ``dry_run``) to one object."""

    url: str
    action: str  # "removed" | "forgotten" (record of a gone object) | "kept"
    reason: str


def gc(force: bool = False, dry_run: bool = False) -> list[GcAction]:
    actions: list[GcAction] = []
    rows = _record_infos()
    judged = _judge([(info, record) for info, record, _ in rows])
    for info, (_, record, transport) in zip(judged, rows):
        assert record is not None
        address = Address(record["scheme"], record["name"])
        if info.state in ("gone", "replaced"):
            if not dry_run:
                remove_record(address)
            actions.append(GcAction(info.url, "forgotten", _FORGOTTEN[info.state]))
        elif info.state in ("stale", "unknown") and transport is not None:
            if info.state == "unknown" and not force:
                actions.append(GcAction(info.url, "kept", _UNKNOWN))
                continue
            if info.depth and not force:
                actions.append(
                    GcAction(
                        info.url,
                        "kept",
                        f"stale but still holds {info.depth} message(s); use --force to remove",
                    )
                )
                continue
            if not dry_run:
                try:
                    if _replaced(transport.info(address), record):  # since it was judged
                        remove_record(address)
                        actions.append(GcAction(info.url, "forgotten", _FORGOTTEN["replaced"]))
                        continue
                    transport.unlink(address)
                except NotFound:
                    pass
                remove_record(address)
            why = "stale: creator gone and nobody has it open"
            if info.state == "unknown":
                why = "creator gone; whether anyone has it open could not be told (--force)"
            actions.append(GcAction(info.url, "removed", why))
    return actions


_UNKNOWN = (
    "creator gone, but whether anyone has it open cannot be told: its mode lets processes "
    "open it whose descriptors this user may not inspect (another user's); run gc as root, "
    "or use --force to remove it anyway"
)


_FORGOTTEN = {
    "gone": "the object no longer exists",
    "replaced": "the object osipc created is gone, and the name now belongs to another "
    "object, which osipc did not create and leaves alone",
}
