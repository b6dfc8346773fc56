"""Metadata records of the objects osipc creates, and ls / info / gc over them.

Each object osipc creates gets a record, ``RUNTIME/.meta/SCHEME/NAME.json``, written by
the process whose exclusive create succeeded: url, kind, creator pid and the pid's start
time (so a recycled pid is not mistaken for the creator), uid, mode, codec, capacity,
creation time.

An object is **live** while its creator runs or any process holds it open (found by
matching the object's device and inode against ``/proc/*/fd``, so C peers and systemd
count too), **stale** when neither, **gone** when its record outlives it. ``gc`` removes
stale objects and gone records, and never anything without a record.
"""

from __future__ import annotations

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


def write_record(
    address: Address,
    *,
    kind: str,
    mode: int,
    codec: str | None,
    capacity: int | None = None,
    max_message_size: int | None = None,
) -> None:
    """Record that this process created ``address`` (atomically replacing any old record)."""
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


def holders(identities: set[tuple[int, int]]) -> dict[tuple[int, int], list[int]]:
    """Pids holding each (st_dev, st_ino) open or mapped, from /proc/*/fd and
    /proc/*/maps (glibc maps a named semaphore and closes its descriptor).

    Only processes this user may inspect are seen (all of them for root).
    """
    found: dict[tuple[int, int], list[int]] = {ident: [] for ident in identities}
    if not identities:
        return found
    mapped = {
        f"{os.major(dev):02x}:{os.minor(dev):02x} {ino}": (dev, ino) for dev, ino in identities
    }
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        seen: set[tuple[int, int]] = set()
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
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
        except OSError:
            pass
        for key in seen:
            found[key].append(pid)
    return found


def _with_record(info: ObjectInfo, record: dict[str, Any] | None) -> ObjectInfo:
    if record is None:
        return info
    return replace(
        info,
        creator_pid=record.get("creator_pid"),
        created=record.get("created"),
        codec=record.get("codec"),
    )


def _judge(infos: list[tuple[ObjectInfo, dict[str, Any] | None]]) -> list[ObjectInfo]:
    """Fill in ``attached`` and ``state`` for objects (and their records, if any)."""
    identities = {info.identity for info, _ in infos if info.identity is not None}
    held = holders(identities)
    judged = []
    for info, record in infos:
        attached = tuple(held.get(info.identity, ())) if info.identity else ()
        if record is None:
            state = "foreign"
        elif not info.exists:
            state = "gone"
        elif attached or process_alive(record.get("creator_pid"), record.get("creator_start")):
            state = "live"
        else:
            state = "stale"
        judged.append(replace(_with_record(info, record), attached=attached, state=state))
    return judged


def _find_record(address: Address) -> dict[str, Any] | None:
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
    return _judge([(info, _find_record(address))])[0]


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
        if info.state == "gone":
            if not dry_run:
                remove_record(address)
            actions.append(GcAction(info.url, "forgotten", "the object no longer exists"))
        elif info.state == "stale" and transport is not None:
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
                    transport.unlink(address)
                except NotFound:
                    pass
                remove_record(address)
            actions.append(
                GcAction(info.url, "removed", "stale: creator gone and nobody has it open")
            )
    return actions
