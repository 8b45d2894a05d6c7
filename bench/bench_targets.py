"""The end-to-end targets, each as a ratio measured in one run of this script.

    python bench/bench_targets.py [--scale 1] [--repeat 3] [--rows split-export,...]

- split-export: `s3split split` of a 1 GiB realistic export (gen_export.py, CRLF), 64 MiB
  chunks, / GNU `split -C 64M` (target <= 1.25x); `--jobs 1` / default jobs (>= 1.7x).
- split-dense: the same on the quote-dense file, every field quoted (<= 2.0x).
- lanes: `s3split run --lanes 1` / `--lanes 2`, 1 GiB quote-dense, 8 MiB chunks (>= 1.8x); the
  detail says how much of each run was outside the engine's run (the process's start and
  exit: serial, so it bounds the ratio; 128 MiB runs 16 chunks, ~2.4 s of work, so there
  even a start-up of 0.3 s would leave no 1.8x), and how much two busy processes got done at
  once before and after (2.00x: two free cores; other work on the machine lowers it, and 2
  lanes can do no better).
- jsonl: `s3split run --processor jsonl --lanes 2`, 256 MiB export, 8 MiB chunks, / DuckDB
  `COPY (SELECT * FROM read_csv(.., all_varchar=true)) TO .. (FORMAT json)` (<= 1.5x).
- s3: `s3split split s3://.. s3://..` of a 256 MiB export through a counting proxy to a moto
  server: bytes sent / source bytes (<= 12 %).
- startup: `s3split run` of a 3-row file, median wall of --repeat (<= 1.5 s).

``--scale 0.0625`` divides every size by 16 (a smoke run: the ratios are then not the
targets'). Each timed command runs after an untimed ``sync``, its input read once before
(page cache warm); before each split (GNU's and ours alike) as much memory as it will write
is touched and freed, untimed (``bench_split.warm_memory``: on this VM the first touch of a
page costs more than the split). The 1-minute load average is printed with each row: other
work on the machine skews wall times. The table is printed and written to
bench/results/targets.md.
"""

from __future__ import annotations

import argparse
import compileall
import datetime
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from bench_pipeline import RunResult, Timed, cli_run, cli_split, cpu_scaling, timed
from bench_split import (
    BENCH_DIR,
    PY,
    WARM_EXTRA,
    Dataset,
    ensure_shape,
    load,
    publish,
    s3split_exe,
    warm,
    warm_memory,
)
from gen_csv import format_size, parse_size

