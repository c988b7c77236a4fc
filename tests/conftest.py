"""The environment every test runs in (fake AWS credentials, moto's G1 fix) and the fixture plugins, one
``tests/fixtures/fix_*.py`` per concern: the secret-leak canary, the database servers, the cache, the
database factories, serve's moto server and fault proxy, Redis. Helpers tests import live beside them in
``tests/fixtures/``; programs the tests start in ``tests/programs/``. No test imports another test module
or a conftest."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

pytest_plugins = [
    "tests.fixtures.fix_canary",
    "tests.fixtures.fix_canary_checks",
    "tests.fixtures.fix_servers",
    "tests.fixtures.fix_cache",
    "tests.fixtures.fix_db",
    "tests.fixtures.fix_serve",
    "tests.fixtures.fix_redis",
]

# No test may reach real AWS: fake credentials and a fixed Region for every boto3 client.
for _name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
              "AWS_ENDPOINT_URL_SECRETS_MANAGER"):
    os.environ.pop(_name, None)
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_REGION="us-east-1",
    AWS_EC2_METADATA_DISABLED="true",
)


@pytest.fixture(autouse=True, scope="session")
def _moto_g1_patch() -> Iterator[None]:
    """moto 5.x keeps answering plain GetSecretValue with the old version after UpdateSecretVersionStage
    moves AWSCURRENT (research/test-infra.md, G1). AWS does not; patch moto so rotation tests are real."""
    from secretcache.testing import patch_moto_staging_labels

    undo = patch_moto_staging_labels()
    yield
    undo()
