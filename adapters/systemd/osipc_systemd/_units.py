"""Unit files for osipc endpoints: one .socket per endpoint, one Type=notify .service.

One socket unit per endpoint because FileDescriptorName= names every descriptor of a
socket unit alike; with one unit each, ``endpoints()`` tells them apart by name.
"""

from __future__ import annotations

import errno
import os
import pwd
import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import osipc
from osipc_systemd._activation import is_valid_name

DEFAULT_RUNTIME_DIR = "%t/osipc"  # %t: /run for the system manager, $XDG_RUNTIME_DIR for --user
DEFAULT_MQUEUE_DIR = "/dev/mqueue"  # where systemd mounts the mqueue file system (dev-mqueue.mount)
LOGIN_DEFS = "/etc/login.defs"  # UID_MIN..UID_MAX: the uids of regular (login) users
_LOGIN_RANGE = {"UID_MIN": 1000, "UID_MAX": 60000}  # shadow's defaults where it says nothing
UNIT_NAME_MAX = 255  # systemd's limit for a unit name, suffix included
NAME_MAX = 255  # one path component
_SCHEMES = ("fifo", "mq")
_UNIT_OPTIONS = {"fifo": ("mode", "pipe_size"), "mq": ("maxmsg", "mode", "msgsize")}
_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_PATH_CHARS = _KEY_CHARS | frozenset("._-+/")
_TMP = ("/tmp/", "/var/tmp/")  # PrivateTmp= hides both
_TRUE = ("1", "yes", "y", "true", "t", "on")
# keys whose assignments add up (an empty assignment resets them)
_LISTS = ("Environment", "ExecStartPost", "ListenFIFO", "RuntimeDirectory", "Sockets")
_ROOT = ("", "root", "0")


@dataclass(frozen=True)
class Listen:
    """One ``--listen [FDNAME=]URL``: what the socket unit creates and how it is named."""

    fdname: str
    scheme: str
    name: str  # the osipc name, or an absolute path for fifo:///path
    options: Mapping[str, int] = field(default_factory=dict)
    text: str = ""

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.name}"


def split_listen(text: str) -> tuple[str | None, str]:
    """``"jobs=mq://q?maxmsg=4"`` -> ("jobs", "mq://q?maxmsg=4"); no prefix -> (None, text)."""
    eq, sep = text.find("="), text.find("://")
    if 0 <= eq < sep:
        return text[:eq], text[eq + 1 :]
    return None, text


def _positive(key: str, value: str, where: str) -> int:
    try:
        number = int(value, 10)
    except ValueError:
        number = 0
    if number <= 0:
        raise osipc.InvalidArgument(f"{where}: {key}={value!r} must be a positive integer")
    return number


