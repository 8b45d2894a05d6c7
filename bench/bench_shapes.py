"""Benchmark `s3split split` and `s3split run` on the pathological shapes (quadratic or
failing in earlier versions).

    python bench/bench_shapes.py [--scale 1] [--repeat 3] [--shapes fields,header,...]

Shapes, generated once into bench/data/ (deterministic, reused across runs), sizes times
``--scale``:

  fields     a header, then one record of 1.6 M quoted fields ``"ab","ab",...``
  header     a header of ~3.9 MB of quoted names, then 3 records
  doubled    a header, then one 200 MB quoted field of doubled quotes (``""`` repeated)
  quoteall   ~256 MiB of ordinary records with every field quoted (quote-dense baseline)
  light      bench/gen_csv.py output, ~256 MiB, lightly quoted (baseline)
  columns    200,000 (and 50,000, 100,000) columns and 5 rows, for `s3split run`

For the split shapes every tool splits the same file into ~64 MiB chunks in a subprocess
(bench_split.py's launcher: wall from fork to exit, peak RSS from wait4): `s3split split`,
the previous release (``git archive 01ecd4a``, capped at ``--prev-timeout`` s), the stdlib
csv splitter (csv_module_split.py), GNU ``split -C`` (not CSV-aware: the speed floor) and
DuckDB when installed. Each output is checked: the same records as csv.reader reads from the
source (every chunk starting with the header), and whether the chunks rejoin to the source
byte for byte. The columns shape times `s3split run FILE --processor jsonl` (current and
previous release) and reports seconds per 1,000 columns. See bench/README.md.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import bench_split
from bench_split import (
    Dataset,
    Result,
    Run,
    Tool,
    machine_info,
    make_tools,
    measure,
    run_tool,
    s3split_exe,
    table,
)
from gen_csv import HEADER, POOL_SIZE, _tail, format_size

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
PY = sys.executable
PREV_COMMIT = "01ecd4a"
CHUNK = 64 * 2**20
NL = b"\r\n"
BLOCK = 16 * 2**20
SEED = 42

# Full-scale sizes; --scale multiplies each.
FIELDS = 1_600_000
HEADER_BYTES = 3_900_000
HEADER_RECORDS = 3
DOUBLED_BYTES = 200_000_000
BASELINE_BYTES = 256 * 2**20
COLUMNS = (50_000, 100_000, 200_000)
COLUMN_ROWS = 5
FIXED_COLUMNS = 10  # the columns run that measures `run`'s fixed cost

SPLIT_SHAPES = ("fields", "header", "doubled", "quoteall", "light")
ALL_SHAPES = (*SPLIT_SHAPES, "columns")
TOOL_KEYS = ("s3split-size", "s3split-prev", "csv-module", "split-C", "duckdb")

# The previous release's CLI, run from its git archive (PYTHONPATH puts it first).
PREV_MAIN = "import sys; from s3split.cli.commands import main; sys.exit(main())"


# --------------------------------------------------------------------------- data


def _write_atomically(path: Path, write: Callable[[io.BufferedWriter], None]) -> Path:
    """Generate ``path`` once: a file that exists is complete (written aside, then renamed)."""
    if path.exists():
        print(f"reusing {path.name} ({path.stat().st_size:,} bytes)", flush=True)
        return path
    print(f"generating {path.name} ...", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        write(fh)
    os.replace(tmp, path)
    return path


def _repeat(fh: io.BufferedWriter, unit: bytes, count: int) -> None:
    """``unit * count`` in blocks of about BLOCK bytes."""
    per_block = max(1, BLOCK // len(unit))
    while count > 0:
        n = min(per_block, count)
        fh.write(unit * n)
        count -= n


def gen_fields(path: Path, fields: int) -> Path:
    """A header, then one record of ``fields`` quoted fields ``"ab"``."""

    def write(fh: io.BufferedWriter) -> None:
        fh.write(b"data" + NL)
        _repeat(fh, b'"ab",', fields - 1)
        fh.write(b'"ab"' + NL)

    return _write_atomically(path, write)


def gen_header(path: Path, nbytes: int) -> Path:
    """A header of quoted names ``"name_0000001"`` of about ``nbytes``, then a few records."""
    width = len(b'"name_0000001",')
    names = max(1, nbytes // width)

    def write(fh: io.BufferedWriter) -> None:
        for lo in range(0, names, 100_000):
            hi = min(names, lo + 100_000)
            part = ",".join(f'"name_{i:07d}"' for i in range(lo, hi))
            fh.write(part.encode() + (b"," if hi < names else NL))
        for r in range(HEADER_RECORDS):
            value = str(r).encode()
            _repeat(fh, value + b",", names - 1)
            fh.write(value + NL)

    return _write_atomically(path, write)


def gen_doubled(path: Path, nbytes: int) -> Path:
    """A header, then one quoted field of ``nbytes`` bytes that are all doubled quotes."""

    def write(fh: io.BufferedWriter) -> None:
        fh.write(b"data" + NL + b'"')
        _repeat(fh, b'""', max(1, (nbytes - 2) // 2))
        fh.write(b'"' + NL)

    return _write_atomically(path, write)


def _quote_all(tail: str) -> str:
    """gen_csv's record tail (after ``id,``) with every field quoted."""
    fields = next(csv.reader(io.StringIO(tail, newline="")))
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerow(fields)
    return out.getvalue()


