//! What the outbox tests share: a private PostgreSQL and Redis per test,
//! the events, and reads of the stream that wait on Redis, never on a sleep.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::AsyncCommands;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use tidings::{event, Bus};
use tidings_postgres::{Outbox, Relay, RelayOptions};
use tidings_testkit::{PostgresServer, RedisServer};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An order's step: `seq` counts the steps of one order, so the stream
/// shows whether an order's steps kept their order.
#[event(stream = "orders", version = 1)]
pub struct OrderStep {
    pub order: String,
    pub seq: u32,
}

/// An event with no stream, which the outbox refuses.
#[event(channel = "pings", version = 1)]
pub struct Ping {
    pub n: u32,
}

/// A test's servers and the clients on them.
pub struct World {
    pub pg: PostgresServer,
    pub redis: RedisServer,
    pub pool: PgPool,
    pub bus: Bus,
    pub outbox: Outbox,
}

impl World {
    /// PostgreSQL and a Redis with `appendfsync always`, migrated.
    pub async fn start() -> World {
        let pg = PostgresServer::start();
        let redis = RedisServer::durable();
        let pool = pool(&pg, "test", 8).await;
        let bus = Bus::builder()
            .source("outbox-tests")
            .publish_timeout(Duration::from_secs(20))
            .connect(&redis.url())
            .await
            .expect("bus");
        let outbox = Outbox::new(pool.clone());
        outbox.migrate().await.expect("migrate");
        sqlx::raw_sql(
            "create table orders (event_id text primary key, order_id text not null, seq int not null);
             create table effects (event_id text primary key, applied int not null);",
        )
        .execute(&pool)
        .await
        .expect("test tables");
        World {
            pg,
            redis,
            pool,
            bus,
            outbox,
        }
    }

    /// Relay options for tests: short poll, small batches.
    pub fn relay_options() -> RelayOptions {
        RelayOptions::default()
            .batch(50)
            .poll_interval(Duration::from_millis(100))
    }

    /// A relay from the outbox to the bus, with [`World::relay_options`].
    pub async fn relay(&self) -> Result<Relay, tidings_postgres::Error> {
        self.outbox
            .relay(&self.bus)
            .options(World::relay_options())
            .start()
            .await
    }

    /// What enqueues steps, for tasks of their own.
    pub fn producer(&self) -> Producer {
        Producer {
            pool: self.pool.clone(),
            outbox: self.outbox.clone(),
        }
    }

    /// Enqueues a step with its business row, in one transaction.
    pub async fn enqueue_step(&self, order: &str, seq: u32) -> Result<String, BoxError> {
        self.producer().enqueue_step(order, seq).await
    }

    /// The event ids of the committed business rows.
    pub async fn committed(&self) -> Vec<String> {
        sqlx::query_scalar("select event_id from orders order by event_id")
            .fetch_all(&self.pool)
            .await
            .expect("committed rows")
    }

    pub async fn redis(&self) -> MultiplexedConnection {
        self.redis.connection().await
    }
}

/// Enqueues steps.
#[derive(Clone)]
pub struct Producer {
    pool: PgPool,
    outbox: Outbox,
}

impl Producer {
    /// Enqueues a step with its business row, in one transaction.
    pub async fn enqueue_step(&self, order: &str, seq: u32) -> Result<String, BoxError> {
        let mut tx = self.pool.begin().await?;
        let step = OrderStep {
            order: order.to_owned(),
            seq,
        };
        let id = self
            .outbox
            .enqueue_keyed(&mut tx, order, &step, tidings::Meta::default())
            .await?
            .to_string();
        sqlx::query("insert into orders (event_id, order_id, seq) values ($1, $2, $3)")
            .bind(&id)
            .bind(order)
            .bind(seq as i32)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(id)
    }
}

/// A pool on the test's server, its connections named `app` in
/// `pg_stat_activity`.
pub async fn pool(pg: &PostgresServer, app: &str, size: u32) -> PgPool {
    let options: PgConnectOptions = pg.url().parse().expect("url");
    PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options.application_name(app))
        .await
        .expect("pool")
}

/// One stream entry, by field.
#[derive(Debug, Clone)]
pub struct Entry {
    pub entry_id: String,
    pub fields: HashMap<String, String>,
}

impl Entry {
    pub fn field(&self, name: &str) -> &str {
        self.fields.get(name).map(String::as_str).unwrap_or("")
    }
}

/// Reads `tidings:{orders}` from the start until `done` holds for what was
/// read, blocking on Redis between reads; fails after `within`.
pub async fn read_until(
    conn: &mut MultiplexedConnection,
    within: Duration,
    done: impl Fn(&[Entry]) -> bool,
) -> Vec<Entry> {
    let key = "tidings:{orders}";
    let mut entries = Vec::new();
    let mut last = "0".to_owned();
    let read = async {
        loop {
            if done(&entries) {
                return;
            }
            let opts = StreamReadOptions::default().block(200).count(1000);
            let reply: Result<Option<StreamReadReply>, _> =
                conn.xread_options(&[key], &[&last], &opts).await;
            // A restarting server refuses reads for a moment: read again.
            let Ok(Some(reply)) = reply else { continue };
            for stream in reply.keys {
                for id in stream.ids {
                    last = id.id.clone();
                    let fields = id
                        .map
                        .iter()
                        .filter_map(|(k, v)| {
                            redis::from_redis_value::<String>(v.clone())
                                .ok()
                                .map(|v| (k.clone(), v))
                        })
                        .collect();
                    entries.push(Entry {
                        entry_id: id.id,
                        fields,
                    });
                }
            }
        }
    };
    if tokio::time::timeout(within, read).await.is_err() {
        panic!(
            "the stream did not get there within {within:?}; it has {} entries",
            entries.len()
        );
    }
    entries
}

/// Everything in `tidings:{orders}` now.
pub async fn read_all(conn: &mut MultiplexedConnection) -> Vec<Entry> {
    let len: usize = conn.xlen("tidings:{orders}").await.expect("XLEN");
    read_until(conn, Duration::from_secs(5), |e| e.len() >= len).await
}

/// Fails unless the steps of each order appear in `seq` order (counting
/// each event's first appearance: a copy published again is later).
pub fn assert_order_per_key(entries: &[Entry]) {
    let mut seen = std::collections::HashSet::new();
    let mut last: HashMap<String, u32> = HashMap::new();
    for e in entries {
        if !seen.insert(e.field("id").to_owned()) {
            continue;
        }
        let step: serde_json::Value = serde_json::from_str(e.field("data")).expect("json data");
        let order = step["order"].as_str().expect("order").to_owned();
        let seq = step["seq"].as_u64().expect("seq") as u32;
        assert_eq!(e.field("partitionkey"), order, "partition key of {e:?}");
        if let Some(prev) = last.insert(order.clone(), seq) {
            assert!(
                seq > prev,
                "order {order}: step {seq} was published after step {prev}"
            );
        }
    }
}

/// Fails unless every committed id is in the stream and nothing else is.
pub fn assert_published_exactly(entries: &[Entry], committed: &[String]) {
    let published: std::collections::BTreeSet<&str> =
        entries.iter().map(|e| e.field("id")).collect();
    let committed: std::collections::BTreeSet<&str> =
        committed.iter().map(String::as_str).collect();
    let missing: Vec<_> = committed.difference(&published).collect();
    let extra: Vec<_> = published.difference(&committed).collect();
    assert!(
        missing.is_empty(),
        "committed but not published: {missing:?}"
    );
    assert!(extra.is_empty(), "published but never committed: {extra:?}");
}
