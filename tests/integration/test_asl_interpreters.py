"""statemachine/pipeline.asl.json beyond moto's interpreter: asl-validator on the definition as
the template deploys it, and the pipeline's paths (the lanes' loop, retries, a catch into
RecordFailure, ContinueAsNew, the range split, Release -> Failed) replayed on a second
interpreter, aws-local-stepfunctions, with the task results the embedded engine's history holds:
the same states must be entered and the execution must end the same way."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from s3split.engine.local import LocalEngine, local_engine, render_definition
from s3split.pipeline.lanes import WORST_ITERATION
from tests.support.pipeline import make_csv
from tests.support.second_interpreter import (
    differences,
    distributed_children,
    node,
    recorded,
    replay,
)
from tests.support.template import TEMPLATE_DOC, Stack

PROCESSORS = "failing_noop=tests.support.pipeline_processors:failing_noop"
RANGED = {"S3SPLIT_RANGE_SPLIT_FROM": "1", "S3SPLIT_RANGE_SIZE": "1500",
          "S3SPLIT_ASSEMBLE_CHUNKS": "2"}


def test_asl_validator_accepts_the_definition_as_the_template_deploys_it(
        tmp_path: Path) -> None:
    substitutions = Stack(TEMPLATE_DOC).props("PipelineStateMachine")["DefinitionSubstitutions"]
    deployed = tmp_path / "pipeline.json"
    deployed.write_text(render_definition({k: str(v) for k, v in substitutions.items()}))
    done = node("node_modules/asl-validator/dist/bin/asl-validator.js",
                "--json-path", str(deployed))
    assert done.returncode == 0 and "is valid" in done.stdout, done.stdout + done.stderr


def executions(engine: LocalEngine) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    for page in engine.sfn.get_paginator("list_executions").paginate(
            stateMachineArn=engine.state_machine_arn):
        for execution in page["executions"]:
            arn = execution["executionArn"]
            yield engine.sfn.describe_execution(executionArn=arn), engine.history(arn)


def run_all(engine: LocalEngine, inputs: list[dict[str, Any]]) -> None:
    for run_input in inputs:
        engine.wait(engine.start(run_input), timeout_s=300)
    for arn in [e["executionArn"] for e in engine.sfn.list_executions(
            stateMachineArn=engine.state_machine_arn)["executions"]]:
        engine.wait(arn, timeout_s=300)  # the continuations too


@pytest.fixture(scope="module")
def pipeline_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    """The embedded engine's executions: two lanes of failing_noop (chunk 3 fails for good,
    chunk 7 is retried twice) with an event budget that continues as new, a CSV with an
    unterminated quote (Split fails, Release, Failed), and a range split."""
    tmp = tmp_path_factory.mktemp("runs")
    make_csv(tmp / "ten.csv", 40)
    (tmp / "broken.csv").write_text('id,name\n1,"open\n2,b\n')
    env = {"S3SPLIT_PROCESSORS": PROCESSORS,
           "S3SPLIT_EVENT_BUDGET": str(2 * WORST_ITERATION + 60)}
    with local_engine(str(tmp / "work"), workers=2, env=env, retry_interval_scale=0) as engine:
        run_all(engine, [
            {"source": str(tmp / "ten.csv"), "chunk_rows": 4, "lanes": 2,
             "processor": "failing_noop", "tolerate": "100%"},
            {"source": str(tmp / "broken.csv"), "lanes": 1, "processor": "noop"}])
        first = list(executions(engine))
        definition = json.loads(engine.sfn.describe_state_machine(
            stateMachineArn=engine.state_machine_arn)["definition"])
    with local_engine(str(tmp / "ranged"), workers=2, env=RANGED) as engine:
        run_all(engine, [{"source": str(tmp / "ten.csv"), "chunk_size": 300, "lanes": 2,
                          "processor": "noop"}])
        ranged = list(executions(engine))
    runs = [recorded(f"{d['name']} ({d['status']})", d, h) for d, h in first + ranged]
    return [definition, runs]


def test_the_pipelines_paths_end_the_same_on_a_second_interpreter(
        pipeline_runs: list[Any]) -> None:
    definition, runs = pipeline_runs
    entered = {name for run in runs for name in run.entered}
    # The paths this is about were all taken.
    assert {"NextChunk", "Work", "RecordFailure", "ContinueAsNew", "Release", "Failed",
            "PlanRanges", "ScanRanges", "Assemble", "FinishSplit", "Done"} <= entered, entered
    assert any(len(outcomes) > 1 and "error" in outcomes[0]
               for run in runs for outcomes in run.results.values())  # a retried task
    # A Distributed Map's children are executions of their own: their task results are not in
    # the parent's history. The range Maps drop what their children return (ResultPath null).
    children = distributed_children(definition["States"])
    unrecorded = {name: {} for name in children}
    reports = replay(definition, runs, unrecorded)
    found = {run.name: differences(run, report, children)
             for run, report in zip(runs, reports, strict=True)}
    assert not {name: d for name, d in found.items() if d}
