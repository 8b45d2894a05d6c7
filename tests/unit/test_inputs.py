"""The execution input is untrusted: every refused input names its field, and a run's
location is derived from its source under the work location, as a plain path.

The deployment here is the template's (``s3://data/runs``, bucket ``data``). Inputs that
must be refused before anything is read get a Storage whose S3 client fails the test if
it is used at all.
"""

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from s3split.cli import aws as remote
from s3split.deployment import Deployment
from s3split.errors import BucketNotAllowed, InvalidInput
from s3split.pipeline.inputs import (
    MAX_COMPONENT_BYTES,
    MAX_RUN_PATH_BYTES,
    default_location,
    normalize,
)
from s3split.pipeline.spec import RunSpec
from s3split.storage import Storage
from tests.support import aws
from tests.support.template import EVENTS

WORK = "s3://data/runs"
AWS = Deployment(work_location=WORK, allowed_buckets=frozenset({"data"}))
SOURCE = "s3://data/incoming/orders.csv"
LOCATION = "s3://data/runs/incoming/orders.csv"


class _NoS3:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"S3 was used ({name}) for an input that must be refused first")


NO_S3 = Storage(_NoS3())  # type: ignore[arg-type]


def refused(event: Any, field: str, error: type[Exception] = InvalidInput,
            storage: Storage = NO_S3, deployment: Deployment = AWS) -> str:
    """The message of the error ``event`` is refused with; it must name ``field``."""
    with pytest.raises(error) as info:
        normalize(event, deployment, storage)
    message = str(info.value)
    assert re.search(rf"(^|[\s.:]){re.escape(field)}([\s.:]|$)", message), (field, message)
    return message


