"""Plan's check of a run's processor and its configuration (``check_processor``), and Plan
refusing a misconfigured run before it locks or writes anything."""

import importlib
import json
import sys
from pathlib import Path

import pytest

from s3split.errors import InvalidInput, InvalidOption
from s3split.processors.check import check_processor
from s3split.processors.dynamodb import DynamoDBProcessor
from s3split.processors.jsonl import JsonlProcessor, NoopProcessor
from s3split.processors.parquet import ParquetProcessor
from s3split.processors.recorded_settings import resume_environment
from s3split.processors.registry import BUILTINS, declared_settings, get_processor
from s3split.processors.sql import SqlProcessor
from s3split.processors.validate import SCHEMA as SCHEMA_SETTING
from s3split.processors.validate import ValidateProcessor
from tests.support.plans import plan_local_run

SCHEMA = {"columns": {"id": {"type": "int", "required": True}}}


@pytest.mark.parametrize(("name", "env"), [
    ("jsonl", {}),
    ("noop", {}),
    ("validate", {"S3SPLIT_SCHEMA": json.dumps(SCHEMA)}),
    ("dynamodb", {"S3SPLIT_DYNAMODB_TABLE": "orders"}),
    ("dynamodb", {"S3SPLIT_DYNAMODB_TABLE": "orders", "S3SPLIT_DYNAMODB_TYPES": '{"n": "N"}'}),
    # a processor reads its own settings only, as the worker does: another's is not checked
    ("jsonl", {"S3SPLIT_SCHEMA": "/nonexistent/schema.json", "S3SPLIT_SQL_FORMAT": "csv"}),
])
def test_a_processor_with_what_it_needs_passes(name: str, env: dict[str, str]) -> None:
    check_processor(name, env)


def test_a_schema_file_passes(tmp_path: Path) -> None:
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    check_processor("validate", {"S3SPLIT_SCHEMA": str(tmp_path / "schema.json")})


