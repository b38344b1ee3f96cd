//! One event as the bridges send it: rendered once, shared by every client
//! (an SSE frame and a WebSocket text message).

use std::sync::OnceLock;

use axum::body::Bytes;
use tidings_runtime::transport::RawEntry;
use tidings_runtime::{AnyEvent, Envelope};

/// What the shared subscription hands each client.
#[derive(Debug)]
pub(crate) enum Frame {
    /// An event, with its entry id when it comes from a stream.
    Event(Rendered),
    /// The Pub/Sub connection dropped and was subscribed again: what was
    /// published meanwhile is lost.
    Gap {
        /// How long the subscription was down, in milliseconds.
        down_ms: u128,
    },
}

/// An event in CloudEvents JSON (structured mode), with its SSE and
/// WebSocket forms made on first use.
#[derive(Debug)]
pub(crate) struct Rendered {
    pub(crate) entry_id: Option<String>,
    pub(crate) type_name: String,
    json: String,
    sse: OnceLock<Bytes>,
    ws: OnceLock<String>,
}

impl Rendered {
    fn new(entry_id: Option<String>, envelope: &Envelope) -> Self {
        Rendered {
            entry_id,
            type_name: envelope.type_name.clone(),
            json: cloudevent_json(envelope),
            sse: OnceLock::new(),
            ws: OnceLock::new(),
        }
    }

    /// An event received on a Pub/Sub pattern.
    pub(crate) fn from_pubsub(event: &AnyEvent) -> Self {
        Rendered::new(None, event.envelope())
    }

    /// A stream entry; `None` for an entry that is not an event (logged).
    pub(crate) fn from_entry(entry: &RawEntry) -> Option<Self> {
        let fields = entry.fields.iter().map(|(k, v)| (k.as_bytes(), &v[..]));
        match Envelope::from_fields(&entry.id, fields) {
            Ok(envelope) => Some(Rendered::new(Some(entry.id.clone()), &envelope)),
            Err(e) => {
                tracing::warn!(entry = %entry.id, error = %e, "live view: skipping an entry that is not an event");
                None
            }
        }
    }

    /// `id: <entry id>` (from a stream), `event: <type>`, `data: <json>`.
    pub(crate) fn sse(&self) -> Bytes {
        self.sse
            .get_or_init(|| {
                let mut out = String::with_capacity(self.json.len() + self.type_name.len() + 48);
                if let Some(id) = &self.entry_id {
                    out.push_str("id: ");
                    out.push_str(id);
                    out.push('\n');
                }
                // A type with a line break would end the field early and
                // forge the next one: such an event goes out as a plain
                // `message`, its type still inside the JSON.
                if !self.type_name.contains(['\r', '\n']) {
                    out.push_str("event: ");
                    out.push_str(&self.type_name);
                    out.push('\n');
                }
                push_data(&mut out, &self.json);
                Bytes::from(out)
            })
            .clone()
    }

    /// `{"entry_id": "<id>", "event": {…}}`; no `entry_id` off a pattern.
    pub(crate) fn ws(&self) -> &str {
        self.ws.get_or_init(|| match &self.entry_id {
            Some(id) => format!(
                "{{\"entry_id\":{},\"event\":{}}}",
                serde_json::Value::String(id.clone()),
                self.json
            ),
            None => format!("{{\"event\":{}}}", self.json),
        })
    }
}

impl Frame {
    /// The frame as SSE bytes.
    pub(crate) fn sse(&self) -> Bytes {
        match self {
            Frame::Event(r) => r.sse(),
            Frame::Gap { down_ms } => {
                Bytes::from(format!("event: gap\ndata: {{\"down_ms\":{down_ms}}}\n\n"))
            }
        }
    }

    /// The frame as a WebSocket text message.
    pub(crate) fn ws(&self) -> String {
        match self {
            Frame::Event(r) => r.ws().to_owned(),
            Frame::Gap { down_ms } => format!("{{\"gap\":{{\"down_ms\":{down_ms}}}}}"),
        }
    }
}

/// `data:` lines for `text`, one per line of it, then the blank line that
/// ends the event.
pub(crate) fn push_data(out: &mut String, text: &str) {
    for line in text.split('\n') {
        out.push_str("data: ");
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        out.push('\n');
    }
    out.push('\n');
}

/// The CloudEvents JSON of an envelope. A payload that is not JSON (from a
/// producer of another language, say) goes out as a JSON string, so the
/// frame stays one valid JSON object.
fn cloudevent_json(envelope: &Envelope) -> String {
    let json = if serde_json::from_slice::<serde::de::IgnoredAny>(&envelope.data).is_ok() {
        envelope.to_json()
    } else {
        let mut copy = envelope.clone();
        let text = String::from_utf8_lossy(&envelope.data).into_owned();
        copy.data = serde_json::Value::String(text).to_string().into_bytes();
        copy.to_json()
    };
    String::from_utf8(json).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(type_name: &str, data: &str) -> RawEntry {
        RawEntry::new(
            "1732442400123-0".to_owned(),
            vec![
                ("specversion".to_owned(), b"1.0".to_vec()),
                ("id".to_owned(), b"e-1".to_vec()),
                ("source".to_owned(), b"test".to_vec()),
                ("type".to_owned(), type_name.as_bytes().to_vec()),
                ("data".to_owned(), data.as_bytes().to_vec()),
            ],
        )
    }

    #[test]
    fn a_stream_entry_is_one_sse_event_with_its_entry_id_and_type() {
        let r = Rendered::from_entry(&entry("gate.opened", "{\"gate\":\n 3}")).unwrap();
        let sse = String::from_utf8(r.sse().to_vec()).unwrap();
        let mut lines = sse.lines();
        assert_eq!(lines.next(), Some("id: 1732442400123-0"));
        assert_eq!(lines.next(), Some("event: gate.opened"));
        assert!(sse.ends_with("\n\n"));
        // Every line of the JSON is a `data:` line, so the event is not cut.
        let data: String = sse
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .collect::<Vec<_>>()
            .join("\n");
        let v: serde_json::Value = serde_json::from_str(&data).unwrap();
        assert_eq!(v["type"], "gate.opened");
        assert_eq!(v["data"]["gate"], 3);
    }

    #[test]
    fn a_type_with_a_line_break_cannot_forge_fields() {
        let r = Rendered::from_entry(&entry("x\nid: 9-9\nevent: y", "{}")).unwrap();
        let sse = String::from_utf8(r.sse().to_vec()).unwrap();
        assert!(!sse.contains("\nevent:"), "{sse}");
        assert_eq!(sse.lines().filter(|l| l.starts_with("id:")).count(), 1);
    }

    #[test]
    fn a_payload_that_is_not_json_goes_out_as_a_string() {
        let r = Rendered::from_entry(&entry("note", "not json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(r.ws()).unwrap();
        assert_eq!(v["entry_id"], "1732442400123-0");
        assert_eq!(v["event"]["data"], "not json");
    }

    #[test]
    fn an_entry_that_is_not_an_event_is_skipped() {
        let bad = RawEntry::new("1-0".to_owned(), vec![("x".to_owned(), b"y".to_vec())]);
        assert!(Rendered::from_entry(&bad).is_none());
    }
}
