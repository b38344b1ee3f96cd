//! `tidings tail`: the entries of a stream, read with `XRANGE` (no consumer
//! group, nothing acknowledged), from an entry id or a point in time, and
//! with `--follow` every entry added after them, as it is added (`XREAD
//! BLOCK`). With `--schemas`, each entry's data is checked against the JSON
//! Schema of its type and version. Colour at a terminal only (and never
//! under `NO_COLOR`).

use std::io::Write;
use std::path::PathBuf;

use anstyle::{AnsiColor, Style};
use clap::Args;
use futures::StreamExt;
use serde_json::{json, Value};
use tidings_runtime::transport::RawEntry;
use tidings_runtime::Envelope;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::ops::{self, Connection, Failure, Format, Output};
use crate::schema::{Validators, Verdict};

const EXAMPLES: &str = "Examples:
  tidings tail contextual --count 20
  tidings tail contextual --since 2024-11-24T10:00:00Z --json
  tidings tail contextual --follow --schemas schemas/";

#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
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
    /// Go on printing entries as they are added, until interrupted (Ctrl-C).
    /// With `--from` / `--since`, every entry from there on is printed.
    #[arg(long, short = 'f')]
    follow: bool,
    /// Check each entry's data against the JSON Schema of its type and
    /// version in this `schemas/` tree (`<stream>/<type>/v<N>.json`).
    #[arg(long, value_name = "DIR")]
    schemas: Option<PathBuf>,
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
    let validators = match &args.schemas {
        Some(dir) => Some(Validators::from_dir(dir).map_err(|e| Failure::Usage(e.0))?),
        None => None,
    };
    let bus = args.connection.bus().await?;
    let start = args.from.as_ref().or(args.since.as_ref());
    let printer = Printer {
        stream: &args.stream,
        format: args.output.format(),
        validators: validators.as_ref(),
    };
    let mut out = anstream::stdout();
    // Following from a start: every entry after the id just before it.
    if let (true, Some(from)) = (args.follow, start) {
        return follow(&bus, &args, &printer, &mut out, before(from)).await;
    }
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
        if printer.print(&mut out, entry).is_err() {
            return Ok(());
        }
    }
    if args.follow {
        let after = entries
            .last()
            .map_or_else(|| "0-0".to_owned(), |e| e.id.clone());
        return follow(&bus, &args, &printer, &mut out, after).await;
    }
    Ok(())
}

/// Prints every entry after `after` as it is added, until Ctrl-C or until
/// stdout is closed (`| head`).
async fn follow(
    bus: &tidings_runtime::Bus,
    args: &TailArgs,
    printer: &Printer<'_>,
    out: &mut impl Write,
    after: String,
) -> Result<(), Failure> {
    let mut entries = bus
        .follow(&args.stream, Some(&after))
        .await
        .map_err(|e| args.connection.failed("XREAD", e))?;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let next = tokio::select! {
            next = entries.next() => next,
            _ = &mut interrupted => return Ok(()),
        };
        match next {
            Some(Ok(entry)) => {
                if printer.print(out, &entry).is_err() {
                    return Ok(());
                }
            }
            // The reading goes on by itself once Redis answers again.
            Some(Err(e)) => eprintln!("warning: {}", args.connection.failed("XREAD", e).message()),
            None => return Ok(()),
        }
    }
}

/// The entry id just before `id` (`<ms>-<seq>` or `<ms>`), so that reading
/// after it starts at `id`.
fn before(id: &str) -> String {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    let (ms, seq) = (
        ms.parse::<u64>().unwrap_or(0),
        seq.parse::<u64>().unwrap_or(0),
    );
    match (ms, seq) {
        (_, 1..) => format!("{ms}-{}", seq - 1),
        (1.., 0) => format!("{}-{}", ms - 1, u64::MAX),
        (0, 0) => "0-0".to_owned(),
    }
}

