//! Replay: the entries of a stream in a range, handed to handlers in this
//! process, for debugging and reprocessing, without touching any consumer
//! group.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::FutureExt;

use crate::bus::{on_streams, Bus};
use crate::envelope::Envelope;
use crate::error::Error;
use crate::handler::erase::{Erase, ErasedHandler};
use crate::handler::{Context, Handler, IntoHandler, States};
use crate::id::{check_entry_id, order_entry_ids};
use crate::transport::{RawEntry, StreamTransport};
use crate::Event;

/// Entries read per `XRANGE` while replaying.
const PAGE: usize = 500;

impl Bus {
    /// Replays a stream (of this bus's tenant): reads its entries in a range
    /// (oldest first; by default all of them), decodes each with upcasting
    /// and hands it to the handlers of its type. No consumer group is read,
    /// moved or acknowledged, and the events handlers return are published
    /// only with [`Replay::publish_returned`].
    ///
    /// ```
    /// # #[tidings::event(stream = "contextual", version = 1)]
    /// # struct FileUploaded { file_id: String }
    /// # #[tidings::handler(group = "indexer")]
    /// # async fn index(e: FileUploaded, ctx: tidings::Context) -> tidings::HandlerResult { Ok(()) }
    /// # async fn run() -> Result<(), tidings::Error> {
    /// use std::time::{Duration, SystemTime};
    /// let bus = tidings::Bus::in_memory();
    /// let report = bus
    ///     .replay("contextual")?
    ///     .since(SystemTime::now() - Duration::from_secs(3600))
    ///     .handler(index)
    ///     .run()
    ///     .await?;
    /// println!("{} read, {} handled, {} failed", report.read, report.handled, report.failed.len());
    /// # Ok(()) }
    /// ```
    pub fn replay(&self, stream: &str) -> Result<Replay, Error> {
        Ok(Replay {
            key: self.stream_key(stream)?,
            bus: self.clone(),
            from: "-".to_owned(),
            until: None,
            handlers: Vec::new(),
            states: States::default(),
            publish: false,
        })
    }
}

