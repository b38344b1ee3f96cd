//! Dead letters: entries no handler could process, kept in `ns:{stream}:dlq`
//! with every original field and why they failed, to be listed, retried or
//! purged.

use std::fmt;

use time::OffsetDateTime;

use crate::bus::{Backend, Bus, Error};
use crate::envelope::{Envelope, EnvelopeError};
use crate::transport::{RawEntry, Transport, TransportError};

/// Names of the fields a dead letter adds to the original entry's fields.
///
/// They all start with `dlq_`: CloudEvents attribute names are lower-case
/// letters and digits only, so they never collide with an original field.
pub mod field {
    /// The consumer group that gave up on the entry.
    pub const GROUP: &str = "dlq_group";
    /// The handler (or handlers, comma-separated) that failed; absent when
    /// the entry is not an envelope and no handler ran.
    pub const HANDLER: &str = "dlq_handler";
    /// The error text.
    pub const ERROR: &str = "dlq_error";
    /// Attempts made, the last one included.
    pub const ATTEMPTS: &str = "dlq_attempts";
    /// Time of the first failure this worker saw (RFC 3339, milliseconds).
    pub const FIRST_FAILURE: &str = "dlq_first_failure";
    /// Time of the last failure (RFC 3339, milliseconds).
    pub const LAST_FAILURE: &str = "dlq_last_failure";
    /// Entry id in the original stream.
    pub const ENTRY_ID: &str = "dlq_entry_id";
    /// The consumer that wrote the dead letter.
    pub const CONSUMER: &str = "dlq_consumer";
}

/// One dead letter.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeadLetter {
    /// Entry id in the dead-letter stream: what [`DeadLetters::retry`] takes.
    pub id: String,
    /// Entry id in the original stream.
    pub entry_id: String,
    /// The consumer group that gave up on it.
    pub group: String,
    /// The handler(s) that failed, if any ran.
    pub handler: Option<String>,
    /// The error text.
    pub error: String,
    /// Attempts made.
    pub attempts: u32,
    /// Time of the first failure.
    pub first_failure: Option<OffsetDateTime>,
    /// Time of the last failure.
    pub last_failure: Option<OffsetDateTime>,
    /// The original entry's fields (the `dlq_…` ones left out), as written.
    pub fields: Vec<(String, Vec<u8>)>,
    /// The original event, or why its fields are not an envelope (a poison
    /// entry written by something other than tidings).
    pub envelope: Result<Envelope, EnvelopeError>,
}

impl DeadLetter {
    fn from_raw(raw: RawEntry) -> DeadLetter {
        let mut letter = DeadLetter {
            id: raw.id,
            entry_id: String::new(),
            group: String::new(),
            handler: None,
            error: String::new(),
            attempts: 0,
            first_failure: None,
            last_failure: None,
            fields: Vec::new(),
            envelope: Err(EnvelopeError::Missing {
                field: "id",
                at: String::new(),
            }),
        };
        let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
        let time = |v: &[u8]| {
            OffsetDateTime::parse(
                &String::from_utf8_lossy(v),
                &time::format_description::well_known::Rfc3339,
            )
            .ok()
        };
        for (name, value) in raw.fields {
            match name.as_str() {
                field::GROUP => letter.group = text(&value),
                field::HANDLER => letter.handler = Some(text(&value)),
                field::ERROR => letter.error = text(&value),
                field::ATTEMPTS => letter.attempts = text(&value).parse().unwrap_or(0),
                field::FIRST_FAILURE => letter.first_failure = time(&value),
                field::LAST_FAILURE => letter.last_failure = time(&value),
                field::ENTRY_ID => letter.entry_id = text(&value),
                n if n.starts_with("dlq_") => {}
                _ => letter.fields.push((name, value)),
            }
        }
        let at = if letter.entry_id.is_empty() {
            letter.id.clone()
        } else {
            letter.entry_id.clone()
        };
        letter.envelope = Envelope::from_fields(
            &at,
            letter
                .fields
                .iter()
                .map(|(k, v)| (k.as_bytes(), v.as_slice())),
        );
        letter
    }
}

