"""A client of tidings that goes through the official CloudEvents Python SDK
(the `cloudevents` package) and redis-py, knowing only the wire format of
DESIGN.md ("Wire format").

    sdk.py read-entry <redis-url> <stream-key>
        The newest entry of the stream, read as an SDK event; prints the
        event as the SDK sees it.
    sdk.py read-message
        A Pub/Sub message (its bytes on stdin), read as an SDK event; prints
        the event as the SDK sees it.
    sdk.py write <redis-url> <stream-key> <channel-key>
        Creates events with the SDK, XADDs one, PUBLISHes the other; prints
        their ids, the entry's time (to the millisecond) and the number of
        subscribers that got the message.

The event "as the SDK sees it" is one JSON object per API of the package:
`core` (`cloudevents.core`, the API of 2.x, which checks every attribute) and
`v1` (`cloudevents.v1.http`, the API of 1.x, kept in 2.x for its users).
Every attribute is there under its name, `time` as RFC 3339 in UTC with
milliseconds once the SDK has parsed it, and `data` as the SDK decoded it.
The caller compares them with what it wrote. An SDK that rejects the event
raises, and the script exits 1 with its error.
"""

import json
import sys
from datetime import datetime, timezone

import redis
from cloudevents.core.bindings import kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from cloudevents.v1 import conversion as v1_conversion
from cloudevents.v1 import http as v1_http
from dateutil.parser import isoparse


def rfc3339_millis(t):
    t = t.astimezone(timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def core_view(event):
    view = {}
    for name, value in event.get_attributes().items():
        view[name] = rfc3339_millis(value) if isinstance(value, datetime) else value
    view["data"] = event.get_data()
    return view


def v1_view(event):
    # `to_dict` gives the attributes and `data` as the event holds them.
    return v1_conversion.to_dict(event)


def read_entry(url, key):
    r = redis.Redis.from_url(url)
    entries = r.xrevrange(key, count=1)
    if not entries:
        sys.exit(f"stream {key} is empty")
    _, raw = entries[0]
    fields = {k.decode(): v for k, v in raw.items()}
    body = fields.pop("data", None)
    attributes = {k: v.decode() for k, v in fields.items()}

    # Binary mode, as a protocol binding reads it: each field an attribute,
    # `time` parsed the way the SDK's own bindings and JSON format parse it
    # (dateutil's isoparse), the payload decoded by the SDK's format from
    # its content type.
    core_attributes = dict(attributes)
    if "time" in core_attributes:
        core_attributes["time"] = isoparse(core_attributes["time"])
    data = JSONFormat().read_data(body, core_attributes.get("datacontenttype")) if body else None
    core = CloudEvent(core_attributes, data)

    legacy = v1_http.CloudEvent(dict(attributes), json.loads(body) if body else None)
    return {"core": core_view(core), "v1": v1_view(legacy)}


def read_message(body):
    # Structured mode: the event is one CloudEvents JSON document.
    core = JSONFormat().read(CloudEvent, body)
    legacy = v1_http.from_json(body)
    return {"core": core_view(core), "v1": v1_view(legacy)}


def write(url, stream_key, channel_key):
    r = redis.Redis.from_url(url)
    # What an SDK user writes: type, source and data, with the SDK's own
    # defaults for the rest (a UUID id, the current time); `dataversion`
    # names the schema version of the payload, and there is no dataschema.
    uploaded = CloudEvent(
        {"type": "file.uploaded", "source": "python-sdk", "dataversion": 2},
        {"file_id": "py-sdk-1", "filename": "from-python-sdk.txt", "mime_type": "text/plain"},
    )
    turned = CloudEvent(
        {"type": "valve.turned", "source": "python-sdk", "dataversion": 2},
        {"valve": "py-sdk-valve", "degrees": 90},
    )

    # A stream entry is binary mode with one field per attribute. The SDK's
    # binding for such a transport is Kafka's (one header per attribute,
    # `ce_` prefix, the content type in `content-type`, data in the value):
    # its headers become the entry's fields under their attribute names.
    message = kafka.to_binary(uploaded, JSONFormat())
    fields = {}
    for name, value in message.headers.items():
        if name == "content-type":
            fields["datacontenttype"] = value
        elif name.startswith("ce_"):
            fields[name[len("ce_"):]] = value
        else:
            sys.exit(f"unexpected Kafka header {name!r} from the SDK")
    fields["data"] = message.value
    entry_id = r.xadd(stream_key, fields)

    receivers = r.publish(channel_key, JSONFormat().write(turned))
    return {
        "entry": {
            "id": uploaded.get_id(),
            "time": rfc3339_millis(uploaded.get_time()),
            "entry_id": entry_id.decode(),
        },
        "message": {"id": turned.get_id(), "receivers": receivers},
    }


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["read-entry"] and len(args) == 3:
        out = read_entry(args[1], args[2])
    elif args == ["read-message"]:
        out = read_message(sys.stdin.buffer.read())
    elif args[:1] == ["write"] and len(args) == 4:
        out = write(args[1], args[2], args[3])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    print(json.dumps(out))
