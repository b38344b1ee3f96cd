//! A running worker: how it stops (draining, or at once), and the tasks it
//! owns.

use std::fmt;
use std::sync::{Arc, Mutex};
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
    /// The group tasks of tenants found while the worker runs.
    pub(super) more: Arc<Mutex<Vec<GroupTask>>>,
    /// The task that looks for new tenants, if the worker does.
    pub(super) rescan: Option<JoinHandle<()>>,
    /// Tasks for the whole worker (the mover of delayed events of a worker
    /// over tenants): they end at the stop.
    pub(super) background: Vec<JoinHandle<()>>,
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
    pub(super) fn new(stop: watch::Sender<bool>, tasks: Vec<GroupTask>, consumer: String) -> Self {
        Worker {
            stop,
            tasks,
            consumer,
            more: Arc::default(),
            rescan: None,
            background: Vec::new(),
        }
    }

    /// Every group task: those started with the worker, and those of
    /// tenants found since. Call after the rescan ended.
    fn all_tasks(&mut self) -> Vec<GroupTask> {
        let mut tasks = std::mem::take(&mut self.tasks);
        // Only pushed to and taken whole: a panic elsewhere cannot leave
        // it inconsistent.
        tasks.append(&mut self.more.lock().unwrap_or_else(|e| e.into_inner()));
        tasks
    }

    /// Stops the rescan, so that no tenant starts after the stop.
    async fn end_rescan(&mut self) {
        if let Some(rescan) = self.rescan.take() {
            let _ = rescan.await;
        }
    }

    /// Waits for the worker-wide tasks, which end at the stop.
    async fn end_background(&mut self) {
        for task in std::mem::take(&mut self.background) {
            let _ = task.await;
        }
    }

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
        self.end_rescan().await;
        let result = join(self.all_tasks()).await;
        self.end_background().await;
        result
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
        let deadline = tokio::time::Instant::now() + limit;
        if let Some(mut rescan) = self.rescan.take() {
            if tokio::time::timeout_at(deadline, &mut rescan)
                .await
                .is_err()
            {
                rescan.abort();
            }
        }
        let mut tasks = self.all_tasks();
        let mut first_error = None;
        for t in &mut tasks {
            match tokio::time::timeout_at(deadline, &mut t.handle).await {
                Ok(done) => {
                    if let Some(e) = outcome(t, done) {
                        first_error.get_or_insert(e);
                    }
                }
                Err(_) => {
                    // Cancelled where they are; waited for, so that nothing
                    // of this worker still runs when this returns.
                    for t in &tasks {
                        t.handle.abort();
                    }
                    for t in &mut tasks {
                        let _ = (&mut t.handle).await;
                    }
                    for task in std::mem::take(&mut self.background) {
                        task.abort();
                    }
                    return Err(Error::ShutdownTimedOut { after: limit });
                }
            }
        }
        self.end_background().await;
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Stops at once, as a crash would: handlers are cancelled where they
    /// are, nothing more is acknowledged, and the entries the worker held
    /// stay pending until a live worker of the group claims them (after its
    /// `claim_idle`).
    pub fn abort(mut self) {
        if let Some(rescan) = self.rescan.take() {
            rescan.abort();
        }
        for t in self.all_tasks() {
            t.handle.abort();
        }
        for task in std::mem::take(&mut self.background) {
            task.abort();
        }
    }
}

/// Waits for every group task; the first failure, if any.
async fn join(tasks: Vec<GroupTask>) -> Result<(), Error> {
    let mut first_error = None;
    for mut t in tasks {
        let done = (&mut t.handle).await;
        if let Some(e) = outcome(&t, done) {
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The error a finished group task stands for, if any.
fn outcome(t: &GroupTask, done: Result<usize, tokio::task::JoinError>) -> Option<Error> {
    match done {
        Ok(0) => None,
        Ok(count) => Some(Error::Unacknowledged {
            key: t.key.clone(),
            group: t.group.to_owned(),
            count,
        }),
        Err(e) => Some(Error::Worker {
            key: t.key.clone(),
            group: t.group.to_owned(),
            reason: e.to_string(),
        }),
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
