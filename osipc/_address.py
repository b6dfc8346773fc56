"""URLs, names, options, the runtime directory and SysV keys (DESIGN §2).

Every rule here is checked before any system call is made, so a bad URL never reaches
the kernel (where ``/..`` would come back as a misleading EACCES or EEXIST).

URL form: ``SCHEME://NAME?option=value&...``. The scheme is case-insensitive; the name is
case-sensitive and read verbatim (``urllib`` would lowercase it and silently drop tabs).
"""

from __future__ import annotations

import dataclasses
import difflib
import errno
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import unquote

from osipc._errors import (
    InvalidArgument,
    InvalidURL,
    OsipcError,
    PermissionDenied,
    TransportError,
    os_errors,
)

NAME_MAX_LENGTH = 200
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
NAME_RULE = "names are 1-200 characters of A-Z a-z 0-9 . _ - and do not start with '.'"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean "x"?)' for the closest choice, or ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def validate_name(name: str, url: str) -> str:
    """Return ``name`` if it follows DESIGN §2, else raise InvalidURL naming the broken rule."""
    if not name:
        raise InvalidURL(f"{url!r} has an empty name; {NAME_RULE}")
    if len(name) > NAME_MAX_LENGTH:
        raise InvalidURL(f"the name in {url!r} is {len(name)} characters long; {NAME_RULE}")
    if name.startswith("."):
        raise InvalidURL(f"the name {name!r} in {url!r} starts with '.'; {NAME_RULE}")
    for char in name:
        if char not in _NAME_CHARS:
            raise InvalidURL(
                f"the name {name!r} in {url!r} contains {char!r}, which is not allowed; {NAME_RULE}"
            )
    return name


PATH_MAX = 4096  # Linux: bytes in a path, its terminating NUL included
NAME_MAX = 255  # Linux: bytes in one path component


def check_path_length(path: str, url: str) -> str:
    """Return ``path`` if the kernel can take it, else InvalidURL naming the limit (so a
    long path fails here, not as ENAMETOOLONG from whichever syscall meets it first)."""
    size = len(os.fsencode(path))
    if size >= PATH_MAX:
        raise InvalidURL(
            f"{url[:60]!r}...: the path is {size} bytes; Linux takes at most {PATH_MAX - 1} "
            "(PATH_MAX): use a shorter one"
        )
    for part in path.split("/"):
        if len(os.fsencode(part)) > NAME_MAX:
            raise InvalidURL(
                f"{url[:60]!r}...: the path component {part[:20]!r}... is "
                f"{len(os.fsencode(part))} bytes; a file name is at most {NAME_MAX} (NAME_MAX)"
            )
    return path


def split_url(url: object) -> tuple[str, str, str, list[tuple[str, str]]]:
    """Split ``url`` into (scheme, netloc, path, query pairs) without normalising the name."""
    if not isinstance(url, str):
        raise InvalidURL(f"a URL must be a str such as 'mq://jobs', got {type(url).__name__}")
    for char in url:
        if ord(char) < 0x21 or char == "\x7f":
            raise InvalidURL(
                f"{url!r} contains the control or space character {char!r}; URLs may not"
            )
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme:
        raise InvalidURL(f"{url!r} is not of the form SCHEME://NAME, e.g. 'mq://jobs'")
    scheme = scheme.lower()
    if not (scheme[0].isalpha() and all(c.isalnum() or c in "+-." for c in scheme)):
        raise InvalidURL(f"{url!r} has an invalid scheme {scheme!r}")
    if "#" in rest:
        raise InvalidURL(f"{url!r} has a '#fragment'; osipc URLs take options after '?'")
    rest, _, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in query.split("&") if query else []:
        key, eq, value = item.partition("=")
        key, value = unquote(key), unquote(value)
        if not key or not eq:
            raise InvalidURL(f"{url!r}: query item {item!r} is not of the form option=value")
        if key in seen:
            raise InvalidURL(f"{url!r}: option {key!r} is given twice")
        seen.add(key)
        pairs.append((key, value))
    return scheme, netloc, slash + path, pairs


