"""Benchmark `s3split run`: lane speed-up, orchestration overhead per chunk, history events.

    python bench/bench_pipeline.py [--size 1GiB] [--chunks 10000] [--quick]

1. Lanes: `s3split run` (jsonl processor) of a generated CSV (bench/data/, shared with
   bench_split.py) with ``--chunk-size 8MiB``, ``--lanes 1`` vs ``--lanes 2``; median wall of
   ``--repeat`` runs each, plus `s3split split` of the same file for the split's share.
2. Overhead: a CSV of N tiny records run with ``--chunk-size 1`` (one chunk per record),
   ``--processor noop --lanes 2``; (run wall - `s3split split` wall) / N.
3. History events per chunk: two small runs in-process on ``local_engine`` (noop, 2 lanes),
   events from the execution histories; marginal events per chunk from the difference.

Every CLI run is its own subprocess with a fresh --out directory under a temporary dir in
--data-dir. The table is printed and written as Markdown to bench/results/pipeline.md.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_split import BENCH_DIR, PY, Dataset, ensure_data, machine_info, s3split_exe, table, warm
from gen_csv import format_size, parse_size

SPEEDUP_TARGET = 1.6
OVERHEAD_TARGET_MS = 30.0
EXECUTIONS_RE = re.compile(r"(\d+) execution\(s\)")


# --------------------------------------------------------------------------- measuring


@dataclass
class Timed:
    wall: float
    cpu: float  # user + sys of the process and the children it reaped (the worker pool)
    rc: int
    stdout: str
    stderr: str

    def fail_reason(self) -> str:
        lines = [ln for ln in (self.stderr or self.stdout).strip().splitlines() if ln.strip()]
        return f"exit {self.rc}: {lines[-1][:200] if lines else ''}".strip()


PR_SET_CHILD_SUBREAPER = 36
ORPHANS_WAIT = 30.0


def become_subreaper() -> bool:
    """Linux: the processes a command leaves behind (the engine's forkserver, whose workers
    it reaps itself) become this process's, so that their CPU time can be counted; wait4 on
    the command alone counts only the descendants it waited for."""
    try:
        import ctypes

        return bool(ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


SUBREAPER = become_subreaper()


def reap_orphans() -> float:
    """CPU seconds of the orphaned descendants, once they exit (within ORPHANS_WAIT)."""
    cpu, deadline = 0.0, time.monotonic() + ORPHANS_WAIT
    while time.monotonic() < deadline:
        try:
            pid, _, ru = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            time.sleep(0.02)
            continue
        cpu += ru.ru_utime + ru.ru_stime
    return cpu


def timed(argv: Sequence[str], cwd: Path, timeout: float) -> Timed:
    """Run argv; wall clock from spawn to reap, CPU time from wait4's rusage: the command's,
    its waited-for descendants' and (as a subreaper, on Linux) the ones it left behind."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        os.sync()  # untimed: no writeback from the previous run competes with this one
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        killer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
        killer.start()
        try:
            _, status, ru = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        wall = time.perf_counter() - t0
        orphans = reap_orphans() if SUBREAPER else 0.0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        return Timed(
            wall,
            ru.ru_utime + ru.ru_stime + orphans,
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )


class BenchError(RuntimeError):
    pass


@dataclass
class RunResult:
    timed: Timed
    report: dict[str, Any]
    executions: int | None


def cli_run(
    exe: str,
    source: Path,
    work: Path,
    tag: str,
    timeout: float,
    *options: str,
) -> RunResult:
    """`s3split run SOURCE --out <fresh dir> OPTIONS...`; the report is read, the dir removed."""
    base = Path(tempfile.mkdtemp(prefix=f"{tag}-", dir=work))
    out = base / "out"
    try:
        t = timed([exe, "run", str(source), "--out", str(out), *options], base, timeout)
        if t.rc != 0:
            raise BenchError(f"s3split run {' '.join(options)}: {t.fail_reason()}")
        report = json.loads((out / "report.json").read_text())
    finally:
        shutil.rmtree(base, ignore_errors=True)
    found = EXECUTIONS_RE.search(t.stdout)
    return RunResult(t, report, int(found.group(1)) if found else None)


