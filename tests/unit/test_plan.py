"""Plan on local files: a refused start touches nothing; each fresh start has its own run id."""

import os
from pathlib import Path
from typing import Any

import pytest

from s3split.deployment import Deployment
from s3split.errors import RunInProgress
from s3split.holders import Holder
from s3split.pipeline.run_lock import release
from s3split.pipeline.steps import plan
from s3split.storage import Storage


@pytest.fixture
def place(tmp_path: Path) -> tuple[Deployment, str, str]:
    source = tmp_path / "orders.csv"
    source.write_text("id,name\n1,a\n")
    deployment = Deployment(work_location=str(tmp_path / "work"), allow_local=True,
                            engine_pid=os.getpid())
    return deployment, str(source), str(tmp_path / "work" / "orders.csv")


def alive(holder: Holder) -> bool:
    return holder.pid == os.getpid()


def start(deployment: Deployment, event: dict[str, Any], execution: str) -> dict[str, Any]:
    return plan(event, execution, deployment, Storage(), alive)


def test_a_refused_start_leaves_the_running_one_untouched(
        place: tuple[Deployment, str, str]) -> None:
    deployment, source, location = place
    first = start(deployment, {"source": source}, "exec-1")
    assert first["lease"] == "exec-1" and first["run"]["location"] == location
    done = Path(location, "status", "part-00000.json")
    done.parent.mkdir(parents=True)
    done.write_text('{"state": "ok"}')
    spec = Path(location, "run.json").read_text()

    for event in ({"source": source, "chunk_size": "1KiB"}, {"resume": location}):
        with pytest.raises(RunInProgress, match="exec-1"):
            start(deployment, event, "exec-2")
    assert done.read_text() == '{"state": "ok"}'
    assert Path(location, "run.json").read_text() == spec


def test_each_fresh_start_has_its_own_run_id_and_a_resume_keeps_it(
        place: tuple[Deployment, str, str]) -> None:
    deployment, source, location = place
    first = start(deployment, {"source": source}, "exec-1")["run"]["run_id"]
    release(location, "exec-1", Storage())
    second = start(deployment, {"source": source}, "exec-2")["run"]["run_id"]
    release(location, "exec-2", Storage())
    resumed = start(deployment, {"resume": location}, "exec-3")["run"]["run_id"]
    assert first != second and first.startswith("orders-") and second.startswith("orders-")
    assert resumed == second
