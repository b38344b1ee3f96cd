//! A running worker: how it stops (draining, or at once), and the tasks it
//! owns.

use std::fmt;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::Error;

pub(super) struct GroupTask {
    pub(super) key: String,
    pub(super) group: &'static str,
    /// Returns how many handled entries it could not acknowledge.
    pub(super) handle: JoinHandle<usize>,
}

/// A running consumer. Stop it with [`Worker::shutdown`]; dropping it stops
/// reading too, without waiting for in-flight handlers.
pub struct Worker {
    pub(super) stop: watch::Sender<bool>,
    pub(super) tasks: Vec<GroupTask>,
    pub(super) consumer: String,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("consumer", &self.consumer)
            .field(
                "groups",
                &self
                    .tasks
                    .iter()
                    .map(|t| (t.key.as_str(), t.group))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Worker {
    /// The consumer name this worker reads as, in every group.
    pub fn consumer_name(&self) -> &str {
        &self.consumer
    }

    /// Stops reading, waits for in-flight handlers, acknowledges what they
    /// finished, and returns. A read in progress ends at once; what it was
    /// given (the entries pending to this consumer that it does not hold)
    /// is handled before the worker stops, so that no entry is handed to
    /// this consumer unseen. An entry waiting for a retry is left pending,
    /// for another worker to claim once it is idle. Handlers see the stop
    /// through [`Context::stopping`](crate::Context::stopping).
    ///
    /// Acknowledgements that failed (Redis restarting) are tried again for
    /// up to the bus's publish timeout; entries still not acknowledged then
    /// make it return [`Error::Unacknowledged`] with their number (they stay
    /// pending, and are handled again once claimed). While Redis does not
    /// answer at all, each call made while stopping gives up after a bound,
    /// so this returns within about `block` + 4 s + the publish timeout.
    ///
    /// It waits for every handler however long it runs: to bound that too,
    /// use [`Worker::shutdown_within`].
    pub async fn shutdown(mut self) -> Result<(), Error> {
        let _ = self.stop.send(true);
        join(std::mem::take(&mut self.tasks)).await
    }

    /// As [`Worker::shutdown`], but returns by `limit` whatever handlers
    /// still run: past it, they are cancelled where they are, as
    /// [`Worker::abort`] does, their entries stay pending for another
    /// worker (after its `claim_idle`), and it returns
    /// [`Error::ShutdownTimedOut`].
    ///
    /// ```text
    /// worker.shutdown_within(Duration::from_secs(10)).await?;
    /// ```
    pub async fn shutdown_within(mut self, limit: Duration) -> Result<(), Error> {
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut self.tasks);
        let handles: Vec<_> = tasks.iter().map(|t| t.handle.abort_handle()).collect();
        match tokio::time::timeout(limit, join(tasks)).await {
            Ok(done) => done,
            Err(_) => {
                for h in handles {
                    h.abort();
                }
                Err(Error::ShutdownTimedOut { after: limit })
            }
        }
    }

    /// Stops at once, as a crash would: handlers are cancelled where they
    /// are, nothing more is acknowledged, and the entries the worker held
    /// stay pending until a live worker of the group claims them (after its
    /// `claim_idle`).
    pub fn abort(mut self) {
        for t in std::mem::take(&mut self.tasks) {
            t.handle.abort();
        }
    }
}

/// Waits for every group task; the first failure, if any.
async fn join(tasks: Vec<GroupTask>) -> Result<(), Error> {
    let mut first_error = None;
    for t in tasks {
        match t.handle.await {
            Ok(0) => {}
            Ok(count) => {
                first_error.get_or_insert(Error::Unacknowledged {
                    key: t.key,
                    group: t.group.to_owned(),
                    count,
                });
            }
            Err(e) => {
                first_error.get_or_insert(Error::Worker {
                    key: t.key,
                    group: t.group.to_owned(),
                    reason: e.to_string(),
                });
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// A task aborted when dropped, so that aborting a worker's group task also
/// stops the tasks it started.
pub(super) struct AbortOnDrop<T = ()>(pub(super) Option<JoinHandle<T>>);

impl<T: Default> AbortOnDrop<T> {
    pub(super) async fn join(mut self) -> Result<T, tokio::task::JoinError> {
        match self.0.take() {
            Some(h) => h.await,
            None => Ok(T::default()),
        }
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        if let Some(h) = &self.0 {
            h.abort();
        }
    }
}