DUCKDB_JSON = """\
import sys, duckdb
q = ("COPY (SELECT * FROM read_csv(?, header=true, all_varchar=true)) TO '{}' (FORMAT json)"
     .format(sys.argv[2].replace("'", "''")))
duckdb.execute(q, [sys.argv[1]])
"""
CONDITIONS = """\
The load column is the load average as each row ended (the benchmark's own work counts in
it). The split rows warm the memory each command will write first (`warm_memory`: on a VM
whose host backs a page on its first touch, the first writer pays a fault per page) and take
the median of the paired ratios. The lanes row runs the 1 GiB quote-dense file (on 128 MiB its
16 chunks are too little work for any start-up to leave 1.8x) and prints how much two busy
processes at once got done against one: two lanes can do no better. The jsonl and lanes rows
warm three times their source's size before each run (what a jsonl run writes, with room),
and the project is byte-compiled before the first row."""
ROWS = ("split-export", "split-dense", "lanes", "jsonl", "s3", "startup")
TIMEOUT = 1800.0
CPUS = os.cpu_count() or 1
# What a jsonl run writes, against its source: the chunks (1x) and JSON Lines (~1.9x on the
# export); DuckDB's COPY writes the JSON alone. Both get the same memory warmed.
OUTPUT_SHARE = 3.0


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.exe = s3split_exe()
        if self.exe is None:
            raise SystemExit("s3split is not installed in this venv: make install")
        self.data = args.data_dir
        self.data.mkdir(parents=True, exist_ok=True)
        self.work = Path(tempfile.mkdtemp(prefix="targets-", dir=self.data))
        self.table: list[list[str]] = []

    def size(self, text: str) -> int:
        return max(1 << 20, int(parse_size(text) * self.args.scale))

    def dataset(self, shape: str, size: str) -> Dataset:
        ds = ensure_shape(self.data, shape, self.size(size), self.args.seed, False)
        warm(ds.path)
        return ds

    def row(self, what: str, value: str, target: str, ok: bool, detail: str) -> None:
        line = [what, value, target, "holds" if ok else "NOT met", detail, load()]
        print(" | ".join(line), flush=True)
        self.table.append(line)

    # ------------------------------------------------------------------ the rows

    def gnu_split(self, ds: Dataset, chunk: int) -> Timed:
        out = Path(tempfile.mkdtemp(prefix="splitC-", dir=self.work))
        try:
            ready(ds)
            return timed(["split", "-C", str(chunk), str(ds.path), str(out / "part-")], out,
                         TIMEOUT)
        finally:
            shutil.rmtree(out, ignore_errors=True)

    def s3split_split(self, ds: Dataset, chunk: int, *options: str) -> Timed:
        assert self.exe is not None
        ready(ds)
        return cli_split(self.exe, ds.path, self.work, TIMEOUT, "--chunk-size", str(chunk),
                         *options)

    def split_rows(self, shape: str, label: str, target: float, jobs_target: float | None,
                   ) -> None:
        """GNU split, ours and ours with ``--jobs 1`` in turn, --repeat times (a change in the
        machine's load falls on the three alike); each ratio is the median of the ratios of
        the runs taken together, the times the medians."""
        ds = self.dataset(shape, "1GiB")
        chunk = self.size("64MiB")
        gnu: list[Timed] = []
        ours: list[Timed] = []
        one: list[Timed] = []
        for _ in range(self.args.repeat):
            gnu.append(self.gnu_split(ds, chunk))
            ours.append(self.s3split_split(ds, chunk))
            if jobs_target is not None:
                one.append(self.s3split_split(ds, chunk, "--jobs", "1"))
        ratio = statistics.median(o.wall / g.wall for o, g in zip(ours, gnu, strict=True))
        what = f"split {format_size(self.size('1GiB'))} {label}, {format_size(chunk)} chunks"
        floor = statistics.median(o.cpu / CPUS / g.wall for o, g in zip(ours, gnu, strict=True))
        self.row(what, f"{ratio:.2f}x split -C", f"<= {target}x", ratio <= target,
                 f"s3split {_times(ours)}, split -C {_times(gnu)}; bound: our CPU spread "
                 f"evenly on {CPUS} CPUs would take {floor:.2f}x")
        if jobs_target is not None:
            pairs = list(zip(one, ours, strict=True))
            speedup = statistics.median(j.wall / o.wall for j, o in pairs)
            most = statistics.median(j.wall / (o.cpu / CPUS) for j, o in pairs)
            self.row(f"split {label}, --jobs 1 -> default", f"{speedup:.2f}x",
                     f">= {jobs_target}x", speedup >= jobs_target,
                     f"jobs 1 {_times(one)}, default {_times(ours)} on {CPUS} CPUs; bound: "
                     f"the default's CPU spread evenly would give at most {most:.2f}x")

    def lanes(self) -> None:
        ds = self.dataset("quote-dense", "1GiB")
        chunk = str(self.size("8MiB"))
        runs: dict[int, list[RunResult]] = {1: [], 2: []}
        ceiling = [cpu_scaling()]  # (two busy processes at once: the most 2 lanes can do)
        for _ in range(self.args.repeat):  # (alternated: the machine's load drifts)
            for lanes, done in runs.items():
                ready(ds, OUTPUT_SHARE)
                done.append(self.run_once(ds, "--chunk-size", chunk, "--lanes", str(lanes)))
        ceiling.append(cpu_scaling())
        (one, one_cpu, one_out), (two, two_cpu, two_out) = (
            (statistics.median(r.timed.wall for r in done),
             statistics.median(r.timed.cpu for r in done),
             statistics.median(r.timed.wall - engine_seconds(r) for r in done))
            for done in runs.values())
        speedup = one / two
        serial, most = amdahl(runs[1])
        self.row(f"run {format_size(self.size('1GiB'))} quote-dense, --lanes 1 -> 2 (jsonl)",
                 f"{speedup:.2f}x", ">= 1.8x", speedup >= 1.8,
                 f"lanes 1 {one:.2f} s ({one_cpu:.2f} s CPU, {one_out:.2f} s outside the "
                 f"run), lanes 2 {two:.2f} s ({two_cpu:.2f} s CPU, {two_out:.2f} s outside); "
                 f"two busy processes at once {min(ceiling):.2f}-{max(ceiling):.2f}x; "
                 f"{serial:.2f} s of a 1-lane run is not chunk processing (start-up, split, "
                 f"the engine between chunks, the end): 2 lanes that halved only the "
                 f"processing would give {most:.2f}x")

    def run_once(self, ds: Dataset, *options: str) -> RunResult:
        assert self.exe is not None
        return cli_run(self.exe, ds.path, self.work, "run", TIMEOUT, *options)

    def jsonl(self) -> None:
        """Ours and DuckDB in turn, --repeat times, each after the memory its output needs is
        warmed (the chunks and the JSON: ``OUTPUT_SHARE`` of the source, the same for both);
        the ratio is the median of the paired ratios."""
        assert self.exe is not None
        ds = self.dataset("export", "256MiB")
        chunk = str(self.size("8MiB"))
        ours: list[Timed] = []
        duck: list[Timed] = []
        out = self.work / "duckdb.json"
        for _ in range(self.args.repeat):
            ready(ds, OUTPUT_SHARE)
            ours.append(cli_run(self.exe, ds.path, self.work, "run", TIMEOUT, "--chunk-size",
                                chunk, "--lanes", "2", "--processor", "jsonl").timed)
            ready(ds, OUTPUT_SHARE)
            try:
                duck.append(timed([PY, "-c", DUCKDB_JSON, str(ds.path), str(out)], self.work,
                                  TIMEOUT))
            finally:
                out.unlink(missing_ok=True)
        ratio = statistics.median(o.wall / d.wall for o, d in zip(ours, duck, strict=True))
        self.row("run --processor jsonl --lanes 2, export", f"{ratio:.2f}x DuckDB", "<= 1.5x",
                 ratio <= 1.5, f"s3split {_times(ours)}, DuckDB COPY .. json {_times(duck)}")

    def s3(self) -> None:
        ds = self.dataset("export", "256MiB")
        sent, received, source = s3_split_counts(ds.path, self.size("64MiB"))
        share = sent / source
        self.row("split s3:// -> s3://, export", f"{share:.1%} of the source sent", "<= 12 %",
                 share <= 0.12, f"{sent:,} of {source:,} bytes; {received:,} bytes got back "
                 f"({received / source:.1%} of the source: each byte read once, and the "
                 "answers' own bytes)")

    def startup(self) -> None:
        path = self.work / "three.csv"
        path.write_text("id,name\n1,a\n2,b\n3,c\n")
        assert self.exe is not None
        exe = self.exe
        runs = [cli_run(exe, path, self.work, "tiny", TIMEOUT).timed
                for _ in range(self.args.repeat)]
        wall = statistics.median(r.wall for r in runs)
        cpu = statistics.median(r.cpu for r in runs)
        self.row("run of a 3-row file", f"{wall:.2f} s wall", "<= 1.5 s", wall <= 1.5,
                 f"{cpu:.2f} s CPU; walls {', '.join(f'{r.wall:.2f}' for r in runs)}")

    def run(self, rows: Sequence[str]) -> None:
        steps: dict[str, Callable[[], None]] = {
            "split-export": lambda: self.split_rows("export", "realistic export", 1.25, 1.7),
            "split-dense": lambda: self.split_rows("quote-dense", "quote-dense", 2.0, None),
            "lanes": self.lanes,
            "jsonl": self.jsonl,
            "s3": self.s3,
            "startup": self.startup,
        }
        try:
            for name in rows:
                steps[name]()
        finally:
            shutil.rmtree(self.work, ignore_errors=True)


