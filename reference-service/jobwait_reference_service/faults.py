"""Fault injection for the reference service: prove clients survive a misbehaving service.

Only exists when the service runs with ``--test-controls``: ``create_app`` then calls
:func:`install_fault_injection`, which adds a pure-ASGI middleware and a control router. Without
the flag neither exists, so ``/_test/faults`` is a plain 404 and no request is ever faulted.

Control API (header ``X-Test-Key: <the service API key>``; itself never faulted, nor is ``/healthz``):

- ``POST /_test/faults`` ``{"rules": [rule, ...], "seed": int | null}`` replaces the rule set;
- ``DELETE /_test/faults`` clears it;
- ``GET /_test/faults`` returns the rules (with ``remaining`` and ``fired``) and ``stats``:
  ``{"requests": seen, "injected": {kind: n}, "total_injected": n}``.

Replacing or clearing the rule set also resets ``stats``, so every rule set is measured alone.

A rule::

    {"kind": "status" | "delay" | "drop" | "truncate" | "invalid_json",
     "path_prefix": "/api",        # default "": every path
     "methods": ["GET", "POST"],   # default null: every method
     "count": 3,                   # the next N matching requests; default null: unlimited
     "rate": 0.5,                  # probability per matching request (default 1.0), drawn from
                                   # one random.Random(seed) per rule set
     "status": 503,                # kind status only: any 4xx/5xx (default 503)
     "retry_after": 2,             # kind status only: integer seconds for a Retry-After header
     "delay_s": 1.5}               # kind delay only (required): seconds to wait before answering

Rules are tried in order; the first one that matches the method and path, still has a
remaining count and wins its rate draw applies (its count is spent only then). Deciding and
counting happen on the event loop without an ``await`` in between, under a lock for the control
endpoints' sake, so concurrent requests never spend one count twice.

For soak runs the initial rule set may come from the environment: ``JOBWAIT_FAULTS`` holds the
same JSON as the POST body (or a bare list of rules), or ``@/path/to/file.json``. It is read once
at startup and only with test controls on; an invalid value stops the service from starting.

How each kind is produced under uvicorn:

- ``status``: the middleware answers ``{"detail": "injected fault"}`` itself; the app never sees
  the request, so nothing changes server-side.
- ``delay``: the request body is read, ``asyncio.sleep(delay_s)``, then the request goes through
  normally; a client whose timeout is shorter gives up while the server still carries the request
  out (the nasty case for non-idempotent calls).
- ``drop``: the app never sees the request and no response byte is written. An ASGI app cannot
  ask for that: raising before ``http.response.start`` makes Starlette/uvicorn answer 500. So the
  middleware takes the connection's asyncio transport from uvicorn's request cycle (the bound
  ``send`` method's owner, or else the ``self`` of the ``run_asgi`` coroutine the current task
  runs: both uvicorn's httptools and h11 protocols keep it as ``cycle.transport``), sets
  ``SO_LINGER {on, 0}`` on its socket and calls ``transport.abort()``: the kernel answers with a
  TCP RST, so the client sees "connection reset by peer" (or "remote end closed connection"
  when it reads before the RST lands). The middleware then waits for uvicorn to notice the
  disconnect, so uvicorn neither sends its own 500 nor logs an error.
- ``truncate``: the request goes through (the change *does* happen server-side), the response is
  buffered, then its status, headers and full ``Content-Length`` go out with only the first half
  of the body, and the transport is closed (flushed, then FIN). Clients see an incomplete read.
  An empty body (e.g. 303 or 204) cannot be cut in half: then nothing at all is sent, like
  ``drop`` but after the server acted.
- ``invalid_json``: the request goes through; the response becomes status 200 with
  ``Content-Type: application/json`` and a body that is not JSON.

Without uvicorn (e.g. an in-process test client) there is no socket to drop: ``drop`` and
``truncate`` then fail the request with an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import socket
import struct
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request

from jobwait_reference_service.auth import require_api_key
from jobwait_reference_service.config import ServiceConfig
from jobwait_reference_service.json_body import JsonBodyError, parse_json

# Under uvicorn's error logger, so injected faults show in the service log at ``--log-level info``.
logger = logging.getLogger("uvicorn.error.faults")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

FAULT_KINDS: tuple[str, ...] = ("status", "delay", "drop", "truncate", "invalid_json")
CONTROL_PATH = "/_test/faults"
#: Paths no rule ever applies to: every test control and the readiness probe.
EXEMPT_PREFIXES: tuple[str, ...] = ("/_test/", "/healthz")
ENV_VAR = "JOBWAIT_FAULTS"
KEY_HEADER = "X-Test-Key"
INVALID_JSON_BODY = b"<html><body><h1>200 OK</h1>injected fault: this is not JSON</body></html>\n"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
MAX_DELAY_S = 600.0
# How long to wait for uvicorn to notice a connection we closed; it normally takes one loop turn.
DISCONNECT_WAIT_S = 5.0

_RULE_FIELDS = frozenset({"kind", "path_prefix", "methods", "count", "rate", "status", "retry_after", "delay_s"})
_SET_FIELDS = frozenset({"rules", "seed"})


class FaultRuleError(ValueError):
    """A rule set that cannot be used; the message names the bad field and value."""


@dataclass
class FaultRule:
    """One validated rule; ``remaining`` counts down from ``count`` (``None``: unlimited)."""

    kind: str
    path_prefix: str = ""
    methods: tuple[str, ...] | None = None
    count: int | None = None
    rate: float = 1.0
    status: int = 503
    retry_after: int | None = None
    delay_s: float | None = None
    remaining: int | None = None
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        """Whether this rule is about ``method path`` and has a count left."""
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.methods is not None and method not in self.methods:
            return False
        return path.startswith(self.path_prefix)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": self.kind,
            "path_prefix": self.path_prefix,
            "methods": list(self.methods) if self.methods is not None else None,
            "count": self.count,
            "rate": self.rate,
        }
        if self.kind == "status":
            data["status"] = self.status
            data["retry_after"] = self.retry_after
        if self.kind == "delay":
            data["delay_s"] = self.delay_s
        data["remaining"] = self.remaining
        data["fired"] = self.fired
        return data


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_rule(raw: Any, where: str = "rule") -> FaultRule:
    """Validate one rule.

    :param raw: The rule as decoded from JSON.
    :param where: Its position (``rules[2]``), used in error messages.
    :raises FaultRuleError: Naming the first bad field and its value.
    """
    if not isinstance(raw, dict):
        raise FaultRuleError(f"{where}: must be an object, got {raw!r}")
    unknown = sorted(set(raw) - _RULE_FIELDS)
    if unknown:
        raise FaultRuleError(f"{where}.{unknown[0]}: unknown field (allowed: {', '.join(sorted(_RULE_FIELDS))})")
    kind = raw.get("kind")
    if kind not in FAULT_KINDS:
        raise FaultRuleError(f"{where}.kind: {kind!r} is not one of {', '.join(FAULT_KINDS)}")
    rule = FaultRule(kind=kind)

    path_prefix = raw.get("path_prefix", "")
    if not isinstance(path_prefix, str) or (path_prefix and not path_prefix.startswith("/")):
        raise FaultRuleError(f"{where}.path_prefix: {path_prefix!r} must be '' or a path starting with '/'")
    rule.path_prefix = path_prefix

    methods = raw.get("methods")
    if methods is not None:
        if not isinstance(methods, list) or not methods:
            raise FaultRuleError(f"{where}.methods: {methods!r} must be a non-empty list of HTTP methods or null")
        for method in methods:
            if not isinstance(method, str) or method.upper() not in HTTP_METHODS:
                raise FaultRuleError(f"{where}.methods: {method!r} is not one of {', '.join(sorted(HTTP_METHODS))}")
        rule.methods = tuple(dict.fromkeys(m.upper() for m in methods))

    count = raw.get("count")
    if count is not None and (not _is_int(count) or count < 1):
        raise FaultRuleError(f"{where}.count: {count!r} must be an integer >= 1 or null (unlimited)")
    rule.count = rule.remaining = count

    rate = raw.get("rate", 1.0)
    if not _is_number(rate) or not 0.0 <= rate <= 1.0:
        raise FaultRuleError(f"{where}.rate: {rate!r} must be a number from 0.0 to 1.0")
    rule.rate = float(rate)

    for only_status in ("status", "retry_after"):
        if only_status in raw and kind != "status":
            raise FaultRuleError(f"{where}.{only_status}: only applies to kind 'status', not {kind!r}")
    if "delay_s" in raw and kind != "delay":
        raise FaultRuleError(f"{where}.delay_s: only applies to kind 'delay', not {kind!r}")

    if kind == "status":
        status = raw.get("status", 503)
        if not _is_int(status) or not 400 <= status <= 599:
            raise FaultRuleError(f"{where}.status: {status!r} must be a 4xx or 5xx status code")
        rule.status = status
        retry_after = raw.get("retry_after")
        # Retry-After is whole seconds on the wire (RFC 9110 delay-seconds).
        if retry_after is not None and (not _is_int(retry_after) or retry_after < 0):
            raise FaultRuleError(f"{where}.retry_after: {retry_after!r} must be a whole number of seconds >= 0")
        rule.retry_after = retry_after
    elif kind == "delay":
        delay_s = raw.get("delay_s")
        if not _is_number(delay_s) or not 0.0 < delay_s <= MAX_DELAY_S:
            raise FaultRuleError(f"{where}.delay_s: {delay_s!r} must be a number of seconds in (0, {MAX_DELAY_S:g}]")
        rule.delay_s = float(delay_s)
    return rule


def parse_rule_set(raw: Any) -> tuple[list[FaultRule], int | None]:
    """Validate a rule set: ``{"rules": [...], "seed": int | null}`` or a bare list of rules.

    :raises FaultRuleError: Naming the first bad field and its value.
    """
    if isinstance(raw, list):
        raw = {"rules": raw}
    if not isinstance(raw, dict):
        raise FaultRuleError(f"rule set: must be an object with 'rules', got {raw!r}")
    unknown = sorted(set(raw) - _SET_FIELDS)
    if unknown:
        raise FaultRuleError(f"{unknown[0]}: unknown field (allowed: rules, seed)")
    rules = raw.get("rules")
    if not isinstance(rules, list):
        raise FaultRuleError(f"rules: {rules!r} must be a list of rules")
    seed = raw.get("seed")
    if seed is not None and not _is_int(seed):
        raise FaultRuleError(f"seed: {seed!r} must be an integer or null")
    return [parse_rule(rule, f"rules[{i}]") for i, rule in enumerate(rules)], seed


def load_env_rule_set(value: str) -> tuple[list[FaultRule], int | None]:
    """Parse ``JOBWAIT_FAULTS``: JSON, or ``@path`` to a JSON file.

    :raises FaultRuleError: When the value is not valid JSON or not a valid rule set.
    """
    text = value.strip()
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as exc:
            raise FaultRuleError(f"{ENV_VAR}: cannot read {text[1:]!r}: {exc}") from exc
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise FaultRuleError(f"{ENV_VAR}: not JSON: {exc}") from exc
    try:
        return parse_rule_set(raw)
    except FaultRuleError as exc:
        raise FaultRuleError(f"{ENV_VAR}: {exc}") from exc


@dataclass
class FaultState:
    """The rule set and counters of one app, shared by its middleware and control router."""

    rules: list[FaultRule] = field(default_factory=list)
    seed: int | None = None
    requests: int = 0
    injected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAULT_KINDS, 0))
    _rng: random.Random = field(default_factory=random.Random, repr=False)
    # Control endpoints may run in a worker thread; the middleware runs on the event loop.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def replace(self, rules: list[FaultRule], seed: int | None = None) -> None:
        """Install a new rule set and start its stats from zero."""
        with self._lock:
            self.rules = rules
            self.seed = seed
            self._rng = random.Random(seed)
            self.requests = 0
            self.injected = dict.fromkeys(FAULT_KINDS, 0)

    def clear(self) -> None:
        self.replace([], None)

    def pick(self, method: str, path: str) -> FaultRule | None:
        """Count one request and return the rule that fires for it, spending its count."""
        with self._lock:
            self.requests += 1
            for rule in self.rules:
                if not rule.matches(method, path):
                    continue
                if rule.rate < 1.0 and self._rng.random() >= rule.rate:
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                rule.fired += 1
                self.injected[rule.kind] += 1
                return rule
            return None

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "rules": [rule.to_json() for rule in self.rules],
                "seed": self.seed,
                "stats": {
                    "requests": self.requests,
                    "injected": dict(self.injected),
                    "total_injected": sum(self.injected.values()),
                },
            }


def _find_transport(send: Send) -> asyncio.Transport | None:
    """The asyncio transport of the connection this request came on, from uvicorn's request cycle.

    ASGI offers no way to close a connection without a response, so this reaches into uvicorn:
    its ``RequestResponseCycle`` holds ``transport``, and either ``send`` is its bound method or
    the current task runs its ``run_asgi`` coroutine (Starlette wraps ``send`` in closures).
    """
    candidates: list[Any] = [getattr(send, "__self__", None)]
    task = asyncio.current_task()
    coro: Any = task.get_coro() if task is not None else None
    for _ in range(8):  # the task's outer coroutines only: run_asgi is the first one under uvicorn
        frame = getattr(coro, "cr_frame", None)
        if frame is None:
            break
        candidates.append(frame.f_locals.get("self"))
        coro = getattr(coro, "cr_await", None)
    for owner in candidates:
        transport = getattr(owner, "transport", None)
        if callable(getattr(transport, "abort", None)) and callable(getattr(transport, "get_extra_info", None)):
            return transport
    return None


async def _wait_for_disconnect(receive: Receive) -> None:
    """Let uvicorn see the connection is gone, so it neither answers 500 nor logs an error."""

    async def drain() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    try:
        await asyncio.wait_for(drain(), DISCONNECT_WAIT_S)
    except (TimeoutError, OSError, RuntimeError):
        logger.warning("fault injection: uvicorn did not report the closed connection in time")


async def _buffered_receive(receive: Receive) -> Receive:
    """Read the whole request body now; return a ``receive`` that hands it over, then defers."""
    chunks: list[bytes] = []
    pending: Message | None = None  # a disconnect that came before the body was complete
    while True:
        message = await receive()
        if message["type"] != "http.request":
            pending = message
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": pending is not None}
        if pending is not None:
            return pending
        return await receive()

    return replay


class FaultInjectionMiddleware:
    """Pure-ASGI middleware that applies the first firing rule of ``state`` to each request.

    :param app: The wrapped ASGI app.
    :param state: The rule set and counters (also served by the control router).
    """

    def __init__(self, app: ASGIApp, state: FaultState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path == "/_test" or path.startswith(EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        rule = self.state.pick(method, path)
        if rule is None:
            await self.app(scope, receive, send)
            return
        logger.info("fault injection: %s on %s %s", rule.kind, method, path)
        if rule.kind == "status":
            await self._status(rule, send)
        elif rule.kind == "delay":
            assert rule.delay_s is not None
            # Read the request first, as a slow server would have it already: when the client
            # times out meanwhile, the app still carries the request out (uvicorn would otherwise
            # hand the app a disconnect instead of the body it had received).
            replay = await _buffered_receive(receive)
            await asyncio.sleep(rule.delay_s)
            await self.app(scope, replay, send)
        elif rule.kind == "drop":
            await self._drop(receive, send)
        elif rule.kind == "truncate":
            await self._truncate(scope, receive, send)
        else:
            await self._invalid_json(scope, receive, send)

    @staticmethod
    async def _status(rule: FaultRule, send: Send) -> None:
        body = json.dumps({"detail": "injected fault"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if rule.retry_after is not None:
            headers.append((b"retry-after", str(rule.retry_after).encode()))
        await send({"type": "http.response.start", "status": rule.status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    @staticmethod
    def _transport(send: Send) -> asyncio.Transport:
        transport = _find_transport(send)
        if transport is None:
            raise RuntimeError("fault injection: no socket to close (drop/truncate need uvicorn)")
        return transport

    async def _drop(self, receive: Receive, send: Send) -> None:
        transport = self._transport(send)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0: close() discards the connection with an RST instead of an orderly FIN.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        await _wait_for_disconnect(receive)

    async def _buffered(self, scope: Scope, receive: Receive) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Run the app and return its whole response instead of sending it."""
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        if start is None:
            raise RuntimeError("fault injection: the app returned without a response")
        return int(start["status"]), list(start.get("headers", [])), b"".join(chunks)

    async def _truncate(self, scope: Scope, receive: Receive, send: Send) -> None:
        status, headers, body = await self._buffered(scope, receive)
        transport = self._transport(send)
        if not body:
            transport.abort()
            await _wait_for_disconnect(receive)
            return
        headers = [(k, v) for k, v in headers if k.lower() not in (b"content-length", b"transfer-encoding")]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        # close(), not abort(): the half body must reach the client before the FIN.
        transport.close()
        await _wait_for_disconnect(receive)

    async def _invalid_json(self, scope: Scope, receive: Receive, send: Send) -> None:
        _, headers, _ = await self._buffered(scope, receive)
        replaced = {b"content-length", b"transfer-encoding", b"content-type", b"content-encoding"}
        headers = [(k, v) for k, v in headers if k.lower() not in replaced]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(INVALID_JSON_BODY)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": INVALID_JSON_BODY, "more_body": False})


