"""``make demo``: run the example DAG with ``airflow dags test`` against the reference service.

Starts the service in the background (SQLite under ``airflow_home/``), migrates a local SQLite
Airflow metadata DB, runs ``jobwait_inference_example`` (the sensor's wait runs in the trigger),
prints the job's final status and per-input outputs as the service reports them, then stops the
service.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

from jobwait_reference_service.process import ServiceProcess

from airflow_jobwait.client import inference as api
from airflow_jobwait.client.http import ClientConfig
from airflow_jobwait.client.sync_transport import SyncClient

DAG_ID = "jobwait_inference_example"
REPO = Path(__file__).resolve().parent


def airflow_env(home: Path, service: ServiceProcess) -> dict[str, str]:
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags_examples"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        **service.connection_env(),
    }


def run(step: str, args: list[str], env: dict[str, str], log: Path) -> None:
    print(f"==> {step}", flush=True)
    started = time.monotonic()
    with log.open("a") as out:
        done = subprocess.run(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        raise SystemExit(f"{step} failed ({done.returncode}); last lines of {log}:\n{tail}")
    print(f"    done in {time.monotonic() - started:.1f}s", flush=True)


def main() -> int:
    home = REPO / "airflow_home"
    home.mkdir(exist_ok=True)
    log = home / "demo.log"
    log.write_text("")
    # A fresh key per run: the demo never prints it, and it lives only in this process tree.
    key = f"demo.{secrets.token_urlsafe(24)}"
    airflow = [sys.executable, "-m", "airflow"]
    with ServiceProcess(api_key=key, db_path=home / "demo-jobs.sqlite") as service:
        print(f"==> reference job service listening on {service.base_url}", flush=True)
        env = airflow_env(home, service)
        run("airflow db migrate", [*airflow, "db", "migrate"], env, log)
        run(f"airflow dags test {DAG_ID}", [*airflow, "dags", "test", DAG_ID], env, log)
        client = SyncClient(ClientConfig(base_url=service.base_url, api_key=key))
        job = client.call(api.history(per_page=1))[0]
        results = client.call(api.get_results(job.job_identifier))
    print(f"\njob {job.job_identifier} ({job.model.identifier if job.model else '?'}): {job.status.value}")
    print(f"inputs: {results.completed} completed, {results.failed} failed, {results.total} total")
    for source_key, outputs in results.outputs_by_source.items():
        print(f"  {source_key}: {json.dumps(outputs['results.json'])}")
    print(f"\nfull Airflow log: {log}")
    return 0 if job.status.is_success else 1


if __name__ == "__main__":
    sys.exit(main())
