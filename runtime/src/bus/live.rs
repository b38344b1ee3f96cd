//! What the bus knows of the workers reading through it, for
//! [`Bus::health`](crate::Bus::health): each reading loop's stream, group
//! and consumer, and when it last read.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::envelope::now_millis;

/// One reading loop of a worker, as it reports itself.
#[derive(Debug)]
pub(crate) struct ReaderLife {
    pub(crate) key: String,
    pub(crate) group: String,
    pub(crate) consumer: String,
    /// The longest a read waits: a live loop reads at least this often.
    pub(crate) block: Duration,
    last_read_ms: AtomicI64,
    stopped: AtomicBool,
    /// Waiting for its handlers to take more entries, rather than reading.
    busy: AtomicBool,
}

impl ReaderLife {
    pub(crate) fn new(key: String, group: String, consumer: String, block: Duration) -> Self {
        ReaderLife {
            key,
            group,
            consumer,
            block,
            last_read_ms: AtomicI64::new(now_millis()),
            stopped: AtomicBool::new(false),
            busy: AtomicBool::new(false),
        }
    }

    /// A read returned (with entries or not).
    pub(crate) fn read(&self) {
        self.last_read_ms.store(now_millis(), Ordering::Relaxed);
    }

    /// Whether the loop waits for its handlers (every entry it may hold is
    /// being handled), which is not a stuck read.
    pub(crate) fn set_busy(&self, busy: bool) {
        self.busy.store(busy, Ordering::Relaxed);
    }

    pub(crate) fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Relaxed)
    }

    /// The loop ended.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    /// Time since the last read returned.
    pub(crate) fn since_last_read(&self) -> Duration {
        let ms = now_millis().saturating_sub(self.last_read_ms.load(Ordering::Relaxed));
        Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    }
}

/// The reading loops of a bus, held weakly: a loop that ends drops out.
#[derive(Debug, Default)]
pub(crate) struct Readers(Mutex<Vec<Weak<ReaderLife>>>);

impl Readers {
    pub(crate) fn register(&self, life: &Arc<ReaderLife>) {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Pruned when the list doubles, not at every registration: a worker
        // over 1,000 tenants registers 1,000 loops at once.
        if all.len() >= 64 && all.len().is_power_of_two() {
            all.retain(|w| w.upgrade().is_some_and(|l| !l.is_stopped()));
        }
        all.push(Arc::downgrade(life));
    }

    /// The loops still running.
    pub(crate) fn running(&self) -> Vec<Arc<ReaderLife>> {
        let all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        all.iter()
            .filter_map(Weak::upgrade)
            .filter(|l| !l.is_stopped())
            .collect()
    }
}
