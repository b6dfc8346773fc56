"""The ``osipc-systemd`` command. ``main(argv) -> int`` so tests can run it in-process.

Exit status: 0 ok, 1 error (one line on stderr, no traceback) or hazards found by
``check``, 2 usage.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

import osipc
from osipc_systemd import _run, _units

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
PROG = "osipc-systemd"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse's own exits with 2 and the usage
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: usage error: {message}\n")


def _mode(text: str) -> int:
    try:
        return _units.parse_mode(text, "--mode")
    except osipc.InvalidArgument as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="osipc endpoints as systemd services: unit files and socket activation.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser(
        "unit",
        help="write a .socket per endpoint and a Type=notify .service",
        description="Write NAME-FDNAME.socket for every --listen and NAME.service. "
        "Values are written verbatim, so systemd specifiers (%%t, %%h) and $VARIABLES "
        "in --exec are expanded by systemd.",
    )
    p.add_argument("name", metavar="NAME", help="the service: NAME.service")
    p.add_argument("--exec", dest="exec_start", required=True, metavar="CMD", help="ExecStart=")
    p.add_argument(
        "--listen",
        action="append",
        required=True,
        metavar="[FDNAME=]URL",
        help="fifo://NAME, fifo:///PATH or mq://NAME[?maxmsg=N&msgsize=N&mode=0660]; "
        "FDNAME (FileDescriptorName=) defaults to the object's name",
    )
    p.add_argument(
        "--user", help="User= of the service; owner of its FIFOs (SocketUser=) and queues"
    )
    p.add_argument(
        "--group", help="Group= of the service; group of its FIFOs (SocketGroup=) and queues"
    )
    p.add_argument("--mode", type=_mode, default=0o600, help="SocketMode= (default 0600)")
    p.add_argument(
        "--runtime-dir",
        default=_units.DEFAULT_RUNTIME_DIR,
        metavar="DIR",
        help="where the socket units create fifo://NAME, and the service's OSIPC_RUNTIME_DIR "
        "unless it runs as another user (then %%t/osipc-NAME, its own) "
        "(default %%t/osipc: /run/osipc for system units, like osipc's rule for root)",
    )
    p.add_argument(
        "--mqueue-dir",
        default=_units.DEFAULT_MQUEUE_DIR,
        metavar="DIR",
        help="where the mqueue file system is mounted: with --user/--group the socket units "
        "chown their queues there (default /dev/mqueue, where systemd mounts it)",
    )
    p.add_argument("--description", help="Description= of the service")
    p.add_argument("--watchdog", type=float, metavar="SEC", help="WatchdogSec=")
    p.add_argument(
        "--property", action="append", default=[], metavar="KEY=VALUE", help="add to [Service]"
    )
    p.add_argument(
        "--socket-property",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="add to [Socket] of every socket unit",
    )
    p.add_argument("--output", metavar="DIR", help="write the files there (default: stdout)")

    p = sub.add_parser(
        "check",
        help="warn about settings that delete or hide IPC objects",
        description="Report RemoveIPC=, DynamicUser=, PrivateIPC=, PrivateTmp=, "
        "RuntimeDirectory= and RemoveOnStop= settings that delete, hide or break osipc's "
        "objects. Each file is read with its drop-ins (FILE.d/*.conf); a service's socket "
        "units are looked for beside it. Drop-ins elsewhere are not seen: check the output "
        "of `systemctl cat UNIT` saved to a file for the whole picture. "
        "Exit 1 when there is any.",
    )
    p.add_argument("files", nargs="+", metavar="UNIT_FILE")

    p = sub.add_parser(
        "run",
        help="run a command as if socket-activated, without systemd",
        description="Create each endpoint, open it as systemd would (FIFOs read-write, "
        "queues read-only), put the descriptors at 3, 4, ... and exec COMMAND with "
        "LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID. The objects stay (osipc rm URL).",
    )
    p.add_argument("--listen", action="append", required=True, metavar="[FDNAME=]URL")
    p.add_argument("argv", nargs="+", metavar="COMMAND", help="after --: the command and args")
    return parser


def _warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def _write(directory: str, files: dict[str, str]) -> None:
    os.makedirs(directory, exist_ok=True)
    for name, text in files.items():
        # not ".NAME.XXXX": a unit name may be 255 characters, the longest a file name can be
        fd, temporary = tempfile.mkstemp(prefix=".osipc-systemd-", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(temporary, 0o644)
            os.replace(temporary, os.path.join(directory, name))
        except BaseException:
            try:
                os.unlink(temporary)
            except OSError:
                pass
            raise
        print(os.path.join(directory, name))


def _unit(args: argparse.Namespace) -> int:
    spec = _units.UnitSpec(
        name=args.name,
        exec_start=args.exec_start,
        listens=[_units.parse_listen(text) for text in args.listen],
        user=args.user,
        group=args.group,
        mode=args.mode,
        runtime_dir=args.runtime_dir,
        mqueue_dir=args.mqueue_dir,
        description=args.description,
        watchdog=args.watchdog,
        properties=[_units.parse_property(text, "--property") for text in args.property],
        socket_properties=[
            _units.parse_property(text, "--socket-property") for text in args.socket_property
        ],
    )
    files = _units.render(spec)
    for message in [*_units.check_units(files), *_units.logout_hazards(spec)]:
        _warn(message)
    chowns = (spec.user or spec.group) and any(item.scheme == "mq" for item in spec.listens)
    where = spec.mqueue_dir
    if chowns and "%" not in where and not os.path.ismount(where):
        _warn(
            f"{where} is not a mount point on this machine: the socket units chown their "
            "queues there and fail to start where the mqueue file system is not mounted "
            "(systemd mounts it at /dev/mqueue; elsewhere `mount -t mqueue mqueue DIR` "
            "and pass --mqueue-dir DIR)"
        )
    if args.output:
        _write(args.output, files)
    else:
        for name, text in files.items():
            print(f"### {name}")
            print(text)
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    found = _units.check_files(args.files)
    for message in found:
        _warn(message)
    return EXIT_ERROR if found else EXIT_OK


def _message(exc: Exception) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, osipc.OsipcError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return str(exc)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "unit":
            return _unit(args)
        if args.command == "check":
            return _check(args)
        _run.run(args.listen, args.argv)
    except (osipc.OsipcError, OSError) as exc:
        print(f"{PROG}: error: {_message(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
