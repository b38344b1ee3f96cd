//! The acknowledging task (finished entries batched into as few `XACK`s as
//! possible, with their inbox marks) and the heartbeat that keeps held
//! entries from looking idle.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::held::HeldId;
use super::{Done, GroupSpec};
use crate::backoff::Backoff;
use crate::transport::StreamTransport;

/// Acknowledges finished entries, every id that is waiting in one `XACK`
/// (pipelined after the inbox marks, with an inbox). An `XACK` that fails
/// (Redis restarting) is tried again with a backoff, with whatever finished
/// meanwhile, until it succeeds; when the worker stops, for at most the
/// bus's publish timeout. Returns how many entries it could not acknowledge.
pub(super) async fn ack_loop<T: StreamTransport>(
    transport: T,
    spec: Arc<GroupSpec>,
    mut rx: mpsc::UnboundedReceiver<Done>,
) -> usize {
    const MAX_IDS_PER_ACK: usize = 1024;
    let backoff = Backoff::new(spec.options.min_backoff, spec.options.max_backoff);
    let mut done = Vec::with_capacity(64);
    let mut ids: Vec<String> = Vec::with_capacity(64);
    let mut marks = Vec::new();
    let mut failed = 0u32;
    let mut closed = false;
    let mut flush_until = None;
    loop {
        if ids.is_empty() {
            if closed || rx.recv_many(&mut done, MAX_IDS_PER_ACK).await == 0 {
                return 0;
            }
        } else if !closed {
            // Failed before: try again after the backoff, with what
            // finishes meanwhile.
            tokio::select! {
                n = rx.recv_many(&mut done, MAX_IDS_PER_ACK) => closed = n == 0,
                () = tokio::time::sleep(backoff.delay(failed)) => {}
            }
        } else {
            let until = *flush_until
                .get_or_insert_with(|| tokio::time::Instant::now() + spec.bus.publish_timeout());
            let delay = backoff.delay(failed);
            if tokio::time::Instant::now() + delay >= until {
                tracing::error!(stream = %spec.key, group = spec.group, count = ids.len(),
                    "stopping with entries handled but not acknowledged: they stay pending and are handled again once claimed");
                return ids.len();
            }
            tokio::time::sleep(delay).await;
        }
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
            _ => {
                transport
                    .ack_as(&spec.key, spec.group, &spec.consumer, &ids)
                    .await
            }
        };
        match result {
            Ok(()) => {
                if failed > 0 {
                    tracing::info!(stream = %spec.key, group = spec.group, count = ids.len(),
                        "acknowledged the entries whose XACK had failed");
                    let mut unacked = spec.unacked();
                    for id in &ids {
                        unacked.remove(id);
                    }
                }
                failed = 0;
                ids.clear();
                marks.clear();
            }
            Err(e) => {
                if failed == 0 {
                    tracing::warn!(stream = %spec.key, group = spec.group, count = ids.len(), error = %e,
                        "XACK failed; trying again");
                }
                spec.unacked().extend(ids.iter().cloned());
                failed = failed.saturating_add(1);
            }
        }
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
