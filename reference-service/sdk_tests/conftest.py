"""The four public SDKs against the reference service, in both profiles.

Runs in its own environment (``.venv-sdks``, ``requirements/sdks.txt``): the SDKs' dependencies
(boto3, grpcio, numpy, ...) are not the provider's, and tensorbay pins a numpy-quaternion that
has no build for Python 3.11 (see that file). Nothing here imports Airflow or the provider.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from jobwait_reference_service.process import ServiceProcess

# One key for every family: TensorBay's client wants the ACCESSKEY- prefix (gas.graviti.com
# keys), Modzy's the "<public id>.<secret>" form.
API_KEY = "ACCESSKEY-sdktest.s3cr3t-sdk-key"
CLIENT_ID, CLIENT_SECRET = "sdk-tests", "sdk-client-s3cr3t"


@pytest.fixture(scope="session", params=["ext", "real"])
def service(request: pytest.FixtureRequest) -> Iterator[ServiceProcess]:
    """The reference service in each profile, with an OAuth2 client for Evo's SDK."""
    with ServiceProcess(
        api_key=API_KEY, profile=request.param, oauth_client_id=CLIENT_ID, oauth_client_secret=CLIENT_SECRET
    ) as proc:
        yield proc
