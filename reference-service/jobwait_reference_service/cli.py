"""``jobwait-server``: run the reference job service."""

from __future__ import annotations

import argparse
import os
import sys

import uvicorn

from jobwait_reference_service.app import create_app
from jobwait_reference_service.config import PROFILES, REAL_RATE_LIMIT, REAL_RATE_LIMITS, ServiceConfig


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
    parser.add_argument(
        "--oauth-client-id",
        default=os.environ.get("JOBWAIT_OAUTH_CLIENT_ID"),
        help="OAuth2 client of the token endpoint POST /connect/token (or JOBWAIT_OAUTH_CLIENT_ID); without it "
        "there is no token endpoint and the compute family accepts the API key only",
    )
    parser.add_argument(
        "--oauth-client-secret",
        default=os.environ.get("JOBWAIT_OAUTH_CLIENT_SECRET"),
        help="that client's secret (better: JOBWAIT_OAUTH_CLIENT_SECRET, kept off the process list)",
    )
    parser.add_argument(
        "--token-ttl",
        type=float,
        default=3600.0,
        help="access token lifetime in seconds (default 3600); 0: tokens never expire, replies omit expires_in",
    )
    parser.add_argument(
        "--profile",
        choices=PROFILES,
        default="ext",
        help="ext (default): our extensions too (batch status, watch, key dedupe); real: only what the real "
        "services offer, the results store at /workflow/results, a rate limit",
    )
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=None,
        help="requests per second per API key, bursts of twice that; more get 429 with Retry-After "
        f"(default: none; {REAL_RATE_LIMIT:g} with --profile real)",
    )
    parser.add_argument("--log-level", default="warning", help="uvicorn log level (default warning)")
    args = parser.parse_args(argv)
    if not args.api_key:
        parser.error("an API key is required: pass --api-key or set JOBWAIT_API_KEY")
    if bool(args.oauth_client_id) != bool(args.oauth_client_secret):
        parser.error("--oauth-client-id and --oauth-client-secret (or JOBWAIT_OAUTH_CLIENT_SECRET) go together")
    if args.token_ttl != 0 and not args.token_ttl >= 1:
        parser.error("--token-ttl must be 0 (no expiry) or at least 1 second")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = ServiceConfig(
        db_path=args.db,
        api_key=args.api_key,
        test_controls=args.test_controls,
        max_body_bytes=args.max_body_bytes,
        oauth_client_id=args.oauth_client_id or None,
        oauth_client_secret=args.oauth_client_secret or None,
        token_ttl=args.token_ttl,
        profile=args.profile,
        rate_limit=args.rate_limit if args.rate_limit is not None else REAL_RATE_LIMITS[args.profile],
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