@pytest.mark.parametrize(("name", "env", "message"), [
    ("nosuch", {}, f"processor: unknown processor 'nosuch'; known: {', '.join(sorted(BUILTINS))}"),
    ("sql", {}, "processor: sql needs a query: set S3SPLIT_SQL"),
    ("sql", {"S3SPLIT_SQL": "DELETE FROM chunk"}, "expected a single SELECT"),
    ("validate", {}, "processor: validate needs a schema: set S3SPLIT_SCHEMA"),
    ("validate", {"S3SPLIT_SCHEMA": "/nonexistent/schema.json"},
     "S3SPLIT_SCHEMA: cannot read /nonexistent/schema.json: No such file or directory"),
    ("validate", {"S3SPLIT_SCHEMA": "{not json"}, "S3SPLIT_SCHEMA: not valid JSON"),
    ("validate", {"S3SPLIT_SCHEMA": '{"columns": 3}'}, "S3SPLIT_SCHEMA: schema: expected"),
    ("validate", {"S3SPLIT_SCHEMA": '{"columns": {"id": {"type": "money"}}}'},
     "S3SPLIT_SCHEMA: schema column 'id': unknown type 'money'"),
    ("dynamodb", {}, "processor: dynamodb needs a table: set S3SPLIT_DYNAMODB_TABLE"),
    ("dynamodb", {"S3SPLIT_DYNAMODB_TABLE": "t", "S3SPLIT_DYNAMODB_TYPES": '{"n": "X"}'},
     "S3SPLIT_DYNAMODB_TYPES"),
    # The registry's own setting is read whichever processor runs, as the worker reads it.
    ("jsonl", {"S3SPLIT_PROCESSORS": "broken"}, "S3SPLIT_PROCESSORS"),
    # an environment's invalid UTF-8 (lone surrogates to Python) and JSON no parser can nest
    ("sql", {"S3SPLIT_SQL": "SELECT '\udcff' FROM chunk"}, "S3SPLIT_SQL: not UTF-8 text"),
    ("validate", {"S3SPLIT_SCHEMA": '{"columns": {"\\ud800": {}}}'}, "a lone surrogate"),
    ("validate", {"S3SPLIT_SCHEMA": '{"columns": ' + "[" * 100_000 + "]" * 100_000 + "}"},
     "S3SPLIT_SCHEMA: not valid JSON: nested too deeply"),
    ("dynamodb", {"S3SPLIT_DYNAMODB_TABLE": "t",
                  "S3SPLIT_DYNAMODB_TYPES": "[" * 100_000 + "]" * 100_000},
     "S3SPLIT_DYNAMODB_TYPES: not valid JSON: nested too deeply"),
    ("validate", {"S3SPLIT_SCHEMA": '{"columns": {"id": {"type": {}}}}'}, "unknown type {}"),
])
def test_a_configuration_mistake_is_invalid_input_naming_it(
        name: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_processor(name, env)
    assert message in str(caught.value)


def test_a_custom_processor_is_known_by_name_and_not_imported(tmp_path: Path) -> None:
    """No user code runs in the splitter: a custom target is the worker's to load."""
    check_processor("mine", {"S3SPLIT_PROCESSORS": "mine=no_such_module_xyz:process"})
    assert "no_such_module_xyz" not in sys.modules
    with pytest.raises(InvalidInput, match=f"known: {', '.join(sorted([*BUILTINS, 'mine']))}$"):
        check_processor("other", {"S3SPLIT_PROCESSORS": "mine=no_such_module_xyz:process"})


def test_an_entry_point_processor_is_known(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    dist = tmp_path / "s3split_check_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: s3split-check-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[s3split.processors]\nplugged = nowhere_xyz:f\n")
    with pytest.raises(InvalidInput, match="unknown processor 'plugged'"):
        check_processor("plugged", {})
    monkeypatch.syspath_prepend(str(tmp_path))
    check_processor("plugged", {})


@pytest.mark.parametrize(("processor", "env"), [
    ("nosuch", {}),
    ("validate", {}),
    ("validate", {"S3SPLIT_SCHEMA": "/nonexistent/schema.json"}),
    ("dynamodb", {}),
])
def test_plan_refuses_a_misconfigured_run_before_touching_anything(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, processor: str,
        env: dict[str, str]) -> None:
    for variable in ("S3SPLIT_SCHEMA", "S3SPLIT_DYNAMODB_TABLE", "S3SPLIT_PROCESSORS"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    with pytest.raises(InvalidInput, match="processor"):
        plan_local_run(tmp_path, processor)
    assert not (tmp_path / "work").exists()  # no lock, no run.json, nothing cleared


# -- one table: what Plan accepts is what the worker builds ---------------------------------

BUILT = {"jsonl": JsonlProcessor, "validate": ValidateProcessor, "dynamodb": DynamoDBProcessor,
         "noop": NoopProcessor, "parquet": ParquetProcessor, "sql": SqlProcessor}


def test_every_registered_name_builds_its_own_processor_type() -> None:
    """A name added to the table must build a processor of its own (one once fell through to
    DynamoDB's): the class its line names, a class no other line names."""
    config = {"S3SPLIT_DYNAMODB_TABLE": "orders", "S3SPLIT_SCHEMA": json.dumps(SCHEMA),
              "S3SPLIT_SQL": "SELECT * FROM chunk"}
    assert len(set(BUILTINS.values())) == len(BUILTINS)
    for name, target in BUILTINS.items():
        try:
            built = type(get_processor(name, config))
        except InvalidOption as exc:  # one needing a setting this test does not give
            assert any(s.variable in str(exc) for s in declared_settings(name)), exc
            continue
        module, _, attribute = target.partition(":")
        assert built is getattr(importlib.import_module(module), attribute)
    assert {name: type(get_processor(name, config)) for name in BUILT} == BUILT
    with pytest.raises(InvalidOption, match=f"unknown processor 'avro'; known: "
                                            f"{', '.join(sorted(BUILTINS))}$"):
        get_processor("avro", config)
    with pytest.raises(InvalidInput, match="unknown processor 'avro'"):
        check_processor("avro", {"S3SPLIT_DYNAMODB_TABLE": "orders"})


@pytest.mark.parametrize("name", [*BUILTINS, "avro"])
@pytest.mark.parametrize("env", [{}, {"S3SPLIT_SCHEMA": json.dumps(SCHEMA)},
                                 {"S3SPLIT_DYNAMODB_TABLE": "orders"},
                                 {"S3SPLIT_SQL": "SELECT 1 FROM chunk"},
                                 {"S3SPLIT_SQL": "DROP TABLE chunk"},
                                 {"S3SPLIT_SCHEMA": "/nonexistent/schema.json"},
                                 {"S3SPLIT_PROCESSORS": "broken"}])
def test_plan_refuses_exactly_what_the_worker_cannot_build(name: str, env: dict[str, str]
                                                           ) -> None:
    try:
        get_processor(name, env)
        builds = True
    except InvalidOption:
        builds = False
    try:
        check_processor(name, env)
        passes = True
    except InvalidInput:
        passes = False
    assert passes == builds


# -- the settings a run records for its resume -----------------------------------------------

@pytest.mark.parametrize(("processor", "env", "recorded"), [
    ("validate", {"S3SPLIT_SCHEMA": "FILE", "S3SPLIT_DYNAMODB_TABLE": "orders"},
     {"S3SPLIT_SCHEMA": SCHEMA}),
    ("dynamodb", {"S3SPLIT_DYNAMODB_TABLE": "orders", "S3SPLIT_DYNAMODB_TYPES": '{"n": "N"}',
                  "S3SPLIT_SCHEMA": "FILE"},
     {"S3SPLIT_DYNAMODB_TABLE": "orders", "S3SPLIT_DYNAMODB_TYPES": {"n": "N"}}),
    ("dynamodb", {"S3SPLIT_DYNAMODB_TABLE": "orders"}, {"S3SPLIT_DYNAMODB_TABLE": "orders"}),
    ("jsonl", {"S3SPLIT_SCHEMA": "FILE"}, {}),
])
def test_plan_records_the_settings_its_processor_reads_as_checked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, processor: str, env: dict[str, str],
        recorded: dict[str, object]) -> None:
    """A schema given as a file is recorded as its document: the resume needs neither the
    variable nor the file."""
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    for variable in ("S3SPLIT_SCHEMA", "S3SPLIT_DYNAMODB_TABLE", "S3SPLIT_DYNAMODB_TYPES",
                     "S3SPLIT_PROCESSORS"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in env.items():
        monkeypatch.setenv(variable, str(tmp_path / "schema.json") if value == "FILE" else value)
    location = plan_local_run(tmp_path, processor)
    assert json.loads((location / "processor.json").read_text()) == recorded


def test_a_resume_takes_the_recorded_settings_the_environment_does_not_set_again() -> None:
    document = {"S3SPLIT_SCHEMA": SCHEMA}
    resumed = resume_environment(document, "run/processor.json", "validate",
                                 {"S3SPLIT_SCHEMA": " ", "S3SPLIT_DYNAMODB_TABLE": "orders"})
    assert resumed == {"S3SPLIT_SCHEMA": json.dumps(SCHEMA)}
    assert check_processor("validate", resumed).get(SCHEMA_SETTING) == SCHEMA
    fixed = {"S3SPLIT_SCHEMA": "/fixed/schema.json"}
    assert resume_environment(document, "run/processor.json", "validate", fixed) == {}
    document = {"S3SPLIT_DYNAMODB_TABLE": "orders", "S3SPLIT_DYNAMODB_TYPES": {"n": "N"}}
    assert resume_environment(document, "run/processor.json", "dynamodb",
                              {"S3SPLIT_DYNAMODB_TABLE": "orders"}) == {
        "S3SPLIT_DYNAMODB_TYPES": '{"n": "N"}'}
    assert resume_environment({}, "run/processor.json", "jsonl", {}) == {}


def test_a_resume_never_takes_the_table_it_writes_to_from_the_record() -> None:
    """Whoever can write a shared run location could name another table in processor.json:
    the owner's next resume would fill it with the owner's credentials."""
    document = {"S3SPLIT_DYNAMODB_TABLE": "attackers-table"}
    with pytest.raises(InvalidInput) as caught:
        resume_environment(document, "s3://shared/run/processor.json", "dynamodb", {})
    message = str(caught.value)
    assert message.startswith("s3://shared/run/processor.json says the run wrote with "
                              "S3SPLIT_DYNAMODB_TABLE='attackers-table'")
    assert "set S3SPLIT_DYNAMODB_TABLE" in message
    assert resume_environment(document, "p.json", "dynamodb",
                              {"S3SPLIT_DYNAMODB_TABLE": "mine"}) == {}


@pytest.mark.parametrize(("processor", "document", "problem"), [
    ("validate", [], "expected a JSON object of processor settings"),
    # code is never taken from a record: a custom processor's target, nor a module to import
    ("validate", {"S3SPLIT_PROCESSORS": "x=os:system"},
     "'S3SPLIT_PROCESSORS' is not a processor setting a run of validate records; expected: "
     "S3SPLIT_SCHEMA"),
    ("mine", {"S3SPLIT_PROCESSORS": "x=os:system"}, "a run of mine records; expected: none"),
    ("jsonl", {"S3SPLIT_IDEMPOTENCY_TABLE": "t"}, "'S3SPLIT_IDEMPOTENCY_TABLE' is not a "),
    # only what the run's processor reads: a query recorded for validate is someone's edit
    ("validate", {"S3SPLIT_SQL": "SELECT 1 FROM chunk"}, "'S3SPLIT_SQL' is not a processor"),
    # a recorded schema is a document, never a path the CLI would read
    ("validate", {"S3SPLIT_SCHEMA": "/etc/passwd"},
     "S3SPLIT_SCHEMA: expected a JSON object, got '/etc/"),
    ("parquet", {"S3SPLIT_SCHEMA": {"columns": 3}}, "S3SPLIT_SCHEMA: schema: expected"),
    ("validate", {"S3SPLIT_SCHEMA": {}}, "S3SPLIT_SCHEMA: expected a JSON object"),
    ("dynamodb", {"S3SPLIT_DYNAMODB_TABLE": ""},
     "S3SPLIT_DYNAMODB_TABLE: expected a non-empty string"),
    ("dynamodb", {"S3SPLIT_DYNAMODB_TABLE": ["t"]},
     "S3SPLIT_DYNAMODB_TABLE: expected a non-empty string"),
    ("dynamodb", {"S3SPLIT_DYNAMODB_TYPES": {"n": "NUMBER"}}, "S3SPLIT_DYNAMODB_TYPES: expected"),
    ("sql", {"S3SPLIT_SQL_FORMAT": "csv"}, "S3SPLIT_SQL_FORMAT: expected jsonl or parquet"),
    # what no environment variable holds: the resume's workers could not be started with it
    ("sql", {"S3SPLIT_SQL": "SELECT 1 FROM chunk\x00"}, "S3SPLIT_SQL: a NUL byte at character 19"),
    ("sql", {"S3SPLIT_SQL": "SELECT '\ud800' FROM chunk"}, "S3SPLIT_SQL: not UTF-8 text"),
    ("validate", {"S3SPLIT_SCHEMA": {"columns": {"\udcff": {}}}}, "a lone surrogate"),
    # a type that is not a name (unhashable: a TypeError before)
    ("validate", {"S3SPLIT_SCHEMA": {"columns": {"a": {"type": ["int"]}}}}, "unknown type"),
    ("dynamodb", {"S3SPLIT_DYNAMODB_TYPES": {"n": ["N"]}}, "S3SPLIT_DYNAMODB_TYPES: expected"),
    ("dynamodb", {"S3SPLIT_DYNAMODB_TYPES": {"n": {"N": 1}}}, "S3SPLIT_DYNAMODB_TYPES: expected"),
])
def test_a_record_that_is_not_one_is_refused_naming_the_file(processor: str, document: object,
                                                             problem: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        resume_environment(document, "/runs/x/processor.json", processor, {})
    assert str(caught.value).startswith("/runs/x/processor.json: ")
    assert problem in str(caught.value)


def test_settings_kept_in_ssm_are_read_from_there_and_a_missing_one_is_named(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The template keeps the schema and column types in SSM parameters (a Lambda
    environment holds 4 KB in all): ``ssm:NAME`` reads parameter NAME."""
    import boto3
    from moto import mock_aws

    from tests.support.aws import fake_aws_env

    fake_aws_env(monkeypatch)
    with mock_aws():
        boto3.client("ssm").put_parameter(Name="schema-7", Type="String",
                                          Value=json.dumps(SCHEMA))
        config = check_processor("validate", {"S3SPLIT_SCHEMA": "ssm:schema-7"})
        assert config.get(SCHEMA_SETTING) == SCHEMA
        with pytest.raises(InvalidInput) as refused:
            check_processor("dynamodb", {"S3SPLIT_DYNAMODB_TABLE": "orders",
                                         "S3SPLIT_DYNAMODB_TYPES": "ssm:types-missing"})
    message = str(refused.value)
    assert "\n" not in message and "S3SPLIT_DYNAMODB_TYPES" in message
    assert "types-missing" in message
