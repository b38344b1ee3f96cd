//! The outbox, its relay and the inbox on a private PostgreSQL and Redis,
//! with the faults they are built for: a relay killed between `XADD` and the
//! mark, PostgreSQL or Redis restarted under load, relays racing, and
//! transactions rolled back after `enqueue`.

mod support;

use std::time::Duration;

use sqlx::{Connection, Row};
use support::{
    assert_order_per_key, assert_published_exactly, read_until, BoxError, OrderStep, Ping, World,
};
use tidings::{
    handler, ConsumerOptions, Context, HandlerResult, Meta, RetryPolicy, StartFrom, State,
};
use tidings_postgres::{Error, Outbox, PgInbox, RelayOptions};
use tokio::sync::mpsc;

const WITHIN: Duration = Duration::from_secs(20);

#[tokio::test]
async fn enqueued_event_is_published_with_the_id_and_time_fixed_at_enqueue() -> Result<(), BoxError>
{
    let w = World::start().await;
    let mut tx = w.pool.begin().await?;
    let step = OrderStep {
        order: "o-1".into(),
        seq: 1,
    };
    let meta = Meta::default()
        .correlation_id("import-7")
        .subject("orders/o-1")
        .extension("region", "eu");
    let id = w.outbox.enqueue_keyed(&mut tx, "o-1", &step, meta).await?;
    let row = sqlx::query("select event_id, time, data::text from tidings.outbox")
        .fetch_one(&mut *tx)
        .await?;
    let time: time::OffsetDateTime = row.try_get(1)?;
    assert_eq!(row.try_get::<String, _>(0)?, id.to_string());
    tx.commit().await?;

    let relay = w.relay().await?;
    let mut conn = w.redis().await;
    let entries = read_until(&mut conn, WITHIN, |e| !e.is_empty()).await;
    let stats = relay.shutdown().await?;
    assert_eq!(stats.published, 1);

    let e = &entries[0];
    assert_eq!(e.field("id"), id.to_string());
    assert_eq!(e.field("type"), "order.step");
    assert_eq!(e.field("dataversion"), "1");
    assert_eq!(e.field("source"), "outbox-tests");
    assert!(
        e.field("dataschema").ends_with("orders/order.step/v1.json"),
        "{e:?}"
    );
    assert_eq!(e.field("partitionkey"), "o-1");
    assert_eq!(e.field("correlationid"), "import-7");
    assert_eq!(e.field("subject"), "orders/o-1");
    assert_eq!(e.field("region"), "eu");
    let wire = time::OffsetDateTime::parse(
        e.field("time"),
        &time::format_description::well_known::Rfc3339,
    )?;
    assert_eq!(
        wire, time,
        "the time written at enqueue is the time published"
    );
    let data: serde_json::Value = serde_json::from_str(e.field("data"))?;
    assert_eq!(data, serde_json::json!({"order": "o-1", "seq": 1}));
    let left: i64 = sqlx::query_scalar("select count(*) from tidings.outbox")
        .fetch_one(&w.pool)
        .await?;
    assert_eq!(left, 0, "published rows are deleted by default");
    Ok(())
}

#[tokio::test]
async fn rolled_back_enqueue_is_never_published() -> Result<(), BoxError> {
    let w = World::start().await;
    let relay = w.relay().await?;
    let mut rolled_back = Vec::new();
    for seq in 1..=40u32 {
        if seq % 4 == 0 {
            let mut tx = w.pool.begin().await?;
            let step = OrderStep {
                order: "o-1".into(),
                seq,
            };
            rolled_back.push(w.outbox.enqueue(&mut tx, &step).await?.to_string());
            tx.rollback().await?;
        } else {
            w.enqueue_step("o-1", seq).await?;
        }
    }
    let committed = w.committed().await;
    assert_eq!(committed.len(), 30);
    let mut conn = w.redis().await;
    read_until(&mut conn, WITHIN, |e| e.len() >= committed.len()).await;
    // Everything committed is out; the drain publishes nothing more.
    let stats = relay.shutdown().await?;
    let entries = support::read_all(&mut conn).await;
    assert_eq!(stats.published, 30);
    assert_eq!(entries.len(), 30);
    assert_published_exactly(&entries, &committed);
    assert!(entries
        .iter()
        .all(|e| !rolled_back.contains(&e.field("id").to_owned())));
    assert_order_per_key(&entries);
    Ok(())
}

