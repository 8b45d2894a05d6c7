"""Cost and time model for splitting one big CSV object on AWS (docs/deploy.md, "Cost and
time of a split on AWS").

    python bench/cost_model.py                     # the table in docs/deploy.md, recorded inputs
    python bench/cost_model.py --measure           # measure the scan rates here first (~1 min)
    python bench/cost_model.py --scan-light 150 --scan-dense 80 --cpu-factor 0.5

Three ways to get a 10 GB, 100 GB or 1 TB object into 64 MiB chunks (or rows) on AWS:

* **range split**: Plan ranges -> a Distributed Map of N range-scan Lambdas -> Combine -> a
  Distributed Map of N assembly Lambdas (each chunk a multipart upload whose big part is an
  ``UploadPartCopy`` of the source, ``s3split.split.s3_assembly``) -> manifest.
* **sequential**: today's splitter Lambda streaming the whole object (read, scan, upload in one
  thread), continued across invocations that stop a minute before the 15-minute limit.
* **Distributed Map CSV ItemReader**: Step Functions reads the object itself and hands rows,
  as JSON, to child workflows in batches of at most 256 KiB; no chunk files.

Every input is a named constant below with its source: AWS's published pages (URL) or a
measurement here (``--measure`` redoes it). What AWS does not publish is an ASSUMPTION and
says so. The model is deliberately simple: see ``range_split``, ``sequential`` and ``dmap``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

MiB = 1024 * 1024
GB = 10**9  # AWS prices and sizes in decimal GB

# -- AWS prices, us-east-1 (the inputs; each with where it is published) ------------------------
LAMBDA_ARM_GB_S = 0.0000133334
"""Lambda duration, arm64, first 7.5 billion GB-s a month.
https://aws.amazon.com/lambda/pricing/ (the stored copy renders its price table from a template;
figure as quoted from that page by https://cloudchipr.com/blog/aws-lambda-pricing)."""
LAMBDA_REQUEST = 0.20 / 1e6
"""Lambda requests, $0.20 per million (same page)."""
S3_PUT_CLASS = 0.005 / 1000
"""S3 Standard PUT, COPY, POST, LIST requests per request; UploadPart, UploadPartCopy,
Create/CompleteMultipartUpload are in this class. https://aws.amazon.com/s3/pricing/ (stored copy
templated; figure as quoted by https://c3x.dev/blog/s3-request-fees-explained)."""
S3_GET_CLASS = 0.0004 / 1000
"""S3 Standard GET, SELECT and all other requests (HEAD) per request (same pages)."""
S3_TRANSFER_IN_REGION = 0.0
"""No data transfer charge between S3 and other AWS services in the same Region, nor for a COPY
inside a Region: https://aws.amazon.com/s3/faqs/ , https://aws.amazon.com/s3/pricing/ ."""
SFN_TRANSITION = 0.025 / 1000
"""Step Functions Standard, $0.025 per 1,000 state transitions (retries count).
https://aws.amazon.com/step-functions/pricing/"""
DMAP_CHILD_START_TRANSITIONS = 1
"""A Distributed Map is charged one state transition per child execution it starts, plus the
child's own transitions. https://docs.aws.amazon.com/step-functions/latest/dg/concepts-transitions.html"""

