"""Codecs: bytes by default (never a silent pickle), str, json, msgpack, pickle by name,
any object with encode/decode; EncodeError before anything is sent, DecodeError naming
the codec."""

from __future__ import annotations

import array
import importlib.util
from collections.abc import Callable
from typing import Any

import pytest

import osipc


def test_bytes_codec_accepts_bytes_like_and_refuses_the_rest(url: Callable[..., str]) -> None:
    target = url("mem")
    with osipc.receiver(target) as rx, osipc.sender(target) as tx:
        tx.send(bytearray(b"ba"))
        tx.send(memoryview(b"mv"))
        tx.send(memoryview(array.array("i", [1, 2])))  # 8 bytes, not 2 items
        tx.send(array.array("h", [3, 4]))  # any buffer: array.array, a numpy array...
        tx.send(memoryview(bytearray(range(6))).cast("B", (2, 3)))  # C-contiguous, 2-D
        assert rx.recv_many(5) == [
            b"ba", b"mv", array.array("i", [1, 2]).tobytes(),
            array.array("h", [3, 4]).tobytes(), bytes(range(6)),
        ]  # fmt: skip
        for bad in ({"a": 1}, "text", 5, None, memoryview(b"abcd")[::2]):
            with pytest.raises(osipc.EncodeError) as info:
                tx.send(bad)  # type: ignore[arg-type]
            assert isinstance(info.value, ValueError)
        with pytest.raises(osipc.EncodeError, match="codec='json'"):
            tx.send({"a": 1})  # type: ignore[arg-type]
        with pytest.raises(osipc.Timeout):
            rx.recv(timeout=0)
    osipc.unlink(target)


@pytest.mark.parametrize(
    ("codec", "value"),
    [
        ("str", "héllo wörld"),
        ("json", {"a": [1, 2.5, None, True, "é"]}),
        ("pickle", {"set": {1, 2}, "tuple": (1, b"x")}),
    ],
)
def test_named_codecs_round_trip(url: Callable[..., str], codec: str, value: Any) -> None:
    target = url("mem")
    with osipc.receiver(target, codec=codec) as rx, osipc.sender(target, codec=codec) as tx:
        tx.send(value)
        assert rx.recv(timeout=1) == value
    osipc.unlink(target)


def test_json_is_compact_and_strict(url: Callable[..., str]) -> None:
    target = url("mem")
    with osipc.receiver(target) as raw, osipc.sender(target, codec="json") as tx:
        tx.send({"a": [1, 2], "s": "é"})
        assert raw.recv(timeout=1) == '{"a":[1,2],"s":"é"}'.encode()
        for bad in (float("nan"), {1, 2}, object()):
            with pytest.raises(osipc.EncodeError, match="json"):
                tx.send(bad)
    osipc.unlink(target)


def test_decode_error_names_the_codec_and_keeps_the_data(url: Callable[..., str]) -> None:
    target = url("mem")
    with osipc.sender(target) as tx, osipc.receiver(target, codec="json") as rx:
        tx.send(b"{not json")
        tx.send(b"[1]")
        with pytest.raises(osipc.DecodeError) as info:
            rx.recv(timeout=1)
        assert info.value.codec == "json" and info.value.data == b"{not json"
        assert "json codec" in str(info.value) and target in str(info.value)
        assert rx.recv(timeout=1) == [1], "the next message is unaffected"
    with osipc.sender(target) as tx, osipc.receiver(target, codec="str") as srx:
        tx.send(b"\xff")
        with pytest.raises(osipc.DecodeError, match="str codec"):
            srx.recv(timeout=1)
    osipc.unlink(target)


def test_recv_many_delivers_good_messages_before_a_bad_one(url: Callable[..., str]) -> None:
    target = url("mem")
    with osipc.sender(target) as tx, osipc.receiver(target, codec="json") as rx:
        tx.send_many([b"1", b"2", b"oops", b"4"])
        assert rx.recv_many(10, timeout=1) == [1, 2]
        with pytest.raises(osipc.DecodeError):
            rx.recv_many(10, timeout=1)
        assert rx.recv_many(10, timeout=1) == [4]
    osipc.unlink(target)


def test_pickle_is_only_used_when_named(url: Callable[..., str]) -> None:
    target = url("mem")
    for codec in (None, "bytes", "json", "str"):
        with osipc.sender(target, codec=codec) as tx, pytest.raises(osipc.EncodeError):
            tx.send({1, 2})  # a set: only pickle could carry it
    osipc.unlink(target)
    from osipc._codecs import PickleCodec

    assert "runs code chosen by the sender" in " ".join((PickleCodec.__doc__ or "").split())


class Upper:
    """A user codec: an object with encode() and decode()."""

    name = "upper"

    def encode(self, obj: str) -> bytes:
        return obj.upper().encode()

    def decode(self, data: bytes) -> str:
        if data == b"BAD":
            raise RuntimeError("cannot decode BAD")
        return data.decode().lower()


def test_custom_codec_objects(url: Callable[..., str]) -> None:
    target = url("mem")
    with osipc.receiver(target, codec=Upper()) as rx, osipc.sender(target, codec=Upper()) as tx:
        tx.send("hello")
        assert rx.recv(timeout=1) == "hello"
        with pytest.raises(osipc.EncodeError, match="upper"):
            tx.send(5)  # type: ignore[arg-type]  # AttributeError inside the user's codec
        tx.send("bad")
        with pytest.raises(osipc.DecodeError) as info:
            rx.recv(timeout=1)
        assert info.value.codec == "upper"
    with pytest.raises(osipc.InvalidArgument, match=r"encode\(\) and decode\(\)"):
        osipc.sender(target, codec=object())
    osipc.unlink(target)


def test_msgpack_codec_or_a_clear_install_hint(url: Callable[..., str]) -> None:
    target = url("mem")
    if importlib.util.find_spec("msgpack") is None:
        with pytest.raises(osipc.TransportUnavailable) as info:
            osipc.sender(target, codec="msgpack")
        assert info.value.hint == "pip install 'osipc[msgpack]'"
        assert isinstance(info.value, ImportError)
        pytest.skip("msgpack is not installed: only its install hint was tested")
    value = {"b": b"\x00\xff", "s": "é", "n": [1, 2.5, None]}
    with osipc.receiver(target, codec="msgpack") as rx, osipc.sender(target, codec="msgpack") as tx:
        tx.send(value)
        assert rx.recv(timeout=1) == value
        with pytest.raises(osipc.EncodeError, match="msgpack"):
            tx.send(object())
        raw = osipc.sender(target)
        raw.send(b"\xc1")  # 0xC1 is never valid msgpack
        raw.close()
        with pytest.raises(osipc.DecodeError, match="msgpack"):
            rx.recv(timeout=1)
    osipc.unlink(target)
