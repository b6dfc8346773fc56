"""The ``osipc`` command. ``main(argv) -> int`` so tests can run it in-process.

Exit status: 0 ok, 1 error (one line on stderr, no traceback), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

from osipc import _limits, _registry
from osipc._address import runtime_dir, runtime_dir_creation_problem, runtime_dir_path
from osipc._api import gc, info, ls, receiver, sender, unlink
from osipc._errors import EndOfStream, OsipcError, Timeout
from osipc._version import __version__

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse's own exits with 2 and the usage
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: usage error: {message}\n")


def _size(text: str) -> int:
    from osipc._address import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="osipc",
        description="Talk to and manage osipc endpoints (FIFOs, message queues, ...).",
    )
    parser.add_argument("--version", action="version", version=f"osipc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("send", help="send messages (arguments, else stdin lines)")
    p.add_argument("url")
    p.add_argument("messages", nargs="*", metavar="MSG")
    p.add_argument("--timeout", type=float, default=None, metavar="S")
    p.add_argument("--json", action="store_true", help="each message is JSON; check it")
    p.add_argument("--priority", type=int, default=0, help="mq:// priority (0..32767)")
    p.add_argument("--end", action="store_true", help="send end-of-stream after the messages")

    p = sub.add_parser("recv", help="receive messages, one per line")
    p.add_argument("url")
    p.add_argument("-n", type=int, default=None, metavar="N", help="stop after N messages")
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help="wait at most S seconds per message; without -n, a quiet S seconds ends it",
    )
    p.add_argument("--json", action="store_true", help="messages are JSON; print them compact")
    p.epilog = (
        "A message is printed as text when it is printable UTF-8 without a backslash, else "
        "escaped as in Python (\\xff, \\n, and \\\\ for a backslash)."
    )

    p = sub.add_parser("ls", help="list osipc objects and whether they are live or stale")
    p.add_argument("--json", action="store_true")
    p.add_argument("--all", action="store_true", help="add kernel objects osipc did not create")

    p = sub.add_parser("info", help="describe one object")
    p.add_argument("url")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("rm", help="remove objects (unlink)")
    p.add_argument("urls", nargs="+", metavar="URL")
    p.add_argument("-f", "--missing-ok", action="store_true", help="ignore missing objects")

    p = sub.add_parser("gc", help="remove stale osipc objects")
    p.add_argument("--force", action="store_true", help="also queues that hold messages")
    p.add_argument("--dry-run", action="store_true", help="say what would be removed")

    sub.add_parser("schemes", help="list the URL schemes and whether they work here")

    p = sub.add_parser(
        "bench", help="measure one endpoint: throughput and round trips with a child process"
    )
    p.add_argument("url")
    p.add_argument("--size", type=_size, default=64, help="message bytes (K/M suffixes)")
    p.add_argument("--seconds", type=float, default=1.0, help="how long to send")
    p.add_argument("--round-trips", type=int, default=2000)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser(
        "bridge",
        help="forward every message from SRC (received) to DST (sent); Ctrl-C stops it",
        description="Forward SRC to DST. Holds at most --buffer messages while DST is "
        "away (then stops reading SRC); forwards end-of-stream; counters on stderr at "
        "exit and on SIGUSR1.",
    )
    p.add_argument("src", metavar="SRC")
    p.add_argument("dst", metavar="DST")
    p.add_argument("--buffer", type=int, default=1000, help="messages held while DST is away")
    p.add_argument(
        "--drain", type=float, default=5.0, metavar="S", help="at stop: seconds to deliver"
    )

    p = sub.add_parser(
        "keygen", help="make a CURVE key pair for zmq+tcp:// (curve=, curve_server=)"
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--dir", default=".", help="where to write NAME.key and NAME.key_secret")
    p.add_argument("--force", action="store_true", help="replace existing files")

    p = sub.add_parser("doctor", help="kernel limits, mounts and the runtime dir")
    p.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    in_process = [url for url in _urls(args) if url.partition("://")[0].lower() == "mem"]
    if in_process:
        print(
            f"osipc: usage error: {in_process[0]}: a mem:// queue lives inside one process, "
            f"so what `osipc {args.command}` would pass through it is lost when the command "
            "exits; use mem:// from Python (threads, tests), and fifo:// or mq:// between "
            "commands",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        return int(_COMMANDS[args.command](args))
    except OsipcError as exc:
        print(f"osipc: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("osipc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `osipc recv ... | head`: the reader left
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR
    except OSError as exc:  # the command's own files (keygen --dir, ...), not osipc's
        print(f"osipc: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # a bug: one line, and the traceback only on request
        if os.environ.get("OSIPC_DEBUG"):
            raise
        print(
            f"osipc: internal error: {type(exc).__name__}: {exc} (set OSIPC_DEBUG=1 for "
            "the traceback, and please report it)",
            file=sys.stderr,
        )
        return EXIT_ERROR


def _urls(args: argparse.Namespace) -> list[str]:
    """The channels a command sends to or receives from (not info/rm/ls: they only look)."""
    if args.command == "bridge":
        return [args.src, args.dst]
    return [args.url] if args.command in ("send", "recv", "bench") else []


# -- send / recv -------------------------------------------------------------------------


def _stdin_lines() -> Iterator[bytes]:
    for line in sys.stdin.buffer:
        yield line[:-1] if line.endswith(b"\n") else line


def _cmd_send(args: argparse.Namespace) -> int:
    if args.priority and not _registry.parse(args.url)[0].capabilities.priorities:
        print(
            f"osipc: usage error: --priority needs a transport with priorities (mq://), "
            f"not {args.url}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    source: Any = (os.fsencode(m) for m in args.messages) if args.messages else _stdin_lines()
    kwargs = {"priority": args.priority} if args.priority else {}
    count = 0
    with sender(args.url) as tx:
        for line in source:
            data = line
            if args.json:
                try:
                    data = json.dumps(json.loads(line), separators=(",", ":")).encode()
                except ValueError as exc:
                    print(f"osipc: error: message {count + 1} is not JSON: {exc}", file=sys.stderr)
                    return EXIT_ERROR
            tx.send(data, timeout=args.timeout, **kwargs)
            count += 1
        if args.end:
            tx.end(timeout=args.timeout)
    return EXIT_OK


def show_bytes(data: bytes) -> str:
    """Text when it is printable UTF-8 without a backslash, else a Python-style escaped
    form (one line) in which a backslash is doubled: so a backslash on the screen always
    starts an escape, and the text ``\\x00`` never looks like the byte 0."""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return repr(data)[2:-1]
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(c if c.isprintable() and c != "\\" else repr(c)[1:-1] for c in text)


def _cmd_recv(args: argparse.Namespace) -> int:
    if args.n is not None and args.n < 0:
        print("osipc: usage error: -n must be >= 0", file=sys.stderr)
        return EXIT_USAGE
    out: TextIO = sys.stdout
    count = 0
    with receiver(args.url, codec="json" if args.json else "bytes") as rx:
        while args.n is None or count < args.n:
            try:
                msg = rx.recv(timeout=args.timeout)
            except EndOfStream:
                break
            except Timeout:
                if args.n is None:
                    break
                raise
            line = (
                json.dumps(msg, ensure_ascii=False, separators=(",", ":"))
                if args.json
                else show_bytes(msg)
            )
            out.write(line + "\n")
            out.flush()
            count += 1
    return EXIT_OK


# -- ls / info / rm / gc -----------------------------------------------------------------


def _format_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows
    )


def _dash(value: object) -> str:
    return "-" if value is None or value == () else str(value)


def human_size(size: int | None) -> str:
    """Bytes as ``ls -h`` shows them: 512, 1.8K, 64K, 16M; '-' when unknown."""
    if size is None:
        return "-"
    value, unit = float(size), ""
    for unit in ("", "K", "M", "G", "T"):
        if value < 1024 or unit == "T":
            break
        value /= 1024
    if not unit:
        return str(size)
    return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"


def _cmd_ls(args: argparse.Namespace) -> int:
    objects = ls(all=args.all)
    if args.json:
        print(json.dumps([obj.to_dict() for obj in objects], indent=2))
        return EXIT_OK
    if args.all and _limits.mqueue_mount() is None:
        print(
            "osipc: note: POSIX queues osipc did not create cannot be listed: no mqueue file "
            "system is mounted (mount -t mqueue none /dev/mqueue)",
            file=sys.stderr,
        )
    if not objects:
        print("no osipc objects" + ("" if args.all else " (--all shows other IPC objects)"))
        return EXIT_OK
    header = ["URL", "KIND", "STATE", "DEPTH", "CAPACITY", "SIZE", "MODE", "OWNER", "CREATOR"]
    rows = [[*header, "ATTACHED"]]
    for obj in objects:
        rows.append(
            [
                obj.url,
                obj.kind,
                obj.state,
                _dash(obj.depth),
                _dash(obj.capacity),
                human_size(obj.size),
                "-" if obj.mode is None else f"{obj.mode:04o}",
                _dash(obj.owner),
                _dash(obj.creator_pid),
                ",".join(map(str, obj.attached)) or "-",
            ]
        )
    print(_format_table(rows))
    return EXIT_OK


def _cmd_info(args: argparse.Namespace) -> int:
    obj = info(args.url)
    data = obj.to_dict()
    if args.json:
        print(json.dumps(data, indent=2))
        return EXIT_OK
    if data.get("created"):
        data["created"] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(data["created"]))
    for key, value in data.items():
        if value is not None and value != []:
            print(f"{key + ':':18} {value}")
    return EXIT_OK


def _cmd_rm(args: argparse.Namespace) -> int:
    status = EXIT_OK
    for url in args.urls:
        try:
            unlink(url, missing_ok=args.missing_ok)
        except OsipcError as exc:
            print(f"osipc: error: {exc}", file=sys.stderr)
            status = EXIT_ERROR
    return status


def _cmd_gc(args: argparse.Namespace) -> int:
    actions = gc(force=args.force, dry_run=args.dry_run)
    verb = {"removed": "would remove", "forgotten": "would forget"} if args.dry_run else {}
    for action in actions:
        print(f"{verb.get(action.action, action.action)} {action.url}: {action.reason}")
    if not actions:
        print("nothing to collect")
    return EXIT_OK


def _cmd_bridge(args: argparse.Namespace) -> int:
    from osipc import _bridge

    if args.buffer < 1 or args.drain < 0:
        print("osipc: usage error: --buffer must be >= 1 and --drain >= 0", file=sys.stderr)
        return EXIT_USAGE
    counts = _bridge.run(args.src, args.dst, buffer=args.buffer, drain=args.drain)
    return EXIT_ERROR if counts.lost else EXIT_OK


def _cmd_keygen(args: argparse.Namespace) -> int:
    from osipc._errors import AlreadyExists, TransportUnavailable

    try:
        import zmq.auth
    except ImportError:
        raise TransportUnavailable(
            "osipc keygen needs pyzmq", hint="pip install 'osipc[zmq]'"
        ) from None
    if not args.name or "/" in args.name or args.name.startswith("."):
        print("osipc: usage error: NAME is a plain file name, e.g. server", file=sys.stderr)
        return EXIT_USAGE
    public = os.path.join(args.dir, args.name + ".key")
    secret = public + "_secret"
    if not args.force and (os.path.exists(public) or os.path.exists(secret)):
        raise AlreadyExists(f"{public} or {secret} exists; pass --force to replace them")
    os.makedirs(args.dir, exist_ok=True)
    old = os.umask(0o077)
    try:
        zmq.auth.create_certificates(args.dir, args.name)
    finally:
        os.umask(old)
    os.chmod(secret, 0o600)
    os.chmod(public, 0o644)
    print(f"public key: {public}   (give it to connecting sides: curve_server={public})")
    print(f"secret key: {secret}   (keep it; the binding side uses curve={secret})")
    return EXIT_OK


# -- schemes / doctor --------------------------------------------------------------------


def _cmd_bench(args: argparse.Namespace) -> int:
    from osipc import _bench
    from osipc._errors import NotFound

    if args.seconds <= 0 or args.round_trips < 10:
        print("osipc: usage error: --seconds must be > 0, --round-trips >= 10", file=sys.stderr)
        return EXIT_USAGE
    terminal = sys.stderr.isatty()

    def show(what: str) -> None:
        if terminal:
            sys.stderr.write(f"\r  {args.url}: {what}   ")
            sys.stderr.flush()

    existed = []
    for url in (args.url, _bench._pong_url(args.url)):
        try:
            info(url)
            existed.append(url)
        except NotFound:
            pass
    try:
        result = _bench.bench_url(args.url, args.size, args.seconds, args.round_trips, show)
    except RuntimeError as exc:
        print(f"\nosipc: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        if terminal:
            sys.stderr.write("\r" + " " * 60 + "\r")
        for url in (args.url, _bench._pong_url(args.url)):
            if url not in existed:
                unlink(url, missing_ok=True)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{args.url}  {args.size} B messages: {result['msgs_per_s']:,.0f} msgs/s, "
            f"{result['mb_per_s']:,.1f} MB/s; round trip p50 {result['p50_us']:.1f} us, "
            f"p99 {result['p99_us']:.1f} us"
            + (" (CPUs {} and {})".format(*result["cpus"]) if result.get("cpus") else "")
        )
    return EXIT_OK


def _cmd_schemes(args: argparse.Namespace) -> int:
    rows = [["SCHEME", "STATUS", "WHAT"]]
    for scheme in _registry.schemes():
        try:
            transport = _registry.get_transport(scheme)
            rows.append([scheme + "://", "ok", transport.summary])
        except OsipcError as exc:
            rows.append([scheme + "://", "unavailable", str(exc)])
    print(_format_table(rows))
    return EXIT_OK


def doctor_report() -> tuple[list[tuple[str, str]], list[str]]:
    """(facts, problems) about this machine, as ``osipc doctor`` prints them."""
    facts: list[tuple[str, str]] = []
    problems: list[str] = []
    for key in ("msg_max", "msgsize_max", "msg_default", "msgsize_default", "queues_max"):
        facts.append((f"fs.mqueue.{key}", _dash(_limits.mqueue(key))))
    soft, hard = _limits.rlimit_msgqueue()
    default = _limits.mq_bytes(
        _limits.mqueue("msg_default") or 10, _limits.mqueue("msgsize_default") or 8192
    )
    room = "unlimited" if soft < 0 else f"about {soft // default} default-size queues per user"
    facts.append(("RLIMIT_MSGQUEUE", f"{soft} bytes (hard {hard}): {room}"))
    for key in ("msgmax", "msgmnb", "msgmni"):
        facts.append((f"kernel.{key}", _dash(_limits.sysv(key))))
    facts.append(("PIPE_BUF", str(_limits.PIPE_BUF)))
    facts.append(("fs.pipe-max-size", _dash(_limits.pipe_max_size())))
    try:
        shm = os.statvfs("/dev/shm")
        total, free = shm.f_blocks * shm.f_frsize >> 20, shm.f_bavail * shm.f_frsize >> 20
        facts.append(("/dev/shm", f"{total} MiB, {free} MiB free"))
    except OSError:
        facts.append(("/dev/shm", "missing"))
        problems.append("/dev/shm is not mounted: POSIX shared memory will not work")
    mount = _limits.mqueue_mount()
    facts.append(("mqueue mounted", mount or "no"))
    if mount is None:
        problems.append(
            "no mqueue file system is mounted: mq:// works, but `osipc ls --all` cannot list "
            "queues osipc did not create (mount -t mqueue none /dev/mqueue)"
        )
    path = runtime_dir_path()
    try:
        runtime_dir(create=False)
        facts.append(("runtime dir", f"{path} (ok)"))
    except OsipcError as exc:
        facts.append(("runtime dir", path))
        if os.path.lexists(path):
            problems.append(str(exc))
        elif runtime_dir_creation_problem(path) is not None:
            problems.append(str(runtime_dir_creation_problem(path)))
        else:
            facts[-1] = ("runtime dir", f"{path} (created on first use)")
    nofile, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    facts.append(("RLIMIT_NOFILE", str(nofile)))
    from osipc import _accel, _ring

    _, queues = _accel.load("_msgc")
    for what, status in (("shm:// and sysv+shm:// queues", _ring.ACCEL_STATUS),
                         ("mq:// and sysv+mq:// (and fifo:// sends)", queues)):  # fmt: skip
        facts.append((f"C part for {what.split()[0]}", status))
        if status not in ("in use", _accel.OFF):
            problems.append(f"osipc's C part for {what} is {status}: pure Python, slower")
    for module in ("posix_ipc", "sysv_ipc", "zmq", "msgpack"):
        try:
            imported = __import__(module)
            version = getattr(imported, "VERSION", None) or getattr(imported, "__version__", "?")
            if module == "zmq":
                version = f"{imported.pyzmq_version()} (libzmq {imported.zmq_version()})"
            facts.append((module, str(version)))
        except ImportError:
            facts.append((module, "not installed"))
    return facts, problems


def _cmd_doctor(args: argparse.Namespace) -> int:
    facts, problems = doctor_report()
    if args.json:
        print(json.dumps({"facts": dict(facts), "problems": problems}, indent=2))
        return EXIT_OK
    width = max(len(key) for key, _ in facts) + 1
    for key, value in facts:
        print(f"{key + ':':{width}} {value}")
    for problem in problems:
        print(f"problem: {problem}")
    return EXIT_OK


_COMMANDS = {
    "bench": _cmd_bench,
    "bridge": _cmd_bridge,
    "keygen": _cmd_keygen,
    "doctor": _cmd_doctor,
    "gc": _cmd_gc,
    "info": _cmd_info,
    "ls": _cmd_ls,
    "recv": _cmd_recv,
    "rm": _cmd_rm,
    "schemes": _cmd_schemes,
    "send": _cmd_send,
}