# -- AWS limits and performance figures ---------------------------------------------------------
LAMBDA_MAX_S = 900
"""15 minutes per invocation, up to 10,240 MB; 1,000 concurrent executions by default (a
Regional quota that can be raised). https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html"""
LAMBDA_ONE_VCPU_MB = 1769
"""At 1,769 MB a function has the equivalent of one vCPU (template.yaml's splitter has it).
https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html"""
SPLITTER_SAFETY_S = 60
"""The splitter stops a minute before the limit (functions/splitter/app.py SAFETY_MS)."""
S3_CONNECTION_BPS = 85e6
"""One connection: "make one concurrent request for each 85-90 MB/s of desired network
throughput", byte ranges of 8-16 MB. https://docs.aws.amazon.com/AmazonS3/latest/userguide/optimizing-performance-guidelines.html
ASSUMPTION: a Lambda gets this per connection too (AWS publishes no Lambda network bandwidth;
third-party measurements show it grows with memory), for GET and for upload alike."""
S3_RANGE_GET = 16 * MiB
"""Range scans read the source in 16 MiB ranged GETs (the guidelines' upper size above)."""
S3_GET_PER_PREFIX_S = 5500
S3_PUT_PER_PREFIX_S = 3500
"""At least 3,500 PUT/COPY/POST/DELETE or 5,500 GET/HEAD requests per second per partitioned
prefix. https://docs.aws.amazon.com/AmazonS3/latest/userguide/optimizing-performance.html"""
S3_REQUEST_LATENCY_S = 0.15
"""Small-object and first-byte latencies of "roughly 100-200 milliseconds" (same page); the
midpoint, charged once per request that the model runs one after another."""
S3_COPY_BPS = 85e6
"""ASSUMPTION: an UploadPartCopy moves the source bytes inside S3 at least as fast as one
connection downloads them. AWS publishes no UploadPartCopy throughput."""
DMAP_MAX_OBJECT = 10 * GB
"""Distributed Map's ItemReader reads a CSV object of at most 10 GB; each row becomes a JSON
object keyed by the header (all values strings), a header of at most 10 KiB.
https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itemreader.html ,
https://docs.aws.amazon.com/step-functions/latest/dg/example-csv-parse-dist-map.html"""
DMAP_MAX_BATCH = 256 * 1024
"""ItemBatcher: a child's batch input is at most 256 KiB (the state payload quota).
https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itembatcher.html"""
DMAP_MAX_CONCURRENCY = 10_000
"""Up to 10,000 child executions at once (same Distributed Map pages)."""

# -- this project's settings and ASSUMPTIONS of the model -------------------------------------
CHUNK = 64 * MiB
ASSEMBLY_PART = 512 * MiB  # s3_assembly.COPY_PART_SIZE
STREAM_PART = 50 * MiB  # smart-open's multipart part size for the sequential splitter
ASSEMBLY_MB = 512  # ASSUMPTION: an assembly task holds one 5 MiB part; it mostly waits on S3
CHILD_OWN_TRANSITIONS = 1  # ASSUMPTION: a child workflow is one Task state (plus its start)
TASK_START_S = 1.0  # ASSUMPTION: Lambda cold start + Step Functions scheduling, per task
COMBINE_READERS = 16  # ASSUMPTION: Combine fetches the range summaries 16 at a time
FIXED_TASKS = 3  # Plan ranges, Combine, manifest: one Lambda task each
# Requests per 64 MiB chunk with server-side assembly (s3_assembly.assemble_chunk, COPY path):
# HEAD (size check), GET (first 5 MiB), Create, UploadPart, UploadPartCopy, HEAD, Complete.
ASSEMBLY_PUT_CLASS = 4
ASSEMBLY_GET_CLASS = 3
ASSEMBLY_SEQUENTIAL_REQUESTS = 7


@dataclass(frozen=True)
class Measured:
    """Inputs measured on this machine (``--measure``)."""

    scan_light: float  # bytes/s, one process, s3split.split.range_scan.scan_range
    scan_dense: float
    seq_light: float  # bytes/s, range 0 of 1: the single-state scan of the sequential pass
    seq_dense: float
    json_expansion: float  # JSON bytes of the rows as ItemReader items / CSV bytes (light file)
    sent_per_chunk: float  # bytes the splitter sends to S3 per 64 MiB chunk with assembly
    where: str


MEASURED = Measured(
    # `python bench/cost_model.py --measure`, 2026-11-23: the third of three runs (the first two
    # gave light 584 / 744 and quote-dense 162 / 153 MB/s for the range scan: a shared machine).
    scan_light=726.5e6, scan_dense=203.9e6, seq_light=806.3e6, seq_dense=212.6e6,
    json_expansion=2.00,
    # bench/results/s3_assembly.md: 41,993,080 bytes sent for 8 chunks of a 512 MiB source (the
    # 5 MiB first part + header of each chunk, plus request lines and headers).
    sent_per_chunk=41_993_080 / 8,
    where="AMD EPYC (KVM), 2 CPUs, Python 3.11.7, load average 3.7 before / 3.4 after",
)


@dataclass(frozen=True)
class Estimate:
    wall_s: float | None  # None: not modelled
    lambda_usd: float
    s3_usd: float
    sfn_usd: float
    sent_bytes: float  # what the splitter itself sends to S3
    note: str = ""

    @property
    def usd(self) -> float:
        return self.lambda_usd + self.s3_usd + self.sfn_usd


def lambda_usd(gb_seconds: float, requests: float) -> float:
    return gb_seconds * LAMBDA_ARM_GB_S + requests * LAMBDA_REQUEST


