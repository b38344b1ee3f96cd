//! The PostgreSQL outbox beside a hand-written relay, on a private
//! PostgreSQL and a private loopback Redis, in the same run.
//!
//! ```text
//! cargo bench -p tidings-bench --bench outbox            # full run
//! TIDINGS_BENCH_QUICK=1 cargo bench -p tidings-bench --bench outbox
//! ```
//!
//! The hand-written relay is the loop services write by hand: select a page
//! of pending rows, `XADD` each, mark each published, one round trip per
//! row. Both sides move the same events (`file.uploaded` v3, the same
//! CloudEvents fields) from the same database to the same Redis, run after
//! run alternately; the median of the runs is reported.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row};
use tidings::{handler, Bus, ConsumerOptions, Context, Event, HandlerResult};
use tidings_bench::events::FileUploaded;
use tidings_bench::report::{self, Better, Figure, Target};
use tidings_postgres::{Outbox, RelayOptions};
use tidings_testkit::{PostgresServer, RedisServer};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Sizes of one run.
#[derive(Debug, Clone)]
struct Config {
    quick: bool,
    runs: usize,
    /// Rows relayed per run by the outbox's relay.
    rows: usize,
    /// Rows relayed per run by the hand-written relay (fewer: it is slower,
    /// and a rate needs no more).
    handwritten_rows: usize,
    /// Events committed one by one for the latency figures, and their pace.
    latency_events: usize,
    latency_rate: u64,
}

impl Config {
    fn from_env_and_args() -> Config {
        let quick = std::env::args().any(|a| a == "--quick")
            || std::env::var("TIDINGS_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        if quick {
            Config {
                quick,
                runs: 2,
                rows: 20_000,
                handwritten_rows: 2_000,
                latency_events: 300,
                latency_rate: 500,
            }
        } else {
            Config {
                quick,
                runs: 3,
                rows: 100_000,
                handwritten_rows: 10_000,
                latency_events: 1_000,
                latency_rate: 500,
            }
        }
    }
}

/// Nanoseconds since the process's benchmark origin.
fn now_ns() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

fn main() {
    let config = Config::from_env_and_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = runtime.block_on(run(config)) {
        eprintln!("benchmark failed: {e}");
        std::process::exit(1);
    }
}

async fn run(config: Config) -> Result<(), BoxError> {
    let pg = PostgresServer::try_start()?;
    let redis = RedisServer::try_start()?;
    eprintln!(
        "tidings-bench outbox: {} run on PostgreSQL {} and redis-server {}, {} cores",
        if config.quick { "quick" } else { "full" },
        pg.url(),
        redis.url(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect(&pg.url())
        .await?;
    let outbox = Outbox::new(pool.clone());
    outbox.migrate().await?;
    sqlx::raw_sql(HANDWRITTEN_TABLE).execute(&pool).await?;
    let bus = Bus::builder()
        .source("bench")
        .namespace("outbox")
        .connect(&redis.url())
        .await?;
    let client = redis::Client::open(redis.url())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let started = Instant::now();

    let mut figures = throughput_figures(&config, &pool, &outbox, &bus, &mut conn).await?;
    figures.extend(latency_figures(&config, &pool, &outbox, &bus, &mut conn).await?);

    println!();
    print!("{}", report::table(&figures));
    print!("{}", report::notes(&figures));
    println!();
    for f in &figures {
        println!("{}", f.json());
    }
    eprintln!(
        "tidings-bench outbox: {} figures in {:.1} s; {} miss their target",
        figures.len(),
        started.elapsed().as_secs_f64(),
        figures.iter().filter(|f| f.status() == "MISS").count()
    );
    Ok(())
}

/// The hand-written outbox: the same attributes, a flag for published.
const HANDWRITTEN_TABLE: &str = "create table handwritten_outbox (
    id bigserial primary key,
    event_id text not null,
    stream text not null,
    type text not null,
    version int not null,
    data text not null,
    time text not null,
    published boolean not null default false
);
create index handwritten_pending on handwritten_outbox (id) where not published;";

fn sample(i: usize, sent_ns: u64) -> FileUploaded {
    FileUploaded {
        file_id: format!("f-{i}"),
        filename: format!("report-{i}.pdf"),
        size: 1024 + i as u64,
        mime_type: Some("application/pdf".into()),
        tags: vec!["bench".into(), "outbox".into()],
        checksum: None,
        sent_ns,
    }
}

/// Enqueues `n` events through the outbox, 1000 to a transaction; with
/// `keys`, under that many partition keys in turn.
async fn fill_outbox(
    pool: &PgPool,
    outbox: &Outbox,
    n: usize,
    keys: Option<usize>,
) -> Result<(), BoxError> {
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut tx = pool.begin().await?;
        for &i in chunk {
            let e = sample(i, 0);
            match keys {
                None => outbox.enqueue(&mut tx, &e).await?,
                Some(k) => {
                    let key = format!("k-{}", i % k);
                    outbox
                        .enqueue_keyed(&mut tx, &key, &e, tidings::Meta::default())
                        .await?
                }
            };
        }
        tx.commit().await?;
    }
    Ok(())
}

