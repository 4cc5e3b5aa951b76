"""A tiny HTTP service on 127.0.0.1 that plays a script of replies per route.

For replies the reference service never sends (statuses only a real service's SDK knows): each
``(method, path)`` answers its replies in order, then repeats the last one. Requests are recorded
with their query string, so a test can check what the provider sent.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

Reply = tuple[int, dict[str, str], bytes]


class ScriptedService:
    """Routes ``(method, path)`` to a list of replies; ``seen`` holds ``(method, path, query)``."""

    def __init__(self) -> None:
        self.scripts: dict[tuple[str, str], list[Reply]] = {}
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                status, headers, body = service._next(self.command, parts.path, dict(parse_qsl(parts.query)))
                self.send_response(status)
                for name, value in {**headers, "content-length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *args: Any) -> None:  # keep the test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def play(self, method: str, path: str, *bodies: Any, status: int = 200, **headers: str) -> None:
        """Answer ``method path`` with ``bodies`` (JSON, or raw bytes) in turn, the last one forever."""
        encoded = [body if isinstance(body, bytes) else json.dumps(body).encode() for body in bodies]
        with self._lock:
            self.scripts[(method, path)] = [
                (status, {"content-type": "application/json", **headers}, b) for b in encoded
            ]

    def _next(self, method: str, path: str, query: dict[str, str]) -> Reply:
        with self._lock:
            self.seen.append((method, path, query))
            script = self.scripts.get((method, path))
            if not script:
                return 404, {"content-type": "application/json"}, b'{"detail": "no route"}'
            return script.pop(0) if len(script) > 1 else script[0]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def scripted_service() -> Iterator[ScriptedService]:
    service = ScriptedService()
    try:
        yield service
    finally:
        service.close()