/// The handler of the inbox tests: applies the event's effect (a count per
/// event id) in the transaction that carries the inbox mark, and reports
/// each delivery.
#[handler(group = "ledger")]
async fn apply(_step: OrderStep, ctx: Context, State(ledger): State<Ledger>) -> HandlerResult {
    let Ledger { inbox, seen } = ledger;
    let id = ctx.event_id().unwrap_or_default().to_owned();
    if let Some(mut tx) = inbox.begin(&ctx).await? {
        sqlx::query(
            "insert into effects (event_id, applied) values ($1, 1)
             on conflict (event_id) do update set applied = effects.applied + 1",
        )
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    let _ = seen.send(id);
    Ok(())
}

/// The state of [`apply`]: the inbox, and where deliveries are reported.
#[derive(Clone)]
struct Ledger {
    inbox: PgInbox,
    seen: mpsc::UnboundedSender<String>,
}

/// A worker running [`apply`] from the start of the stream, retrying
/// through outages for longer than the tests' restarts take.
async fn ledger(
    w: &World,
    seen: mpsc::UnboundedSender<String>,
) -> Result<tidings::Worker, BoxError> {
    Ok(w.bus
        .consumer()
        .options(ConsumerOptions::default().start_from(StartFrom::Beginning))
        .retry(
            RetryPolicy::default()
                .attempts(50)
                .backoff(Duration::from_millis(20))
                .max_delay(Duration::from_millis(200)),
        )
        .state(Ledger {
            inbox: PgInbox::new(w.pool.clone()),
            seen,
        })
        .handler(apply)
        .start()
        .await?)
}

/// Fails unless each committed event's effect was applied exactly once.
async fn assert_applied_once(w: &World, committed: &[String]) -> Result<(), BoxError> {
    let applied: Vec<(String, i32)> =
        sqlx::query_as("select event_id, applied from effects order by event_id")
            .fetch_all(&w.pool)
            .await?;
    let ids: Vec<&str> = applied.iter().map(|(id, _)| id.as_str()).collect();
    let committed: Vec<&str> = committed.iter().map(String::as_str).collect();
    assert_eq!(ids, committed, "an effect per committed event");
    assert!(applied.iter().all(|(_, n)| *n == 1), "{applied:?}");
    Ok(())
}

/// Waits until `n` deliveries were reported.
async fn deliveries(rx: &mut mpsc::UnboundedReceiver<String>, n: usize) {
    let got = tokio::time::timeout(WITHIN, async {
        for _ in 0..n {
            rx.recv().await.expect("the worker runs");
        }
    })
    .await;
    assert!(got.is_ok(), "fewer than {n} deliveries within {WITHIN:?}");
}

#[tokio::test]
async fn relay_killed_between_xadd_and_mark_publishes_the_same_ids_again_and_the_inbox_applies_them_once(
) -> Result<(), BoxError> {
    let w = World::start().await;
    let n = 20u32;
    for seq in 1..=n {
        w.enqueue_step(&format!("o-{}", seq % 3), seq).await?;
    }
    let committed = w.committed().await;

    // The mark waits on a lock the test holds, so the relay is killed
    // after its XADDs and before its mark commits.
    let mut holder = sqlx::PgConnection::connect(&w.pg.url()).await?;
    sqlx::query("select pg_advisory_lock(4242)")
        .execute(&mut holder)
        .await?;
    sqlx::raw_sql(
        "create function hold_mark() returns trigger language plpgsql as $$
         begin perform pg_advisory_xact_lock(4242); return null; end $$;
         create trigger hold_mark before delete on tidings.outbox
             for each statement execute function hold_mark();",
    )
    .execute(&w.pool)
    .await?;

    // The doomed relay runs on a runtime of its own, whose end kills every
    // task and connection it had, as the end of a process would.
    let (url, redis_url) = (w.pg.url(), w.redis.url());
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (kill_tx, kill_rx) = std::sync::mpsc::channel::<()>();
    let doomed = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let relay = rt.block_on(async {
            let options: sqlx::postgres::PgConnectOptions = url.parse().expect("url");
            let pool = sqlx::postgres::PgPoolOptions::new()
                .connect_with(options.application_name("doomed-relay"))
                .await
                .expect("pool");
            let bus = tidings::Bus::builder()
                .source("outbox-tests")
                .connect(&redis_url)
                .await
                .expect("bus");
            Outbox::new(pool)
                .relay(&bus)
                .options(World::relay_options())
                .start()
                .await
                .expect("relay")
        });
        started_tx.send(()).expect("test waits");
        let _ = kill_rx.recv();
        drop(relay);
        rt.shutdown_background();
    });
    started_rx.recv()?;
    let mut conn = w.redis().await;
    let before = read_until(&mut conn, WITHIN, |e| e.len() >= n as usize).await;
    assert_eq!(before.len(), n as usize);
    kill_tx.send(())?;
    doomed.join().expect("the doomed relay's thread");
    // Its connections are cut, as a dead host's would be; then the lock goes.
    sqlx::query("select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'doomed-relay'")
        .execute(&w.pool)
        .await?;
    sqlx::query("select pg_advisory_unlock(4242)")
        .execute(&mut holder)
        .await?;
    sqlx::raw_sql("drop trigger hold_mark on tidings.outbox")
        .execute(&w.pool)
        .await?;

    // Nothing was marked, so the next relay publishes every row again.
    let relay = w.relay().await?;
    let entries = read_until(&mut conn, WITHIN, |e| e.len() >= 2 * n as usize).await;
    let stats = relay.shutdown().await?;
    assert_eq!(stats.published, u64::from(n));
    assert_eq!(entries.len(), 2 * n as usize);
    assert_published_exactly(&entries, &committed);
    for id in &committed {
        let copies = entries.iter().filter(|e| e.field("id") == id).count();
        assert_eq!(copies, 2, "event {id} is published twice, with its one id");
    }
    assert_order_per_key(&entries);

    // The inbox: every copy is delivered, each effect applied once.
    let (seen, mut rx) = mpsc::unbounded_channel::<String>();
    let worker = ledger(&w, seen).await?;
    deliveries(&mut rx, entries.len()).await;
    worker.shutdown().await?;
    assert_applied_once(&w, &committed).await?;
    Ok(())
}

