"""Fake AWS for in-process tests: credentials that reach nothing real, and moto."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

REGION = "us-east-1"


def fake_aws_env(patch: pytest.MonkeyPatch, region: str = REGION) -> None:
    """Fake credentials and one region; no profile and no endpoint of the environment (a real
    account or a local S3) in the way."""
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
        patch.delenv(name)
    patch.delenv("AWS_PROFILE", raising=False)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        patch.setenv(name, "testing")
    patch.setenv("AWS_DEFAULT_REGION", region)


@contextmanager
def mocked_s3(monkeypatch: pytest.MonkeyPatch, bucket: str) -> Iterator[Any]:
    """An in-process moto S3 with fake credentials and ``bucket`` made; its client."""
    fake_aws_env(monkeypatch)
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=bucket)
        yield client