def gen_quoteall(path: Path, size: int, seed: int) -> Path:
    """gen_csv's records (same pool, same draw) with every field quoted, until ``size``."""

    def write(fh: io.BufferedWriter) -> None:
        rng = random.Random(seed)
        pool = [_quote_all(_tail(rng, "\r\n")) for _ in range(POOL_SIZE)]
        header = ",".join(f'"{h}"' for h in HEADER) + "\r\n"
        fh.write(header.encode())
        written, rows = len(header), 0
        while written < size:
            picks = rng.choices(range(POOL_SIZE), k=20_000)
            data = "".join(f'"{rows + n}",{pool[i]}' for n, i in enumerate(picks, 1)).encode()
            fh.write(data)
            written += len(data)
            rows += len(picks)

    return _write_atomically(path, write)


def gen_columns(path: Path, columns: int, rows: int) -> Path:
    """``columns`` distinct names ``c1``..``cN`` and ``rows`` records of short values."""

    def write(fh: io.BufferedWriter) -> None:
        fh.write(",".join(f"c{i}" for i in range(1, columns + 1)).encode() + NL)
        for r in range(rows):
            fh.write(",".join(str((r + i) % 1000) for i in range(columns)).encode() + NL)

    return _write_atomically(path, write)


def dataset(path: Path) -> Dataset:
    with path.open("rb") as fh:
        line = fh.readline()
    return Dataset(path, 0, path.stat().st_size, line.rstrip(b"\r\n"), len(line))


def make_shape(name: str, data_dir: Path, scale: float) -> Dataset:
    if name == "fields":
        n = max(2, round(FIELDS * scale))
        return dataset(gen_fields(data_dir / f"shape-fields-{n}.csv", n))
    if name == "header":
        n = max(100, round(HEADER_BYTES * scale))
        return dataset(gen_header(data_dir / f"shape-header-{n}.csv", n))
    if name == "doubled":
        n = max(4, round(DOUBLED_BYTES * scale))
        return dataset(gen_doubled(data_dir / f"shape-doubled-{n}.csv", n))
    if name == "quoteall":
        n = max(1024, round(BASELINE_BYTES * scale))
        return dataset(gen_quoteall(data_dir / f"shape-quoteall-{n}-seed{SEED}.csv", n, SEED))
    if name == "light":
        n = max(1024, round(BASELINE_BYTES * scale))
        return dataset(bench_split.ensure_data(data_dir, n, SEED, lf=False).path)
    raise ValueError(name)


