//! One client of a shared subscription: what it is sent, in order, with
//! the catch-up from Redis of a stream resumed after an entry id, the
//! client's type filter, and the slow-client rule.

use std::sync::Arc;

use tidings_runtime::Bus;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::access::Grant;
use crate::frame::{Frame, Rendered};
use crate::hub::Membership;

/// Entries read from Redis per `XRANGE` while a resumed client catches up.
const CATCH_UP_PAGE: usize = 256;

/// Frames already in the ring that go out together, at most.
const BATCH: usize = 64;

/// What a client is sent next.
#[derive(Debug)]
pub(crate) enum Next {
    /// Frames, in order (several when catching up).
    Frames(Vec<Arc<Frame>>),
    /// The client fell more than the buffer behind: it is dropped, and told
    /// how many events it missed at that point.
    Overflow { missed: u64 },
    /// Redis failed while catching up: the client is dropped, and resumes
    /// from its last entry id when it reconnects.
    Failed(String),
    /// The subscription ended.
    End,
}

/// The stream a client resumes, until it has caught up.
#[derive(Debug)]
struct CatchUp {
    bus: Bus,
    stream: String,
}

/// A client of a shared subscription.
#[derive(Debug)]
pub(crate) struct Client {
    membership: Membership,
    grant: Grant,
    catch_up: Option<CatchUp>,
    /// The last entry id sent (streams): frames at or before it are not sent
    /// again when the live ring overlaps the catch-up.
    last: Option<EntryId>,
    last_text: Option<String>,
    /// The client fell behind while a batch was taken: said next.
    lagged: Option<u64>,
}

impl Client {
    /// A client of a pattern, or of a stream from now on.
    pub(crate) fn live(membership: Membership, grant: Grant) -> Self {
        Client {
            membership,
            grant,
            catch_up: None,
            last: None,
            last_text: None,
            lagged: None,
        }
    }

    /// A client of a stream that resumes after the entry id `after`: the
    /// entries since are read from Redis first, then the live ring.
    pub(crate) fn resumed(
        membership: Membership,
        grant: Grant,
        bus: Bus,
        stream: String,
        after: &str,
    ) -> Self {
        Client {
            membership,
            grant,
            catch_up: Some(CatchUp { bus, stream }),
            last: EntryId::parse(after),
            last_text: Some(after.to_owned()),
            lagged: None,
        }
    }

    /// What to send next, waiting for it.
    pub(crate) async fn next(&mut self) -> Next {
        if let Some(catch_up) = &self.catch_up {
            let from = format!("({}", self.last_text.as_deref().unwrap_or("0-0"));
            match catch_up
                .bus
                .range(&catch_up.stream, &from, CATCH_UP_PAGE)
                .await
            {
                Ok(entries) => {
                    if entries.len() < CATCH_UP_PAGE {
                        self.catch_up = None;
                    }
                    let mut frames = Vec::with_capacity(entries.len());
                    for entry in &entries {
                        self.passed(&entry.id);
                        if let Some(r) = Rendered::from_entry(entry) {
                            if self.grant.allows_type(&r.type_name) {
                                frames.push(Arc::new(Frame::Event(r)));
                            }
                        }
                    }
                    if !frames.is_empty() {
                        return Next::Frames(frames);
                    }
                }
                Err(e) => return Next::Failed(e.to_string()),
            }
        }
        if let Some(missed) = self.lagged.take() {
            return Next::Overflow { missed };
        }
        let first = loop {
            match self.membership.rx.recv().await {
                Ok(frame) => {
                    if let Some(frame) = self.keep(frame) {
                        break frame;
                    }
                }
                Err(RecvError::Lagged(missed)) => return Next::Overflow { missed },
                Err(RecvError::Closed) => return Next::End,
            }
        };
        // What else is already in the ring goes out with it: under load a
        // client gets one write for many events instead of one each.
        let mut frames = vec![first];
        while frames.len() < BATCH {
            match self.membership.rx.try_recv() {
                Ok(frame) => frames.extend(self.keep(frame)),
                Err(TryRecvError::Lagged(missed)) => {
                    self.lagged = Some(missed);
                    break;
                }
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        Next::Frames(frames)
    }

    /// The frame if this client is to be sent it: not at or before the last
    /// entry id sent, and of a type the grant allows.
    fn keep(&mut self, frame: Arc<Frame>) -> Option<Arc<Frame>> {
        if let Frame::Event(r) = &*frame {
            if let Some(id) = &r.entry_id {
                let parsed = EntryId::parse(id);
                if parsed.is_some() && parsed <= self.last {
                    return None;
                }
                self.passed(id);
            }
            if !self.grant.allows_type(&r.type_name) {
                return None;
            }
        }
        Some(frame)
    }

    fn passed(&mut self, id: &str) {
        if let Some(parsed) = EntryId::parse(id) {
            self.last = Some(parsed);
            self.last_text = Some(id.to_owned());
        }
    }
}

/// A stream entry id, ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct EntryId(u64, u64);

impl EntryId {
    pub(crate) fn parse(id: &str) -> Option<Self> {
        let (ms, seq) = id.split_once('-')?;
        Some(EntryId(ms.parse().ok()?, seq.parse().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::EntryId;

    #[test]
    fn entry_ids_order_as_in_redis() {
        assert!(EntryId::parse("10-0") > EntryId::parse("9-5"));
        assert!(EntryId::parse("9-10") > EntryId::parse("9-9"));
        assert_eq!(EntryId::parse("x-1"), None);
    }
}
