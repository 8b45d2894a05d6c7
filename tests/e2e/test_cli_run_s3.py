"""``s3split run`` with S3 storage at ``AWS_ENDPOINT_URL`` (here a moto server, as MinIO or
LocalStack would be): source and run location are s3:// URIs."""

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

from pipeline_support import BUCKET, CREDENTIALS, csv_text, moto_s3_server, s3_client

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
