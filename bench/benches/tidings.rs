//! tidings beside plain redis-rs, on a private loopback Redis.
//!
//! ```text
//! cargo bench -p tidings-bench                          # full run
//! TIDINGS_BENCH_QUICK=1 cargo bench -p tidings-bench    # small, under a minute
//! cargo bench -p tidings-bench -- --only consume,decode # some figures only
//! ```
//!
//! Every figure is measured beside its baseline in the same run, with the same
//! events, alternating the two sides run by run so that the machine's noise
//! falls on both; the median of the runs is reported, and the spread shown.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::future::join_all;
use opentelemetry::trace::TracerProvider as _;
use redis::aio::MultiplexedConnection;
use tidings::{
    event, handler, Bus, ConsumerOptions, Context, Event, HandlerResult, Meta, StartFrom, Tenants,
};
use tidings_bench::events::{FileUploaded, FileUploadedV1, FileUploadedV2, Tick};
use tidings_bench::report::{self, Better, Figure, Target};
use tidings_bench::{bare, ceiling, instructions, live, macro_cost, raw, request};
use tidings_testkit::{ClusterSet, RedisOptions, RedisServer, TestCa};
use tracing_subscriber::layer::SubscriberExt;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Sizes of one run.
#[derive(Debug, Clone)]
struct Config {
    quick: bool,
    runs: usize,
    awaited: usize,
    batched: usize,
    concurrent: usize,
    tasks: usize,
    consume: usize,
    latency_secs: f64,
    latency_rounds: usize,
    rates: Vec<u64>,
    sse_clients: usize,
    sse_secs: f64,
    sse_rounds: usize,
    decode_iters: usize,
    decode_runs: usize,
    rss_events: usize,
    build_events: usize,
    build_runs: usize,
    only: Option<Vec<String>>,
}

impl Config {
    fn from_env_and_args() -> Config {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick = args.iter().any(|a| a == "--quick")
            || std::env::var("TIDINGS_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let only = args
            .iter()
            .position(|a| a == "--only")
            .and_then(|i| args.get(i + 1).cloned())
            .or_else(|| std::env::var("TIDINGS_BENCH_ONLY").ok())
            .map(|s| s.split(',').map(|p| p.trim().to_owned()).collect());
        let rss_events = args
            .iter()
            .position(|a| a == "--rss-events")
            .and_then(|i| args.get(i + 1).cloned())
            .or_else(|| std::env::var("TIDINGS_BENCH_RSS_EVENTS").ok())
            .and_then(|s| s.replace('_', "").parse().ok());
        let mut c = if quick {
            Config {
                quick,
                runs: 2,
                awaited: 2_000,
                batched: 20_000,
                concurrent: 20_000,
                tasks: 256,
                consume: 20_000,
                latency_secs: 0.6,
                latency_rounds: 2,
                rates: vec![1_000, 5_000, 10_000, 50_000],
                sse_clients: 1_000,
                sse_secs: 1.0,
                sse_rounds: 2,
                decode_iters: 50_000,
                decode_runs: 3,
                rss_events: 50_000,
                build_events: 20,
                build_runs: 1,
                only,
            }
        } else {
            Config {
                quick,
                runs: 5,
                awaited: 10_000,
                batched: 200_000,
                concurrent: 200_000,
                tasks: 256,
                consume: 200_000,
                latency_secs: 4.0,
                latency_rounds: 8,
                rates: vec![1_000, 5_000, 10_000, 50_000],
                sse_clients: 1_000,
                sse_secs: 8.0,
                sse_rounds: 4,
                decode_iters: 300_000,
                decode_runs: 7,
                rss_events: 1_000_000,
                build_events: 200,
                build_runs: 3,
                only,
            }
        };
        if let Some(n) = rss_events {
            c.rss_events = n;
        }
        if let Some(n) = std::env::var("TIDINGS_BENCH_SSE_CLIENTS")
            .ok()
            .and_then(|s| s.replace('_', "").parse().ok())
        {
            c.sse_clients = n;
        }
        c
    }

    /// Whether figures named `name…` are to be measured: `--only publish`
    /// selects every publish figure, `--only publish_batch` one of them.
    fn wants(&self, name: &str) -> bool {
        self.only.as_ref().is_none_or(|o| {
            o.iter()
                .any(|x| name.starts_with(x.as_str()) || x.starts_with(name))
        })
    }
}

/// Nanoseconds since the process's benchmark origin.
fn now_ns() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

fn main() {
    if let Ok(role) = std::env::var(CHILD_ROLE_ENV) {
        if let Some(side) = role.strip_prefix("decode-") {
            std::process::exit(decode_child(side));
        }
        std::process::exit(child_main(&role));
    }
    let config = Config::from_env_and_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(config)) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("benchmark failed: {e}");
            std::process::exit(1);
        }
    }
}