@pytest.fixture
def mocked_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto's S3 in this process (no server: nothing outside it reaches it), the bucket
    ``data`` made."""
    with aws.mocked_s3(monkeypatch, "data") as client:
        yield client


# -- a single start -------------------------------------------------------------------------


def test_a_start_runs_where_its_source_belongs_with_the_deployments_defaults() -> None:
    run = normalize({"source": SOURCE}, AWS, NO_S3)["run"]
    assert run["location"] == LOCATION
    assert (run["chunk_size"], run["lanes"], run["wait_seconds"], run["processor"],
            run["tolerate"]) == (AWS.chunk_size, AWS.lanes, 0, "jsonl", "0")


def test_valid_overrides_are_kept_as_given() -> None:
    event = {"source": SOURCE, "chunk_size": "1KiB", "lanes": 3, "wait_seconds": 0,
             "processor": "noop", "tolerate": "5%"}
    run = normalize(event, AWS, NO_S3)["run"]
    assert (run["chunk_size"], run["lanes"], run["wait_seconds"], run["processor"],
            run["tolerate"]) == (1024, 3, 0, "noop", "5%")
    assert normalize({"source": SOURCE, "chunk_size": 100}, AWS, NO_S3)["run"]["chunk_size"] == 100


def test_how_to_read_the_source_is_kept_and_flows_into_the_split_settings() -> None:
    event = {"source": SOURCE, "encoding": "cp1252", "skip_lines": 3, "delimiter": "\t"}
    spec = RunSpec.from_dict(normalize(event, AWS, NO_S3)["run"])
    settings = spec.split_settings
    assert (settings.encoding, settings.skip_lines, settings.delimiter) == ("cp1252", 3, "\t")
    default = RunSpec.from_dict(normalize({"source": SOURCE}, AWS, NO_S3)["run"]).split_settings
    assert (default.encoding, default.skip_lines, default.delimiter) == (None, 0, None)


@pytest.mark.parametrize("run", [LOCATION, "s3://data/runs/incoming/other.csv",
                                 "s3://data/runs/incoming/other.csv/../orders.csv"])
def test_an_input_cannot_choose_the_run_location(run: str) -> None:
    """Today ``{"source": a, "run": <b's location>}`` overwrote run b."""
    message = refused({"source": SOURCE, "run": run}, "run")
    assert "derived from its source" in message


def test_the_local_engine_takes_the_run_location_from_its_input(tmp_path: Path) -> None:
    source = tmp_path / "orders.csv"
    source.write_text("id\n1\n")
    local = Deployment(work_location=str(tmp_path / "work"), allow_local=True,
                       allowed_buckets=frozenset({"data"}), run_from_input=True)
    out = str(tmp_path / "my-out")
    assert normalize({"source": str(source), "run": out}, local, NO_S3)["run"]["location"] == out
    refused({"source": str(source), "run": str(tmp_path / "a" / ".." / "b")}, "run",
            deployment=local)
    refused({"source": str(source), "run": "s3://data/elsewhere/x"}, "run", BucketNotAllowed,
            deployment=local)


@pytest.mark.parametrize(("given", "field"), [
    ({"chunk_size": 0}, "chunk_size"),
    ({"chunk_size": True}, "chunk_size"),
    ({"chunk_size": "0"}, "chunk_size"),
    ({"chunk_size": ""}, "chunk_size"),
    ({"chunk_size": 1.5}, "chunk_size"),
    ({"lanes": True}, "lanes"),
    ({"lanes": "2"}, "lanes"),
    ({"lanes": 0}, "lanes"),
    ({"lanes": 41}, "lanes"),
    ({"wait_seconds": -7}, "wait_seconds"),
    ({"wait_seconds": True}, "wait_seconds"),
    ({"wait_seconds": 86_401}, "wait_seconds"),
    ({"processor": "anything:goes"}, "processor"),
    ({"processor": "../x"}, "processor"),
    ({"processor": ""}, "processor"),
    ({"processor": 1}, "processor"),
    ({"tolerate": 3}, "tolerate"),
    ({"tolerate": ""}, "tolerate"),
    ({"tolerate": "lots"}, "tolerate"),
    ({"tolerate": "101%"}, "tolerate"),
    # what int() and float() take besides plain digits: each a count or a share in disguise
    ({"tolerate": "NaN%"}, "tolerate"),
    ({"tolerate": "1e999"}, "tolerate"),
    ({"tolerate": "-1%"}, "tolerate"),
    ({"tolerate": "-0%"}, "tolerate"),
    ({"tolerate": "1e2%"}, "tolerate"),
    ({"tolerate": "1_000"}, "tolerate"),
    ({"tolerate": " 3\n"}, "tolerate"),
    ({"tolerate": "\u0663"}, "tolerate"),  # ARABIC-INDIC DIGIT THREE
    ({"tolerate": "+3"}, "tolerate"),
    ({"tolerate": "9" * 5000}, "tolerate"),
    ({"source": 42}, "source"),
    ({"source": ""}, "source"),
    ({"colour": "red"}, "colour"),
    ({"encoding": "../../x"}, "encoding"),
    ({"encoding": "base64"}, "encoding"),
    ({"encoding": "no-such-codec"}, "encoding"),
    ({"encoding": 1252}, "encoding"),
    ({"skip_lines": -1}, "skip_lines"),
    ({"skip_lines": True}, "skip_lines"),
    ({"skip_lines": 1_000_001}, "skip_lines"),
    ({"delimiter": ""}, "delimiter"),
    ({"delimiter": ";;"}, "delimiter"),
])
def test_mistyped_or_out_of_range_fields_are_refused_not_coerced(given: dict[str, Any],
                                                                 field: str) -> None:
    refused({"source": SOURCE} | given, field)


def test_a_source_outside_the_deployment_names_the_field() -> None:
    message = refused({"source": "s3://not-ours/x.csv"}, "source", BucketNotAllowed)
    assert "not-ours" in message
    refused({"source": "/etc/passwd"}, "source", BucketNotAllowed)


# -- a batch --------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["s3://data/runs/", "s3://data/runs/incoming/",
                                    "s3://data/runs", "s3://data/run", "s3://data/",
                                    "s3://data"])