/// Enqueues `steps` on each of `keys` orders from concurrent
/// producers, each step in its own transaction; returns how many failed. A
/// failed step is not tried again under its number (a commit whose answer
/// was lost may have committed): the `orders` table says what committed.
fn produce(
    w: &World,
    keys: usize,
    steps: std::ops::RangeInclusive<u32>,
) -> tokio::task::JoinHandle<usize> {
    let producer = w.producer();
    tokio::spawn(async move {
        let tasks: Vec<_> = (0..keys)
            .map(|k| {
                let p = producer.clone();
                let steps = steps.clone();
                tokio::spawn(async move {
                    let order = format!("o-{k}");
                    let mut failures = 0;
                    for seq in steps {
                        if p.enqueue_step(&order, seq).await.is_err() {
                            failures += 1;
                        }
                    }
                    failures
                })
            })
            .collect();
        let mut failures = 0;
        for t in tasks {
            failures += t.await.expect("producer");
        }
        failures
    })
}

/// Reads until every committed event is in the stream at least once.
async fn read_all_committed(
    conn: &mut redis::aio::MultiplexedConnection,
    committed: &[String],
) -> Vec<support::Entry> {
    read_until(conn, WITHIN, |e| {
        let ids: std::collections::HashSet<&str> = e.iter().map(|e| e.field("id")).collect();
        committed.iter().all(|c| ids.contains(c.as_str()))
    })
    .await
}