def cli_split(exe: str, source: Path, work: Path, timeout: float, *options: str) -> Timed:
    base = Path(tempfile.mkdtemp(prefix="split-", dir=work))
    try:
        t = timed([exe, "split", str(source), str(base / "out"), *options], base, timeout)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if t.rc != 0:
        raise BenchError(f"s3split split {' '.join(options)}: {t.fail_reason()}")
    return t


def median_wall(runs: Sequence[Timed]) -> float:
    return statistics.median(r.wall for r in runs)


def walls(runs: Sequence[Timed]) -> str:
    return ", ".join(f"{r.wall:.2f}" for r in runs)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def tiny_csv(path: Path, records: int) -> Path:
    """Header ``id,v`` and ``records`` records ``i,x`` (LF endings)."""
    with path.open("w", newline="") as fh:
        fh.write("id,v\n")
        fh.writelines(f"{i},x\n" for i in range(records))
    return path


# --------------------------------------------------------------------------- the three parts


SPIN = "x = 0\nfor i in range(20_000_000):\n    x += i\n"


def cpu_scaling() -> float:
    """How much two CPU-bound processes get done at once vs one alone (2.0 = two full cores).

    Shared vCPUs often deliver less; that is the ceiling for a 2-lane speed-up here."""

    def spin(n: int) -> float:
        t0 = time.perf_counter()
        procs = [subprocess.Popen([PY, "-S", "-c", SPIN]) for _ in range(n)]
        for proc in procs:
            proc.wait()
        return time.perf_counter() - t0

    return 2 * spin(1) / spin(2)


