//! `tidings tail`: the entries of a stream, read with `XRANGE` (no consumer
//! group, nothing acknowledged), from an entry id or a point in time.

use clap::Args;
use serde_json::{json, Value};
use tidings_runtime::transport::RawEntry;
use tidings_runtime::Envelope;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::ops::{self, Connection, Failure, Format, Output};

#[derive(Debug, Args)]
pub(crate) struct TailArgs {
    /// The stream's name, as in `#[event(stream = "…")]`.
    stream: String,
    /// Most entries to print: the newest ones, or the first ones after
    /// `--from` / `--since`.
    #[arg(long, default_value_t = 10)]
    count: usize,
    /// Start at this entry id (included), such as `1732442400123-0`.
    #[arg(long, value_parser = parse_entry_id, conflicts_with = "since")]
    from: Option<String>,
    /// Start at this time (RFC 3339, such as `2024-11-24T10:00:00Z`): the
    /// first entry added at or after it.
    #[arg(long, value_parser = parse_since)]
    since: Option<String>,
    #[command(flatten)]
    output: Output,
    #[command(flatten)]
    connection: Connection,
}

/// An entry id: `<ms>` or `<ms>-<seq>`, as `XRANGE` takes it.
fn parse_entry_id(text: &str) -> Result<String, String> {
    let ok = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    let valid = match text.split_once('-') {
        Some((ms, seq)) => ok(ms) && ok(seq),
        None => ok(text),
    };
    if valid {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "`{text}` is not a stream entry id (`<milliseconds>-<sequence>`, such as `1732442400123-0`)"
        ))
    }
}

/// A time to the first entry id Redis could have given at that time:
/// entry ids start with the Unix time in milliseconds of their `XADD`.
fn parse_since(text: &str) -> Result<String, String> {
    let t = OffsetDateTime::parse(text, &Rfc3339).map_err(|e| {
        format!("`{text}` is not an RFC 3339 time (such as `2024-11-24T10:00:00Z`): {e}")
    })?;
    let ms = t.unix_timestamp_nanos().div_euclid(1_000_000);
    if ms < 0 {
        return Err(format!("`{text}` is before 1970, where no entry id can be"));
    }
    Ok(format!("{ms}-0"))
}

pub(crate) fn run(args: TailArgs) -> Result<(), Failure> {
    ops::block_on(tail(args))
}

async fn tail(args: TailArgs) -> Result<(), Failure> {
    let bus = args.connection.bus().await?;
    let start = args.from.as_ref().or(args.since.as_ref());
    let entries = match start {
        Some(from) => bus
            .range(&args.stream, from, args.count)
            .await
            .map_err(|e| args.connection.failed("XRANGE", e))?,
        None => bus
            .last_entries(&args.stream, args.count)
            .await
            .map_err(|e| args.connection.failed("XREVRANGE", e))?,
    };
    for entry in &entries {
        match args.output.format() {
            Format::Json => println!("{}", to_json(entry)),
            Format::Text => println!("{}", to_text(entry)),
        }
    }
    Ok(())
}

fn envelope(entry: &RawEntry) -> Result<Envelope, String> {
    Envelope::from_fields(
        &entry.id,
        entry.fields.iter().map(|(k, v)| (k.as_bytes(), &v[..])),
    )
    .map_err(|e| e.to_string())
}

/// `<entry id>  <time>  <type> v<version>  <event id>  <data>`.
fn to_text(entry: &RawEntry) -> String {
    match envelope(entry) {
        Ok(e) => format!(
            "{}  {}  {} v{}  {}  {}",
            entry.id,
            e.time_rfc3339().as_deref().unwrap_or("-"),
            e.type_name,
            e.dataversion,
            e.id,
            String::from_utf8_lossy(&e.data)
        ),
        Err(reason) => {
            let fields: Vec<String> = entry
                .fields
                .iter()
                .map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(v)))
                .collect();
            format!(
                "{}  (not an event: {reason})  {}",
                entry.id,
                fields.join(" ")
            )
        }
    }
}

fn to_json(entry: &RawEntry) -> Value {
    match envelope(entry) {
        Ok(e) => json!({
            "entry_id": entry.id,
            "id": e.id.to_string(),
            "type": e.type_name,
            "dataversion": e.dataversion,
            "source": e.source,
            "time": e.time_rfc3339(),
            "tenantid": e.tenant_id,
            "correlationid": e.correlation_id,
            "data": serde_json::from_slice::<Value>(&e.data)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&e.data).into_owned())),
        }),
        Err(reason) => {
            let fields: serde_json::Map<String, Value> = entry
                .fields
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        Value::String(String::from_utf8_lossy(v).into_owned()),
                    )
                })
                .collect();
            json!({ "entry_id": entry.id, "error": reason, "fields": fields })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_the_first_entry_id_of_that_millisecond() {
        assert_eq!(
            parse_since("2024-11-24T10:00:00.123Z").unwrap(),
            "1732442400123-0"
        );
        assert_eq!(
            parse_since("2024-11-24T11:00:00+01:00").unwrap(),
            "1732442400000-0"
        );
        assert!(parse_since("yesterday").is_err());
        assert!(parse_since("1960-01-01T00:00:00Z").is_err());
    }

    #[test]
    fn entry_ids_are_checked_before_asking_redis() {
        assert!(parse_entry_id("1732442400123-0").is_ok());
        assert!(parse_entry_id("1732442400123").is_ok());
        assert!(parse_entry_id("abc").is_err());
        assert!(parse_entry_id("1-").is_err());
    }
}