/// The dead letters of one stream, from [`Bus::dead_letters`].
///
/// ```
/// # async fn run() -> Result<(), tidings::Error> {
/// let bus = tidings::Bus::in_memory();
/// let dlq = bus.dead_letters("contextual");
/// for letter in dlq.list(10).await? {
///     println!("{} failed in {}: {}", letter.entry_id, letter.group, letter.error);
/// }
/// dlq.retry_all().await?;       // back into the stream, same event ids
/// assert_eq!(dlq.len().await?, 0);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DeadLetters {
    bus: Bus,
    stream_key: String,
    dlq_key: String,
}

impl fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetters")
            .field("stream", &self.stream_key)
            .field("key", &self.dlq_key)
            .finish()
    }
}

/// Runs one transport call on whichever transport the bus has.
macro_rules! on_transport {
    ($self:ident, $t:ident => $call:expr) => {
        match $self.bus.backend() {
            Backend::Redis { streams: $t, .. } => $call.await,
            Backend::Memory($t) => $call.await,
        }
    };
}

/// Dead letters moved back per script call by [`DeadLetters::retry_all`].
const RETRY_PAGE: usize = 100;

impl DeadLetters {
    pub(crate) fn new(bus: Bus, stream: &str) -> Self {
        DeadLetters {
            stream_key: bus.stream_key(stream),
            dlq_key: bus.dead_letter_key(stream),
            bus,
        }
    }

    /// The key of the dead-letter stream: `ns:{stream}:dlq`.
    pub fn key(&self) -> &str {
        &self.dlq_key
    }

    /// The oldest `n` dead letters.
    ///
    /// ```text
    /// XRANGE ns:{stream}:dlq - + COUNT <n>
    /// ```
    pub async fn list(&self, n: usize) -> Result<Vec<DeadLetter>, Error> {
        let raw: Result<Vec<RawEntry>, TransportError> =
            on_transport!(self, t => t.dead_letters(&self.dlq_key, None, n));
        Ok(raw?.into_iter().map(DeadLetter::from_raw).collect())
    }

    /// Number of dead letters.
    ///
    /// ```text
    /// XLEN ns:{stream}:dlq
    /// ```
    pub async fn len(&self) -> Result<usize, Error> {
        Ok(on_transport!(self, t => t.dead_letter_count(&self.dlq_key))?)
    }

    /// Whether there is no dead letter.
    pub async fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len().await? == 0)
    }

    /// Puts one dead letter back into its stream, with its original fields
    /// (the same event id; an older version is upcast by the reader as
    /// usual), and deletes it from dead letters, in one atomic step. Every
    /// group of the stream sees it again: groups that handled it already
    /// skip it if they keep an inbox. Returns the new entry id, or `None`
    /// when `id` is not a dead letter.
    ///
    /// ```text
    /// EVAL <script> 2 ns:{stream} ns:{stream}:dlq <id>
    ///   -- XRANGE the dead letter, XADD its original fields, XDEL it
    /// ```
    pub async fn retry(&self, id: &str) -> Result<Option<String>, Error> {
        let ids = [id.to_owned()];
        let mut out: Vec<Option<String>> =
            on_transport!(self, t => t.requeue(&self.stream_key, &self.dlq_key, &ids))?;
        Ok(out.pop().flatten())
    }

    /// Puts back every dead letter that is there when the call starts
    /// (oldest first, a page at a time); one that fails again while this
    /// runs is not picked up twice. Returns how many went back.
    pub async fn retry_all(&self) -> Result<usize, Error> {
        let mut left = self.len().await?;
        let mut moved = 0;
        while left > 0 {
            let page: Vec<RawEntry> = on_transport!(self, t =>
                t.dead_letters(&self.dlq_key, None, left.min(RETRY_PAGE)))?;
            if page.is_empty() {
                break;
            }
            left -= page.len();
            let ids: Vec<String> = page.into_iter().map(|e| e.id).collect();
            let out: Vec<Option<String>> =
                on_transport!(self, t => t.requeue(&self.stream_key, &self.dlq_key, &ids))?;
            moved += out.iter().filter(|o| o.is_some()).count();
        }
        Ok(moved)
    }

    /// Deletes every dead letter; returns how many there were.
    ///
    /// ```text
    /// EVAL "local n = XLEN KEYS[1]; DEL KEYS[1]; return n" 1 ns:{stream}:dlq
    /// ```
    pub async fn purge(&self) -> Result<usize, Error> {
        Ok(on_transport!(self, t => t.purge(&self.dlq_key))?)
    }
}