@dataclass(frozen=True)
class Address:
    """A parsed URL: scheme, validated name, and the raw query options."""

    scheme: str
    name: str
    query: tuple[tuple[str, str], ...] = ()
    url: str = ""

    def __str__(self) -> str:
        return self.url or f"{self.scheme}://{self.name}"

    @property
    def base_url(self) -> str:
        """The URL without options: what ``osipc ls`` shows and records are keyed by."""
        return f"{self.scheme}://{self.name}"


# -- options -----------------------------------------------------------------------------


def parse_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
    raise ValueError("expected true/false (or 1/0, yes/no, on/off)")


def parse_size(value: object) -> int:
    """Sizes in bytes, with optional K/M/G (powers of 1024) in URLs: ``capacity=4M``."""
    if isinstance(value, bool):
        raise ValueError("expected a size in bytes such as 1048576 or 1M")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value.strip().upper()
        text = text[:-1] if text.endswith("B") else text
        scale = 1
        if text and text[-1] in "KMG":
            scale = 1 << {"K": 10, "M": 20, "G": 30}[text[-1]]
            text = text[:-1]
        try:
            number = int(text) * scale
        except ValueError:
            raise ValueError("expected a size in bytes such as 1048576 or 1M") from None
    else:
        raise ValueError("expected a size in bytes such as 1048576 or 1M")
    if number <= 0:
        raise ValueError("must be a positive size")
    return number


def parse_int(low: int, high: int | None = None) -> Callable[[object], int]:
    def parse(value: object) -> int:
        if isinstance(value, bool):
            raise ValueError("expected an integer")
        if isinstance(value, str):
            try:
                number = int(value, 0)
            except ValueError:
                raise ValueError("expected an integer") from None
        elif isinstance(value, int):
            number = value
        else:
            raise ValueError("expected an integer")
        if number < low or (high is not None and number > high):
            bound = f"{low}..{high}" if high is not None else f">= {low}"
            raise ValueError(f"must be {bound}")
        return number

    return parse


def parse_mode(value: object) -> int:
    """File mode: an int, or an octal string from a URL ('0640', '640' or '0o640')."""
    if isinstance(value, str):
        text = value[2:] if value[:2] in ("0o", "0O") else value
        try:
            number = int(text, 8)
        except ValueError:
            raise ValueError("expected an octal file mode such as 0640") from None
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise ValueError("expected an octal file mode such as 0o640")
    if not 0 <= number <= 0o777:
        raise ValueError("must be between 0o000 and 0o777 (no setuid, setgid or sticky bits)")
    return number


def parse_choice(*choices: str) -> Callable[[object], str]:
    def parse(value: object) -> str:
        if not isinstance(value, str) or value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return parse


def option(default: Any, parse: Callable[[object], Any], doc: str) -> Any:
    """A dataclass field that is a URL/keyword option: its parser and one line of help."""
    return field(default=default, metadata={"parse": parse, "doc": doc})


@dataclass(frozen=True)
class CommonOptions:
    """Options every kernel-object transport takes (DESIGN §3, Creation)."""

    create: bool = option(True, parse_bool, "create the object when missing (else NotFound)")
    exclusive: bool = option(False, parse_bool, "fail with AlreadyExists if it exists")
    mode: int = option(0o600, parse_mode, "permission bits, applied exactly (umask ignored)")
    trust_existing: bool = option(
        False, parse_bool, "attach even if another user created the object"
    )


OptionsT = TypeVar("OptionsT", bound=CommonOptions)


def option_docs(cls: type[CommonOptions]) -> dict[str, str]:
    return {f.name: str(f.metadata.get("doc", "")) for f in dataclasses.fields(cls)}


