"""A real Airflow deployment on one machine, for the end-to-end tests and the benchmarks.

``Deployment`` starts, in a temporary folder and on loopback only: a private PostgreSQL cluster,
the reference job service, ``airflow db migrate``, the API server, the dag-processor, the
scheduler (LocalExecutor, ``parallelism=2``) and two triggerers. Each process runs in its own
session under ``timeout -s KILL`` (so it dies at the latest when the deployment's lifetime ends,
even if the test run itself is killed), logs to its own file, and is stopped with its whole
process group. ``Airflow`` talks to the deployment the way users do: the public REST API.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import requests
from jobwait_reference_service.process import connection_env

REPO = Path(__file__).resolve().parents[2]
E2E_DAGS = Path(__file__).resolve().parent / "dags"
HOST = "127.0.0.1"
API_KEY = "pubkey123.s3cr3t-e2e-key-never-logged"
PARALLELISM = 2
#: Poll interval of the example results-store watcher (``dags_examples/results_events.py`` reads
#: ``JOBWAIT_FRB_POLL_INTERVAL`` when parsed) and of the e2e dataset watcher (seconds).
EVENTS_POLL_INTERVAL = 5
#: Everything the deployment starts is SIGKILLed after this long whatever happens (seconds).
DEFAULT_LIFETIME = float(os.environ.get("JOBWAIT_E2E_LIFETIME", "2400"))

T = TypeVar("T")


class HarnessError(RuntimeError):
    """The deployment could not be started or did not behave in time."""


class ProcessDied(HarnessError):
    """A process of the deployment exited: no point waiting any longer."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, check: Callable[[], T | None], timeout: float, interval: float = 0.5) -> T:
    """Poll ``check`` until it returns something truthy; raise ``HarnessError`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except ProcessDied:
            raise
        except (requests.RequestException, OSError, HarnessError) as err:
            last_error = err
        if time.monotonic() >= deadline:
            raise HarnessError(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last_error!r})")
        time.sleep(interval)


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


@dataclass
class Proc:
    """One long-running process in its own session, logging to ``log``."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    lifetime: float
    user: str | None = None
    stop_signal: int = signal.SIGTERM
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> Proc:
        timeout_bin = shutil.which("timeout")
        args = [timeout_bin, "-s", "KILL", f"{int(self.lifetime)}", *self.args] if timeout_bin else self.args
        with open(self.log, "ab") as log:
            log.write(f"\n==== {time.strftime('%H:%M:%S')} start {self.name}: {' '.join(self.args)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                args,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.log.parent,
                **_as_user(self.user),
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def check_alive(self) -> None:
        if self.popen is not None and self.popen.poll() is not None:
            raise ProcessDied(f"{self.name} exited with {self.popen.returncode}:\n{tail(self.log)}")

    def kill(self) -> None:
        """``kill -9`` the process and everything it started (a crash)."""
        self._signal_group(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait(timeout=30)

    def pause(self) -> None:
        """Freeze the process group (SIGSTOP): a stall, e.g. a long GC pause or a hung host."""
        self._signal_group(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal_group(signal.SIGCONT)

    def stop(self, timeout: float = 20.0) -> None:
        """Stop gracefully, then SIGKILL the group after ``timeout`` seconds."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self._signal_group(signal.SIGCONT)
            self._signal_group(self.stop_signal)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        # Children that outlived the leader (e.g. task runners) go with the group.
        self._signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)

    def _signal_group(self, sig: int) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)


def _as_user(user: str | None) -> dict[str, Any]:
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def postgres_bindir() -> Path:
    """Folder of ``initdb``/``postgres``: on PATH, else Debian's ``/usr/lib/postgresql/<v>/bin``."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not candidates:
        raise HarnessError(
            "PostgreSQL server binaries not found (initdb); install the Debian package: "
            "apt-get install postgresql (make test does this when it is missing)"
        )
    return Path(candidates[-1]).parent


class Postgres:
    """A private cluster in ``root``: trust auth for user ``airflow``, loopback TCP only.

    ``settings``: more server settings (``-c name=value``), e.g.
    ``{"shared_preload_libraries": "pg_stat_statements"}``.
    """

    def __init__(self, root: Path, logs: Path, lifetime: float, settings: Mapping[str, str] | None = None) -> None:
        self.root = root
        self.data = root / "pgdata"
        self.port = free_port()
        self.bindir = postgres_bindir()
        # PostgreSQL refuses to run as root: run it as the ``postgres`` system user then.
        self.user = "postgres" if os.geteuid() == 0 else None
        self.proc = Proc(
            "postgres",
            [
                str(self.bindir / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-c",
                f"listen_addresses={HOST}",
                "-c",
                f"unix_socket_directories={self.root}",
                "-c",
                "max_connections=300",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "shared_buffers=128MB",
                *(arg for name, value in (settings or {}).items() for arg in ("-c", f"{name}={value}")),
            ],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C", "LC_ALL": "C"},
            log=logs / "postgres.log",
            lifetime=lifetime,
            user=self.user,
            stop_signal=signal.SIGINT,  # fast shutdown
        )

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://airflow@{HOST}:{self.port}/airflow"

    def start(self) -> None:
        self.root.mkdir(mode=0o755)
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        done = subprocess.run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "airflow",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=self.proc.env,
            cwd=self.root,
            **_as_user(self.user),
        )
        if done.returncode != 0:
            raise HarnessError(f"initdb failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        self.proc.start()
        wait_for("PostgreSQL to accept connections", self._create_database, timeout=60)

    def _create_database(self) -> bool:
        import psycopg2

        self.proc.check_alive()
        try:
            conn = psycopg2.connect(host=HOST, port=self.port, user="airflow", dbname="postgres", connect_timeout=3)
        except psycopg2.OperationalError:
            return False
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("CREATE DATABASE airflow")
        finally:
            conn.close()
        return True

    def execute(self, sql: str) -> None:
        """Run a statement that returns no rows (``CREATE ROLE``, ``CREATE EXTENSION``), autocommit."""
        import psycopg2

        conn = psycopg2.connect(host=HOST, port=self.port, user="airflow", dbname="airflow", connect_timeout=5)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Read the metadata DB directly (for what the REST API does not expose, e.g. trigger rows)."""
        import psycopg2

        conn = psycopg2.connect(host=HOST, port=self.port, user="airflow", dbname="airflow", connect_timeout=5)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return list(cur.fetchall())
        finally:
            conn.close()


class Service:
    """REST calls on the reference job service (inference jobs, ``/api``)."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"ApiKey {api_key}"

    def jobs(self, status: str = "all") -> list[dict[str, Any]]:
        """Every job (``status``: ``all``, ``pending`` = SUBMITTED/IN_PROGRESS, ``terminated``)."""
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            resp = self.session.get(
                f"{self.base_url}/api/jobs/history",
                params={"status": status, "page": page, "per-page": 1000},
                timeout=10,
            )
            resp.raise_for_status()
            batch = resp.json()
            found += batch
            if len(batch) < 1000:
                return found
            page += 1

    def in_progress(self) -> int:
        return len(self.jobs("pending"))

    def job(self, job_id: str) -> dict[str, Any]:
        resp = self.session.get(f"{self.base_url}/api/jobs/{job_id}", timeout=10)
        resp.raise_for_status()
        return resp.json()


class Airflow:
    """The public REST API (``/api/v2``), logged in as a user of the simple auth manager."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url
        self.username = username
        self.password = password
        self.session = requests.Session()

    def login(self) -> None:
        resp = self.session.post(
            f"{self.base_url}/auth/token", json={"username": self.username, "password": self.password}, timeout=10
        )
        resp.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", 30)
        for attempt in range(2):
            resp = self.session.request(method, f"{self.base_url}/api/v2{path}", **kwargs)
            if resp.status_code == 401 and attempt == 0:
                self.login()
                continue
            if resp.status_code >= 400:
                raise HarnessError(f"{method} {path} -> {resp.status_code}: {resp.text[:500]}")
            return resp.json() if resp.content else None
        raise AssertionError("unreachable")

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    # -- DAGs and runs

    def wait_dag(self, dag_id: str, timeout: float = 180, check: Callable[[], None] | None = None) -> None:
        """Wait until the dag-processor has parsed ``dag_id``, then unpause it."""

        def parsed() -> bool:
            if check:
                check()
            try:
                self.get(f"/dags/{dag_id}")
            except HarnessError as err:
                if "-> 404" in str(err):
                    return False
                raise
            return True

        wait_for(f"DAG {dag_id} to be parsed", parsed, timeout)
        self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def reparse(self, dag_id: str) -> None:
        """Ask the dag-processor to parse ``dag_id``'s file now (an asset watcher's trigger is
        created only by a parse that sees its DAG unpaused)."""
        token = self.get(f"/dags/{dag_id}")["file_token"]
        self.request("PUT", f"/parseDagFile/{token}")

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        run = self.request("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})
        return str(run["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.get(f"/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def wait_run(
        self,
        dag_id: str,
        run_id: str,
        timeout: float,
        on_poll: Callable[[], None] | None = None,
        interval: float = 1.0,
    ) -> str:
        """Wait until the run is finished; return its state. ``on_poll`` runs before every look."""

        def finished() -> str | None:
            if on_poll:
                on_poll()
            state = self.run_state(dag_id, run_id)
            return state if state in ("success", "failed") else None

        return wait_for(f"run {dag_id}/{run_id} to finish", finished, timeout, interval=interval)

    def task_instances(self, dag_id: str = "~", run_id: str = "~", **filters: Any) -> list[dict[str, Any]]:
        """Task instances (every map index), newest state; filters as the REST API takes them."""
        found: list[dict[str, Any]] = []
        while True:
            page = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=100, offset=len(found), **filters)
            found += page["task_instances"]
            if len(found) >= page["total_entries"] or not page["task_instances"]:
                return found

    def count_tis(self, state: str) -> int:
        """How many task instances (of any DAG) are in ``state`` right now."""
        return int(self.get("/dags/~/dagRuns/~/taskInstances", state=state, limit=1)["total_entries"])

    def task_instance(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
        suffix = "" if map_index < 0 else f"/{map_index}"
        return dict(self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}{suffix}"))

    def tries(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> list[dict[str, Any]]:
        suffix = "" if map_index < 0 else f"/{map_index}"
        return list(
            self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}{suffix}/tries")["task_instances"]
        )

    def set_state(self, dag_id: str, run_id: str, task_id: str, map_index: int, state: str) -> None:
        """Mark a task instance as a user does in the UI (``failed``, ``success``, ``skipped``)."""
        suffix = "" if map_index < 0 else f"/{map_index}"
        self.request(
            "PATCH", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}{suffix}", json={"new_state": state}
        )

    def task_log(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1, try_number: int = 1) -> list[str]:
        """A try's log as the UI shows it (worker and triggerer parts), one event text per line."""
        entries = self.get(
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            map_index=map_index,
            full_content=True,
        )["content"]
        return [entry.get("event", "") if isinstance(entry, dict) else str(entry) for entry in entries]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        entry = self.get(
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
            map_index=map_index,
            deserialize=True,
            stringify=False,
        )
        return entry["value"]


class Deployment:
    """The whole deployment; ``start()`` then ``stop()`` (or use it as a context manager).

    The keyword-only knobs are for the benchmarks; their defaults are what the e2e tests run.

    :param triggerers: How many triggerers to start (``triggerer-1``, ``triggerer-2``, ...).
    :param env: More environment for every Airflow process, applied last (e.g.
        ``AIRFLOW__TRIGGERER__CAPACITY``); also seen by the DAG files when they are parsed.
    :param dag_folders: More DAG bundles, ``{bundle name: folder}``, besides the examples and e2e ones.
    :param dag_ids: The DAGs to wait for (parsed, then unpaused) before ``start()`` returns.
    :param postgres_settings: More PostgreSQL server settings (see ``Postgres``).
    :param triggerer_db_role: Connect the triggerers to the metadata DB as this role (created, a
        member of ``airflow``), so that ``pg_stat_statements`` tells their statements apart.
    """

    dag_ids: Sequence[str] = (
        "jobwait_e2e_fanout",
        "jobwait_e2e_fanout_poke",
        "jobwait_e2e_retry",
        "jobwait_e2e_start_from_trigger",
    )

    def __init__(
        self,
        lifetime: float = DEFAULT_LIFETIME,
        keep: bool = False,
        *,
        triggerers: int = 2,
        env: Mapping[str, str] | None = None,
        dag_folders: Mapping[str, Path] | None = None,
        dag_ids: Sequence[str] | None = None,
        postgres_settings: Mapping[str, str] | None = None,
        triggerer_db_role: str | None = None,
    ) -> None:
        self.lifetime = lifetime
        self.keep = keep
        self.triggerers = triggerers
        self.extra_env = dict(env or {})
        self.dag_folders = dict(dag_folders or {})
        if dag_ids is not None:
            self.dag_ids = tuple(dag_ids)
        self.triggerer_db_role = triggerer_db_role
        self.root = Path(tempfile.mkdtemp(prefix="jobwait-e2e-"))
        os.chmod(self.root, 0o755)  # the postgres user must reach its data folder below
        self.logs = self.root / "logs"
        self.logs.mkdir()
        self.home = self.root / "airflow"
        self.home.mkdir()
        self.started_at = time.monotonic()
        self.postgres = Postgres(self.root / "pg", self.logs, lifetime, postgres_settings)
        self.service_port = free_port()
        self.api_port = free_port()
        self.password = secrets.token_urlsafe(16)
        self.procs: dict[str, Proc] = {}
        self.service = Service(f"http://{HOST}:{self.service_port}", API_KEY)
        self.airflow = Airflow(f"http://{HOST}:{self.api_port}", "admin", self.password)
        #: TriggererJob id of each triggerer process (``triggerer-1``, ``triggerer-2``).
        self.triggerer_job_ids: dict[str, int] = {}

    # -- environment

    def airflow_env(self) -> dict[str, str]:
        """A clean environment: nothing of the caller's Airflow configuration leaks in."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        from cryptography.fernet import Fernet

        bundles = [
            {
                "name": "examples",
                "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": str(REPO / "dags_examples")},
            },
            {
                "name": "e2e",
                "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": str(E2E_DAGS)},
            },
            *(
                {
                    "name": name,
                    "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                    "kwargs": {"path": str(folder)},
                }
                for name, folder in self.dag_folders.items()
            ),
        ]
        if not hasattr(self, "_secrets"):
            self._secrets = {
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            }
        api = f"http://{HOST}:{self.api_port}"
        env.update(self._secrets)
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.postgres.url,
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(PARALLELISM),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(E2E_DAGS),
                "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "120",
                "AIRFLOW__CORE__AUTH_MANAGER": (
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
                "AIRFLOW__API__HOST": HOST,
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__BASE_URL": api,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__EXPOSE_STACKTRACE": "True",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
                # Fast scheduling and a fast takeover of a dead triggerer's triggers.
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
                "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                # A triggerer silent this long loses its triggers to the other one. Not lower: a triggerer
                # blocks for several seconds when it first renders a start_from_trigger task (it builds
                # an in-process execution API), and a loaded 2-core machine stretches that.
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "20",
                # The task supervisor notices its task process's exit at the latest after this long
                # (the default 5 s adds up to 5 s to every task when the exit races the socket EOF).
                "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
                # A task whose whole worker died is failed (and retried) after this long, not 5 minutes.
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                # The Test button of the connection list and form (off by default).
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
                **connection_env(self.service.base_url, API_KEY),
                # One connection per status mode (the task-log test): each its own status poller.
                **{
                    f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(
                        {
                            "conn_type": "modzy",
                            "host": self.service.base_url,
                            "password": API_KEY,
                            "extra": {"status_mode": mode},
                        }
                    )
                    for mode, conn_id in (
                        ("batch", "jobwait_batch"),
                        ("auto", "jobwait_watch"),
                        ("per_job", "jobwait_per_job"),
                    )
                },
                "AIRFLOW_CONN_JOBWAIT_HTTP": json.dumps(
                    {
                        "conn_type": "http",
                        "host": HOST,
                        "port": self.service_port,
                        "schema": "http",
                        "extra": {"Authorization": f"ApiKey {API_KEY}"},
                    }
                ),
                # The example results-store watcher polls this often (60 s otherwise).
                "JOBWAIT_FRB_POLL_INTERVAL": str(EVENTS_POLL_INTERVAL),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def _proc(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Proc:
        proc = Proc(name, args, env or self.airflow_env(), self.logs / f"{name}.log", self.remaining())
        self.procs[name] = proc
        return proc.start()

    def remaining(self) -> float:
        return max(30.0, self.lifetime - (time.monotonic() - self.started_at))

    # -- lifecycle

    def start(self) -> Deployment:
        try:
            self._start()
        except BaseException as err:
            report = self.report()
            self.keep = True  # the logs stay for a post-mortem
            self.stop()
            if isinstance(err, Exception):
                raise HarnessError(f"the deployment did not start: {err}\n{report}") from err
            raise
        return self

    def _start(self) -> None:
        self.postgres.start()
        self.procs["postgres"] = self.postgres.proc
        self._proc(
            "service",
            [
                sys.executable,
                "-m",
                "jobwait_reference_service",
                "--host",
                HOST,
                "--port",
                str(self.service_port),
                "--db",
                str(self.root / "service.sqlite"),
                "--test-controls",
            ],
            env={**{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}, "JOBWAIT_API_KEY": API_KEY},
        )
        (self.home / "passwords.json").write_text(json.dumps({"admin": self.password}))
        self._install_plugin_shim()
        airflow = [sys.executable, "-m", "airflow"]
        migrate = subprocess.run(
            [*airflow, "db", "migrate"],
            env=self.airflow_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        (self.logs / "db-migrate.log").write_text(migrate.stdout + migrate.stderr)
        if migrate.returncode != 0:
            log = tail(self.logs / "db-migrate.log")
            raise HarnessError(f"airflow db migrate failed ({migrate.returncode}):\n{log}")
        if self.triggerer_db_role:
            self.postgres.execute(f'CREATE ROLE "{self.triggerer_db_role}" LOGIN IN ROLE airflow')
        wait_for("the job service", lambda: requests.get(f"{self.service.base_url}/healthz", timeout=2).ok, 30)
        self._proc("api-server", [*airflow, "api-server", "--host", HOST, "--port", str(self.api_port), "-w", "1"])
        self._proc("dag-processor", [*airflow, "dag-processor"])
        self._proc("scheduler", [*airflow, "scheduler", "--skip-serve-logs"])
        for number in range(1, self.triggerers + 1):
            self.start_triggerer(f"triggerer-{number}")
        wait_for("the API server", self._api_ready, 120)
        for dag_id in self.dag_ids:
            self.airflow.wait_dag(dag_id, timeout=180, check=self.check_alive)

    def _install_plugin_shim(self) -> None:
        """Load the provider's Airflow plugin where the installed metadata predates its entry point.

        An editable install keeps the entry points of when it was made; this checkout's plugin
        (``airflow.plugins`` in pyproject.toml) is then loaded from the plugins folder instead, as
        the entry point would load it. Never both: Airflow skips a second plugin of one name.
        """
        from importlib.metadata import entry_points

        if any(ep.name == "airflow_jobwait" for ep in entry_points(group="airflow.plugins")):
            return
        plugins = self.home / "plugins"
        plugins.mkdir(exist_ok=True)
        (plugins / "jobwait_plugin.py").write_text("from airflow_jobwait.plugins import JobWaitPlugin  # noqa: F401\n")

    def _api_ready(self) -> bool:
        self.check_alive()
        self.airflow.login()
        return True

    def start_triggerer(self, name: str) -> None:
        """Start a triggerer and learn its TriggererJob id (the ``trigger.triggerer_id`` it writes)."""
        known = {row[0] for row in self._triggerer_jobs()}
        env = self.airflow_env()
        if self.triggerer_db_role:
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = self.postgres.url.replace(
                "//airflow@", f"//{self.triggerer_db_role}@", 1
            )
        self._proc(name, [sys.executable, "-m", "airflow", "triggerer", "--skip-serve-logs"], env)

        def new_job() -> int | None:
            self.procs[name].check_alive()
            fresh = [row[0] for row in self._triggerer_jobs() if row[0] not in known]
            return fresh[0] if fresh else None

        # Started one after the other, so the new TriggererJob row is this process's.
        self.triggerer_job_ids[name] = wait_for(f"{name} to register", new_job, 120)

    def _triggerer_jobs(self) -> list[tuple[Any, ...]]:
        return self.postgres.query("SELECT id FROM job WHERE job_type = 'TriggererJob'")

    def check_alive(self) -> None:
        for proc in self.procs.values():
            proc.check_alive()

    def stop(self) -> None:
        order = ["scheduler", "triggerer", "dag-processor", "api-server", "service", "postgres"]

        def rank(name: str) -> int:
            kind = "triggerer" if name.startswith("triggerer-") else name
            return order.index(kind) if kind in order else -1

        for name in sorted(self.procs, key=rank):
            self.procs[name].stop()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Deployment:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- diagnostics

    def report(self, lines: int = 30) -> str:
        """The tail of every process log (printed when a test fails)."""
        parts = [f"deployment in {self.root}"]
        for log in sorted(self.logs.glob("*.log")):
            parts.append(f"---- {log.name} (last {lines} lines)\n{tail(log, lines)}")
        return "\n".join(parts)

    # -- helpers for the tests

    def triggers_of(self, dag_id: str, run_id: str) -> dict[int, int | None]:
        """``{map_index: triggerer_id}`` of the run's deferred task instances."""
        rows = self.postgres.query(
            "SELECT ti.map_index, t.triggerer_id FROM task_instance ti JOIN trigger t ON t.id = ti.trigger_id "
            "WHERE ti.dag_id = %s AND ti.run_id = %s",
            dag_id,
            run_id,
        )
        return {int(index): triggerer for index, triggerer in rows}

    def watcher_trigger(self, watcher: str) -> tuple[int, str | None] | None:
        """The trigger of the asset watcher named ``watcher`` and the triggerer running it.

        :param watcher: The ``AssetWatcher``'s name.
        :return: ``(trigger id, triggerer name)`` (name ``None`` while no live triggerer of this
            harness holds it), or ``None`` while no parse has created the trigger yet.
        """
        rows = self.postgres.query(
            "SELECT t.id, t.triggerer_id FROM trigger t JOIN asset_watcher w ON w.trigger_id = t.id WHERE w.name = %s",
            watcher,
        )
        if not rows:
            return None
        trigger_id, triggerer_id = rows[0]
        names = [name for name, job_id in self.triggerer_job_ids.items() if job_id == triggerer_id]
        return int(trigger_id), names[0] if names else None

    def task_process_pids(self, ti_id: str) -> list[int]:
        """Pids of the task process running task instance ``ti_id``.

        The task runner titles itself ``airflow worker -- <ti id>``; its supervisor (the
        LocalExecutor worker, ``airflow worker -- LocalExecutor: ...``) is not matched.
        """
        import psutil

        title = f"airflow worker -- {ti_id}"
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            try:
                cmdline = " ".join(proc.info["cmdline"] or []).strip()
            except psutil.Error:
                continue
            if cmdline == title:
                found.append(proc.pid)
        return found


@dataclass
class Sample:
    t: float
    in_progress: int
    running: int
    deferred: int


@dataclass
class Sampler:
    """Samples, together, the jobs in progress on the service and the running/deferred TIs."""

    deployment: Deployment
    samples: list[Sample] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)

    def sample(self) -> Sample:
        self.deployment.check_alive()
        airflow = self.deployment.airflow
        # Service first and Airflow right after: both within a fraction of a second.
        in_progress = self.deployment.service.in_progress()
        sample = Sample(
            time.monotonic() - self.t0, in_progress, airflow.count_tis("running"), airflow.count_tis("deferred")
        )
        self.samples.append(sample)
        return sample

    @property
    def peak_in_progress(self) -> int:
        return max((s.in_progress for s in self.samples), default=0)

    @property
    def peak_running(self) -> int:
        return max((s.running for s in self.samples), default=0)

    @property
    def peak_deferred(self) -> int:
        return max((s.deferred for s in self.samples), default=0)

    def slot_seconds(self) -> float:
        """Worker-slot seconds: the integral of running task instances over time."""
        total = 0.0
        for before, after in zip(self.samples, self.samples[1:], strict=False):
            total += before.running * (after.t - before.t)
        return total


def run_fanout(deployment: Deployment, dag_id: str, n_jobs: int, duration_s: float, timeout: float) -> dict[str, Any]:
    """Run a fan-out DAG, sampling all along; return its measures (``state`` may be ``timeout``)."""
    sampler = Sampler(deployment)
    before = {job["jobIdentifier"] for job in deployment.service.jobs()}
    run_id = deployment.airflow.trigger(dag_id, {"n_jobs": n_jobs, "duration_s": duration_s})
    started = time.monotonic()
    try:
        state = deployment.airflow.wait_run(dag_id, run_id, timeout, on_poll=sampler.sample, interval=0.5)
    except ProcessDied:
        raise
    except HarnessError:
        state = "timeout"
    wall = time.monotonic() - started
    jobs = [job for job in deployment.service.jobs() if job["jobIdentifier"] not in before]
    return {
        "dag_id": dag_id,
        "run_id": run_id,
        "state": state,
        "wall_s": wall,
        "jobs_submitted": len(jobs),
        "jobs_completed": sum(job["status"] == "COMPLETED" for job in jobs),
        "peak_in_progress": sampler.peak_in_progress,
        "peak_running": sampler.peak_running,
        "peak_deferred": sampler.peak_deferred,
        "slot_seconds": sampler.slot_seconds(),
        "samples": sampler.samples,
        "jobs": jobs,
    }


def iter_samples(samples: list[Sample]) -> Iterator[str]:
    for s in samples:
        yield f"{s.t:7.1f}s in_progress={s.in_progress:3d} running={s.running} deferred={s.deferred}"