/// How entries are printed: text or JSON, and checked when schemas are given.
struct Printer<'a> {
    stream: &'a str,
    format: Format,
    validators: Option<&'a Validators>,
}

impl Printer<'_> {
    /// One line for `entry`; an error only when stdout is closed.
    fn print(&self, out: &mut impl Write, entry: &RawEntry) -> std::io::Result<()> {
        let envelope = envelope(entry);
        let verdict = match (&envelope, self.validators) {
            (Ok(e), Some(v)) => Some(match serde_json::from_slice::<Value>(&e.data) {
                Ok(data) => v.check(self.stream, &e.type_name, e.dataversion, &data),
                Err(err) => Verdict::Invalid(vec![format!("/: the data is not JSON: {err}")]),
            }),
            _ => None,
        };
        match self.format {
            Format::Json => {
                let mut row = to_json(entry, &envelope);
                if let (Some(verdict), Some(map)) = (&verdict, row.as_object_mut()) {
                    map.insert("schema".to_owned(), verdict_json(verdict));
                }
                writeln!(out, "{row}")
            }
            Format::Text => {
                writeln!(out, "{}", to_text(entry, &envelope, verdict.as_ref()))
            }
        }
    }
}

fn verdict_json(verdict: &Verdict) -> Value {
    match verdict {
        Verdict::Valid => json!({ "valid": true }),
        Verdict::Invalid(errors) => json!({ "valid": false, "errors": errors }),
        Verdict::NoSchema => {
            json!({ "valid": null, "errors": ["no schema for this type and version"] })
        }
    }
}

fn envelope(entry: &RawEntry) -> Result<Envelope, String> {
    Envelope::from_fields(
        &entry.id,
        entry.fields.iter().map(|(k, v)| (k.as_bytes(), &v[..])),
    )
    .map_err(|e| e.to_string())
}

const DIM: Style = Style::new().dimmed();
const TYPE: Style = Style::new()
    .bold()
    .fg_color(Some(anstyle::Color::Ansi(AnsiColor::Cyan)));
const GOOD: Style = Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Green)));
const BAD: Style = Style::new()
    .bold()
    .fg_color(Some(anstyle::Color::Ansi(AnsiColor::Red)));
const WARN: Style = Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Yellow)));

/// `<entry id>  <time>  <type> v<version>  <event id>  <data>`, then the
/// schema's verdict when one was asked for: `ok`, `INVALID: <errors>` or
/// `no schema`.
fn to_text(
    entry: &RawEntry,
    envelope: &Result<Envelope, String>,
    verdict: Option<&Verdict>,
) -> String {
    let mut line = match envelope {
        Ok(e) => format!(
            "{DIM}{}{DIM:#}  {DIM}{}{DIM:#}  {TYPE}{} v{}{TYPE:#}  {}  {}",
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
                "{DIM}{}{DIM:#}  {BAD}(not an event: {reason}){BAD:#}  {}",
                entry.id,
                fields.join(" ")
            )
        }
    };
    match verdict {
        None => {}
        Some(Verdict::Valid) => line.push_str(&format!("  {GOOD}ok{GOOD:#}")),
        Some(Verdict::Invalid(errors)) => {
            line.push_str(&format!("  {BAD}INVALID: {}{BAD:#}", errors.join("; ")));
        }
        Some(Verdict::NoSchema) => line.push_str(&format!("  {WARN}no schema{WARN:#}")),
    }
    line
}

fn to_json(entry: &RawEntry, envelope: &Result<Envelope, String>) -> Value {
    match envelope {
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

    #[test]
    fn following_from_an_id_starts_at_it() {
        assert_eq!(before("1732442400123-5"), "1732442400123-4");
        assert_eq!(
            before("1732442400123-0"),
            "1732442400122-18446744073709551615"
        );
        assert_eq!(
            before("1732442400123"),
            "1732442400122-18446744073709551615"
        );
        assert_eq!(before("0-0"), "0-0");
    }
}