SHAPE_TITLES = {
    "fields": "(a) one record of {fields:,} quoted fields",
    "header": "(b) a header of {header_mb:.1f} MB of quoted names, then 3 records",
    "doubled": "(c) one {mb:.1f} MB quoted field of doubled quotes",
    "quoteall": "(d) quote-dense: every field quoted, {mb:.1f} MB",
    "light": "(d) lightly quoted (bench/gen_csv.py), {mb:.1f} MB",
}


# --------------------------------------------------------------------------- checking


def _natural(p: Path) -> list[object]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


def chunk_files(out: Path) -> list[Path]:
    """The chunks a tool wrote, in order (part-aa < part-ab, data_2 < data_10)."""
    files = [p for p in out.iterdir()
             if p.is_file() and p.name != "manifest.json" and not p.name.startswith(".")]
    return sorted(files, key=_natural)


def _records(path: Path) -> Iterator[list[str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        yield from csv.reader(fh)


def records_differ(source: Path, chunks: list[Path]) -> str | None:
    """None when every chunk starts with the source's header and the chunks' other records,
    in order, are the source's records as csv.reader reads them; else where they part.
    Streams: one record of each side in memory at a time."""
    csv.field_size_limit(sys.maxsize)
    try:
        src = _records(source)
        header = next(src, None)
        for chunk in chunks:
            got = _records(chunk)
            if next(got, None) != header:
                return f"{chunk.name} does not start with the header"
            for n, row in enumerate(got, 1):
                if row != next(src, None):
                    return f"{chunk.name}: record {n} is not the source's"
        if next(src, None) is not None:
            return "records of the source missing"
    except (csv.Error, UnicodeDecodeError) as exc:
        return f"unreadable: {exc}"
    return None


def rejoins(source: Path, chunks: list[Path], header: bytes) -> bool:
    """Whether the chunks, without the header that starts the 2nd and later ones, are the
    source byte for byte (compared block by block)."""
    with source.open("rb") as src:
        for i, chunk in enumerate(chunks):
            with chunk.open("rb") as fh:
                if i == 0 or fh.read(len(header)) != header:
                    fh.seek(0)
                while block := fh.read(BLOCK):
                    if src.read(len(block)) != block:
                        return False
        return src.read(1) == b""


@dataclass
class Verdict:
    chunks: int
    differ: str | None
    rejoins: bool


def check(ds: Dataset, out: Path) -> Verdict:
    files = chunk_files(out)
    with ds.path.open("rb") as fh:
        header = fh.readline()
    return Verdict(len(files), records_differ(ds.path, files), rejoins(ds.path, files, header))


# --------------------------------------------------------------------------- tools


def prev_release(data_dir: Path) -> tuple[Path | None, str]:
    """The previous release's tree (git archive, extracted once), or None and why not."""
    tree = data_dir / f"prev-{PREV_COMMIT}"
    if (tree / "src" / "s3split" / "cli.py").exists():
        return tree, ""
    if shutil.which("git") is None:
        return None, "git not found"
    tmp = data_dir / f"prev-{PREV_COMMIT}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", PREV_COMMIT],
                             capture_output=True, timeout=120)
    if archive.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        return None, f"git archive {PREV_COMMIT}: {archive.stderr.decode().strip()[:120]}"
    subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive.stdout, check=True, timeout=120)
    os.replace(tmp, tree)
    return tree, ""


def prev_argv(tree: Path, *args: str) -> list[str]:
    """The previous release's CLI: its tree first on the path, the same interpreter."""
    env = shutil.which("env") or "/usr/bin/env"
    return [env, f"PYTHONPATH={tree / 'src'}{os.pathsep}{tree}", PY, "-c", PREV_MAIN, *args]


def split_tools(data_dir: Path, s3split: str | None, wanted: set[str]) -> list[Tool]:
    known = {t.key: t for t in make_tools(s3split)}
    tree, why = prev_release(data_dir)
    known["s3split-prev"] = Tool(
        "s3split-prev",
        f"s3split {PREV_COMMIT} (previous)",
        lambda f, o, b, r: prev_argv(tree or Path("."), "split", str(f), str(o),
                                     "--chunk-size", format_size(b)),
        lambda: None if tree else why,
        lambda: f"git {PREV_COMMIT}",
    )
    known["s3split-size"].label = "s3split split"
    known["csv-module"].label = "Python csv module"
    known["duckdb"].label = "DuckDB COPY"
    tools = [known[k] for k in TOOL_KEYS if not wanted or k in wanted]
    for t in tools:
        t.unavailable = t.probe()
    return tools