def parse_mode(value: str, where: str) -> int:
    text = value[2:] if value[:2] in ("0o", "0O") else value
    try:
        mode = int(text, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o777:
        raise osipc.InvalidArgument(
            f"{where}: mode {value!r} is not an octal file mode between 0000 and 0777"
        )
    return mode


def parse_listen(text: str) -> Listen:
    """Parse ``[FDNAME=]fifo://NAME|fifo:///PATH|mq://NAME[?options]``.

    Raises:
        osipc.InvalidArgument: a scheme systemd cannot create, a bad name or path, an
            option a unit cannot express, or only one of maxmsg/msgsize.
    """
    fdname, url = split_listen(text)
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise osipc.InvalidArgument(f"--listen {text!r} is not of the form [FDNAME=]SCHEME://NAME")
    if scheme not in _SCHEMES:
        raise osipc.InvalidArgument(
            f"--listen {text!r}: systemd can create only fifo:// (ListenFIFO=) and mq:// "
            f"(ListenMessageQueue=) endpoints, not {scheme}://; open that one by name "
            "in the service"
        )
    location, _, query = rest.partition("?")
    if scheme == "fifo" and location.startswith("/"):
        name = location
        if os.path.normpath(name) != name or not set(name) <= _PATH_CHARS:
            raise osipc.InvalidArgument(
                f"--listen {text!r}: the FIFO path must be absolute, normalised and made "
                "of A-Z a-z 0-9 . _ - + / characters"
            )
        longest = max(name.split("/"), key=len)
        if len(longest) > NAME_MAX:
            raise osipc.InvalidArgument(
                f"--listen {shorten(text)}: the path component {shorten(longest)} is "
                f"{len(longest)} characters long; file systems allow {NAME_MAX}: shorten it"
            )
        default_fdname = stem(name)
    else:
        name = location
        if not is_valid_name(name):
            raise osipc.InvalidArgument(
                f"--listen {text!r}: the name {name!r} breaks osipc's rule: names are 1-200 "
                "characters of A-Z a-z 0-9 . _ - and do not start with '.'"
            )
        default_fdname = name
    options: dict[str, int] = {}
    for item in query.split("&") if query else []:
        key, eq, value = item.partition("=")
        where = f"--listen {text!r}"
        if not eq:
            raise osipc.InvalidArgument(f"{where}: {item!r} is not of the form option=value")
        if key not in _UNIT_OPTIONS[scheme]:
            known = ", ".join(_UNIT_OPTIONS[scheme])
            raise osipc.InvalidArgument(
                f"{where}: option {key!r} is not one a unit can set for {scheme}:// "
                f"(those are: {known}); the service chooses the rest when it opens the "
                "endpoint, e.g. osipc_systemd.endpoints(options=...)"
            )
        options[key] = parse_mode(value, where) if key == "mode" else _positive(key, value, where)
    if scheme == "mq" and ("maxmsg" in options) != ("msgsize" in options):
        raise osipc.InvalidArgument(
            f"--listen {text!r}: give both maxmsg and msgsize or neither: systemd's "
            "MessageQueueMaxMessages= and MessageQueueMessageSize= work only together"
        )
    fdname = default_fdname if fdname is None else fdname
    if not fdname or not is_valid_name(fdname):
        raise osipc.InvalidArgument(
            f"--listen {text!r}: the descriptor name {fdname!r} must be 1-200 characters of "
            "A-Z a-z 0-9 . _ - not starting with '.' (it names the socket unit too)"
        )
    return Listen(fdname, scheme, name, options, text)


def shorten(text: str, limit: int = 60) -> str:
    """``repr(text)``, cut to about ``limit`` characters so an error stays one readable line."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def stem(path: str) -> str:
    base = os.path.basename(path)
    return base[: -len(".fifo")] if base.endswith(".fifo") else base


def _check_value(what: str, value: str) -> str:
    if not value or any(c in value for c in "\n\r\0"):
        raise osipc.InvalidArgument(f"{what} {value!r} must be one non-empty line")
    return value


def _check_word(what: str, value: str) -> str:
    if not value or not set(value) <= _KEY_CHARS | frozenset("._-"):
        raise osipc.InvalidArgument(
            f"{what} {value!r} must be a user or group name or number (A-Z a-z 0-9 . _ -)"
        )
    return value


def parse_property(text: str, what: str) -> tuple[str, str]:
    key, eq, value = text.partition("=")
    if not eq or not key or not key[0].isalpha() or not set(key) <= _KEY_CHARS:
        raise osipc.InvalidArgument(f"{what} {text!r} is not of the form Key=value")
    return key, _check_value(what, value) if value else value


def _check_dir(what: str, value: str) -> str:
    if (
        not value.startswith(("/", "%"))
        or any(c.isspace() or c in "\"'\\;" for c in value)
        or value.endswith("/")
    ):
        raise osipc.InvalidArgument(
            f"{what} {value!r} must be an absolute path (systemd specifiers such as %t "
            "allowed) without spaces, quotes, ';' or a trailing '/'"
        )
    return value


def _last(pairs: Iterable[tuple[str, str]], key: str) -> str | None:
    found = None
    for name, value in pairs:
        if name == key:
            found = value
    return found


@dataclass
class UnitSpec:
    """Everything ``osipc-systemd unit`` turns into files."""

    name: str
    exec_start: str
    listens: Sequence[Listen]
    user: str | None = None
    group: str | None = None
    mode: int = 0o600
    runtime_dir: str = DEFAULT_RUNTIME_DIR
    description: str | None = None
    watchdog: float | None = None
    properties: Sequence[tuple[str, str]] = ()
    socket_properties: Sequence[tuple[str, str]] = ()
    mqueue_dir: str = DEFAULT_MQUEUE_DIR

    def validate(self) -> None:
        """Raises osipc.InvalidArgument naming the first rule broken."""
        if not is_valid_name(self.name):
            raise osipc.InvalidArgument(
                f"unit name {shorten(self.name)} must be 1-200 characters of A-Z a-z 0-9 . _ - "
                "not starting with '.'"
            )
        _check_value("--exec", self.exec_start)
        if not self.listens:
            raise osipc.InvalidArgument("give at least one --listen URL")
        fdnames = [listen.fdname for listen in self.listens]
        urls = [listen.url for listen in self.listens]
        for values, what in ((fdnames, "descriptor name"), (urls, "endpoint")):
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                raise osipc.InvalidArgument(
                    f"the {what} {dupes[0]!r} is given twice; every --listen needs its own "
                    "(name one with --listen FDNAME=URL)"
                )
        for listen in self.listens:
            unit = self.socket_unit(listen)
            if len(unit) > UNIT_NAME_MAX:
                raise osipc.InvalidArgument(
                    f"the socket unit name {shorten(unit)} would be {len(unit)} characters "
                    f"long; systemd allows {UNIT_NAME_MAX}: shorten NAME or the descriptor "
                    "name (--listen FDNAME=URL)"
                )
        for value, what in ((self.user, "--user"), (self.group, "--group")):
            if value is not None:
                _check_word(what, value)
        if self.description is not None:
            _check_value("--description", self.description)
        _check_dir("--runtime-dir", self.runtime_dir)
        _check_dir("--mqueue-dir", self.mqueue_dir)
        if self.watchdog is not None and not self.watchdog > 0:
            raise osipc.InvalidArgument(f"--watchdog {self.watchdog!r} must be > 0 seconds")

    def socket_unit(self, listen: Listen) -> str:
        return f"{self.name}-{listen.fdname}.socket"

    def fifo_path(self, listen: Listen) -> str:
        """Where the socket unit creates a fifo:// endpoint (ListenFIFO=)."""
        if listen.name.startswith("/"):
            return listen.name
        return f"{self.runtime_dir}/{listen.name}.fifo"

    def shared(self, listen: Listen) -> bool:
        """Whether users other than the manager's may open this endpoint by path: it
        belongs to another user or group, or its mode lets group or others in."""
        settings = dict(self.socket_properties)
        mode = listen.options.get("mode", self.mode)
        if "SocketMode" in settings:
            try:
                mode = parse_mode(settings["SocketMode"], "--socket-property SocketMode=")
            except osipc.InvalidArgument:
                pass  # systemd refuses the unit; nothing to open by path
        user = settings.get("SocketUser", self.user) or ""
        group = settings.get("SocketGroup", self.group) or ""
        return bool(mode & 0o077) or user not in _ROOT or group not in _ROOT

    @property
    def dynamic_user(self) -> bool:
        return (_last(self.properties, "DynamicUser") or "").strip().lower() in _TRUE

    def own_runtime_dir(self) -> str | None:
        """The service's own runtime directory (``RuntimeDirectory=``, under %t) when it
        runs as a user other than the manager's, else None.

        osipc refuses a runtime directory another user owns, and the socket units create
        theirs as the manager's user: a service with User= or DynamicUser= could not make
        a single object by name there.
        """
        if self.dynamic_user or (self.service_setting("User") or "").strip() not in _ROOT:
            return f"osipc-{self.name}"
        return None

    def service_setting(self, key: str) -> str | None:
        """User= or Group= as systemd reads the service: a --property comes last."""
        found = _last(self.properties, key)
        return found if found is not None else {"User": self.user, "Group": self.group}[key]

    def command(self) -> str:
        """The command line that regenerates these files (without --output)."""
        words = ["osipc-systemd", "unit", self.name, "--exec", self.exec_start]
        for listen in self.listens:
            words += ["--listen", listen.text]
        if self.user is not None:
            words += ["--user", self.user]
        if self.group is not None:
            words += ["--group", self.group]
        words += ["--mode", f"{self.mode:04o}"]
        if self.runtime_dir != DEFAULT_RUNTIME_DIR:
            words += ["--runtime-dir", self.runtime_dir]
        if self.mqueue_dir != DEFAULT_MQUEUE_DIR:
            words += ["--mqueue-dir", self.mqueue_dir]
        if self.description is not None:
            words += ["--description", self.description]
        if self.watchdog is not None:
            words += ["--watchdog", f"{self.watchdog:g}"]
        for key, value in self.properties:
            words += ["--property", f"{key}={value}"]
        for key, value in self.socket_properties:
            words += ["--socket-property", f"{key}={value}"]
        return shlex.join(words)


def _header(spec: UnitSpec) -> list[str]:
    return [
        f"# Generated by: {spec.command()}",
        "# Regenerate rather than edit; local changes belong in `systemctl edit`.",
    ]


def _socket(spec: UnitSpec, listen: Listen) -> str:
    mode = listen.options.get("mode", spec.mode)
    lines = [
        *_header(spec),
        "[Unit]",
        f"Description=osipc endpoint {listen.fdname}={listen.url} of {spec.name}.service",
        "",
        "[Socket]",
    ]
    if listen.scheme == "fifo":
        lines.append(f"ListenFIFO={spec.fifo_path(listen)}")
        if "pipe_size" in listen.options:
            lines.append(f"PipeSize={listen.options['pipe_size']}")
        if not listen.name.startswith("/"):
            lines += _runtime_dir_access(spec, listen)
    else:
        lines.append(f"ListenMessageQueue=/{listen.name}")
        if "maxmsg" in listen.options:
            lines.append(f"MessageQueueMaxMessages={listen.options['maxmsg']}")
            lines.append(f"MessageQueueMessageSize={listen.options['msgsize']}")
    lines += [
        f"FileDescriptorName={listen.fdname}",
        f"Service={spec.name}.service",
        f"SocketMode={mode:04o}",
    ]
    owner = f"{spec.user or ''}{':' + spec.group if spec.group else ''}"
    if listen.scheme == "fifo":
        if spec.user is not None:
            lines.append(f"SocketUser={spec.user}")
        if spec.group is not None:
            lines.append(f"SocketGroup={spec.group}")
    elif owner:
        lines += [
            "# SocketUser=/SocketGroup= chown FIFOs and sockets, not queues: do it here",
            f"# (needs the mqueue file system at {spec.mqueue_dir}, as systemd mounts it)",
            f"ExecStartPost=chown {owner} {spec.mqueue_dir}/{listen.name}",
        ]
    lines += [
        "# Remove the FIFO or queue when the socket stops: systemd keeps queues, and at its",
        "# next start refuses one whose owner is not its own (SocketUser=, chown).",
        "RemoveOnStop=yes",
    ]
    lines += [f"{key}={value}" for key, value in spec.socket_properties]
    lines += ["", "[Install]", "WantedBy=sockets.target", ""]
    return "\n".join(lines)


def _runtime_dir_access(spec: UnitSpec, listen: Listen) -> list[str]:
    """The runtime dir as osipc makes it (0700), or passable (0711) when other users
    open the FIFO by path: osipc creates it 0700, and systemd keeps an existing
    directory's mode, so only a chmod makes the result the same whatever ran first."""
    if not spec.shared(listen):
        return [
            "# the directory as osipc makes it, should this unit be the first to need it",
            "DirectoryMode=0700",
        ]
    return [
        "# Other users open this FIFO by path: they must pass through the directory (not",
        "# list it). osipc makes it 0700, and systemd keeps an existing directory's mode.",
        "DirectoryMode=0711",
        f"ExecStartPost=/bin/chmod go+x {spec.runtime_dir}",
    ]


def _service(spec: UnitSpec) -> str:
    endpoints = ", ".join(f"{listen.fdname}={listen.url}" for listen in spec.listens)
    sockets = " ".join(spec.socket_unit(listen) for listen in spec.listens)
    lines = [
        *_header(spec),
        "[Unit]",
        f"Description={spec.description or f'{spec.name} (osipc endpoints {endpoints})'}",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={spec.exec_start}",
        f"Sockets={sockets}",
    ]
    own = spec.own_runtime_dir()
    if own is None:
        lines += [
            "# fifo://NAME resolves to the directory the socket units create FIFOs in",
            f"Environment=OSIPC_RUNTIME_DIR={spec.runtime_dir}",
        ]
    else:
        lines += [
            "# It runs as another user than the manager, and osipc refuses a runtime dir that",
            "# user does not own: what it makes by name (fifo://NAME, osipc's records) goes to",
            f"# its own directory. The socket units' FIFOs stay in {spec.runtime_dir} and reach",
            "# it as descriptors (osipc_systemd.endpoints()).",
            f"RuntimeDirectory={own}",
            f"RuntimeDirectoryMode={0o750 if spec.service_setting('Group') else 0o700:04o}",
        ]
        if not spec.dynamic_user:
            # Kept at stop like osipc's own runtime dir. (With DynamicUser= a preserved
            # one becomes a symlink into %t/private, which osipc refuses; DynamicUser=
            # removes the service's IPC objects at stop anyway.)
            lines.append("RuntimeDirectoryPreserve=yes")
        lines.append(f"Environment=OSIPC_RUNTIME_DIR=%t/{own}")
    if spec.user is not None:
        lines.append(f"User={spec.user}")
    if spec.group is not None:
        lines.append(f"Group={spec.group}")
    if spec.watchdog is not None:
        lines.append(f"WatchdogSec={spec.watchdog:g}")
    lines += [f"{key}={value}" for key, value in spec.properties]
    lines.append("")
    return "\n".join(lines)


def render(spec: UnitSpec) -> dict[str, str]:
    """File name -> contents for ``spec`` (validated first).

    Raises:
        osipc.InvalidArgument: as :meth:`UnitSpec.validate`.
    """
    spec.validate()
    files = {spec.socket_unit(listen): _socket(spec, listen) for listen in spec.listens}
    files[f"{spec.name}.service"] = _service(spec)
    return files


# -- hazards -----------------------------------------------------------------------------


def login_uids(path: str = LOGIN_DEFS) -> range:
    """The uids of regular (login) users by ``path`` (UID_MIN..UID_MAX; shadow's
    defaults 1000..60000 for what it does not set, or if it cannot be read)."""
    found = dict(_LOGIN_RANGE)
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                words = line.split()
                if len(words) >= 2 and words[0] in found and words[1].isdigit():
                    found[words[0]] = int(words[1])
    except OSError:
        pass
    return range(found["UID_MIN"], found["UID_MAX"] + 1)


def login_uid(user: str, path: str = LOGIN_DEFS) -> int | None:
    """The uid of ``user`` (a name or number) if it is a regular login user on this
    machine, else None (also for a name this machine does not know)."""
    if user.isdigit():
        uid = int(user)
    else:
        try:
            uid = pwd.getpwnam(user).pw_uid
        except KeyError:
            return None
    return uid if uid in login_uids(path) else None


def logout_hazards(spec: UnitSpec, login_defs: str = LOGIN_DEFS) -> list[str]:
    """Warnings for objects that logind deletes at a user's logout: queues the socket
    units chown to a login user (--user), and what a service of one makes by name.

    logind's RemoveIPC=yes, its default, removes every System V and POSIX IPC object a
    user owns when the user's last session ends; it spares system users only. Which
    users are login users depends on the machine, so this reads its user database.
    """
    queues = [listen.url for listen in spec.listens if listen.scheme == "mq"]
    owner = spec.user if queues and spec.user else None
    runs_as = None if spec.dynamic_user else (spec.service_setting("User") or "").strip()
    warnings = []
    for user in dict.fromkeys(who for who in (owner, runs_as) if who):
        uid = login_uid(user, login_defs)
        if uid is None:
            continue
        lost = []
        if user == owner:
            lost.append(
                f"{' and '.join(queues)}, which the socket units chown to {user} (they "
                "would go on listening on a queue clients can no longer open)"
            )
        if user == runs_as:
            lost.append("the mq://, sysv+ and shm:// objects the service makes by name")
        warnings.append(
            f"user {user} is a login user (uid {uid}, within UID_MIN..UID_MAX of {login_defs}): "
            "logind's RemoveIPC=yes, its default, deletes every POSIX and System V IPC "
            f"object of a user when the user's last session ends: {'; and '.join(lost)}. "
            "Run the service as a system user (useradd --system), or set RemoveIPC=no "
            "in /etc/systemd/logind.conf"
        )
    return warnings


def _enabled(settings: Mapping[str, str], key: str) -> bool:
    return settings.get(key, "").strip().lower() in _TRUE


def _under(path: str, entry: str) -> bool:
    """Whether ``path`` lies in the RuntimeDirectory= ``entry`` (%t or /run spelled)."""
    tops = (f"%t/{entry}", f"/run/{entry}")
    return any(path == top or path.startswith(top + "/") for top in tops)


def hazards(
    service: Mapping[str, str],
    unit: str = "the service",
    *,
    runtime_dir: str | None = None,
    fifo_dirs: Iterable[str] = (),
) -> list[str]:
    """Warnings for [Service] settings that delete or hide osipc's kernel objects.

    ``service`` maps each key to its value (lists joined); ``runtime_dir`` is the
    service's OSIPC_RUNTIME_DIR, where it makes FIFOs by name, and ``fifo_dirs`` the
    directories its socket units create FIFOs in.
    """
    warnings: list[str] = []
    owners = [
        f"{key}={value}"
        for key in ("User", "Group")
        if (value := service.get(key, "").strip()) not in _ROOT
    ]
    if _enabled(service, "DynamicUser"):
        warnings.append(
            f"DynamicUser=yes in {unit} implies RemoveIPC=yes and PrivateTmp=yes: queues, "
            "shm:// rings and semaphores the service creates are deleted whenever it stops, "
            "and its uid is allocated at each start (systemd tries to reuse the last one, "
            "but it may differ), so clients cannot rely on who owns what it makes"
        )
    elif _enabled(service, "RemoveIPC") and owners:
        warnings.append(
            f"RemoveIPC=yes in {unit}: when it stops, systemd deletes every System V and "
            f"POSIX IPC object owned by {' or '.join(owners)}: mq://, sysv+ and shm:// "
            "objects the service created by name vanish, and so do the socket units' "
            "queues while they still listen if they belong to that user or group "
            "(osipc-systemd unit chowns them to --user/--group)"
        )
    if _enabled(service, "PrivateIPC"):
        warnings.append(
            f"PrivateIPC=yes in {unit}: the service gets its own IPC namespace: mq:// and "
            "sysv+ objects it opens by name are invisible to every other process and vanish "
            "with it; inherited queues and shm:// rings (in /dev/shm) still work"
        )
    private_tmp = _enabled(service, "PrivateTmp") or _enabled(service, "DynamicUser")
    if private_tmp and runtime_dir is not None and f"{runtime_dir}/".startswith(_TMP):
        warnings.append(
            f"PrivateTmp=yes in {unit}: it sees its own /tmp, so FIFOs it creates in "
            f"{runtime_dir} are invisible to clients"
        )
    entries = service.get("RuntimeDirectory", "").split()
    preserve = service.get("RuntimeDirectoryPreserve", "").strip().lower()
    if preserve not in _TRUE:
        for entry in entries:
            if any(_under(path, entry) for path in fifo_dirs):
                warnings.append(
                    f"RuntimeDirectory={entry} in {unit}: systemd deletes that directory "
                    "whenever the service stops, and with it the FIFOs the socket units "
                    "still listen on; leave it out (the socket units create the directory) "
                    "or add RuntimeDirectoryPreserve=yes"
                )
                break
    if _enabled(service, "DynamicUser") and preserve not in ("", "no", "0", "false", "off"):
        for entry in entries:
            if runtime_dir is not None and _under(runtime_dir, entry):
                warnings.append(
                    f"RuntimeDirectoryPreserve={preserve} with DynamicUser=yes in {unit}: "
                    f"systemd makes %t/{entry} a symlink into %t/private, and osipc refuses "
                    "a runtime directory that is a symlink; drop RuntimeDirectoryPreserve="
                )
                break
    return warnings


# chown as a command: bare (ours) or by path, after systemd's prefixes (-, @, +, !, :)
_CHOWN = re.compile(r"(?:^|[\s/@+!:-])chown\s")


def _socket_hazards(socket: Mapping[str, str], unit: str) -> list[str]:
    remove = socket.get("RemoveOnStop", "").strip().lower()
    if remove in _TRUE:
        return []
    owners = [socket.get(key, "").strip() for key in ("SocketUser", "SocketGroup")]
    fifo = bool(socket.get("ListenFIFO")) and any(owner not in _ROOT for owner in owners)
    queue = bool(socket.get("ListenMessageQueue")) and bool(
        _CHOWN.search(socket.get("ExecStartPost", ""))
    )
    if not (fifo or queue):
        return []
    return [
        f"RemoveOnStop={remove or 'no'} in {unit}: its {'FIFO' if fifo else 'queue'} gets "
        "another owner after systemd creates it, and systemd refuses an existing one whose "
        "owner is not its own: the socket fails (Result=resources) at its next start "
        "unless the object is removed at stop; keep RemoveOnStop=yes"
    ]


def read_unit(text: str) -> dict[str, dict[str, str]]:
    """Section -> key -> value of a unit file (comments and continuations handled; the
    assignments of list keys such as Environment= add up, others keep the last)."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip() if pending else raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, eq, value = line.partition("=")
        if eq and current is not None:
            key, value = key.strip(), value.strip()
            if key in _LISTS and value and current.get(key):
                value = f"{current[key]} {value}"
            current[key] = value
    return sections


def _runtime_of(service: Mapping[str, str]) -> str:
    environment = service.get("Environment", "")
    found = DEFAULT_RUNTIME_DIR
    for word in shlex.split(environment) if environment else []:
        if word.startswith("OSIPC_RUNTIME_DIR="):
            found = word.partition("=")[2]
    return found


def check_units(
    units: Mapping[str, str], find: Callable[[str], str | None] | None = None
) -> list[str]:
    """The hazards of unit files given as name -> text (drop-ins appended), prefixed by
    the unit's name. A service's socket units (Sockets=, else NAME.socket) are looked
    up in ``units``, then through ``find`` (name -> text or None)."""
    warnings: list[str] = []
    for name, text in units.items():
        sections = read_unit(text)
        if "Socket" in sections:
            warnings += _socket_hazards(sections["Socket"], name)
        service = sections.get("Service")
        if service is None:
            continue
        runtime = _runtime_of(service)
        fifo_dirs: set[str] = set()
        stem_ = name.rpartition(".")[0]
        for socket_name in service.get("Sockets", "").split() or [f"{stem_}.socket"]:
            socket_text = units.get(socket_name)
            if socket_text is None and find is not None:
                socket_text = find(socket_name)
            if socket_text is None:  # not at hand: its FIFOs may be where osipc puts them
                fifo_dirs.add(runtime)
                continue
            listen = read_unit(socket_text).get("Socket", {}).get("ListenFIFO", "")
            fifo_dirs.update(os.path.dirname(path) for path in listen.split())
        warnings += hazards(service, name, runtime_dir=runtime, fifo_dirs=fifo_dirs)
    return warnings


def _read_with_dropins(path: str) -> str | None:
    """The unit file and its drop-ins next to it (``PATH.d/*.conf``, in name order), as
    systemd reads them; None if ``path`` does not exist."""
    try:
        with open(path, encoding="utf-8") as handle:
            parts = [handle.read()]
    except FileNotFoundError:
        return None
    dropins = f"{path}.d"
    if os.path.isdir(dropins):
        for entry in sorted(os.listdir(dropins)):
            if entry.endswith(".conf"):
                with open(os.path.join(dropins, entry), encoding="utf-8") as handle:
                    parts.append(handle.read())
    return "\n".join(parts)


def check_files(paths: Iterable[str]) -> list[str]:
    """:func:`check_units` for unit files, each with the drop-ins next to it; a service's
    socket units are also looked for beside it.

    Raises:
        OSError: a file cannot be read (FileNotFoundError for a missing one).
    """
    units: dict[str, str] = {}
    directories: list[str] = []
    for path in paths:
        text = _read_with_dropins(path)
        if text is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        units[os.path.basename(path)] = text
        directories.append(os.path.dirname(path) or ".")

    def find(name: str) -> str | None:
        for directory in directories:
            text = _read_with_dropins(os.path.join(directory, name))
            if text is not None:
                return text
        return None

    return check_units(units, find)
