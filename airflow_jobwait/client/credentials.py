"""Credentials: interim static tokens only (replaced by the OAuth2 module from the oauth branch)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class OAuth2ClientCredentials:
    """Client-credentials grant settings (secret never in repr)."""

    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    scope: str | None = None
    leeway: float = 60.0


class StaticToken:
    def __init__(self, value: str) -> None:
        self._value = value

    def token(self) -> str:
        return self._value

    def refresh(self) -> bool:
        return False


class AsyncStaticToken:
    def __init__(self, value: str) -> None:
        self._value = value

    async def token(self) -> str:
        return self._value

    async def refresh(self) -> bool:
        return False


def sync_token_source(
    api_key: str, oauth: OAuth2ClientCredentials | None, *, verify: bool, timeout: float
) -> StaticToken:
    if oauth is not None:
        raise NotImplementedError("interim")
    return StaticToken(api_key)


def async_token_source(
    api_key: str, oauth: OAuth2ClientCredentials | None, *, verify: bool, timeout: float
) -> AsyncStaticToken:
    if oauth is not None:
        raise NotImplementedError("interim")
    return AsyncStaticToken(api_key)
