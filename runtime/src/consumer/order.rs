//! Order per key: the entries of one `partitionkey` handled one after
//! another, in stream order, while entries of other keys (and entries with
//! no key) run concurrently up to each handler's concurrency.
//!
//! The reading loop hands a keyed entry to its key's lane. A key with no
//! entry in hand gets a task that handles the entry, waits out its retries,
//! then takes the next entry queued behind it, until none is left (for
//! handlers that take one entry at a time, the reading loop handles such an
//! entry itself, and starts the task only for its retry). An entry
//! queued behind another holds its prefetch permit and its place in the held
//! set (so the heartbeat keeps it from other workers' claims), but not a
//! handler's concurrency slot: it takes that when its turn comes. Entries
//! without a key never touch the lanes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use super::process::{process, Delivery, Retry, Slot};
use crate::transport::{Entry, StreamTransport};

/// An entry waiting for its key's earlier entries to be handled.
pub(super) struct Waiting<T> {
    pub(super) delivery: Delivery<T>,
    pub(super) entry: Entry,
    /// The handlers of the group that take it.
    pub(super) handlers: Vec<usize>,
}

/// The keys with an entry in hand in one (stream, group) of a worker, each
/// with the entries read after it, in stream order.
pub(super) struct Lanes<T> {
    busy: Mutex<HashMap<Box<str>, VecDeque<Waiting<T>>>>,
}

impl<T> Default for Lanes<T> {
    fn default() -> Self {
        Lanes {
            busy: Mutex::new(HashMap::new()),
        }
    }
}

/// What a lane's task handles next.
pub(super) enum Step<T> {
    /// A delivered entry, with its handlers' concurrency slots.
    Fresh(Delivery<T>, Entry, Vec<(usize, Slot)>),
    /// An entry whose first attempt failed, to be tried again.
    Retry(Retry<T>),
}

impl<T: StreamTransport> Lanes<T> {
    fn lock(&self) -> MutexGuard<'_, HashMap<Box<str>, VecDeque<Waiting<T>>>> {
        // Entries are only queued and taken off under the lock; a panic
        // elsewhere cannot leave a queue half changed.
        self.busy.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `waiting` behind the entries of `key` in hand and returns
    /// `None`; or, when the key has none, marks it busy and gives the entry
    /// back, for the caller to start its lane.
    pub(super) fn enter(&self, key: &str, waiting: Waiting<T>) -> Option<Waiting<T>> {
        let mut busy = self.lock();
        match busy.get_mut(key) {
            Some(queue) => {
                queue.push_back(waiting);
                None
            }
            None => {
                busy.insert(key.into(), VecDeque::new());
                Some(waiting)
            }
        }
    }

    /// The next entry of `key`, or `None` with the key freed.
    pub(super) fn next(&self, key: &str) -> Option<Waiting<T>> {
        let mut busy = self.lock();
        let queue = busy.get_mut(key)?;
        match queue.pop_front() {
            Some(w) => Some(w),
            None => {
                busy.remove(key);
                None
            }
        }
    }

    /// Frees `key` and drops the entries queued behind it, which stay
    /// pending: handled after the one given up on, by whichever worker
    /// claims them, never before it. Returns how many there were.
    fn abandon(&self, key: &str) -> usize {
        self.lock().remove(key).map_or(0, |q| q.len())
    }
}

/// Frees the lane's key if its task ends before it is done (cancelled with
/// the worker), so that no key stays busy with nobody handling it.
struct Guard<T: StreamTransport> {
    lanes: Arc<Lanes<T>>,
    key: Box<str>,
    done: bool,
}

impl<T: StreamTransport> Drop for Guard<T> {
    fn drop(&mut self) {
        if !self.done {
            self.lanes.abandon(&self.key);
        }
    }
}

/// Handles the entries of `key` one after another, starting with `first`,
/// until none is queued; stops (leaving the queued ones pending) when the
/// worker stops while an entry waits for a retry.
pub(super) async fn run_lane<T: StreamTransport>(
    lanes: Arc<Lanes<T>>,
    key: Box<str>,
    first: Step<T>,
) {
    let mut guard = Guard {
        lanes,
        key,
        done: false,
    };
    let mut step = first;
    loop {
        let finished = match step {
            Step::Fresh(delivery, entry, slots) => match process(delivery, entry, slots).await {
                Some(retry) => Box::pin(retry.run()).await,
                None => true,
            },
            Step::Retry(retry) => Box::pin(retry.run()).await,
        };
        if !finished {
            let left = guard.lanes.abandon(&guard.key);
            guard.done = true;
            if left > 0 {
                tracing::info!(key = %guard.key, left,
                    "worker stopping during a retry wait; the later entries of its key are left pending too, to keep their order");
            }
            return;
        }
        let Some(next) = guard.lanes.next(&guard.key) else {
            guard.done = true;
            return;
        };
        let mut slots = Vec::with_capacity(next.handlers.len());
        for &i in &next.handlers {
            match next.delivery.spec.handlers[i]
                .limit
                .clone()
                .acquire_owned()
                .await
            {
                Ok(p) => slots.push((i, Slot::Own(p))),
                // The limits are never closed; leave the entry pending.
                Err(_) => return,
            }
        }
        step = Step::Fresh(next.delivery, next.entry, slots);
    }
}