def worker_rate(scan_bps: float, cpu_factor: float) -> float:
    """A range worker reads and scans overlapped: the slower of its scan and one connection."""
    return min(scan_bps * cpu_factor, S3_CONNECTION_BPS)


def chunk_seconds() -> float:
    """One 64 MiB chunk assembled: its requests one after another, 5 MiB down and up, the
    rest copied inside S3."""
    first = 5 * MiB
    return (ASSEMBLY_SEQUENTIAL_REQUESTS * S3_REQUEST_LATENCY_S + 2 * first / S3_CONNECTION_BPS
            + (CHUNK - first) / S3_COPY_BPS)


def range_split(size: float, n: int, scan_bps: float, m: Measured,
                cpu_factor: float = 1.0) -> Estimate:
    """N range workers, then N assembly workers (see module docstring)."""
    usable = LAMBDA_MAX_S - SPLITTER_SAFETY_S
    rate = worker_rate(scan_bps, cpu_factor)
    rate = min(rate, S3_GET_PER_PREFIX_S * S3_RANGE_GET / n)  # all GETs hit the source's prefix
    ranges = max(n, math.ceil(size / (rate * usable)))  # no range outlives one invocation
    scan_wall = math.ceil(ranges / n) * (TASK_START_S + size / ranges / rate)
    chunks = math.ceil(size / CHUNK)
    t_chunk = chunk_seconds()
    batches = min(chunks, max(n, math.ceil(chunks * t_chunk / usable)))
    per_batch = math.ceil(chunks / batches)
    assemble_wall = max(math.ceil(batches / n) * (TASK_START_S + per_batch * t_chunk),
                        chunks * ASSEMBLY_PUT_CLASS / S3_PUT_PER_PREFIX_S)
    combine_s = math.ceil(ranges / COMBINE_READERS) * S3_REQUEST_LATENCY_S
    wall = scan_wall + combine_s + assemble_wall + FIXED_TASKS * TASK_START_S

    scan_gb_s = LAMBDA_ONE_VCPU_MB / 1024 * (size / rate + ranges * TASK_START_S)
    fixed_gb_s = LAMBDA_ONE_VCPU_MB / 1024 * (combine_s + FIXED_TASKS * TASK_START_S)
    assembly_gb_s = ASSEMBLY_MB / 1024 * (chunks * t_chunk + batches * TASK_START_S)
    lam = lambda_usd(scan_gb_s + fixed_gb_s + assembly_gb_s, ranges + batches + FIXED_TASKS)
    gets = size / S3_RANGE_GET + ranges * 2 + batches + chunks * ASSEMBLY_GET_CLASS
    puts = ranges + 2 + chunks * ASSEMBLY_PUT_CLASS  # summaries, chunk table, manifest
    s3 = gets * S3_GET_CLASS + puts * S3_PUT_CLASS
    transitions = (ranges + batches) * (DMAP_CHILD_START_TRANSITIONS + CHILD_OWN_TRANSITIONS) + 6
    note = f"ranges: {ranges} (15-minute limit)" if ranges > n else ""
    return Estimate(wall, lam, s3, transitions * SFN_TRANSITION, chunks * m.sent_per_chunk, note)


def sequential(size: float, scan_bps: float, cpu_factor: float = 1.0) -> Estimate:
    """One thread reads, scans and uploads in turn; chunks are smart-open multipart uploads."""
    usable = LAMBDA_MAX_S - SPLITTER_SAFETY_S
    per_byte = 1 / (scan_bps * cpu_factor) + 2 / S3_CONNECTION_BPS
    chunks = math.ceil(size / CHUNK)
    busy = size * per_byte + chunks * 2 * S3_REQUEST_LATENCY_S  # + Create and Complete
    invocations = math.ceil(busy / usable)
    wall = busy + invocations * TASK_START_S + 2 * TASK_START_S  # + Plan, manifest
    lam = lambda_usd(LAMBDA_ONE_VCPU_MB / 1024 * wall, invocations + 2)
    parts = math.ceil(CHUNK / STREAM_PART)
    puts = chunks * (2 + parts) + invocations + 1  # + chunk entries per invocation, manifest
    gets = invocations * 2
    transitions = invocations * 2 + 4
    return Estimate(wall, lam, puts * S3_PUT_CLASS + gets * S3_GET_CLASS,
                    transitions * SFN_TRANSITION, size, f"invocations: {invocations}")


