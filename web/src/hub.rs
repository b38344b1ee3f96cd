//! One subscription per source, shared by every client: the first client of
//! a pattern (or a stream) opens it, each event is rendered once and handed
//! to all clients through a bounded ring, and the last client to leave
//! closes it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::sync::{broadcast, oneshot, OnceCell};

use crate::frame::Frame;

/// What a shared subscription reads: one pattern of one channel, or one
/// stream, in one scope (root or tenant) of the bus.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum TopicKey {
    Pattern {
        tenant: Option<String>,
        channel: String,
        pattern: String,
    },
    Stream {
        tenant: Option<String>,
        stream: String,
    },
}

/// The open subscriptions of a bridge.
#[derive(Debug)]
pub(crate) struct Hub {
    topics: Mutex<HashMap<TopicKey, Arc<Topic>>>,
    /// Events a client may fall behind by before it is dropped.
    buffer: usize,
}

#[derive(Debug)]
struct Topic {
    tx: broadcast::Sender<Arc<Frame>>,
    /// Set once the subscription is open and its pump runs.
    open: OnceCell<()>,
    /// Clients of the topic; changed only under the hub's lock.
    clients: std::sync::atomic::AtomicUsize,
    /// Dropped with the topic: stops the pump, which closes the subscription.
    _stop: oneshot::Sender<()>,
    stop_rx: Mutex<Option<oneshot::Receiver<()>>>,
}

/// A client's place in a shared subscription: its end of the ring. Leaving
/// (dropping it) closes the subscription when it was the last client.
#[derive(Debug)]
pub(crate) struct Membership {
    hub: Arc<Hub>,
    key: TopicKey,
    topic: Arc<Topic>,
    pub(crate) rx: broadcast::Receiver<Arc<Frame>>,
}

impl Hub {
    pub(crate) fn new(buffer: usize) -> Self {
        Hub {
            topics: Mutex::new(HashMap::new()),
            buffer: buffer.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<TopicKey, Arc<Topic>>> {
        // The map stays consistent at every point a panic could leave it.
        self.topics.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscriptions open now.
    pub(crate) fn open_subscriptions(&self) -> usize {
        self.lock().len()
    }

    /// Joins the subscription of `key`, opening it with `open` if no client
    /// has yet. Returns once it is open, so that an event published after
    /// the return reaches the client.
    pub(crate) async fn join<F, Fut, E>(
        self: &Arc<Self>,
        key: TopicKey,
        open: F,
    ) -> Result<Membership, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<BoxStream<'static, Frame>, E>>,
    {
        let topic = {
            let mut topics = self.lock();
            let topic = topics
                .entry(key.clone())
                .or_insert_with(|| {
                    let (tx, _) = broadcast::channel(self.buffer);
                    let (stop, stop_rx) = oneshot::channel();
                    Arc::new(Topic {
                        tx,
                        open: OnceCell::new(),
                        clients: 0.into(),
                        _stop: stop,
                        stop_rx: Mutex::new(Some(stop_rx)),
                    })
                })
                .clone();
            topic
                .clients
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            topic
        };
        // Subscribed to the ring before the source opens, so nothing the
        // pump sends after it opens is missed.
        let membership = Membership {
            hub: self.clone(),
            key,
            rx: topic.tx.subscribe(),
            topic: topic.clone(),
        };
        topic
            .open
            .get_or_try_init(|| async {
                let frames = open().await?;
                let stop = topic
                    .stop_rx
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
                if let Some(stop) = stop {
                    tokio::spawn(pump(frames, topic.tx.clone(), stop));
                }
                Ok(())
            })
            .await?;
        Ok(membership)
    }
}

/// Hands every frame of `frames` to the ring until the topic is dropped.
async fn pump(
    mut frames: BoxStream<'static, Frame>,
    tx: broadcast::Sender<Arc<Frame>>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            frame = frames.next() => match frame {
                // No receiver is no error: the last client may just have
                // left, and the topic goes with it.
                Some(frame) => { let _ = tx.send(Arc::new(frame)); }
                None => return,
            },
            _ = &mut stop => return,
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut topics = self.hub.lock();
        let left = self
            .topic
            .clients
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if left == 1 {
            if let Some(current) = topics.get(&self.key) {
                if Arc::ptr_eq(current, &self.topic) {
                    topics.remove(&self.key);
                }
            }
        }
    }
}