def control_router(state: FaultState, api_key: str) -> APIRouter:
    """The ``/_test/faults`` endpoints, guarded by ``X-Test-Key``.

    :param state: The rule set they read and replace.
    :param api_key: The key ``X-Test-Key`` must carry.
    """
    router = APIRouter(
        prefix=CONTROL_PATH, dependencies=[Depends(require_api_key(api_key, KEY_HEADER))], include_in_schema=False
    )

    # async endpoints: they run on the event loop, between the middleware's decisions.
    @router.get("")
    async def get_faults() -> dict[str, Any]:
        return state.snapshot()

    @router.post("")
    async def set_faults(request: Request) -> dict[str, Any]:
        try:
            payload = parse_json(await request.body())
        except JsonBodyError as exc:
            raise HTTPException(status_code=400, detail=f"body is not JSON: {exc}") from exc
        try:
            rules, seed = parse_rule_set(payload)
        except FaultRuleError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        state.replace(rules, seed)
        return state.snapshot()

    @router.delete("")
    async def clear_faults() -> dict[str, Any]:
        state.clear()
        return state.snapshot()

    return router


def install_fault_injection(app: FastAPI, config: ServiceConfig) -> None:
    """Add the fault middleware and the control router to ``app`` (only call with test controls on).

    Reads the initial rule set from ``JOBWAIT_FAULTS`` when set.

    :param app: The service app, before it starts.
    :param config: Its settings; ``api_key`` guards the control API.
    :raises FaultRuleError: When ``JOBWAIT_FAULTS`` is not a valid rule set.
    """
    state = FaultState()
    env_value = os.environ.get(ENV_VAR, "").strip()
    if env_value:
        state.replace(*load_env_rule_set(env_value))
        logger.warning("fault injection: %d rule(s) from %s", len(state.rules), ENV_VAR)
    # Added last, so it wraps every other user middleware: faults apply before any of them.
    app.add_middleware(FaultInjectionMiddleware, state=state)
    app.include_router(control_router(state, config.api_key))
    app.state.faults = state