def dmap(size: float, m: Measured) -> Estimate:
    """Step Functions reads the rows itself; cost of delivering them to child workflows only."""
    if size > DMAP_MAX_OBJECT:
        return Estimate(None, 0, 0, 0, 0, "not possible: over the 10 GB ItemReader limit")
    children = math.ceil(size * m.json_expansion / DMAP_MAX_BATCH)
    transitions = children * (DMAP_CHILD_START_TRANSITIONS + CHILD_OWN_TRANSITIONS) + 2
    return Estimate(None, lambda_usd(0, children), 0, transitions * SFN_TRANSITION, 0,
                    f"{children:,} child executions of <= 256 KiB of rows; no chunk files")


# -- the table ------------------------------------------------------------------------------------

SIZES = (("10 GB", 10 * GB), ("100 GB", 100 * GB), ("1 TB", 1000 * GB))
WORKERS = (1, 10, 100, 1000)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/d"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def money(usd: float) -> str:
    return f"${usd:.2f}" if usd >= 0.1 else f"${usd:.3f}"


def estimates(size: float, m: Measured, cpu_factor: float) -> list[tuple[str, Estimate, Estimate]]:
    """(method, light-file estimate, quote-dense estimate) for one source size."""
    out = [("sequential splitter", sequential(size, m.seq_light, cpu_factor),
            sequential(size, m.seq_dense, cpu_factor))]
    for n in WORKERS:
        out.append((f"range split, N = {n}", range_split(size, n, m.scan_light, m, cpu_factor),
                    range_split(size, n, m.scan_dense, m, cpu_factor)))
    d = dmap(size, m)
    out.append(("Distributed Map CSV reader", d, d))
    return out


def table(m: Measured, cpu_factor: float, detail: bool = False) -> str:
    head = ["source", "method", "wall, light", "wall, quote-dense", "cost, light",
            "cost, quote-dense", "sent to S3", "notes"]
    if detail:
        head[-1:-1] = ["Lambda", "S3 requests", "Step Functions"]
    lines = ["| " + " | ".join(head) + " |",
             "|" + "---|" * 2 + "---:|" * (len(head) - 3) + "---|"]
    for label, size in SIZES:
        for name, light, dense in estimates(size, m, cpu_factor):
            if light.wall_s is None and light.usd == 0:
                cells = [label, name] + ["-"] * (len(head) - 3) + [light.note]
            else:
                sent = f"{light.sent_bytes / size:.1%}" if light.sent_bytes else "-"
                cells = [label, name, duration(light.wall_s), duration(dense.wall_s),
                         money(light.usd), money(dense.usd), sent, light.note]
                if detail:
                    cells[-1:-1] = [money(light.lambda_usd), money(light.s3_usd),
                                    money(light.sfn_usd)]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- measuring the inputs -------------------------------------------------------------------------

def _best(fn: object, repeat: int = 3) -> float:
    assert callable(fn)
    best = math.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _scan_rate(path: Path, ranges: int, index: int) -> float:
    """Bytes/s of ``scan_range`` on range ``index`` of ``ranges`` equal ranges (page cache warm),
    best of 3."""
    from s3split.split.range_scan import plan_ranges, pread_reader, scan_range

    size = path.stat().st_size
    with path.open("rb") as fh:
        header = len(fh.readline())
        while fh.read(16 * MiB):  # warm the page cache: the scan, not the disk, is measured
            pass
    fd = os.open(path, os.O_RDONLY)
    try:
        plan = plan_ranges(str(path), size, header, CHUNK, ranges)
        span = scan_range(pread_reader(fd), plan, index)
        seconds = _best(lambda: scan_range(pread_reader(fd), plan, index))
        return (span.end - span.start) / seconds
    finally:
        os.close(fd)


