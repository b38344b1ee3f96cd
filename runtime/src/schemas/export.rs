//! The files of a `schemas/` folder, produced from the registry.
//!
//! ```text
//! schemas/<stream or channel>/<type>/v<N>.json          payload schema of each version
//! schemas/<stream or channel>/<type>/v<N>.sample.json   a golden sample payload of it
//! schemas/envelope.json                                 the CloudEvents attributes
//! schemas/asyncapi.json                                 AsyncAPI 3.0.0: streams, channels, messages
//! ```

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::event::DEFAULT_SCHEMA_BASE;
use crate::registry::EventInfo;

/// Namespace of Redis keys that the AsyncAPI document names by default.
pub const DEFAULT_NAMESPACE: &str = "tidings";

/// Path of a version's payload schema inside `schemas/`: `<topic>/<type>/v<N>.json`.
///
/// It is the `dataschema` attribute without the schema base.
pub fn schema_path(info: &EventInfo) -> String {
    format!("{}/{}/v{}.json", info.topic(), info.type_name, info.version)
}

/// Path of a version's golden sample payload: `<topic>/<type>/v<N>.sample.json`.
pub fn sample_path(info: &EventInfo) -> String {
    format!(
        "{}/{}/v{}.sample.json",
        info.topic(),
        info.type_name,
        info.version
    )
}

/// The text of a schema file: pretty JSON, two-space indent, trailing newline.
///
/// Keys keep the order schemars produces (declaration order of the fields),
/// which is stable from build to build, so diffs show only real changes.
pub fn to_file_text(value: &Value) -> String {
    let mut s = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".to_owned());
    s.push('\n');
    s
}

/// Every file of a `schemas/` folder for the given events, by path relative to
/// the folder: payload schemas of every version, `envelope.json` and
/// `asyncapi.json`. Samples are not included (see [`synthesize_sample`]).
///
/// `base` is the schema base ([`DEFAULT_SCHEMA_BASE`] unless configured),
/// ending in `/` or `:`: each schema's `$id` is the base and its path.
pub fn files(infos: &[&EventInfo], namespace: &str, base: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for info in infos {
        let mut schema = (info.schema)();
        if let Some(o) = schema.as_object_mut() {
            o.insert(
                "$id".to_owned(),
                Value::String(format!("{base}{}", info.schema_path)),
            );
        }
        out.insert(schema_path(info), schema);
    }
    let mut envelope = envelope_schema();
    if let Some(o) = envelope.as_object_mut() {
        o.insert(
            "$id".to_owned(),
            Value::String(format!("{base}envelope.json")),
        );
    }
    out.insert("envelope.json".to_owned(), envelope);
    out.insert("asyncapi.json".to_owned(), asyncapi(infos, namespace, base));
    out
}

/// JSON Schema of the CloudEvents envelope tidings writes and reads, with
/// `$id` under [`DEFAULT_SCHEMA_BASE`]: tidings writes every attribute it
/// describes, and reads any event that has the four CloudEvents requires
/// (other attributes, extensions included, are allowed and ignored).
///
/// A stream entry carries each attribute as one field and the payload in
/// `data` (binary mode); a Pub/Sub message is one JSON object with the same
/// attributes and `data` inline (structured mode).
pub fn envelope_schema() -> Value {
    let s = |d: &str| json!({ "type": "string", "description": d });
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("{DEFAULT_SCHEMA_BASE}envelope.json"),
        "title": "tidings CloudEvents envelope",
        "description": "CloudEvents 1.0 attributes of every tidings event. In a Redis stream entry each attribute is one field (binary mode) and `data` holds the payload as JSON text; on Pub/Sub the event is one JSON object (structured mode) with `data` inline.",
        "type": "object",
        "properties": {
            "specversion": { "const": "1.0", "description": "CloudEvents version." },
            "id": {
                "type": "string",
                "minLength": 1,
                "description": "Id of the event, also its idempotency key: a ULID when tidings writes it, any non-empty string from another producer."
            },
            "source": { "type": "string", "minLength": 1, "description": "The publishing service." },
            "type": {
                "type": "string",
                "pattern": "^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)*$",
                "description": "Event type, such as `file.uploaded`."
            },
            "time": {
                "type": "string",
                "format": "date-time",
                "description": "When the event was published: RFC 3339, UTC, milliseconds."
            },
            "datacontenttype": { "const": "application/json", "description": "Media type of `data`." },
            "dataschema": {
                "type": "string",
                "format": "uri",
                "description": "Absolute URI of the payload's JSON Schema, its `$id`: the schema base, then `<stream or channel>/<type>/v<N>.json`."
            },
            "dataversion": {
                "anyOf": [
                    { "type": "string", "pattern": "^[1-9][0-9]*$" },
                    { "type": "integer", "minimum": 1 }
                ],
                "description": "Schema version of the payload (extension attribute), as decimal text (a JSON integer is read too). Without it, the version is the `v<N>` of `dataschema`, else 1."
            },
            "correlationid": s("Id shared by every event of one conversation (extension attribute)."),
            "causationid": s("Id of the event that caused this one (extension attribute)."),
            "tenantid": s("Tenant the event belongs to (extension attribute)."),
            "traceparent": s("W3C Trace Context of the publisher (distributed tracing extension)."),
            "tracestate": s("W3C Trace Context, the vendors' part (distributed tracing extension)."),
            "subject": s("Subject of the event in the context of the source."),
            "replyto": s("On a request: the requester's reply stream (`<namespace>:{reply:<instance>}`), where the responder appends its reply (extension attribute)."),
            "dlqgroup": s("On an entry a dead-letter retry put back: the only consumer group that handles it; every other group acknowledges it unhandled (extension attribute)."),
            "data": { "description": "The payload: JSON text in a stream entry, inline JSON in structured mode." }
        },
        "required": ["specversion", "id", "source", "type"]
    })
}

