"""The IAM proof of the whole run: every AWS call the functions make while the tests run (the
handlers record them, ``S3SPLIT_AWS_CALL_LOG``) and the state machine's (recorded from the
executions' histories when a test's engine stops) are evaluated against template.yaml's
policies at the end, in one node process; a call the roles would refuse fails the run, and the
grants no call used are listed.

On pytest-xdist the controller makes the directory (the workers inherit it through the
environment) and evaluates; a run that recorded nothing (unit tests only) evaluates nothing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from s3split.aws_calls import ENV
from tests.support.iam import prove, read_calls

_OURS = "s3split_iam_directory"
_LINES = "s3split_iam_lines"


def _controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    if _controller(config) and not os.environ.get(ENV):
        directory = tempfile.mkdtemp(prefix="s3split-aws-calls-")
        os.environ[ENV] = directory
        setattr(config, _OURS, directory)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    directory = getattr(config, _OURS, None)
    if not directory:
        return
    try:
        calls = read_calls(Path(directory))
        if not calls:
            return
        try:
            proof = prove(calls)
        except AssertionError as exc:  # a call with no IAM mapping, no evaluator
            setattr(config, _LINES, [f"IAM: not evaluated: {exc}"])
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            return
        setattr(config, _LINES, proof.lines())
        if proof.refused:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        os.environ.pop(ENV, None)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    lines = getattr(terminalreporter.config, _LINES, None)
    if lines:
        terminalreporter.section("IAM: the recorded calls against template.yaml")
        for line in lines:
            terminalreporter.write_line(line)
