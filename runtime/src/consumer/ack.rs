//! The acknowledging task (finished entries batched into as few `XACK`s as
//! possible, with their inbox marks) and the heartbeat that keeps held
//! entries from looking idle.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::held::HeldId;
use super::{Done, GroupSpec};
use crate::transport::StreamTransport;

/// Acknowledges finished entries, every id that is waiting in one `XACK`
/// (pipelined after the inbox marks, with an inbox).
pub(super) async fn ack_loop<T: StreamTransport>(
    transport: T,
    spec: Arc<GroupSpec>,
    mut rx: mpsc::UnboundedReceiver<Done>,
) {
    const MAX_IDS_PER_ACK: usize = 1024;
    let mut done = Vec::with_capacity(64);
    let mut ids = Vec::with_capacity(64);
    let mut marks = Vec::new();
    while rx.recv_many(&mut done, MAX_IDS_PER_ACK).await > 0 {
        for d in done.drain(..) {
            ids.push(d.id);
            marks.extend(d.mark);
        }
        let result = match spec.options.inbox {
            Some(ttl) if !marks.is_empty() => {
                transport
                    .ack_marking(&spec.key, spec.group, &ids, &marks, ttl)
                    .await
            }
            _ => transport.ack(&spec.key, spec.group, &ids).await,
        };
        if let Err(e) = result {
            // Unacknowledged entries stay pending and are claimed again;
            // handlers are idempotent by contract.
            tracing::warn!(stream = %spec.key, group = spec.group, count = ids.len(), error = %e,
                "XACK failed; entries stay pending");
        }
        ids.clear();
        marks.clear();
    }
}

/// Resets the idle time of the entries this worker holds, every
/// `heartbeat`, so that no other worker claims an entry a slow handler is
/// still working on.
pub(super) async fn heartbeat_loop<T: StreamTransport>(transport: T, spec: Arc<GroupSpec>) {
    const IDS_PER_CLAIM: usize = 1000;
    let every = spec.options.heartbeat_or_default();
    loop {
        tokio::time::sleep(every).await;
        let ids: Vec<String> = spec.held().iter().map(HeldId::text).collect();
        for chunk in ids.chunks(IDS_PER_CLAIM) {
            if let Err(e) = transport
                .touch(&spec.key, spec.group, &spec.consumer, chunk)
                .await
            {
                tracing::warn!(stream = %spec.key, group = spec.group, error = %e,
                    "refreshing held entries failed; another worker may claim them");
                break;
            }
        }
    }
}