async fn run(config: Config) -> Result<(), BoxError> {
    let server = RedisServer::try_start()?;
    let url = server.url();
    eprintln!(
        "tidings-bench: {} run on redis-server {} (pid {}), {} cores",
        if config.quick { "quick" } else { "full" },
        url,
        server.pid(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let client = redis::Client::open(url.as_str())?;
    let mut figures = Vec::new();
    let started = Instant::now();

    if config.wants("publish") {
        figures.extend(publish_figures(&config, &url, &client).await?);
    }
    if config.wants("consume") {
        figures.extend(consume_figures(&config, &url, &client).await?);
    }
    let ceilings = ceiling_figures(&config, server.port(), &figures)?;
    figures.extend(ceilings);
    if config.wants("order") || config.wants("delayed") {
        figures.extend(order_figures(&config, &url, &client).await?);
    }
    if config.wants("payload") {
        figures.extend(payload_figures(&config, &url, &client).await?);
    }
    if config.wants("latency") {
        figures.extend(latency_figures(&config, &url, &client).await?);
    }
    if config.wants("tls") {
        figures.extend(tls_figures(&config, &url).await?);
    }
    if config.wants("cluster") {
        figures.extend(cluster_figures(&config, &url).await?);
    }
    if config.wants("metrics") {
        figures.extend(metrics_figures(&config, &url)?);
    }
    if config.wants("request") {
        figures.extend(request_figures(&config, &url, &client).await?);
    }
    if config.wants("sse") {
        figures.extend(sse_figures(&config, &url, &client).await?);
    }
    if config.wants("decode") {
        figures.extend(decode_figures(&config));
    }
    if config.wants("rss") {
        figures.push(rss_figure(&config, &url, &client).await?);
    }
    if config.wants("tenants") {
        figures.extend(tenants_figures(&config, &url, &client).await?);
    }
    if std::env::var_os("TIDINGS_BENCH_REDIS_STATS").is_some() {
        // Where the server's time went: usec_per_call of each command.
        let mut conn = client.get_multiplexed_async_connection().await?;
        let stats: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn)
            .await?;
        eprintln!("{stats}");
        let cpu: String = redis::cmd("INFO").arg("cpu").query_async(&mut conn).await?;
        eprintln!("{cpu}");
    }
    drop(server);
    if config.wants("build") {
        figures.push(macro_cost::figure(config.build_events, config.build_runs)?);
    }

    report::note_floors_above_the_ceiling(
        &mut figures,
        &[
            (
                "publish_batch_100",
                &["redis_benchmark_xadd_p100", "redis_benchmark_xadd_p100_c4"],
            ),
            ("publish_batch_100_c4", &["redis_benchmark_xadd_p100_c4"]),
            (
                "consume_ack",
                &[
                    "redis_benchmark_xreadgroup_100",
                    "redis_benchmark_xreadgroup_100_c4",
                ],
            ),
        ],
    );
    report::note_bounds_the_baseline_misses(&mut figures);
    report::note_times_against_instructions(
        &mut figures,
        &[("decode_current", "decode_current_instructions")],
    );
    println!();
    print!("{}", report::table(&figures));
    print!("{}", report::notes(&figures));
    println!();
    for f in &figures {
        println!("{}", f.json());
    }
    eprintln!(
        "tidings-bench: {} figures in {:.1} s; {} miss their target",
        figures.len(),
        started.elapsed().as_secs_f64(),
        figures.iter().filter(|f| f.status() == "MISS").count()
    );
    Ok(())
}

fn progress(what: &str) {
    eprintln!("  measuring {what}…");
}

async fn connect(url: &str, namespace: &str) -> Result<Bus, BoxError> {
    Ok(Bus::builder()
        .namespace(namespace)
        .source("bench")
        .connect(url)
        .await?)
}

fn samples(n: usize) -> Vec<FileUploaded> {
    (0..n as u64).map(|i| FileUploaded::sample(i, 0)).collect()
}

fn per_second(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

/// Events per second of `tasks` tasks run at once, task `k` publishing
/// `events[k * per_task..(k + 1) * per_task]` with `job`.
async fn from_tasks<F, Fut, E>(
    tasks: usize,
    per_task: usize,
    events: &std::sync::Arc<Vec<FileUploaded>>,
    job: F,
) -> Result<f64, BoxError>
where
    F: Fn(std::sync::Arc<Vec<FileUploaded>>, std::ops::Range<usize>) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>> + Send + 'static,
    E: Into<BoxError> + Send + 'static,
{
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|k| tokio::spawn(job(events.clone(), k * per_task..(k + 1) * per_task)))
        .collect();
    for r in join_all(handles).await {
        r?.map_err(Into::into)?;
    }
    Ok(per_second(tasks * per_task, start.elapsed()))
}

async fn del(conn: &mut MultiplexedConnection, key: &str) -> Result<(), BoxError> {
    let _: i64 = redis::cmd("DEL").arg(key).query_async(conn).await?;
    Ok(())
}

// ---------------------------------------------------------------- publish

async fn publish_figures(
    config: &Config,
    url: &str,
    client: &redis::Client,
) -> Result<Vec<Figure>, BoxError> {
    let bus = connect(url, "pub").await?;
    let key = bus.stream_key("bench").unwrap();
    let raw_key = "raw:{bench}".to_owned();
    let mut conn = client.get_multiplexed_async_connection().await?;
    let events = samples(config.awaited.max(config.batched).max(config.concurrent));

    progress("awaited publish");
    let (mut t, mut b) = (Vec::new(), Vec::new());
    // One untimed round of each first, so that connections and allocators are warm.
    let awaited_runs = if config.wants("publish_awaited") {
        config.runs
    } else {
        0
    };
    for run in 0..=awaited_runs {
        let n = if run == 0 { 200 } else { config.awaited };
        let start = Instant::now();
        for e in &events[..n] {
            bus.publish(e).await?;
        }
        let tidings = per_second(n, start.elapsed());
        let start = Instant::now();
        for e in &events[..n] {
            raw::xadd(&mut conn, &raw_key, e).await?;
        }
        let baseline = per_second(n, start.elapsed());
        if run > 0 {
            t.push(tidings);
            b.push(baseline);
        }
        del(&mut conn, &key).await?;
        del(&mut conn, &raw_key).await?;
    }
    let mut out = Vec::new();
    if !t.is_empty() {
        out.push(
            Figure::from_runs("publish_awaited", "events/s", Better::Higher, t, b)
                .target(Target::RatioAtLeast(0.9)),
        );
    }
    // What a task that publishes holds, and what each level it is awaited
    // through moves: the future of one awaited publish (made, not run),
    // beside the raw loop's `XADD`.
    if config.wants("publish_future") {
        let tidings = std::mem::size_of_val(&bus.publish(&events[0])) as f64;
        let baseline = std::mem::size_of_val(&raw::xadd(&mut conn, &raw_key, &events[0])) as f64;
        out.push(
            Figure::from_runs(
                "publish_future_bytes",
                "bytes",
                Better::Lower,
                vec![tidings],
                vec![baseline],
            )
            .target(Target::AtMost(4096.0)),
        );
    }

    progress("batched publish (100 per batch)");
    let (mut t, mut b, mut bare) = (Vec::new(), Vec::new(), Vec::new());
    let batched_runs = if config.wants("publish_batch") {
        config.runs
    } else {
        0
    };
    let port = match client.get_connection_info().addr() {
        redis::ConnectionAddr::Tcp(_, port) => *port,
        other => return Err(format!("the benchmark's server is not on TCP: {other}").into()),
    };
    let batch_events = std::sync::Arc::new(events[..config.batched].to_vec());
    for _ in 0..batched_runs {
        let n = config.batched;
        let start = Instant::now();
        for chunk in events[..n].chunks(100) {
            bus.publish_batch(chunk).await?;
        }
        t.push(per_second(n, start.elapsed()));
        let start = Instant::now();
        for chunk in events[..n].chunks(100) {
            raw::xadd_pipeline(&mut conn, &raw_key, chunk).await?;
        }
        b.push(per_second(n, start.elapsed()));
        del(&mut conn, &key).await?;
        del(&mut conn, &raw_key).await?;
        // The same batches from the bare blocking client, on a thread of
        // its own so that it blocks no runtime worker.
        let (events, key) = (batch_events.clone(), raw_key.clone());
        bare.push(
            tokio::task::spawn_blocking(move || bare::xadd_batches(port, &key, &events, 100))
                .await??,
        );
        del(&mut conn, &raw_key).await?;
    }
    if !t.is_empty() {
        out.push(
            Figure::from_runs(
                "publish_batch_100",
                "events/s",
                Better::Higher,
                t.clone(),
                b,
            )
            .target(Target::RatioAtLeast(0.8))
            .target(Target::AtLeast(300_000.0)),
        );
        out.push(Figure::from_runs(
            "bare_client_xadd_p100",
            "events/s",
            Better::Higher,
            t,
            bare,
        ));
    }

    progress("batched publish from 4 tasks (100 per batch)");
    let (mut t, mut b) = (Vec::new(), Vec::new());
    let batch_tasks = 4;
    let per_task = config.batched / batch_tasks;
    let shared = std::sync::Arc::new(events);
    let batch_runs = if config.wants("publish_batch_100_c4") {
        config.runs
    } else {
        0
    };
    for _ in 0..batch_runs {
        let job = |events: std::sync::Arc<Vec<FileUploaded>>, part: std::ops::Range<usize>| {
            let bus = bus.clone();
            async move {
                for chunk in events[part].chunks(100) {
                    bus.publish_batch(chunk).await?;
                }
                Ok::<_, tidings::Error>(())
            }
        };
        t.push(from_tasks(batch_tasks, per_task, &shared, job).await?);
        let job = |events: std::sync::Arc<Vec<FileUploaded>>, part: std::ops::Range<usize>| {
            let (mut conn, key) = (conn.clone(), raw_key.clone());
            async move {
                for chunk in events[part].chunks(100) {
                    raw::xadd_pipeline(&mut conn, &key, chunk).await?;
                }
                Ok::<_, redis::RedisError>(())
            }
        };
        b.push(from_tasks(batch_tasks, per_task, &shared, job).await?);
        del(&mut conn, &key).await?;
        del(&mut conn, &raw_key).await?;
    }
    if !t.is_empty() {
        out.push(
            Figure::from_runs("publish_batch_100_c4", "events/s", Better::Higher, t, b)
                .target(Target::RatioAtLeast(0.8))
                .target(Target::AtLeast(300_000.0)),
        );
    }

    progress(&format!("concurrent publish ({} tasks)", config.tasks));
    let (mut t, mut b) = (Vec::new(), Vec::new());
    let per_task = config.concurrent / config.tasks;
    let concurrent_runs = if config.wants("publish_concurrent") {
        config.runs
    } else {
        0
    };
    for _ in 0..concurrent_runs {
        let job = |events: std::sync::Arc<Vec<FileUploaded>>, part: std::ops::Range<usize>| {
            let bus = bus.clone();
            async move {
                for e in &events[part] {
                    bus.publish(e).await?;
                }
                Ok::<_, tidings::Error>(())
            }
        };
        t.push(from_tasks(config.tasks, per_task, &shared, job).await?);
        let job = |events: std::sync::Arc<Vec<FileUploaded>>, part: std::ops::Range<usize>| {
            let (mut conn, key) = (conn.clone(), raw_key.clone());
            async move {
                for e in &events[part] {
                    raw::xadd(&mut conn, &key, e).await?;
                }
                Ok::<_, redis::RedisError>(())
            }
        };
        b.push(from_tasks(config.tasks, per_task, &shared, job).await?);
        del(&mut conn, &key).await?;
        del(&mut conn, &raw_key).await?;
    }
    if !t.is_empty() {
        out.push(
            Figure::from_runs(
                format!("publish_concurrent_{}", config.tasks),
                "events/s",
                Better::Higher,
                t,
                b,
            )
            .target(Target::RatioAtLeast(0.8)),
        );
    }
    Ok(out)
}

// ---------------------------------------------------------------- consume

static CONSUMED: AtomicU64 = AtomicU64::new(0);

/// The no-op handler with the default options: one delivery at a time, in
/// stream order.
#[handler(group = "bench-consume")]
async fn consume_noop(event: FileUploaded, _ctx: Context) -> HandlerResult {
    std::hint::black_box(&event);
    CONSUMED.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// The same with 100 deliveries at once, for a handler that needs no order.
#[handler(group = "bench-consume-parallel", concurrency = 100)]
async fn consume_noop_parallel(event: FileUploaded, _ctx: Context) -> HandlerResult {
    std::hint::black_box(&event);
    CONSUMED.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Events per second of a worker with `handler` through `n` events from the
/// beginning of the stream, until the last one is acknowledged.
async fn tidings_consume<H, Args>(
    bus: &Bus,
    conn: &mut MultiplexedConnection,
    handler: H,
    group: &str,
    n: usize,
) -> Result<f64, BoxError>
where
    H: tidings::IntoHandler<Args>,
    <H::Handler as tidings::Handler>::Event: Event,
{
    let stream = <<H::Handler as tidings::Handler>::Event as Event>::STREAM.unwrap_or("bench");
    let key = bus.stream_key(stream).unwrap();
    destroy_group(conn, &key, group).await?;
    CONSUMED.store(0, Ordering::SeqCst);
    let options = ConsumerOptions::default()
        .start_from(StartFrom::Beginning)
        .name("bench")
        .block(Duration::from_millis(100));
    let start = Instant::now();
    let worker = bus
        .consumer()
        .options(options)
        .handler(handler)
        .start()
        .await?;
    while CONSUMED.load(Ordering::Relaxed) < n as u64 {
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    while raw::pending(conn, &key, group).await? > 0 {
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    let rate = per_second(n, start.elapsed());
    worker.shutdown().await?;
    Ok(rate)
}

/// Fills `bus`'s `bench` stream with `n` events, in pipelines of 1000.
async fn prefill(bus: &Bus, n: usize) -> Result<(), BoxError> {
    let chunk: Vec<FileUploaded> = samples(1000);
    let mut left = n;
    while left > 0 {
        let k = left.min(chunk.len());
        bus.publish_batch(&chunk[..k]).await?;
        left -= k;
    }
    Ok(())
}

async fn destroy_group(
    conn: &mut MultiplexedConnection,
    key: &str,
    group: &str,
) -> Result<(), BoxError> {
    let _: redis::Value = redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg(key)
        .arg(group)
        .query_async(conn)
        .await?;
    Ok(())
}

async fn consume_figures(
    config: &Config,
    url: &str,
    client: &redis::Client,
) -> Result<Vec<Figure>, BoxError> {
    progress(&format!("consume + ack ({} events)", config.consume));
    let bus = connect(url, "consume").await?;
    let key = bus.stream_key("bench").unwrap();
    let mut conn = client.get_multiplexed_async_connection().await?;
    let n = config.consume;
    prefill(&bus, n).await?;
    let (mut t, mut tp, mut b) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..config.runs {
        t.push(tidings_consume(&bus, &mut conn, consume_noop, "bench-consume", n).await?);
        tp.push(
            tidings_consume(
                &bus,
                &mut conn,
                consume_noop_parallel,
                "bench-consume-parallel",
                n,
            )
            .await?,
        );

        destroy_group(&mut conn, &key, "raw-consume").await?;
        let mut reader = client.get_multiplexed_async_connection().await?;
        let start = Instant::now();
        raw::create_group(&mut reader, &key, "raw-consume").await?;
        let acked = raw::consume(&mut reader, &key, "raw-consume", n, |e| {
            std::hint::black_box(&e);
        })
        .await?;
        b.push(per_second(acked, start.elapsed()));
    }
    del(&mut conn, &key).await?;
    Ok(vec![
        Figure::from_runs("consume_ack", "events/s", Better::Higher, t, b.clone())
            .target(Target::RatioAtLeast(0.8))
            .target(Target::AtLeast(250_000.0)),
        Figure::from_runs(
            "consume_ack_concurrency_100",
            "events/s",
            Better::Higher,
            tp,
            b,
        ),
    ])
}

// ---------------------------------------------------------------- tenants

/// Tenants of the `tenants` figures.
const TENANTS: usize = 1_000;

fn tenant_names() -> Vec<String> {
    (0..TENANTS).map(|i| format!("t{i}")).collect()
}

/// The `bench` stream key of each tenant.
fn tenant_keys(bus: &Bus, names: &[String]) -> Result<Vec<String>, BoxError> {
    names
        .iter()
        .map(|t| Ok(bus.tenant(t)?.stream_key("bench")?))
        .collect()
}

/// Fills the `bench` streams of `names` with `n` events in all, spread
/// evenly, 50 tenants at a time.
async fn prefill_tenants(bus: &Bus, names: &[String], n: usize) -> Result<(), BoxError> {
    let per = (n / names.len()).max(1);
    let chunk = samples(per);
    for some in names.chunks(50) {
        let sent = join_all(some.iter().map(|t| {
            let chunk = &chunk;
            async move { bus.tenant(t)?.publish_batch(chunk).await }
        }))
        .await;
        for r in sent {
            r?;
        }
    }
    Ok(())
}

/// The clients connected to the server (`CLIENT LIST`).
async fn clients(conn: &mut MultiplexedConnection) -> Result<usize, BoxError> {
    let list: String = redis::cmd("CLIENT").arg("LIST").query_async(conn).await?;
    Ok(list.lines().filter(|l| !l.trim().is_empty()).count())
}

/// Entries pending in `group` over every key, summed by the server.
async fn pending_over(
    conn: &mut MultiplexedConnection,
    keys: &[String],
    group: &str,
) -> Result<i64, BoxError> {
    // Summed in the server, one reply: a pipeline of an `XPENDING` per key
    // had this process parse 1,000 replies per look, inside the time
    // measured, while the worker it measures ran beside it.
    static SUM: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
        redis::Script::new(
            "local n = 0 \
             for _, k in ipairs(KEYS) do n = n + redis.call('XPENDING', k, ARGV[1])[1] end \
             return n",
        )
    });
    Ok(SUM.key(keys).arg(group).invoke_async(conn).await?)
}

/// What one run of a worker over [`TENANTS`] tenants measured.
struct TenantsRun {
    rate: f64,
    start_ms: f64,
    connections: usize,
}

/// A worker over every tenant of `names` through their `n` events from the
/// beginning of their streams, until the last is acknowledged: its rate,
/// how long `start()` took, and how many connections it opened.
async fn tidings_tenants_consume(
    bus: &Bus,
    conn: &mut MultiplexedConnection,
    names: &[String],
    n: usize,
) -> Result<TenantsRun, BoxError> {
    let keys = tenant_keys(bus, names)?;
    let mut pipe = redis::pipe();
    for k in &keys {
        pipe.cmd("XGROUP")
            .arg("DESTROY")
            .arg(k)
            .arg("bench-consume");
    }
    let _: Vec<redis::Value> = pipe.query_async(conn).await?;
    CONSUMED.store(0, Ordering::SeqCst);
    let before = clients(conn).await?;
    let options = ConsumerOptions::default()
        .start_from(StartFrom::Beginning)
        .name("bench")
        .block(Duration::from_millis(100));
    let start = Instant::now();
    let worker = bus
        .consumer()
        .options(options)
        .handler(consume_noop)
        .tenants(Tenants::list(names.to_vec()))
        .start()
        .await?;
    let start_ms = start.elapsed().as_secs_f64() * 1e3;
    while CONSUMED.load(Ordering::Relaxed) < n as u64 {
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    while pending_over(conn, &keys, "bench-consume").await? > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let rate = per_second(n, start.elapsed());
    let connections = clients(conn).await?.saturating_sub(before);
    worker.shutdown().await?;
    Ok(TenantsRun {
        rate,
        start_ms,
        connections,
    })
}

/// Consume + ack of the same number of events spread over 1,000 tenant
/// streams (one worker, `.tenants(…)`) beside one stream, in one run; the
/// worker's start time and connections; and its peak RSS beside a
/// hand-written loop per tenant (each with its connection), in processes
/// of their own.
async fn tenants_figures(
    config: &Config,
    url: &str,
    client: &redis::Client,
) -> Result<Vec<Figure>, BoxError> {
    let n = config.consume - config.consume % TENANTS;
    progress(&format!(
        "consume + ack over {TENANTS} tenant streams beside one stream ({n} events)"
    ));
    let bus = connect(url, "tenants").await?;
    let names = tenant_names();
    let key = bus.stream_key("bench")?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    prefill(&bus, n).await?;
    prefill_tenants(&bus, &names, n).await?;
    let (mut t, mut b, mut started, mut one_started, mut conns) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..config.runs {
        let run = tidings_tenants_consume(&bus, &mut conn, &names, n).await?;
        t.push(run.rate);
        started.push(run.start_ms);
        conns.push(run.connections as f64);
        b.push(tidings_consume(&bus, &mut conn, consume_noop, "bench-consume", n).await?);
        // The start of a worker over one stream, beside that over tenants.
        let start = Instant::now();
        let worker = bus.consumer().handler(consume_noop).start().await?;
        one_started.push(start.elapsed().as_secs_f64() * 1e3);
        worker.shutdown().await?;
    }
    let per_tenant_loop = vec![TENANTS as f64; conns.len()];
    let mut figures = vec![
        Figure::from_runs("tenants_consume_ack", "events/s", Better::Higher, t, b)
            .target(Target::RatioAtLeast(0.5)),
        Figure::from_runs("tenants_start", "ms", Better::Lower, started, one_started)
            .target(Target::AtMost(50.0)),
        Figure::from_runs(
            "tenants_connections",
            "conns",
            Better::Lower,
            conns,
            per_tenant_loop,
        )
        .target(Target::AtMost(4.0)),
    ];
    figures[2].notes.push(format!(
        "baseline: one connection per tenant, as a hand-written loop per tenant holds ({TENANTS})"
    ));
    figures[0].notes.push(
        "baseline: the same worker over one stream with the same events, in the same run"
            .to_owned(),
    );
    progress(&format!("worker peak RSS over {TENANTS} tenants"));
    let tidings = child_rss("rss-tenants", url, n)?;
    let baseline = child_rss("rss-tenants-raw", url, n)?;
    figures.push(
        Figure::from_runs(
            "tenants_worker_peak_rss",
            "MiB",
            Better::Lower,
            vec![tidings],
            vec![baseline],
        )
        .target(Target::RatioAtMost(2.0)),
    );
    let keys = tenant_keys(&bus, &names)?;
    for some in keys.chunks(100) {
        let _: i64 = redis::cmd("DEL").arg(some).query_async(&mut conn).await?;
    }
    del(&mut conn, &key).await?;
    Ok(figures)
}

// ---------------------------------------------------------------- order and delay

/// How many accounts the keyed events spread over.
const ORDER_KEYS: u64 = 1_000;

/// A change to one of [`ORDER_KEYS`] accounts: handled in order per account.
#[event(stream = "bench-keyed", version = 1, key = account)]
#[derive(Debug, Clone)]
pub struct AccountChanged {
    /// The account: the key.
    pub account: String,
    /// Counts up.
    pub n: u64,
}

/// The same payload with no key, for the figure beside it.
#[event(stream = "bench-unkeyed", version = 1)]
#[derive(Debug, Clone)]
pub struct AccountNoted {
    /// The account.
    pub account: String,
    /// Counts up.
    pub n: u64,
}

#[handler(group = "bench-keyed", concurrency = 100)]
async fn consume_keyed(event: AccountChanged, _ctx: Context) -> HandlerResult {
    std::hint::black_box(&event);
    CONSUMED.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

#[handler(group = "bench-unkeyed", concurrency = 100)]
async fn consume_unkeyed(event: AccountNoted, _ctx: Context) -> HandlerResult {
    std::hint::black_box(&event);
    CONSUMED.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Consume + ack at `concurrency = 100` of events spread over 1,000 keys,
/// handled in order per key, beside the same payloads without a key; and
/// delayed events moved into their stream per second by the script, beside
/// the same move written by hand (ZRANGEBYSCORE, then XADD and ZREM in one
/// MULTI/EXEC per 1,000).
async fn order_figures(
    config: &Config,
    url: &str,
    client: &redis::Client,
) -> Result<Vec<Figure>, BoxError> {
    let mut figures = Vec::new();
    let mut conn = client.get_multiplexed_async_connection().await?;
    let n = config.consume;
    if config.wants("order") {
        progress(&format!(
            "consume + ack, {n} events over {ORDER_KEYS} keys in order, concurrency 100"
        ));
        let bus = connect(url, "order").await?;
        let keyed: Vec<AccountChanged> = (0..n as u64)
            .map(|i| AccountChanged {
                account: format!("acct-{}", i % ORDER_KEYS),
                n: i,
            })
            .collect();
        let unkeyed: Vec<AccountNoted> = keyed
            .iter()
            .map(|e| AccountNoted {
                account: e.account.clone(),
                n: e.n,
            })
            .collect();
        for chunk in keyed.chunks(1000) {
            bus.publish_batch(chunk).await?;
        }
        for chunk in unkeyed.chunks(1000) {
            bus.publish_batch(chunk).await?;
        }
        let (mut t, mut b) = (Vec::new(), Vec::new());
        for _ in 0..config.runs {
            t.push(tidings_consume(&bus, &mut conn, consume_keyed, "bench-keyed", n).await?);
            b.push(tidings_consume(&bus, &mut conn, consume_unkeyed, "bench-unkeyed", n).await?);
        }
        del(&mut conn, &bus.stream_key("bench-keyed")?).await?;
        del(&mut conn, &bus.stream_key("bench-unkeyed")?).await?;
        figures.push(
            Figure::from_runs(
                "order_consume_ack_keyed_c100",
                "events/s",
                Better::Higher,
                t,
                b,
            )
            .target(Target::RatioAtLeast(0.5)),
        );
    }
    if config.wants("delayed") {
        progress(&format!(
            "{n} delayed events moved into their stream as they fall due"
        ));
        let bus = connect(url, "delayed").await?;
        let key = bus.stream_key("bench-unkeyed")?;
        let delayed = format!("{key}:delayed");
        let events: Vec<AccountNoted> = (0..n as u64)
            .map(|i| AccountNoted {
                account: format!("acct-{}", i % ORDER_KEYS),
                n: i,
            })
            .collect();
        let (mut t, mut b) = (Vec::new(), Vec::new());
        for _ in 0..config.runs {
            // Delayed by 5 ms, all due by the time they are moved.
            let fill = || async {
                for e in &events {
                    bus.publish_with(e, Meta::default().deliver_after(Duration::from_millis(5)))
                        .await?;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
                Ok::<_, BoxError>(())
            };
            fill().await?;
            let start = Instant::now();
            let mut moved = 0;
            while moved < n {
                let done = bus.deliver_due("bench-unkeyed").await?;
                if done.moved == 0 {
                    return Err("delayed events were not due".into());
                }
                moved += done.moved;
            }
            t.push(per_second(moved, start.elapsed()));
            del(&mut conn, &key).await?;

            fill().await?;
            let start = Instant::now();
            let moved = raw::move_due(&mut conn, &delayed, &key, n).await?;
            b.push(per_second(moved, start.elapsed()));
            del(&mut conn, &key).await?;
        }
        figures.push(
            Figure::from_runs("delayed_due_per_second", "events/s", Better::Higher, t, b)
                .target(Target::RatioAtLeast(0.8)),
        );
    }
    Ok(figures)
}

// ---------------------------------------------------------------- payload

/// Seconds of CPU the server has used (`used_cpu_sys` + `used_cpu_user`).
async fn server_cpu(conn: &mut MultiplexedConnection) -> Result<f64, BoxError> {
    let info: String = redis::cmd("INFO").arg("cpu").query_async(conn).await?;
    let mut total = 0.0;
    for line in info.lines() {
        if let Some((name, value)) = line.split_once(':') {
            if name == "used_cpu_sys" || name == "used_cpu_user" {
                total += value.trim().parse::<f64>()?;
            }
        }
    }
    Ok(total)
}

/// Nanoseconds of CPU each of this process's threads has run, by thread
/// id (the first field of each `/proc/self/task/<tid>/schedstat`): the
/// client's CPU, the server being another process.
fn client_cpu() -> Result<std::collections::HashMap<u64, u64>, BoxError> {
    let mut threads = std::collections::HashMap::new();
    for task in std::fs::read_dir("/proc/self/task")? {
        let task = task?;
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        // A thread may end between the listing and the reading.
        let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        let ns = stat.split_whitespace().next().ok_or("empty schedstat")?;
        threads.insert(tid, ns.parse::<u64>()?);
    }
    Ok(threads)
}

/// Nanoseconds of CPU the process's threads have run since `before`: each
/// live thread's time past its reading then (all of it for a thread born
/// since). A thread that ended meanwhile takes its time with it; the
/// runtime's workers, which do the work, do not end.
fn client_cpu_since(before: &std::collections::HashMap<u64, u64>) -> Result<u64, BoxError> {
    Ok(client_cpu()?
        .into_iter()
        .map(|(tid, ns)| ns.saturating_sub(before.get(&tid).copied().unwrap_or(0)))
        .sum())
}

/// Consume + ack of events whose payload is about 250 B, 4 KiB and 64 KiB,
/// beside the raw redis-rs loop on the same entries, taking turns; the
/// server's CPU per event serving each reader (`INFO cpu`), and the
/// client's, lower better. With both, the note of each figure says how far
/// the machine's cores let a client that keeps the server and itself busy
/// at once go, beside the loop that waits for each reply.
async fn payload_figures(
    config: &Config,
    url: &str,
    client: &redis::Client,
) -> Result<Vec<Figure>, BoxError> {
    progress("consume + ack by payload size (250 B, 4 KiB, 64 KiB)");
    let bus = connect(url, "payload").await?;
    let key = bus.stream_key("bench").unwrap();
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut figures = Vec::new();
    for (name, pad, n) in [
        ("250b", 0usize, config.consume),
        ("4kb", 4096, (config.consume / 4).max(2_000)),
        ("64kb", 65_536, (config.consume / 40).max(500)),
    ] {
        del(&mut conn, &key).await?;
        // What a worker's start and stop cost the client, on an empty
        // stream: left out of its CPU per event below, the raw loop having
        // no such cost (at 64 KiB, some 7 us per event of the quick run).
        let _: redis::Value = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&key)
            .arg("empty")
            .arg("$")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await?;
        let before = client_cpu()?;
        tidings_consume(&bus, &mut conn, consume_noop, "bench-consume", 0).await?;
        let fixed = client_cpu_since(&before)?;
        let chunk: Vec<FileUploaded> = (0..100u64)
            .map(|i| {
                let mut e = FileUploaded::sample(i, 0);
                if pad > 0 {
                    e.checksum = Some("x".repeat(pad));
                }
                e
            })
            .collect();
        let mut left = n;
        while left > 0 {
            let k = left.min(chunk.len());
            bus.publish_batch(&chunk[..k]).await?;
            left -= k;
        }
        let (mut t, mut b, mut t_cpu, mut b_cpu) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut t_client, mut b_client) = (Vec::new(), Vec::new());
        let per_event = |ns: u64| ns as f64 / 1e3 / n as f64;
        for _ in 0..config.runs {
            let cpu = server_cpu(&mut conn).await?;
            let cpu_before = client_cpu()?;
            t.push(tidings_consume(&bus, &mut conn, consume_noop, "bench-consume", n).await?);
            t_client.push(per_event(
                client_cpu_since(&cpu_before)?.saturating_sub(fixed),
            ));
            t_cpu.push((server_cpu(&mut conn).await? - cpu) * 1e6 / n as f64);

            destroy_group(&mut conn, &key, "raw-payload").await?;
            let mut reader = client.get_multiplexed_async_connection().await?;
            let cpu = server_cpu(&mut conn).await?;
            let cpu_before = client_cpu()?;
            let start = Instant::now();
            raw::create_group(&mut reader, &key, "raw-payload").await?;
            let acked = raw::consume(&mut reader, &key, "raw-payload", n, |e| {
                std::hint::black_box(&e);
            })
            .await?;
            b.push(per_second(acked, start.elapsed()));
            b_client.push(per_event(client_cpu_since(&cpu_before)?));
            b_cpu.push((server_cpu(&mut conn).await? - cpu) * 1e6 / n as f64);
        }
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get()) as f64;
        let median = |v: &[f64]| report::median(v);
        // Busy at once, the client and the server together take
        // (client + server) / cores per event, and neither can go faster
        // than its own CPU per event.
        let (client_us, server_us) = (median(&t_client), median(&t_cpu));
        let ceiling = 1e6
            / ((client_us + server_us) / cores)
                .max(client_us)
                .max(server_us);
        let ceiling_note = format!(
            "with {cores} cores, tidings's CPU per event here ({client_us:.1} us in the client, \
             {server_us:.1} us in Redis) bounds a client that keeps both busy at once at \
             {ceiling:.0} events/s: {:.2}x the raw loop's median",
            ceiling / median(&b)
        );
        let mut figure = Figure::from_runs(
            format!("consume_ack_payload_{name}"),
            "events/s",
            Better::Higher,
            t,
            b,
        );
        figure.notes.push(ceiling_note);
        figures.push(figure);
        figures.push(Figure::from_runs(
            format!("redis_cpu_per_event_payload_{name}"),
            "us/event",
            Better::Lower,
            t_cpu,
            b_cpu,
        ));
        figures.push(Figure::from_runs(
            format!("client_cpu_per_event_payload_{name}"),
            "us/event",
            Better::Lower,
            t_client,
            b_client,
        ));
    }
    del(&mut conn, &key).await?;
    Ok(figures)
}

// ---------------------------------------------------------------- TLS

/// tidings over TLS (`rediss://`, a second private server with a CA made
/// for the run) beside tidings over plain TCP (the run's server), the two
/// taking turns: awaited publish, batches of 100, and consume + ack. Over
/// TLS the hand-written `XADD`/`XREADGROUP` paths give way to redis-rs, so
/// the figures hold both the cost of TLS and that of the fallback; redis-rs
/// alone over TLS beside over TCP (`tls_raw_consume_ack`) parts the two.
async fn tls_figures(config: &Config, plain_url: &str) -> Result<Vec<Figure>, BoxError> {
    progress("publish and consume over TLS, beside plain TCP");
    let ca = TestCa::try_generate()?;
    let server = RedisServer::try_with_options(RedisOptions::default().tls(&ca))?;
    let tls_url = server.url();
    let plain_client = redis::Client::open(plain_url)?;
    let mut plain_conn = plain_client.get_multiplexed_async_connection().await?;
    let mut tls_conn = server.connection().await;
    let sides = [
        (connect(&tls_url, "tls").await?, true),
        (connect(plain_url, "tls").await?, false),
    ];
    let events = samples(config.awaited.max(config.batched));
    let (mut awaited, mut batched, mut consumed, mut raw_consumed) = (
        [Vec::new(), Vec::new()],
        [Vec::new(), Vec::new()],
        [Vec::new(), Vec::new()],
        [Vec::new(), Vec::new()],
    );
    // A first round untimed, then the sides take turns, the first one
    // alternating from round to round.
    for run in 0..=config.runs {
        let n_awaited = if run == 0 { 200 } else { config.awaited };
        let n_batched = if run == 0 { 1_000 } else { config.batched };
        let n_consume = if run == 0 { 1_000 } else { config.consume };
        for turn in 0..2 {
            let side = (turn + run) % 2;
            let (bus, tls) = &sides[side];
            let conn = if *tls { &mut tls_conn } else { &mut plain_conn };
            let key = bus.stream_key("bench").unwrap();
            del(conn, &key).await?;

            let start = Instant::now();
            for e in &events[..n_awaited] {
                bus.publish(e).await?;
            }
            let a = per_second(n_awaited, start.elapsed());
            del(conn, &key).await?;

            let start = Instant::now();
            for chunk in events[..n_batched].chunks(100) {
                bus.publish_batch(chunk).await?;
            }
            let b = per_second(n_batched, start.elapsed());
            del(conn, &key).await?;

            prefill(bus, n_consume).await?;
            let c = tidings_consume(bus, conn, consume_noop, "bench-consume", n_consume).await?;

            let url = if *tls { tls_url.as_str() } else { plain_url };
            let client = match tls {
                true => {
                    tidings::streams::Endpoint::parse(url, &Default::default())?
                        .client()
                        .await?
                }
                false => redis::Client::open(url)?,
            };
            destroy_group(conn, &key, "raw-consume").await?;
            let mut reader = client.get_multiplexed_async_connection().await?;
            let start = Instant::now();
            raw::create_group(&mut reader, &key, "raw-consume").await?;
            let acked = raw::consume(&mut reader, &key, "raw-consume", n_consume, |e| {
                std::hint::black_box(&e);
            })
            .await?;
            let r = per_second(acked, start.elapsed());
            del(conn, &key).await?;
            if run > 0 {
                awaited[side].push(a);
                batched[side].push(b);
                consumed[side].push(c);
                raw_consumed[side].push(r);
            }
        }
    }
    let [awaited_tls, awaited_tcp] = awaited;
    let [batched_tls, batched_tcp] = batched;
    let [consumed_tls, consumed_tcp] = consumed;
    let [raw_tls, raw_tcp] = raw_consumed;
    Ok(vec![
        Figure::from_runs(
            "tls_publish_awaited",
            "events/s",
            Better::Higher,
            awaited_tls,
            awaited_tcp,
        ),
        Figure::from_runs(
            "tls_publish_batch_100",
            "events/s",
            Better::Higher,
            batched_tls,
            batched_tcp,
        ),
        Figure::from_runs(
            "tls_consume_ack",
            "events/s",
            Better::Higher,
            consumed_tls,
            consumed_tcp,
        ),
        Figure::from_runs(
            "tls_raw_consume_ack",
            "events/s",
            Better::Higher,
            raw_tls,
            raw_tcp,
        ),
    ])
}

// ---------------------------------------------------------------- cluster

/// Publish and consume on a 3-master cluster (each master with a
/// replica), beside one node with one replica (so that both sides' Redis
/// replicates every write, and what differs is the routing) and beside the
/// bench's one node without a replica (a note on each figure), taking
/// turns.
async fn cluster_figures(config: &Config, single_url: &str) -> Result<Vec<Figure>, BoxError> {
    progress("publish and consume on a 3-master cluster, beside one node with a replica");
    let cluster = ClusterSet::try_start()?;
    let options = RedisOptions::default().config("repl-diskless-sync-delay", "0");
    let master = RedisServer::try_with_options(options.clone())?;
    let _replica = RedisServer::try_with_options(options.replica_of(master.port()))?;
    let replicated_url = master.url();
    let sides = [
        connect(&cluster.url(), "cluster").await?,
        connect(&replicated_url, "cluster").await?,
        connect(single_url, "cluster").await?,
    ];
    let key = sides[0].stream_key("bench").unwrap();
    // Each side's stream commands beside the bus go to the node holding
    // the stream's slot.
    let owner = cluster.master_of(&key)?;
    let mut conns = Vec::new();
    for url in [
        format!("redis://127.0.0.1:{owner}"),
        replicated_url.clone(),
        single_url.to_owned(),
    ] {
        conns.push(
            redis::Client::open(url)?
                .get_multiplexed_async_connection()
                .await?,
        );
    }
    let events = samples(config.awaited.max(config.batched));
    let mut awaited: [Vec<f64>; 3] = Default::default();
    let mut batched: [Vec<f64>; 3] = Default::default();
    let mut consumed: [Vec<f64>; 3] = Default::default();
    for run in 0..=config.runs {
        let n_awaited = if run == 0 { 200 } else { config.awaited };
        let n_batched = if run == 0 { 1_000 } else { config.batched };
        let n_consume = if run == 0 { 1_000 } else { config.consume };
        for turn in 0..3 {
            let side = (turn + run) % 3;
            let bus = &sides[side];
            let conn = &mut conns[side];
            del(conn, &key).await?;

            let start = Instant::now();
            for e in &events[..n_awaited] {
                bus.publish(e).await?;
            }
            let a = per_second(n_awaited, start.elapsed());
            del(conn, &key).await?;

            let start = Instant::now();
            for chunk in events[..n_batched].chunks(100) {
                bus.publish_batch(chunk).await?;
            }
            let b = per_second(n_batched, start.elapsed());
            del(conn, &key).await?;

            prefill(bus, n_consume).await?;
            let c = tidings_consume(bus, conn, consume_noop, "bench-consume", n_consume).await?;
            del(conn, &key).await?;
            if run > 0 {
                awaited[side].push(a);
                batched[side].push(b);
                consumed[side].push(c);
            }
        }
    }
    let figure = |name: &str, [cluster, replicated, single]: [Vec<f64>; 3]| {
        let bare = Figure::from_runs(name, "events/s", Better::Higher, cluster.clone(), single);
        let mut f = Figure::from_runs(name, "events/s", Better::Higher, cluster, replicated)
            .target(Target::RatioAtLeast(0.7));
        f.notes.push(format!(
            "beside one node without a replica: {:.2}x",
            bare.tidings / bare.baseline
        ));
        f
    };
    let mut figures = vec![
        figure("cluster_publish_awaited", awaited),
        figure("cluster_publish_batch_100", batched),
        figure("cluster_consume_ack", consumed),
    ];
    // What Redis itself serves for the same entry on the cluster's master
    // of the stream's slot, beside the node with a replica: how much of
    // the figures above is the server's, not the routing's.
    if ceiling::available() {
        let n = if config.quick { 20_000 } else { 100_000 };
        for (name, pipeline) in [
            ("cluster_redis_benchmark_xadd", 1),
            ("cluster_redis_benchmark_xadd_p100", 100),
        ] {
            let n = if pipeline == 1 { n / 10 } else { n };
            let (mut on_cluster, mut on_one) = (Vec::new(), Vec::new());
            for run in 0..config.runs.max(2) {
                for side in [run % 2, 1 - run % 2] {
                    match side {
                        0 => on_cluster.push(ceiling::xadd(owner, &key, 1, pipeline, n)?),
                        _ => on_one.push(ceiling::xadd(master.port(), &key, 1, pipeline, n)?),
                    }
                }
            }
            figures.push(Figure::from_runs(
                name,
                "events/s",
                Better::Higher,
                on_cluster,
                on_one,
            ));
        }
    }
    Ok(figures)
}

// ---------------------------------------------------------------- metrics

/// Publish (awaited) and consume + ack with a Prometheus recorder of the
/// `metrics` facade installed, then with every span recorded by an
/// OpenTelemetry tracer too, beside the same with neither, taking turns.
/// The recorder is a thread's own (`metrics::with_local_recorder`), so both
/// sides run on one thread's runtime, where it applies to every task.
fn metrics_figures(config: &Config, url: &str) -> Result<Vec<Figure>, BoxError> {
    progress("publish and consume with metrics and spans recorded, beside neither");
    let (url, runs, awaited, consume) =
        (url.to_owned(), config.runs, config.awaited, config.consume);
    let measured = std::thread::spawn(move || -> Result<Vec<Figure>, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let events = samples(awaited);
        let one_run = || {
            rt.block_on(async {
                let bus = connect(&url, "metrics").await?;
                let key = bus.stream_key("bench").unwrap();
                let client = redis::Client::open(url.as_str())?;
                let mut conn = client.get_multiplexed_async_connection().await?;
                del(&mut conn, &key).await?;
                let start = Instant::now();
                for e in &events {
                    bus.publish(e).await?;
                }
                let published = per_second(events.len(), start.elapsed());
                prefill(&bus, consume).await?;
                let consumed =
                    tidings_consume(&bus, &mut conn, consume_noop, "bench-consume", consume)
                        .await?;
                del(&mut conn, &key).await?;
                Ok::<_, BoxError>((published, consumed))
            })
            .map_err(|e| e.to_string())
        };
        // Per side (none, metrics, metrics and spans): publish and consume runs.
        let mut sides: [(Vec<f64>, Vec<f64>); 3] = Default::default();
        // A first round untimed, then the sides take turns, starting from a
        // different one each round.
        for run in 0..=runs {
            for k in 0..3 {
                let side = (run + k) % 3;
                let (p, c) = match side {
                    0 => one_run()?,
                    1 => metrics::with_local_recorder(&recorder, one_run)?,
                    _ => {
                        // An OpenTelemetry tracer behind `tracing-opentelemetry`,
                        // every span sampled.
                        let subscriber = tracing_subscriber::registry().with(
                            tracing_opentelemetry::layer()
                                .with_tracer(provider.tracer("bench"))
                                .with_tracked_inactivity(false)
                                .with_threads(false),
                        );
                        tracing::subscriber::with_default(subscriber, || {
                            metrics::with_local_recorder(&recorder, one_run)
                        })?
                    }
                };
                if run > 0 {
                    sides[side].0.push(p);
                    sides[side].1.push(c);
                }
            }
        }
        // The recorder saw the events: the figures measured what they say.
        let rendered = recorder.handle().render();
        if !rendered.contains("messaging_client_sent_messages")
            || !rendered.contains("messaging_process_duration")
        {
            return Err("the recorder saw no tidings series".to_owned());
        }
        // What one span costs through the same layer with no field at all,
        // which no instrumentation can go under: the floor of the ratio.
        let floor_ns = {
            let subscriber = tracing_subscriber::registry().with(
                tracing_opentelemetry::layer()
                    .with_tracer(provider.tracer("bench"))
                    .with_tracked_inactivity(false)
                    .with_threads(false),
            );
            let spans = 20_000u32;
            tracing::subscriber::with_default(subscriber, || {
                let start = Instant::now();
                for _ in 0..spans {
                    let span = tracing::info_span!("bench.bare");
                    rt.block_on(tracing::Instrument::instrument(async {}, span));
                }
                let with = start.elapsed();
                let start = Instant::now();
                for _ in 0..spans {
                    rt.block_on(async {});
                }
                with.saturating_sub(start.elapsed()).as_nanos() as f64 / f64::from(spans)
            })
        };
        let [(pub_off, con_off), (pub_metrics, con_metrics), (pub_traced, con_traced)] = sides;
        let figure = |name: &str, on: Vec<f64>, off: &[f64], target: Option<f64>| {
            let f = Figure::from_runs(name, "events/s", Better::Higher, on, off.to_vec());
            match target {
                Some(t) => f.target(Target::RatioAtLeast(t)),
                None => f,
            }
        };
        Ok(vec![
            figure(
                "publish_awaited_metrics_on",
                pub_metrics,
                &pub_off,
                Some(0.9),
            ),
            figure("consume_ack_metrics_on", con_metrics, &con_off, Some(0.9)),
            figure(
                "publish_awaited_metrics_and_spans_on",
                pub_traced,
                &pub_off,
                Some(0.9),
            ),
            {
                let mut f = figure(
                    "consume_ack_metrics_and_spans_on",
                    con_traced,
                    &con_off,
                    Some(0.9),
                );
                let per_event_ns = 1e9 / f.baseline;
                f.notes.push(format!(
                    "a span with no field through tracing-opentelemetry costs {floor_ns:.0} ns in this run \
                     (whatever the sampler: the layer builds it before sampling), against {per_event_ns:.0} ns \
                     per event consumed with spans off: no per-event span can do better than {:.2}x",
                    per_event_ns / (per_event_ns + floor_ns)
                ));
                f
            },
        ])
    })
    .join()
    .map_err(|_| "the metrics figures' thread panicked")?;
    Ok(measured?)
}

// ---------------------------------------------------------------- ceiling

/// `redis-benchmark` on the same entry, beside the tidings figure of this
/// run that it bounds: for each tidings figure measured, the figures of
/// Redis's own C client doing the same (or less) through the same server.
fn ceiling_figures(
    config: &Config,
    port: u16,
    measured: &[Figure],
) -> Result<Vec<Figure>, BoxError> {
    let runs = config.runs.min(3);
    if !ceiling::available() {
        eprintln!("  redis-benchmark or redis-cli is not on PATH: no redis_benchmark_* figures");
        return Ok(Vec::new());
    }
    let tidings_runs = |name: &str| {
        measured
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.tidings_runs.clone())
    };
    let mut out = Vec::new();
    let mut figure = |name: &str, of: &str, measure: &dyn Fn() -> Result<f64, BoxError>| {
        let Some(t) = tidings_runs(of) else {
            return Ok::<(), BoxError>(());
        };
        let b = (0..runs)
            .map(|_| measure())
            .collect::<Result<Vec<_>, _>>()?;
        out.push(Figure::from_runs(name, "events/s", Better::Higher, t, b));
        Ok(())
    };
    let key = "tidings:{bench}:ceiling";
    if [
        "publish_awaited",
        "publish_batch_100",
        "publish_batch_100_c4",
    ]
    .iter()
    .any(|f| tidings_runs(f).is_some())
    {
        progress("redis-benchmark: XADD of the same entry");
    }
    figure("redis_benchmark_xadd", "publish_awaited", &|| {
        ceiling::xadd(port, key, 1, 1, config.awaited)
    })?;
    figure("redis_benchmark_xadd_p100", "publish_batch_100", &|| {
        ceiling::xadd(port, key, 1, 100, config.batched)
    })?;
    figure(
        "redis_benchmark_xadd_p100_c4",
        "publish_batch_100_c4",
        &|| ceiling::xadd(port, key, 4, 100, config.batched),
    )?;
    if tidings_runs("consume_ack").is_some() {
        progress("redis-benchmark: XREADGROUP COUNT 100 of the same entry");
    }
    figure("redis_benchmark_xreadgroup_100", "consume_ack", &|| {
        ceiling::xreadgroup_100(port, key, 1, config.consume)
    })?;
    figure("redis_benchmark_xreadgroup_100_c4", "consume_ack", &|| {
        ceiling::xreadgroup_100(port, key, 4, config.consume)
    })?;
    Ok(out)
}

// ---------------------------------------------------------------- latency

static LATENCIES: Mutex<Vec<u64>> = Mutex::new(Vec::new());
static RECORD_FROM: AtomicU64 = AtomicU64::new(u64::MAX);
static RECEIVED: AtomicU64 = AtomicU64::new(0);

fn record(sent_ns: u64) {
    let now = now_ns();
    RECEIVED.fetch_add(1, Ordering::Relaxed);
    if sent_ns >= RECORD_FROM.load(Ordering::Relaxed) {
        if let Ok(mut l) = LATENCIES.lock() {
            l.push(now.saturating_sub(sent_ns));
        }
    }
}

#[handler(group = "bench-latency")]
async fn latency_probe(event: FileUploaded, _ctx: Context) -> HandlerResult {
    record(event.sent_ns);
    Ok(())
}

/// Sends `rate` events per second for `secs` and returns how many were sent.
///
/// A thread of its own sleeps until each event is due (and sends at once when
/// it is late), so that events are spread evenly over each millisecond rather
/// than sent in bursts per timer tick, which the runtime's 1 ms timer would
/// do; each event is stamped just before it is handed to the runtime.
async fn paced<F, Fut>(rate: u64, secs: f64, send: F) -> Result<u64, BoxError>
where
    F: Fn(FileUploaded) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), BoxError>> + Send + 'static,
{
    let runtime = tokio::runtime::Handle::current();
    let total = (rate as f64 * secs) as u64;
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let pacer = std::thread::spawn(move || {
        let gap = Duration::from_nanos(1_000_000_000 / rate.max(1));
        let start = Instant::now();
        for i in 0..total {
            let mut event = FileUploaded::sample(i, 0);
            let due = start + gap * i as u32;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            event.sent_ns = now_ns();
            let sending = send(event);
            let done = done_tx.clone();
            runtime.spawn(async move {
                let _ = done.send(sending.await);
            });
        }
    });
    for _ in 0..total {
        match done_rx.recv().await {
            Some(r) => r?,
            None => return Err("the pacing thread stopped early".into()),
        }
    }
    tokio::task::spawn_blocking(move || pacer.join())
        .await?
        .map_err(|_| "the pacing thread panicked")?;
    Ok(total)
}

fn take_latencies() -> Vec<u64> {
    let mut l = LATENCIES
        .lock()
        .map(|mut l| std::mem::take(&mut *l))
        .unwrap_or_default();
    l.sort_unstable();
    l
}

async fn wait_received(n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while RECEIVED.load(Ordering::Relaxed) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn latency_figures(
    config: &Config,
    url: &str,
    client: &redis::Client,
) -> Result<Vec<Figure>, BoxError> {
    let mut out = Vec::new();
    let warmup = Duration::from_millis(100);
    let rounds = config.latency_rounds.max(1);
    let secs = config.latency_secs / rounds as f64;
    for &rate in &config.rates {
        progress(&format!(
            "end-to-end latency at {rate} events/s ({rounds} rounds of {secs:.1} s a side)"
        ));
        // The sides take turns, the first of each round swapped, so that a
        // stretch of the host's noise falls on both; the samples of every
        // round are pooled.
        let (mut t, mut b) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            for side in [round % 2, 1 - round % 2] {
                if side == 0 {
                    t.extend(tidings_latency(url, client, rate, secs, warmup).await?);
                } else {
                    b.extend(raw_latency(client, rate, secs, warmup).await?);
                }
            }
        }
        t.sort_unstable();
        b.sort_unstable();

        let label = if rate >= 1000 {
            format!("{}k", rate / 1000)
        } else {
            rate.to_string()
        };
        for (name, p) in [("p50", 50.0), ("p99", 99.0), ("max", 100.0)] {
            let ms = |v: &[u64]| report::percentile(v, p) as f64 / 1e6;
            let mut f = Figure::from_runs(
                format!("latency_{label}_{name}"),
                "ms",
                Better::Lower,
                vec![ms(&t)],
                vec![ms(&b)],
            );
            match (rate, name) {
                (5_000, "p99") => f = f.target(Target::AtMost(0.5)),
                (10_000, "p99") => f = f.target(Target::AtMost(1.0)),
                _ => {}
            }
            out.push(f);
        }
        eprintln!("    {} samples (tidings), {} (baseline)", t.len(), b.len());
    }
    Ok(out)
}

/// Round trips of `bus.request` against a hand-written `XADD` + `XREAD
/// BLOCK` round trip, sequential, the sides taking turns.
async fn request_figures(
    config: &Config,
    url: &str,
    client: &redis::Client,
) -> Result<Vec<Figure>, BoxError> {
    let n = if config.quick { 1_000 } else { 5_000 };
    let rounds = if config.quick { 2 } else { 4 };
    progress(&format!(
        "request/response round trips ({rounds} rounds of {n} a side)"
    ));
    let mut conn = client.get_multiplexed_async_connection().await?;
    let (mut t, mut b) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for side in [round % 2, 1 - round % 2] {
            if side == 0 {
                t.extend(request::tidings_round_trips(url, n, 100).await?);
            } else {
                b.extend(request::raw_round_trips(client, n, 100).await?);
            }
            request::clean(&mut conn).await?;
        }
    }
    t.sort_unstable();
    b.sort_unstable();
    Ok([("p50", 50.0), ("p99", 99.0)]
        .into_iter()
        .map(|(name, p)| {
            let ms = |v: &[u64]| report::percentile(v, p) as f64 / 1e6;
            Figure::from_runs(
                format!("request_round_trip_{name}"),
                "ms",
                Better::Lower,
                vec![ms(&t)],
                vec![ms(&b)],
            )
        })
        .collect())
}

