"""Run the reference service as a child process: for tests, the demo and benchmarks."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType

from jobwait_reference_service.config import RESULTS_MOUNTS

#: Where each API family lives on this service (``ext`` profile), relative to ``base_url``: the base
#: URL a client of the real service would be given (CHIME's results store has a base path of its own).
FAMILY_PATHS = {"modzy": "", "tensorbay": "", "evo": "", "chime_results": RESULTS_MOUNTS["ext"]}


def family_paths(profile: str = "ext") -> dict[str, str]:
    """``FAMILY_PATHS`` of a profile (the results store moves with it)."""
    return {**FAMILY_PATHS, "chime_results": RESULTS_MOUNTS[profile]}


#: The default Airflow connection id of each family's connection type in airflow-jobwait.
DEFAULT_CONN_IDS = {
    "modzy": "modzy_default",
    "tensorbay": "tensorbay_default",
    "evo": "evo_default",
    "chime_results": "chime_results_default",
}


def connection_env(
    base_url: str, api_key: str, extra: Mapping[str, Mapping[str, object]] | None = None, profile: str = "ext"
) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` variables pointing every family's default connection at a service.

    Plain JSON, as Airflow reads connections from the environment; nothing here imports Airflow.

    :param base_url: The service's base URL.
    :param api_key: Its key.
    :param extra: Per family, the connection's extra (e.g. ``{"evo": {"org_id": ...}}``).
    :param profile: The service's profile (where its results store is mounted).
    """
    paths = family_paths(profile)
    env = {}
    for family, conn_id in DEFAULT_CONN_IDS.items():
        conn = {
            "conn_type": family,
            "host": base_url + paths[family],
            "password": api_key,
            "extra": dict((extra or {}).get(family, {})),
        }
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
    return env


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> Callable[[], None] | None:
    """On Linux, a ``preexec_fn`` that has the kernel end the service when the process that started
    it dies (``PR_SET_PDEATHSIG``): a test process killed outright (``make mutation`` kills the
    forked child of a mutant that hangs) leaves no service behind. Only from the main thread: the
    signal follows the thread that started the child, and the main thread lives as long as the
    process."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def set_death_signal() -> None:
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return set_death_signal


class ServiceProcess:
    """A ``jobwait-server`` child process on loopback, restartable on the same SQLite file.

    :param api_key: Key the service accepts (passed by environment, never on the command line).
    :param db_path: SQLite file; a fresh one in a temporary folder when omitted.
    :param port: Port to listen on; a free one when omitted. Kept across restarts.
    :param test_controls: Start with ``--test-controls``.
    :param startup_timeout: Seconds to wait for ``/healthz`` before giving up.
    :param extra_args: More command-line arguments for the service.
    :param env: Extra environment variables of the child (e.g. ``JOBWAIT_FAULTS``), on top of this
        process's own. A mutable dict: change it between restarts to start the next life differently.
    :param oauth_client_id: Start the token endpoint (``POST /connect/token``) for this OAuth2 client.
    :param oauth_client_secret: That client's secret (passed by environment, like the key).
    :param token_ttl: Lifetime of issued access tokens in seconds (``--token-ttl``); the service's
        default (3600) when omitted, 0 for tokens that never expire.
    :param profile: ``ext`` or ``real`` (``--profile``).
    :param rate_limit: Requests a second per key (``--rate-limit``); the profile's default when omitted.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        api_key: str,
        db_path: str | os.PathLike[str] | None = None,
        port: int | None = None,
        test_controls: bool = False,
        startup_timeout: float = 30.0,
        extra_args: tuple[str, ...] = (),
        env: Mapping[str, str] | None = None,
        oauth_client_id: str | None = None,
        oauth_client_secret: str | None = None,
        token_ttl: float | None = None,
        profile: str = "ext",
        rate_limit: float | None = None,
    ) -> None:
        if (oauth_client_id is None) != (oauth_client_secret is None):
            raise ValueError("oauth_client_id and oauth_client_secret go together: pass both or neither")
        self._tmp = tempfile.TemporaryDirectory(prefix="jobwait-service-") if db_path is None else None
        self.workdir = Path(self._tmp.name) if self._tmp else Path(db_path).parent  # type: ignore[arg-type]
        self.db_path = Path(db_path) if db_path is not None else self.workdir / "jobs.sqlite"
        self.log_path = self.workdir / f"service-{os.getpid()}-{id(self)}.log"
        self.api_key = api_key
        self.port = port or free_port(self.host)
        self.test_controls = test_controls
        self.startup_timeout = startup_timeout
        self.extra_args = extra_args
        self.env: dict[str, str] = dict(env or {})
        self.oauth_client_id = oauth_client_id
        self.oauth_client_secret = oauth_client_secret
        self.token_ttl = token_ttl
        self.profile = profile
        self.rate_limit = rate_limit
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def family_url(self, family: str) -> str:
        """The base URL of one API family (``modzy``, ``tensorbay``, ``evo``, ``chime_results``)."""
        return self.base_url + family_paths(self.profile)[family]

    def connection_env(self, extra: Mapping[str, Mapping[str, object]] | None = None) -> dict[str, str]:
        """``connection_env`` for this service and its key."""
        return connection_env(self.base_url, self.api_key, extra, self.profile)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> ServiceProcess:
        """Start the process and wait until it answers ``/healthz``."""
        if self._proc is not None and self._proc.poll() is None:
            raise RuntimeError("the service is already running")
        args = [sys.executable, "-m", "jobwait_reference_service", "--host", self.host, "--port", str(self.port)]
        args += ["--db", str(self.db_path), *self.extra_args]
        if self.test_controls:
            args.append("--test-controls")
        if self.oauth_client_id is not None:
            args += ["--oauth-client-id", self.oauth_client_id]
        if self.token_ttl is not None:
            args += ["--token-ttl", repr(float(self.token_ttl))]
        args += ["--profile", self.profile]
        if self.rate_limit is not None:
            args += ["--rate-limit", repr(float(self.rate_limit))]
        env = {**os.environ, **self.env, "JOBWAIT_API_KEY": self.api_key}
        if self.oauth_client_secret is not None:
            env["JOBWAIT_OAUTH_CLIENT_SECRET"] = self.oauth_client_secret
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed by it
        try:
            self._proc = subprocess.Popen(
                args, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent()
            )
        finally:
            log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(f"the service exited with {self._proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"the service did not answer within {self.startup_timeout}s:\n{self.log_tail()}")

    def stop(self, kill: bool = False, timeout: float = 10.0) -> None:
        """Stop the process: SIGTERM (graceful) or SIGKILL (``kill=True``, a crash)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)

    def restart(self, kill: bool = False) -> float:
        """Stop and start again on the same port and SQLite file.

        :return: Seconds the service was unavailable (from the stop until ``/healthz`` answered).
        """
        began = time.monotonic()
        self.stop(kill=kill)
        self.start()
        return time.monotonic() - began

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
