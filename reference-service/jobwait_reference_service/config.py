"""Settings of one reference-service process."""

from __future__ import annotations

from dataclasses import dataclass, field


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
    """

    db_path: str
    api_key: str
    test_controls: bool = False
    max_body_bytes: int = 1_048_576
    oauth_client_id: str | None = None
    oauth_client_secret: str | None = field(default=None, repr=False)
    token_ttl: float = 3600.0

    def __post_init__(self) -> None:
        if (self.oauth_client_id is None) != (self.oauth_client_secret is None):
            raise ValueError("oauth_client_id and oauth_client_secret go together: set both or neither")
        if self.oauth_client_secret is not None and not (self.oauth_client_id and self.oauth_client_secret):
            raise ValueError("oauth_client_id and oauth_client_secret must not be empty")
        # Under a second, expires_in (whole seconds) would read 0: "already expired".
        if self.token_ttl != 0 and not self.token_ttl >= 1:
            raise ValueError(f"token_ttl must be 0 (no expiry) or at least 1 second, got {self.token_ttl}")

    @property
    def oauth_enabled(self) -> bool:
        """Whether the token endpoint exists (a client is configured)."""
        return self.oauth_client_secret is not None