/// No response timeout: a baseline that falls behind the pace shows it in
/// its latencies, instead of failing the run after 500 ms.
async fn patient_connection(
    client: &redis::Client,
) -> Result<redis::aio::MultiplexedConnection, BoxError> {
    let patient = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    Ok(client
        .get_multiplexed_async_connection_with_config(&patient)
        .await?)
}

/// Latencies of one stretch of tidings: `bus.publish` at `rate` for `secs`,
/// a worker on the bus's own connections; the samples of the first
/// `warmup` left out.
async fn tidings_latency(
    url: &str,
    client: &redis::Client,
    rate: u64,
    secs: f64,
    warmup: Duration,
) -> Result<Vec<u64>, BoxError> {
    let bus = connect(url, "latency").await?;
    let key = bus.stream_key("bench").unwrap();
    let mut conn = patient_connection(client).await?;
    del(&mut conn, &key).await?;
    let worker = bus
        .consumer()
        .options(ConsumerOptions::default().block(Duration::from_millis(200)))
        .handler(latency_probe)
        .start()
        .await?;
    RECEIVED.store(0, Ordering::SeqCst);
    RECORD_FROM.store(now_ns() + warmup.as_nanos() as u64, Ordering::SeqCst);
    let publisher = bus.clone();
    let sent = paced(rate, secs, move |e| {
        let bus = publisher.clone();
        async move {
            bus.publish(&e).await?;
            Ok(())
        }
    })
    .await
    .map_err(|e| format!("tidings, publishing at {rate}/s: {e}"))?;
    wait_received(sent).await;
    worker.shutdown().await?;
    let t = take_latencies();
    del(&mut conn, &key).await?;
    Ok(t)
}

