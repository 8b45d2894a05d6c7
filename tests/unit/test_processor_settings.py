"""A processor owns its settings: a new processor with one setting is its own module and one
registry line (and the template's line, checked by tests/template/test_resources.py), and its
setting is then read from the environment, checked with an error naming it, checked by Plan,
recorded for ``--resume`` and given back on resume, with no other edit."""

from __future__ import annotations

import json
import random
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

import pytest

from s3split.errors import InvalidInput, InvalidOption
from s3split.processors import registry
from s3split.processors.check import check_processor
from s3split.processors.recorded_settings import record, resume_environment
from s3split.processors.registry import declared_settings, get_processor, processor_settings
from s3split.processors.settings import Setting
from s3split.storage import Storage
from tests.support.jobs import make_job
from tests.support.plans import plan_local_run

# A new processor's module, as its author writes it: the setting declared at the top, the class
# naming it. Nothing of s3split but its public names.
TOY_MODULE = '''
from s3split.processors import ProcessResult, Setting, Settings, read_rows


def _volume(text):
    if text not in ("loud", "quiet"):
        raise ValueError(f"expected loud or quiet, got {text!r}")
    return text


VOLUME = Setting("S3SPLIT_TOY_VOLUME", _volume, recorded_as=str, from_ssm=True)


class ToyProcessor:
    extension = "jsonl"
    settings = (VOLUME,)

    @classmethod
    def from_settings(cls, settings: Settings) -> "ToyProcessor":
        return cls(settings.required(VOLUME, "toy needs a volume: set S3SPLIT_TOY_VOLUME"))

    def __init__(self, volume):
        self.volume = volume

    def __call__(self, job, storage):
        with read_rows(job, storage) as rows, storage.writer(job.output_uri) as out:
            for row in rows:
                text = ",".join(row.fields)
                out.write((text.upper() if self.volume == "loud" else text.lower()).encode()
                          + b"\\n")
        return ProcessResult(rows.count, rows.count, 0, job.output_uri, None, [])
'''


@pytest.fixture
def toy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The toy processor in a package of its own, registered with one line: ``toy``."""
    package = f"s3split_toy_{random.randrange(10**9)}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "toy.py").write_text(textwrap.dedent(TOY_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "BUILTINS", MappingProxyType({
        **registry.BUILTINS,
        "toy": f"{package}.toy:ToyProcessor",  # the one registry line
    }))
    monkeypatch.delenv("S3SPLIT_TOY_VOLUME", raising=False)
    yield package
    for name in [name for name in sys.modules if name.startswith(package)]:
        del sys.modules[name]


def test_a_new_processor_with_one_setting_needs_its_module_and_one_registry_line(
        toy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert toy not in sys.modules  # known by name; its module is imported when it is used
    assert [s.variable for s in declared_settings("toy")] == ["S3SPLIT_TOY_VOLUME"]
    # read from the environment (stripped), and the processor made from it
    processor = get_processor("toy", {"S3SPLIT_TOY_VOLUME": " loud "})
    job = make_job(tmp_path, "id,name\n1,Ann\n")
    assert processor(job, Storage()).rows_out == 1
    assert Path(job.output_uri).read_text() == "1,ANN\n"
    # checked, with an error naming the variable, by Plan's check as by the worker
    with pytest.raises(InvalidOption, match=r"^S3SPLIT_TOY_VOLUME: expected loud or quiet, "
                                            r"got 'shouty'$"):
        get_processor("toy", {"S3SPLIT_TOY_VOLUME": "shouty"})
    with pytest.raises(InvalidInput, match=r"^invalid processor configuration: "
                                           r"S3SPLIT_TOY_VOLUME: expected loud or quiet"):
        check_processor("toy", {"S3SPLIT_TOY_VOLUME": "shouty"})
    with pytest.raises(InvalidInput, match=r"^invalid execution input: processor: toy needs a "
                                           r"volume: set S3SPLIT_TOY_VOLUME$"):
        check_processor("toy", {})
    # recorded by Plan for --resume
    monkeypatch.setenv("S3SPLIT_TOY_VOLUME", "loud")
    location = plan_local_run(tmp_path, "toy")
    document = json.loads((location / "processor.json").read_text())
    assert document == {"S3SPLIT_TOY_VOLUME": "loud"}
    # given back on resume when the user's environment does not set it again
    resumed = resume_environment(document, "run/processor.json", "toy", {})
    assert resumed == {"S3SPLIT_TOY_VOLUME": "loud"}
    assert resume_environment(document, "run/processor.json", "toy",
                              {"S3SPLIT_TOY_VOLUME": "quiet"}) == {}
    again = make_job(tmp_path / "again", "id,name\n2,Bo\n")
    get_processor("toy", resumed)(again, Storage())
    assert Path(again.output_uri).read_text() == "2,BO\n"


@pytest.mark.parametrize(("document", "problem"), [
    ({"S3SPLIT_TOY_VOLUME": "shouty"}, "S3SPLIT_TOY_VOLUME: expected loud or quiet"),
    ({"S3SPLIT_TOY_VOLUME": 3}, "S3SPLIT_TOY_VOLUME: expected a non-empty string, got 3"),
    # a recorded value is the value, never a reference for the CLI to read (an SSM parameter)
    ({"S3SPLIT_TOY_VOLUME": "ssm:someone-elses"}, "expected the value itself"),
    ({"S3SPLIT_SCHEMA": {"columns": {"a": {}}}}, "'S3SPLIT_SCHEMA' is not a processor setting "
                                                 "a run of toy records; expected: "
                                                 "S3SPLIT_TOY_VOLUME"),
])
def test_a_new_processors_record_is_checked_as_the_built_ins_are(
        toy: str, document: dict[str, object], problem: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        resume_environment(document, "s3://shared/run/processor.json", "toy", {})
    assert str(caught.value).startswith("s3://shared/run/processor.json: ")
    assert problem in str(caught.value)


def test_a_built_in_is_not_imported_until_it_is_used() -> None:
    """A run of jsonl imports neither DuckDB's sql processor nor boto3's dynamodb one: the
    registry holds names, and Plan's check and record read only the run's processor's."""
    code = ("import sys\n"
            "from s3split.processors.check import check_processor\n"
            "from s3split.processors.recorded_settings import record\n"
            "from s3split.processors.idempotency import ChunkIdempotency\n"
            "import s3split.processors as p\n"
            "record(check_processor('jsonl', {'S3SPLIT_SCHEMA': '/nonexistent'}))\n"
            "p.get_processor('jsonl', {})\n"
            "print(*sorted(m for m in sys.modules if m.startswith('s3split.processors')))\n"
            "p.ValidateProcessor\n"
            "print('s3split.processors.validate' in sys.modules)\n")
    import subprocess

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    loaded, validate_after = done.stdout.splitlines()
    assert loaded.split() == sorted(
        f"s3split.processors{suffix}" for suffix in (
            "", ".base", ".check", ".idempotency", ".jsonl", ".reader", ".recorded_settings",
            ".registry", ".rejects", ".settings"))
    assert validate_after == "True"  # the package still gives its public names, when asked


