"""``s3split run DIR_OR_PREFIX``: a batch import in one command, the real CLI in a subprocess,
from a local directory and from an S3 prefix (a moto server)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.pipeline import BUCKET, CREDENTIALS, local_results, moto_s3_server, s3_client

S3SPLIT = str(Path(sys.executable).parent / "s3split")


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([S3SPLIT, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env)


def table(rows: int, tag: str) -> str:
    return "id,name\n" + "".join(f'{i},"{tag}, {i}"\n' for i in range(rows))


def test_a_directory_is_imported_file_by_file_with_a_line_each(tmp_path: Path) -> None:
    data = tmp_path / "exports"
    (data / "2024").mkdir(parents=True)
    sources = {f"f{i:02d}.csv": table(10 + i, f"f{i}") for i in range(24)}
    sources["2024/jan.csv"] = table(7, "jan")
    sources["2024/bad.csv"] = 'id,name\n1,"never closed\n'
    for name, text in sources.items():
        (data / name).write_text(text)
    (data / "notes.txt").write_text("not a table")
    done = cli("run", "exports", "--out", "exports/out", "--chunk-rows", "5", cwd=tmp_path)
    assert done.returncode == 1  # one file failed
    out = data / "out"
    lines = done.stderr.splitlines()
    assert len(lines) == 26 and sorted(line.split("]")[0] for line in lines) == sorted(
        f"[{n}/26" for n in range(1, 27))
    assert any(line.endswith("] f03.csv: ok (13 rows)") for line in lines), lines
    (bad,) = [line for line in lines if "2024/bad.csv" in line]
    assert ": FAILED UnterminatedQuote: " in bad and "(line 2)" in bad
    summary = done.stdout.splitlines()
    good_rows = sum(10 + i for i in range(24)) + 7
    assert summary[:5] == [
        f"s3split run: {data}", "files   25 ok, 1 failed of 26 files",
        f"rows    {good_rows:,} rows in sources: {good_rows:,} ok, 0 rejected, 0 in failed "
        "chunks", summary[3], f"out     {out}"]
    assert summary[5].startswith("failed  2024/bad.csv: UnterminatedQuote: ")
    for name, text in sources.items():
        if name != "2024/bad.csv":
            records = local_results(out / name)
            assert [r["name"] for r in records] == [
                line.split(",", 1)[1].strip('"') for line in text.splitlines()[1:]]
    # again after the fix: only the file that failed runs; the out folder is never imported
    (data / "2024" / "bad.csv").write_text(table(3, "fixed"))
    again = cli("run", "exports", "--out", "exports/out", "--chunk-rows", "5", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[1] == "files   26 ok, 0 failed of 26 files (25 imported " \
                                           "before)"
    assert sum(": ok (" in line for line in again.stderr.splitlines()) == 1


def test_an_s3_prefix_is_imported_in_one_command(tmp_path: Path) -> None:
    with moto_s3_server() as endpoint:
        s3 = s3_client(endpoint)
        s3.create_bucket(Bucket=BUCKET)
        for name, rows in (("a.csv", 5), ("b/c.csv", 8), ("b/readme.md", 0)):
            s3.put_object(Bucket=BUCKET, Key=f"incoming/{name}", Body=table(rows, name).encode())
        env = dict(os.environ) | CREDENTIALS | {"AWS_ENDPOINT_URL": endpoint}
        done = cli("run", f"s3://{BUCKET}/incoming/", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "s3split-out" / "incoming"
    assert done.stdout.splitlines()[1:3] == [
        "files   2 ok, 0 failed of 2 files",
        "rows    13 rows in sources: 13 ok, 0 rejected, 0 in failed chunks"]
    assert [r["id"] for r in local_results(out / "b" / "c.csv")] == [str(i) for i in range(8)]
    report = json.loads((out / "a.csv" / "report.json").read_text())
    assert report["source"] == f"s3://{BUCKET}/incoming/a.csv" and report["succeeded"]


def test_a_key_below_another_files_name_never_runs_inside_that_files_run(
        tmp_path: Path) -> None:
    """S3 holds ``a.csv`` and ``a.csv/results/x.csv`` at once: the second's run location would
    lie inside the first's (its results among the first's results, or the first refused as a
    location holding foreign files, whichever ran first). The inner one fails, naming both;
    the outer one is imported, and a second command changes nothing."""
    names = ("a.csv", "a.csv/results/x.csv", "a.csv/b.csv", "c.csv")
    with moto_s3_server() as endpoint:
        s3 = s3_client(endpoint)
        s3.create_bucket(Bucket=BUCKET)
        for name in names:
            s3.put_object(Bucket=BUCKET, Key=f"incoming/{name}", Body=table(6, name).encode())
        env = dict(os.environ) | CREDENTIALS | {"AWS_ENDPOINT_URL": endpoint}
        runs = [cli("run", f"s3://{BUCKET}/incoming/", cwd=tmp_path, env=env) for _ in "12"]
    out = tmp_path / "s3split-out" / "incoming"
    for done in runs:
        assert done.returncode == 1, done.stderr
        assert done.stdout.splitlines()[1] == "files   2 ok, 2 failed of 4 files" + (
            " (2 imported before)" if done is runs[1] else "")
        for inner in ("a.csv/b.csv", "a.csv/results/x.csv"):
            assert (f"{inner}: FAILED RunLocationTaken: run location {out / inner} lies inside "
                    f"the run location of a.csv ({out / 'a.csv'}): its run would write among "
                    "that run's files; import it with another --out") in done.stderr
    assert sorted(p.name for p in (out / "a.csv").iterdir()) == [
        "chunks", "processor.json", "report.json", "results", "run.json", "status"]
    assert [p.name for p in (out / "a.csv" / "results").iterdir()] == ["part-00000.jsonl"]
    assert len(local_results(out / "a.csv")) == len(local_results(out / "c.csv")) == 6