/// Runs producers and a relay, restarts a server while they work, and
/// checks what reached the stream: every committed event, at least once,
/// nothing that did not commit, and each key in order. Returns the
/// producers' failures.
async fn restart_under_load(restart: impl FnOnce(&mut World)) -> Result<usize, BoxError> {
    let mut w = World::start().await;
    let relay = w.relay().await?;
    let (seen, mut handled) = mpsc::unbounded_channel::<String>();
    let worker = ledger(&w, seen).await?;
    let producing = produce(&w, 4, 1..=120);
    let mut conn = w.redis().await;
    read_until(&mut conn, WITHIN, |e| e.len() >= 40).await;
    let before = w.committed().await.len();
    assert!(
        before < 4 * 120,
        "the restart comes while the producers write"
    );
    // The restart blocks this worker; the producers and the relay run on
    // the other one and meet the outage.
    tokio::task::block_in_place(|| restart(&mut w));
    let failures = producing.await?;
    let committed = w.committed().await;
    assert!(
        committed.len() >= 4 * 120 - failures,
        "{} committed, {failures} failed",
        committed.len()
    );
    let mut conn = w.redis().await;
    let entries = read_all_committed(&mut conn, &committed).await;
    relay.shutdown().await?;
    assert_published_exactly(&entries, &committed);
    assert_order_per_key(&entries);
    let left: i64 = sqlx::query_scalar("select count(*) from tidings.outbox")
        .fetch_one(&w.pool)
        .await?;
    assert_eq!(left, 0, "every committed row is marked");
    // Every committed event reached the handler, whose effect and inbox
    // mark commit together: each applied once, outage or not.
    let all_handled = tokio::time::timeout(WITHIN, async {
        let mut pending: std::collections::HashSet<&str> =
            committed.iter().map(String::as_str).collect();
        while !pending.is_empty() {
            let id = handled.recv().await.expect("the worker runs");
            pending.remove(id.as_str());
        }
    })
    .await;
    assert!(all_handled.is_ok(), "not every committed event was handled");
    worker.shutdown().await?;
    assert_applied_once(&w, &committed).await?;
    Ok(failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_load_loses_and_invents_nothing() -> Result<(), BoxError> {
    restart_under_load(|w| w.pg.restart()).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_under_load_loses_and_invents_nothing() -> Result<(), BoxError> {
    let failures = restart_under_load(|w| w.redis.restart()).await?;
    assert_eq!(failures, 0, "PostgreSQL stayed up: every enqueue commits");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_racing_publish_each_event_once_in_order_per_key() -> Result<(), BoxError> {
    let w = World::start().await;
    // A backlog of few keys, then four relays on buses of their own, each
    // with its own connections: every relay finds rows of every key.
    let failures = produce(&w, 3, 1..=150).await?;
    assert_eq!(failures, 0);
    let options = World::relay_options().batch(10);
    let mut relays = Vec::new();
    for _ in 0..4 {
        let bus = tidings::Bus::builder()
            .source("outbox-tests")
            .connect(&w.redis.url())
            .await?;
        relays.push(
            w.outbox
                .relay(&bus)
                .options(options.clone())
                .start()
                .await?,
        );
    }
    // More rows while they run.
    let failures = produce(&w, 3, 151..=200).await?;
    assert_eq!(failures, 0);
    let committed = w.committed().await;
    let mut conn = w.redis().await;
    read_all_committed(&mut conn, &committed).await;
    let mut stats = Vec::new();
    for relay in relays {
        stats.push(relay.shutdown().await?);
    }
    let published: u64 = stats.iter().map(|s| s.published).sum();
    assert_eq!(published, committed.len() as u64);
    assert!(
        stats.iter().filter(|s| s.published > 0).count() > 1,
        "the relays shared the rows: {stats:?}"
    );
    let entries = support::read_all(&mut conn).await;
    assert_eq!(entries.len(), committed.len(), "no event published twice");
    assert_published_exactly(&entries, &committed);
    assert_order_per_key(&entries);
    Ok(())
}

#[tokio::test]
async fn a_row_that_cannot_be_published_is_marked_failed_and_its_key_goes_on(
) -> Result<(), BoxError> {
    let w = World::start().await;
    w.enqueue_step("o-1", 1).await?;
    // Rows no `enqueue` writes, as another writer of the table might.
    let columns = "(event_id, stream, type, version, schema_path, data, time, partition_key)";
    sqlx::query(&format!(
        "insert into tidings.outbox {columns} values
         ('{}', 'bad stream', 'order.step', 1, 'x/v1.json', '{{}}', now(), 'o-1'),
         ('{}', 'orders', 'order.step', 1, 'x/v1.json', $1::text::json, now(), 'o-1'),
         ('not-a-ulid', 'orders', 'order.step', 1, 'x/v1.json', '{{}}', now(), null)",
        tidings::Ulid::new(),
        tidings::Ulid::new()
    ))
    .bind(format!("{{\"pad\": \"{}\"}}", "x".repeat(2000)))
    .execute(&w.pool)
    .await?;
    w.enqueue_step("o-1", 2).await?;
    let relay = w
        .outbox
        .relay(&w.bus)
        .options(World::relay_options().max_event_bytes(1000))
        .start()
        .await?;
    let mut conn = w.redis().await;
    let entries = read_until(&mut conn, WITHIN, |e| e.len() >= 2).await;
    let stats = relay.shutdown().await?;
    assert_eq!((stats.published, stats.failed), (2, 3));
    assert_published_exactly(&entries, &w.committed().await);
    assert_order_per_key(&entries);
    let failed: Vec<(String, String)> = sqlx::query_as(
        "select event_id, last_error from tidings.outbox where failed_at is not null order by position",
    )
    .fetch_all(&w.pool)
    .await?;
    assert_eq!(failed.len(), 3);
    assert!(
        failed[0].1.contains("invalid stream `bad stream`"),
        "{failed:?}"
    );
    assert!(
        failed[1].1.contains("more than the relay's limit of 1000"),
        "{failed:?}"
    );
    assert!(failed[2].1.contains("is no ULID"), "{failed:?}");
    Ok(())
}

#[tokio::test]
async fn shutdown_drains_and_published_rows_can_be_kept() -> Result<(), BoxError> {
    let w = World::start().await;
    for seq in 1..=120 {
        w.enqueue_step("o-1", seq).await?;
    }
    let keep = World::relay_options().keep_published(Some(Duration::from_secs(3600)));
    let relay = w.outbox.relay(&w.bus).options(keep).start().await?;
    let stats = relay.shutdown().await?;
    assert_eq!(
        stats.published, 120,
        "shutdown published everything pending"
    );
    let kept: i64 =
        sqlx::query_scalar("select count(*) from tidings.outbox where published_at is not null")
            .fetch_one(&w.pool)
            .await?;
    assert_eq!(kept, 120);
    // Rows kept for no time are gone in the next clean-up.
    let none = World::relay_options().keep_published(Some(Duration::ZERO));
    let relay = w.outbox.relay(&w.bus).options(none).start().await?;
    relay.shutdown().await?;
    let kept: i64 = sqlx::query_scalar("select count(*) from tidings.outbox")
        .fetch_one(&w.pool)
        .await?;
    assert_eq!(kept, 0);
    let mut conn = w.redis().await;
    let entries = read_until(&mut conn, WITHIN, |e| e.len() >= 120).await;
    assert_eq!(entries.len(), 120);
    assert_order_per_key(&entries);
    Ok(())
}

#[tokio::test]
async fn names_and_events_the_outbox_refuses() -> Result<(), BoxError> {
    let w = World::start().await;
    for bad in ["Tidings", "a;drop", "pg_x", ""] {
        assert!(matches!(
            Outbox::in_schema(w.pool.clone(), bad),
            Err(Error::InvalidSchema { .. })
        ));
        assert!(PgInbox::in_schema(w.pool.clone(), bad).is_err());
    }
    let mut tx = w.pool.begin().await?;
    let err = w.outbox.enqueue(&mut tx, &Ping { n: 1 }).await.unwrap_err();
    assert!(
        matches!(err, Error::NoStream { type_name: "ping" }),
        "{err}"
    );
    let err = w
        .outbox
        .enqueue_with(
            &mut tx,
            &OrderStep {
                order: "o".into(),
                seq: 1,
            },
            Meta::default().extension("Bad-Name", "x"),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Bad-Name"), "{err}");
    let err = w
        .outbox
        .enqueue_keyed(
            &mut tx,
            "",
            &OrderStep {
                order: "o".into(),
                seq: 1,
            },
            Meta::default(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("partition key"), "{err}");
    Ok(())
}

#[tokio::test]
async fn migrations_run_once_in_a_schema_of_their_own() -> Result<(), BoxError> {
    let w = World::start().await;
    assert!(w.outbox.migrate().await?.is_empty(), "already applied");
    let other = Outbox::in_schema(w.pool.clone(), "billing_events")?;
    let (a, b) = tokio::join!(other.migrate(), other.migrate());
    assert_eq!(a?.len() + b?.len(), tidings_postgres::MIGRATIONS.len());
    // A relay that polls once a minute: only the schema's own notification
    // can wake it in time.
    let relay = other
        .relay(&w.bus)
        .options(RelayOptions::default().poll_interval(Duration::from_secs(60)))
        .start()
        .await?;
    let mut tx = w.pool.begin().await?;
    other
        .enqueue(
            &mut tx,
            &OrderStep {
                order: "o".into(),
                seq: 1,
            },
        )
        .await?;
    tx.commit().await?;
    let mut conn = w.redis().await;
    read_until(&mut conn, WITHIN, |e| e.len() == 1).await;
    assert_eq!(relay.shutdown().await?.published, 1);
    sqlx::query("update billing_events.migrations set name = 'other' where version = 1")
        .execute(&w.pool)
        .await?;
    assert!(matches!(
        other.migrate().await,
        Err(Error::MigrationMismatch { version: 1, .. })
    ));
    Ok(())
}

#[tokio::test]
async fn inbox_changes_the_database_once_per_event_and_group() -> Result<(), BoxError> {
    let w = World::start().await;
    let inbox = PgInbox::new(w.pool.clone());
    let id = tidings::Ulid::new().to_string();
    let mut applied = 0;
    for _ in 0..3 {
        if let Some(tx) = inbox.begin_for("ledger", &id).await? {
            tx.commit().await?;
            applied += 1;
        }
    }
    assert_eq!(applied, 1);
    // Another group handles it too; a rolled-back handler leaves no mark.
    let tx = inbox
        .begin_for("audit", &id)
        .await?
        .expect("first for audit");
    tx.rollback().await?;
    assert!(inbox.begin_for("audit", &id).await?.is_some());
    let err = inbox.begin(&Context::detached()).await.unwrap_err();
    assert!(matches!(err, Error::NoDelivery { .. }), "{err}");
    Ok(())
}

#[tokio::test]
async fn transactions_enqueueing_one_key_take_their_turn_so_commit_order_is_publish_order(
) -> Result<(), BoxError> {
    let w = World::start().await;
    let mut first = w.pool.begin().await?;
    let step = |seq| OrderStep {
        order: "o-1".into(),
        seq,
    };
    let first_id = w
        .outbox
        .enqueue_keyed(&mut first, "o-1", &step(1), Meta::default())
        .await?;
    // A second transaction on the key waits for the first to end...
    let producer = w.producer();
    let second = tokio::spawn(async move { producer.enqueue_step("o-1", 2).await });
    let waiting = tokio::time::timeout(WITHIN, async {
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "select count(*) from pg_locks where locktype = 'advisory' and not granted",
            )
            .fetch_one(&w.pool)
            .await
            .expect("pg_locks");
            if waiting > 0 {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(waiting.is_ok(), "the second transaction never waited");
    assert!(!second.is_finished());
    // ...so it commits after it, and its event goes out after it.
    first.commit().await?;
    let second_id = second.await??;
    let relay = w.relay().await?;
    let mut conn = w.redis().await;
    let entries = read_until(&mut conn, WITHIN, |e| e.len() >= 2).await;
    relay.shutdown().await?;
    let ids: Vec<&str> = entries.iter().map(|e| e.field("id")).collect();
    assert_eq!(ids, [first_id.to_string().as_str(), second_id.as_str()]);
    Ok(())
}

#[tokio::test]
async fn a_dropped_relay_stops_and_leaves_its_rows_to_the_next() -> Result<(), BoxError> {
    let w = World::start().await;
    let relay = w.relay().await?;
    let listening = "select count(*) from pg_stat_activity where query like 'LISTEN %'";
    let count = |sql: &'static str| {
        let pool = w.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .expect("pg_stat_activity")
        }
    };
    assert_eq!(count(listening).await, 1);
    drop(relay);
    // Its listening connection closes: the relay's tasks have ended.
    let closed = tokio::time::timeout(WITHIN, async {
        while count(listening).await > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(closed.is_ok(), "the dropped relay still listens");
    w.enqueue_step("o-1", 1).await?;
    let relay = w.relay().await?;
    let mut conn = w.redis().await;
    read_until(&mut conn, WITHIN, |e| !e.is_empty()).await;
    let stats = relay.shutdown().await?;
    assert_eq!(stats.published, 1, "the dropped relay published nothing");
    Ok(())
}