def resolve_options(
    cls: type[OptionsT], address: Address, keywords: Mapping[str, object]
) -> OptionsT:
    """Merge query options and keyword arguments into ``cls``; InvalidURL on any problem."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, object] = {}
    sources: list[tuple[str, object, str]] = [
        (key, value, "in the URL") for key, value in address.query
    ]
    sources += [(key, value, "as a keyword argument") for key, value in keywords.items()]
    for key, raw, where in sources:
        spec = fields.get(key)
        if spec is None:
            known = ", ".join(sorted(fields)) or "none"
            raise InvalidURL(
                f"unknown option {key!r} {where} for {address.scheme}://"
                f"{did_you_mean(key, fields)}; its options are: {known}"
            )
        try:
            value = spec.metadata["parse"](raw)
        except ValueError as exc:
            raise InvalidURL(f"option {key}={raw!r} {where} of {address}: {exc}") from None
        if key in values and values[key] != value:
            raise InvalidURL(
                f"option {key!r} of {address} is given twice with different values "
                f"({values[key]!r} in the URL, {value!r} as a keyword argument)"
            )
        values[key] = value
    options = cls(**values)  # type: ignore[arg-type]
    if options.create is False and options.exclusive:
        raise InvalidURL(f"{address}: exclusive=True needs create=True")
    object.__setattr__(options, "_given", frozenset(values))
    return options


def check_existing(address: Address, options: CommonOptions, found: Mapping[str, object]) -> None:
    """On attaching to an existing object: InvalidArgument if an option the caller gave
    explicitly (a creation option, such as capacity=) differs from what the object has
    (``found``); it cannot change once created, and attaching anyway would hide that."""
    asked: frozenset[str] = getattr(options, "_given", frozenset())
    differ = [
        (key, getattr(options, key), value)
        for key, value in found.items()
        if key in asked and getattr(options, key) != value
    ]
    if differ:
        has = ", ".join(f"{key}={value}" for key, _, value in differ)
        wanted = ", ".join(f"{key}={value}" for key, value, _ in differ)
        raise InvalidArgument(
            f"{address.base_url} exists with {has}, not the {wanted} asked for (creation "
            f"options cannot change): drop {', '.join(key + '=' for key, _, _ in differ)} "
            f"to use it as it is, or remove it (osipc rm {address.base_url}) and create it anew"
        )


def refuse_with_fd(address: Address, options: CommonOptions, creation: tuple[str, ...]) -> None:
    """With ``fd=`` the object exists already (its descriptor was inherited): an option
    that only says how to create or find it would be ignored, so it is an error."""
    asked: frozenset[str] = getattr(options, "_given", frozenset())
    ignored = [name for name in ("create", "exclusive", "mode", *creation) if name in asked]
    if ignored:
        raise InvalidURL(
            f"{address}: fd= adopts an open descriptor; {', '.join(n + '=' for n in ignored)} "
            "would not apply to it (drop them)"
        )


# -- runtime directory -------------------------------------------------------------------


def runtime_dir_path() -> str:
    """Where RUNTIME is, by DESIGN §2's order, without touching the file system."""
    explicit = os.environ.get("OSIPC_RUNTIME_DIR")
    if explicit:
        return os.path.abspath(explicit)
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return os.path.join(os.path.abspath(xdg), "osipc")
    uid = os.geteuid()
    return "/run/osipc" if uid == 0 else f"/tmp/osipc-{uid}"


def _check_runtime_dir(path: str, st: os.stat_result) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise PermissionDenied(
            f"runtime directory {path} is a symlink; osipc refuses to follow it "
            "(remove it, or set OSIPC_RUNTIME_DIR to a directory you own)"
        )
    if not stat.S_ISDIR(st.st_mode):
        raise TransportError(
            f"runtime directory {path} exists and is not a directory "
            "(remove it, or set OSIPC_RUNTIME_DIR)"
        )
    if st.st_uid != os.geteuid():
        raise PermissionDenied(
            f"runtime directory {path} belongs to uid {st.st_uid}, not to you (uid "
            f"{os.geteuid()}); refusing it (remove it, or set OSIPC_RUNTIME_DIR)"
        )
    if st.st_mode & 0o022:
        who = {0o020: "its group", 0o002: "other users"}.get(st.st_mode & 0o022, "everyone")
        raise PermissionDenied(
            f"runtime directory {path} is writable by {who} (mode "
            f"{stat.S_IMODE(st.st_mode):04o}), who could replace its FIFOs, sockets and "
            f"records; refusing it (fix: chmod 700 {path})"
        )


