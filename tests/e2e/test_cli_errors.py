"""Every failure of the CLI is one ``s3split: error: ...`` line naming the file (and, where
known, the offset), with no traceback and no manifest left: the real CLI in a subprocess."""

import gzip
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import pytest
from backports import zstd

from s3split.cli import signals
from s3split.processors.registry import BUILTINS
from tests.support.pipeline import BUCKET, CREDENTIALS, moto_s3_server, s3_client
from tests.support.processes import AS_A_TERMINAL_STARTS_IT, signal_when

S3SPLIT = str(Path(sys.executable).parent / "s3split")
DATA = b"id,note\n" + b"".join(b'%d,"row %d, with a comma"\n' % (i, i) for i in range(20_000))


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None,
        preexec_fn: Callable[[], None] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([S3SPLIT, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env, preexec_fn=preexec_fn)


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines()
             if not line.startswith("s3split: resuming the run of ")]  # (what it continues)
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("s3split: error: ")
    return lines[0]


def _truncated(packed: bytes) -> bytes:
    return packed[: len(packed) // 2]


def _corrupt(packed: bytes) -> bytes:
    middle = len(packed) // 2
    return packed[:middle] + bytes(64) + packed[middle + 64:]


BAD_SOURCES = {
    "truncated.csv.gz": (_truncated(gzip.compress(DATA)), "truncated gzip data"),
    "corrupt.csv.gz": (_corrupt(gzip.compress(DATA, compresslevel=1)), "corrupt gzip data"),
    "plain.csv.gz": (DATA, "not gzip data"),
    "truncated.csv.zst": (_truncated(zstd.compress(DATA)), "truncated zstd data"),
}


@pytest.mark.parametrize("name", sorted(BAD_SOURCES))
def test_split_of_a_bad_compressed_source_is_one_line(tmp_path: Path, name: str) -> None:
    data, what = BAD_SOURCES[name]
    (tmp_path / name).write_bytes(data)
    line = one_error_line(cli("split", name, "out", "--chunk-size", "64KiB", cwd=tmp_path))
    assert line.startswith(f"s3split: error: {name}: {what}")
    assert "good decompressed bytes" in line
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_split_into_a_dangling_symlink_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_bytes(DATA)
    (tmp_path / "dest").symlink_to(tmp_path / "gone")
    line = one_error_line(cli("split", "in.csv", "dest", cwd=tmp_path))
    assert f"{tmp_path / 'dest'} is a dangling symbolic link (to {tmp_path / 'gone'})" in line
    assert not (tmp_path / "gone").exists()


def _file_size_limit() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))


def test_split_past_the_file_size_limit_is_one_line(tmp_path: Path) -> None:
    """A real write failure: RLIMIT_FSIZE makes the chunk write fail with EFBIG."""
    (tmp_path / "in.csv").write_bytes(DATA)
    line = one_error_line(cli("split", "in.csv", "out", "--chunk-size", "200KB", cwd=tmp_path,
                              preexec_fn=_file_size_limit))
    assert line.startswith(f"s3split: error: cannot write out{os.sep}part-00000.csv: "
                           "File too large (EFBIG) after 100,000 bytes")
    assert not (tmp_path / "out" / "manifest.json").exists()
    assert not [name for name in os.listdir(tmp_path / "out") if name.endswith(".tmp")]


def test_missing_buckets_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_bytes(DATA)
    with moto_s3_server() as endpoint:
        s3_client(endpoint).create_bucket(Bucket=BUCKET)
        env = dict(os.environ) | CREDENTIALS | {"AWS_ENDPOINT_URL": endpoint}
        split_line = one_error_line(cli("split", "in.csv", "s3://no-such-bucket/parts/",
                                        cwd=tmp_path, env=env))
        run_line = one_error_line(cli("run", "in.csv", "--out", "s3://no-such-bucket/runs/in",
                                      cwd=tmp_path, env=env))
        source_line = one_error_line(cli("run", "s3://no-such-bucket/in.csv", "--out",
                                         f"s3://{BUCKET}/runs/in", cwd=tmp_path, env=env))
    assert "bucket no-such-bucket does not exist" in split_line
    assert run_line == ("s3split: error: bucket no-such-bucket does not exist (listing "
                        "s3://no-such-bucket/runs/in)")
    assert source_line == ("s3split: error: SourceNotFound: source not found: "
                           "s3://no-such-bucket/in.csv")