/// The AsyncAPI 3.0.0 document of the given events.
///
/// One channel per stream and per Pub/Sub channel, its Redis key as
/// `address`; one message per (type, version) whose payload is a `$ref` to a
/// component schema (the version's payload schema, its local references rewritten
/// so that they resolve inside the one document), and
/// the CloudEvents attributes as headers.
///
/// Each message carries three extensions: `x-tidings-dataschema`,
/// `x-tidings-dataversion`, and `x-tidings-compat`, the compatibility mode
/// of the version (`backward`, `full_transitive`, …), which
/// `tidings schema check` applies to it.
pub fn asyncapi(infos: &[&EventInfo], namespace: &str, base: &str) -> Value {
    let mut sorted: Vec<&EventInfo> = infos.to_vec();
    sorted.sort_by(|a, b| {
        (a.topic(), a.type_name, a.version).cmp(&(b.topic(), b.type_name, b.version))
    });

    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    let mut schemas = Map::new();
    let mut headers = envelope_schema();
    if let Some(o) = headers.as_object_mut() {
        o.remove("$schema");
        o.remove("$id");
        if let Some(Value::Object(props)) = o.get_mut("properties") {
            props.remove("data");
        }
        if let Some(Value::Array(req)) = o.get_mut("required") {
            req.retain(|r| r != "data");
        }
        o.insert("additionalProperties".to_owned(), Value::Bool(true));
    }
    schemas.insert("CloudEventsAttributes".to_owned(), headers);

    for info in &sorted {
        let msg_id = format!("{}.v{}", info.type_name, info.version);
        let schema_id = msg_id.clone();
        schemas.insert(schema_id.clone(), embeddable(&schema_id, (info.schema)()));
        messages.insert(
            msg_id.clone(),
            json!({
                "name": info.type_name,
                "title": format!("{} v{}", info.type_name, info.version),
                "summary": format!("`{}` version {} ({})", info.type_name, info.version, info.rust_name),
                "contentType": "application/json",
                "headers": { "$ref": "#/components/schemas/CloudEventsAttributes" },
                "payload": { "$ref": format!("#/components/schemas/{schema_id}") },
                "x-tidings-dataschema": format!("{base}{}", info.schema_path),
                "x-tidings-dataversion": info.version,
                // The mode `tidings schema check` applies to this version: here,
                // where AsyncAPI allows extensions, rather than in the payload
                // schema, where strict JSON Schema validators refuse them.
                "x-tidings-compat": info.compat.as_str(),
            }),
        );
        if let (Some(field), Some(Value::Object(m))) =
            (info.partition_key, messages.get_mut(&msg_id))
        {
            // Where the `partitionkey` attribute comes from: events of one key
            // are handled in order within a consumer group.
            m.insert(
                "x-tidings-partitionkey".to_owned(),
                json!({
                    "attribute": "partitionkey",
                    "field": field,
                    "description": format!("`partitionkey` holds the payload field `{field}`: events with the same key are handled one after another, in stream order, by each consumer group"),
                }),
            );
        }
        for (kind, name) in [("stream", info.stream), ("channel", info.channel)] {
            let Some(name) = name else { continue };
            let (chan_id, address, description) = if kind == "stream" {
                (
                    format!("stream.{name}"),
                    format!("{namespace}:{{{name}}}"),
                    format!("Redis stream `{name}` (durable, consumer groups, at least once). Tenant-scoped key: `{namespace}:{{<tenant>:{name}}}`; dead letters: `{namespace}:{{{name}}}:dlq`."),
                )
            } else {
                (
                    format!("channel.{name}.{}", info.type_name),
                    format!("{namespace}:{name}:{}", info.type_name),
                    format!("Redis Pub/Sub channel of `{}` on `{name}` (fan-out, at most once). Pattern subscriptions: `{namespace}:{name}:*`. Tenant-scoped: `{namespace}:{{<tenant>}}:{name}:{}`.", info.type_name, info.type_name),
                )
            };
            let chan = channels.entry(chan_id.clone()).or_insert_with(|| {
                json!({
                    "address": address,
                    "title": name,
                    "description": description,
                    "messages": {},
                    "x-redis-key": address,
                    "x-tidings-kind": kind,
                })
            });
            if let Some(Value::Object(m)) = chan.get_mut("messages") {
                m.insert(
                    msg_id.clone(),
                    json!({ "$ref": format!("#/components/messages/{msg_id}") }),
                );
            }
            let op_id = format!("publish.{chan_id}");
            let op = operations.entry(op_id).or_insert_with(|| {
                json!({
                    "action": "send",
                    "channel": { "$ref": format!("#/channels/{chan_id}") },
                    "messages": [],
                })
            });
            if let Some(Value::Array(list)) = op.get_mut("messages") {
                list.push(json!({ "$ref": format!("#/channels/{chan_id}/messages/{msg_id}") }));
            }
            if let (Some(reply), "stream") = (info.reply, kind) {
                request_operation(
                    &mut operations,
                    &mut channels,
                    &sorted,
                    info,
                    reply,
                    &chan_id,
                );
            }
        }
    }

    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "tidings events",
            "version": "1.0.0",
            "description": "Every event type and version, on Redis Streams and Redis Pub/Sub, as CloudEvents 1.0. Generated by tidings from the `#[event]` declarations; do not edit by hand.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": { "schemas": schemas, "messages": messages },
    })
}

