//! Nothing fails in silence: an event no handler of the group takes, a
//! handler failure, a retry and a dead letter each log at their level and
//! count in the metrics (`tidings::telemetry`), read here through
//! `metrics-util`'s debugging recorder and a `tracing` layer that keeps
//! what is logged.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tidings::telemetry::{label, name, outcome};
use tidings::{event, fatal, handler, Bus, Context, HandlerResult};
use tracing_subscriber::layer::SubscriberExt;

/// Placed.
#[event(stream = "telemetry-orders", version = 1)]
#[derive(Debug)]
pub struct OrderPlaced {
    /// The order.
    pub order_id: String,
}

/// Cancelled: no handler of the group takes it.
#[event(stream = "telemetry-orders", version = 1)]
#[derive(Debug)]
pub struct OrderCancelled {
    /// The order.
    pub order_id: String,
}

#[handler(group = "billing", retries = 1)]
async fn bill(e: OrderPlaced, _ctx: Context) -> HandlerResult {
    if e.order_id == "bad" {
        return Err(fatal(format!("order {} cannot be billed", e.order_id)));
    }
    if e.order_id == "flaky"
        && !FLAKED
            .get_or_init(Default::default)
            .swap(true, std::sync::atomic::Ordering::SeqCst)
    {
        return Err("the ledger is busy".into());
    }
    Ok(())
}

static FLAKED: OnceLock<std::sync::atomic::AtomicBool> = OnceLock::new();

/// What was logged: (level, message, type).
type Logged = Arc<Mutex<Vec<(tracing::Level, String, String)>>>;

struct Keep(Logged);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Keep {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        #[derive(Default)]
        struct Fields {
            message: String,
            r#type: String,
        }
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                match field.name() {
                    "message" => self.message = format!("{value:?}"),
                    "type" => self.r#type = format!("{value:?}"),
                    _ => {}
                }
            }
        }
        let mut f = Fields::default();
        event.record(&mut f);
        self.0
            .lock()
            .unwrap()
            .push((*event.metadata().level(), f.message, f.r#type));
    }
}

/// The process's recorder and log, installed once.
fn observed() -> (&'static Snapshotter, Logged) {
    static ONCE: OnceLock<(Snapshotter, Logged)> = OnceLock::new();
    let (snap, logged) = ONCE.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().unwrap();
        let logged = Logged::default();
        let subscriber = tracing_subscriber::registry().with(Keep(logged.clone()));
        tracing::subscriber::set_global_default(subscriber).unwrap();
        (snapshotter, logged)
    });
    (snap, logged.clone())
}

/// A counter's name, labels and total.
type Total = (String, Vec<(String, String)>, u64);

/// Every counter's total so far: a snapshot of the debugging recorder
/// reads each counter and sets it back to zero, so totals add up here.
fn totals() -> &'static Mutex<Vec<Total>> {
    static TOTALS: OnceLock<Mutex<Vec<Total>>> = OnceLock::new();
    TOTALS.get_or_init(Default::default)
}

/// The counter `name` with every label of `labels`, summed over the rest.
fn counter(snap: &Snapshotter, metric: &str, labels: &[(&str, &str)]) -> u64 {
    let mut totals = totals().lock().unwrap();
    for (key, _, _, value) in snap.snapshot().into_vec() {
        let DebugValue::Counter(n) = value else {
            continue;
        };
        let name = key.key().name().to_owned();
        let pairs: Vec<(String, String)> = key
            .key()
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        match totals
            .iter_mut()
            .find(|(m, l, _)| *m == name && *l == pairs)
        {
            Some((_, _, total)) => *total += n,
            None => totals.push((name, pairs, n)),
        }
    }
    totals
        .iter()
        .filter(|(m, l, _)| {
            m == metric
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, n)| *n)
        .sum()
}

