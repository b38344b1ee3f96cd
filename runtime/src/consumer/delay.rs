//! Delayed events: the task that moves those that fell due from
//! `ns:{stream}:delayed` into the stream, one atomic script call at a time.

use std::sync::Arc;
use std::time::Duration;

use super::{pause, GroupSpec};
use crate::envelope::now_millis;
use crate::transport::StreamTransport;

/// Most delayed events moved by one call: a backlog is moved in calls of
/// this size, one after another, without holding Redis for long.
pub(super) const DUE_BATCH: usize = 1000;

/// The longest a call may take before it is given up and tried again later.
const CALL_BOUND: Duration = Duration::from_secs(2);

/// Moves delayed events of the spec's stream as they fall due, until the
/// worker stops: at once again after a full batch, when the next one is due
/// if that is sooner than `poll`, else after `poll`.
pub(super) async fn deliver_due_loop<T: StreamTransport>(
    transport: T,
    spec: Arc<GroupSpec>,
    poll: Duration,
) {
    let delayed = crate::bus::delayed_key(&spec.key);
    let mut stop = spec.stop.clone();
    loop {
        let now = now_millis();
        let call = transport.deliver_due(&delayed, &spec.key, now, DUE_BATCH);
        let wait = match tokio::time::timeout(CALL_BOUND, call).await {
            Ok(Ok(done)) => {
                if done.malformed > 0 {
                    tracing::warn!(stream = %spec.key, delayed = %delayed, malformed = done.malformed,
                        "delayed members that are no entry's fields were removed");
                }
                if done.moved > 0 {
                    tracing::debug!(stream = %spec.key, moved = done.moved, "delayed events appended");
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
                tracing::debug!(stream = %spec.key, error = %e, "moving delayed events failed; trying again");
                poll
            }
            Err(_) => poll,
        };
        if pause(wait, &mut stop).await {
            return;
        }
    }
}
