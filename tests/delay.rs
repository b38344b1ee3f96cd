//! Delayed delivery, run against every transport: an event published with
//! `Meta::deliver_at` waits in `ns:{stream}:delayed` and reaches its stream
//! (and the handlers) when due, once, in due order.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use support::{eventually, Harness};
use tidings::{event, handler, ConsumerOptions, Context, Envelope, HandlerResult, Meta, State};

/// A reminder; `n` tells them apart.
#[event(stream = "reminders", version = 1)]
#[derive(Debug, Clone)]
pub struct ReminderDue {
    /// Which reminder.
    pub n: u32,
}

/// An event with a channel, which cannot be delayed.
#[event(stream = "reminders", channel = "reminders", version = 1)]
#[derive(Debug, Clone)]
pub struct ReminderShown {
    /// Which reminder.
    pub n: u32,
}

/// Reminders handled, with when.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(u32, Instant)>>>);

impl Seen {
    fn all(&self) -> Vec<(u32, Instant)> {
        self.0.lock().unwrap().clone()
    }
    fn order(&self) -> Vec<u32> {
        self.all().into_iter().map(|(n, _)| n).collect()
    }
}

#[handler(group = "reminders")]
async fn remind(e: ReminderDue, _ctx: Context, State(seen): State<Seen>) -> HandlerResult {
    seen.0.lock().unwrap().push((e.n, Instant::now()));
    Ok(())
}

fn envelope(entry: &tidings::transport::RawEntry) -> Envelope {
    Envelope::from_fields(
        &entry.id,
        entry.fields.iter().map(|(k, v)| (k.as_bytes(), &v[..])),
    )
    .unwrap()
}

fn options(poll: Option<Duration>) -> ConsumerOptions {
    ConsumerOptions::default()
        .block(Duration::from_millis(100))
        .claim_idle(None)
        .delayed_poll(poll)
}

async fn delayed_event_waits_until_due_then_is_handled(h: Harness) {
    let seen = Seen::default();
    let worker = h
        .bus
        .consumer()
        .state(seen.clone())
        .options(options(Some(Duration::from_millis(50))))
        .handler(remind)
        .start()
        .await
        .unwrap();
    let sent = Instant::now();
    let delayed = h
        .bus
        .publish_with(
            &ReminderDue { n: 1 },
            Meta::default().deliver_after(Duration::from_millis(700)),
        )
        .await
        .unwrap();
    assert_eq!(delayed.entry_id, None, "a delayed event has no entry yet");
    h.bus.publish(&ReminderDue { n: 2 }).await.unwrap();
    assert!(eventually(Duration::from_secs(10), || seen.all().len() == 2).await);
    worker.shutdown().await.unwrap();
    assert_eq!(seen.order(), vec![2, 1]);
    let at = seen.all()[1].1 - sent;
    assert!(
        at >= Duration::from_millis(690),
        "handled {at:?} after publishing, before it was due"
    );
    assert!(
        at < Duration::from_millis(700 + 50 + 500),
        "handled {at:?} after publishing, well after it was due"
    );
}

async fn delayed_events_reach_the_stream_in_due_order_once_with_two_workers(h: Harness) {
    let seen = Seen::default();
    let start = |bus: &tidings::Bus| {
        bus.consumer()
            .state(seen.clone())
            .options(options(Some(Duration::from_millis(20))))
            .handler(remind)
            .start()
    };
    let (a, b) = (start(&h.bus).await.unwrap(), start(&h.bus).await.unwrap());
    let base = SystemTime::now() + Duration::from_millis(300);
    // Published latest first: the stream's order is the due order.
    for n in (0..20u32).rev() {
        let at = base + Duration::from_millis(u64::from(n) * 15);
        h.bus
            .publish_with(&ReminderDue { n }, Meta::default().deliver_at(at))
            .await
            .unwrap();
    }
    assert!(eventually(Duration::from_secs(10), || seen.all().len() >= 20).await);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    let mut order = seen.order();
    assert_eq!(order.len(), 20, "each delayed event is handled once");
    let key = h.bus.stream_key("reminders").unwrap();
    let stream: Vec<u32> = h
        .bus
        .range("reminders", "-", 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            let e = envelope(&e);
            serde_json::from_slice::<serde_json::Value>(&e.data).unwrap()["n"]
                .as_u64()
                .unwrap() as u32
        })
        .collect();
    assert_eq!(
        stream,
        (0..20).collect::<Vec<_>>(),
        "{key} holds them in due order"
    );
    order.sort_unstable();
    assert_eq!(order, (0..20).collect::<Vec<_>>());
}

async fn deliver_due_moves_them_without_a_worker(h: Harness) {
    h.bus
        .publish_with(
            &ReminderDue { n: 7 },
            Meta::default().deliver_after(Duration::from_millis(100)),
        )
        .await
        .unwrap();
    let early = h.bus.deliver_due("reminders").await.unwrap();
    assert_eq!(early.moved, 0);
    assert!(early.next_due.is_some());
    tokio::time::sleep(Duration::from_millis(150)).await;
    let due = h.bus.deliver_due("reminders").await.unwrap();
    assert_eq!((due.moved, due.next_due), (1, None));
    let entries = h.bus.range("reminders", "-", 10).await.unwrap();
    assert_eq!(entries.len(), 1);
    let e = envelope(&entries[0]);
    assert_eq!(e.type_name, "reminder.due");
    // A time already past publishes at once.
    let now = h
        .bus
        .publish_with(
            &ReminderDue { n: 8 },
            Meta::default().deliver_at(SystemTime::now() - Duration::from_secs(1)),
        )
        .await
        .unwrap();
    assert!(now.entry_id.is_some());
    let refused = h
        .bus
        .publish_with(
            &ReminderShown { n: 1 },
            Meta::default().deliver_after(Duration::from_secs(1)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(refused, tidings::Error::DelayOnChannel { .. }),
        "{refused}"
    );
}

tidings_testkit::transport_suite! {
    transports: {
        memory => Harness::memory(),
        redis => Harness::redis().await,
    },
    tests: [
        delayed_event_waits_until_due_then_is_handled,
        delayed_events_reach_the_stream_in_due_order_once_with_two_workers,
        deliver_due_moves_them_without_a_worker,
    ],
}
