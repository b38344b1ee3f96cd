//! What a test's handlers saw, shared by the deployment and cluster tests.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the handlers of a test saw, and whether an event named `bad` is
/// taken yet (until then its handler fails it).
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub handled: Arc<Mutex<Vec<String>>>,
    pub take_bad: Arc<AtomicBool>,
}

impl Seen {
    pub fn handled(&self) -> Vec<String> {
        self.handled.lock().unwrap().clone()
    }

    /// Waits (up to `limit`) until `done` holds for what was handled.
    pub async fn until(&self, limit: Duration, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.handled();
            if done(&got) || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
