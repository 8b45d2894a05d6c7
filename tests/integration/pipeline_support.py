"""Shared pieces of the pipeline tests: a CSV maker and a run on the local engine."""

import csv
import io
import json
from pathlib import Path
from typing import Any

from s3split.engine.local import LocalEngine, Outcome

PROBE = "probe=tests.integration.pipeline_processors:probe"
HEADER = "id,name,note,pad\r\n"


def make_csv(path: Path, rows: int) -> str:
    """A CSV whose records are about 100 bytes, with quoted commas, quotes and newlines."""
    lines = [HEADER]
    for i in range(rows):
        lines.append(f'{i},"name, {i}","say ""hi""\r\nline two {i}",{"x" * 80}\r\n')
    text = "".join(lines)
    path.write_bytes(text.encode())
    return text


class Run:
    """One pipeline run in its own directory under the engine's work location."""

    def __init__(self, engine: LocalEngine, work: Path, name: str, rows: int = 20,
                 control: dict[str, Any] | None = None) -> None:
        self.engine, self.dir = engine, work / name
        self.dir.mkdir()
        self.source = self.dir / "in.csv"
        self.text = make_csv(self.source, rows)
        self.location = self.dir / "run"
        self.location.mkdir()
        if control is not None:
            (self.location / "control.json").write_text(json.dumps(control))

    def start(self, **overrides: Any) -> Outcome:
        run_input = {"source": str(self.source), "run": str(self.location),
                     "chunk_size": 1000, "processor": "probe"} | overrides
        return self.engine.wait(self.engine.start(run_input), timeout_s=120)

    def resume(self) -> Outcome:
        return self.engine.wait(self.engine.start({"resume": str(self.location)}), timeout_s=120)

    @property
    def report(self) -> dict[str, Any]:
        return json.loads((self.location / "report.json").read_text())

    def probes(self) -> list[dict[str, Any]]:
        log = self.location / "probe.log"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def result_rows(self) -> list[dict[str, Any]]:
        rows = []
        for path in sorted((self.location / "results").glob("part-*.jsonl")):
            if not path.name.endswith(".rejects.jsonl"):
                rows += [json.loads(line) for line in path.read_text().splitlines()]
        return rows

    def source_rows(self) -> list[dict[str, str]]:
        return list(csv.DictReader(io.StringIO(self.text, newline="")))

    def events(self, outcome: Outcome) -> list[list[dict[str, Any]]]:
        return [self.engine.history(arn) for arn in outcome.executions]


def _types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def _max_overlap(probes: list[dict[str, Any]]) -> int:
    edges = sorted([(p["start"], 1) for p in probes] + [(p["end"], -1) for p in probes])
    peak = current = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


def max_overlap(probes: list[dict[str, Any]]) -> int:
    edges = sorted([(p["start"], 1) for p in probes] + [(p["end"], -1) for p in probes])
    peak = current = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak
