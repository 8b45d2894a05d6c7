"""``python tests/support/s3_server.py OBJECTS_JSON [moto.server's arguments]``: a moto server
that starts with the objects of OBJECTS_JSON (``{"bucket": ..., "body": ..., "keys": [...]}``)
already stored, so a test can have thousands of objects without thousands of PUTs (each
~4 ms of the server's CPU). Everything after the setup goes through the server as usual."""

import json
import sys
from pathlib import Path

from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends
from moto.server import main


def store(objects_json: Path) -> None:
    objects = json.loads(objects_json.read_text())
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    backend.create_bucket(objects["bucket"], "us-east-1")
    body = objects["body"].encode()
    for key in objects["keys"]:
        backend.put_object(objects["bucket"], key, body)


if __name__ == "__main__":
    store(Path(sys.argv[1]))
    main(sys.argv[2:])