def bench_lanes(
    exe: str, ds: Dataset, chunk: int, repeat: int, work: Path, timeout: float
) -> tuple[list[list[str]], list[str]]:
    mb = ds.nbytes / 1e6
    warm(ds.path)
    runs: dict[int, list[RunResult]] = {1: [], 2: []}
    scaling: list[float] = []
    for i in range(repeat):
        scaling.append(cpu_scaling())
        print(f"  CPU scaling, 2 busy processes: {scaling[-1]:.2f}x", flush=True)
        for lanes in (1, 2) if i % 2 == 0 else (2, 1):  # alternate the order against drift
            r = cli_run(
                exe,
                ds.path,
                work,
                f"lanes{lanes}",
                timeout,
                *("--chunk-size", format_size(chunk), "--lanes", str(lanes)),
                *("--processor", "jsonl"),
            )
            rep = r.report
            if not (rep["succeeded"] and rep["rows_ok"] == rep["source_rows"] == ds.rows):
                raise BenchError(f"lanes {lanes}: report does not add up: {rep}")
            runs[lanes].append(r)
            print(
                f"  run --lanes {lanes} ({i + 1}/{repeat}): {r.timed.wall:7.2f} s wall, "
                f"{r.timed.cpu:7.2f} s CPU, {rep['chunks']} chunks, "
                f"handler time {rep['duration_s']['sum']:.1f} s",
                flush=True,
            )
    scaling.append(cpu_scaling())
    print(f"  CPU scaling, 2 busy processes: {scaling[-1]:.2f}x", flush=True)
    one = tiny_csv(work / "one-record.csv", 1)
    startup = {}
    for lanes in (1, 2):
        options = ("--chunk-size", format_size(chunk), "--lanes", str(lanes))
        startup[lanes] = cli_run(exe, one, work, "one", timeout, *options).timed.wall
        print(f"  run of 1 record, --lanes {lanes}: {startup[lanes]:.2f} s", flush=True)
    splits = []
    for i in range(repeat):
        t = cli_split(exe, ds.path, work, timeout, "--chunk-size", format_size(chunk))
        splits.append(t)
        print(f"  split ({i + 1}/{repeat}): {t.wall:7.2f} s", flush=True)

    def med(lanes: int, key: str) -> float:
        values = {
            "wall": [r.timed.wall for r in runs[lanes]],
            "cpu": [r.timed.cpu for r in runs[lanes]],
            "handler": [float(r.report["duration_s"]["sum"]) for r in runs[lanes]],
        }[key]
        return statistics.median(values)

    w1, w2, ws = med(1, "wall"), med(2, "wall"), median_wall(splits)
    ratio = w1 / w2
    net = (w1 - startup[1]) / (w2 - startup[2])
    n_chunks = "/".join(sorted({str(r.report["chunks"]) for r in runs[1] + runs[2]}))
    what = f"jsonl, {ds.nbytes / 2**20:.0f} MiB CSV, {format_size(chunk)} chunks"

    def walls_of(lanes: int) -> str:
        return walls([r.timed for r in runs[lanes]])

    rows = [
        [
            f"run --lanes 1 ({what})",
            f"{w1:.2f} s",
            "",
            f"{mb / w1:.1f} MB/s; {n_chunks} chunks; CPU {med(1, 'cpu'):.1f} s; "
            f"chunk handler time {med(1, 'handler'):.1f} s; runs {walls_of(1)}",
        ],
        [
            "run --lanes 2 (same)",
            f"{w2:.2f} s",
            "",
            f"{mb / w2:.1f} MB/s; CPU {med(2, 'cpu'):.1f} s; "
            f"chunk handler time {med(2, 'handler'):.1f} s; runs {walls_of(2)}",
        ],
        [
            "speed-up lanes 1 / lanes 2",
            f"{ratio:.2f}x",
            f">= {SPEEDUP_TARGET}x {verdict(ratio >= SPEEDUP_TARGET)}",
            f"{net:.2f}x without start-up (1-record run: {startup[1]:.2f} s / "
            f"{startup[2]:.2f} s at 1 / 2 lanes)",
        ],
        [
            "CPU scaling of this machine, 2 busy processes",
            f"{statistics.median(scaling):.2f}x",
            "",
            "2.00x = two full cores; the ceiling for the 2-lane speed-up; measured before "
            "each pair of runs and after: " + ", ".join(f"{x:.2f}" for x in scaling),
        ],
        [
            f"split alone (s3split split --chunk-size {format_size(chunk)})",
            f"{ws:.2f} s",
            "",
            f"{mb / ws:.0f} MB/s; {ws / w1:.0%} of the lanes-1 wall, {ws / w2:.0%} of lanes-2; "
            f"runs {walls(splits)}",
        ],
    ]
    return rows, []