/// Latencies of one stretch of the baseline: raw `XADD` at `rate` for
/// `secs`, a raw `XREADGROUP BLOCK` loop on a connection of its own.
async fn raw_latency(
    client: &redis::Client,
    rate: u64,
    secs: f64,
    warmup: Duration,
) -> Result<Vec<u64>, BoxError> {
    let mut conn = patient_connection(client).await?;
    let raw_key = "raw-latency:{bench}".to_owned();
    del(&mut conn, &raw_key).await?;
    let mut reader = patient_connection(client).await?;
    raw::create_group(&mut reader, &raw_key, "raw-latency").await?;
    RECEIVED.store(0, Ordering::SeqCst);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loop_key = raw_key.clone();
    let loop_stop = stop.clone();
    let consumer = tokio::spawn(async move {
        raw::consume_until(&mut reader, &loop_key, "raw-latency", &loop_stop, |e| {
            record(e.sent_ns)
        })
        .await
    });
    RECORD_FROM.store(now_ns() + warmup.as_nanos() as u64, Ordering::SeqCst);
    let (publisher, publish_key) = (conn.clone(), raw_key.clone());
    let sent = paced(rate, secs, move |e| {
        let mut conn = publisher.clone();
        let key = publish_key.clone();
        async move {
            raw::xadd(&mut conn, &key, &e).await?;
            Ok(())
        }
    })
    .await
    .map_err(|e| format!("baseline, XADD at {rate}/s: {e}"))?;
    wait_received(sent).await;
    stop.store(true, Ordering::SeqCst);
    consumer.await??;
    let b = take_latencies();
    del(&mut conn, &raw_key).await?;
    Ok(b)
}

