"""Plan on local files: a refused start touches nothing; each fresh start has its own run id."""

import json
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


class _Stopped(Exception):
    """The process stopped (killed) at this point of its work."""


class _StopsAtDelete(Storage):
    """Local storage whose ``stop_at``-th delete stops the start, as a kill there would."""

    def __init__(self, stop_at: int) -> None:
        super().__init__()
        self.stop_at, self.deletes = stop_at, 0

    def delete(self, uri: str) -> None:
        self.deletes += 1
        if self.deletes == self.stop_at:
            raise _Stopped(uri)
        super().delete(uri)


def test_a_new_start_stopped_at_any_delete_never_leaves_a_report_over_deleted_results(
        place: tuple[Deployment, str, str]) -> None:
    """A new start of a finished run clears its outcomes; killed part-way through that, the
    location must not hold the old report (nor the old merged file) over results it deleted:
    that would look like a complete run."""
    deployment, source, location = place
    Path(source).write_text("id,name\n" + "".join(f"{i},n{i}\n" for i in range(4)))
    layout = Path(location)
    for stop_at in range(1, 30):
        for index in range(4):  # a finished run of 4 chunks, merged
            for folder in ("results", "status"):
                (layout / folder).mkdir(parents=True, exist_ok=True)
            (layout / "results" / f"part-{index:05d}.jsonl").write_text(f'{{"id": {index}}}\n')
            (layout / "status" / f"part-{index:05d}.json").write_text(json.dumps(
                {"state": "ok", "output": str(layout / "results" / f"part-{index:05d}.jsonl")}))
        (layout / "run.json").write_text(json.dumps({"source": source}))
        (layout / "report.json").write_text('{"succeeded": true, "rows_ok": 4}')
        (layout / "results.jsonl").write_text("".join(f'{{"id": {i}}}\n' for i in range(4)))
        storage = _StopsAtDelete(stop_at)
        try:
            plan({"source": source}, f"exec-{stop_at}", deployment, storage, alive)
        except _Stopped:
            pass
        else:
            release(location, f"exec-{stop_at}", Storage())
            assert storage.deletes < stop_at
            return
        Path(location, "lock.json").unlink(missing_ok=True)
        results = sorted(p.name for p in (layout / "results").glob("*.jsonl"))
        if (layout / "report.json").exists() or (layout / "results.jsonl").exists():
            assert len(results) == 4, (stop_at, results)
    raise AssertionError("every start stopped: too few stop points tried")