/// Writes `n` rows of the same events into the hand-written table.
async fn fill_handwritten(pool: &PgPool, n: usize) -> Result<(), BoxError> {
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut tx = pool.begin().await?;
        for &i in chunk {
            insert_handwritten(&mut tx, &sample(i, 0)).await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

async fn insert_handwritten(
    conn: &mut sqlx::PgConnection,
    e: &FileUploaded,
) -> Result<(), BoxError> {
    let time =
        time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339)?;
    sqlx::query(
        "insert into handwritten_outbox (event_id, stream, type, version, data, time)
         values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tidings::Ulid::new().to_string())
    .bind(FileUploaded::STREAM.unwrap_or("bench"))
    .bind(FileUploaded::TYPE)
    .bind(FileUploaded::VERSION as i32)
    .bind(serde_json::to_string(e)?)
    .bind(time)
    .execute(conn)
    .await?;
    Ok(())
}

/// One round of the hand-written relay: a page of pending rows, then per
/// row an `XADD` and an `UPDATE`, each awaited; returns the rows moved.
async fn handwritten_round(
    pool: &PgPool,
    conn: &mut MultiplexedConnection,
    key: &str,
) -> Result<usize, BoxError> {
    let rows = sqlx::query(
        "select id, event_id, type, version, data, time from handwritten_outbox
         where not published order by id limit 100",
    )
    .fetch_all(pool)
    .await?;
    for row in &rows {
        let id: i64 = row.try_get(0)?;
        let event_id: String = row.try_get(1)?;
        let type_name: String = row.try_get(2)?;
        let version: i32 = row.try_get(3)?;
        let data: String = row.try_get(4)?;
        let time: String = row.try_get(5)?;
        let _: String = redis::cmd("XADD")
            .arg(key)
            .arg("*")
            .arg(&[
                ("specversion", "1.0"),
                ("id", &event_id),
                ("source", "bench"),
                ("type", &type_name),
                ("time", &time),
                ("datacontenttype", "application/json"),
                ("dataschema", FileUploaded::DATASCHEMA),
                ("dataversion", &version.to_string()),
                ("data", &data),
            ])
            .query_async(conn)
            .await?;
        sqlx::query("update handwritten_outbox set published = true where id = $1")
            .bind(id)
            .execute(pool)
            .await?;
    }
    Ok(rows.len())
}

/// The hand-written relay until its table has nothing pending.
async fn handwritten_drain(
    pool: &PgPool,
    conn: &mut MultiplexedConnection,
    key: &str,
) -> Result<usize, BoxError> {
    let mut moved = 0;
    loop {
        let n = handwritten_round(pool, conn, key).await?;
        if n == 0 {
            return Ok(moved);
        }
        moved += n;
    }
}

async fn throughput_figures(
    config: &Config,
    pool: &PgPool,
    outbox: &Outbox,
    bus: &Bus,
    conn: &mut MultiplexedConnection,
) -> Result<Vec<Figure>, BoxError> {
    let key = bus.stream_key(FileUploaded::STREAM.unwrap_or("bench"))?;
    let (mut t, mut b, mut keyed) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..config.runs {
        for side in [run % 2, 1 - run % 2, 2] {
            let _: () = redis::cmd("DEL").arg(&key).query_async(conn).await?;
            if side != 1 {
                let keys = (side == 2).then_some(100);
                eprintln!(
                    "  outbox relay: {} rows{}",
                    config.rows,
                    if keys.is_some() {
                        " under 100 keys"
                    } else {
                        ""
                    }
                );
                fill_outbox(pool, outbox, config.rows, keys).await?;
                let start = Instant::now();
                // The relay publishes what is pending, and `shutdown` returns
                // once nothing is.
                let relay = outbox
                    .relay(bus)
                    .options(RelayOptions::default())
                    .start()
                    .await?;
                let stats = relay.shutdown().await?;
                let elapsed = start.elapsed();
                check_moved(
                    "outbox relay",
                    stats.published as usize,
                    config.rows,
                    conn,
                    &key,
                )
                .await?;
                let rate = stats.published as f64 / elapsed.as_secs_f64();
                if keys.is_some() {
                    keyed.push(rate);
                } else {
                    t.push(rate);
                }
            } else {
                eprintln!("  hand-written relay: {} rows", config.handwritten_rows);
                sqlx::query("truncate handwritten_outbox")
                    .execute(pool)
                    .await?;
                fill_handwritten(pool, config.handwritten_rows).await?;
                let start = Instant::now();
                let moved = handwritten_drain(pool, conn, &key).await?;
                let elapsed = start.elapsed();
                check_moved(
                    "hand-written relay",
                    moved,
                    config.handwritten_rows,
                    conn,
                    &key,
                )
                .await?;
                b.push(moved as f64 / elapsed.as_secs_f64());
            }
        }
    }
    Ok(vec![
        Figure::from_runs(
            "outbox_relay",
            "events/s",
            Better::Higher,
            t.clone(),
            b.clone(),
        )
        .target(Target::RatioAtLeast(10.0)),
        Figure::from_runs(
            "outbox_relay_floor",
            "events/s",
            Better::Higher,
            t,
            b.clone(),
        )
        .target(Target::AtLeast(20_000.0)),
        Figure::from_runs("outbox_relay_keyed", "events/s", Better::Higher, keyed, b)
            .target(Target::RatioAtLeast(10.0)),
    ])
}

/// Fails the run unless a side moved every row into the stream.
async fn check_moved(
    side: &str,
    moved: usize,
    rows: usize,
    conn: &mut MultiplexedConnection,
    key: &str,
) -> Result<(), BoxError> {
    let len: usize = redis::cmd("XLEN").arg(key).query_async(conn).await?;
    if moved != rows || len != rows {
        return Err(
            format!("{side} moved {moved} rows and the stream has {len}, of {rows}").into(),
        );
    }
    Ok(())
}

static LATENCIES: Mutex<Vec<u64>> = Mutex::new(Vec::new());
static RECEIVED: AtomicU64 = AtomicU64::new(0);

#[handler(group = "outbox-latency")]
async fn latency_probe(event: FileUploaded, _ctx: Context) -> HandlerResult {
    let now = now_ns();
    if let Ok(mut l) = LATENCIES.lock() {
        l.push(now.saturating_sub(event.sent_ns));
    }
    RECEIVED.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Commits `n` events one per transaction at `rate` per second, each
/// stamped with the time just before its commit, through `enqueue`.
async fn commit_paced<F, Fut>(n: usize, rate: u64, mut commit: F) -> Result<(), BoxError>
where
    F: FnMut(FileUploaded) -> Fut,
    Fut: std::future::Future<Output = Result<(), BoxError>>,
{
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for i in 0..n {
        tick.tick().await;
        commit(sample(i, now_ns())).await?;
    }
    Ok(())
}

async fn wait_received(n: u64) -> Result<(), BoxError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while RECEIVED.load(Ordering::Relaxed) < n {
        if Instant::now() > deadline {
            return Err(format!(
                "{} of {n} events reached the handler in 30 s",
                RECEIVED.load(Ordering::Relaxed)
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

fn take_latencies() -> Vec<u64> {
    let mut l = LATENCIES
        .lock()
        .map(|mut l| std::mem::take(&mut *l))
        .unwrap_or_default();
    l.sort_unstable();
    l
}

async fn latency_figures(
    config: &Config,
    pool: &PgPool,
    outbox: &Outbox,
    bus: &Bus,
    conn: &mut MultiplexedConnection,
) -> Result<Vec<Figure>, BoxError> {
    let key = bus.stream_key(FileUploaded::STREAM.unwrap_or("bench"))?;
    let n = config.latency_events;
    let rate = config.latency_rate;
    let (mut t, mut b) = (Vec::new(), Vec::new());
    for run in 0..config.runs {
        for side in [run % 2, 1 - run % 2] {
            eprintln!(
                "  commit → handler, {}: {n} events at {rate}/s",
                if side == 0 { "outbox" } else { "hand-written" }
            );
            let _: () = redis::cmd("DEL").arg(&key).query_async(conn).await?;
            RECEIVED.store(0, Ordering::SeqCst);
            take_latencies();
            let worker = bus
                .consumer()
                .options(ConsumerOptions::default().block(Duration::from_millis(200)))
                .handler(latency_probe)
                .start()
                .await?;
            if side == 0 {
                let relay = outbox.relay(bus).start().await?;
                commit_paced(n, rate, |e| async move {
                    let mut tx = pool.begin().await?;
                    outbox.enqueue(&mut tx, &e).await?;
                    tx.commit().await?;
                    Ok(())
                })
                .await?;
                wait_received(n as u64).await?;
                relay.shutdown().await?;
                t.extend(take_latencies());
            } else {
                // The hand-written relay polls, a page at a time, with a
                // pause of 1 ms when it finds nothing.
                let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                let relay = {
                    let (pool, stop, key) = (pool.clone(), stop.clone(), key.clone());
                    let mut conn = conn.clone();
                    tokio::spawn(async move {
                        while !stop.load(Ordering::Relaxed) {
                            if handwritten_round(&pool, &mut conn, &key).await? == 0 {
                                tokio::time::sleep(Duration::from_millis(1)).await;
                            }
                        }
                        Ok::<(), BoxError>(())
                    })
                };
                commit_paced(n, rate, |e| async move {
                    let mut tx = pool.begin().await?;
                    insert_handwritten(&mut tx, &e).await?;
                    tx.commit().await?;
                    Ok(())
                })
                .await?;
                wait_received(n as u64).await?;
                stop.store(true, Ordering::Relaxed);
                relay.await??;
                b.extend(take_latencies());
            }
            worker.shutdown().await?;
        }
    }
    t.sort_unstable();
    b.sort_unstable();
    let ms = |v: &[u64], p: f64| report::percentile(v, p) as f64 / 1e6;
    Ok(["p50", "p99"]
        .into_iter()
        .zip([50.0, 99.0])
        .map(|(name, p)| {
            Figure::from_runs(
                format!("outbox_commit_to_handler_{name}"),
                "ms",
                Better::Lower,
                vec![ms(&t, p)],
                vec![ms(&b, p)],
            )
        })
        .collect())
}