def test_a_batch_prefix_that_lists_the_work_location_is_refused(prefix: str) -> None:
    """Today ``{"prefix": "s3://data/runs/"}`` queued one run per chunk file."""
    message = refused({"prefix": prefix}, "prefix")
    assert "work location" in message


def test_a_batch_of_the_input_prefix_lists_its_csv_files(mocked_s3: Any) -> None:
    for key in ("incoming/a.csv", "incoming/b.txt", "incoming//odd.csv",
                "runs/incoming/a.csv/chunks/part-00000.csv"):
        mocked_s3.put_object(Bucket="data", Key=key, Body=b"id\n1\n")
    planned = normalize({"prefix": "s3://data/incoming/"}, AWS, Storage(mocked_s3))
    # A key Plan will refuse is still started: its own run then fails naming it.
    assert planned == {"mode": "batch", "sources": [{"source": "s3://data/incoming//odd.csv"},
                                                    {"source": "s3://data/incoming/a.csv"}]}


def test_a_batch_prefix_without_a_trailing_slash_is_the_folder_of_that_name(mocked_s3: Any) -> None:
    """Listed as "incoming/": the roles grant listing ``incoming/*`` only, and a sibling
    folder "incoming-old/" is not part of the batch."""
    for key in ("incoming/a.csv", "incoming-old/b.csv", "incomingb.csv"):
        mocked_s3.put_object(Bucket="data", Key=key, Body=b"id\n1\n")
    listed: list[str] = []
    mocked_s3.meta.events.register("before-parameter-build.s3.ListObjectsV2",
                            lambda params, **_: listed.append(params["Prefix"]))
    planned = normalize({"prefix": "s3://data/incoming"}, AWS, Storage(mocked_s3))
    assert planned == {"mode": "batch", "sources": [{"source": "s3://data/incoming/a.csv"}]}
    assert listed and set(listed) <= {"incoming/", "runs/incoming/"}


# -- a resume -------------------------------------------------------------------------------


def recorded(**changes: Any) -> dict[str, Any]:
    """The run.json Plan writes for SOURCE, changed."""
    spec = normalize({"source": SOURCE}, AWS, NO_S3)["run"] | {"run_id": "orders-1a2b3c4d-5e6f7a8b"}
    return {k: v for k, v in (spec | changes).items() if not (k in changes and v is None)}


def put_run_json(s3: Any, document: Any, location: str = LOCATION) -> None:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    s3.put_object(Bucket="data", Key=f"{location.removeprefix('s3://data/')}/run.json",
                  Body=body)


def test_a_resume_returns_the_recorded_run(mocked_s3: Any) -> None:
    put_run_json(mocked_s3, recorded())
    for location in (LOCATION, LOCATION + "/"):
        planned = normalize({"resume": location}, AWS, Storage(mocked_s3))
        assert planned == {"mode": "resume", "run": recorded()}


@pytest.mark.parametrize(("changes", "field", "error"), [
    ({"wait_seconds": -7}, "wait_seconds", InvalidInput),
    ({"processor": "anything:goes"}, "processor", InvalidInput),
    ({"lanes": True}, "lanes", InvalidInput),
    ({"lanes": 99}, "lanes", InvalidInput),
    ({"chunk_size": 0}, "chunk_size", InvalidInput),
    ({"chunk_size": "64MiB"}, "chunk_size", InvalidInput),
    ({"tolerate": "lots"}, "tolerate", InvalidInput),
    ({"run_id": "../x"}, "run_id", InvalidInput),
    ({"extra": 1}, "extra", InvalidInput),
    ({"source": None}, "source", InvalidInput),
    ({"location": "s3://data/runs/incoming/other.csv"}, "location", InvalidInput),
    ({"source": "s3://elsewhere/incoming/orders.csv"}, "source", BucketNotAllowed),
    ({"source": "s3://data/incoming/other.csv"}, "location", InvalidInput),
])
def test_a_resume_checks_run_json_completely(mocked_s3: Any, changes: dict[str, Any], field: str,
                                             error: type[Exception]) -> None:
    put_run_json(mocked_s3, recorded(**changes))
    message = refused({"resume": LOCATION}, field, error, Storage(mocked_s3))
    assert "run.json" in message


