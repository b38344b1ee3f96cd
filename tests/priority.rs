//! The priority task queue, run against every transport: tasks published
//! at high, normal and low priority are handled highest first without
//! starving the lower levels, on the same handler, retry and dead-letter
//! machinery as any stream.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{eventually, Harness};
use tidings::{
    event, fatal, handler, ConsumerOptions, Context, HandlerResult, Meta, Priority, RetryPolicy,
    StartFrom, State,
};

/// A file to process.
#[event(stream = "jobs", version = 1)]
#[derive(Debug, Clone)]
pub struct ProcessFile {
    /// Which file.
    pub n: u32,
    /// The level it was queued at, as text, to check the order against.
    pub level: String,
    /// Fails for good (dead letter) when set.
    pub broken: bool,
}

#[derive(Clone, Default)]
struct Done(Arc<Mutex<Vec<(String, u32)>>>);

impl Done {
    fn all(&self) -> Vec<(String, u32)> {
        self.0.lock().unwrap().clone()
    }
}

#[handler(group = "processor")]
async fn process_file(e: ProcessFile, _ctx: Context, State(done): State<Done>) -> HandlerResult {
    if e.broken {
        return Err(fatal(format!("file {} is broken", e.n)));
    }
    // Long enough for the levels' reading loops to have entries waiting.
    tokio::time::sleep(Duration::from_millis(3)).await;
    done.0.lock().unwrap().push((e.level, e.n));
    Ok(())
}

fn options() -> ConsumerOptions {
    ConsumerOptions::default()
        .block(Duration::from_millis(100))
        .claim_idle(None)
        .start_from(StartFrom::Beginning)
        .priorities(true)
}

async fn publish_levels(h: &Harness, per_level: u32, broken: Option<u32>) {
    // Lowest first, so that the stream order alone would put them last.
    for level in [Priority::Low, Priority::Normal, Priority::High] {
        for n in 0..per_level {
            let task = ProcessFile {
                n,
                level: level.as_str().to_owned(),
                broken: broken == Some(n) && level == Priority::High,
            };
            h.bus
                .publish_with(&task, Meta::default().priority(level))
                .await
                .unwrap();
        }
    }
}

async fn higher_levels_are_handled_first_and_low_is_not_starved(h: Harness) {
    let done = Done::default();
    publish_levels(&h, 20, None).await;
    let worker = h
        .bus
        .consumer()
        .state(done.clone())
        .options(options())
        .handler(process_file)
        .start()
        .await
        .unwrap();
    assert!(eventually(Duration::from_secs(20), || done.all().len() == 60).await);
    worker.shutdown().await.unwrap();
    let order = done.all();
    let positions = |level: &str| -> Vec<usize> {
        order
            .iter()
            .enumerate()
            .filter(|(_, (l, _))| l == level)
            .map(|(i, _)| i)
            .collect()
    };
    let mean = |p: &[usize]| p.iter().sum::<usize>() as f64 / p.len() as f64;
    let (high, normal, low) = (positions("high"), positions("normal"), positions("low"));
    assert_eq!((high.len(), normal.len(), low.len()), (20, 20, 20));
    assert!(
        mean(&high) < mean(&normal) && mean(&normal) < mean(&low),
        "not highest first: {order:?}"
    );
    // Weighted turns: the low level got some before the high one was done.
    assert!(
        low[0] < *high.last().unwrap(),
        "the low level waited for every high task: {order:?}"
    );
    // In its first 20, the high level had most of the turns.
    let first: Vec<&str> = order[..20].iter().map(|(l, _)| l.as_str()).collect();
    let highs = first.iter().filter(|l| **l == "high").count();
    assert!(highs >= 10, "{first:?}");
    // Rounds of 6, 3 and 1 while every level waits: the low level has a
    // turn in every ten.
    let lows = first.iter().filter(|l| **l == "low").count();
    assert!(lows >= 1, "{first:?}");
    // Within a level, the queue's own order.
    for level in ["high", "normal", "low"] {
        let ns: Vec<u32> = order
            .iter()
            .filter(|(l, _)| l == level)
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(ns, (0..20).collect::<Vec<_>>(), "{level}");
    }
}

async fn a_broken_task_of_any_level_goes_to_the_dead_letters(h: Harness) {
    let done = Done::default();
    publish_levels(&h, 3, Some(1)).await;
    let worker = h
        .bus
        .consumer()
        .state(done.clone())
        .options(options())
        .handler(process_file)
        .retry(
            RetryPolicy::new()
                .attempts(2)
                .backoff(Duration::from_millis(10)),
        )
        .start()
        .await
        .unwrap();
    assert!(eventually(Duration::from_secs(20), || done.all().len() == 8).await);
    let dead = h.bus.dead_letters("jobs").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while dead.len().await.unwrap() != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the broken task never reached the dead letters"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    worker.shutdown().await.unwrap();
    let high_key = format!("{}:high", h.bus.stream_key("jobs").unwrap());
    assert_eq!(h.pending(&high_key, "processor").await, 0);
}

/// Levels are streams of their own and give out the same entry ids: a
/// dead letter of one level never takes the place of another level's with
/// the same id, and a retry puts each back into its level.
async fn dead_letters_of_two_levels_with_one_entry_id_are_both_kept(h: Harness) {
    let done = Done::default();
    // Pairs published at once until one pair shares its entry id.
    let mut published = 0;
    let mut shared_id = false;
    for n in 0..500 {
        let mut ids = Vec::new();
        for level in [Priority::High, Priority::Normal] {
            let task = ProcessFile {
                n,
                level: level.as_str().to_owned(),
                broken: true,
            };
            let sent = h
                .bus
                .publish_with(&task, Meta::default().priority(level))
                .await
                .unwrap();
            ids.push(sent.entry_id.unwrap());
            published += 1;
        }
        if ids[0] == ids[1] {
            shared_id = true;
            break;
        }
    }
    assert!(shared_id, "no two levels gave out the same entry id");
    let worker = h
        .bus
        .consumer()
        .state(done.clone())
        .options(options())
        .handler(process_file)
        .retry(RetryPolicy::never())
        .start()
        .await
        .unwrap();
    let dead = h.bus.dead_letters("jobs").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while dead.len().await.unwrap() < published {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} dead letters of {published} broken tasks",
            dead.len().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    worker.shutdown().await.unwrap();
    assert_eq!(dead.len().await.unwrap(), published);

    // Each goes back to its level.
    let key = h.bus.stream_key("jobs").unwrap();
    let high = format!("{key}:high");
    let (high_before, normal_before) = (h.length(&high).await, h.length(&key).await);
    assert_eq!(dead.retry_all().await.unwrap(), published);
    assert_eq!(h.length(&high).await, high_before + published / 2);
    assert_eq!(h.length(&key).await, normal_before + published / 2);
}

tidings_testkit::transport_suite! {
    transports: {
        memory => Harness::memory(),
        redis => Harness::redis().await,
    },
    tests: [
        higher_levels_are_handled_first_and_low_is_not_starved,
        a_broken_task_of_any_level_goes_to_the_dead_letters,
        dead_letters_of_two_levels_with_one_entry_id_are_both_kept,
    ],
}
