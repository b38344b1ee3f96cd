//! Partitions with the rest, run against every transport: priorities and
//! delays on a stream declared with partitions stay in the partition of
//! their key (`ns:{stream#k}:high`, `ns:{stream#k}:delayed`) and are read
//! and moved by the partition's worker; raw events are routed like typed
//! ones; a dead letter put back goes to its partition.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{eventually, Harness};
use tidings::{
    event, fatal, handler, partition_of, Bus, ConsumerOptions, Context, HandlerResult, Meta,
    Priority, RawEvent, RetryPolicy, StartFrom, State, Worker,
};

const STREAM: &str = "jobs-p";
const PARTITIONS: u32 = 2;

/// A job of an account.
#[event(stream = "jobs-p", version = 1, key = account)]
#[derive(Debug, Clone)]
pub struct Job {
    /// The key.
    pub account: String,
    /// Counts up per account.
    pub seq: u32,
    /// What the test publishes it as; `broken` fails while the switch is off.
    pub label: String,
}

#[derive(Clone, Default)]
struct Jobs {
    done: Arc<Mutex<Vec<(String, u32, String)>>>,
    fixed: Arc<AtomicBool>,
}

impl Jobs {
    fn done(&self) -> Vec<(String, u32, String)> {
        self.done.lock().unwrap().clone()
    }
    fn labelled(&self, label: &str) -> usize {
        self.done().iter().filter(|(_, _, l)| l == label).count()
    }
}

#[handler(group = "runner", concurrency = 4)]
async fn run_job(e: Job, _ctx: Context, State(jobs): State<Jobs>) -> HandlerResult {
    if e.label == "broken" && !jobs.fixed.load(Ordering::SeqCst) {
        return Err(fatal(format!("job {}#{} is broken", e.account, e.seq)));
    }
    jobs.done.lock().unwrap().push((e.account, e.seq, e.label));
    Ok(())
}

async fn partitioned(h: &Harness) -> Bus {
    h.another_bus(
        Bus::builder()
            .source("partitions")
            .partitions(STREAM, PARTITIONS),
    )
    .await
}

async fn start(bus: &Bus, jobs: &Jobs, priorities: bool) -> Worker {
    bus.consumer()
        .state(jobs.clone())
        .options(
            ConsumerOptions::default()
                .block(Duration::from_millis(50))
                .start_from(StartFrom::Beginning)
                .partition_lease(Duration::from_millis(300))
                .delayed_poll(Some(Duration::from_millis(20)))
                .priorities(priorities),
        )
        .handler(run_job)
        .retry(RetryPolicy::never())
        .start()
        .await
        .unwrap()
}

/// An account whose events go to partition `k`.
fn account_in(k: u32) -> String {
    (0..)
        .map(|n| format!("acct-{n}"))
        .find(|a| partition_of(a, PARTITIONS) == k)
        .unwrap()
}

/// Entries in the stream at `key`.
async fn len(h: &Harness, key: &str) -> usize {
    match &h.server {
        None => h.bus.memory().unwrap().stream_len(key),
        Some(server) => {
            let mut conn = server.connection().await;
            ::redis::cmd("XLEN")
                .arg(key)
                .query_async(&mut conn)
                .await
                .unwrap()
        }
    }
}

fn job(account: &str, seq: u32, label: &str) -> Job {
    Job {
        account: account.to_owned(),
        seq,
        label: label.to_owned(),
    }
}

async fn priorities_and_delays_stay_in_the_partition_of_their_key(h: Harness) {
    let bus = partitioned(&h).await;
    let (a0, a1) = (account_in(0), account_in(1));
    let root = bus.stream_key(STREAM).unwrap();
    let part = |k: u32| bus.partition_stream_key(STREAM, k).unwrap();
    bus.publish_with(
        &job(&a1, 0, "high"),
        Meta::default().priority(Priority::High),
    )
    .await
    .unwrap();
    bus.publish_with(&job(&a0, 0, "low"), Meta::default().priority(Priority::Low))
        .await
        .unwrap();
    assert_eq!(len(&h, &format!("{}:high", part(1))).await, 1);
    assert_eq!(len(&h, &format!("{}:low", part(0))).await, 1);
    assert_eq!(len(&h, &format!("{root}:high")).await, 0);
    assert_eq!(len(&h, &format!("{root}:low")).await, 0);
    for (account, priority) in [(&a0, None), (&a1, Some(Priority::High))] {
        let mut meta = Meta::default().deliver_after(Duration::from_millis(300));
        if let Some(p) = priority {
            meta = meta.priority(p);
        }
        bus.publish_with(&job(account, 1, "delayed"), meta)
            .await
            .unwrap();
    }
    // Normal level: the order of each key holds within its partition.
    for seq in 10..40 {
        let batch = [job(&a0, seq, "normal"), job(&a1, seq, "normal")];
        bus.publish_batch(&batch).await.unwrap();
    }
    assert_eq!(len(&h, &part(0)).await, 30);
    assert_eq!(len(&h, &part(1)).await, 30);
    assert_eq!(len(&h, &root).await, 0);

    let jobs = Jobs::default();
    let worker = start(&bus, &jobs, true).await;
    let all = eventually(Duration::from_secs(10), || jobs.done().len() == 64).await;
    worker.shutdown().await.unwrap();
    assert!(
        all,
        "{} of 64 jobs handled: {:?}",
        jobs.done().len(),
        jobs.done()
    );
    assert_eq!(jobs.labelled("high"), 1);
    assert_eq!(jobs.labelled("low"), 1);
    assert_eq!(jobs.labelled("delayed"), 2);
    for account in [&a0, &a1] {
        let normal: Vec<u32> = jobs
            .done()
            .into_iter()
            .filter(|(a, _, l)| a == account && l == "normal")
            .map(|(_, s, _)| s)
            .collect();
        assert_eq!(normal, (10..40).collect::<Vec<_>>(), "{account}");
    }
    // The delayed ones were appended to their partition's levels.
    assert_eq!(len(&h, &part(0)).await, 31);
    assert_eq!(len(&h, &format!("{}:high", part(1))).await, 2);
}

