//! Order per key across the workers of a group, run against every
//! transport: a stream declared with partitions is read by one worker per
//! partition at a time, under leases that live workers renew and others take
//! over when a worker dies, so that the events of a key keep their order
//! while workers are killed, stopped and started.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{eventually, Harness};
use tidings::{
    event, handler, Bus, ConsumerOptions, Context, HandlerResult, StartFrom, State, Worker,
};

const STREAM: &str = "ledger-p";
const KEYS: u32 = 40;
const PER_KEY: u32 = 50;

/// A change to an account; `seq` counts up per account.
#[event(stream = "ledger-p", version = 1, key = account)]
#[derive(Debug, Clone)]
pub struct Posted {
    /// The account: the key.
    pub account: String,
    /// Counts up per account.
    pub seq: u32,
}

#[derive(Clone, Default)]
struct Book(Arc<Mutex<BookInner>>);

#[derive(Default)]
struct BookInner {
    /// (key, seq) in the order handled, over every worker.
    handled: Vec<(String, u32)>,
    running: HashMap<String, u32>,
    /// Two events of one key at once, in any workers: order broken.
    overlaps: u32,
}

impl Book {
    fn lock(&self) -> std::sync::MutexGuard<'_, BookInner> {
        self.0.lock().unwrap()
    }
    fn distinct(&self) -> usize {
        self.lock()
            .handled
            .iter()
            .cloned()
            .collect::<HashSet<_>>()
            .len()
    }
}

/// Counts an event of a key as running until dropped: a handler cancelled
/// by a worker's abort stops running too.
struct Running {
    book: Book,
    key: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(r) = self.book.lock().running.get_mut(&self.key) {
            *r -= 1;
        }
    }
}

#[handler(group = "poster", concurrency = 4)]
async fn post(e: Posted, _ctx: Context, State(book): State<Book>) -> HandlerResult {
    let _running = {
        let mut b = book.lock();
        let r = b.running.entry(e.account.clone()).or_default();
        *r += 1;
        if *r > 1 {
            b.overlaps += 1;
        }
        Running {
            book: book.clone(),
            key: e.account.clone(),
        }
    };
    // Long enough for a killed worker to hold entries it had not finished.
    tokio::time::sleep(Duration::from_millis(4)).await;
    book.lock().handled.push((e.account.clone(), e.seq));
    Ok(())
}

/// A bus on the harness's transport with the stream declared in 4
/// partitions.
async fn partitioned(h: &Harness) -> Bus {
    let builder = Bus::builder().source("partitions").partitions(STREAM, 4);
    match &h.server {
        None => builder.in_memory().unwrap(),
        Some(server) => builder.connect(&server.url()).await.unwrap(),
    }
}

async fn start(bus: &Bus, book: &Book) -> Worker {
    bus.consumer()
        .state(book.clone())
        .options(
            ConsumerOptions::default()
                .block(Duration::from_millis(50))
                .start_from(StartFrom::Beginning)
                .partition_lease(Duration::from_millis(300)),
        )
        .handler(post)
        .start()
        .await
        .unwrap()
}

async fn each_key_keeps_its_order_across_workers_killed_stopped_and_started(h: Harness) {
    let bus = partitioned(&h).await;
    let book = Book::default();
    let mut workers: Vec<Option<Worker>> = Vec::new();
    for _ in 0..4 {
        workers.push(Some(start(&bus, &book).await));
    }
    let publisher = {
        let bus = bus.clone();
        tokio::spawn(async move {
            for seq in 0..PER_KEY {
                let batch: Vec<Posted> = (0..KEYS)
                    .map(|k| Posted {
                        account: format!("acct-{k}"),
                        seq,
                    })
                    .collect();
                bus.publish_batch(&batch).await.unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let total = (KEYS * PER_KEY) as usize;
    assert!(eventually(Duration::from_secs(20), || book.distinct() >= total / 5).await);
    // A crash: its partitions are taken over once their leases run out.
    workers[0].take().unwrap().abort();
    assert!(eventually(Duration::from_secs(20), || book.distinct() >= total / 2).await);
    // A graceful stop, and two new workers: the partitions are shared again.
    workers[1].take().unwrap().shutdown().await.unwrap();
    workers.push(Some(start(&bus, &book).await));
    workers.push(Some(start(&bus, &book).await));
    assert!(eventually(Duration::from_secs(20), || book.distinct() >= total * 3 / 4).await);
    workers[2].take().unwrap().abort();
    publisher.await.unwrap();
    let all = eventually(Duration::from_secs(30), || book.distinct() == total).await;
    let dead = bus.dead_letters(STREAM).unwrap().len().await.unwrap();
    assert!(
        all,
        "{} of {total} events handled, {dead} dead letters",
        book.distinct()
    );
    for w in workers.into_iter().flatten() {
        w.shutdown().await.unwrap();
    }

    assert_eq!(dead, 0, "a takeover must not use up an entry's attempts");
    let b = book.lock();
    assert_eq!(b.overlaps, 0, "two events of one key ran at once");
    // At least once, in order: an event may be handled again after a crash,
    // but never before every earlier event of its key was handled.
    let mut highest: HashMap<&str, i64> = HashMap::new();
    for (key, seq) in &b.handled {
        let top = highest.entry(key.as_str()).or_insert(-1);
        assert!(
            i64::from(*seq) <= *top + 1,
            "{key}#{seq} handled before {key}#{} was",
            *top + 1
        );
        *top = (*top).max(i64::from(*seq));
    }
}

tidings_testkit::transport_suite! {
    transports: {
        memory => Harness::memory(),
        redis => Harness::redis().await,
    },
    tests: [
        each_key_keeps_its_order_across_workers_killed_stopped_and_started,
    ],
}
