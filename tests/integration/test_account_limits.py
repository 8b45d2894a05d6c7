"""The account's limits a deployment meets, on engines of their own (an engine per process at a
time: these need their own faults and quotas): a new account's Lambda concurrency of 10 with
the template's defaults, and a batch whose one start fails for good."""

from __future__ import annotations

import json
from typing import Any

import pytest

from s3split.engine.faults import FaultPlan, StartExecutionFault
from s3split.engine.local import local_engine
from s3split.engine.quotas import Quotas
from tests.support.batches import WORK, started_runs, stubbed_pipeline
from tests.support.iam import record_state_machine_calls
from tests.support.pipeline import BUCKET, CREDENTIALS, RANGED, make_csv
from tests.support.template import TEMPLATE_DOC, Stack


def test_the_default_settings_fit_a_new_accounts_lambda_concurrency_of_10(
        tmp_path: Any) -> None:
    """A new account may have a Lambda concurrency of 10: the engine throttles invocations
    beyond it (tests/integration/test_engine_quotas.py), and a 30-range split with the
    template's defaults (RangeConcurrency 8, Lanes 2) never gets there; retries of a throttled
    call are immediate here, so a throttle would soon fail the run."""
    stack = Stack(TEMPLATE_DOC)
    source = tmp_path / "big.csv"
    make_csv(source, 600)
    env = RANGED | {"S3SPLIT_RANGE_SIZE": str(source.stat().st_size // 30 + 1),
                    "S3SPLIT_RANGE_CONCURRENCY": str(stack.params["RangeConcurrency"])}
    with local_engine(str(tmp_path / "work"), workers=2, env=env, retry_interval_scale=0,
                      quotas=Quotas(lambda_concurrency=10)) as engine:
        outcome = engine.wait(engine.start({
            "source": str(source), "chunk_size": 2000, "processor": "noop",
            "lanes": int(stack.params["Lanes"])}), timeout_s=300)
    assert outcome.succeeded, outcome


def test_a_file_whose_start_fails_for_good_fails_the_batch_after_the_others_started(
        s3_endpoint: str, server_s3: Any) -> None:
    """As on AWS: StartEach tolerates no failed child (no ToleratedFailure*), so one StartOne
    refused for good (not retried) fails the Map with States.ExceedToleratedFailureThreshold
    and the batch execution FAILED, which the template's RunFailedRule alerts on; the other
    files' runs were started and go on."""
    for name in ("a", "b", "c"):
        server_s3.put_object(Bucket=BUCKET, Key=f"incoming/partly/{name}.csv", Body=b"id\n1\n")
    refused = FaultPlan(start_execution_faults=[StartExecutionFault(
        "StepFunctions.InvalidExecutionInputException", calls=(2,))])
    env = CREDENTIALS | {"AWS_ENDPOINT_URL_S3": s3_endpoint, "S3SPLIT_ALLOWED_BUCKETS": BUCKET}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
        with local_engine(WORK, workers=1, env=env, faults=refused) as engine:
            pipeline, stub = stubbed_pipeline(engine, "batch-partly")
            batch = engine.sfn.start_execution(
                stateMachineArn=pipeline,
                input=json.dumps({"prefix": f"s3://{BUCKET}/incoming/partly/"}))["executionArn"]
            outcome = engine.wait(batch, timeout_s=300)
            runs = started_runs(engine, stub)
            record_state_machine_calls(engine.sfn)
    assert (outcome.status, outcome.error) == ("FAILED", "States.ExceedToleratedFailureThreshold")
    assert [i.error for i in refused.injected] == ["StepFunctions.InvalidExecutionInputException"]
    assert len(runs) == 2  # the two others, each once
