"""A client of tidings written in Python with redis-py, following only the
wire format documented in DESIGN.md ("Wire format").

    interop.py publish <redis-url> <stream-key>   XADD a file.uploaded v1 event
    interop.py check <redis-url> <stream-key>     check the last entry the Rust side wrote

Exits 1 with a message naming the field on any mismatch.
"""

import json
import re
import sys
from datetime import datetime, timezone

import redis

ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_ulid():
    import os
    import time

    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    out = []
    for _ in range(26):
        out.append(CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(out))


def publish(url, key):
    r = redis.Redis.from_url(url)
    now = datetime.now(timezone.utc)
    time_attr = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    entry_id = r.xadd(
        key,
        {
            "specversion": "1.0",
            "id": new_ulid(),
            "source": "python-interop",
            "type": "file.uploaded",
            "time": time_attr,
            "datacontenttype": "application/json",
            "dataschema": "https://tidings.invalid/schemas/contextual/file.uploaded/v1.json",
            "dataversion": "1",
            "correlationid": "py-corr-1",
            "data": json.dumps({"file_id": "py-1", "filename": "from-python.pdf"}),
        },
    )
    print(f"published {entry_id.decode()}")


def fail(msg):
    print(f"interop check failed: {msg}", file=sys.stderr)
    sys.exit(1)


def check(url, key):
    r = redis.Redis.from_url(url)
    entries = r.xrevrange(key, count=1)
    if not entries:
        fail(f"stream {key} is empty")
    entry_id, raw = entries[0]
    fields = {k.decode(): v.decode() for k, v in raw.items()}
    required = [
        "specversion", "id", "source", "type", "time",
        "datacontenttype", "dataschema", "dataversion", "data",
    ]
    for name in required:
        if name not in fields:
            fail(f"field `{name}` is missing from entry {entry_id.decode()}: {sorted(fields)}")
    expect = {
        "specversion": "1.0",
        "source": "interop-test",
        "type": "file.uploaded",
        "datacontenttype": "application/json",
        "dataschema": "https://tidings.invalid/schemas/contextual/file.uploaded/v2.json",
        "dataversion": "2",
        "subject": "files/rust-1",
        "correlationid": "rust-corr",
    }
    for name, value in expect.items():
        if fields.get(name) != value:
            fail(f"field `{name}` is {fields.get(name)!r}, expected {value!r}")
    if not ULID.match(fields["id"]):
        fail(f"field `id` is not a ULID: {fields['id']!r}")
    if not TIME.match(fields["time"]):
        fail(f"field `time` is not RFC 3339 UTC with milliseconds: {fields['time']!r}")
    datetime.strptime(fields["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    data = json.loads(fields["data"])
    want = {"file_id": "rust-1", "filename": "from-rust.txt", "mime_type": "text/plain"}
    if data != want:
        fail(f"field `data` is {data!r}, expected {want!r}")
    unknown = set(fields) - set(required) - set(expect) - {"causationid", "tenantid", "traceparent"}
    if unknown:
        fail(f"unexpected fields {sorted(unknown)}")
    print("ok")


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("publish", "check"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    {"publish": publish, "check": check}[sys.argv[1]](sys.argv[2], sys.argv[3])
