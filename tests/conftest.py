"""Fixtures shared by the s3split tests, and the hook that orders them.

Helpers (plain functions and classes) live in the ``tests.support`` package; this file holds
only fixtures. Module-scoped fixtures are built once per test file, which is the unit that
``pytest-xdist --dist loadfile`` hands to a worker.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from s3split.engine import speedups
from tests.support.aws import REGION, fake_aws_env
from tests.support.pipeline import (
    BUCKET,
    PROBE,
    Backend,
    moto_s3_server,
    pipeline_backend,
    s3_client,
)

# Every AWS call the tests make the functions and the state machine do, against the template's
# IAM policies at the end of the run.
pytest_plugins = ("tests.support.iam_plugin",)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


# The slowest kind first; the template's first of all: its handler check builds the Lambda layer
# with pip (~30 s, once per change of src/), which a worker should not start near the end.
_KINDS = ("template", "e2e", "faults", "integration", "unit")


def pytest_collection_modifyitems(items: list[Any]) -> None:
    """The slow tests first, then by kind, the CLI's in subprocesses first and the unit tests
    last (a stable sort): on several workers (pytest-xdist, ``--dist loadfile
    --no-loadscope-reorder``) the longest files start at once and the short ones fill the
    end, instead of a long file trailing behind the rest."""
    def rank(item: Any) -> tuple[bool, int]:
        kind = Path(str(item.path)).parent.name
        return (item.get_closest_marker("slow") is None,
                _KINDS.index(kind) if kind in _KINDS else len(_KINDS))

    items.sort(key=rank)
    if not speedups.enabled():
        skip = pytest.mark.skip(reason=f"the engine's speed-ups are off ({speedups.SWITCH})")
        for item in items:
            if item.get_closest_marker("speedups") is not None:
                item.add_marker(skip)


# -- fake AWS, in process -----------------------------------------------------------------------


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and one region; no profile or endpoint of the environment in the way."""
    fake_aws_env(monkeypatch)


@pytest.fixture
def mocked_dynamodb(aws_env: None) -> Iterator[DynamoDBClient]:
    """moto's DynamoDB, in process, and a client of it (the tables are the test's to make)."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        yield boto3.client("dynamodb", region_name=REGION)


# -- S3 on a moto server (handlers in worker processes reach it over HTTP) ------------------------


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server for the module's tests."""
    with moto_s3_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def server_s3(s3_endpoint: str) -> Any:
    """A client of the moto S3 server ``s3_endpoint`` (which the engine's worker processes
    reach too), with the ``BUCKET`` made. moto's S3 in this process is a module's
    ``mocked_s3`` fixture instead."""
    client = s3_client(s3_endpoint)
    client.create_bucket(Bucket=BUCKET)
    return client


# -- the engine with the probe processor ----------------------------------------------------------


def _probe_backend(kind: str, tmp_path_factory: pytest.TempPathFactory,
                   ) -> AbstractContextManager[Backend]:
    return pipeline_backend(kind, tmp_path_factory.mktemp("work"), {"S3SPLIT_PROCESSORS": PROBE})


@pytest.fixture(scope="module", params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            ) -> Iterator[Backend]:
    """The engine running the ``probe`` processor, with local storage and with S3 on a moto
    server: every test that takes it runs on both."""
    with _probe_backend(request.param, tmp_path_factory) as started:
        yield started


@pytest.fixture(scope="module")
def local_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """The engine running the ``probe`` processor, with local storage only."""
    with _probe_backend("local", tmp_path_factory) as started:
        yield started