async fn raw_events_go_to_the_partition_of_their_key(h: Harness) {
    let bus = partitioned(&h).await;
    let (a0, a1) = (account_in(0), account_in(1));
    let raw = |account: Option<&str>, seq: u32| {
        let data = serde_json::to_vec(&serde_json::json!({
            "account": account.unwrap_or("none"), "seq": seq, "label": "raw"
        }))
        .unwrap();
        let e = RawEvent::new(STREAM, "job", 1, data);
        match account {
            Some(a) => e.partition_key(a),
            None => e,
        }
    };
    bus.publish_raw(&[raw(Some(&a1), 0), raw(Some(&a0), 1), raw(None, 2)])
        .await
        .unwrap();
    bus.publish_raw(&[raw(None, 3).meta(Meta::default().partition_key(a1.clone()))])
        .await
        .unwrap();
    let part = |k: u32| bus.partition_stream_key(STREAM, k).unwrap();
    assert_eq!(len(&h, &part(0)).await, 2, "a0's and the one without a key");
    assert_eq!(
        len(&h, &part(1)).await,
        2,
        "a1's, by the event's or the meta's key"
    );
    assert_eq!(len(&h, &bus.stream_key(STREAM).unwrap()).await, 0);
    let jobs = Jobs::default();
    let worker = start(&bus, &jobs, false).await;
    let all = eventually(Duration::from_secs(10), || jobs.labelled("raw") == 4).await;
    worker.shutdown().await.unwrap();
    assert!(all, "{:?}", jobs.done());
}

async fn a_dead_letter_goes_back_to_its_partition(h: Harness) {
    let bus = partitioned(&h).await;
    let (a0, a1) = (account_in(0), account_in(1));
    let jobs = Jobs::default();
    let worker = start(&bus, &jobs, false).await;
    bus.publish(&job(&a1, 0, "broken")).await.unwrap();
    bus.publish(&job(&a0, 0, "broken")).await.unwrap();
    bus.publish(&job(&a1, 1, "broken")).await.unwrap();
    let dlq = bus.dead_letters(STREAM).unwrap();
    let mut letters = Vec::new();
    for _ in 0..500 {
        letters = dlq.list(10).await.unwrap();
        if letters.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(letters.len(), 3);
    jobs.fixed.store(true, Ordering::SeqCst);
    // One by id, then the rest.
    for l in &letters {
        let key = l.envelope.as_ref().unwrap().partition_key().unwrap();
        assert_eq!(l.partition, Some(partition_of(key, PARTITIONS)));
    }
    let first = letters
        .iter()
        .find(|l| l.envelope.as_ref().unwrap().partition_key() == Some(a1.as_str()))
        .unwrap();
    assert!(dlq.retry(&first.id).await.unwrap().is_some());
    assert!(eventually(Duration::from_secs(10), || jobs.labelled("broken") == 1).await);
    // From a bus that does not declare the partitions, as the CLI's: each
    // dead letter names the partition it was read from.
    let undeclared = h.bus.dead_letters(STREAM).unwrap();
    assert!(letters.iter().all(|l| l.partition.is_some()));
    assert_eq!(undeclared.retry_all().await.unwrap(), 2);
    let all = eventually(Duration::from_secs(10), || jobs.labelled("broken") == 3).await;
    worker.shutdown().await.unwrap();
    assert!(all, "{:?}", jobs.done());
    let part = |k: u32| bus.partition_stream_key(STREAM, k).unwrap();
    assert_eq!(len(&h, &part(0)).await, 2);
    assert_eq!(len(&h, &part(1)).await, 4);
    assert_eq!(len(&h, &bus.stream_key(STREAM).unwrap()).await, 0);
    assert_eq!(dlq.len().await.unwrap(), 0);
}

tidings_testkit::transport_suite! {
    transports: {
        memory => Harness::memory(),
        redis => Harness::redis().await,
    },
    tests: [
        priorities_and_delays_stay_in_the_partition_of_their_key,
        raw_events_go_to_the_partition_of_their_key,
        a_dead_letter_goes_back_to_its_partition,
    ],
}
