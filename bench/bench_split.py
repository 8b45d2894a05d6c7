"""Benchmark `s3split split` against GNU split, DuckDB, Miller and a stdlib csv splitter.

    python bench/bench_split.py [--size 1GiB] [--sizes 256MiB,2GiB] [--keep]

All tools split the SAME generated file (bench/data/, reused across runs, keyed by size,
seed and line ending) into ~64 MiB chunks. Each tool runs in its own subprocess, output
into a fresh directory on the data directory's filesystem, ``--repeat`` times (default 3)
after one untimed warm-up read of the input; the table shows the median wall time and the
highest peak RSS (``os.wait4`` rusage of the child). A tool that is missing or fails is
reported as "not available" and the benchmark goes on. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gen_csv import format_size, parse_size

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
PY = sys.executable
RSS_LIMIT_MIB = 150.0
RSS_SPREAD = 0.10
WARM_EXTRA = 512 << 20  # memory warmed beyond the output's size: the tools' own
rss_floor_mib = 0.0  # the launcher's floor, measured in main()

DUCKDB_SCRIPT = """\
import sys, duckdb
src, dest, nbytes = sys.argv[1], sys.argv[2], int(sys.argv[3])
q = ("COPY (SELECT * FROM read_csv(?, header=true, all_varchar=true)) TO '{}' "
     "(FORMAT CSV, HEADER, FILE_SIZE_BYTES {})").format(dest.replace("'", "''"), nbytes)
duckdb.execute(q, [src])
"""


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Dataset:
    path: Path
    rows: int
    nbytes: int
    header: bytes  # first line, without its line ending
    header_len: int  # first line's length in bytes, with its line ending

    @property
    def rows_per_byte(self) -> float:
        return self.rows / self.nbytes


def ensure_data(
    data_dir: Path, size: int, seed: int, lf: bool, generator: str = "gen_csv"
) -> Dataset:
    """Generate (or reuse) the data file for (size, seed, line ending) with ``generator``
    (bench/gen_csv.py, or bench/gen_export.py: the realistic export)."""
    prefix = "gen" if generator == "gen_csv" else generator.removeprefix("gen_")
    stem = f"{prefix}-{format_size(size)}-seed{seed}-{'lf' if lf else 'crlf'}"
    csv_path = data_dir / f"{stem}.csv"
    stats_path = data_dir / f"{stem}.json"
    stats: dict[str, object] | None = None
    if csv_path.exists() and stats_path.exists():
        stats = json.loads(stats_path.read_text())
        if stats.get("bytes") != csv_path.stat().st_size:
            stats = None
    if stats is None:
        print(f"generating {csv_path.name} ...", flush=True)
        cmd = [
            PY,
            str(BENCH_DIR / f"{generator}.py"),
            str(csv_path),
            "--size",
            str(size),
            "--seed",
            str(seed),
            "--stats-json",
            str(stats_path),
        ]
        if lf:
            cmd.append("--lf")
        subprocess.run(cmd, check=True)
        stats = json.loads(stats_path.read_text())
    else:
        print(
            f"reusing {csv_path.relative_to(REPO) if csv_path.is_relative_to(REPO) else csv_path}"
            f" ({stats['rows']} rows, {stats['bytes']} bytes)"
        )
    with csv_path.open("rb") as fh:
        line = fh.readline()
    rows, nbytes = stats["rows"], stats["bytes"]
    assert isinstance(rows, int) and isinstance(nbytes, int)
    return Dataset(csv_path, rows, nbytes, line.rstrip(b"\r\n"), len(line))


SHAPES = ("light", "quote-dense", "export")


def ensure_shape(data_dir: Path, shape: str, size: int, seed: int, lf: bool) -> Dataset:
    """The data file of ``shape``: gen_csv's lightly quoted export, gen_export's realistic one
    (a quoted "Last, First" in every record, a note with a line break in one of 20), or
    gen_csv's records with every field quoted (bench_shapes.gen_quoteall; CRLF), generated
    once and reused."""
    if shape == "light":
        return ensure_data(data_dir, size, seed, lf)
    if shape == "export":
        return ensure_data(data_dir, size, seed, lf, "gen_export")
    from bench_shapes import gen_quoteall  # (bench_shapes imports this module)

    csv_path = data_dir / f"quoteall-{format_size(size)}-seed{seed}.csv"
    stats_path = csv_path.with_suffix(".json")
    if not csv_path.exists():
        gen_quoteall(csv_path, size, seed)  # (says so itself)
    stats: dict[str, int] = {}
    if stats_path.exists():
        stats = json.loads(stats_path.read_text())
    if stats.get("bytes") != csv_path.stat().st_size:
        print(f"counting the records of {csv_path.name} ...", flush=True)
        with csv_path.open(newline="", encoding="utf-8") as fh:
            rows = sum(1 for _ in csv.reader(fh)) - 1
        stats = {"rows": rows, "bytes": csv_path.stat().st_size}
        stats_path.write_text(json.dumps(stats))
    with csv_path.open("rb") as fh:
        line = fh.readline()
    return Dataset(csv_path, stats["rows"], stats["bytes"], line.rstrip(b"\r\n"), len(line))


SPIN_SCRIPT = """\
import sys, time
from concurrent.futures import ProcessPoolExecutor
def spin(n):
    x = 0
    for i in range(n):
        x += i
    return x