# --------------------------------------------------------------------------- split shapes


SPLIT_HEADERS = ("tool", "wall s", "start-up s", "MB/s", "MB/s net", "peak RSS MiB",
                 "vs s3split", "chunks", "records", "rejoins", "notes")


def _failure(res: Result, timeout: float) -> str:
    if res.tool.unavailable:
        return f"not available: {res.tool.unavailable}"
    if res.error and "timed out" in res.error:
        return f"skipped: over {timeout:.0f} s"
    return f"failed: {res.error}"


def bench_shape(ds: Dataset, tools: list[Tool], startups: dict[str, float],
                args: argparse.Namespace, work: Path) -> list[list[str]]:
    results: list[tuple[Result, Verdict | None, float]] = []
    for tool in tools:
        timeout = args.prev_timeout if tool.key == "s3split-prev" else args.timeout
        res = run_tool(tool, ds, CHUNK, 0, args.repeat, timeout, work, keep=True)
        verdict = None
        if res.ok and res.kept is not None:
            verdict = check(ds, res.kept)
            shutil.rmtree(res.kept.parent, ignore_errors=True)
        results.append((res, verdict, timeout))
    ref = next((r.wall for r, _, _ in results if r.ok and r.tool.key == "s3split-size"), None)
    mb = ds.nbytes / 1e6
    rows = []
    for res, verdict, timeout in results:
        if not res.ok or verdict is None:
            rows.append([res.tool.label, *["n/a"] * 9, _failure(res, timeout)])
            continue
        start = startups.get(res.tool.key)
        net = res.wall - start if start is not None else None
        rows.append([
            res.tool.label,
            f"{res.wall:.2f}",
            f"{start:.2f}" if start is not None else "n/a",
            _rate(mb / res.wall),
            _rate(mb / net) if net is not None and net > 0.01 else "n/a",
            bench_split.fmt_rss(res.rss_mib),
            f"{res.wall / ref:.2f}x" if ref else "n/a",
            str(verdict.chunks),
            "as csv.reader" if verdict.differ is None else "DIFFER",
            "yes" if verdict.rejoins else "no",
            verdict.differ or ("" if res.tool.header_each else "not CSV-aware"),
        ])
    return rows


def _rate(mb_per_s: float) -> str:
    return f"{mb_per_s:.1f}" if mb_per_s < 10 else f"{mb_per_s:.0f}"


def measure_startups(tools: list[Tool], data_dir: Path, args: argparse.Namespace,
                     work: Path) -> dict[str, float]:
    """Each tool's wall on a one-record file: its fixed cost (interpreter, imports)."""
    def write(fh: io.BufferedWriter) -> None:
        fh.write(b"a,b" + NL + b"1,2" + NL)

    tiny = dataset(_write_atomically(data_dir / "shape-tiny.csv", write))
    print("start-up: each tool on a one-record file", flush=True)
    found = {}
    for tool in tools:
        res = run_tool(tool, tiny, CHUNK, 0, args.repeat, args.prev_timeout, work, keep=False)
        if res.ok:
            found[tool.key] = res.wall
    return found


# --------------------------------------------------------------------------- columns


@dataclass
class RunTiming:
    wall: float | None
    note: str


