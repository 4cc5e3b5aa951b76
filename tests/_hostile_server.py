"""A TCP server that misbehaves at the socket level, one way per server, for transport tests.

Each accepted connection reads the request head, then answers as ``behaviour`` says: nothing at
all, a reset, a response cut inside its headers or its body, broken chunked framing, bytes that
are not HTTP, or a slow drip of an otherwise valid response. The reference service cannot do
these: its faults are HTTP answers, produced by a well-behaved server.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# Long enough that a drip of it outlasts any bound a test sets (one byte per interval).
JSON_BODY = b'{"ok": true, "padding": "' + b"x" * 64 + b'"}'
#: A complete, valid response, dripped by the ``drip_*`` behaviours.
VALID_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(JSON_BODY)

#: What the server sends after reading the request (``None``: see ``_serve_one``).
ANSWERS: dict[str, bytes | None] = {
    # Closed inside the header section: the blank line that ends it never came.
    "truncated_headers": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Le",
    # Closed after the status line, before any header line ended.
    "truncated_status": b"HTTP/1.1 200 OK",
    # Closed after 10 of the 100 bytes that Content-Length announced.
    "truncated_body": b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"ok": tru',
    # Closed inside a chunked body, before its last chunk.
    "truncated_chunked": b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"ok"',
    # A chunk size that is not hexadecimal (RFC 9112 §7.1).
    "bad_chunked": b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n{"ok": true}\r\n0\r\n\r\n',
    # Not an HTTP status line at all (RFC 9112 §4).
    "invalid_http": b"HELLO THERE\r\nContent-Length: 0\r\n\r\n",
    "reset": None,
    "close": None,
    "stall": None,
    "drip_head": None,
    "drip_body": None,
    "not_tls": None,
}


class HostileServer:
    """Serve one misbehaviour on ``127.0.0.1``; use as a context manager.

    :param behaviour: A key of ``ANSWERS``.
    :param drip_interval: Seconds between two bytes of a ``drip_*`` behaviour.
    """

    def __init__(self, behaviour: str, drip_interval: float = 1.0) -> None:
        if behaviour not in ANSWERS:
            raise ValueError(f"unknown behaviour {behaviour!r}")
        self.behaviour = behaviour
        self.drip_interval = drip_interval
        self.connections = 0
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name=f"hostile-{behaviour}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve_one, args=(conn,), daemon=True).start()

    def _serve_one(self, conn: socket.socket) -> None:
        try:
            if self.behaviour != "not_tls":
                _read_head(conn)
            answer = ANSWERS[self.behaviour]
            if answer is not None:
                conn.sendall(answer)
            elif self.behaviour == "reset":
                # SO_LINGER 0: close() sends RST instead of FIN.
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif self.behaviour == "not_tls":
                # A TLS client hello answered in plain text: the handshake cannot succeed.
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            elif self.behaviour == "stall":
                self._stop.wait()
            elif self.behaviour == "drip_head":
                self._drip(conn, VALID_HEAD + JSON_BODY)
            elif self.behaviour == "drip_body":
                conn.sendall(VALID_HEAD)
                self._drip(conn, JSON_BODY)
        except OSError:
            pass
        finally:
            conn.close()

    def _drip(self, conn: socket.socket, data: bytes) -> None:
        for i in range(len(data)):
            if self._stop.wait(self.drip_interval):
                return
            conn.sendall(data[i : i + 1])


def _read_head(conn: socket.socket) -> None:
    conn.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return
        data += chunk


def refused_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: the port was bound and released."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@contextmanager
def hostile(behaviour: str, drip_interval: float = 1.0) -> Iterator[HostileServer]:
    """``HostileServer`` as a ``with`` block."""
    with HostileServer(behaviour, drip_interval) as server:
        yield server
