"""``--merge``: a run's results joined, in chunk order, into one file ``<location>/results.jsonl``.

Only a run whose every chunk succeeded is merged (a tolerated failure would leave records out
of a file that looks complete), and only the outputs its own status records list, each checked
to be the result of its chunk of this split. The file is written all-or-nothing; a new start
of the run deletes it first (Plan), as it does the report.
"""

import shutil

from s3split.errors import InvalidOption
from s3split.pipeline.chunk import OK, of_chunk
from s3split.pipeline.layout import RunLayout
from s3split.split.manifest import Manifest
from s3split.storage import Storage

MERGEABLE = ("jsonl",)  # outputs whose concatenation is one valid file of the same kind


def merge_results(location: str, storage: Storage) -> str:
    """Write the merged results; its URI. InvalidOption naming why a run cannot be merged."""
    layout = RunLayout(location)
    manifest = Manifest.from_dict(storage.read_json(layout.manifest))
    outputs = []
    for entry in manifest.chunks:
        uri = layout.status(entry.index)
        status = storage.read_json(uri) if storage.exists(uri) else None
        if not (status and status.get("state") == OK and of_chunk(status, entry)):
            raise InvalidOption(f"--merge: chunk {entry.index} of {location} did not succeed, "
                                "so no merged file is written (it would lack its records); "
                                f"fix it and resume with --merge (see {layout.report})")
        output = status.get("output")
        extension = output.rpartition(".")[2] if isinstance(output, str) else None
        if output is None or extension not in MERGEABLE \
                or output != layout.result(entry.index, extension):
            raise InvalidOption(f"--merge: the {status.get('processor')} processor's output "
                                f"of chunk {entry.index} ({output}) is not JSON Lines in "
                                f"{layout.location}: only .jsonl results are merged")
        outputs.append(output)
    target = layout.merged
    with storage.writer(target) as out:
        for output in outputs:
            with storage.open_read(output) as part:
                shutil.copyfileobj(part, out, 1 << 20)
    return target