def time_run(argv_for: Callable[[Path, Path], list[str]], src: Path, columns: int, repeat: int,
             timeout: float, work: Path, verify: bool) -> RunTiming:
    """Median wall of ``repeat`` runs of ``argv_for(src, out)`` into fresh --out dirs; stops at the
    first failure or timeout."""
    walls = []
    note = ""
    for _ in range(repeat):
        base = Path(tempfile.mkdtemp(prefix="run-", dir=work))
        out = base / "out"
        try:
            os.sync()
            run: Run = measure(argv_for(src, out), base, timeout)
            if run.rc == -9:
                return RunTiming(None, f"over {timeout:.0f} s (capped)")
            if run.rc != 0:
                lines = [ln for ln in run.stderr.strip().splitlines() if ln.strip()]
                return RunTiming(None, f"exit {run.rc}: {lines[-1][:120] if lines else ''}")
            note = run_problem(out, columns) if verify else _succeeded(out)
            if note:
                return RunTiming(None, note)
            walls.append(run.wall)
        finally:
            shutil.rmtree(base, ignore_errors=True)
    return RunTiming(statistics.median(walls), "")


def _succeeded(out: Path) -> str:
    report = out / "report.json"
    if report.exists() and not json.loads(report.read_text()).get("succeeded"):
        return "report: not succeeded"
    return ""


def run_problem(out: Path, columns: int) -> str:
    """Empty when the run succeeded with every row out, each a JSON object of every column."""
    report = json.loads((out / "report.json").read_text())
    if not report.get("succeeded") or report.get("rows_ok") != COLUMN_ROWS:
        return f"report: succeeded={report.get('succeeded')} rows_ok={report.get('rows_ok')}"
    results = sorted((out / "results").glob("part-*.jsonl"))
    with results[0].open("rb") as fh:
        first = json.loads(fh.readline())
    if len(first) != columns:
        return f"first record has {len(first)} keys, not {columns}"
    return ""


COLUMN_HEADERS = ("columns", "MB", "s3split run s", "net s", "net s / 1k cols",
                  f"{PREV_COMMIT} run s", f"{PREV_COMMIT} net s / 1k cols", "notes")


def bench_columns(args: argparse.Namespace, data_dir: Path, work: Path) -> list[list[str]]:
    exe = s3split_exe(args.s3split) or "s3split"
    tree, why = prev_release(data_dir)
    counts = [FIXED_COLUMNS, *(max(FIXED_COLUMNS + 1, round(c * args.scale)) for c in COLUMNS)]
    fixed: dict[str, float] = {}
    rows = []
    for n in counts:
        src = gen_columns(data_dir / f"shape-columns-{n}x{COLUMN_ROWS}.csv", n, COLUMN_ROWS)
        print(f"  run: {n:,} columns", flush=True)
        cur = time_run(lambda f, o: [exe, "run", str(f), "--out", str(o), "--processor", "jsonl"],
                       src, n, args.repeat, args.timeout, work, verify=True)
        if tree:
            prev = time_run(
                lambda f, o: prev_argv(tree, "run", str(f), "--out", str(o),
                                       "--processor", "jsonl"),
                src, n, args.repeat, args.prev_timeout, work, verify=False)
        else:
            prev = RunTiming(None, f"not available: {why}")
        if n == FIXED_COLUMNS:
            fixed = {k: t.wall for k, t in (("cur", cur), ("prev", prev)) if t.wall is not None}
        rows.append([
            f"{n:,}" + (" (fixed cost)" if n == FIXED_COLUMNS else ""),
            f"{src.stat().st_size / 1e6:.1f}",
            *_run_cells(cur, fixed.get("cur"), n, net_col=True),
            *_run_cells(prev, fixed.get("prev"), n, net_col=False),
            "; ".join(x for x in (cur.note, f"{PREV_COMMIT}: {prev.note}" if prev.note else "")
                      if x),
        ])
    return rows