// ---------------------------------------------------------------- live views

/// Events per second of the live-view figures.
const SSE_RATE: u64 = 1_000;

/// Browsers on one pattern of the SSE bridge against one direct Pub/Sub
/// subscriber: publish → receive delays at [`SSE_RATE`], the two sides
/// taking turns as the latency figures do.
async fn sse_figures(
    config: &Config,
    url: &str,
    client: &redis::Client,
) -> Result<Vec<Figure>, BoxError> {
    let clients = config.sse_clients;
    let rounds = config.sse_rounds.max(1);
    let secs = config.sse_secs / rounds as f64;
    progress(&format!(
        "SSE: {clients} browsers on one pattern at {SSE_RATE} events/s ({rounds} rounds of {secs:.1} s a side)"
    ));
    let warmup = Duration::from_millis(100);
    let (mut t, mut b) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for side in [round % 2, 1 - round % 2] {
            if side == 0 {
                t.extend(sse_latency(url, client, clients, secs, warmup).await?);
            } else {
                b.extend(direct_latency(url, client, secs, warmup).await?);
            }
        }
    }
    t.sort_unstable();
    b.sort_unstable();
    eprintln!(
        "    {} deliveries to browsers, {} to the direct subscriber",
        t.len(),
        b.len()
    );
    let mut out = Vec::new();
    for (name, p) in [("p50", 50.0), ("p99", 99.0), ("max", 100.0)] {
        let ms = |v: &[u64]| report::percentile(v, p) as f64 / 1e6;
        out.push(Figure::from_runs(
            format!("sse_{clients}_browsers_1k_{name}"),
            "ms",
            Better::Lower,
            vec![ms(&t)],
            vec![ms(&b)],
        ));
    }
    Ok(out)
}

