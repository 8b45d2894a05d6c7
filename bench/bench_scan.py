"""Scan-only throughput: the scanner against the one before the dialect rewrite (01ecd4a).

    python bench/bench_scan.py [--size 64MiB] [--repeat 7] [--files light-lf,light-crlf,quoteall]
                               [--split all|header,fields,... [--scale 1] [--split-repeat 3]]

Each file is read into memory and cut into spans as the splitter cuts its blocks (``SPAN``
bytes, never between the CR and LF of a CRLF). Timed: scanning every span in order, the
parser state carried from one to the next, nothing else (no reading, no writing).

* **new**: ``Scanner.survey(span, state, base)``, what ``splitter._feed_span`` and the range
  scan call (the record ends counted, not listed).
* **old**: the scanner of commit 01ecd4a, loaded from git (``git show``) into a temporary
  module: ``count(span, in_quotes)`` and, when the span ends inside or right after a quoted
  field, ``last_opening_quote`` (what its splitter's ``_emit`` did for each span).

Times are CPU seconds of this process (``time.process_time``): the scan is single-threaded
and the machines it runs on are shared, where wall time would count other processes' turns.

Files (generated once into bench/data/, reused; the same ones bench_split.py and
bench_shapes.py use): ``light-lf`` / ``light-crlf`` are ``gen_csv.py`` output (lightly
quoted: ~30% of records have a quoted comma, ~8% doubled quotes, ~5% an embedded line
break); ``quoteall`` is the same records with every field quoted (bench_shapes.py's
quote-dense baseline). Runs of old and new alternate; best of ``--repeat`` each. MB = 10^6
bytes; ratio = new MB/s / old MB/s (>= 1: the new scanner is at least as fast). Both
scanners' record counts are checked to agree (these files quote by RFC 4180).

``--split``: the whole split, ``splitter.split`` in-process with 64 MiB chunks, of
bench_shapes.py's shapes (``--scale`` times their full size), each run in a fresh
interpreter that has imported what the CLI imports before its own timer starts, so
interpreter start-up is left out (bench_shapes.py times the CLI with it, which on files of a
few MB is mostly start-up). Best of ``--split-repeat`` runs, CPU and wall; the target is
``TARGET_MBS`` on every shape.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bench_split
from bench_shapes import SEED, SPLIT_SHAPES, gen_quoteall, make_shape
from gen_csv import format_size, parse_size

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO / "src"))

from s3split.split.scanner import Scanner, State  # noqa: E402
from s3split.split.splitter import SPAN, _cut  # noqa: E402

OLD_COMMIT = "01ecd4a"
FILES = ("light-lf", "light-crlf", "quoteall")
TARGET_MBS = 100.0
SPLIT_SCRIPT = """\
import sys, tempfile, time
sys.path.insert(0, sys.argv[1])
import s3split.cli  # what the command imports before it starts its timer
from s3split.split.manifest import SplitSettings
from s3split.split.splitter import split
from s3split.storage import Storage
with tempfile.TemporaryDirectory(dir=sys.argv[3]) as out:
    wall, cpu = time.perf_counter(), time.process_time()
    split(sys.argv[2], out + "/chunks", SplitSettings(chunk_size=64 * 2**20), Storage())
    print(time.perf_counter() - wall, time.process_time() - cpu)