/// A replay being set up: its range, handlers and shared state; then
/// [`Replay::run`].
#[must_use]
pub struct Replay {
    bus: Bus,
    key: String,
    from: String,
    until: Option<String>,
    handlers: Vec<Arc<dyn ErasedHandler>>,
    states: States,
    publish: bool,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("key", &self.key)
            .field("from", &self.from)
            .field("until", &self.until)
            .field(
                "handlers",
                &self.handlers.iter().map(|h| h.name()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplayReport {
    /// Entries read in the range.
    pub read: u64,
    /// Handler runs that succeeded.
    pub handled: u64,
    /// Handler runs that failed (a payload that does not decode, an error,
    /// a panic): entry id, handler and error. Nothing is retried.
    pub failed: Vec<ReplayFailure>,
    /// Entries of types no handler takes, by type.
    pub skipped: BTreeMap<String, u64>,
    /// Entries that are not events (no valid envelope).
    pub not_events: u64,
}

/// One failed handler run of a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplayFailure {
    /// The stream entry id.
    pub entry_id: String,
    /// The handler, or `-` for an entry that is not an event.
    pub handler: &'static str,
    /// What went wrong.
    pub error: String,
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Replay {
    /// From the entries published at `t` on.
    pub fn since(mut self, t: SystemTime) -> Self {
        self.from = format!("{}-0", millis(t));
        self
    }

    /// From the entry `id` on (included).
    pub fn from_id(mut self, id: impl Into<String>) -> Self {
        self.from = id.into();
        self
    }

    /// Up to the entries published before `t`.
    pub fn until(mut self, t: SystemTime) -> Self {
        self.until = Some(match millis(t).checked_sub(1) {
            Some(ms) => format!("{ms}-{}", u64::MAX),
            None => "0-0".to_owned(),
        });
        self
    }

    /// Up to the entry `id` (included).
    pub fn until_id(mut self, id: impl Into<String>) -> Self {
        self.until = Some(id.into());
        self
    }

    /// Adds a handler (a `#[handler]` function): it gets every entry of its
    /// event's type in the range.
    pub fn handler<H, Args>(mut self, handler: H) -> Self
    where
        H: IntoHandler<Args>,
        <H::Handler as Handler>::Event: Event,
    {
        self.handlers.push(Arc::new(Erase(handler.into_handler())));
        self
    }

    /// Gives handlers a shared value, which they take as `State<T>`.
    pub fn state<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.states.insert(value);
        self
    }

    /// Publishes the events handlers return, as a worker does (default:
    /// not, so that replaying does not repeat consequences).
    pub fn publish_returned(mut self, yes: bool) -> Self {
        self.publish = yes;
        self
    }

    /// Reads the range and runs the handlers, one entry at a time in stream
    /// order; returns what it did. Fails before reading anything on a
    /// missing handler or state, or a bound that is not an entry id.
    ///
    /// ```text
    /// XRANGE <key> <from> <until|+> COUNT 500      (one page at a time)
    /// ```
    pub async fn run(self) -> Result<ReplayReport, Error> {
        if self.handlers.is_empty() {
            return Err(Error::NoHandler);
        }
        if self.from != "-" {
            check_entry_id("replay bound", &self.from, &self.key, "")?;
        }
        if let Some(until) = &self.until {
            check_entry_id("replay bound", until, &self.key, "")?;
        }
        for h in &self.handlers {
            if let Some(missing) = h.states().into_iter().find(|s| !self.states.contains(s)) {
                return Err(Error::MissingState {
                    handler: h.name(),
                    state: missing.name,
                });
            }
        }
        let states = Arc::new(self.states);
        let (_never, stop) = tokio::sync::watch::channel(false);
        let mut report = ReplayReport::default();
        let mut from = self.from.clone();
        'pages: loop {
            let page: Vec<RawEntry> = self
                .bus
                .patiently("XRANGE", || async {
                    on_streams!(self.bus.backend(), t => t.range(&self.key, &from, PAGE))
                })
                .await?;
            let full = page.len() >= PAGE;
            let Some(last) = page.last().map(|e| e.id.clone()) else {
                break;
            };
            for entry in page {
                if self
                    .until
                    .as_deref()
                    .is_some_and(|u| order_entry_ids(&entry.id, u).is_gt())
                {
                    break 'pages;
                }
                report.read += 1;
                let envelope = match Envelope::from_fields(
                    &entry.id,
                    entry.fields.iter().map(|(k, v)| (k.as_bytes(), &v[..])),
                ) {
                    Ok(env) => Arc::new(env),
                    Err(e) => {
                        report.not_events += 1;
                        report.failed.push(ReplayFailure {
                            entry_id: entry.id.clone(),
                            handler: "-",
                            error: e.to_string(),
                        });
                        continue;
                    }
                };
                let takers: Vec<&Arc<dyn ErasedHandler>> = self
                    .handlers
                    .iter()
                    .filter(|h| h.type_name() == envelope.type_name)
                    .collect();
                if takers.is_empty() {
                    *report
                        .skipped
                        .entry(envelope.type_name.clone())
                        .or_default() += 1;
                    continue;
                }
                for h in takers {
                    let ctx = Context::delivery(
                        envelope.clone(),
                        entry.id.clone(),
                        h.options().group,
                        self.bus.clone(),
                        states.clone(),
                        stop.clone(),
                    );
                    let outcome = match h.dispatch(&envelope, ctx.clone()) {
                        Ok(future) => match AssertUnwindSafe(future).catch_unwind().await {
                            Ok(Ok(outcome)) => Ok(outcome),
                            Ok(Err(e)) => Err(e.to_string()),
                            Err(_) => Err("handler panicked".to_owned()),
                        },
                        Err(e) => Err(e.to_string()),
                    };
                    let published = match outcome {
                        Ok(outcome) if self.publish => ctx
                            .publish_outcome(&outcome)
                            .await
                            .map_err(|e| format!("publishing the handler's events failed: {e}")),
                        Ok(_) => Ok(()),
                        Err(e) => Err(e),
                    };
                    match published {
                        Ok(()) => report.handled += 1,
                        Err(error) => report.failed.push(ReplayFailure {
                            entry_id: entry.id.clone(),
                            handler: h.name(),
                            error,
                        }),
                    }
                }
            }
            if !full {
                break;
            }
            from = format!("({last}");
        }
        Ok(report)
    }
}
