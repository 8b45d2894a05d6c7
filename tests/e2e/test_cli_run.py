"""``s3split run`` as a user runs it: the real CLI in a subprocess."""

import csv
import gzip
import io
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import S3SPLIT, run_cli
from tests.support.pipeline import local_results


def write_source(path: Path, rows: int) -> str:
    lines = ["id,city,note\r\n"]
    lines += [f'{i},"Kraków, PL","line one\r\nline ""two"" {i}"\r\n' for i in range(rows)]
    text = "".join(lines)
    path.write_bytes(text.encode())
    return text


def test_every_source_row_appears_exactly_once(tmp_path: Path) -> None:
    text = write_source(tmp_path / "big.csv", 500)
    done = run_cli("run", "big.csv", "--chunk-size", "4KiB", "--lanes", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "s3split-out" / "big.csv"
    source = list(csv.DictReader(io.StringIO(text, newline="")))
    assert local_results(out) == source
    report = json.loads((out / "report.json").read_text())
    assert report["succeeded"] and report["chunks"] == report["chunks_ok"] > 5
    assert "succeeded" in done.stdout and "500" in done.stdout


def test_bad_input_fails_with_what_and_where(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_bytes(b'id,note\n1,"fine"\n2,"never closed\n3,x\n')
    done = run_cli("run", "bad.csv", "--out", "out", cwd=tmp_path)
    assert done.returncode == 1
    assert "UnterminatedQuote" in done.stderr and "byte 19 (line 3)" in done.stderr
    assert not (tmp_path / "out" / "report.json").exists()
    assert not (tmp_path / "out" / "chunks" / "manifest.json").exists()


def test_resume_after_a_fix_runs_the_failed_chunks(tmp_path: Path) -> None:
    text = write_source(tmp_path / "data.csv", 200)
    processor = tmp_path / "fragile.py"
    processor.write_text(
        "from pathlib import Path\n"
        "from s3split.errors import ChunkInvalid\n"
        "from s3split.processors import JsonlProcessor\n"
        "def process(job, storage):\n"
        "    fixed = Path(job.output_uri).parents[1] / 'fixed'\n"
        "    if job.index == 2 and not fixed.exists():\n"
        "        raise ChunkInvalid('chunk 2 is not supported yet')\n"
        "    return JsonlProcessor()(job, storage)\n")
    env_args = ["--chunk-size", "4KiB", "--processor", "fragile", "--out", "out"]
    env = {"S3SPLIT_PROCESSORS": "fragile=fragile:process", "PYTHONPATH": str(tmp_path)}
    first = subprocess.run([S3SPLIT, "run", "data.csv", *env_args], cwd=tmp_path, text=True,
                           capture_output=True, timeout=300, env=_env(env))
    assert first.returncode == 1
    assert "chunk 2" in first.stdout and "ChunkInvalid" in first.stdout
    (tmp_path / "out" / "fixed").touch()
    second = subprocess.run([S3SPLIT, "run", "--resume", "out"], cwd=tmp_path, text=True,
                            capture_output=True, timeout=300, env=_env(env))
    assert second.returncode == 0, second.stderr
    assert local_results(tmp_path / "out") == list(csv.DictReader(io.StringIO(text, newline="")))


def test_a_resume_applies_lanes_pause_and_tolerate_and_refuses_the_rest(tmp_path: Path) -> None:
    """--lanes, --pause and --tolerate can change on a resume, and it says so; an option
    that would mix two runs' settings in one location (--processor, --out, how to split) is
    refused before anything runs, not silently ignored."""
    write_source(tmp_path / "data.csv", 200)
    (tmp_path / "out").mkdir()
    (tmp_path / "refusing.py").write_text(
        "from s3split.errors import ChunkInvalid\n"
        "def process(job, storage):\n"
        "    raise ChunkInvalid('not this one')\n")
    env = _env({"S3SPLIT_PROCESSORS": "refusing=refusing:process",
                "PYTHONPATH": str(tmp_path)})

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([S3SPLIT, "run", *args], cwd=tmp_path, text=True,
                              capture_output=True, timeout=300, env=env)

    first = run("data.csv", "--out", "out", "--processor", "refusing", "--chunk-rows", "200")
    assert first.returncode == 1 and "ChunkInvalid" in first.stdout, first.stderr
    before = {p: p.read_bytes() for p in sorted((tmp_path / "out").rglob("*")) if p.is_file()}
    for refused in (["--processor", "jsonl"], ["--out", "elsewhere"], ["--no-header"],
                    ["--encoding", "cp1252"]):
        done = run("--resume", "out", *refused)
        assert done.returncode == 2, done.stderr
        assert f"{refused[0]} cannot change on a resume" in " ".join(done.stderr.split())
    assert {p: p.read_bytes() for p in sorted((tmp_path / "out").rglob("*"))
            if p.is_file()} == before
    again = run("--resume", "out", "--tolerate", "1", "--lanes", "3", "--pause", "0")
    assert again.returncode == 0, again.stderr
    assert again.stderr.splitlines() == [
        f"s3split: resuming the run of {tmp_path / 'data.csv'} (processor refusing) at "
        f"{tmp_path / 'out'}",
        "s3split: this resume runs with --lanes 3 (started with 2), --tolerate 1 (started "
        "with 0)"]
    assert "1 failed of 1" in again.stdout and "succeeded" in again.stdout
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert (report["tolerate"], report["succeeded"]) == ("1", True)
    assert json.loads((tmp_path / "out" / "run.json").read_text())["tolerate"] == "0"


def _env(extra: dict[str, str]) -> dict[str, str]:
    return dict(os.environ) | extra


def test_two_runs_of_one_source_at_once_one_is_refused(tmp_path: Path) -> None:
    text = write_source(tmp_path / "data.csv", 120)
    # The first run's chunks wait for a file the test writes once the second run has ended,
    # so the first holds the location however slowly the second starts.
    (tmp_path / "gated.py").write_text(
        "import time\n"
        "from pathlib import Path\n"
        "from s3split.processors import JsonlProcessor\n"
        "def process(job, storage):\n"
        "    gate, deadline = Path(job.output_uri).parents[1] / 'go', time.monotonic() + 300\n"
        "    while not gate.exists() and time.monotonic() < deadline:\n"
        "        time.sleep(0.05)\n"
        "    return JsonlProcessor()(job, storage)\n")
    env = _env({"S3SPLIT_PROCESSORS": "gated=gated:process", "PYTHONPATH": str(tmp_path)})
    argv = [S3SPLIT, "run", "data.csv", "--chunk-size", "4KiB", "--processor", "gated"]
    out = tmp_path / "s3split-out" / "data.csv"

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen(argv, cwd=tmp_path, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env)

    first = start()
    deadline = time.monotonic() + 120
    while not (out / "lock.json").exists():  # the second starts once the first holds it
        assert time.monotonic() < deadline and first.poll() is None, "the first run never locked"
        time.sleep(0.05)
    second = start()
    _, refused = second.communicate(timeout=300)
    (out / "go").touch()
    finished = first.communicate(timeout=300)
    assert (second.returncode, first.returncode) == (1, 0), (refused, finished)
    assert "RunInProgress" in refused and f"run location {out} is in use" in refused, refused
    assert local_results(out) == list(csv.DictReader(io.StringIO(text, newline="")))
    report = json.loads((out / "report.json").read_text())
    assert report["succeeded"] and report["rows_ok"] == report["source_rows"] == 120
    assert not (out / "lock.json").exists()


def test_resume_of_a_changed_source_is_refused_and_keeps_the_run(tmp_path: Path) -> None:
    write_source(tmp_path / "data.csv", 200)
    first = run_cli("run", "data.csv", "--chunk-size", "4KiB", "--out", "out", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    out = tmp_path / "out"
    before = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    write_source(tmp_path / "data.csv", 40)  # the source shrank
    second = run_cli("run", "--resume", "out", cwd=tmp_path)
    assert second.returncode == 1
    message = " ".join(second.stderr.split())
    assert "SourceChanged" in message and "data.csv changed since run" in message
    assert "start a new run of the source instead (s3split run" in message
    assert {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == before


def run_on_a_terminal(*args: str, cwd: Path) -> tuple[int, str, str]:
    """``s3split`` with its stderr on a pseudo-terminal (where the progress bar goes) and its
    stdout on a pipe: (exit status, stdout, what the terminal received)."""
    main, terminal = os.openpty()
    env = dict(os.environ) | {"COLUMNS": "200", "TERM": "xterm"}
    process = subprocess.Popen([S3SPLIT, *args], cwd=cwd, stdout=subprocess.PIPE,
                               stderr=terminal, text=True, env=env)
    os.close(terminal)
    received = bytearray()
    try:
        while True:
            try:
                data = os.read(main, 65536)
            except OSError:  # EIO: the terminal's last writer closed it
                break
            if not data:
                break
            received += data
        stdout = process.stdout.read() if process.stdout else ""
        process.wait(timeout=300)
    finally:
        os.close(main)
        if process.poll() is None:
            process.kill()
    return process.returncode, stdout, received.decode(errors="replace")


def test_the_progress_bar_ends_at_its_total_without_a_rate_for_a_small_source(
        tmp_path: Path) -> None:
    """A rate (MB/s of the uncompressed bytes: tests/unit/test_streams.py) only from 10 MB
    on: for 30 KB the time is the engine's start-up."""
    text = write_source(tmp_path / "data.csv", 300)
    (tmp_path / "data.csv.gz").write_bytes(gzip.compress(text.encode()))
    code, stdout, terminal = run_on_a_terminal("run", "data.csv.gz", "--chunk-size", "4KiB",
                                               cwd=tmp_path)
    assert code == 0, terminal
    chunks = json.loads((tmp_path / "s3split-out" / "data.csv.gz" / "report.json")
                        .read_text())["chunks"]
    assert chunks > 3
    frames = [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", frame).strip()
              for frame in re.split(r"[\r\n]+", terminal)]
    last = [frame for frame in frames if frame][-1]  # the bar stays as it ended
    assert last.startswith("done") and f" {chunks}/{chunks} chunks · 0 failed · 300 rows " \
        in last, last
    assert "MB/s" not in terminal
    assert "None" not in terminal and "GB" not in terminal and "MiB" not in terminal
    assert "s3split run:" in stdout and "s3split run:" not in terminal  # the summary: stdout


def test_a_resume_runs_with_the_schema_the_run_started_with_until_one_is_set_again(
        tmp_path: Path) -> None:
    """``S3SPLIT_SCHEMA=s.json s3split run x.csv --processor validate``, then ``s3split run
    --resume DIR`` without the variable failed "validate needs a schema". The run records its
    schema; a resume uses it, and a fixed schema set again replaces it: fix, then resume."""
    text = write_source(tmp_path / "data.csv", 200)
    columns: dict[str, Any] = {"id": {"type": "int", "required": True}, "city": {"type": "str"}}
    (tmp_path / "schema.json").write_text(json.dumps({"columns": columns}))  # lacks "note"
    unset = {name: value for name, value in os.environ.items() if name != "S3SPLIT_SCHEMA"}

    def run(*args: str, schema: str | None = None) -> subprocess.CompletedProcess[str]:
        env = unset | ({"S3SPLIT_SCHEMA": schema} if schema else {})
        return subprocess.run([S3SPLIT, "run", *args], cwd=tmp_path, text=True,
                              capture_output=True, timeout=300, env=env)

    first = run("data.csv", "--chunk-size", "4KiB", "--processor", "validate", "--out", "out",
                schema="schema.json")
    assert first.returncode == 1 and "not in the schema: note" in first.stdout, first.stderr
    (tmp_path / "schema.json").unlink()  # recorded as a document, not as a path
    again = run("--resume", "out")
    assert again.returncode == 1, again.stderr
    assert "not in the schema: note" in again.stdout and "needs a schema" not in again.stderr
    fixed = {"columns": columns | {"note": {"type": "str"}}}
    (tmp_path / "fixed.json").write_text(json.dumps(fixed))
    third = run("--resume", "out", schema=str(tmp_path / "fixed.json"))
    assert third.returncode == 0, third.stdout + third.stderr
    source = csv.DictReader(io.StringIO(text, newline=""))
    assert local_results(tmp_path / "out") == [row | {"id": int(row["id"])} for row in source]
    # the next resume runs with the fixed schema
    assert json.loads((tmp_path / "out" / "processor.json").read_text()) == {
        "S3SPLIT_SCHEMA": fixed}


def test_a_schema_fixed_after_it_rejected_every_row_takes_effect_on_resume(
        tmp_path: Path) -> None:
    """A schema that rejects rows leaves its chunks a success (with rejects): a resume with
    the fixed schema ran nothing, recorded the fixed schema as the run's and failed as
    before, for ever. A success made with other settings runs again, and its rejects go."""
    (tmp_path / "in.csv").write_text(FORTY)
    columns = {"id": {"type": "date", "required": True}, "name": {"type": "str"}}
    env = os.environ | {"S3SPLIT_SCHEMA": json.dumps({"columns": columns})}
    first = subprocess.run([S3SPLIT, "run", "in.csv", "--out", "run", "--chunk-size", "100",
                            "--processor", "validate"], cwd=tmp_path, text=True,
                           capture_output=True, timeout=300, env=env)
    assert first.returncode == 1 and "40 of 40 rows were rejected" in first.stderr, first.stderr
    fixed = {"columns": columns | {"id": {"type": "int", "required": True}}}
    again = subprocess.run([S3SPLIT, "run", "--resume", "run"], cwd=tmp_path, text=True,
                           capture_output=True, timeout=300,
                           env=env | {"S3SPLIT_SCHEMA": json.dumps(fixed)})
    assert again.returncode == 0, again.stdout + again.stderr
    run = tmp_path / "run"
    assert local_results(run) == [row | {"id": int(row["id"])} for row in forty_rows()]
    assert not list((run / "rejects").glob("*")), "rows counted ok still sit in rejects/"
    report = json.loads((run / "report.json").read_text())
    assert (report["rows_ok"], report["rows_rejected"]) == (40, 0)


def test_parquet_and_sql_processors_account_for_every_record(tmp_path: Path) -> None:
    """Through the engine and the worker: every chunk a typed Parquet file, or the result of
    the user's query, and every source record accounted once."""
    import duckdb

    write_source(tmp_path / "data.csv", 300)
    schema = {"columns": {"id": {"type": "int", "required": True}, "city": {"type": "str"},
                          "note": {"type": "str"}}}
    env = os.environ | {"S3SPLIT_SCHEMA": json.dumps(schema),
                        "S3SPLIT_SQL": "SELECT count(*) AS n, max(id) AS last FROM chunk"}
    for processor in ("parquet", "sql"):
        done = subprocess.run([S3SPLIT, "run", "data.csv", "--chunk-size", "4KiB", "--processor",
                               processor, "--out", processor], cwd=tmp_path, text=True,
                              capture_output=True, timeout=300, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        report = json.loads((tmp_path / processor / "report.json").read_text())
        assert report["succeeded"] and report["rows_ok"] == 300 and report["chunks"] > 2
    parquet = str(tmp_path / "parquet" / "results" / "*.parquet")
    found = duckdb.connect().execute(
        "SELECT count(*), sum(id), any_value(typeof(id)) FROM read_parquet(?)", [parquet])
    assert found.fetchone() == (300, sum(range(300)), "BIGINT")
    counts = [json.loads(line)["n"] for path in sorted((tmp_path / "sql" / "results").glob(
        "*.jsonl")) for line in path.read_text().splitlines()]
    assert sum(counts) == 300


@pytest.mark.parametrize(("query", "written"), [
    ("SELECT * FROM chunk UNION ALL SELECT * FROM chunk", 600),
    ("SELECT * FROM chunk WHERE id::INT % 3 = 0", 100),
    ("SELECT * FROM chunk", None)])
def test_a_sql_run_reports_the_records_its_query_wrote_beside_the_rows_it_read(
        tmp_path: Path, query: str, written: int | None) -> None:
    """Every source record is accounted once (``rows_ok``: what the query read); what the
    results hold is ``records_written``, which the summary shows where it differs."""
    write_source(tmp_path / "data.csv", 300)
    env = os.environ | {"S3SPLIT_SQL": query}
    env.pop("S3SPLIT_SQL_FILE", None)
    done = subprocess.run([S3SPLIT, "run", "data.csv", "--chunk-size", "4KiB", "--processor",
                           "sql", "--out", "out"], cwd=tmp_path, text=True,
                          capture_output=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    lines = [line for path in (tmp_path / "out" / "results").glob("*.jsonl")
             for line in path.read_text().splitlines()]
    assert (report["rows_ok"], report["records_written"]) == (300, len(lines))
    assert len(lines) == (written or 300)
    shown = [line for line in done.stdout.splitlines() if line.startswith("written")]
    assert shown == ([f"written {written:,} records in the results"] if written else [])


def test_an_out_directory_holding_other_files_is_refused_in_one_line(tmp_path: Path) -> None:
    write_source(tmp_path / "x.csv", 20)
    (tmp_path / "proj" / "results").mkdir(parents=True)
    (tmp_path / "proj" / "status").mkdir()
    mine = {"proj/results/thesis.docx": b"chapter 1", "proj/status/summary.csv": b"a,b\n",
            "proj/report.json": b'{"mine": true}'}
    for name, data in mine.items():
        (tmp_path / name).write_bytes(data)
    done = run_cli("run", "x.csv", "--out", "proj", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"s3split: error: run location {tmp_path / 'proj'} is not "
                                  "empty and holds no run (")
    assert {name: (tmp_path / name).read_bytes() for name in mine} == mine
    assert sorted(p.name for p in (tmp_path / "proj").rglob("*")) == [
        "report.json", "results", "status", "summary.csv", "thesis.docx"]


def test_a_run_folder_linked_elsewhere_is_refused_and_nothing_there_is_touched(
        tmp_path: Path) -> None:
    """An earlier run's location whose ``results/`` (or any folder the run writes and deletes
    in) someone replaced by a symbolic link: a run there would write, replace and delete
    files in the folder linked to, outside its location. It is refused before anything, as
    a new run and as a resume, for each such folder in turn."""
    write_source(tmp_path / "data.csv", 200)
    args = ("run", "data.csv", "--chunk-size", "4KiB", "--out", "out")
    assert run_cli(*args, cwd=tmp_path).returncode == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    mine = {f"part-{i:05d}.{ext}": f"mine {i}".encode()
            for i in range(3) for ext in ("jsonl", "json", "csv")}
    for name, data in mine.items():
        (elsewhere / name).write_bytes(data)
    for folder in ("results", "status", "chunks", "rejects"):
        kept = tmp_path / f"kept-{folder}"
        if (tmp_path / "out" / folder).exists():
            (tmp_path / "out" / folder).rename(kept)
        (tmp_path / "out" / folder).symlink_to(elsewhere, target_is_directory=True)
        for again in (args, ("run", "--resume", "out")):
            done = run_cli(*again, cwd=tmp_path)
            assert done.returncode == 1, done.stderr
            assert done.stderr.splitlines()[-1] == (
                f"s3split: error: DestinationUnwritable: run location {tmp_path / 'out'}: "
                f"{tmp_path / 'out' / folder} is "
                "a symbolic link, not a directory, where the run keeps its files; replace it "
                "by a directory or choose another run location"), done.stderr
            assert {p.name: p.read_bytes() for p in elsewhere.iterdir()} == mine
        (tmp_path / "out" / folder).unlink()
        if kept.exists():
            kept.rename(tmp_path / "out" / folder)


def test_a_second_source_of_the_same_name_never_replaces_the_first_ones_run(
        tmp_path: Path) -> None:
    for folder, rows in (("a", 20), ("b", 30)):
        (tmp_path / folder).mkdir()
        write_source(tmp_path / folder / "data.csv", rows)
    assert run_cli("run", "a/data.csv", cwd=tmp_path).returncode == 0
    out = tmp_path / "s3split-out" / "data.csv"
    before = local_results(out)
    done = run_cli("run", "b/data.csv", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr == (f"s3split: error: run location {out} holds the run of another "
                           f"source ({tmp_path / 'a' / 'data.csv'}), not of "
                           f"{tmp_path / 'b' / 'data.csv'}: a run there would replace its "
                           f"results; choose another --out for {tmp_path / 'b' / 'data.csv'}\n")
    assert local_results(out) == before and len(before) == 20


def test_output_people_can_use_rejects_apart_merged_results_whole_paths(tmp_path: Path) -> None:
    """Piped stdout (not a terminal): whole paths however long, counts whose nouns agree, no
    MB/s for a source whose time is the engine's start-up; rejects in their own folder, so
    ``cat results/*`` is data only; ``--merge`` writes one file in chunk order."""
    deep = tmp_path / ("a-folder-with-a-long-name-" * 4) / "x"
    deep.mkdir(parents=True)
    (deep / "one.csv").write_text("id,v\n" + "".join(
        f"{i},v{i}\n" if i != 5 else "5,v5,extra\n" for i in range(12)))
    done = run_cli("run", "one.csv", "--chunk-rows", "3", "--tolerate", "1", "--merge",
                   cwd=deep)
    assert done.returncode == 0, done.stderr
    out = deep / "s3split-out" / "one.csv"
    lines = done.stdout.splitlines()
    assert "…" not in done.stdout and len(max(lines, key=len)) > 120
    assert f"results {out / 'results.jsonl'}" in lines
    assert f"rejects {out / 'rejects'}" in lines and f"report  {out / 'report.json'}" in lines
    assert re.search(r"^bytes +[0-9]+ bytes$", done.stdout, re.M) and "MB/s" not in done.stdout
    assert re.search(r"^time +[0-9.]+ s, 1 execution$", done.stdout, re.M), done.stdout
    assert sorted(p.name for p in (out / "results").iterdir()) == [
        f"part-0000{i}.jsonl" for i in range(4)]
    assert sorted(p.name for p in (out / "rejects").iterdir()) == ["part-00001.jsonl"]
    (reject,) = [json.loads(line) for line in (out / "rejects" / "part-00001.jsonl")
                 .read_text().splitlines()]
    assert reject["line"] == 7 and reject["fields"] == ["5", "v5", "extra"]
    merged = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in merged] == [str(i) for i in range(12) if i != 5]


# -- a resume: every source record ends up once in an output, in a failure report, or an error ---


FORTY = "id,name\n" + "".join(f"{i},n{i}\n" for i in range(40))


def forty_rows() -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(FORTY, newline="")))


def finished_run(tmp_path: Path) -> Path:
    """A run of the 40 records of ``FORTY`` in three chunks (18, 14 and 8 records), all ok."""
    (tmp_path / "in.csv").write_text(FORTY)
    done = run_cli("run", "in.csv", "--out", "run", "--chunk-size", "100", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run = tmp_path / "run"
    manifest = json.loads((run / "chunks" / "manifest.json").read_text())
    assert [c["rows"] for c in manifest["chunks"]] == [18, 14, 8]
    return run


def test_resume_with_a_manifest_that_stops_short_of_the_source_loses_no_record(
        tmp_path: Path) -> None:
    run = finished_run(tmp_path)
    path = run / "chunks" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["chunks"].pop()  # the last chunk's 8 records (and the file) stay on disk
    manifest["count"] -= 1
    path.write_text(json.dumps(manifest))
    for status in (run / "status").iterdir():
        status.unlink()
    done = run_cli("run", "--resume", "run", cwd=tmp_path)
    if done.returncode == 0:
        report = json.loads((run / "report.json").read_text())
        assert report["source_rows"] == 40, done.stdout
        assert local_results(run) == forty_rows()


def test_a_chunk_edited_after_the_split_is_not_processed(tmp_path: Path) -> None:
    run = finished_run(tmp_path)
    chunk = run / "chunks" / "part-00001.csv"
    edited = chunk.read_bytes().replace(b"\n18,n18\n", b"\n18,forged value\n")
    assert edited != chunk.read_bytes()
    chunk.write_bytes(edited)
    (run / "status" / "part-00001.json").unlink()
    (run / "results" / "part-00001.jsonl").unlink()
    done = run_cli("run", "--resume", "run", cwd=tmp_path)
    assert {"id": "18", "name": "forged value"} not in local_results(run), done.stdout
    if done.returncode == 0:
        assert local_results(run) == forty_rows()


def test_the_run_the_resume_tests_start_from_holds_every_record_once(tmp_path: Path) -> None:
    """The unmodified run the resume tests here start from holds every record once (so they
    fail for what they test, not for the set-up)."""
    run = finished_run(tmp_path)
    assert local_results(run) == forty_rows()
    shutil.rmtree(run)


def test_resume_never_mixes_statuses_of_two_splits(tmp_path: Path) -> None:
    run = finished_run(tmp_path)
    (run / "status" / "part-00001.json").unlink()  # as if chunk 1 had failed
    (run / "results" / "part-00001.jsonl").unlink()
    settings = json.loads((run / "run.json").read_text())
    settings["chunk_size"] = 92  # splits as 16, 14 and 10 records instead of 18, 14 and 8
    (run / "run.json").write_text(json.dumps(settings))
    done = run_cli("run", "--resume", "run", cwd=tmp_path)
    if done.returncode == 0:
        assert local_results(run) == forty_rows(), done.stdout


def test_a_resume_refuses_a_record_its_workers_could_not_start_with_naming_it(
        tmp_path: Path) -> None:
    """Whoever can write a run location wrote its processor.json: a query with a NUL passed
    the check, and each worker the engine started died setting its environment (a minute of
    tracebacks, then "Runtime exited without providing a reason"); JSON nested too deeply
    was a RecursionError."""
    write_source(tmp_path / "data.csv", 50)
    env = os.environ | {"S3SPLIT_SQL": "SELECT count(*) AS n FROM chunk"}
    env.pop("S3SPLIT_SQL_FILE", None)
    first = subprocess.run([S3SPLIT, "run", "data.csv", "--processor", "sql", "--out", "out"],
                           cwd=tmp_path, text=True, capture_output=True, timeout=300, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    unset = {name: value for name, value in env.items() if name != "S3SPLIT_SQL"}
    record = tmp_path / "out" / "processor.json"
    for written, problem in [
            (json.dumps({"S3SPLIT_SQL": "SELECT count(*) AS n FROM chunk\x00"}),
             "S3SPLIT_SQL: a NUL byte at character 31"),
            ('{"S3SPLIT_SQL": ' + "[" * 100_000 + "]" * 100_000 + "}",
             "not valid JSON: nested too deeply")]:
        record.write_text(written)
        again = subprocess.run([S3SPLIT, "run", "--resume", "out"], cwd=tmp_path, text=True,
                               capture_output=True, timeout=60, env=unset)
        assert again.returncode != 0
        assert f"{record}: " in again.stderr and problem in again.stderr, again.stderr
        assert "Traceback" not in again.stderr


def test_a_status_naming_another_chunks_result_does_not_stand_for_its_chunk(
        tmp_path: Path) -> None:
    """A status record of chunk 1 edited to name chunk 0's result (at its size): the resume
    counted chunk 1's 14 rows as ok over records that were nowhere, and succeeded."""
    run = finished_run(tmp_path)
    path = run / "status" / "part-00001.json"
    status = json.loads(path.read_text())
    first = json.loads((run / "status" / "part-00000.json").read_text())
    status |= {"output": first["output"], "output_bytes": first["output_bytes"]}
    path.write_text(json.dumps(status))
    (run / "results" / "part-00001.jsonl").unlink()
    done = run_cli("run", "--resume", "run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert local_results(run) == forty_rows()


def test_a_manifest_of_another_source_is_named_as_not_this_runs(tmp_path: Path) -> None:
    """A manifest copied in from the run of another file was reported as this source having
    changed, with the advice to start the run afresh."""
    run = finished_run(tmp_path)
    (tmp_path / "other.csv").write_text(FORTY.replace(",n", ",m"))  # the same size
    other = run_cli("run", "other.csv", "--out", "other", "--chunk-size", "100", cwd=tmp_path)
    assert other.returncode == 0, other.stderr
    manifest = run / "chunks" / "manifest.json"
    shutil.copy(tmp_path / "other" / "chunks" / "manifest.json", manifest)
    done = run_cli("run", "--resume", "run", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"s3split: error: RunFileCorrupt: {manifest}: the manifest of a split of "
        f"{tmp_path / 'other.csv'}, but {run / 'run.json'} names the source "
        f"{tmp_path / 'in.csv'}: one of them is not this run's; if the manifest is, delete it "
        f"to split the source again (s3split run --resume {run}); if run.json is, put back "
        "the run's own"), done.stderr
    assert (run / "report.json").exists()
    manifest.unlink()
    again = run_cli("run", "--resume", "run", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert local_results(run) == forty_rows()
