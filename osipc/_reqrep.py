"""Request/reply: ``osipc.client(url).request(obj)`` and ``osipc.server(url)``.

A server yields :class:`Request` objects (``.data``, ``.reply(obj)``); a client sends one
request at a time and waits for the reply that answers *that* request. Every request
carries an id, so a client whose request timed out is never wedged: a late reply to it
is recognised and dropped when the next request runs, and the next request works as
soon as a server is there again.

Transports fill in four methods that move frames (codec output):
``Client._send_request(frame, deadline) -> ticket`` / ``Client._await_reply(ticket,
deadline) -> frame`` and ``Server._next(timeout) -> (token, frame)`` /
``Server._reply(token, frame, deadline)``. (Two steps for the client, so that osipc.aio
can wait for the reply without holding a thread.)
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from osipc import _codecs
from osipc._abc import Capabilities, Handle
from osipc._address import Address
from osipc._deadline import Deadline, check_timeout
from osipc._errors import Closed, InvalidArgument

T = TypeVar("T")


class _Coded(Handle, Generic[T]):
    """What clients and servers share: their codec, applied to whole messages (bytes
    through the bytes codec skip it)."""

    def __init__(
        self, address: Address, capabilities: Capabilities, codec: _codecs.Codec[Any]
    ) -> None:
        super().__init__(address, capabilities)
        self.codec = codec
        self._plain = isinstance(codec, _codecs.BytesCodec)

    def _encode(self, obj: T) -> Any:
        return obj if self._plain and type(obj) is bytes else _codecs.encode(self.codec, obj)

    def _decode(self, frame: bytes) -> T:
        if self._plain:
            return frame  # type: ignore[return-value]
        return _codecs.decode(self.codec, frame, self.url)  # type: ignore[no-any-return]


class Client(_Coded[T]):
    """Sends requests and returns their replies (both through the handle's codec)."""

    def request(self, obj: T, *, timeout: float | None = None) -> T:
        """Send ``obj`` to a server and return its reply.

        ``timeout`` bounds the whole exchange: reaching a server, and its answer.

        Raises:
            Timeout: no server took the request, or none replied in time. The client
                stays usable; a late reply to this request is discarded.
            EncodeError, DecodeError: the codec refused the request or the reply.
            MessageTooLarge, Broken, Closed: as for ``Sender.send``.
        """
        if self._closed:
            raise self._raise_closed()
        frame = self._encode(obj)
        deadline = Deadline(check_timeout(timeout))
        reply = self._await_reply(self._send_request(frame, deadline), deadline)
        return self._decode(reply)

    @abstractmethod
    def _send_request(self, frame: _codecs.Buffer, deadline: Deadline) -> object:
        """Send one request frame; return the ticket that recognises its reply."""

    @abstractmethod
    def _await_reply(self, ticket: object, deadline: Deadline) -> bytes:
        """The reply frame that answers ``ticket``'s request (Timeout if none in time;
        another ``_await_reply`` may follow). Late replies to other tickets are dropped."""


class Request(Generic[T]):
    """One request a server received: ``data`` and a way to answer it, once."""

    __slots__ = ("_replied", "_server", "_token", "data")

    def __init__(self, server: Server[T], token: object, data: T) -> None:
        self.data = data
        self._server = server
        self._token = token
        self._replied = False

    def reply(self, obj: T, *, timeout: float | None = None) -> None:
        """Send ``obj`` back to the client that asked.

        Raises:
            Broken: the client is gone (closed or dead); nobody waits for this reply.
            Timeout: the client's reply path stayed full for ``timeout``.
            InvalidArgument: this request was already answered.
        """
        if self._replied:
            raise InvalidArgument("this request was already answered; reply once per request")
        server = self._server
        if server._closed:
            raise server._raise_closed()
        server._reply(self._token, server._encode(obj), Deadline(check_timeout(timeout)))
        self._replied = True

    def __repr__(self) -> str:
        return f"<Request {self.data!r} from {self._server.url}>"


class Server(_Coded[T]):
    """Receives requests; iterate it, or call ``recv``, and answer each with ``reply``."""

    def recv(self, *, timeout: float | None = None) -> Request[T]:
        """The next request.

        Raises:
            Timeout: none arrived within ``timeout``.
            DecodeError: the request is not valid for the codec (``exc.data`` holds it);
                it cannot be answered.
            Closed: the handle is closed.
        """
        if self._closed:
            raise self._raise_closed()
        token, frame = self._next(check_timeout(timeout))
        return Request(self, token, self._decode(frame))

    def __iter__(self) -> Iterator[Request[T]]:
        """Yield requests until the handle is closed (also by another thread)."""
        while not self._closed:
            try:
                request = self.recv()
            except Closed:
                if self.closed:
                    return
                raise
            yield request

    @abstractmethod
    def _next(self, timeout: float | None) -> tuple[object, bytes]:
        """(token that ``_reply`` needs, request frame). Raise Timeout when none comes."""

    @abstractmethod
    def _reply(self, token: object, frame: _codecs.Buffer, deadline: Deadline) -> None:
        """Deliver a reply frame to the client ``token`` names."""