if __name__ == "__main__":
    n, cpus = 3_000_000, int(sys.argv[1])
    with ProcessPoolExecutor(cpus) as pool:
        list(pool.map(spin, [1] * cpus))  # (workers started)
        t = time.perf_counter(); spin(n); one = time.perf_counter() - t
        t = time.perf_counter(); list(pool.map(spin, [n] * cpus)); many = time.perf_counter() - t
    print(f"{cpus * one / many:.2f}")
"""


def parallelism() -> str:
    """How many CPUs' worth of work the machine does at once right now (the same loop in
    one process, then in one per CPU): below the CPU count, other work takes the rest, and
    no tool can go faster in parallel than this."""
    cpus = len(os.sched_getaffinity(0))
    best = 0.0
    for _ in range(3):
        r = subprocess.run([PY, "-c", SPIN_SCRIPT, str(cpus)], capture_output=True, text=True)
        with contextlib.suppress(ValueError):
            best = max(best, float(r.stdout.strip()))
    return f"{best:.2f} of {cpus}"


def load() -> str:
    """The 1-minute load average (other work on the machine skews wall times)."""
    return f"{os.getloadavg()[0]:.2f}"


def publish(text: str, md: Path) -> None:
    """Print a result and write it to ``md`` (bench/results/...)."""
    print(text)
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(text)


def warm(path: Path) -> None:
    """Untimed read so every tool starts with the input in the page cache."""
    with path.open("rb") as fh:
        while fh.read(16 << 20):
            pass


def warm_memory(nbytes: int) -> None:
    """Untimed: touch and free ``nbytes`` of memory, so that the next command's writes land
    in pages the machine already backs. On a VM whose host backs guest memory lazily and
    takes back what the guest frees (free page reporting: this machine's Firecracker VM,
    ``page_reporting.page_reporting_order`` on the kernel's command line), a page cache page
    the guest touches for the first time costs a fault on the host: about 2.5 s of system
    time per GiB written, charged to whichever command writes first (GNU split's 1 GiB took
    0.4 s of CPU warm and 2.5-2.9 s cold). Every tool gets the same, as on a machine that
    backs its memory."""
    import mmap

    import numpy as np

    with mmap.mmap(-1, nbytes) as m:
        np.frombuffer(m, np.uint8)[::mmap.PAGESIZE] = 1


# --------------------------------------------------------------------------- measuring


@dataclass
class Run:
    wall: float
    maxrss_kib: int
    rc: int
    stderr: str
    cpu: float = 0.0  # user + system seconds of the tool and its processes


# Launcher for the measured command. ru_maxrss of a child is max(its own peak, the RSS of
# the process it was forked from at exec time), so wait4 straight from this (large) Python
# process would report at least this process's RSS for every tool. A tiny launcher that
# fork()s + exec()s the tool and wait4()s it lowers that floor to the launcher's few MiB
# (measured at start-up and shown as "<= floor" where a tool does not exceed it).
SPAWN_SCRIPT = """\
import os, sys, time
out, exe, argv = sys.argv[1], sys.argv[2], sys.argv[2:]
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:  # exec at once: whatever the child allocates first raises the floor
    try:
        os.execv(exe, argv)
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t0
with open(out, "w") as fh:
    fh.write(f"{wall} {ru.ru_maxrss} {os.waitstatus_to_exitcode(status)} "
             f"{ru.ru_utime + ru.ru_stime}")
"""


def measure(argv: Sequence[str], cwd: Path, timeout: float) -> Run:
    """Run argv via the launcher: wall clock from fork to reap, peak RSS from wait4."""
    exe = shutil.which(argv[0]) if os.sep not in argv[0] else argv[0]
    if exe is None:
        return Run(0.0, 0, 127, f"{argv[0]}: not found")
    argv = [os.path.abspath(exe), *argv[1:]]
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result"
        err_path = Path(tmp) / "stderr"
        with err_path.open("wb") as err:
            proc = subprocess.Popen(
                [PY, "-S", "-I", "-c", SPAWN_SCRIPT, str(result), *argv],
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
                return Run(timeout, 0, -9, f"timed out after {timeout:.0f} s")
        text = err_path.read_text(errors="replace")
        if not result.exists():
            return Run(0.0, 0, proc.returncode or 1, text or "launcher failed")
        wall, rss, rc, cpu = result.read_text().split()
    return Run(float(wall), int(rss), int(rc), text, float(cpu))  # Linux: ru_maxrss is KiB


def fmt_rss(mib: float) -> str:
    """Peak RSS in MiB, or "<=floor" when the tool stayed under the launcher's floor."""
    if rss_floor_mib and mib <= rss_floor_mib + 0.25:
        return f"<={rss_floor_mib:.1f}"
    return f"{mib:.1f}"


def _probe(argv: Sequence[str]) -> str | None:
    """None if ``argv`` runs and exits 0, else a short reason."""
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if r.returncode == 0:
        return None
    lines = [ln for ln in (r.stderr or r.stdout).strip().splitlines() if ln.strip()]
    return lines[-1][:160] if lines else f"exit {r.returncode}"


def _version(argv: Sequence[str]) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    out = (r.stdout or r.stderr).strip().splitlines()
    return out[0].strip() if r.returncode == 0 and out else "?"


# --------------------------------------------------------------------------- tools


@dataclass
class Tool:
    key: str
    label: str
    # (input file, output dir, chunk bytes, chunk rows) -> argv; runs with cwd = output dir
    # when ``mkdir`` is true (the tool needs an existing dir), else cwd = its parent and the
    # tool creates the output dir itself.
    argv: Callable[[Path, Path, int, int], list[str]]
    probe: Callable[[], str | None]
    version: Callable[[], str]
    mkdir: bool = False
    header_each: bool = True  # expected to repeat the header in every chunk
    unavailable: str | None = None


def s3split_exe(override: str | None = None) -> str | None:
    if override:
        return shutil.which(override) or (override if Path(override).exists() else None)
    venv_bin = Path(PY).parent / "s3split"
    if venv_bin.exists():
        return str(venv_bin)
    return shutil.which("s3split")


def s3split_version(exe: str | None) -> str:
    v = _version([exe, "--version"]) if exe else "?"
    if v == "?":
        v = _version([PY, "-c", "import importlib.metadata as m; print(m.version('s3split'))"])
    return v


def make_tools(s3split: str | None = None) -> list[Tool]:
    exe = s3split_exe(s3split)

    def s3split_probe() -> str | None:
        if exe is None:
            return f"{s3split or 's3split'} not found (venv bin or PATH)"
        return _probe([exe, "split", "--help"])

    mlr = shutil.which("mlr")
    return [
        Tool(
            "s3split-size",
            f"s3split split --chunk-size (default --jobs {os.cpu_count()})",
            lambda f, o, b, r: [
                exe or "s3split",
                "split",
                str(f),
                str(o),
                "--chunk-size",
                format_size(b),
            ],
            s3split_probe,
            lambda: s3split_version(exe),
        ),
        Tool(
            "s3split-jobs1",
            "s3split split --chunk-size --jobs 1",
            lambda f, o, b, r: [
                exe or "s3split",
                "split",
                str(f),
                str(o),
                "--chunk-size",
                format_size(b),
                "--jobs",
                "1",
            ],
            s3split_probe,
            lambda: s3split_version(exe),
        ),
        Tool(
            "s3split-rows",
            "s3split split --chunk-rows",
            lambda f, o, b, r: [exe or "s3split", "split", str(f), str(o), "--chunk-rows", str(r)],
            s3split_probe,
            lambda: s3split_version(exe),
        ),
        Tool(
            "split-C",
            "GNU split -C",
            lambda f, o, b, r: ["split", "-C", str(b), str(f), str(o / "part-")],
            lambda: None if shutil.which("split") else "split not found",
            lambda: _version(["split", "--version"]),
            mkdir=True,
            header_each=False,
        ),
        Tool(
            "duckdb",
            "DuckDB COPY .. FILE_SIZE_BYTES",
            lambda f, o, b, r: [PY, "-c", DUCKDB_SCRIPT, str(f), str(o), str(b)],
            lambda: _probe([PY, "-c", "import duckdb"]),
            lambda: "duckdb " + _version([PY, "-c", "import duckdb; print(duckdb.__version__)"]),
        ),
        Tool(
            "miller",
            "Miller split -n",
            lambda f, o, b, r: [
                mlr or "mlr",
                "--csv",
                "split",
                "-n",
                str(r),
                "--prefix",
                "part",
                str(f),
            ],
            lambda: None if mlr else "mlr not found (run bench/setup.sh)",
            lambda: _version([mlr or "mlr", "--version"]),
            mkdir=True,
        ),
        Tool(
            "csv-module",
            "Python csv.reader/writer",
            lambda f, o, b, r: [
                PY,
                str(BENCH_DIR / "csv_module_split.py"),
                str(f),
                str(o),
                "--chunk-size",
                str(b),
            ],
            lambda: None,
            lambda: f"Python {platform.python_version()}",
        ),
    ]


# --------------------------------------------------------------------------- checking


@dataclass
class Check:
    chunks: int
    with_header: int
    chunk_bytes: int
    manifest: bool


def inspect_output(out: Path, header: bytes) -> Check:
    files = sorted(p for p in out.iterdir() if p.is_file() and p.name != "manifest.json")
    with_header = 0
    total = 0
    for p in files:
        total += p.stat().st_size
        with p.open("rb") as fh:
            first = fh.readline(len(header) + 3).rstrip(b"\r\n")
        with_header += first == header
    return Check(len(files), with_header, total, (out / "manifest.json").exists())


@dataclass
class Result:
    tool: Tool
    runs: list[Run] = field(default_factory=list)
    check: Check | None = None
    error: str | None = None
    kept: Path | None = None
    loads: tuple[str, str] = ("?", "?")  # the load average before and after its runs
    parallelism: str = "?"  # the machine's parallelism right after its runs

    @property
    def ok(self) -> bool:
        return self.error is None and self.tool.unavailable is None and bool(self.runs)

    @property
    def wall(self) -> float:
        return statistics.median(r.wall for r in self.runs)

    @property
    def cpu(self) -> float:
        return statistics.median(r.cpu for r in self.runs)

    @property
    def best(self) -> float:
        return min(r.wall for r in self.runs)

    @property
    def rss_mib(self) -> float:
        return max(r.maxrss_kib for r in self.runs) / 1024


def run_tool(
    tool: Tool,
    ds: Dataset,
    chunk: int,
    rows: int,
    repeat: int,
    timeout: float,
    work: Path,
    keep: bool,
) -> Result:
    res = Result(tool)
    if tool.unavailable:
        return res
    warm(ds.path)
    first_load = load()
    for i in range(repeat):
        base = Path(tempfile.mkdtemp(prefix=f"{tool.key}-", dir=work))
        out = base / "out"
        if tool.mkdir:
            out.mkdir()
        argv = tool.argv(ds.path, out, chunk, rows)
        os.sync()  # untimed: no writeback left over from the previous run competes with this one
        warm_memory(ds.nbytes + WARM_EXTRA)
        run = measure(argv, out if tool.mkdir else base, timeout)
        last = i == repeat - 1
        if run.rc != 0:
            lines = [ln for ln in run.stderr.strip().splitlines() if ln.strip()]
            res.error = f"exit {run.rc}: {lines[-1][:160] if lines else ''}".strip()
            shutil.rmtree(base, ignore_errors=True)
            break
        res.runs.append(run)
        if last:
            res.check = inspect_output(out, ds.header)
        if last and keep:
            res.kept = out
        else:
            shutil.rmtree(base, ignore_errors=True)
        print(
            f"  {tool.key:<13} run {i + 1}/{repeat}: {run.wall:7.2f} s  "
            f"{run.maxrss_kib / 1024:7.1f} MiB  cpu {run.cpu:6.2f} s  (load {load()})",
            flush=True,
        )
    res.loads = (first_load, load())
    res.parallelism = parallelism()
    return res


def s3split_notes(res: Result, ds: Dataset, chunk: int) -> str:
    c = res.check
    if c is None:
        return ""
    problems = []
    if c.chunks <= 1 and ds.nbytes > 2 * chunk:
        problems.append(f"only {c.chunks} chunk")
    if c.with_header != c.chunks:
        problems.append(f"header missing in {c.chunks - c.with_header} chunk(s)")
    if not c.manifest:
        problems.append("no manifest.json")
    # Byte conservation holds when chunks are verbatim slices plus a repeated header line.
    conserved = c.chunk_bytes - (c.chunks - 1) * ds.header_len == ds.nbytes
    verdict = "OK" if not problems else "FAIL: " + "; ".join(problems)
    return f"check {verdict}" + ("; bytes conserved" if conserved else "")


# --------------------------------------------------------------------------- reporting


def machine_info(data_dir: Path) -> list[tuple[str, str]]:
    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "?"
    with contextlib.suppress(OSError), open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break
    fs = "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        r = subprocess.run(
            ["df", "--output=fstype,source,target", str(data_dir)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if r.returncode == 0:
            fs = " ".join(r.stdout.strip().splitlines()[-1].split())
    return [
        ("nproc", str(len(os.sched_getaffinity(0)))),
        ("CPU", cpu),
        ("RAM", ram),
        ("Python", f"{platform.python_version()} ({PY})"),
        ("kernel", platform.release()),
        ("data dir fs", fs),
    ]


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], md: bool, notes_col: bool = True
) -> str:
    """Plain or Markdown table; numbers right-aligned, first (and notes) column left."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    if md:
        lines = [
            "| " + " | ".join(headers) + " |",
            "|"
            + "|".join(
                "---" if i == 0 or (notes_col and i == len(headers) - 1) else "---:"
                for i in range(len(headers))
            )
            + "|",
        ]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    last = len(headers) - 1 if notes_col else 0
    fmt = "  ".join(f"{{:<{w}}}" if i in (0, last) else f"{{:>{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*headers), "  ".join("-" * w for w in widths)]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(ln.rstrip() for ln in lines)


def main_rows(results: list[Result], ds: Dataset, chunk: int) -> list[list[str]]:
    ref = next((r for r in results if r.tool.key == "split-C" and r.ok), None)
    rows = []
    for r in results:
        if not r.ok:
            reason = r.tool.unavailable or (f"failed: {r.error}" if r.error else "no runs")
            rows.append([r.tool.label, *["n/a"] * 8, f"not available: {reason}"])
            continue
        c = r.check
        assert c is not None
        if r.tool.key.startswith("s3split"):
            notes = s3split_notes(r, ds, chunk)
        elif r.tool.header_each and c.with_header != c.chunks:
            notes = "header missing in some chunks"
        else:
            notes = "" if r.tool.header_each else "not CSV-aware: header only in chunk 1"
        rows.append(
            [
                r.tool.label,
                f"{r.wall:.2f}",
                f"{r.best:.2f}",
                f"{r.cpu:.2f}",
                f"{ds.nbytes / 2**20 / r.wall:.0f}",
                fmt_rss(r.rss_mib),
                f"{r.wall / ref.wall:.2f}x / {r.best / ref.best:.2f}x" if ref else "n/a",
                str(c.chunks),
                f"{c.with_header}/{c.chunks}",
                notes,
            ]
        )
    return rows


HEADERS = (
    "tool",
    "wall s",
    "best s",
    "cpu s",
    "MiB/s",
    "peak RSS MiB",
    "vs split -C (median / best)",
    "chunks",
    "header/chunk",
    "notes",
)


def rss_verdicts(points: dict[str, list[float]], several_sizes: bool) -> list[str]:
    """Per s3split mode: its peak RSS (the largest of any one process) at every size must
    stay under the limit and within the spread of its own smallest (the modes differ by
    design: the single pass reads 8 MiB blocks, each range worker 1 MiB ones)."""
    lines = []
    for mode, mibs in points.items():
        lo, hi = min(mibs), max(mibs)
        spread = (hi - lo) / lo if lo else 0.0
        ok = hi <= RSS_LIMIT_MIB and spread <= RSS_SPREAD
        lines.append(
            f"s3split peak RSS per process, {mode}: {lo:.1f}..{hi:.1f} MiB over "
            f"{len(mibs)} size(s), spread {spread:.0%} (target <= {RSS_LIMIT_MIB:.0f} MiB, "
            f"<= {RSS_SPREAD:.0%} across sizes): {'PASS' if ok else 'FAIL'}"
            + ("" if several_sizes else " [single size; pass --sizes 256MiB,2GiB]")
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument(
        "--size",
        type=parse_size,
        default=parse_size("1GiB"),
        help="input size for the comparison table (default 1GiB)",
    )
    ap.add_argument(
        "--sizes", default="", help="extra input sizes for the s3split RSS check, e.g. 256MiB,2GiB"
    )
    ap.add_argument(
        "--chunk",
        type=parse_size,
        default=parse_size("64MiB"),
        help="target chunk size (default 64MiB)",
    )
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--lf", action="store_true", help="LF data instead of CRLF (not quote-dense)")
    ap.add_argument(
        "--shape",
        choices=SHAPES,
        default="light",
        help="light: gen_csv's export (default); quote-dense: the same records, every field "
        "quoted; export: gen_export's realistic export",
    )
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per tool (default 3)")
    ap.add_argument(
        "--tools",
        default="",
        help="comma list of tool keys to run (default all): s3split-size,"
        "s3split-jobs1,s3split-rows,split-C,duckdb,miller,csv-module",
    )
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    ap.add_argument("--data-dir", type=Path, default=BENCH_DIR / "data")
    ap.add_argument(
        "--md",
        type=Path,
        default=BENCH_DIR / "results" / "split.md",
        help="Markdown report path (default bench/results/split.md)",
    )
    ap.add_argument("--s3split", help="s3split executable (default: the venv's, else PATH)")
    ap.add_argument(
        "--keep",
        action="store_true",
        help="keep each tool's last output dir (under --data-dir) for inspection",
    )
    args = ap.parse_args(argv)

    data_dir: Path = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="runs-", dir=data_dir))
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]

    global rss_floor_mib
    floor = measure([shutil.which("true") or "/bin/true"], data_dir, 60)
    rss_floor_mib = floor.maxrss_kib / 1024 if floor.rc == 0 else 0.0
    info = machine_info(data_dir)
    info.append(("RSS floor", f"{rss_floor_mib:.1f} MiB (launcher; smaller peaks show as <=)"))
    print("machine:")
    for k, v in info:
        print(f"  {k:<12} {v}")

    ds = ensure_shape(data_dir, args.shape, args.size, args.seed, args.lf)
    chunk_rows = max(1, round(args.chunk * ds.rows_per_byte))
    print(
        f"data: {ds.path.name}: {ds.rows} rows, {ds.nbytes} bytes; "
        f"chunk {format_size(args.chunk)} = {chunk_rows} rows "
        f"at {ds.nbytes / ds.rows:.1f} bytes/row"
    )

    tools = make_tools(args.s3split)
    wanted = {t.strip() for t in args.tools.split(",") if t.strip()}
    unknown = wanted - {t.key for t in tools}
    if unknown:
        ap.error(f"unknown tool(s): {', '.join(sorted(unknown))}")
    if wanted:
        tools = [t for t in tools if t.key in wanted]
    versions: list[tuple[str, str]] = []
    for t in tools:
        t.unavailable = t.probe()
        if t.unavailable:
            print(f"  {t.key:<13} not available: {t.unavailable}")
        elif t.key not in ("s3split-rows", "s3split-jobs1"):
            versions.append((t.label.split(" --")[0], t.version()))

    results: list[Result] = []
    rss_rows: list[list[str]] = []
    try:
        for t in tools:
            results.append(
                run_tool(t, ds, args.chunk, chunk_rows, args.repeat, args.timeout, work, args.keep)
            )
        # s3split RSS at other sizes (one run per mode and size).
        s3 = [r for r in results if r.tool.key.startswith("s3split")]
        rss_points: dict[str, list[float]] = {}  # per mode: its peak RSS at each size
        for r in s3:
            if r.ok:
                rss_points.setdefault(r.tool.key, []).append(r.rss_mib)
                rss_rows.append(
                    [format_size(args.size), r.tool.key, f"{r.wall:.2f}", fmt_rss(r.rss_mib)]
                )
        for size in sizes:
            if size == args.size or not any(r.ok for r in s3):
                continue
            ds_n = ensure_shape(data_dir, args.shape, size, args.seed, args.lf)
            rows_n = max(1, round(args.chunk * ds_n.rows_per_byte))
            for r in s3:
                if not r.ok:
                    continue
                rn = run_tool(r.tool, ds_n, args.chunk, rows_n, 1, args.timeout, work, False)
                if rn.ok:
                    rss_points.setdefault(r.tool.key, []).append(rn.rss_mib)
                    rss_rows.append(
                        [format_size(size), r.tool.key, f"{rn.wall:.2f}", fmt_rss(rn.rss_mib)]
                    )
                else:
                    rss_rows.append([format_size(size), r.tool.key, "n/a", f"failed: {rn.error}"])
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    rows = main_rows(results, ds, args.chunk)
    by_key = {r.tool.key: r for r in results}
    extra: list[str] = []
    size_r, rows_r = by_key.get("s3split-size"), by_key.get("s3split-rows")
    if size_r and rows_r and size_r.ok and rows_r.ok:
        extra.append(f"s3split row mode / size mode wall: {rows_r.wall / size_r.wall:.2f}")
    jobs1_r = by_key.get("s3split-jobs1")
    if size_r and jobs1_r and size_r.ok and jobs1_r.ok:
        extra.append(
            f"s3split speed-up, --jobs 1 -> default --jobs {os.cpu_count()}: "
            f"{jobs1_r.wall / size_r.wall:.2f}x (median), "
            f"{jobs1_r.best / size_r.best:.2f}x (best)"
        )
    extra += [
        f"load average (1 min) before..after {r.tool.key}: {r.loads[0]}..{r.loads[1]}; "
        f"CPUs' worth of parallel work available after it: {r.parallelism}"
        for r in results
        if r.ok
    ]
    extra += rss_verdicts(rss_points, bool(sizes))
    if not rss_points and any(t.key.startswith("s3split") for t in tools):
        extra.append("s3split RSS check: not available (s3split did not run)")

    run_walls = {r.tool.key: ", ".join(f"{x.wall:.2f}" for x in r.runs) for r in results if r.ok}
    print()
    print(table(HEADERS, rows, md=False))
    if rss_rows:
        print()
        print(
            table(("size", "mode", "wall s", "peak RSS MiB"), rss_rows, md=False, notes_col=False)
        )
    print()
    for line in extra:
        print(line)
    for k, v in versions:
        print(f"version: {k}: {v}")
    for r in results:
        if r.kept:
            print(f"kept: {r.tool.key}: {r.kept}")

    # Markdown report.
    md: list[str] = [
        "# Split benchmark",
        "",
        f"Input: `{ds.path.name}`: {ds.nbytes / 2**20:.0f} MiB, {ds.rows} records, "
        f"{len(ds.header.split(b','))} columns, seed {args.seed}, "
        f"{'LF' if args.lf and args.shape != 'quote-dense' else 'CRLF'}; quoted commas, "
        f"doubled quotes, embedded newlines"
        f"{'; every field quoted' if args.shape == 'quote-dense' else ''}.",
        f"Target chunk: {format_size(args.chunk)} (row mode / Miller: {chunk_rows} rows). "
        f"Wall = median of {args.repeat} runs after a warm-up read (best: the fastest); "
        "peak RSS = max over runs of the largest process.",
        "",
        table(HEADERS, rows, md=True),
        "",
    ]
    if rss_rows:
        md += [
            "s3split peak RSS by input size:",
            "",
            table(("size", "mode", "wall s", "peak RSS MiB"), rss_rows, md=True, notes_col=False),
            "",
        ]
    md += [f"- {line}" for line in extra]
    md += [f"- runs (s): {k}: {v}" for k, v in run_walls.items()]
    md += [
        "",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in info),
        "",
        "Versions: " + "; ".join(f"{k}: {v}" for k, v in versions),
        "",
        f"Generated by `python bench/bench_split.py --size {format_size(args.size)}"
        + (f" --shape {args.shape}" if args.shape != "light" else "")
        + (f" --sizes {args.sizes}" if args.sizes else "")
        + (f" --repeat {args.repeat}" if args.repeat != 3 else "")
        + (f" --tools {args.tools}" if args.tools else "")
        + "` on "
        + time.strftime("%Y-%m-%d")
        + ".",
        "",
    ]
    args.md.parent.mkdir(parents=True, exist_ok=True)
    args.md.write_text("\n".join(md))
    print(f"\nwrote {args.md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
