//! `examples/prometheus.rs` served and scraped: the metrics of published,
//! consumed and handled events and the gauges read from the stream change
//! as events flow, on every transport, and `/healthz` answers.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use support::Harness;

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/prometheus.rs"]
mod prometheus;

use prometheus::{fetch, router, DocumentStored};

/// The process's one recorder, installed before any bus of these tests.
fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| PrometheusBuilder::new().install_recorder().unwrap())
        .clone()
}

/// The value of the series `name` whose labels include `system`'s, if any.
fn value(body: &str, name: &str, system: &str, more: &[&str]) -> Option<f64> {
    let system = format!("messaging_system=\"{system}\"");
    body.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| l.contains(&system) && more.iter().all(|m| l.contains(m)))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .next()
}

async fn serve(bus: tidings::Bus) -> SocketAddr {
    let app = router(bus, recorder());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Scrapes until `check` holds of the body, or fails with the last body.
async fn scrape_until(addr: SocketAddr, what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = fetch(addr, "/metrics").await.unwrap();
        assert_eq!(status, 200);
        if check(&body) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not seen in\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn series_change_as_events_flow(h: Harness) {
    let _ = recorder();
    let system = if h.server.is_some() {
        "redis"
    } else {
        "memory"
    };
    let bus = h
        .another_bus(tidings::Bus::builder().source("scraped"))
        .await;
    let addr = serve(bus.clone()).await;
    let sent = |b: &str| {
        value(
            b,
            "messaging_client_sent_messages",
            system,
            &["prometheus-demo"],
        )
    };
    let before = sent(&fetch(addr, "/metrics").await.unwrap().1).unwrap_or(0.0);

    let gauges = bus
        .report_gauges(&["prometheus-demo"], Duration::from_millis(20))
        .unwrap();
    let worker = bus
        .consumer()
        .options(
            tidings::ConsumerOptions::default()
                .backoff(Duration::from_millis(5), Duration::from_millis(20)),
        )
        .handler(prometheus::index)
        .state(Arc::new(AtomicBool::new(false)))
        .start()
        .await
        .unwrap();
    for n in 0..3 {
        bus.publish(&DocumentStored {
            document_id: format!("doc-{n}"),
        })
        .await
        .unwrap();
    }
    let body = scrape_until(addr, "3 more published, handled and gauged", |b| {
        sent(b) == Some(before + 3.0)
            && value(
                b,
                "messaging_process_messages",
                system,
                &["tidings_outcome=\"ok\"", "tidings_handler=\"index\""],
            )
            .is_some_and(|v| v >= 3.0)
            && value(b, "messaging_stream_length", system, &["prometheus-demo"]) == Some(3.0)
            && value(b, "messaging_consumer_pending", system, &["indexer"]) == Some(0.0)
    })
    .await;
    // The one failure was retried, counted under its outcome.
    assert!(
        value(
            &body,
            "messaging_process_messages",
            system,
            &["tidings_outcome=\"retried\""]
        )
        .is_some_and(|v| v >= 1.0),
        "{body}"
    );
    assert!(value(
        &body,
        "messaging_client_consumed_messages",
        system,
        &["indexer"]
    )
    .is_some_and(|v| v >= 3.0));
    assert!(value(
        &body,
        "messaging_process_duration_count",
        system,
        &["indexer"]
    )
    .is_some_and(|v| v >= 4.0));
    assert!(value(
        &body,
        "messaging_client_operation_duration_count",
        system,
        &["publish"]
    )
    .is_some_and(|v| v >= 3.0));
    assert_eq!(
        value(&body, "messaging_consumer_lag", system, &["indexer"]),
        Some(0.0)
    );
    assert_eq!(
        value(
            &body,
            "messaging_stream_dead_letters",
            system,
            &["prometheus-demo"]
        ),
        Some(0.0)
    );
    // Only bounded labels: no event id, no tenant key.
    assert!(
        !body.contains("doc-0") && !body.contains("tidings:{"),
        "{body}"
    );

    let (status, health) = fetch(addr, "/healthz").await.unwrap();
    assert_eq!(status, 200, "{health}");
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["ready"], true);
    worker.shutdown().await.unwrap();
    gauges.stop();
}

tidings_testkit::transport_suite! {
    transports: {
        memory => Harness::memory(),
        redis => Harness::redis().await,
    },
    tests: [series_change_as_events_flow],
}