def _json_expansion(path: Path, sample: int = 16 * MiB) -> float:
    """JSON bytes of the rows as ItemReader items (objects keyed by the header) per CSV byte."""
    with path.open("rb") as fh:
        data = fh.read(sample)
    data = data[: data.rfind(b"\r\n") + 2]  # whole lines; a cut record is re-read whole below
    reader = csv.DictReader(io.StringIO(data.decode(), newline=""))
    rows = list(reader)[:-1]  # the last may be cut inside a quoted line break
    text = io.StringIO()
    csv.DictWriter(text, reader.fieldnames or [], lineterminator="\r\n").writerows(rows)
    csv_bytes = len(text.getvalue().encode())
    json_bytes = sum(len(json.dumps(r, ensure_ascii=False, separators=(",", ":")).encode()) + 1
                     for r in rows)
    return json_bytes / csv_bytes


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def measure(data_dir: Path) -> Measured:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_shapes import gen_quoteall
    from gen_csv import generate

    size = 256 * MiB
    data_dir.mkdir(parents=True, exist_ok=True)
    light = data_dir / "gen-256MiB-seed42-crlf.csv"
    if not light.exists():
        generate(light, size)
    dense = data_dir / f"shape-quoteall-{size}.csv"
    if not dense.exists():
        gen_quoteall(dense, size, 42)
    load = os.getloadavg()
    m = Measured(
        scan_light=_scan_rate(light, 2, 1), scan_dense=_scan_rate(dense, 2, 1),
        seq_light=_scan_rate(light, 1, 0), seq_dense=_scan_rate(dense, 1, 0),
        json_expansion=_json_expansion(light), sent_per_chunk=MEASURED.sent_per_chunk,
        where=(f"{_cpu_name()}, {os.cpu_count()} CPUs, "
               f"Python {platform.python_version()}, load average before "
               f"{load[0]:.1f} / after {os.getloadavg()[0]:.1f}"),
    )
    return m


def check(m: Measured) -> None:
    """The model's invariants (``--check``); an edit that breaks one fails loudly."""
    source = 512 * MiB  # bench/results/s3_assembly.md: 7.82 % of a 512 MiB source sent
    share = range_split(source, 1, m.scan_light, m).sent_bytes / source
    assert abs(share - 0.0782) < 0.0005, share
    assert dmap(100 * GB, m).usd == 0 and dmap(10 * GB, m).usd > 0  # the 10 GB ItemReader limit
    usable = LAMBDA_MAX_S - SPLITTER_SAFETY_S
    for _, size in SIZES:
        walls = [range_split(size, n, m.scan_light, m).wall_s or 0.0 for n in (1, 10, 100)]
        assert walls == sorted(walls, reverse=True), walls  # more workers, never slower here
        one = range_split(size, 1, m.scan_light, m)
        ranges = int(one.note.split()[1]) if one.note else 1
        assert size / ranges / worker_rate(m.scan_light, 1.0) <= usable  # one range, one call
        seq = sequential(size, m.seq_light)
        assert seq.wall_s is not None and seq.sent_bytes == size
        assert seq.wall_s <= int(seq.note.split()[-1]) * LAMBDA_MAX_S
    print("model checks: OK")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--measure", action="store_true",
                    help="measure the scan rates and the JSON expansion here first")
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parent / "data")
    ap.add_argument("--scan-light", type=float, help="range scan rate, MB/s (light file)")
    ap.add_argument("--scan-dense", type=float, help="range scan rate, MB/s (quote-dense)")
    ap.add_argument("--check", action="store_true", help="check the model's invariants")
    ap.add_argument("--detail", action="store_true",
                    help="also split each light-file cost into Lambda, S3 and Step Functions")
    ap.add_argument("--cpu-factor", type=float, default=1.0,
                    help="ASSUMPTION: a Lambda vCPU's scan speed / this machine's (default 1)")
    args = ap.parse_args(argv)
    m = measure(args.data) if args.measure else MEASURED
    if args.scan_light:
        m = replace(m, scan_light=args.scan_light * 1e6, seq_light=args.scan_light * 1e6)
    if args.scan_dense:
        m = replace(m, scan_dense=args.scan_dense * 1e6, seq_dense=args.scan_dense * 1e6)
    if args.check:
        check(m)
    print(f"Measured inputs ({m.where}):")
    print(f"  range scan (range 1 of 2, two start states): light {m.scan_light / 1e6:.1f} MB/s, "
          f"quote-dense {m.scan_dense / 1e6:.1f} MB/s")
    print(f"  single-state scan (range 0 of 1, the sequential pass): light "
          f"{m.seq_light / 1e6:.1f} MB/s, quote-dense {m.seq_dense / 1e6:.1f} MB/s")
    print(f"  ItemReader JSON / CSV bytes: {m.json_expansion:.2f}")
    print(f"  sent to S3 per 64 MiB chunk with assembly: {m.sent_per_chunk:,.0f} bytes")
    print(f"  one chunk assembled: {chunk_seconds():.2f} s; cpu factor {args.cpu_factor}\n")
    print(table(m, args.cpu_factor, args.detail))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