def bench_overhead(
    exe: str, n: int, repeat: int, work: Path, timeout: float
) -> tuple[list[list[str]], list[str]]:
    source = tiny_csv(work / f"tiny-{n}.csv", n)
    one = tiny_csv(work / "tiny-1.csv", 1)
    options = ("--chunk-size", "1", "--processor", "noop", "--lanes", "2")
    start = cli_run(exe, one, work, "tiny1", timeout, *options)
    print(f"  run of 1 record: {start.timed.wall:.2f} s (start-up and teardown)", flush=True)
    r = cli_run(exe, source, work, f"tiny{n}", timeout, *options)
    rep = r.report
    if rep["chunks"] != n or rep["chunks_ok"] != n or not rep["succeeded"]:
        raise BenchError(f"expected {n} chunks ok, report says {rep['chunks_ok']}/{rep['chunks']}")
    print(
        f"  run of {n} records: {r.timed.wall:.2f} s wall, {r.timed.cpu:.2f} s CPU, "
        f"{rep['chunks']} chunks, {r.executions} execution(s)",
        flush=True,
    )
    splits = [cli_split(exe, source, work, timeout, "--chunk-size", "1") for _ in range(repeat)]
    ws = median_wall(splits)
    print(f"  split --chunk-size 1: {walls(splits)} s", flush=True)
    per_chunk_ms = (r.timed.wall - ws) / n * 1000
    net_ms = (r.timed.wall - start.timed.wall - ws) / n * 1000
    execs = "?" if r.executions is None else str(r.executions)
    per_exec = (
        f"{n / r.executions:.0f} chunks per execution on average (the last one is partial)"
        if r.executions
        else ""
    )
    rows = [
        [
            f"run, {n} one-record chunks (noop, 2 lanes, --chunk-size 1)",
            f"{r.timed.wall:.2f} s",
            "",
            f"report: {rep['chunks']} chunks == N; CPU {r.timed.cpu:.1f} s "
            f"({r.timed.cpu / n * 1000:.1f} ms/chunk)",
        ],
        ["executions (continue-as-new)", execs, "", per_exec],
        [
            "split alone (s3split split --chunk-size 1)",
            f"{ws:.2f} s",
            "",
            f"runs {walls(splits)}",
        ],
        [
            "overhead per chunk = (run - split) / N",
            f"{per_chunk_ms:.1f} ms",
            f"<= {OVERHEAD_TARGET_MS:.0f} ms {verdict(per_chunk_ms <= OVERHEAD_TARGET_MS)}",
            "",
        ],
        [
            "run of 1 record (start-up + teardown)",
            f"{start.timed.wall:.2f} s",
            "",
            f"overhead per chunk without it: {net_ms:.1f} ms",
        ],
    ]
    return rows, []


def bench_events(sizes: Sequence[int], work: Path) -> tuple[list[list[str]], list[str]]:
    """Two or more runs in-process; total history events (all executions) per run."""
    from s3split.deployment import Deployment
    from s3split.engine.local import local_engine
    from s3split.storage import Storage

    storage = Storage()
    points: list[tuple[int, int, int]] = []  # chunks, events, executions
    events_dir = work / "events"
    events_dir.mkdir()
    with local_engine(str(events_dir), workers=2) as engine:
        for n in sizes:
            source = tiny_csv(events_dir / f"in-{n}.csv", n)
            location = events_dir / f"run-{n}"
            run_input = {
                "source": str(source),
                "run": str(location),
                "chunk_size": 1,
                "processor": "noop",
                "lanes": 2,
            }
            outcome = engine.wait(engine.start(run_input), timeout_s=600)
            if not outcome.succeeded:
                raise BenchError(f"events run of {n}: {outcome.error}: {outcome.cause}")
            report = storage.read_json(str(location / "report.json"))
            events = sum(len(engine.history(arn)) for arn in outcome.executions)
            points.append((int(report["chunks"]), events, len(outcome.executions)))
            print(f"  {n} chunks: {events} events, {len(outcome.executions)} execution(s)")
    rows = [
        [
            f"history events, {c} chunks (noop, 2 lanes)",
            f"{e / c:.1f} /chunk",
            "",
            f"{e} events in {x} execution(s)",
        ]
        for c, e, x in points
    ]
    (c1, e1, _), (c2, e2, _) = points[0], points[-1]
    marginal = (e2 - e1) / (c2 - c1)
    budget = Deployment().event_budget
    rows.append(
        [
            f"marginal history events per chunk ({c1} -> {c2} chunks)",
            f"{marginal:.1f} /chunk",
            "",
            f"fixed part ~{e1 - marginal * c1:.0f} events; event budget {budget:,} / marginal "
            f"= ~{budget / marginal:,.0f} chunks per execution",
        ]
    )
    return rows, []


# --------------------------------------------------------------------------- main