def test_a_resume_may_change_lanes_pause_and_tolerate_only(mocked_s3: Any) -> None:
    put_run_json(mocked_s3, recorded())
    planned = normalize({"resume": LOCATION, "lanes": 7, "wait_seconds": 3, "tolerate": "5%"},
                        AWS, Storage(mocked_s3))
    assert planned == {"mode": "resume",
                       "run": recorded(lanes=7, wait_seconds=3, tolerate="5%")}
    refused({"resume": LOCATION, "tolerate": "lots"}, "tolerate", InvalidInput, Storage(mocked_s3))
    refused({"resume": LOCATION, "lanes": 0}, "lanes", InvalidInput, Storage(mocked_s3))
    for field in ("processor", "chunk_size", "header", "run"):
        refused({"resume": LOCATION, field: "x"}, field, InvalidInput, Storage(mocked_s3))


@pytest.mark.parametrize("document", [b"{not json", b"\xff\xfe", [1, 2], "a string"])
def test_a_resume_of_a_run_json_that_is_no_object_is_refused(mocked_s3: Any, document: Any) -> None:
    put_run_json(mocked_s3, document)
    with pytest.raises(InvalidInput) as info:
        normalize({"resume": LOCATION}, AWS, Storage(mocked_s3))
    assert str(info.value).startswith(f"invalid run settings in {LOCATION}/run.json: ")


@pytest.mark.parametrize(("resume", "error"), [
    ("s3://data/elsewhere/x", BucketNotAllowed),
    ("s3://data/runs", BucketNotAllowed),
    ("s3://data/runsx/y", BucketNotAllowed),
    ("s3://other/runs/x", BucketNotAllowed),
    ("s3://data/runs/../incoming", InvalidInput),
    ("s3://data/runs/a//b", InvalidInput),
    ("s3://data/runs/./b", InvalidInput),
    ("", InvalidInput),
    (7, InvalidInput),
])
def test_a_resume_location_outside_the_work_location_is_refused(resume: Any,
                                                                error: type[Exception]) -> None:
    refused({"resume": resume}, "resume", error)


# -- our own continue-as-new ----------------------------------------------------------------


