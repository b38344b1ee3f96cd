//! The `dlq_*` fields of a dead letter: what a worker adds to an entry it
//! gives up on ([`Burial`]), and how a [`DeadLetter`] is read back from
//! them. Other languages read the same fields (DESIGN.md, "Wire format").
//! Their names live with the transports ([`field`] is
//! `transport::dead_letter_field`), which merge a second burial of an entry
//! by the same group into the first and read the group of a dead letter
//! they put back.

use time::OffsetDateTime;

use crate::envelope::{Envelope, Rfc3339Millis};
use crate::error::EnvelopeError;
use crate::transport::RawEntry;

pub use crate::transport::dead_letter_field as field;

/// One dead letter.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeadLetter {
    /// Entry id in the dead-letter stream: what [`DeadLetters::retry`](super::DeadLetters::retry) takes.
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
    /// On a stream declared with partitions, the partition it was read
    /// from, where a retry puts it back.
    pub partition: Option<u32>,
    /// The original entry's fields (the `dlq_…` ones left out), as written.
    pub fields: Vec<(String, Vec<u8>)>,
    /// The original event, or why its fields are not an envelope (a poison
    /// entry written by something other than tidings).
    pub envelope: Result<Envelope, EnvelopeError>,
}

impl DeadLetter {
    pub(super) fn from_raw(raw: RawEntry) -> DeadLetter {
        let mut letter = DeadLetter {
            id: raw.id,
            entry_id: String::new(),
            group: String::new(),
            handler: None,
            error: String::new(),
            attempts: 0,
            first_failure: None,
            last_failure: None,
            partition: None,
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
                field::ATTEMPTS => {
                    // Attempts add up over burials; a sum past u32 saturates.
                    letter.attempts = text(&value)
                        .parse::<u64>()
                        .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX))
                }
                field::FIRST_FAILURE => letter.first_failure = time(&value),
                field::LAST_FAILURE => letter.last_failure = time(&value),
                field::ENTRY_ID => letter.entry_id = text(&value),
                field::PARTITION => letter.partition = text(&value).parse().ok(),
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

/// Why a worker gave up on an entry: the fields it adds to the entry's own
/// when it moves it to dead letters.
#[derive(Debug)]
pub(crate) struct Burial<'a> {
    pub(crate) group: &'a str,
    /// The handler(s) that failed, comma-separated; `None` when none ran.
    pub(crate) handler: Option<String>,
    pub(crate) error: &'a str,
    pub(crate) attempts: u32,
    /// Unix milliseconds.
    pub(crate) first_failure: i64,
    /// Unix milliseconds.
    pub(crate) last_failure: i64,
    pub(crate) entry_id: &'a str,
    pub(crate) consumer: &'a str,
    /// The partition the entry was read from, on a partitioned stream.
    pub(crate) partition: Option<u32>,
    /// The priority level it was read from (`high`, `low`), if not the
    /// stream itself.
    pub(crate) level: Option<&'a str>,
}

impl Burial<'_> {
    /// The `dlq_*` fields, in the order they are written.
    pub(crate) fn fields(self) -> Vec<(&'static str, String)> {
        let rfc3339 = |ms| Rfc3339Millis::from_millis(ms).as_str().to_owned();
        let mut extra = vec![(field::GROUP, self.group.to_owned())];
        if let Some(h) = self.handler {
            extra.push((field::HANDLER, h));
        }
        extra.extend([
            (field::ERROR, self.error.to_owned()),
            (field::ATTEMPTS, self.attempts.to_string()),
            (field::FIRST_FAILURE, rfc3339(self.first_failure)),
            (field::LAST_FAILURE, rfc3339(self.last_failure)),
            (field::ENTRY_ID, self.entry_id.to_owned()),
            (field::CONSUMER, self.consumer.to_owned()),
        ]);
        if let Some(k) = self.partition {
            extra.push((field::PARTITION, k.to_string()));
        }
        if let Some(level) = self.level {
            extra.push((field::LEVEL, level.to_owned()));
        }
        extra
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burial_reads_back_as_the_dead_letter_it_wrote() {
        let env = Envelope::new(
            "svc",
            "file.uploaded",
            2,
            "schemas/x/v2.json",
            b"{}".to_vec(),
        );
        let mut fields: Vec<(String, Vec<u8>)> = env
            .to_fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_vec()))
            .collect();
        let burial = Burial {
            group: "indexer",
            handler: Some("index_file".to_owned()),
            error: "index_file: boom",
            attempts: 3,
            first_failure: 1_732_442_400_123,
            last_failure: 1_732_442_401_456,
            entry_id: "1732442400000-0",
            consumer: "worker-1",
            partition: Some(3),
            level: Some("high"),
        };
        for (k, v) in burial.fields() {
            fields.push((k.to_owned(), v.into_bytes()));
        }
        let letter = DeadLetter::from_raw(RawEntry::new("9-0".to_owned(), fields));
        assert_eq!(letter.group, "indexer");
        assert_eq!(letter.handler.as_deref(), Some("index_file"));
        assert_eq!(letter.error, "index_file: boom");
        assert_eq!(letter.attempts, 3);
        assert_eq!(letter.entry_id, "1732442400000-0");
        assert_eq!(letter.partition, Some(3));
        // The level stays among the raw fields, read by a retry.
        assert!(!letter.fields.iter().any(|(k, _)| k.starts_with("dlq_")));
        assert_eq!(
            letter
                .first_failure
                .map(|t| t.unix_timestamp_nanos() / 1_000_000),
            Some(1_732_442_400_123)
        );
        assert_eq!(
            letter
                .last_failure
                .map(|t| t.unix_timestamp_nanos() / 1_000_000),
            Some(1_732_442_401_456)
        );
        assert_eq!(letter.envelope.as_ref().ok(), Some(&env));
    }
}