HEADERS = ("measurement", "value", "target", "notes")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--size", type=parse_size, help="lanes input size (default 1GiB)")
    ap.add_argument(
        "--chunk",
        type=parse_size,
        default=parse_size("8MiB"),
        help="lanes chunk size (default 8MiB)",
    )
    ap.add_argument("--chunks", type=int, help="overhead run: records = chunks (default 10000)")
    ap.add_argument("--events", default=None, help="chunks of the event runs (default 20,100)")
    ap.add_argument("--repeat", type=int, help="lanes runs per lane count (default 2)")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 32MiB, 500 chunks, events 10,40, 1 run each",
    )
    ap.add_argument(
        "--parts", default="lanes,overhead,events", help="comma list of parts to run (default all)"
    )
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per run")
    ap.add_argument("--data-dir", type=Path, default=BENCH_DIR / "data")
    ap.add_argument(
        "--md",
        type=Path,
        default=BENCH_DIR / "results" / "pipeline.md",
        help="Markdown report path (default bench/results/pipeline.md)",
    )
    ap.add_argument("--s3split", help="s3split executable (default: the venv's, else PATH)")
    args = ap.parse_args(argv)
    q = args.quick
    size: int = args.size or parse_size("32MiB" if q else "1GiB")
    n_chunks: int = args.chunks or (500 if q else 10_000)
    repeat: int = args.repeat or (1 if q else 2)
    events = [int(x) for x in (args.events or ("10,40" if q else "20,100")).split(",")]
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if unknown := parts - {"lanes", "overhead", "events"}:
        ap.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    if len(events) < 2 or len(set(events)) != len(events):
        ap.error("--events needs two or more different chunk counts")
    exe = s3split_exe(args.s3split)
    if exe is None:
        ap.error("s3split executable not found (venv bin or PATH); pass --s3split")

    data_dir: Path = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    info = machine_info(data_dir)
    print("machine:")
    for k, v in info:
        print(f"  {k:<12} {v}")

    rows: list[list[str]] = []
    notes: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="pipeline-", dir=data_dir))
    started = time.monotonic()
    try:
        if "lanes" in parts:
            ds = ensure_data(data_dir, size, args.seed, False)
            print(f"1. lanes: {ds.path.name} ({ds.nbytes} bytes, {ds.rows} rows)", flush=True)
            r, n = bench_lanes(exe, ds, args.chunk, repeat, work, args.timeout)
            rows += r
            notes += n
        if "overhead" in parts:
            print(f"2. overhead: {n_chunks} one-record chunks", flush=True)
            r, n = bench_overhead(exe, n_chunks, repeat, work, args.timeout)
            rows += r
            notes += n
        if "events" in parts:
            print(f"3. history events: runs of {', '.join(map(str, events))} chunks", flush=True)
            r, n = bench_events(events, work)
            rows += r
            notes += n
    finally:
        shutil.rmtree(work, ignore_errors=True)
    elapsed = time.monotonic() - started

    print()
    print(table(HEADERS, rows, md=False))
    for line in notes:
        print(line)
    print(f"benchmark took {elapsed:.0f} s")

    cmd = "python bench/bench_pipeline.py" + (" --quick" if q else "")
    if args.size:
        cmd += f" --size {format_size(size)}"
    if args.chunks:
        cmd += f" --chunks {n_chunks}"
    md = [
        "# Pipeline benchmark",
        "",
        "`s3split run` end to end: the real state machine on moto's Step Functions "
        "interpreter, the Lambda handlers in worker processes, local files. Walls are from "
        "spawning `s3split` to its exit (Python start-up and worker pool included); CPU is "
        "user+sys of the CLI and its worker processes.",
        "",
        table(HEADERS, rows, md=True),
        "",
        *([f"- {line}" for line in notes] + [""] if notes else []),
        "Machine: " + "; ".join(f"{k} {v}" for k, v in info),
        "",
        f"Generated by `{cmd}` on {time.strftime('%Y-%m-%d')} (took {elapsed:.0f} s).",
        "",
    ]
    args.md.parent.mkdir(parents=True, exist_ok=True)
    args.md.write_text("\n".join(md))
    print(f"\nwrote {args.md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