def continuation(run: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    lane = {"index": 0, "step": 2, "count": 5, "budget": 100, "cost": 0}
    body = {"run": run or recorded(), "lease": "arn:exec", "lanes": [lane], "generation": 1}
    return {"continue": body | changes}


def test_a_continuation_carries_its_run_and_lanes() -> None:
    planned = normalize(continuation(), AWS, NO_S3)
    assert planned["mode"] == "continue" and planned["run"] == recorded()
    assert planned["lanes"] == [{"index": 0, "step": 2, "count": 5, "budget": 100, "cost": 0}]


@pytest.mark.parametrize(("event", "field"), [
    (continuation(recorded(bogus=1)), "continue.run.bogus"),
    (continuation(recorded(lanes="2")), "continue.run.lanes"),
    (continuation(recorded(wait_seconds=-7)), "continue.run.wait_seconds"),
    (continuation(lanes=[{"index": 0, "step": 2, "count": 5, "bogus": 1}]),
     "continue.lanes.0.bogus"),
    (continuation(lanes=[{"index": "0", "step": 2, "count": 5}]), "continue.lanes.0.index"),
    (continuation(generation=True), "continue.generation"),
    (continuation(bogus=1), "continue.bogus"),
    (continuation(recorded(location="s3://data/runs/incoming/other.csv")), "continue.run.location"),
])
def test_a_continuation_with_unknown_or_mistyped_fields_is_invalid_input(
        event: dict[str, Any], field: str) -> None:
    """Today an unknown field in ``run`` was a TypeError from ``RunSpec(**data)``."""
    refused(event, field)


@pytest.mark.parametrize(("changes", "field"), [
    ({"detail-type": "Object Deleted"}, "detail-type"),
    ({"detail-type": "Object Restore Completed"}, "detail-type"),
    ({"source": "aws.events"}, "source"),
])
def test_an_eventbridge_event_other_than_an_s3_upload_is_refused(changes: dict[str, Any],
                                                                 field: str) -> None:
    """An "Object Deleted" event started a run of the deleted key (its Plan cleared the
    earlier run's results); the rule's pattern filters them, but the input is untrusted."""
    event = json.loads((EVENTS / "s3_object_created.json").read_text()) | changes
    message = refused(event, field)
    assert "Object Created" in message


# -- local paths derived from a source ------------------------------------------------------


@pytest.mark.parametrize("key", ["in/../../../x/victim", "../x.csv", "in/./x.csv", "in//x.csv",
                                 "/x.csv", "in/x.csv/", "in/\0.csv", "", ".."])
def test_a_key_whose_run_would_not_be_a_plain_path_is_refused(key: str) -> None:
    message = refused({"source": f"s3://data/{key}"}, "source")
    assert "path component" in message
    with pytest.raises(InvalidInput, match="path component"):
        default_location(f"s3://data/{key}", Deployment("s3split-out"))


@pytest.mark.parametrize("path", ["/tmp/..", "/tmp/.", "."])
def test_a_local_name_that_climbs_out_is_refused(path: str) -> None:
    with pytest.raises(InvalidInput, match="source"):
        default_location(path, Deployment("s3split-out"))


def test_a_key_that_is_not_utf8_is_refused() -> None:
    refused({"source": "s3://data/in/\udcff.csv"}, "source")


def relative(location: str, work: str = WORK) -> str:
    assert location.startswith(work + "/"), location
    return location[len(work) + 1:]


def test_over_long_components_are_hashed_under_the_work_location() -> None:
    long_a, long_b = "é" * 200 + "a.csv", "é" * 200 + "b.csv"  # 405 bytes each
    a = relative(default_location(f"s3://data/in/{long_a}", AWS))
    b = relative(default_location(f"s3://data/in/{long_b}", AWS))
    assert a != b and a.startswith("in/é") and b.startswith("in/é")
    assert all(len(part.encode()) <= MAX_COMPONENT_BYTES for part in (*a.split("/"),
                                                                     *b.split("/")))
    assert a == relative(default_location(f"s3://data/in/{long_a}", AWS))  # stable


def test_an_over_long_key_keeps_its_file_name_under_a_hash() -> None:
    key = "/".join(["d" * 200] * 4 + ["orders.csv"])  # 814 bytes, each component fits
    path = relative(default_location(f"s3://data/{key}", AWS))
    assert len(path.encode()) <= MAX_RUN_PATH_BYTES
    digest, name = path.split("/")
    assert re.fullmatch(r"[0-9a-f]{32}", digest) and name == "orders.csv"
    other = relative(default_location(f"s3://data/{key.replace('d', 'e', 1)}", AWS))
    assert other != path


def test_local_and_s3_sources_are_named_the_same_way(tmp_path: Path) -> None:
    """By the source's own name, suffix kept: ``x.csv`` and ``x.csv.gz`` get runs of their own."""
    local = Deployment(str(tmp_path))
    assert default_location("/somewhere/orders.csv", local) == str(tmp_path / "orders.csv")
    assert default_location("s3://data/orders.csv", AWS) == f"{WORK}/orders.csv"
    assert default_location("s3://data/in/orders.csv", local) == \
        str(tmp_path / "in" / "orders.csv")
    assert default_location("/x/orders.csv.gz", local) != default_location("/x/orders.csv", local)


def test_status_on_aws_looks_where_plan_puts_the_run() -> None:
    for key in ("incoming/orders.csv", "in/" + "é" * 200 + ".csv", "/".join(["d" * 200] * 4)):
        source = f"s3://data/{key}"
        assert remote.default_location(source) == default_location(source, AWS)
    assert remote.default_location("s3://data/in/../x.csv") is None