def _run_cells(t: RunTiming, fixed: float | None, columns: int, net_col: bool) -> list[str]:
    if t.wall is None:
        return ["n/a"] * (3 if net_col else 2)
    net = t.wall - fixed if fixed is not None else None
    per_k = f"{net / (columns / 1000):.3f}" if net is not None and columns > FIXED_COLUMNS \
        else ""
    cells = [f"{t.wall:.2f}"]
    if net_col:
        cells.append(f"{net:.2f}" if net is not None else "n/a")
    return [*cells, per_k]


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiply every shape's size (0.1 for a smoke run; default 1)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per tool (default 3)")
    ap.add_argument("--shapes", default="",
                    help="comma list (default all): " + ",".join(ALL_SHAPES))
    ap.add_argument("--tools", default="", help="comma list (default all): " + ",".join(TOOL_KEYS))
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    ap.add_argument("--prev-timeout", type=float, default=60.0,
                    help=f"seconds per run of the previous release ({PREV_COMMIT}); a shape "
                         "that takes longer is skipped for it (default 60)")
    ap.add_argument("--data-dir", type=Path, default=BENCH_DIR / "data")
    ap.add_argument("--md", type=Path, default=BENCH_DIR / "results" / "shapes.md",
                    help="Markdown report path (default bench/results/shapes.md)")
    ap.add_argument("--s3split", help="s3split executable (default: the venv's, else PATH)")
    args = ap.parse_args(argv)
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()] or list(ALL_SHAPES)
    wanted = {t.strip() for t in args.tools.split(",") if t.strip()}
    if bad := (set(shapes) - set(ALL_SHAPES)) | (wanted - set(TOOL_KEYS)):
        ap.error(f"unknown shape(s) or tool(s): {', '.join(sorted(bad))}")

    data_dir: Path = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="shapes-", dir=data_dir))
    floor = measure([shutil.which("true") or "/bin/true"], data_dir, 60)
    bench_split.rss_floor_mib = floor.maxrss_kib / 1024 if floor.rc == 0 else 0.0
    info = machine_info(data_dir)
    print("machine: " + "; ".join(f"{k} {v}" for k, v in info), flush=True)

    sections: list[tuple[str, tuple[str, ...], list[list[str]]]] = []
    try:
        tools = split_tools(data_dir, args.s3split, wanted)
        split_shapes = [s for s in shapes if s in SPLIT_SHAPES]
        startups = measure_startups(tools, data_dir, args, work) if split_shapes else {}
        for name in split_shapes:
            ds = make_shape(name, data_dir, args.scale)
            title = SHAPE_TITLES[name].format(fields=round(FIELDS * args.scale),
                                              mb=ds.nbytes / 1e6, header_mb=ds.header_len / 1e6)
            print(f"{title}: {ds.path.name}", flush=True)
            sections.append((f"{title} ({ds.nbytes:,} bytes)", SPLIT_HEADERS,
                             bench_shape(ds, tools, startups, args, work)))
        if "columns" in shapes:
            print("(e) s3split run on many columns", flush=True)
            sections.append((f"(e) s3split run --processor jsonl, {COLUMN_ROWS} rows, "
                             f"N columns (net = wall - the {FIXED_COLUMNS}-column run's)",
                             COLUMN_HEADERS, bench_columns(args, data_dir, work)))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    footer = [
        f"scale {args.scale}, chunk {format_size(CHUNK)}, median of {args.repeat} run(s); "
        f"MB = 10^6 bytes; 'MB/s net' excludes the tool's start-up (its wall on a one-record "
        f"file); 'vs s3split' = wall / s3split's wall; 'records': the chunks' records "
        f"(after each chunk's header) are the source's as csv.reader reads them; 'rejoins': "
        f"the chunks minus repeated headers are the source's bytes.",
    ]
    for title, headers, rows in sections:
        print(f"\n{title}\n{table(headers, rows, md=False)}")
    print("\n" + footer[0])
    md = ["# Shape benchmark", ""]
    for title, headers, rows in sections:
        md += [f"## {title}", "", table(headers, rows, md=True), ""]
    md += [*footer, "", "Machine: " + "; ".join(f"{k} {v}" for k, v in info), "",
           f"Generated by `python bench/bench_shapes.py --scale {args.scale}` on "
           f"{time.strftime('%Y-%m-%d')}.", ""]
    args.md.parent.mkdir(parents=True, exist_ok=True)
    args.md.write_text("\n".join(md))
    print(f"wrote {args.md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