def _times(runs: Sequence[Timed]) -> str:
    """Median wall and CPU seconds, and the walls."""
    return (f"{statistics.median(r.wall for r in runs):.2f} s "
            f"({statistics.median(r.cpu for r in runs):.2f} s CPU; walls "
            f"{', '.join(f'{r.wall:.2f}' for r in runs)})")


ENGINE_TIME = re.compile(r"^time\s+([\d.]+) s", re.MULTILINE)


def engine_seconds(run: RunResult) -> float:
    """The run's time as its summary says it (from the engine's start to the run's end)."""
    found = ENGINE_TIME.search(run.timed.stdout)
    if found is None:
        raise SystemExit(f"no time in the summary of s3split run: {run.timed.stdout[-500:]}")
    return float(found.group(1))


def amdahl(one_lane: Sequence[RunResult]) -> tuple[float, float]:
    """From 1-lane runs: the seconds that were not chunk processing (the wall less the sum of
    the chunks' processing times, as the report gives it), and the speed-up 2 lanes would
    give if they halved the processing and nothing else (medians; the engine's steps between
    chunks are among the rest, and 2 lanes do share them: an estimate, slightly low)."""
    serial = [r.timed.wall - r.report["duration_s"]["sum"] for r in one_lane]
    most = [r.timed.wall / (s + (r.timed.wall - s) / 2) for r, s in zip(one_lane, serial,
                                                                         strict=True)]
    return statistics.median(serial), statistics.median(most)


