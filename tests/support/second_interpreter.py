"""The pipeline's executions replayed on a second ASL interpreter (aws-local-stepfunctions,
tools/aws-checks/asl-replay.mjs): every task result the embedded engine's history holds is
given back, keyed by the task's input, and the states entered and the execution's end must be
the same. The validator (asl-validator) runs on the definition as deployed."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from typing import Any

from tests.support.iam import CHECKS

REPLAY = CHECKS / "asl-replay.mjs"
RESULTS = {"LambdaFunctionSucceeded": "lambdaFunctionSucceededEventDetails",
           "TaskSucceeded": "taskSucceededEventDetails"}
FAILURES = {"LambdaFunctionFailed": "lambdaFunctionFailedEventDetails",
            "LambdaFunctionTimedOut": "lambdaFunctionTimedOutEventDetails",
            "TaskFailed": "taskFailedEventDetails"}


def node(script: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    executable = shutil.which("node")
    assert executable, "node is needed for the ASL checks (tools/aws-checks)"
    assert (CHECKS / "node_modules").is_dir(), "run `make node-checks` (npm ci in tools/aws-checks)"
    return subprocess.run([executable, script, *args], input=stdin, cwd=CHECKS,
                          capture_output=True, text=True, timeout=300, check=False)


def key(value: Any) -> str:
    """asl-replay.mjs's key: the input with ``retries`` removed, keys sorted, compact."""
    def canonical(v: Any) -> Any:
        if isinstance(v, list):
            return [canonical(x) for x in v]
        if isinstance(v, dict):
            return {k: canonical(v[k]) for k in sorted(v) if k != "retries"}
        return v
    return json.dumps(canonical(value), separators=(",", ":"), ensure_ascii=False)


@dataclass
class Recorded:
    """One execution as the embedded engine ran it."""

    name: str
    input: Any
    context: dict[str, Any]
    results: dict[str, list[dict[str, Any]]]
    entered: Counter[str]
    status: str
    output: Any = None
    error: str | None = None


def recorded(name: str, describe: dict[str, Any], history: list[dict[str, Any]]) -> Recorded:
    by_id = {event["id"]: event for event in history}
    results: dict[str, list[dict[str, Any]]] = {}
    for event in history:
        outcome: dict[str, Any] | None = None
        if event["type"] in RESULTS:
            outcome = {"output": json.loads(event[RESULTS[event["type"]]]["output"])}
        elif event["type"] in FAILURES:
            details = event[FAILURES[event["type"]]]
            outcome = {"error": details.get("error", ""), "cause": details.get("cause", "")}
        if outcome is None:
            continue
        scheduled = by_id[by_id[event["previousEventId"]]["previousEventId"]]
        details = scheduled.get("lambdaFunctionScheduledEventDetails") or \
            scheduled["taskScheduledEventDetails"]
        task_input = details.get("input", details.get("parameters"))
        results.setdefault(key(json.loads(task_input)), []).append(outcome)
    entered = Counter(e["stateEnteredEventDetails"]["name"] for e in history
                      if e["type"].endswith("StateEntered"))
    end = history[-1]
    context = {"Execution": {"Id": describe["executionArn"], "Name": describe["name"],
                             "Input": json.loads(describe["input"]),
                             "StartTime": str(describe["startDate"])},
               "StateMachine": {"Id": describe["stateMachineArn"],
                                "Name": describe["stateMachineArn"].rsplit(":", 1)[-1]},
               "State": {"Name": "", "EnteredTime": "", "RetryCount": 0}}
    run = Recorded(name, json.loads(describe["input"]), context, results, entered,
                   describe["status"])
    if describe["status"] == "SUCCEEDED":
        run.output = json.loads(describe["output"])
    else:
        run.error = end.get("executionFailedEventDetails", {}).get("error")
    return run


def distributed_children(states: dict[str, Any], inside: bool = False) -> set[str]:
    """States that run in a Distributed Map's child executions (their events are not in the
    parent's history)."""
    found = set()
    for name, state in states.items():
        if inside:
            found.add(name)
        processor = state.get("ItemProcessor")
        if processor:
            distributed = processor.get("ProcessorConfig", {}).get("Mode") == "DISTRIBUTED"
            found |= distributed_children(processor["States"], inside or distributed)
    return found


def replay(definition: dict[str, Any], runs: list[Recorded],
           unrecorded: dict[str, Any]) -> list[dict[str, Any]]:
    """Each run on aws-local-stepfunctions, in one node process."""
    payload = {"definition": definition, "unrecorded": unrecorded, "cases": [
        {"name": r.name, "input": r.input, "context": r.context, "results": r.results}
        for r in runs]}
    done = node(str(REPLAY), stdin=json.dumps(payload))
    assert done.returncode == 0, done.stderr[-3000:]
    return list(json.loads(done.stdout))


def differences(run: Recorded, report: dict[str, Any], unseen: set[str]) -> list[str]:
    """What the second interpreter did differently; ``unseen``: states the engine's history
    of this execution cannot show (a Distributed Map's children)."""
    found = []
    if report["status"] != run.status:
        found.append(f"status {report['status']} ({report.get('error')}: "
                     f"{str(report.get('cause'))[:300]}), the engine's {run.status} ({run.error})")
    elif run.status == "SUCCEEDED" and report.get("output") != run.output:
        found.append(f"output {report.get('output')}, the engine's {run.output}")
    elif run.status != "SUCCEEDED" and report.get("error") != run.error:
        found.append(f"error {report.get('error')}, the engine's {run.error}")
    entered = Counter(name for name in report["entered"] if name not in unseen)
    if entered != run.entered:
        found.append(f"states entered differ: only there {dict(entered - run.entered)}, "
                     f"only on the engine {dict(run.entered - entered)}")
    if report["unused"]:
        found.append(f"task results the engine produced but it never asked for: "
                     f"{report['unused'][:3]}")
    return found
