//! Workers over many tenants: which tenants a worker reads (a list, or
//! every tenant found under the namespace, looked for again periodically),
//! and the tasks a worker over tenants runs once for all of them: the
//! rescan, and one mover of delayed events over every stream.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::delay::DUE_BATCH;
use super::pause;
use crate::bus::{check_name, Bus};
use crate::envelope::now_millis;
use crate::error::Error;
use crate::transport::StreamTransport;

/// How often [`Tenants::discover`] looks for new tenants by default.
const DEFAULT_RESCAN: Duration = Duration::from_secs(30);

/// The tenants a worker reads ([`ConsumerBuilder::tenants`](super::ConsumerBuilder::tenants)).
///
/// ```
/// use std::time::Duration;
/// use tidings::Tenants;
///
/// let some = Tenants::list(["acme", "globex"]);
/// let all = Tenants::discover().rescan(Duration::from_secs(10));
/// # let _ = (some, all);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Tenants {
    pub(super) kind: Kind,
    pub(super) rescan: Duration,
}

#[derive(Debug, Clone)]
pub(super) enum Kind {
    List(Vec<String>),
    Discover,
}

impl Tenants {
    /// These tenants. Each name follows the rule of [`Bus::tenant`]
    /// (`start()` fails with [`Error::InvalidName`] otherwise); a name
    /// given twice is read once.
    pub fn list<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Tenants {
            kind: Kind::List(names.into_iter().map(Into::into).collect()),
            rescan: DEFAULT_RESCAN,
        }
    }

    /// Every tenant that has a stream of the worker's handlers under the
    /// namespace (`ns:{<tenant>:<stream>}`), found with `SCAN` at the start
    /// and again every [`Tenants::rescan`] (default 30 s). A tenant found
    /// by a later scan is read from the start of its stream: its events
    /// were published before any worker of the group could see them. Keys
    /// whose tenant part is not a valid tenant name, and the reply streams
    /// (`ns:{reply:<instance>}`), are no tenant's.
    pub fn discover() -> Self {
        Tenants {
            kind: Kind::Discover,
            rescan: DEFAULT_RESCAN,
        }
    }

    /// How often [`Tenants::discover`] looks for new tenants (at least
    /// every 10 ms); a list is not looked for.
    pub fn rescan(mut self, every: Duration) -> Self {
        self.rescan = every.max(Duration::from_millis(10));
        self
    }
}

/// The tenants of `list`, checked, each once, in order.
pub(super) fn checked(list: &[String]) -> Result<Vec<String>, Error> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(list.len());
    for name in list {
        check_name("tenant", name)?;
        if seen.insert(name.as_str()) {
            out.push(name.clone());
        }
    }
    Ok(out)
}

/// The tenants that have one of `streams` under the namespace of `bus`
/// (a root bus), with one `SCAN` per stream.
///
/// ```text
/// SCAN <cursor> MATCH ns:{*:<stream>} COUNT 1000 TYPE stream
/// ```
pub(super) async fn discover<T: StreamTransport>(
    transport: &T,
    bus: &Bus,
    streams: &BTreeSet<&'static str>,
) -> Result<BTreeSet<String>, Error> {
    let ns = bus.namespace();
    let mut found = BTreeSet::new();
    for stream in streams {
        let pattern = format!("{ns}:{{*:{stream}}}");
        let keys = transport.stream_keys(&pattern).await?;
        for key in keys {
            let tenant = key
                .strip_prefix(ns)
                .and_then(|k| k.strip_prefix(":{"))
                .and_then(|k| k.strip_suffix('}'))
                .and_then(|k| k.strip_suffix(stream))
                .and_then(|k| k.strip_suffix(':'));
            // `*` matches `:` too: a key whose tenant part is no valid
            // name is not a tenant's stream (a reply stream, another
            // stream's partition).
            if let Some(t) = tenant.filter(|t| check_name("tenant", t).is_ok()) {
                found.insert(t.to_owned());
            }
        }
    }
    Ok(found)
}

/// The delayed-event sets of a worker over tenants and their streams:
/// `(ns:{t:stream}:delayed, ns:{t:stream})`, added to as tenants are found.
pub(super) type DelayedKeys = Arc<Mutex<Vec<(String, String)>>>;

/// Moves the delayed events of every stream of `keys` as they fall due,
/// in one call per poll for all of them ([`StreamTransport::deliver_due_many`]),
/// until the worker stops: instead of a task and a call per stream.
pub(super) async fn deliver_due_many_loop<T: StreamTransport>(
    transport: T,
    keys: DelayedKeys,
    poll: Duration,
    mut stop: watch::Receiver<bool>,
) {
    const CALL_BOUND: Duration = Duration::from_secs(2);
    loop {
        // Only pushed to: a panic elsewhere cannot leave it inconsistent.
        let pairs = keys.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let now = now_millis();
        let call = transport.deliver_due_many(&pairs, now, DUE_BATCH);
        let wait = match tokio::time::timeout(CALL_BOUND, call).await {
            Ok(Ok(done)) => {
                if done.malformed > 0 {
                    tracing::warn!(
                        malformed = done.malformed,
                        "delayed members that are no entry's fields were removed"
                    );
                }
                if done.moved + done.malformed >= DUE_BATCH {
                    Duration::ZERO
                } else {
                    match done.next_due {
                        Some(at) => {
                            let ms = u64::try_from(at.saturating_sub(now_millis())).unwrap_or(0);
                            Duration::from_millis(ms).clamp(Duration::from_millis(1), poll)
                        }
                        None => poll,
                    }
                }
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "moving delayed events failed; trying again");
                poll
            }
            Err(_) => poll,
        };
        if pause(wait, &mut stop).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::StartFrom;

    #[tokio::test]
    async fn discover_finds_each_tenant_with_a_stream_and_nothing_else() {
        let bus = Bus::in_memory();
        let crate::bus::Backend::Memory(t) = bus.backend().clone() else {
            unreachable!("an in-memory bus")
        };
        for key in [
            "tidings:{acme:contextual}",
            "tidings:{globex:contextual}",
            "tidings:{globex:other}",
            "tidings:{contextual}",
            "tidings:{reply:contextual}",
            "tidings:{a:b:contextual}",
            "tidings:{acme:contextual#3}",
            "elsewhere:{initech:contextual}",
        ] {
            t.create_group(key, "g", &StartFrom::New).await.unwrap();
        }
        let streams = BTreeSet::from(["contextual"]);
        let found = discover(&t, &bus, &streams).await.unwrap();
        assert_eq!(
            found.into_iter().collect::<Vec<_>>(),
            ["acme".to_owned(), "globex".to_owned()]
        );
    }

    #[test]
    fn a_list_is_checked_and_read_once_per_name() {
        let names: Vec<String> = ["acme", "globex", "acme"].map(String::from).to_vec();
        assert_eq!(checked(&names).unwrap(), ["acme", "globex"]);
        for bad in ["a}b", "reply", "x y", ""] {
            let names = vec!["acme".to_owned(), bad.to_owned()];
            match checked(&names) {
                Err(Error::InvalidName(e)) => assert_eq!(e.what, "tenant"),
                other => panic!("{bad:?} should be refused, got {other:?}"),
            }
        }
    }
}