def ready(ds: Dataset, share: float = 1.0) -> None:
    """Untimed, before each timed command: the last run's writeback done, and memory for
    this run's output (``share`` of the source) warmed (``warm_memory``: on this VM a first
    touch costs more than the split)."""
    os.sync()
    warm_memory(int(ds.nbytes * share) + WARM_EXTRA)


def byte_compile() -> None:
    """Untimed, once: the project's modules compiled, as an installed package's are (with
    PYTHONDONTWRITEBYTECODE set, an editable install would compile every changed module in
    every timed command)."""
    root = BENCH_DIR.parent
    for tree in ("src", "functions"):
        compileall.compile_dir(str(root / tree), quiet=1)


def s3_split_counts(path: Path, chunk: int) -> tuple[int, int, int]:
    """Bytes `s3split split s3://.. s3://..` (the CLI, a subprocess) sends to S3 and gets
    from it, and the source's size: a moto server behind a counting proxy in this process."""
    sys.path.insert(0, str(BENCH_DIR.parent))
    from tests.support.counting_proxy import CountingProxy

    from bench_s3_assembly import BUCKET, client, moto_server

    with moto_server() as port, CountingProxy(port) as proxy:
        direct = client(port)
        direct.create_bucket(Bucket=BUCKET)
        direct.upload_file(str(path), BUCKET, "in/source.csv")
        proxy.reset()
        env = dict(os.environ, AWS_ENDPOINT_URL=f"http://127.0.0.1:{proxy.port}")
        exe = s3split_exe()
        assert exe is not None
        subprocess.run([exe, "split", f"s3://{BUCKET}/in/source.csv", f"s3://{BUCKET}/out",
                        "--chunk-size", str(chunk)], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        sent, received = proxy.reset()
    return sent, received, path.stat().st_size


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every size (smoke: 1/16)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma list of {', '.join(ROWS)}")
    ap.add_argument("--data-dir", type=Path, default=BENCH_DIR / "data")
    ap.add_argument("--md", type=Path, default=BENCH_DIR / "results" / "targets.md")
    args = ap.parse_args(argv)
    rows = [r for r in args.rows.split(",") if r]
    unknown = set(rows) - set(ROWS)
    if unknown:
        ap.error(f"unknown rows {', '.join(sorted(unknown))}; known: {', '.join(ROWS)}")
    byte_compile()
    load_before = load()
    bench = Bench(args)
    bench.run(rows)
    header = ["what", "measured", "target", "verdict", "detail", "load (1 min)"]
    command = " ".join([".venv/bin/python bench/bench_targets.py", *(argv or sys.argv[1:])])
    lines = ["# Targets", "", f"{datetime.date.today()}, `{command.strip()}`: scale "
             f"{args.scale}, median of {args.repeat}, {os.cpu_count()} CPUs, load (1 min) "
             f"{load_before} before the first row.", "", CONDITIONS, "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in bench.table]
    text = "\n".join(lines) + "\n"
    publish(text, args.md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
