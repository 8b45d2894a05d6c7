"""Plan, the state machine's first step, run in this process on a small local source: for
the tests of what it checks and records before anything is split."""

from __future__ import annotations

import os
from pathlib import Path

from s3split.deployment import Deployment
from s3split.pipeline.steps import plan
from s3split.storage import Storage


def plan_local_run(tmp_path: Path, processor: str) -> Path:
    """The location Plan prepares for a run of ``processor`` on ``tmp_path/orders.csv`` (a
    two-line CSV it writes), the run's files under ``tmp_path/work``."""
    source = tmp_path / "orders.csv"
    source.write_text("id,name\n1,a\n")
    deployment = Deployment(work_location=str(tmp_path / "work"), allow_local=True,
                            engine_pid=os.getpid())
    planned = plan({"source": str(source), "processor": processor}, "exec-1", deployment,
                   Storage(), lambda holder: True)
    return Path(planned["run"]["location"])