def test_settings_are_read_only_for_the_processor_that_runs(toy: str) -> None:
    """Another processor's broken setting is none of this run's business (Plan refuses
    exactly what the worker cannot build: tests/unit/test_processor_check.py)."""
    broken = {"S3SPLIT_TOY_VOLUME": "shouty", "S3SPLIT_SCHEMA": "/nonexistent"}
    assert record(check_processor("jsonl", broken)) == {}
    assert toy not in sys.modules
    schema = {"columns": {"a": {}}}
    settings = processor_settings("validate", {"S3SPLIT_SCHEMA": json.dumps(schema),
                                               "S3SPLIT_TOY_VOLUME": "shouty"})
    assert record(settings) == {"S3SPLIT_SCHEMA": schema}


def test_a_setting_given_as_a_file_and_the_declarations_own_mistakes(tmp_path: Path) -> None:
    query = Setting("S3SPLIT_X", str, recorded_as=str, file_variable="S3SPLIT_X_FILE")
    (tmp_path / "x.txt").write_text("  from the file \n")
    assert query.read({"S3SPLIT_X_FILE": str(tmp_path / "x.txt")}) == "from the file"
    assert query.read({"S3SPLIT_X": " ", "S3SPLIT_X_FILE": " "}) is None
    with pytest.raises(InvalidOption, match=r"^S3SPLIT_X and S3SPLIT_X_FILE are both set"):
        query.read({"S3SPLIT_X": "a", "S3SPLIT_X_FILE": str(tmp_path / "x.txt")})
    with pytest.raises(InvalidOption, match=r"^S3SPLIT_X_FILE: cannot read /nonexistent/x"):
        query.read({"S3SPLIT_X_FILE": "/nonexistent/x"})
    (tmp_path / "bin").write_bytes(b"\xff\xfe")
    with pytest.raises(InvalidOption, match=r"^S3SPLIT_X_FILE: cannot read "):
        query.read({"S3SPLIT_X_FILE": str(tmp_path / "bin")})
    with pytest.raises(ValueError, match="S3SPLIT_TABLE: a destination is recorded"):
        Setting("S3SPLIT_TABLE", str, destination=True)