/// Publishes ticks at [`SSE_RATE`] for `secs`, then the tick that ends
/// the stretch.
async fn publish_ticks(bus: &Bus, secs: f64) -> Result<(), BoxError> {
    let publisher = bus.clone();
    paced(SSE_RATE, secs, move |e| {
        let bus = publisher.clone();
        async move {
            bus.publish(&Tick { sent_ns: e.sent_ns }).await?;
            Ok(())
        }
    })
    .await?;
    bus.publish(&Tick { sent_ns: 0 }).await?;
    Ok(())
}

/// One stretch of the bridge: `clients` browsers on one pattern, served
/// from one Redis subscription (checked), and their delays.
async fn sse_latency(
    url: &str,
    client: &redis::Client,
    clients: usize,
    secs: f64,
    warmup: Duration,
) -> Result<Vec<u64>, BoxError> {
    use tidings_web::{Bridge, Grant};
    let bus = connect(url, "sse").await?;
    let bridge = Bridge::new(bus.clone(), |_: &axum::http::request::Parts| {
        Ok(Grant::root())
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = bridge.router();
    // As a live-view server should: each event goes out when it comes.
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let from = std::sync::Arc::new(AtomicU64::new(u64::MAX));
    let mut readers = Vec::with_capacity(clients);
    for chunk in (0..clients).collect::<Vec<_>>().chunks(100) {
        let opened =
            join_all(chunk.iter().map(|_| {
                live::browser(addr, "/sse/channel/live?pattern=tick", from.clone(), now_ns)
            }))
            .await;
        for r in opened {
            readers.push(r?);
        }
    }
    let mut conn = patient_connection(client).await?;
    let patterns: i64 = redis::cmd("PUBSUB")
        .arg("NUMPAT")
        .query_async(&mut conn)
        .await?;
    if bridge.open_subscriptions() != 1 || patterns != 1 {
        return Err(format!(
            "{clients} browsers on one pattern hold {} bridge subscriptions and {patterns} Redis patterns, not one",
            bridge.open_subscriptions()
        )
        .into());
    }
    from.store(now_ns() + warmup.as_nanos() as u64, Ordering::SeqCst);
    publish_ticks(&bus, secs).await?;
    let mut delays = Vec::new();
    for r in readers {
        delays.extend(tokio::time::timeout(Duration::from_secs(30), r).await??);
    }
    server.abort();
    Ok(delays)
}

/// One stretch of the baseline: a direct `PSUBSCRIBE` of the same
/// channel, the same ticks published through the bus.
async fn direct_latency(
    url: &str,
    client: &redis::Client,
    secs: f64,
    warmup: Duration,
) -> Result<Vec<u64>, BoxError> {
    let bus = connect(url, "sse").await?;
    let from = std::sync::Arc::new(AtomicU64::new(u64::MAX));
    let pattern = bus.channel_pattern("live", "tick")?;
    let reader = live::direct(client, &pattern, from.clone(), now_ns).await?;
    from.store(now_ns() + warmup.as_nanos() as u64, Ordering::SeqCst);
    publish_ticks(&bus, secs).await?;
    Ok(tokio::time::timeout(Duration::from_secs(30), reader).await??)
}

// ---------------------------------------------------------------- decode

/// Nanoseconds per call of `f`, over `iters` calls.
fn time_per_op<T>(iters: usize, mut f: impl FnMut() -> T) -> f64 {
    let start = Instant::now();
    for _ in 0..iters {
        std::hint::black_box(f());
    }
    start.elapsed().as_nanos() as f64 / iters as f64
}

fn decode_figures(config: &Config) -> Vec<Figure> {
    progress("decode");
    let current = serde_json::to_vec(&FileUploaded::sample(42, 1_234_567)).unwrap_or_default();
    let v1 = serde_json::to_vec(&FileUploadedV1::sample(42)).unwrap_or_default();
    let iters = config.decode_iters;
    let (mut t, mut b, mut tu, mut bu) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 0..config.decode_runs {
        // The side going first swapped each run.
        for side in [run % 2, 1 - run % 2] {
            if side == 0 {
                b.push(time_per_op(iters, || decode_serde(&current)));
                bu.push(time_per_op(iters, || upcast_serde(&v1)));
            } else {
                t.push(time_per_op(iters, || decode_tidings(3, &current)));
                tu.push(time_per_op(iters, || decode_tidings(1, &v1)));
            }
        }
    }
    let mut out = vec![
        Figure::best_of_runs("decode_current", "ns/event", Better::Lower, t, b)
            .target(Target::RatioAtMost(1.05)),
        Figure::best_of_runs("decode_v1_upcast_to_v3", "ns/event", Better::Lower, tu, bu),
    ];
    match decode_instructions(config) {
        Ok(Some(f)) => out.push(f),
        Ok(None) => eprintln!("  valgrind is not on PATH: no decode_current_instructions figure"),
        Err(e) => eprintln!("  decode_current_instructions not measured: {e}"),
    }
    out
}

fn decode_serde(data: &[u8]) -> Option<FileUploaded> {
    serde_json::from_slice::<FileUploaded>(std::hint::black_box(data)).ok()
}

fn upcast_serde(data: &[u8]) -> Option<FileUploaded> {
    serde_json::from_slice::<FileUploadedV1>(std::hint::black_box(data))
        .ok()
        .map(|e| FileUploaded::from(FileUploadedV2::from(e)))
}

fn decode_tidings(version: u32, data: &[u8]) -> Option<FileUploaded> {
    FileUploaded::decode(std::hint::black_box(version), std::hint::black_box(data)).ok()
}

/// Instructions per decode of the current version, each side counted by
/// callgrind in a child process of its own: what the time figure measures,
/// without the noise of the machine or of code placement.
fn decode_instructions(config: &Config) -> Result<Option<Figure>, BoxError> {
    if !instructions::available() {
        return Ok(None);
    }
    progress("decode, instructions per event under callgrind");
    let exe = std::env::current_exe()?;
    let n = if config.quick { 5_000 } else { 20_000 };
    let per_event = |side: &str| -> Result<f64, BoxError> {
        let run = |n: u64| {
            instructions::count(
                &exe,
                &[
                    (CHILD_ROLE_ENV, format!("decode-{side}")),
                    ("TIDINGS_BENCH_N", n.to_string()),
                ],
            )
        };
        Ok(instructions::per_call(run(n)?, run(0)?, n))
    };
    let tidings = per_event("tidings")?;
    let baseline = per_event("serde")?;
    Ok(Some(
        Figure::from_runs(
            "decode_current_instructions",
            "instr/event",
            Better::Lower,
            vec![tidings],
            vec![baseline],
        )
        .target(Target::RatioAtMost(1.05)),
    ))
}

/// A child process decoding the current version `TIDINGS_BENCH_N` times,
/// through tidings (`side` = `tidings`) or serde_json (`serde`).
fn decode_child(side: &str) -> i32 {
    let Some(n) = std::env::var("TIDINGS_BENCH_N")
        .ok()
        .and_then(|n| n.parse::<u64>().ok())
    else {
        eprintln!("decode child: TIDINGS_BENCH_N is not a number");
        return 2;
    };
    let current = serde_json::to_vec(&FileUploaded::sample(42, 1_234_567)).unwrap_or_default();
    let decode: fn(&[u8]) -> Option<FileUploaded> = match side {
        "tidings" => |d| decode_tidings(3, d),
        "serde" => decode_serde,
        other => {
            eprintln!("decode child: unknown side `{other}`");
            return 2;
        }
    };
    for _ in 0..n {
        if std::hint::black_box(decode(&current)).is_none() {
            eprintln!("decode child: the sample did not decode");
            return 1;
        }
    }
    0
}

// ---------------------------------------------------------------- memory

const CHILD_ROLE_ENV: &str = "TIDINGS_BENCH_CHILD";

static RSS_HANDLED: AtomicU64 = AtomicU64::new(0);

#[handler(group = "bench-rss")]
async fn rss_noop(event: FileUploaded, _ctx: Context) -> HandlerResult {
    std::hint::black_box(&event);
    RSS_HANDLED.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

async fn rss_figure(
    config: &Config,
    url: &str,
    client: &redis::Client,
) -> Result<Figure, BoxError> {
    let n = config.rss_events;
    progress(&format!("worker peak RSS with a backlog of {n} events"));
    let bus = connect(url, "rss").await?;
    let key = bus.stream_key("bench").unwrap();
    prefill(&bus, n).await?;
    let tidings = child_rss("rss-tidings", url, n)?;
    let baseline = child_rss("rss-raw", url, n)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    del(&mut conn, &key).await?;
    Ok(Figure::from_runs(
        "worker_peak_rss",
        "MiB",
        Better::Lower,
        vec![tidings],
        vec![baseline],
    )
    .target(Target::AtMost(64.0)))
}

/// Runs this executable as a worker process that consumes the backlog and
/// reports its peak RSS (`VmHWM`), in MiB.
fn child_rss(role: &str, url: &str, n: usize) -> Result<f64, BoxError> {
    let exe = std::env::current_exe()?;
    let out = Command::new(exe)
        .env(CHILD_ROLE_ENV, role)
        .env("TIDINGS_BENCH_URL", url)
        .env("TIDINGS_BENCH_N", n.to_string())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "worker process `{role}` failed ({}): {}{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("vmhwm_kib "))
        .ok_or_else(|| format!("worker process `{role}` did not report VmHWM: {stdout}"))?;
    let secs = stdout
        .lines()
        .find_map(|l| l.strip_prefix("seconds "))
        .unwrap_or("?");
    eprintln!("    {role}: {n} events in {secs} s");
    Ok(line.trim().parse::<f64>()? / 1024.0)
}

fn child_main(role: &str) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    match runtime.block_on(child(role)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("worker `{role}` failed: {e}");
            1
        }
    }
}

async fn child(role: &str) -> Result<(), BoxError> {
    let url = std::env::var("TIDINGS_BENCH_URL")?;
    let n: usize = std::env::var("TIDINGS_BENCH_N")?.parse()?;
    let namespace = match role.starts_with("rss-tenants") {
        true => "tenants",
        false => "rss",
    };
    let bus = connect(&url, namespace).await?;
    let key = bus.stream_key("bench").unwrap();
    let client = redis::Client::open(url.as_str())?;
    let start = Instant::now();
    match role {
        "rss-tenants" => {
            let worker = bus
                .consumer()
                .options(
                    ConsumerOptions::default()
                        .start_from(StartFrom::Beginning)
                        .block(Duration::from_millis(100)),
                )
                .handler(rss_noop)
                .tenants(Tenants::list(tenant_names()))
                .start()
                .await?;
            while RSS_HANDLED.load(Ordering::Relaxed) < n as u64 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            worker.shutdown().await?;
        }
        "rss-tenants-raw" => {
            // One loop per tenant, each with its connection: what a
            // service writes by hand to read many tenants' streams.
            let per = n / TENANTS;
            let mut loops = Vec::new();
            for key in tenant_keys(&bus, &tenant_names())? {
                let client = client.clone();
                loops.push(tokio::spawn(async move {
                    // A thousand connections made at once: none of redis-rs's
                    // default time limits, which are for one.
                    let config = redis::AsyncConnectionConfig::new()
                        .set_connection_timeout(Some(Duration::from_secs(30)))
                        .set_response_timeout(None);
                    let mut reader = client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?;
                    raw::create_group(&mut reader, &key, "raw-rss").await?;
                    raw::consume(&mut reader, &key, "raw-rss", per, |e| {
                        std::hint::black_box(&e);
                    })
                    .await?;
                    Ok::<(), BoxError>(())
                }));
            }
            for l in join_all(loops).await {
                l??;
            }
        }
        "rss-tidings" => {
            let worker = bus
                .consumer()
                .options(
                    ConsumerOptions::default()
                        .start_from(StartFrom::Beginning)
                        .block(Duration::from_millis(100)),
                )
                .handler(rss_noop)
                .start()
                .await?;
            while RSS_HANDLED.load(Ordering::Relaxed) < n as u64 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            worker.shutdown().await?;
        }
        "rss-raw" => {
            let mut reader = client.get_multiplexed_async_connection().await?;
            raw::create_group(&mut reader, &key, "raw-rss").await?;
            raw::consume(&mut reader, &key, "raw-rss", n, |e| {
                std::hint::black_box(&e);
            })
            .await?;
        }
        other => return Err(format!("unknown worker role `{other}`").into()),
    }
    println!("seconds {:.2}", start.elapsed().as_secs_f64());
    let status = std::fs::read_to_string("/proc/self/status")?;
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .ok_or("no VmHWM in /proc/self/status")?;
    println!("vmhwm_kib {}", hwm.trim());
    Ok(())
}