def test_run_of_a_truncated_gzip_is_one_line_naming_the_file(tmp_path: Path) -> None:
    data, _ = BAD_SOURCES["truncated.csv.gz"]
    (tmp_path / "in.csv.gz").write_bytes(data)
    line = one_error_line(cli("run", "in.csv.gz", "--out", "out", cwd=tmp_path))
    assert line.startswith(f"s3split: error: CorruptSource: {tmp_path / 'in.csv.gz'}: "
                           "truncated gzip data")
    assert not (tmp_path / "out" / "chunks" / "manifest.json").exists()
    assert not (tmp_path / "out" / "report.json").exists()
    assert not (tmp_path / "out" / "lock.json").exists()


def test_run_with_out_naming_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_bytes(DATA)
    (tmp_path / "taken").write_text("not a directory")
    line = one_error_line(cli("run", "in.csv", "--out", "taken", cwd=tmp_path))
    assert line == f"s3split: error: destination {tmp_path / 'taken'} is not a directory"
    assert (tmp_path / "taken").read_text() == "not a directory"


def test_a_resume_over_a_corrupt_status_record_is_one_line_at_once(tmp_path: Path) -> None:
    """Not a JSONDecodeError after 68 s of RecordFailure retries: the file, what is wrong
    and what to do, once (that no task retries it: tests/unit/test_asl.py)."""
    (tmp_path / "in.csv").write_bytes(DATA[:DATA.index(b"\n100,") + 1])
    first = cli("run", "in.csv", "--out", "out", "--chunk-size", "1KiB", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    status = tmp_path / "out" / "status" / "part-00001.json"
    status.write_text("")
    line = one_error_line(cli("run", "--resume", "out", cwd=tmp_path))
    assert line.startswith(f"s3split: error: RunFileCorrupt: {status}: not a JSON document")
    assert line.endswith("delete it to process chunk 1 again, then resume the run "
                         f"(s3split run --resume {tmp_path / 'out'})")
    assert not (tmp_path / "out" / "lock.json").exists()
    status.unlink()
    again = cli("run", "--resume", "out", cwd=tmp_path)
    assert again.returncode == 0, again.stderr


def _no_file(kind: str) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        if path.exists():
            path.unlink()
        path.mkdir() if kind == "directory" else os.mkfifo(path)
    return make


@pytest.mark.parametrize(("name", "kind", "error", "remedy"), [
    ("status/part-00001.json", "FIFO", "RunFileCorrupt", "delete it to process chunk 1 again"),
    ("status/part-00001.json", "directory", "RunFileCorrupt", "delete it to process chunk 1"),
    ("chunks/manifest.json", "FIFO", "RunFileCorrupt", "delete it to split the source again"),
    ("chunks/manifest.json", "directory", "RunFileCorrupt", "delete it to split the source"),
    ("lock.json", "FIFO", "RunFileCorrupt", "if no run is using"),
    ("lock.json", "directory", "RunFileCorrupt", "if no run is using"),
    ("report.json", "directory", "DestinationUnwritable", "move it away"),
    ("results.jsonl", "directory", "DestinationUnwritable", "move it away"),
])
def test_a_run_file_that_is_no_file_fails_one_line_naming_it_at_once(
        tmp_path: Path, name: str, kind: str, error: str, remedy: str) -> None:
    """A FIFO in a run file's place hung the resume for ever (its open waits for a writer);
    a directory was an IsADirectoryError naming no remedy."""
    (tmp_path / "in.csv").write_bytes(DATA[:DATA.index(b"\n100,") + 1])
    first = cli("run", "in.csv", "--out", "out", "--chunk-size", "1KiB", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    path = tmp_path / "out" / name
    _no_file(kind)(path)
    resume = subprocess.Popen([S3SPLIT, "run", "--resume", "out", "--merge"], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        stdout, stderr = resume.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(resume.pid, signal.SIGKILL)  # (its engine's workers too)
        resume.communicate()
        pytest.fail(f"s3split run --resume over {kind} {name} still runs after 60 s")
    line = one_error_line(subprocess.CompletedProcess(resume.args, resume.returncode, stdout,
                                                      stderr))
    assert line.startswith(f"s3split: error: {error}: {path}"), line
    assert remedy in line, line
    assert path.is_dir() if kind == "directory" else path.is_fifo()


def test_a_merge_stopped_by_sigterm_says_so_and_how_to_write_it(tmp_path: Path) -> None:
    """SIGTERM while ``--merge`` wrote its file said "stopped before the run started;
    nothing to resume" of a run that had succeeded, and left no way to the merged file."""
    rows = b"".join(b"%d,n%d,%s\n" % (i, i, b"x" * 60) for i in range(400_000))
    (tmp_path / "in.csv").write_bytes(b"id,name,pad\n" + rows)
    first = cli("run", "in.csv", "--out", "out", "--chunk-size", "4MiB", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    out = tmp_path / "out"
    for _ in range(5):  # (on a loaded machine the merge may end before the signal lands)
        merging = subprocess.Popen([S3SPLIT, "run", "--resume", "out", "--merge"],
                                   cwd=tmp_path, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, start_new_session=True)
        _, stderr = signal_when(merging, lambda: any(out.glob(".results.jsonl.*.tmp")),
                                signal.SIGTERM, group=False, every=0.001)
        if merging.returncode != 0:
            break
        (out / "results.jsonl").unlink()
    assert merging.returncode == 143, stderr
    line = stderr.strip().splitlines()[-1]
    assert line == (f"s3split: stopped by SIGTERM while merging the results of the run at {out}, "
                    f"which succeeded (see {out / 'report.json'}); no merged file is written: "
                    f"write it with: s3split run --resume {out} --merge"), stderr
    assert "Traceback" not in stderr
    assert not list(out.glob("*results.jsonl*")), "a merged file (or its part) was left"
    again = cli("run", "--resume", "out", "--merge", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert (out / "results.jsonl").read_bytes().count(b"\n") == 400_000


def test_a_file_where_the_run_keeps_a_folder_is_one_line_at_once(tmp_path: Path) -> None:
    """A user's ``out/results``: the run is refused before anything is split or written,
    not failed chunk by chunk with FileExistsError."""
    (tmp_path / "in.csv").write_bytes(DATA[:DATA.index(b"\n100,") + 1])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results").write_text("mine")
    line = one_error_line(cli("run", "in.csv", "--out", "out", cwd=tmp_path))
    assert line == (f"s3split: error: run location {tmp_path / 'out'} is not empty and holds "
                    "no run (results): a run writes and deletes files there; choose a new or "
                    "empty directory (--out)")
    assert sorted(os.listdir(tmp_path / "out")) == ["results"]


def _read_only(path: Path) -> list[str]:
    """A command prefix that runs the rest with ``path`` mounted read-only (as root can't be
    refused by permissions): a user and mount namespace of its own."""
    prefix = ["unshare", "-rm", "sh", "-c",
              'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && shift && exec "$@"',
              str(path), "--"]
    probe = subprocess.run([*prefix, "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"no read-only mount here: {probe.stderr.decode().strip()}")
    return prefix


def test_a_read_only_out_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_bytes(DATA[:200])
    (tmp_path / "ro").mkdir()
    done = subprocess.run([*_read_only(tmp_path / "ro"), S3SPLIT, "run", "in.csv", "--out",
                           "ro/out"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    line = one_error_line(done)
    assert line == (f"s3split: error: DestinationUnwritable: cannot write "
                    f"{tmp_path / 'ro' / 'out' / 'lock.json'}: Read-only file system (EROFS)")


def test_a_refused_or_failed_command_prints_only_what_it_did(tmp_path: Path) -> None:
    """The earlier run's report stays in the location, but its table is not this command's:
    a start refused because the location is in use, and a resume of a changed source, print
    their one error line and nothing else."""
    source = tmp_path / "in.csv"
    source.write_bytes(DATA[:DATA.index(b"\n100,") + 1])
    first = cli("run", "in.csv", "--out", "out", cwd=tmp_path)
    assert first.returncode == 0 and "succeeded" in first.stdout, first.stderr
    lock = tmp_path / "out" / "lock.json"
    lock.write_text(json.dumps({"lease": "other", "execution": "other", "since": "now",
                                "pid": os.getpid(), "host": socket.gethostname()}))
    refused = cli("run", "in.csv", "--out", "out", cwd=tmp_path)
    assert "RunInProgress" in one_error_line(refused) and refused.stdout == ""
    lock.unlink()
    source.write_bytes(source.read_bytes() + b"100,new\n")
    resumed = cli("run", "--resume", "out", cwd=tmp_path)
    assert "SourceChanged" in one_error_line(resumed) and resumed.stdout == ""
    assert (tmp_path / "out" / "report.json").exists()



def _start_on_a_terminal(tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*AS_A_TERMINAL_STARTS_IT, S3SPLIT, "run", "in.csv", "--out", "out", "--chunk-size",
         "16KiB", "--lanes", "1", "--pause", "1"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)  # its own process group, as a terminal's foreground job


@pytest.mark.parametrize(("signum", "status", "said"), [
    (signal.SIGINT, 130, "interrupted"),
    (signal.SIGTERM, 143, "stopped by SIGTERM"),
])
def test_a_stopped_run_says_how_to_resume_and_releases_the_lock(
        tmp_path: Path, signum: int, status: int, said: str) -> None:
    """Ctrl-C reaches the whole process group; ``kill`` sends SIGTERM to the process alone.
    Either way: the lock released, one line, exit 128 + N."""
    (tmp_path / "in.csv").write_bytes(DATA)
    out = tmp_path / "out"
    process = _start_on_a_terminal(tmp_path)

    def running() -> bool:
        if not (out / "status").is_dir():
            return False
        assert (out / "lock.json").exists()
        return True

    # (Ctrl-C is sent to the whole group; kill's SIGTERM to the process alone)
    stdout, stderr = signal_when(process, running, signum, group=signum == signal.SIGINT)
    assert process.returncode == status, stderr
    assert "Traceback" not in stderr and stdout == ""
    assert stderr.splitlines() == [
        f"s3split: {said}; the run at {out} stopped part-way: continue it with: "
        f"s3split run --resume {out}"]
    assert not (out / "lock.json").exists()
    assert not (out / "report.json").exists()


@pytest.mark.parametrize(("signum", "status", "said"), [
    (signal.SIGHUP, 129, "stopped by SIGHUP"), (signal.SIGTERM, 143, "stopped by SIGTERM")])
def test_sighup_and_sigterm_stop_the_command_as_ctrl_c_does(
        signum: int, status: int, said: str) -> None:
    """In the command's process they are KeyboardInterrupts, so every clean-up after Ctrl-C
    (the engine's workers killed, the lock released) runs for them too; exit 128 + N."""
    previous = {s: signal.getsignal(s) for s in signals.STOPPING}
    signals.install()
    try:
        with pytest.raises(KeyboardInterrupt) as raised:
            os.kill(os.getpid(), signum)
            time.sleep(5)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    assert (signals.exit_status(raised.value), signals.stopped_by(raised.value)) == (status, said)



def test_ctrl_c_while_following_a_run_on_aws_stops_following_and_says_the_run_goes_on(
        tmp_path: Path) -> None:
    """`start --follow` against a moto server (whose execution stays RUNNING: moto runs no
    state machine unless asked): Ctrl-C stops the following, not the run, which the message
    says, with how to follow it again; exit 130, one line, no click "Aborted!"."""
    import boto3

    with moto_s3_server() as endpoint:
        s3_client(endpoint).create_bucket(Bucket=BUCKET)
        sfn = boto3.client("stepfunctions", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        machine = sfn.create_state_machine(
            name="pipeline", roleArn="arn:aws:iam::123456789012:role/sfn",
            definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        )["stateMachineArn"]
        env = os.environ | CREDENTIALS | {"AWS_ENDPOINT_URL": endpoint}
        process = subprocess.Popen(
            [*AS_A_TERMINAL_STARTS_IT, S3SPLIT, "start", f"s3://{BUCKET}/in.csv",
             "--state-machine", machine, "--follow", "--poll-interval", "0.2"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True)

        def following() -> bool:
            if not sfn.list_executions(stateMachineArn=machine)["executions"]:
                return False
            time.sleep(1)  # (started: polls under way)
            return True

        stdout, stderr = signal_when(process, following, signal.SIGINT, within=60)
        execution = sfn.list_executions(stateMachineArn=machine)["executions"][0]
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "Aborted" not in stderr and stdout == ""
    assert stderr.splitlines()[-1] == (
        "s3split: interrupted; the run goes on: follow it with: "
        f"s3split status {execution['executionArn']}")

def _fork_server_importing(pid: int) -> bool:
    """Whether process ``pid``'s fork server (a child running multiprocessing.forkserver's
    main) is importing the modules it preloads: numpy's is one, several seconds' worth of
    imports before the last."""
    for child in Path("/proc").glob("[0-9]*"):
        with suppress(OSError, ValueError, IndexError):
            stat = (child / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid and \
                    b"forkserver" in (child / "cmdline").read_bytes():
                return "numpy" in (child / "maps").read_text()
    return False


def test_ctrl_c_before_the_run_is_planned_gives_no_advice_and_no_traceback(
        tmp_path: Path) -> None:
    """While the fork server imports the handlers' modules (seconds): a Ctrl-C reaches it too,
    and it printed a KeyboardInterrupt traceback; the command said to resume a run that had
    no run.json yet. Exit 130, one line, no advice."""
    (tmp_path / "in.csv").write_bytes(DATA)
    process = _start_on_a_terminal(tmp_path)
    stdout, stderr = signal_when(process, lambda: _fork_server_importing(process.pid),
                                 signal.SIGINT, every=0.005)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and stdout == ""
    assert stderr.splitlines() == [
        f"s3split: interrupted before the run started; nothing to resume at {tmp_path / 'out'}"]
    assert not (tmp_path / "out").exists()  # nothing written, not even the lock


def test_many_chunks_print_only_the_summary(tmp_path: Path) -> None:
    """120 chunks through one worker process: no Powertools metrics JSON on stdout or
    stderr (it used to print once a metric had 100 values); 110 failures beyond the
    listed ten are counted."""
    records = b"".join(b'%d,"bad \x00 byte %s"\n' % (i, b"x" * 80) for i in range(120))
    (tmp_path / "in.csv").write_bytes(b"id,note\n" + records)
    done = cli("run", "in.csv", "--out", "out", "--chunk-size", "90", "--lanes", "1",
               "--processor", "noop", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "_aws" not in done.stdout and "_aws" not in done.stderr
    assert "120 failed of 120" in done.stdout
    assert f"... and 110 more (all failures: {tmp_path / 'out' / 'status'})" in done.stdout
    assert done.stdout.count("ChunkInvalid") == 10


def test_run_and_start_share_option_names(tmp_path: Path) -> None:
    for command in ("run", "start"):
        help_text = cli(command, "--help", cwd=tmp_path).stdout
        for option in ("--chunk-size", "--lanes", "--pause SECONDS", "--processor",
                       "--tolerate", "--chunk-rows", "--no-header", "--delimiter",
                       "--quotechar", "--strict", "--encoding", "--skip-lines"):
            assert option in help_text, (command, option)
        assert "--wait" not in help_text
    assert "--follow" in cli("start", "--help", cwd=tmp_path).stdout


def test_old_wait_spelling_still_works_with_a_note(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_bytes(DATA[:5000])
    done = cli("run", "in.csv", "--out", "out", "--wait", "0", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ("s3split: warning: --wait SECONDS in run is deprecated; "
                           "use --pause SECONDS\n")


@pytest.mark.parametrize(("processor", "env", "message"), [
    ("nosuch", {}, "invalid execution input: processor: unknown processor 'nosuch'; known: "
                   f"{', '.join(sorted(BUILTINS))}"),
    ("sql", {"S3SPLIT_SQL": "DROP TABLE chunk"}, "invalid execution input: processor: "
                                                "S3SPLIT_SQL: expected a single SELECT"),
    ("validate", {}, "invalid execution input: processor: validate needs a schema: set "
                     "S3SPLIT_SCHEMA"),
    ("validate", {"S3SPLIT_SCHEMA": "missing.json"},
     "invalid processor configuration: S3SPLIT_SCHEMA: cannot read missing.json: No such file"),
    ("validate", {"S3SPLIT_SCHEMA": '{"columns": {"id": {"type": "money"}}}'},
     "invalid processor configuration: S3SPLIT_SCHEMA: schema column 'id': unknown type"),
    ("dynamodb", {}, "invalid execution input: processor: dynamodb needs a table: set "
                     "S3SPLIT_DYNAMODB_TABLE"),
])
def test_a_configuration_mistake_fails_before_any_splitting(
        tmp_path: Path, processor: str, env: dict[str, str], message: str) -> None:
    """Today the whole file was split and every chunk failed (or the run waited 65 s for a
    worker that could not start)."""
    (tmp_path / "in.csv").write_bytes(DATA)
    clean = {k: v for k, v in os.environ.items()
             if k not in ("S3SPLIT_SCHEMA", "S3SPLIT_DYNAMODB_TABLE", "S3SPLIT_PROCESSORS")}
    started = time.monotonic()
    line = one_error_line(cli("run", "in.csv", "--processor", processor, "--chunk-size",
                              "16KiB", cwd=tmp_path, env=clean | env))
    assert line.startswith(f"s3split: error: {message}")
    assert not (tmp_path / "s3split-out").exists()  # nothing split, locked or written
    assert time.monotonic() - started < 60


def test_a_run_of_150_chunks_prints_the_summary_and_nothing_else(tmp_path: Path) -> None:
    """150 chunks through one worker process, all succeeding: Powertools prints a metric's
    values once it holds 100 of them, even with metrics disabled."""
    (tmp_path / "in.csv").write_text("id,name\n" + "".join(f"{i},n{i}\n" for i in range(150)))
    done = cli("run", "in.csv", "--chunk-rows", "1", "--lanes", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "_aws" not in done.stdout
    title, *lines = done.stdout.splitlines()  # piped: whole lines, no table
    assert title == f"s3split run: {tmp_path / 'in.csv'}"
    assert "chunks  150 ok, 0 failed of 150" in lines
    assert [line.split()[0] for line in lines] == ["result", "chunks", "rows", "bytes", "read",
                                                   "time", "results", "report"], lines


class _Unanswering:
    """An endpoint that takes connections and never answers: a command's AWS call waits."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.held: list[socket.socket] = []
        self.server.settimeout(0.05)

    def called(self) -> bool:
        with suppress(TimeoutError):
            self.held.append(self.server.accept()[0])
        return bool(self.held)

    def close(self) -> None:
        for conn in self.held:
            conn.close()
        self.server.close()


MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:pipeline"


@pytest.mark.parametrize(("command", "said"), [
    (["status", "arn:aws:states:us-east-1:123456789012:execution:pipeline:run-1"],
     "s3split: interrupted"),
    (["start", f"s3://{BUCKET}/in.csv", "--state-machine", MACHINE],
     "s3split: interrupted before AWS answered: the run may have started; look for it with: "
     f"aws stepfunctions list-executions --state-machine-arn {MACHINE}"),
])
def test_ctrl_c_during_an_aws_call_says_what_it_stopped_in_one_line(
        command: list[str], said: str, tmp_path: Path) -> None:
    """`status` and `start` (without --follow) waiting on AWS: Ctrl-C ends them with one line
    (for a start: that it may have started, and where to look), exit 130, no "Aborted!"."""
    endpoint = _Unanswering()
    try:
        process = subprocess.Popen(
            [*AS_A_TERMINAL_STARTS_IT, S3SPLIT, *command], cwd=tmp_path,
            env=os.environ | CREDENTIALS | {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{endpoint.port}"},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        stdout, stderr = signal_when(process, endpoint.called, signal.SIGINT, within=60)
    finally:
        endpoint.close()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "Aborted" not in stderr and stdout == ""
    assert stderr.strip().splitlines() == [said]



@pytest.mark.parametrize("unwritable", ["a pipe its reader closed", "/dev/full"])
def test_ctrl_c_with_stderr_unwritable_still_exits_130(unwritable: str, tmp_path: Path) -> None:
    """The one line cannot be written (the pipe's reader is gone, as Ctrl-C ends every
    command of a pipeline; a full disk): the exit status still says what stopped it."""
    endpoint = _Unanswering()
    read_end, write_end = os.pipe()
    with open("/dev/full", "w") as full:
        try:
            process = subprocess.Popen(
                [*AS_A_TERMINAL_STARTS_IT, S3SPLIT, "status",
                 "arn:aws:states:us-east-1:123456789012:execution:pipeline:run-1"],
                cwd=tmp_path, env=os.environ | CREDENTIALS | {
                    "AWS_ENDPOINT_URL": f"http://127.0.0.1:{endpoint.port}"},
                stdout=subprocess.PIPE, stderr=full if unwritable == "/dev/full" else write_end,
                text=True, start_new_session=True)
            os.close(read_end)
            os.close(write_end)
            stdout, _ = signal_when(process, endpoint.called, signal.SIGINT, within=60)
        finally:
            endpoint.close()
    assert (process.returncode, stdout) == (130, "")


def test_control_characters_from_the_input_never_reach_the_output_raw(tmp_path: Path) -> None:
    """A header name or a file name is the input's: printed raw, an escape sequence in it
    could recolour, move the cursor and overwrite what the command says (a failed run shown
    as succeeded), and a newline in a path would break the summary's label-value lines.
    They are shown escaped: every line of stdout is one label and its value."""
    hostile = "\x1b[2K\x1b[1G\x1b[1Aresult  succeeded\x07"
    name = "in\nname\x1b[31m.csv"
    (tmp_path / name).write_text(f"id,{hostile}\n1,2\n")
    env = dict(os.environ) | {"S3SPLIT_SCHEMA": '{"columns": {"id": {"type": "int"}}, '
                                                '"extra_columns": false}'}
    done = cli("run", name, "--out", "out", "--processor", "validate", cwd=tmp_path, env=env)
    assert done.returncode == 1, done.stderr
    for text in (done.stdout, done.stderr):
        assert not any((ord(c) < 32 and c != "\n") or 0x7f <= ord(c) < 0xa0 for c in text), text
    lines = done.stdout.splitlines()
    assert lines[0] == f"s3split run: {tmp_path}/in\\nname\\x1b[31m.csv"
    assert [line.split()[0] for line in lines[1:9]] == [
        "result", "chunks", "rows", "bytes", "read", "time", "results", "report"]
    assert lines[1] == "result  FAILED (ToleratedFailuresExceeded)"
    shown = "\\x1b[2K\\x1b[1G\\x1b[1Aresult succeeded\\x07"
    assert f"header has column(s) not in the schema: {shown} " in lines[9], lines[9]
