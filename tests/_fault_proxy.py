"""A TCP fault proxy: sits between the clients and the reference service and breaks answers on
the socket, one exchange (request and its response) at a time.

Why hand-written: toxiproxy, the usual tool, needs its Go server binary, which this machine
does not have (and nothing else here installs Go programs). This is a small asyncio proxy that
does what the soak needs of it and no more: plain HTTP/1.1 on localhost.

How it works. Each client connection is read one request at a time (HTTP/1.1 framing:
``Content-Length`` or chunked); each request goes to the service on a fresh upstream connection,
and the whole response is read back before anything is sent to the client. Then the exchange's
fault, if any, is applied to those bytes. So every fault hits a request the service has *carried
out*: the hard case for a create, whose answer is lost although the job exists.

Per exchange, not per connection: the clients keep their connections alive (aiohttp pools 32
for thousands of triggers, ``requests`` one per thread), so a choice per connection would fault
a handful of connections and almost no requests. One seeded ``random.Random`` draws, for each
exchange in the order they arrive, the fault (or none) and where to cut or corrupt; the draws
are reproducible, which request gets which draw depends on the order of concurrent requests.

Fault kinds (names as in ``tests/_hostile_server.py`` and ``faults.Fault``; what the client sees):

- ``reset``: part of the response (0 bytes up to all but the last), then a TCP RST
  (``SO_LINGER`` 0): a reset before or in the middle of the answer;
- ``stall``: nothing at all; the connection stays open until the client gives up and closes it
  (or ``stall_cap`` seconds): past the client's timeout;
- ``drip_head``: the whole response, one byte every ``drip_interval`` seconds; ``drip_body``:
  the head at once, then the body one byte at a time. Each read gets a byte quickly, so only a
  total deadline ends it. A drip whose client gave up is counted in ``drips abandoned``;
- ``truncated_headers``: closed (FIN) inside the header section: after the status line, before
  the blank line that ends the head;
- ``truncated_body``: the head and part of the body (``Content-Length`` promises more), then FIN;
  with an empty body, ``truncated_headers`` is done (and counted) instead;
- ``corrupt``: one ASCII byte of the body, followed by ASCII, gets its high bit set: never valid
  UTF-8, so never a valid JSON answer that says something else (TCP's checksum and TLS make
  silent corruption of a *valid* value rare; no client can detect that one). Framing is intact,
  the connection stays usable. An empty body gets its status line corrupted instead (not HTTP).

What the proxy does on its own, not a fault: when the service is down (the soak kills it) the
upstream connect fails and the client connection is reset (``upstream refused``); when the
service closes without a byte (its ``drop`` fault) the client gets a reset too, and when it
closes mid-answer (its ``truncate`` fault) the client gets what came, then FIN.

Counters (``stats()``): ``connections``, ``exchanges``, ``fired`` per kind, ``fired on writes``
per kind (POST, PUT, PATCH, DELETE: the service acted, the answer is lost), ``drips abandoned``,
``upstream refused``, ``upstream closed early``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

#: Every kind the proxy can apply, in the order the draw tries them.
KINDS = ("reset", "stall", "drip_head", "drip_body", "truncated_headers", "truncated_body", "corrupt")

_HEAD_END = b"\r\n\r\n"
_MAX_HEAD = 1 << 20


class _UpstreamClosed(Exception):
    """The service closed the exchange's connection before a whole response came."""

    def __init__(self, partial: bytes) -> None:
        super().__init__(f"upstream closed after {len(partial)} bytes")
        self.partial = partial


@dataclass
class _Exchange:
    """One request and the service's whole response (raw bytes, framing included)."""

    method: str
    path: str
    head: bytes
    body: bytes
    keep_alive: bool


