"""Settings of one reference-service process."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

#: ``ext``: every extension of docs/jobs-api.md (batch status, watch, key dedupe); ``real``: only
#: what the real services offer, as their SDKs and docs show them (docs/jobs-api.md §0).
PROFILES = ("ext", "real")
Profile = Literal["ext", "real"]
#: Where the results store is mounted: ``real`` as CHIME's gateway (workflow-core's base URL
#: ``https://frb.chimenet.ca/workflow/results``, then ``{base}/results``, ``{base}/view``).
RESULTS_MOUNTS: dict[str, str] = {"ext": "/workflow", "real": "/workflow/results"}
#: Requests per second per key the real profile allows unless told otherwise.
REAL_RATE_LIMIT = 200.0
#: Each profile's rate limit when none is given (``None``: unlimited).
REAL_RATE_LIMITS: dict[str, float | None] = {"ext": None, "real": REAL_RATE_LIMIT}


@dataclass(frozen=True)
class ServiceConfig:
    """What a reference-service process is started with.

    :param db_path: SQLite file that holds every job and result; survives restarts.
    :param api_key: The one API key every family accepts (in its own header).
    :param test_controls: Honour our test extensions (job outcome/duration overrides,
        fault injection). Off unless the process is started with ``--test-controls``.
    :param max_body_bytes: Request bodies larger than this get 413.
    :param oauth_client_id: The one OAuth2 client the token endpoint (``POST /connect/token``,
        ``oauth.py``) knows. With ``oauth_client_secret`` unset too (the default) there is no
        token endpoint (404) and the compute family accepts the API key only.
    :param oauth_client_secret: That client's secret; it also keys the tokens' signatures.
    :param token_ttl: Lifetime of an issued access token in seconds (``expires_in``, rounded
        down); 0 issues tokens that never expire and replies without ``expires_in``.
    :param profile: ``ext`` (default) or ``real``: no [ext] endpoint or header, the results store
        at ``/workflow/results``, and a rate limit by default.
    :param rate_limit: Requests per second each API key may send (bursts of twice that); more get
        429 with ``Retry-After``. ``None``: no limit (``ext``'s default; ``real``'s is 200).
    """

    db_path: str
    api_key: str
    test_controls: bool = False
    max_body_bytes: int = 1_048_576
    oauth_client_id: str | None = None
    oauth_client_secret: str | None = field(default=None, repr=False)
    token_ttl: float = 3600.0
    profile: Profile = "ext"
    rate_limit: float | None = None

    def __post_init__(self) -> None:
        if (self.oauth_client_id is None) != (self.oauth_client_secret is None):
            raise ValueError("oauth_client_id and oauth_client_secret go together: set both or neither")
        if self.oauth_client_secret is not None and not (self.oauth_client_id and self.oauth_client_secret):
            raise ValueError("oauth_client_id and oauth_client_secret must not be empty")
        # Under a second, expires_in (whole seconds) would read 0: "already expired".
        if self.token_ttl != 0 and not self.token_ttl >= 1:
            raise ValueError(f"token_ttl must be 0 (no expiry) or at least 1 second, got {self.token_ttl}")
        if self.profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}, got {self.profile!r}")
        if self.rate_limit is not None and not self.rate_limit > 0:
            raise ValueError(f"rate_limit must be a positive number of requests per second, got {self.rate_limit}")

    @property
    def extensions(self) -> bool:
        """Whether the [ext] endpoints and headers of docs/jobs-api.md are served."""
        return self.profile == "ext"

    @property
    def results_mount(self) -> str:
        """The results store's path prefix."""
        return RESULTS_MOUNTS[self.profile]

    @property
    def oauth_enabled(self) -> bool:
        """Whether the token endpoint exists (a client is configured)."""
        return self.oauth_client_secret is not None