def _check_ancestors(path: str) -> None:
    """Before RUNTIME or a missing parent of it is created: every directory above it, and
    every symlink on the way, must be changeable only by this user or root (or be sticky,
    as /tmp is), else another user could move our directory away and put theirs there."""
    uid = os.geteuid()
    parent = os.path.dirname(path)
    existing = parent
    while not os.path.lexists(existing):  # the part that exists; the rest osipc creates
        existing = os.path.dirname(existing)
    links = []
    partial = "/"
    for part in existing.split("/"):
        partial = os.path.join(partial, part)
        if os.path.islink(partial):
            links.append(partial)
    real = os.path.realpath(existing)
    chain = [real]
    while chain[-1] != "/":
        chain.append(os.path.dirname(chain[-1]))
    for item in links + chain:
        st = os.lstat(item)
        if st.st_uid not in (0, uid):
            raise PermissionDenied(
                f"cannot create the runtime directory {path}: {item} belongs to uid "
                f"{st.st_uid}, who could replace what osipc puts there; set "
                "OSIPC_RUNTIME_DIR to a directory under one that only you (or root) control"
            )
        if stat.S_ISDIR(st.st_mode) and st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
            raise PermissionDenied(
                f"cannot create the runtime directory {path}: {item} is writable by other "
                f"users (mode {stat.S_IMODE(st.st_mode):04o}) and not sticky, so they could "
                "replace it; set OSIPC_RUNTIME_DIR elsewhere, or chmod go-w " + item
            )


def _xdg_missing(path: str) -> TransportError | None:
    """The error for RUNTIME under an ``XDG_RUNTIME_DIR`` that does not exist, else None.

    XDG_RUNTIME_DIR belongs to the session manager (pam_systemd creates it at login and
    removes it at the last logout): osipc creates only its own subdirectory in it. It
    does not fall back to another directory either: two processes that disagree on
    whether the session has started would not meet."""
    if os.environ.get("OSIPC_RUNTIME_DIR"):
        return None
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if not xdg or os.path.dirname(path) != os.path.abspath(xdg) or os.path.isdir(xdg):
        return None
    return TransportError(
        f"XDG_RUNTIME_DIR={xdg} does not exist; it is the login session's directory and "
        "osipc does not create it (its osipc/ subdirectory would outlive the session's "
        "cleanup). Log in through a session that provides it, unset XDG_RUNTIME_DIR (osipc "
        "then uses /run/osipc for root, /tmp/osipc-UID otherwise), or set OSIPC_RUNTIME_DIR",
        errno=errno.ENOENT,
    )


def runtime_dir_creation_problem(path: str) -> OsipcError | None:
    """Why osipc would refuse to create the runtime directory ``path``, or None."""
    try:
        missing = _xdg_missing(path)
        if missing is None:
            with os_errors(f"check the directories above {path}"):
                _check_ancestors(path)
    except OsipcError as exc:
        return exc
    return missing


def runtime_dir(create: bool = True) -> str:
    """RUNTIME, created 0700 when missing; refused if it is a symlink, another user's,
    or writable by group or others.

    Missing parents of an ``OSIPC_RUNTIME_DIR`` are created 0700 too, and only where
    every directory above is this user's or root's (sticky ones such as /tmp are fine).
    ``XDG_RUNTIME_DIR`` itself is never created: it belongs to the login session.

    Raises:
        PermissionDenied: the directory is a symlink, another user's, writable by group or
            others, or would be created where another user can replace it.
        NotFound: it does not exist and ``create`` is false.
        TransportError: ``XDG_RUNTIME_DIR`` is set but does not exist.
    """
    path = runtime_dir_path()
    with os_errors(f"runtime directory {path}"):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            if not create:
                raise
            problem = runtime_dir_creation_problem(path)
            if problem is not None:
                raise problem from None
            todo = [path]
            while not os.path.lexists(os.path.dirname(todo[-1])):
                todo.append(os.path.dirname(todo[-1]))
            for directory in reversed(todo):  # mkdir never follows a symlink it would create
                try:
                    os.mkdir(directory, 0o700)
                except FileExistsError:
                    pass  # another process made it first; RUNTIME is checked below
                else:
                    os.chmod(directory, 0o700)  # whatever the umask
            st = os.lstat(path)
    _check_runtime_dir(path, st)
    return path


# -- SysV keys ---------------------------------------------------------------------------

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def sysv_key(name: str) -> int:
    """The SysV IPC key for ``name``: 32-bit FNV-1a of ``"osipc:" + name`` (UTF-8),
    masked to 31 bits so it is a positive ``key_t``; 0 (IPC_PRIVATE) becomes 1.

    Stable across versions and machines, so a C peer can compute it too.
    """
    value = _FNV_OFFSET
    for byte in ("osipc:" + name).encode():
        value = ((value ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return (value & 0x7FFFFFFF) or 1