def _headers(head: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            fields[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return fields


async def _read_chunked(reader: asyncio.StreamReader, out: bytearray) -> None:
    """Read a chunked body into ``out`` as it came (sizes, data, trailers)."""
    while True:
        line = await reader.readuntil(b"\r\n")
        out += line
        size = int(line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while True:  # trailer section, ended by an empty line
                trailer = await reader.readuntil(b"\r\n")
                out += trailer
                if trailer == b"\r\n":
                    return
        out += await reader.readexactly(size + 2)


async def _read_body(reader: asyncio.StreamReader, fields: Mapping[str, str], out: bytearray, to_eof: bool) -> bool:
    """Read a message body (RFC 9112 §6.3) into ``out``; ``True`` if it ended with the connection.

    :param to_eof: A response without ``Content-Length`` or chunking: its body lasts until close.
    """
    if "chunked" in fields.get("transfer-encoding", "").lower():
        await _read_chunked(reader, out)
        return False
    if "content-length" in fields:
        out += await reader.readexactly(int(fields["content-length"]))
        return False
    if to_eof:
        out += await reader.read()
        return True
    return False


class FaultProxy:
    """Forward ``127.0.0.1:<port>`` to ``upstream``, breaking a share of the exchanges.

    Runs its own event loop in a thread, apart from the clients' loops, as a separate box on the
    network would. Use ``start()``/``close()`` or ``with``.

    :param upstream_host: Host of the service.
    :param upstream_port: Its port (kept across the service's restarts).
    :param mix: Share of all exchanges per fault kind (a key of ``KINDS``), e.g.
        ``{"reset": 0.02}``; the rest go through untouched.
    :param seed: Seed of the draws.
    :param drip_interval: Seconds between two bytes of a drip.
    :param stall_cap: Longest a stall holds a connection the client keeps open, seconds.
    :param eligible: ``(method, path) -> bool``: which exchanges may be faulted (default: all).
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        mix: Mapping[str, float] | None = None,
        seed: int = 0,
        drip_interval: float = 0.1,
        stall_cap: float = 120.0,
        eligible: Callable[[str, str], bool] | None = None,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.drip_interval = drip_interval
        self.stall_cap = stall_cap
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._mix: dict[str, float] = {}
        self._eligible = eligible
        self.set_mix(mix or {}, eligible)
        self._counts: Counter[str] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_mix(self, mix: Mapping[str, float], eligible: Callable[[str, str], bool] | None = None) -> None:
        """Replace the shares per kind (and which exchanges may be faulted); takes effect at once.

        :param mix: Share of exchanges per kind.
        :param eligible: As in the constructor.
        :raises ValueError: An unknown kind, a negative share, or shares adding up to more than 1.
        """
        unknown = set(mix) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {KINDS}")
        if any(share < 0 for share in mix.values()) or sum(mix.values()) > 1.0 + 1e-9:
            raise ValueError(f"shares must be >= 0 and add up to at most 1, got {dict(mix)}")
        with self._lock:
            self._mix = {kind: mix.get(kind, 0.0) for kind in KINDS}
            self._eligible = eligible

    def stats(self) -> dict[str, Any]:
        """A copy of the counters: ``connections``, ``exchanges``, ``fired`` (per kind),
        ``fired on writes`` (per kind, requests other than GET/HEAD), ``drips abandoned``,
        ``upstream refused``, ``upstream closed early``."""
        with self._lock:
            counts = Counter(self._counts)
        fired = Counter({kind: counts[f"fired {kind}"] for kind in KINDS})
        writes = Counter({kind: counts[f"writes {kind}"] for kind in KINDS})
        plain = {name: count for name, count in counts.items() if not name.startswith(("fired ", "writes "))}
        return {
            "connections": plain.get("connections", 0),
            "exchanges": plain.get("exchanges", 0),
            "fired": fired,
            "fired on writes": writes,
            "drips abandoned": plain.get("drips abandoned", 0),
            "upstream refused": plain.get("upstream refused", 0),
            "upstream closed early": plain.get("upstream closed early", 0),
        }

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._run, name=f"fault-proxy-{self.port}", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fault proxy did not start")
        return self

    def close(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop already stopped
                loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._listener.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        # A client that vanishes mid-drip makes the loop report a dead write: not news here.
        loop.set_exception_handler(lambda _loop, _context: None)
        self._server = loop.run_until_complete(asyncio.start_server(self._serve, sock=self._listener, limit=_MAX_HEAD))
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.gather(*asyncio.all_tasks(loop), return_exceptions=True))
            loop.close()

    # -- one client connection ------------------------------------------------------------------

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def _draw(self, method: str, path: str) -> tuple[str | None, float]:
        """The exchange's fault (``None``: none) and a number in [0, 1) for where it cuts."""
        with self._lock:
            self._counts["exchanges"] += 1
            # Two draws per exchange whatever comes of them: the stream stays aligned.
            pick, where = self._rng.random(), self._rng.random()
            if self._eligible is not None and not self._eligible(method, path):
                return None, where
            edge = 0.0
            for kind in KINDS:
                edge += self._mix[kind]
                if pick < edge:
                    return kind, where
        return None, where

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._count("connections")
        try:
            while True:
                try:
                    head = await reader.readuntil(_HEAD_END)
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return  # the client closed its keep-alive connection (or sent junk)
                request = bytearray(head)
                fields = _headers(head)
                await _read_body(reader, fields, request, to_eof=False)
                method, path, *_ = [*head.split(b"\r\n", 1)[0].decode("latin-1").split(" "), "", ""]
                kind, where = self._draw(method, path)
                try:
                    exchange = await self._forward(bytes(request), method, path)
                except _UpstreamClosed as closed:
                    await self._mirror_close(writer, closed.partial)
                    return
                except OSError:
                    self._count("upstream refused")  # the service is down (killed, restarting)
                    _abort(writer)
                    return
                exchange.keep_alive = exchange.keep_alive and "close" not in fields.get("connection", "").lower()
                if not await self._answer(reader, writer, exchange, kind, where):
                    return
        except (ConnectionError, OSError, asyncio.IncompleteReadError, ValueError):
            pass  # a client gone mid-answer, or bytes that are not HTTP: nothing left to do
        finally:
            writer.close()  # a FIN, unless a reset went first

    async def _forward(self, request: bytes, method: str, path: str) -> _Exchange:
        """Send the request on a fresh upstream connection and read the whole response back.

        A fresh connection per exchange: the service closes idle keep-alive connections on its
        own schedule, and a race with that would look like a fault nobody injected.
        """
        up_reader, up_writer = await asyncio.open_connection(*self.upstream, limit=_MAX_HEAD)
        got = bytearray()
        try:
            up_writer.write(request)
            await up_writer.drain()
            try:
                head = await up_reader.readuntil(_HEAD_END)
            except asyncio.IncompleteReadError as err:
                raise _UpstreamClosed(err.partial) from None
            except ConnectionError:
                raise _UpstreamClosed(b"") from None
            got += head
            fields = _headers(head)
            status = int(head.split(b" ", 2)[1])
            body = bytearray()
            closes = False
            if method != "HEAD" and status >= 200 and status not in (204, 304):
                try:
                    closes = await _read_body(up_reader, fields, body, to_eof=True)
                except asyncio.IncompleteReadError as err:
                    raise _UpstreamClosed(bytes(got + body + err.partial)) from None
                except ConnectionError:
                    raise _UpstreamClosed(bytes(got + body)) from None
            keep_alive = not closes and "close" not in fields.get("connection", "").lower()
            return _Exchange(method, path, head, bytes(body), keep_alive)
        finally:
            up_writer.close()

    async def _mirror_close(self, writer: asyncio.StreamWriter, partial: bytes) -> None:
        """The service closed early: pass on what came, then the close (a reset if nothing came)."""
        self._count("upstream closed early")
        if not partial:
            _abort(writer)
            return
        writer.write(partial)
        with contextlib.suppress(ConnectionError):
            await writer.drain()

    async def _answer(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        exchange: _Exchange,
        kind: str | None,
        where: float,
    ) -> bool:
        """Send the response, broken as ``kind`` says; ``True`` if the connection goes on."""
        head, body = exchange.head, exchange.body
        if kind == "truncated_body" and not body:
            kind = "truncated_headers"  # nothing to cut in the body: cut the head
        if kind == "drip_body" and not body:
            kind = "drip_head"
        if kind is not None:
            self._count(f"fired {kind}")
            if exchange.method not in ("GET", "HEAD"):
                self._count(f"writes {kind}")  # the service changed something, the answer is lost
        if kind is None:
            writer.write(head + body)
            await writer.drain()
            return exchange.keep_alive
        if kind == "reset":
            whole = head + body
            await _send_all(writer, whole[: int(where * len(whole))])
            _abort(writer)
            return False
        if kind == "stall":
            await self._wait_client_gone(reader)
            return False
        if kind in ("drip_head", "drip_body"):
            if kind == "drip_body":
                writer.write(head)
                await writer.drain()
            delivered = await self._drip(reader, writer, head + body if kind == "drip_head" else body)
            if not delivered:
                self._count("drips abandoned")
            return delivered and exchange.keep_alive
        if kind == "truncated_headers":
            # After the status line (a status line cut short is the ``reset`` kind's business)
            # and before the blank line that ends the head.
            status_end = head.index(b"\r\n") + 2
            cut = status_end + int(where * (len(head) - 2 - status_end))
            await _send_all(writer, head[:cut])
            return False
        if kind == "truncated_body":
            await _send_all(writer, head + body[: int(where * len(body))])
            return False
        if kind == "corrupt":
            writer.write(_corrupt(head, body, where))
            await writer.drain()
            return exchange.keep_alive
        raise AssertionError(f"unknown kind {kind}")

    async def _wait_client_gone(self, reader: asyncio.StreamReader) -> None:
        """Hold the connection, silent, until the client closes it (or ``stall_cap``)."""
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(self.stall_cap):
                while await reader.read(65536):
                    pass

    async def _drip(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> bool:
        """Send ``data`` a byte at a time; ``False`` once the client closed before the end."""
        for i in range(len(data)):
            await asyncio.sleep(self.drip_interval)
            # The client's close reaches the reader even though nobody reads it (EOF is fed).
            if reader.at_eof() or writer.transport.is_closing():
                return False
            writer.write(data[i : i + 1])
            await writer.drain()
        return True


def _corrupt(head: bytes, body: bytes, where: float) -> bytes:
    """``head + body`` with one body byte's high bit set where it cannot form valid UTF-8 (an
    ASCII byte followed by ASCII or the end); with no such byte, the status line's first byte."""
    spots = [i for i in range(len(body)) if body[i] < 0x80 and (i + 1 == len(body) or body[i + 1] < 0x80)]
    if not spots:
        return bytes([head[0] | 0x80]) + head[1:] + body
    i = spots[int(where * len(spots))]
    return head + body[:i] + bytes([body[i] | 0x80]) + body[i + 1 :]


async def _send_all(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Write ``data`` and wait until it has left the process (before a close or a reset)."""
    writer.write(data)
    await writer.drain()
    while writer.transport.get_write_buffer_size() and not writer.transport.is_closing():
        await asyncio.sleep(0.005)


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST, not a FIN: ``SO_LINGER`` on, 0 s."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
