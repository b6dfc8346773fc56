"""Codecs turn objects into the bytes a transport carries, and back.

``bytes`` is the default and sends bytes-like objects unchanged: a dict sent without a
codec is an :class:`~osipc.EncodeError`, never silently pickled. ``str`` is UTF-8,
``json`` is compact UTF-8 JSON, ``msgpack`` needs the ``msgpack`` extra, and ``pickle``
is used only when asked for by name. Any object with ``encode(obj) -> bytes`` and
``decode(bytes) -> obj`` methods is a codec too.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar, Union, runtime_checkable

from osipc._address import did_you_mean
from osipc._errors import DecodeError, EncodeError, InvalidArgument, TransportUnavailable

T = TypeVar("T")
Buffer = Union[bytes, bytearray, memoryview]


@runtime_checkable
class Codec(Protocol[T]):
    """What ``codec=`` accepts besides a name: two methods, and optionally a ``name``."""

    def encode(self, obj: T) -> Buffer: ...

    def decode(self, data: bytes) -> T: ...


class _Named(Generic[T]):
    name = ""

    def __repr__(self) -> str:
        return f"<osipc codec {self.name!r}>"


class BytesCodec(_Named[bytes]):
    """bytes and any C-contiguous buffer (bytearray, memoryview, array.array, a numpy
    array...), sent exactly as its bytes are; received as bytes."""

    name = "bytes"

    def encode(self, obj: object) -> Buffer:
        if isinstance(obj, (bytes, bytearray)):
            return obj
        try:
            view = obj if isinstance(obj, memoryview) else memoryview(obj)  # type: ignore[arg-type]
        except TypeError:
            raise EncodeError(
                f"the bytes codec sends bytes-like objects, not {type(obj).__name__}; "
                "pass codec='json', 'msgpack', 'str' or 'pickle' to send other objects"
            ) from None
        if view.format == "B" and view.ndim == 1 and view.c_contiguous:
            return view
        if not view.c_contiguous or view.ndim == 0:
            raise EncodeError(
                f"the bytes codec needs a C-contiguous buffer of at least one dimension, got "
                f"{type(obj).__name__} of shape {view.shape} (numpy: np.ascontiguousarray)"
            )
        return view.cast("B")

    def decode(self, data: bytes) -> bytes:
        return data


class StrCodec(_Named[str]):
    """str as UTF-8."""

    name = "str"

    def encode(self, obj: str) -> Buffer:
        if not isinstance(obj, str):
            raise EncodeError(f"the str codec sends str, not {type(obj).__name__}")
        try:
            return obj.encode()
        except UnicodeEncodeError as exc:  # lone surrogates
            raise EncodeError(f"the str codec cannot encode this string as UTF-8: {exc}") from exc

    def decode(self, data: bytes) -> str:
        return data.decode()


class JsonCodec(_Named[Any]):
    """Compact JSON in UTF-8; NaN and infinity are refused (they are not JSON)."""

    name = "json"

    def encode(self, obj: Any) -> Buffer:
        try:
            text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
            return text.encode()
        except (TypeError, ValueError, RecursionError, UnicodeEncodeError) as exc:
            raise EncodeError(f"the json codec cannot encode {type(obj).__name__}: {exc}") from exc

    def decode(self, data: bytes) -> Any:
        return json.loads(data)


class MsgpackCodec(_Named[Any]):
    """MessagePack (the ``msgpack`` extra); bytes stay bytes, str stays str."""

    name = "msgpack"

    def __init__(self) -> None:
        try:
            import msgpack
        except ImportError:
            raise TransportUnavailable(
                "the msgpack codec needs the msgpack package", hint="pip install 'osipc[msgpack]'"
            ) from None
        self._msgpack = msgpack

    def encode(self, obj: Any) -> Buffer:
        try:
            return self._msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]
        except Exception as exc:  # msgpack raises TypeError, ValueError, OverflowError, ...
            raise EncodeError(
                f"the msgpack codec cannot encode {type(obj).__name__}: {exc}"
            ) from exc

    def decode(self, data: bytes) -> Any:
        return self._msgpack.unpackb(data, raw=False, strict_map_key=False)


class PickleCodec(_Named[Any]):
    """Python pickles. Only used when asked for by name.

    Unpickling runs code chosen by the sender: use it only between processes that trust
    each other completely (same user, objects only you can write to).
    """

    name = "pickle"

    def encode(self, obj: Any) -> Buffer:
        try:
            return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # PicklingError, TypeError, AttributeError, RecursionError
            raise EncodeError(
                f"the pickle codec cannot encode {type(obj).__name__}: {exc}"
            ) from exc

    def decode(self, data: bytes) -> Any:
        return pickle.loads(data)


_BUILTIN: dict[str, Callable[[], Codec[Any]]] = {
    "bytes": BytesCodec,
    "json": JsonCodec,
    "msgpack": MsgpackCodec,
    "pickle": PickleCodec,
    "str": StrCodec,
}
CODEC_NAMES = tuple(sorted(_BUILTIN))


def get_codec(codec: object) -> Codec[Any]:
    """The codec for a name or a codec object; InvalidArgument for anything else."""
    if codec is None:
        return BytesCodec()
    if isinstance(codec, str):
        cls = _BUILTIN.get(codec)
        if cls is None:
            raise InvalidArgument(
                f"unknown codec {codec!r}{did_you_mean(codec, _BUILTIN)}; use one of "
                f"{', '.join(CODEC_NAMES)}, or an object with encode() and decode() methods"
            )
        return cls()
    if callable(getattr(codec, "encode", None)) and callable(getattr(codec, "decode", None)):
        return codec  # type: ignore[return-value]
    raise InvalidArgument(
        f"codec must be a name ({', '.join(CODEC_NAMES)}) or an object with encode() and "
        f"decode() methods, got {type(codec).__name__}"
    )


def codec_name(codec: Codec[Any]) -> str:
    name = getattr(codec, "name", None)
    return name if isinstance(name, str) and name else type(codec).__name__


def encode(codec: Codec[Any], obj: object) -> Buffer:
    """``codec.encode(obj)``, with any failure (user codecs included) as EncodeError."""
    try:
        data = codec.encode(obj)
    except EncodeError:
        raise
    except Exception as exc:
        raise EncodeError(f"codec {codec_name(codec)!r} failed to encode: {exc!r}") from exc
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise EncodeError(f"codec {codec_name(codec)!r} returned {type(data).__name__}, not bytes")
    return data


def decode(codec: Codec[Any], data: bytes, where: str) -> Any:
    """``codec.decode(data)``, with any failure as DecodeError naming the codec."""
    try:
        return codec.decode(data)
    except Exception as exc:
        name = codec_name(codec)
        preview = data[:40]
        raise DecodeError(
            f"the {name} codec could not decode a {len(data)}-byte message from {where} "
            f"(starts {preview!r}): {exc}",
            codec=name,
            data=bytes(data),
        ) from exc