async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_no_handler_takes_is_logged_once_and_counted() {
    let (snap, logged) = observed();
    let bus = Bus::builder().namespace("silence").in_memory().unwrap();
    let worker = bus.consumer().handler(bill).start().await.unwrap();
    for n in 0..3 {
        bus.publish(&OrderCancelled {
            order_id: format!("c{n}"),
        })
        .await
        .unwrap();
    }
    bus.publish(&OrderPlaced {
        order_id: "p1".into(),
    })
    .await
    .unwrap();
    let skipped = [
        (label::GROUP, "billing"),
        (label::OUTCOME, outcome::SKIPPED),
        (label::SYSTEM, "memory"),
    ];
    until("3 skipped", || {
        counter(snap, name::PROCESSED, &skipped) >= 3
    })
    .await;
    let ok = [
        (label::GROUP, "billing"),
        (label::OUTCOME, outcome::OK),
        (label::HANDLER, "bill"),
    ];
    until("1 handled", || counter(snap, name::PROCESSED, &ok) >= 1).await;
    worker.shutdown().await.unwrap();
    let said: Vec<_> = logged
        .lock()
        .unwrap()
        .iter()
        .filter(|(level, message, ty)| {
            *level == tracing::Level::INFO
                && message.contains("no handler of this group takes this type")
                && ty.contains("order.cancelled")
        })
        .cloned()
        .collect();
    assert_eq!(said.len(), 1, "said at info once per type: {said:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_and_dead_letters_are_logged_and_counted() {
    let (snap, logged) = observed();
    let bus = Bus::builder().namespace("failures").in_memory().unwrap();
    let worker = bus
        .consumer()
        .options(
            tidings::ConsumerOptions::default()
                .backoff(Duration::from_millis(5), Duration::from_millis(10)),
        )
        .handler(bill)
        .group("billing-failures")
        .start()
        .await
        .unwrap();
    bus.publish(&OrderPlaced {
        order_id: "flaky".into(),
    })
    .await
    .unwrap();
    bus.publish(&OrderPlaced {
        order_id: "bad".into(),
    })
    .await
    .unwrap();
    let of = |o: &'static str| {
        [
            (label::GROUP, "billing-failures"),
            (label::OUTCOME, o),
            (label::HANDLER, "bill"),
        ]
    };
    until("a retry and a dead letter", || {
        counter(snap, name::PROCESSED, &of(outcome::RETRIED)) == 1
            && counter(snap, name::PROCESSED, &of(outcome::DEAD_LETTERED)) == 1
            && counter(snap, name::PROCESSED, &of(outcome::OK)) == 1
    })
    .await;
    worker.shutdown().await.unwrap();
    let logged = logged.lock().unwrap();
    assert!(
        logged
            .iter()
            .any(|(l, m, _)| *l == tracing::Level::WARN && m.contains("will retry")),
        "{logged:?}"
    );
    assert!(
        logged
            .iter()
            .any(|(l, m, _)| *l == tracing::Level::ERROR && m.contains("dead letters")),
        "{logged:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_is_logged_and_counted() {
    let (snap, logged) = observed();
    let mut server = tidings_testkit::RedisServer::durable();
    let bus = Bus::builder()
        .namespace("reconnects")
        .connect(&server.url())
        .await
        .unwrap();
    let worker = bus
        .consumer()
        .options(
            tidings::ConsumerOptions::default()
                .block(Duration::from_millis(100))
                .backoff(Duration::from_millis(10), Duration::from_millis(50)),
        )
        .handler(bill)
        .group("billing-reconnects")
        .start()
        .await
        .unwrap();
    let before = counter(snap, name::RECONNECTS, &[(label::CONNECTION, "consumer")]);
    server.restart();
    until("a counted reconnect of the consumer", || {
        counter(snap, name::RECONNECTS, &[(label::CONNECTION, "consumer")]) > before
    })
    .await;
    // And it still works: an event published now is handled.
    bus.publish(&OrderPlaced {
        order_id: "after".into(),
    })
    .await
    .unwrap();
    let ok = [
        (label::GROUP, "billing-reconnects"),
        (label::OUTCOME, outcome::OK),
    ];
    until("handled after the restart", || {
        counter(snap, name::PROCESSED, &ok) >= 1
    })
    .await;
    worker.shutdown().await.unwrap();
    let logged = logged.lock().unwrap();
    assert!(
        logged
            .iter()
            .any(|(l, m, _)| *l == tracing::Level::WARN && m.contains("reconnecting")),
        "{logged:?}"
    );
}