"""


def old_scanner_module() -> types.ModuleType:
    """The scanner of OLD_COMMIT, from git, as a module of its own."""
    source = subprocess.run(["git", "show", f"{OLD_COMMIT}:src/s3split/scanner.py"], cwd=REPO,
                            check=True, capture_output=True, text=True).stdout
    module = types.ModuleType("old_scanner")
    sys.modules[module.__name__] = module  # (dataclasses look their module up there)
    exec(compile(source, f"{OLD_COMMIT}:src/s3split/scanner.py", "exec"), module.__dict__)
    return module


def data_file(name: str, data_dir: Path, size: int) -> Path:
    if name == "quoteall":
        return gen_quoteall(data_dir / f"shape-quoteall-{size}-seed{SEED}.csv", size, SEED)
    return bench_split.ensure_data(data_dir, size, SEED, lf=name == "light-lf").path


def spans(data: bytes, span: int) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        end = _cut(data, pos + span)
        out.append(data[pos:end])
        pos = end
    return out


def scan_new(pieces: list[bytes]) -> int:
    scanner, state, base, records = Scanner(), State.RECORD, 0, 0
    for piece in pieces:
        survey = scanner.survey(piece, state, base)
        records += survey.rows
        state, base = survey.state, base + len(piece)
    return records


def make_scan_old(old: types.ModuleType) -> Callable[[list[bytes]], int]:
    def scan_old(pieces: list[bytes]) -> int:
        scanner: Any = old.Scanner(b'"')
        in_quotes, records = False, 0
        for piece in pieces:
            counted = scanner.count(piece, in_quotes)
            if counted.in_quotes or piece.endswith(b'"'):
                scanner.last_opening_quote(piece, counted.in_quotes)
            records += counted.records
            in_quotes = counted.in_quotes
        return records

    return scan_old


def best_of(runs: int, scans: dict[str, Callable[[list[bytes]], int]],
            pieces: list[bytes]) -> tuple[dict[str, float], dict[str, int]]:
    """Best seconds and the record count of each scan, their runs interleaved."""
    best = dict.fromkeys(scans, float("inf"))
    records: dict[str, int] = {}
    for _ in range(runs):
        for name, scan in scans.items():
            t0 = time.process_time()
            records[name] = scan(pieces)
            best[name] = min(best[name], time.process_time() - t0)
    return best, records


def split_once(path: Path, work: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one split of ``path`` in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", SPLIT_SCRIPT, str(REPO / "src"), str(path),
                          str(work)], check=True, capture_output=True, text=True).stdout
    wall, cpu = out.split()
    return float(wall), float(cpu)


def bench_splits(shapes: list[str], args: argparse.Namespace) -> bool:
    """Print the split table; True when every shape makes the target (by CPU time)."""
    datasets = {name: make_shape(name, args.data_dir, args.scale) for name in shapes}
    print(f"\nwhole split in-process (64MiB chunks, fresh interpreter, start-up left out), "
          f"best of {args.split_repeat}; target {TARGET_MBS:.0f} MB/s")
    print(f"{'shape':<10} {'MB':>8} {'wall s':>8} {'MB/s':>7} {'CPU s':>8} {'MB/s':>7}")
    ok = True
    for name, ds in datasets.items():
        runs = [split_once(ds.path, args.data_dir) for _ in range(args.split_repeat)]
        wall, cpu = min(r[0] for r in runs), min(r[1] for r in runs)
        mb = ds.nbytes / 1e6
        ok &= mb / cpu >= TARGET_MBS
        print(f"{name:<10} {mb:>8.1f} {wall:>8.3f} {mb / wall:>7.0f} {cpu:>8.3f} "
              f"{mb / cpu:>7.0f}{'' if mb / cpu >= TARGET_MBS else '  UNDER TARGET'}", flush=True)
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--size", type=parse_size, default=parse_size("64MiB"))
    ap.add_argument("--repeat", type=int, default=7, help="timed runs of each (best is shown)")
    ap.add_argument("--span", type=parse_size, default=SPAN,
                    help=f"bytes scanned at a time (default the splitter's, {format_size(SPAN)})")
    ap.add_argument("--files", default=",".join(FILES), help="comma list of " + ",".join(FILES))
    ap.add_argument("--data-dir", type=Path, default=BENCH_DIR / "data")
    ap.add_argument("--split", default="",
                    help="also time whole splits of these shapes: all or a comma list of "
                         + ",".join(SPLIT_SHAPES))
    ap.add_argument("--scale", type=float, default=1.0, help="of the split shapes' sizes")
    ap.add_argument("--split-repeat", type=int, default=3)
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.files.split(",") if n.strip()]
    shapes = list(SPLIT_SHAPES) if args.split == "all" else \
        [n.strip() for n in args.split.split(",") if n.strip()]
    if bad := (set(names) - set(FILES)) | (set(shapes) - set(SPLIT_SHAPES)):
        ap.error(f"unknown file(s) or shape(s): {', '.join(sorted(bad))}")
    args.data_dir.mkdir(parents=True, exist_ok=True)
    scans = {"old": make_scan_old(old_scanner_module()), "new": scan_new}

    paths = {name: data_file(name, args.data_dir, args.size) for name in names}
    print(f"scan only, {format_size(args.span)} spans, best of {args.repeat} (CPU time); "
          f"MB = 10^6 bytes; old = {OLD_COMMIT}")
    print(f"{'file':<12} {'MB':>8} {'old MB/s':>9} {'new MB/s':>9} {'new/old':>8}")
    failed = False
    for name, path in paths.items():
        data = path.read_bytes()
        best, records = best_of(args.repeat, scans, spans(data, args.span))
        old_mbs, new_mbs = (len(data) / 1e6 / best[k] for k in ("old", "new"))
        note = "" if records["old"] == records["new"] else \
            f"  RECORDS DIFFER: old {records['old']}, new {records['new']}"
        failed |= bool(note)
        print(f"{name:<12} {len(data) / 1e6:>8.1f} {old_mbs:>9.0f} {new_mbs:>9.0f} "
              f"{new_mbs / old_mbs:>7.2f}x{note}", flush=True)
    if shapes and not bench_splits(shapes, args):
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