/// The channel of the reply streams, whose address is each request's
/// `replyto`.
const REPLIES_CHANNEL: &str = "replies";

/// The operation `request.<type>` of a request (`reply = …`) published on
/// the stream channel `chan_id`: its versions as messages, and as `reply`
/// every version of the reply type, on the reply stream its `replyto` names.
fn request_operation(
    operations: &mut Map<String, Value>,
    channels: &mut Map<String, Value>,
    infos: &[&EventInfo],
    request: &EventInfo,
    reply: &str,
    chan_id: &str,
) {
    let replies = channels.entry(REPLIES_CHANNEL).or_insert_with(|| {
        json!({
            "address": null,
            "title": "reply streams",
            "description": "The reply stream of one requesting bus instance, `<namespace>:{reply:<instance>}`, named by each request's `replyto`: the responder appends its reply there (only while it exists) besides publishing it on its own stream. It expires when its instance stops renewing it.",
            "messages": {},
            "x-tidings-kind": "reply-stream",
        })
    });
    let mut reply_refs = Vec::new();
    for info in infos.iter().filter(|i| i.type_name == reply) {
        let msg_id = format!("{}.v{}", info.type_name, info.version);
        if let Some(Value::Object(m)) = replies.get_mut("messages") {
            m.insert(
                msg_id.clone(),
                json!({ "$ref": format!("#/components/messages/{msg_id}") }),
            );
        }
        reply_refs
            .push(json!({ "$ref": format!("#/channels/{REPLIES_CHANNEL}/messages/{msg_id}") }));
    }
    let msg_id = format!("{}.v{}", request.type_name, request.version);
    let op = operations
        .entry(format!("request.{}", request.type_name))
        .or_insert_with(|| {
            json!({
                "action": "send",
                "title": format!("request `{}`, reply `{reply}`", request.type_name),
                "channel": { "$ref": format!("#/channels/{chan_id}") },
                "messages": [],
                "reply": {
                    "address": {
                        "location": "$message.header#/replyto",
                        "description": "The requester's reply stream."
                    },
                    "channel": { "$ref": format!("#/channels/{REPLIES_CHANNEL}") },
                    "messages": reply_refs,
                },
            })
        });
    if let Some(Value::Array(list)) = op.get_mut("messages") {
        list.push(json!({ "$ref": format!("#/channels/{chan_id}/messages/{msg_id}") }));
    }
}

/// Makes a payload schema embeddable under `#/components/schemas/<id>`:
/// drops `$schema`/`$id` and rewrites `#/$defs/X` (or `#/definitions/X`)
/// references to point inside the embedded schema.
fn embeddable(id: &str, mut schema: Value) -> Value {
    if let Some(o) = schema.as_object_mut() {
        o.remove("$schema");
        o.remove("$id");
    }
    rewrite_refs(&mut schema, &format!("#/components/schemas/{id}"));
    schema
}

