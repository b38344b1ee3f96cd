// A client of tidings that goes through the official CloudEvents SDK for
// JavaScript (`cloudevents`) and the Redis client (`@redis/client`), knowing
// only the wire format of DESIGN.md ("Wire format").
//
//     node sdk.mjs read-entry <redis-url> <stream-key>
//         The newest entry of the stream, read as an SDK event; prints the
//         event as the SDK sees it.
//     node sdk.mjs read-message
//         A Pub/Sub message (its bytes on stdin), read as an SDK event;
//         prints the event as the SDK sees it.
//     node sdk.mjs write <redis-url> <stream-key> <channel-key>
//         Creates events with the SDK, XADDs one, PUBLISHes the other;
//         prints their ids, the entry's time (to the millisecond) and the
//         number of subscribers that got the message.
//
// The event "as the SDK sees it" is `{"cloudevents": {...}}`: every attribute
// under its name, `time` as RFC 3339 in UTC with milliseconds, and `data` as
// the SDK holds it. The caller compares it with what it wrote. Each event is
// checked against the SDK's JSON schema of CloudEvents 1.0 (`validate`), so
// an attribute it rejects (a `dataschema` that is not an absolute URI, a
// `time` that is not RFC 3339) makes the script exit 1 with the SDK's error.

import { createClient } from "@redis/client";
import { CloudEvent, HTTP } from "cloudevents";

function view(event) {
  const out = {};
  for (const [name, value] of Object.entries(event)) {
    if (value !== undefined) out[name] = value;
  }
  if (out.time !== undefined) out.time = new Date(out.time).toISOString();
  return { cloudevents: out };
}

async function withRedis(url, f) {
  const client = createClient({ url });
  client.on("error", (e) => {
    throw e;
  });
  await client.connect();
  try {
    return await f(client);
  } finally {
    await client.close();
  }
}

async function readEntry(url, key) {
  const entries = await withRedis(url, (r) => r.xRevRange(key, "+", "-", { COUNT: 1 }));
  if (entries.length === 0) throw new Error(`stream ${key} is empty`);
  const { data, ...attributes } = entries[0].message;
  // Binary mode: each field is an attribute. The payload of a tidings event
  // is JSON (its datacontenttype says so), which the SDK holds parsed.
  // The constructor validates every attribute (strict mode).
  const event = new CloudEvent({ ...attributes, data: data === undefined ? undefined : JSON.parse(data) });
  return view(event);
}

async function readMessage(body) {
  // Structured mode: one CloudEvents JSON document, read by the SDK's
  // structured-mode parser, which does not validate; `validate` does.
  const event = HTTP.toEvent({
    headers: { "content-type": "application/cloudevents+json; charset=utf-8" },
    body,
  });
  event.validate();
  return view(event);
}

async function write(url, streamKey, channelKey) {
  // What an SDK user writes: type, source and data, with the SDK's own
  // defaults for the rest (a UUID id, the current time); `dataversion`
  // names the schema version of the payload, and there is no dataschema.
  const uploaded = new CloudEvent({
    type: "file.uploaded",
    source: "js-sdk",
    dataversion: 2,
    data: { file_id: "js-sdk-1", filename: "from-js-sdk.txt", mime_type: "text/plain" },
  });
  const turned = new CloudEvent({
    type: "valve.turned",
    source: "js-sdk",
    dataversion: 2,
    data: { valve: "js-sdk-valve", degrees: 180 },
  });
  // A stream entry is binary mode, one field per attribute: the attributes
  // as the SDK writes them in JSON (`toJSON`), each as text, the payload as
  // a JSON document in `data`.
  const fields = {};
  for (const [name, value] of Object.entries(uploaded.toJSON())) {
    if (value === undefined) continue;
    fields[name] = name === "data" ? JSON.stringify(value) : String(value);
  }
  return withRedis(url, async (r) => {
    const entryId = await r.xAdd(streamKey, "*", fields);
    const receivers = await r.publish(channelKey, HTTP.structured(turned).body);
    return {
      entry: { id: uploaded.id, time: new Date(uploaded.time).toISOString(), entry_id: entryId },
      message: { id: turned.id, receivers },
    };
  });
}

async function stdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

const [command, ...args] = process.argv.slice(2);
let out;
if (command === "read-entry" && args.length === 2) {
  out = await readEntry(args[0], args[1]);
} else if (command === "read-message" && args.length === 0) {
  out = await readMessage(await stdin());
} else if (command === "write" && args.length === 3) {
  out = await write(args[0], args[1], args[2]);
} else {
  console.error("usage: node sdk.mjs read-entry <url> <key> | read-message | write <url> <stream-key> <channel-key>");
  process.exit(2);
}
console.log(JSON.stringify(out));
