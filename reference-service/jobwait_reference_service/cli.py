"""``jobwait-server``: run the reference job service."""

from __future__ import annotations

import argparse
import os
import sys

import uvicorn

from jobwait_reference_service.app import create_app
from jobwait_reference_service.config import ServiceConfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="jobwait-server", description="airflow-jobwait reference job service")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8787, help="port to listen on (default 8787)")
    parser.add_argument("--db", required=True, help="SQLite file that keeps every job across restarts")
    parser.add_argument("--api-key", default=os.environ.get("JOBWAIT_API_KEY"), help="API key (or JOBWAIT_API_KEY)")
    parser.add_argument(
        "--test-controls",
        action="store_true",
        help="honour test extensions (job outcome/duration overrides, fault injection); never in production",
    )
    parser.add_argument("--max-body-bytes", type=int, default=1_048_576, help="larger request bodies get 413")
    parser.add_argument("--log-level", default="warning", help="uvicorn log level (default warning)")
    args = parser.parse_args(argv)
    if not args.api_key:
        parser.error("an API key is required: pass --api-key or set JOBWAIT_API_KEY")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = ServiceConfig(
        db_path=args.db,
        api_key=args.api_key,
        test_controls=args.test_controls,
        max_body_bytes=args.max_body_bytes,
    )
    uvicorn.run(
        create_app(config),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        # The public clients and our pooled async client keep connections open between polls.
        timeout_keep_alive=75,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