fn rewrite_refs(v: &mut Value, prefix: &str) {
    match v {
        Value::Object(o) => {
            for (k, child) in o.iter_mut() {
                if k == "$ref" {
                    if let Value::String(r) = child {
                        if let Some(rest) = r.strip_prefix('#') {
                            *r = format!("{prefix}{rest}");
                        }
                    }
                } else {
                    rewrite_refs(child, prefix);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|c| rewrite_refs(c, prefix)),
        _ => {}
    }
}

/// A payload that satisfies `schema`, built from the schema alone: every
/// property present, the first alternative of each choice, the lower bound of
/// each number. Used as the golden sample of a version when none is given.
pub fn synthesize_sample(schema: &Value) -> Value {
    synth(schema, schema, 0)
}

fn synth(root: &Value, s: &Value, depth: usize) -> Value {
    if depth > 16 {
        return Value::Null;
    }
    let Some(o) = s.as_object() else {
        return Value::Null;
    };
    if let Some(r) = o.get("$ref").and_then(Value::as_str) {
        let target = r
            .strip_prefix("#/")
            .map(|p| p.split('/').try_fold(root, |v, seg| v.get(seg)));
        return match target.flatten() {
            Some(t) => synth(root, t, depth + 1),
            None => Value::Null,
        };
    }
    if let Some(c) = o.get("const") {
        return c.clone();
    }
    if let Some(Value::Array(e)) = o.get("enum") {
        return e.first().cloned().unwrap_or(Value::Null);
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(Value::Array(alts)) = o.get(key) {
            let pick = alts
                .iter()
                .find(|a| a.get("type").and_then(Value::as_str) != Some("null"))
                .or(alts.first());
            if let Some(a) = pick {
                if key != "allOf" || alts.len() == 1 {
                    return synth(root, a, depth + 1);
                }
                let mut merged = Map::new();
                for a in alts {
                    if let Value::Object(m) = synth(root, a, depth + 1) {
                        merged.extend(m);
                    }
                }
                return Value::Object(merged);
            }
        }
    }
    let ty = match o.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if o.contains_key("properties") => "object",
        _ => "null",
    };
    match ty {
        "object" => {
            let mut m = Map::new();
            if let Some(Value::Object(props)) = o.get("properties") {
                for (k, p) in props {
                    m.insert(k.clone(), synth(root, p, depth + 1));
                }
            }
            Value::Object(m)
        }
        "array" => {
            let min = o
                .get("minItems")
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .max(1);
            let item = o
                .get("items")
                .map(|i| synth(root, i, depth + 1))
                .unwrap_or(Value::Null);
            let mut out = Vec::new();
            if let Some(Value::Array(prefix)) = o.get("prefixItems") {
                out.extend(prefix.iter().map(|p| synth(root, p, depth + 1)));
            }
            while (out.len() as u64) < min {
                out.push(item.clone());
            }
            Value::Array(out)
        }
        "string" => Value::String(sample_string(o)),
        "integer" => {
            let min = o.get("minimum").and_then(Value::as_i64).unwrap_or(0);
            let x = o
                .get("exclusiveMinimum")
                .and_then(Value::as_i64)
                .map(|m| m + 1)
                .unwrap_or(min);
            json!(x
                .max(min)
                .max(1)
                .min(o.get("maximum").and_then(Value::as_i64).unwrap_or(i64::MAX)))
        }
        "number" => json!(o.get("minimum").and_then(Value::as_f64).unwrap_or(1.5)),
        "boolean" => Value::Bool(true),
        _ => Value::Null,
    }
}

fn sample_string(o: &Map<String, Value>) -> String {
    let pattern = o.get("pattern").and_then(Value::as_str).unwrap_or("");
    if pattern.contains("{26}") {
        return "01ARZ3NDEKTSV4RRFFQ69G5FAV".to_owned();
    }
    match o.get("format").and_then(Value::as_str) {
        Some("date-time") => "2026-01-01T00:00:00.000Z".to_owned(),
        Some("date") => "2026-01-01".to_owned(),
        Some("time") => "00:00:00Z".to_owned(),
        Some("uuid") => "00000000-0000-4000-8000-000000000000".to_owned(),
        Some("email") => "someone@example.com".to_owned(),
        Some("uri") => "https://example.com/".to_owned(),
        Some("ipv4") => "192.0.2.1".to_owned(),
        Some("ipv6") => "2001:db8::1".to_owned(),
        _ => {
            let min = o.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
            let mut s = "sample".to_owned();
            while s.len() < min {
                s.push('x');
            }
            s
        }
    }
}
