"""``s3split run`` with S3 storage at ``AWS_ENDPOINT_URL`` (here a moto server, as MinIO or
LocalStack would be): source and run location are s3:// URIs."""

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.pipeline import BUCKET, CREDENTIALS, csv_text, moto_s3_server, s3_client

S3SPLIT = str(Path(sys.executable).parent / "s3split")


def test_run_from_s3_to_s3(tmp_path: Path) -> None:
    text = csv_text(60)
    with moto_s3_server() as endpoint:
        s3 = s3_client(endpoint)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="incoming/in.csv", Body=text.encode())
        env = dict(os.environ) | CREDENTIALS | {"AWS_ENDPOINT_URL": endpoint}
        done = subprocess.run(
            [S3SPLIT, "run", f"s3://{BUCKET}/incoming/in.csv", "--out",
             f"s3://{BUCKET}/runs/in", "--chunk-size", "2KiB", "--lanes", "2"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="runs/in/results/")
        rows = []
        for key in sorted(o["Key"] for o in listed["Contents"]):
            body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
            rows += [json.loads(line) for line in body.splitlines()]
        report = json.loads(s3.get_object(Bucket=BUCKET, Key="runs/in/report.json")["Body"]
                            .read())
    assert rows == list(csv.DictReader(io.StringIO(text, newline="")))
    assert report["succeeded"] and report["chunks"] > 2
    assert not (tmp_path / "s3split-out").exists()  # nothing written locally


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_a_key_that_climbs_out_never_leaves_the_output_directory(tmp_path: Path) -> None:
    """Today ``s3split run s3://b/in/../../../x/victim`` wrote into ``x/victim`` beside the
    working directory and deleted the status and result files it found there."""
    victim = tmp_path / "x" / "victim"
    for folder, name in (("status", "part-00000.json"), ("results", "part-00000.jsonl")):
        (victim / folder).mkdir(parents=True)
        (victim / folder / name).write_text("not yours")
    cwd = tmp_path / "w"
    cwd.mkdir()
    key = "in/../../../x/victim"
    before = files_under(tmp_path)
    with moto_s3_server() as endpoint:
        s3 = s3_client(endpoint)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key=key, Body=csv_text(20).encode())
        env = dict(os.environ) | CREDENTIALS | {"AWS_ENDPOINT_URL": endpoint}
        done = subprocess.run([S3SPLIT, "run", f"s3://{BUCKET}/{key}", "--chunk-size", "2KiB"],
                              cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done
    assert done.stderr.startswith("s3split: error: ") and done.stderr.count("\n") == 1
    assert "source" in done.stderr and "'..'" in done.stderr
    assert files_under(tmp_path) == before  # nothing written or deleted anywhere


def test_a_key_with_an_over_long_name_runs_under_the_output_directory(tmp_path: Path) -> None:
    """A 300-byte key component would be too long for a local directory name: it is hashed."""
    name = "n" * 296 + ".csv"
    text = csv_text(20)
    with moto_s3_server() as endpoint:
        s3 = s3_client(endpoint)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key=f"in/{name}", Body=text.encode())
        env = dict(os.environ) | CREDENTIALS | {"AWS_ENDPOINT_URL": endpoint}
        done = subprocess.run([S3SPLIT, "run", f"s3://{BUCKET}/in/{name}", "--chunk-size",
                               "2KiB"], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)
    assert done.returncode == 0, done.stderr
    runs = list((tmp_path / "s3split-out" / "in").iterdir())
    assert [len(p.name.encode()) <= 255 and p.name.startswith("nnn") for p in runs] == [True]
    report = json.loads((runs[0] / "report.json").read_text())
    assert report["succeeded"] and report["rows_ok"] == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s3split-out"]


def test_the_default_output_directory_is_named_alike_for_local_and_s3_sources(
        tmp_path: Path) -> None:
    """By the source's own name, suffix kept: a file's name, an object's key."""
    text = csv_text(20)
    (tmp_path / "orders.csv").write_text(text)
    with moto_s3_server() as endpoint:
        s3 = s3_client(endpoint)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="incoming/orders.csv", Body=text.encode())
        env = dict(os.environ) | CREDENTIALS | {"AWS_ENDPOINT_URL": endpoint}
        for source in ("orders.csv", f"s3://{BUCKET}/incoming/orders.csv"):
            done = subprocess.run([S3SPLIT, "run", source, "--chunk-size", "2KiB"], cwd=tmp_path,
                                  env=env, capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stderr
    out = tmp_path / "s3split-out"
    for run in (out / "orders.csv", out / "incoming" / "orders.csv"):
        assert json.loads((run / "report.json").read_text())["succeeded"], run


def test_a_resume_of_a_shared_run_location_reads_only_the_source_the_user_names(
        tmp_path: Path) -> None:
    """Whoever can write the run's prefix can edit its run.json: the resume names the source
    (and it must match), so the user's credentials never read one the location chose."""
    text = csv_text(30)
    with moto_s3_server() as endpoint:
        s3 = s3_client(endpoint)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="incoming/in.csv", Body=text.encode())
        env = dict(os.environ) | CREDENTIALS | {"AWS_ENDPOINT_URL": endpoint}
        location, source = f"s3://{BUCKET}/runs/in", f"s3://{BUCKET}/incoming/in.csv"

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([S3SPLIT, "run", *args], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=300)

        assert cli(source, "--out", location, "--chunk-size", "2KiB").returncode == 0
        spec = json.loads(s3.get_object(Bucket=BUCKET, Key="runs/in/run.json")["Body"].read())
        planted = spec | {"source": "s3://private/secrets.csv"}
        s3.put_object(Bucket=BUCKET, Key="runs/in/run.json", Body=json.dumps(planted).encode())
        alone = cli("--resume", location)
        named = cli(source, "--resume", location)
        s3.put_object(Bucket=BUCKET, Key="runs/in/run.json", Body=json.dumps(spec).encode())
        resumed = cli(source, "--resume", location)
    assert alone.returncode == 1 and alone.stderr == (
        f"s3split: error: the run at {location} records its source as s3://private/secrets.csv;"
        " a shared run location does not choose what a resume reads: name it: s3split run "
        f"s3://private/secrets.csv --resume {location}\n")
    assert named.returncode == 1 and named.stderr == (
        f"s3split: error: the run at {location} is a run of s3://private/secrets.csv, not of "
        f"{source}; resume it with: s3split run s3://private/secrets.csv --resume {location}\n")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming the run of {source} (processor jsonl) at {location}" in resumed.stderr
