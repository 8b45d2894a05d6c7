"""Named errors. Each says what was wrong and where; the class name is what a
Step Functions Retry/Catch matches, so names are part of the interface."""


class S3SplitError(Exception):
    """Bad input or configuration; never retried."""


class InvalidOption(S3SplitError):
    """An option or input field has a value we cannot use."""


class SourceNotFound(S3SplitError):
    """The source file or object does not exist."""


class SourceUnreadable(S3SplitError):
    """The source exists but cannot be read as a file (a directory, no permission, ...)."""


class CorruptSource(SourceUnreadable):
    """A compressed source that does not decompress: truncated, corrupt, or not compressed."""


class DestinationUnwritable(S3SplitError):
    """A chunk, result or record cannot be written (disk full, file too large, no bucket)."""


class BucketNotFound(S3SplitError):
    """An S3 destination or run location in a bucket that does not exist."""


class SourceChanged(S3SplitError):
    """The source changed between two invocations of one split."""


class UnterminatedQuote(S3SplitError):
    """A quoted field is opened and never closed before the end of the source."""


class MalformedCsv(S3SplitError):
    """With ``--strict``: a quote in an unquoted field, or text after a closing quote."""


class HeaderTooLong(S3SplitError):
    """The header record is longer than we are willing to buffer."""


class ChunkInvalid(S3SplitError):
    """A chunk cannot be processed as it is (bad encoding, unparseable); retrying won't help."""


class ChunkMisaligned(S3SplitError):
    """A chunk holds a different number of records than the manifest says: the split and the
    parser disagree, so its output would be wrong; nothing is written for it."""


class ProcessorResultInvalid(S3SplitError):
    """A processor's result does not account for its chunk: counts that are not non-negative
    integers or do not add up (``rows_in == rows_out + rows_rejected``), or rejects that are
    not a list of objects. The chunk fails; retrying the same processor won't help."""


class RunFileCorrupt(S3SplitError):
    """A file s3split keeps a run's state in (a status record, the lock, the manifest) is not
    what s3split writes there: not JSON, another shape, a field missing or of another type.
    Never retried: the message names the file and what to do about it."""


class AccountingMismatch(S3SplitError):
    """A run's records do not add up (source rows != ok + rejected + in failed chunks)."""


class TransientError(Exception):
    """Throttling, a 5xx or a timeout from a dependency: the state machine retries it."""


class BucketNotAllowed(S3SplitError):
    """An input names a bucket outside the deployment's configured ones."""


class InvalidInput(S3SplitError):
    """An execution or invocation input that does not have the expected shape."""


class RunInProgress(S3SplitError):
    """Another execution holds the run location's lock and is still running."""


class RunTakenOver(S3SplitError):
    """A continue-as-new execution found its run's lock taken over by another start."""


class RunInterrupted(S3SplitError):
    """``s3split run`` stopped by Ctrl-C, SIGTERM or SIGHUP (``exit_status`` is 128 + the
    signal's number); the message says whether there is a run to resume."""

    def __init__(self, message: str, exit_status: int = 130) -> None:
        super().__init__(message)
        self.exit_status = exit_status


class ChunkInProgress(TransientError):
    """Another attempt at the chunk holds its idempotency record: retried until that attempt
    ends or its time limit passes (a Retry of its own, longer than the worker's timeout)."""


class SourceInDestination(S3SplitError):
    """The source is a file the split writes or deletes in its destination (a part, the
    manifest, a progress or lock file): splitting would overwrite or delete it."""


class RunLocationTaken(S3SplitError):
    """A run location that holds something other than a run of the same source (a user's
    files, another source's run): a run there would overwrite or delete what it did not write."""


class SplitInProgress(S3SplitError):
    """Another ``s3split split`` holds the destination's lock and is still running."""


class ExtraNotInstalled(S3SplitError):
    """A command needs an optional part of s3split (an extra) that is not installed."""


class UnsupportedDependency(S3SplitError):
    """An installed package (moto, for the local engine) is a release this s3split does not
    support: the message names the installed and the supported versions and how to install
    one of them."""


class EngineFilesMissing(S3SplitError):
    """The local engine finds neither the checkout's nor the installed package's copy of the
    state machine definition and the handlers."""


class WorkerDied(S3SplitError):
    """A process of a parallel local split died before it finished its range (killed by the
    OS, for example for lack of memory, or by a signal); the split wrote no manifest."""


class ConditionalWritesIgnored(S3SplitError):
    """An S3-compatible store accepted a second ``If-None-Match: *`` create of one key: it
    ignores conditional writes, so no lock (a run's, a split's) can hold there."""


class SplitTaskFailed(S3SplitError):
    """A range scan or chunk assembly task of a split on the state machine failed for good
    with an error that is not one of these (a Lambda service error, a timeout, retries of a
    transient one exhausted), or left neither its result nor its error behind."""


class SourceNotUtf8(S3SplitError):
    """Without ``--encoding`` the source must be UTF-8 (a BOM may say UTF-16 or UTF-32); a
    byte that UTF-8 does not allow there fails the split, naming it, its line and the option
    that reads the source right."""


class SourceUndecodable(S3SplitError):
    """With ``--encoding`` (or a UTF-16/32 byte order mark): a byte sequence the encoding
    cannot decode, named by its source byte and line."""


class DelimiterUnclear(S3SplitError):
    """Without ``--delimiter``: more than one delimiter reads the header and first records
    consistently, or none does although the header holds one of them."""
