"""Names, schemes, options and the runtime directory (DESIGN §2): every rule is checked
before any system call, with an error that names the rule."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable

import pytest

import osipc
from osipc._address import runtime_dir, runtime_dir_path, sysv_key

Url = Callable[..., str]


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("", "empty name"),
        ("..", "starts with '.'"),
        (".hidden", "starts with '.'"),
        ("a b", "space"),
        ("a\x00b", "control"),
        ("a\tb", "control"),
        ("a%2Fb", "'%'"),
        ("x" * 201, "201 characters"),
        ("jobs/sub", "cannot contain '/'"),
        ("é", "'é'"),
    ],
)
@pytest.mark.parametrize("scheme", ["mq", "fifo", "mem"])
def test_bad_names_are_refused_naming_the_rule(scheme: str, name: str, rule: str) -> None:
    with pytest.raises(osipc.InvalidURL) as info:
        osipc.sender(f"{scheme}://{name}")
    assert rule in str(info.value)
    assert isinstance(info.value, ValueError)


def test_names_keep_their_case_and_200_characters_are_fine(url: object) -> None:
    name = "Jobs-" + "x" * 195
    with osipc.receiver(f"mem://{name}") as rx:
        assert rx.url == f"mem://{name}"
    osipc.unlink(f"mem://{name}")
    assert osipc.sender("MEM://Case").url == "MEM://Case"
    with pytest.raises(osipc.NotFound):
        osipc.info("mem://case")
    osipc.unlink("mem://Case")


def test_bad_names_never_reach_the_kernel(tmp_path: object) -> None:
    # `/..` would be EACCES from mq_open: our rule fires first, so the message is ours.
    with pytest.raises(osipc.InvalidURL, match=r"starts with '\.'"):
        osipc.receiver("mq://..")


def test_a_fifo_path_the_kernel_cannot_take_is_invalid_url(osipc_runtime: str) -> None:
    with pytest.raises(osipc.InvalidURL, match=r"is 256 bytes.*255 \(NAME_MAX\)"):
        osipc.sender(f"fifo://{osipc_runtime}/{'a' * 256}")
    with pytest.raises(osipc.InvalidURL, match=r"4095 \(PATH_MAX\)"):
        osipc.receiver(f"fifo://{osipc_runtime}{'/d' * 2100}")
    with pytest.raises(osipc.NotFound):  # the longest file name is fine
        osipc.info(f"fifo://{osipc_runtime}/{'a' * 255}")


def test_unknown_scheme_suggests_the_closest() -> None:
    with pytest.raises(osipc.UnknownScheme) as info:
        osipc.sender("fif://jobs")
    assert "did you mean 'fifo'" in str(info.value)
    assert "mq://" in str(info.value), "lists the known schemes"
    with pytest.raises(osipc.InvalidURL, match="SCHEME://NAME"):
        osipc.sender("jobs")
    with pytest.raises(osipc.InvalidURL, match="must be a str"):
        osipc.sender(b"mq://jobs")  # type: ignore[call-overload]


def test_options_in_query_or_keywords(url: object) -> None:
    with (
        osipc.receiver("mem://opts?capacity=2") as rx,
        osipc.sender("mem://opts", capacity=2) as tx,
    ):
        tx.send(b"1")
        tx.send(b"2")
        with pytest.raises(osipc.Timeout):
            tx.send(b"3", timeout=0)
        assert rx.recv_many(5) == [b"1", b"2"]
    osipc.unlink("mem://opts")


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (
            lambda: osipc.sender("mq://x?maxmsgs=4"),
            ["unknown option 'maxmsgs'", "did you mean 'maxmsg'"],
        ),
        (lambda: osipc.sender("mq://x", maxmsgs=4), ["unknown option 'maxmsgs'", "keyword"]),
        (lambda: osipc.sender("mq://x?maxmsg=four"), ["maxmsg='four'", "integer"]),
        (lambda: osipc.sender("mq://x?mode=999"), ["octal"]),
        (lambda: osipc.sender("mq://x?mode=01777"), ["0o777"]),
        (lambda: osipc.sender("mq://x?create=maybe"), ["true/false"]),
        (lambda: osipc.sender("mq://x?maxmsg=4", maxmsg=5), ["given twice"]),
        (lambda: osipc.sender("mq://x?maxmsg=4&maxmsg=4"), ["given twice"]),
        (lambda: osipc.sender("mq://x?maxmsg"), ["option=value"]),
        (lambda: osipc.sender("mq://x#frag"), ["fragment"]),
        (
            lambda: osipc.sender("mq://x", create=False, exclusive=True),
            ["exclusive=True needs create=True"],
        ),
        (lambda: osipc.sender("fifo://x?framing=words"), ["frames, lines"]),
        (
            lambda: osipc.sender("mem://x", codec="jsn"),
            ["unknown codec 'jsn'", "did you mean 'json'"],
        ),
        (lambda: osipc.sender("mem://x?codec=json", codec="str"), ["give it once"]),
    ],
)
def test_bad_options_are_invalid_url_naming_the_problem(call: object, words: list[str]) -> None:
    with pytest.raises(osipc.InvalidArgument) as info:
        call()  # type: ignore[operator]
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("call", [osipc.unlink, osipc.info], ids=["unlink", "info"])
@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("bogus=1", ["unknown option 'bogus'", "maxmsg"]),
        ("maxmsg=zzz", ["maxmsg='zzz'", "integer"]),
        ("codec=yaml", ["unknown codec 'yaml'"]),
    ],
)
def test_unlink_and_info_check_options_like_sender(
    call: Callable[[str], object], query: str, words: list[str], url: Url
) -> None:
    # They use only the name, but a URL that sender() refuses is refused everywhere.
    with pytest.raises(osipc.InvalidURL) as info:
        call(url("mq") + "?" + query)
    for word in words:
        assert word in str(info.value)


def test_a_bad_codec_in_the_url_is_invalid_url() -> None:
    with pytest.raises(osipc.InvalidURL, match="unknown codec 'yaml'"):
        osipc.sender("mem://x?codec=yaml")
    with pytest.raises(osipc.InvalidArgument, match="unknown codec 'yaml'") as info:
        osipc.sender("mem://x", codec="yaml")  # an argument, not the URL
    assert not isinstance(info.value, osipc.InvalidURL)


def test_unlink_takes_the_options_of_semaphores_and_blocks(url: Url) -> None:
    # The URL that made an osipc.Semaphore or osipc.SharedMemory names it for rm too.
    osipc.unlink(url("sem") + "?value=3&undo=0", missing_ok=True)
    osipc.unlink(url("shm") + "?size=4096", missing_ok=True)
    osipc.unlink(url("shm") + "?capacity=64K", missing_ok=True)
    with pytest.raises(osipc.InvalidURL, match="did you mean 'value'"):
        osipc.unlink(url("sem") + "?valu=3", missing_ok=True)
    with pytest.raises(osipc.InvalidURL, match="unknown option 'sise'"):
        osipc.unlink(url("shm") + "?sise=1", missing_ok=True)


def test_same_option_twice_with_the_same_value_is_fine() -> None:
    with osipc.sender("mem://twice?capacity=3", capacity=3):
        pass
    osipc.unlink("mem://twice")


def test_runtime_dir_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSIPC_RUNTIME_DIR", "/somewhere/else")
    assert runtime_dir_path() == "/somewhere/else"
    monkeypatch.delenv("OSIPC_RUNTIME_DIR")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert runtime_dir_path() == "/run/user/1000/osipc"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    expected = "/run/osipc" if os.geteuid() == 0 else f"/tmp/osipc-{os.geteuid()}"
    assert runtime_dir_path() == expected


def test_runtime_dir_is_created_0700_whatever_the_umask(
    monkeypatch: pytest.MonkeyPatch, osipc_runtime: str
) -> None:
    target = os.path.join(osipc_runtime, "sub", "run")
    monkeypatch.setenv("OSIPC_RUNTIME_DIR", target)
    old = os.umask(0)
    try:
        assert runtime_dir() == target
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.dirname(target)).st_mode) == 0o700, "its parent too"
    os.rmdir(target)
    os.rmdir(os.path.dirname(target))


@pytest.mark.parametrize(
    ("mode", "who"), [(0o777, "everyone"), (0o770, "its group")], ids=["0777", "0770"]
)
def test_a_runtime_dir_others_can_write_is_refused(
    monkeypatch: pytest.MonkeyPatch, osipc_runtime: str, mode: int, who: str
) -> None:
    from osipc._cli import doctor_report

    loose = os.path.join(osipc_runtime, "loose")
    os.mkdir(loose)
    os.chmod(loose, mode)
    monkeypatch.setenv("OSIPC_RUNTIME_DIR", loose)
    try:
        with pytest.raises(osipc.PermissionDenied, match=f"writable by {who}.*chmod 700 {loose}"):
            osipc.receiver("fifo://x")
        assert os.listdir(loose) == []
        _, problems = doctor_report()
        assert any(f"chmod 700 {loose}" in problem for problem in problems), problems
    finally:
        os.rmdir(loose)


def test_runtime_dir_is_not_created_where_another_user_can_replace_it(
    monkeypatch: pytest.MonkeyPatch, osipc_runtime: str
) -> None:
    from _helpers import NOBODY, need_root

    need_root("to give a directory to another user")
    theirs = os.path.join(osipc_runtime, "theirs")
    os.mkdir(theirs, 0o755)
    os.chown(theirs, NOBODY, NOBODY)
    link = os.path.join(osipc_runtime, "link")
    os.symlink(theirs, link)  # a symlinked parent: it is the target that counts
    open_dir = os.path.join(osipc_runtime, "open")
    os.mkdir(open_dir)
    os.chmod(open_dir, 0o777)  # world-writable, not sticky: anyone can rename within it
    try:
        for parent, why in ((theirs, "belongs to uid 65534"), (link, "belongs to uid 65534"),
                            (open_dir, "writable by other users")):  # fmt: skip
            monkeypatch.setenv("OSIPC_RUNTIME_DIR", os.path.join(parent, "run"))
            with pytest.raises(osipc.PermissionDenied, match=why):
                osipc.sender("fifo://x")
            assert not os.path.exists(os.path.join(parent, "run"))
        os.chmod(open_dir, 0o1777)  # sticky, as /tmp is: others cannot move our entries
        monkeypatch.setenv("OSIPC_RUNTIME_DIR", os.path.join(open_dir, "run"))
        assert runtime_dir() == os.path.join(open_dir, "run")
    finally:
        shutil.rmtree(open_dir)
        os.unlink(link)
        os.rmdir(theirs)


def test_a_missing_xdg_runtime_dir_is_not_created(
    monkeypatch: pytest.MonkeyPatch, osipc_runtime: str
) -> None:
    from osipc._cli import doctor_report

    session = os.path.join(osipc_runtime, "user-1000")
    with monkeypatch.context() as env:
        env.delenv("OSIPC_RUNTIME_DIR")
        env.setenv("XDG_RUNTIME_DIR", session)
        with pytest.raises(osipc.TransportError, match=r"XDG_RUNTIME_DIR=.* does not exist"):
            osipc.receiver("fifo://x")
        assert not os.path.exists(session), "the session's directory is not osipc's to make"
        _, problems = doctor_report()
        assert any("XDG_RUNTIME_DIR" in problem for problem in problems), problems
        os.mkdir(session, 0o700)  # the session has started: osipc makes its subdirectory
        assert runtime_dir() == os.path.join(session, "osipc")
    shutil.rmtree(session)


def test_info_and_ls_create_nothing(monkeypatch: pytest.MonkeyPatch, osipc_runtime: str) -> None:
    later = os.path.join(osipc_runtime, "later")
    monkeypatch.setenv("OSIPC_RUNTIME_DIR", later)
    for target in ("fifo://x", "mq://x-never-made"):
        with pytest.raises(osipc.NotFound):
            osipc.info(target)
    osipc.ls(all=True)
    osipc.gc()
    with pytest.raises(osipc.NotFound):
        osipc.unlink("fifo://x")
    assert not os.path.exists(later)


def test_runtime_dir_symlink_is_refused(
    monkeypatch: pytest.MonkeyPatch, osipc_runtime: str
) -> None:
    real = os.path.join(osipc_runtime, "real")
    link = os.path.join(osipc_runtime, "link")
    os.mkdir(real, 0o700)
    os.symlink(real, link)
    monkeypatch.setenv("OSIPC_RUNTIME_DIR", link)
    try:
        with pytest.raises(osipc.PermissionDenied, match="symlink"):
            osipc.receiver("fifo://x")
        assert os.listdir(real) == [], "nothing was created through the link"
    finally:
        os.unlink(link)
        os.rmdir(real)


def test_runtime_dir_of_another_user_is_refused(
    monkeypatch: pytest.MonkeyPatch, osipc_runtime: str
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give a directory to another user")
    theirs = os.path.join(osipc_runtime, "theirs")
    os.mkdir(theirs, 0o700)
    os.chown(theirs, 65534, 65534)
    monkeypatch.setenv("OSIPC_RUNTIME_DIR", theirs)
    try:
        with pytest.raises(osipc.PermissionDenied, match="belongs to uid 65534"):
            osipc.sender("fifo://x")
    finally:
        os.rmdir(theirs)


def test_runtime_dir_refusal_as_an_unprivileged_user(osipc_runtime: str) -> None:
    from _helpers import NOBODY, need_root, peer

    need_root("to run a peer as nobody")
    env = dict(os.environ, OSIPC_RUNTIME_DIR=osipc_runtime)  # root's 0700 dir
    done = peer(
        """
        import osipc
        try:
            osipc.receiver("fifo://x")
        except osipc.OsipcError as exc:
            print(type(exc).__name__, exc)
        """,
        user=NOBODY,
        env=env,
    )
    assert done.stdout.startswith("PermissionDenied") and "belongs to uid 0" in done.stdout


def test_sysv_keys_are_stable_positive_and_never_private() -> None:
    # Documented: FNV-1a (32-bit) of "osipc:" + name, masked to 31 bits, 0 -> 1. Pinned
    # values: changing them would strand every existing sysv+ object.
    assert sysv_key("jobs") == 0x55AF88F7
    assert sysv_key("a") == 0x3FD566D2
    expected = 0x811C9DC5
    for byte in b"osipc:jobs":
        expected = ((expected ^ byte) * 0x01000193) & 0xFFFFFFFF
    assert sysv_key("jobs") == (expected & 0x7FFFFFFF or 1)
    assert sysv_key("jobs") != sysv_key("Jobs")
    keys = {sysv_key(f"name{i}") for i in range(5000)}
    assert all(0 < key < 2**31 for key in keys)
    assert len(keys) == 5000
