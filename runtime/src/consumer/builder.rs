//! What a worker is made of (handlers, their retry policies, shared state,
//! options) and how it starts: one group task per (stream, group).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use super::partition::{Partitions, SpecOf};
use super::priority::Gate;
use super::read::run_group;
use super::tenants::{checked, deliver_due_many_loop, discover, DelayedKeys, Kind, Tenants};
use super::worker::{GroupTask, Worker};
use super::{pause, stopped, ConsumerOptions, GroupSpec, HandlerSlot, RetryPolicy};
use crate::bus::{
    check_name, delayed_key, forbidden_in_name, level_key, on_streams, retry_stream_key, Backend,
    Bus, Priority, ReaderLife, MAX_NAME_LEN,
};
use crate::error::Error;
use crate::handler::erase::{Erase, ErasedHandler};
use crate::handler::{Handler, IntoHandler, States};
use crate::transport::{StartFrom, StreamTransport};
use crate::Event;

impl Bus {
    /// Builds a consumer: add handlers, then `start()`.
    ///
    /// ```text
    /// let worker = bus.consumer().handler(index_file).start().await?;
    /// worker.shutdown().await?;
    /// ```
    pub fn consumer(&self) -> ConsumerBuilder {
        ConsumerBuilder::new(self.clone())
    }
}

/// Builds a worker: handlers, shared state, options; then [`ConsumerBuilder::start`].
#[must_use]
pub struct ConsumerBuilder {
    bus: Bus,
    handlers: Vec<(Arc<dyn ErasedHandler>, Settings)>,
    /// What `.retry()`, `.group()`, `.concurrency()` set before any handler.
    defaults: Settings,
    states: States,
    options: ConsumerOptions,
    tenants: Option<Tenants>,
}

/// What the consumer sets for a handler instead of its attribute's values.
#[derive(Default)]
struct Settings {
    retry: Option<RetryPolicy>,
    group: Option<String>,
    concurrency: Option<usize>,
}

impl fmt::Debug for ConsumerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerBuilder")
            .field(
                "handlers",
                &self.handlers.iter().map(|h| h.0.name()).collect::<Vec<_>>(),
            )
            .field("options", &self.options)
            .field("tenants", &self.tenants)
            .finish_non_exhaustive()
    }
}

impl ConsumerBuilder {
    fn new(bus: Bus) -> Self {
        ConsumerBuilder {
            bus,
            handlers: Vec::new(),
            defaults: Settings::default(),
            states: States::default(),
            options: ConsumerOptions::default(),
            tenants: None,
        }
    }

    /// Adds a handler: the name of a `#[handler]` function (or a value
    /// that implements [`Handler`]).
    pub fn handler<H, Args>(mut self, handler: H) -> Self
    where
        H: IntoHandler<Args>,
        <H::Handler as Handler>::Event: Event,
    {
        self.handlers
            .push((Arc::new(Erase(handler.into_handler())), Settings::default()));
        self
    }

    /// The settings of the handler added last, or before any handler the
    /// defaults.
    fn last(&mut self) -> &mut Settings {
        match self.handlers.last_mut() {
            Some((_, s)) => s,
            None => &mut self.defaults,
        }
    }

    /// Sets the retry policy of the handler added last; before any handler,
    /// the policy of every handler that gets none of its own. Without it, a
    /// handler gets [`RetryPolicy::from_retries`] of its `retries`;
    /// `.retry(RetryPolicy::from_retries(n))` changes that count alone.
    ///
    /// ```text
    /// bus.consumer()
    ///     .handler(index_file)
    ///     .retry(RetryPolicy::default().attempts(5).max_delay(Duration::from_secs(10)))
    ///     .start().await?;
    /// ```
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.last().retry = Some(policy);
        self
    }

    /// Sets the consumer group of the handler added last, instead of its
    /// `#[handler(group = "…")]`; before any handler, the group of every
    /// handler that gets none of its own. So one handler runs in a group
    /// chosen at run time (per environment, per test), or in several:
    ///
    /// ```text
    /// bus.consumer()
    ///     .handler(index_file).group(format!("indexer-{region}"))
    ///     .handler(index_file).group("indexer-audit")
    ///     .start().await?;
    /// ```
    ///
    /// The name follows the rule of every name (at most 128 bytes; no glob
    /// character, brace, `:`, `\` or whitespace): `start()` fails with
    /// [`Error::InvalidName`] otherwise. Each distinct group name given
    /// here is kept for the life of the process.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.last().group = Some(group.into());
        self
    }

    /// Sets how many deliveries the handler added last runs at once, per
    /// worker, instead of its `#[handler(concurrency = N)]` (0 counts as 1);
    /// before any handler, that of every handler that gets none of its own.
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.last().concurrency = Some(concurrency.max(1));
        self
    }

    /// Gives handlers a shared value, which they take as `State<T>`.
    pub fn state<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.states.insert(value);
        self
    }

    /// Sets how entries are read (count, block, start position, consumer name…).
    pub fn options(mut self, options: ConsumerOptions) -> Self {
        self.options = options;
        self
    }

    /// Runs the worker's handlers over the streams of each of `tenants`
    /// instead of the bus's own: each tenant's groups are read as on
    /// [`Bus::tenant`]'s bus, so that its dead letters, the events its
    /// handlers publish and each event's [`Context::tenant`](crate::Context::tenant)
    /// are the tenant's. The consumer must be built on the root bus
    /// (`start()` fails with [`Error::TenantsOnTenantBus`] otherwise).
    ///
    /// The reading loops of one group share their connections: on one
    /// Redis server a worker holds up to three connections per group it
    /// reads (one for the blocking reads, two for the batched reads of busy
    /// streams and the acknowledgements of every stream), beside the bus's shared
    /// connection, however many tenants and streams it reads; groups are created together, and all
    /// loops stop together (see `docs/deployment.md`, "Many tenants on one
    /// worker"). A handler's concurrency is the worker's, shared by every
    /// tenant.
    ///
    /// ```text
    /// let worker = bus.consumer()
    ///     .handler(index_file)
    ///     .tenants(Tenants::discover().rescan(Duration::from_secs(30)))
    ///     .start().await?;
    /// ```
    pub fn tenants(mut self, tenants: Tenants) -> Self {
        self.tenants = Some(tenants);
        self
    }

    /// Creates every group that is missing and starts reading.
    ///
    /// ```text
    /// XGROUP CREATE ns:{stream} <group> <$|0> MKSTREAM      (BUSYGROUP ignored)
    /// ```
    ///
    /// Fails before reading anything if a handler's event has no stream, a
    /// handler takes a state the consumer was not given, or a name is
    /// invalid.
    pub async fn start(self) -> Result<Worker, Error> {
        if self.handlers.is_empty() {
            return Err(Error::NoHandler);
        }
        // (stream, group) -> handlers; a BTreeMap so that groups start in
        // a stable order.
        let mut groups: BTreeMap<(&'static str, &'static str), Vec<HandlerSlot>> = BTreeMap::new();
        for (h, set) in &self.handlers {
            let stream = h.stream().ok_or(Error::NoStream {
                handler: h.name(),
                type_name: h.type_name(),
            })?;
            if let Some(missing) = h.states().into_iter().find(|s| !self.states.contains(s)) {
                return Err(Error::MissingState {
                    handler: h.name(),
                    state: missing.name,
                });
            }
            let options = h.options();
            let retry = set
                .retry
                .or(self.defaults.retry)
                .unwrap_or_else(|| RetryPolicy::from_retries(options.retries));
            let group = match set.group.as_ref().or(self.defaults.group.as_ref()) {
                Some(g) => {
                    // Checked before it is kept for good.
                    check_name("group", g)?;
                    static_name(g)
                }
                None => options.group,
            };
            let concurrency = set
                .concurrency
                .or(self.defaults.concurrency)
                .unwrap_or(options.concurrency)
                .max(1);
            groups
                .entry((stream, group))
                .or_default()
                .push(HandlerSlot {
                    handler: h.clone(),
                    limit: Arc::new(Semaphore::new(concurrency)),
                    concurrency,
                    retry,
                    metrics: Default::default(),
                });
        }

        let consumer = match &self.options.name {
            Some(name) => {
                check_name("consumer", name)?;
                name.clone()
            }
            None => default_consumer_name(self.bus.source()),
        };
        for (_, group) in groups.keys() {
            check_name("group", group)?;
        }
        crate::telemetry::describe();
        let (stop_tx, stop_rx) = watch::channel(false);
        let plan = Arc::new(Plan {
            groups,
            consumer: consumer.clone(),
            states: Arc::new(self.states),
            options: self.options,
            stop: stop_rx,
        });
        let Some(tenants) = self.tenants else {
            let prepared = plan.prepare(&self.bus, None, None)?;
            let tasks = launch(&self.bus, prepared, false).await?;
            return Ok(Worker::new(stop_tx, tasks, consumer));
        };
        if let Some(tenant) = self.bus.tenant_name() {
            return Err(Error::TenantsOnTenantBus {
                tenant: tenant.to_owned(),
            });
        }
        let streams: BTreeSet<&'static str> = plan.groups.keys().map(|(s, _)| *s).collect();
        let names: BTreeSet<String> = match &tenants.kind {
            Kind::List(list) => checked(list)?.into_iter().collect(),
            Kind::Discover => {
                on_streams!(self.bus.backend(), t => discover(t, &self.bus, &streams))?
            }
        };
        let delayed = DelayedKeys::default();
        let mut prepared = Vec::new();
        for name in &names {
            prepared.extend(plan.prepare(&self.bus.tenant(name)?, None, Some(&delayed))?);
        }
        let tasks = launch(&self.bus, prepared, true).await?;
        let mut worker = Worker::new(stop_tx, tasks, consumer);
        if let Some(poll) = plan.options.delayed_poll {
            let stop = plan.stop.clone();
            let delayed = delayed.clone();
            worker.background.push(match self.bus.backend() {
                Backend::Redis { streams, .. } => {
                    tokio::spawn(deliver_due_many_loop(streams.clone(), delayed, poll, stop))
                }
                Backend::Memory(m) => {
                    tokio::spawn(deliver_due_many_loop(m.clone(), delayed, poll, stop))
                }
            });
        }
        if let Kind::Discover = tenants.kind {
            let rescan = Rescan {
                bus: self.bus.clone(),
                plan: plan.clone(),
                streams,
                known: names,
                every: tenants.rescan,
                delayed,
                more: worker.more.clone(),
            };
            worker.rescan = Some(tokio::spawn(rescan.run()));
        }
        Ok(worker)
    }
}

/// What a worker starts for each bus it reads (the root bus, or each
/// tenant's): its handlers by (stream, group), and what they share.
struct Plan {
    groups: BTreeMap<(&'static str, &'static str), Vec<HandlerSlot>>,
    consumer: String,
    states: Arc<States>,
    options: ConsumerOptions,
    stop: watch::Receiver<bool>,
}

/// A group ready to start (its group to create, then its loop to run), or
/// a task already running (a partitioned stream's, which creates its
/// groups itself).
enum Prepared {
    Group(Arc<GroupSpec>),
    Running(GroupTask),
}

impl Plan {
    /// The groups to start on `bus`: each (stream, group), and each of its
    /// priority levels. `start` replaces the options' start position of
    /// new groups; with `delayed`, the streams' delayed events are left to
    /// one mover for the whole worker, and their keys added there.
    fn prepare(
        &self,
        bus: &Bus,
        start: Option<StartFrom>,
        delayed: Option<&DelayedKeys>,
    ) -> Result<Vec<Prepared>, Error> {
        let mut options = self.options.clone();
        if let Some(start) = start {
            options.start = start;
        }
        // Over tenants, each tenant's first claim at its own point of the
        // interval (from its name), so that the claims are spread.
        let first_claim = match (delayed, options.claim_idle, bus.tenant_name()) {
            (Some(_), Some(idle), Some(tenant)) => {
                let every = options.claim_interval_or(idle);
                let at = tenant.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                }) % 1024;
                every.mul_f64(at as f64 / 1024.0)
            }
            _ => std::time::Duration::ZERO,
        };
        let mut out = Vec::new();
        let mut last_stream = None;
        for ((stream, group), handlers) in &self.groups {
            let (stream, group) = (*stream, *group);
            // Groups are ordered by stream: the first of each moves its
            // delayed events.
            let first_of_stream = last_stream != Some(stream);
            last_stream = Some(stream);
            let stream_key = bus.stream_key(stream)?;
            let gate = options.priorities.then(|| Arc::new(Gate::default()));
            let moves_delayed = match delayed {
                Some(keys) => {
                    if first_of_stream && bus.partitions(stream).is_none() {
                        let levels: Vec<Option<Priority>> = match gate {
                            Some(_) => Priority::ALL.into_iter().map(Some).collect(),
                            None => vec![None],
                        };
                        // Only pushed to: a panic elsewhere cannot leave it
                        // inconsistent.
                        let mut keys = keys.lock().unwrap_or_else(|e| e.into_inner());
                        for level in levels {
                            let key = level_key(stream_key.clone(), level);
                            keys.push((delayed_key(&key), key));
                        }
                    }
                    false
                }
                None => first_of_stream,
            };
            let parts = SpecParts {
                bus: bus.clone(),
                stream,
                group,
                consumer: self.consumer.clone(),
                dlq: bus.dead_letter_key(stream)?,
                handlers: handlers.iter().map(HandlerSlot::share).collect(),
                states: self.states.clone(),
                options: options.clone(),
                gate,
                first_claim,
            };
            if let Some(count) = bus.partitions(stream) {
                let handle = start_partitions(bus, parts, count, &self.stop)?;
                out.push(Prepared::Running(GroupTask {
                    key: stream_key,
                    group,
                    handle,
                }));
                continue;
            }
            for spec in parts.specs(&stream_key, None, moves_delayed, &self.stop) {
                out.push(Prepared::Group(spec));
            }
        }
        Ok(out)
    }
}

/// Starts prepared groups on the transport of `bus`: every missing group
/// created at once (on Redis, pipelined on the shared connection), then a
/// reading loop for each. With `shared`, the loops of one group share
/// their connections ([`StreamTransport::shared_reader`]).
async fn launch(bus: &Bus, prepared: Vec<Prepared>, shared: bool) -> Result<Vec<GroupTask>, Error> {
    on_streams!(bus.backend(), t => launch_on(bus, t, prepared, shared))
}

async fn launch_on<T: StreamTransport>(
    bus: &Bus,
    transport: &T,
    prepared: Vec<Prepared>,
    shared: bool,
) -> Result<Vec<GroupTask>, Error> {
    let mut tasks = Vec::with_capacity(prepared.len());
    let mut specs = Vec::with_capacity(prepared.len());
    for p in prepared {
        match p {
            Prepared::Group(spec) => specs.push(spec),
            Prepared::Running(task) => tasks.push(task),
        }
    }
    let created = futures::future::join_all(specs.iter().map(|spec| {
        bus.patiently("XGROUP CREATE", || {
            transport.create_group(&spec.key, spec.group, &spec.options.start)
        })
    }))
    .await;
    created.into_iter().collect::<Result<Vec<()>, Error>>()?;
    let readers = futures::future::join_all(specs.iter().map(|spec| {
        bus.patiently("connect", move || async move {
            match shared {
                true => transport.shared_reader(spec.group, &spec.consumer).await,
                false => transport.reader().await,
            }
        })
    }))
    .await;
    for (spec, reader) in specs.into_iter().zip(readers) {
        let reader = reader?;
        let (key, group, stop) = (spec.key.clone(), spec.group, spec.stop.clone());
        let handle = tokio::spawn(run_group(transport.clone(), reader, spec, stop));
        tasks.push(GroupTask { key, group, handle });
    }
    Ok(tasks)
}

/// Looks for new tenants every `every` and starts reading each one found,
/// from the start of its stream, until the worker stops.
struct Rescan {
    bus: Bus,
    plan: Arc<Plan>,
    streams: BTreeSet<&'static str>,
    known: BTreeSet<String>,
    every: std::time::Duration,
    delayed: DelayedKeys,
    more: Arc<Mutex<Vec<GroupTask>>>,
}

impl Rescan {
    async fn run(mut self) {
        let mut stop = self.plan.stop.clone();
        loop {
            if pause(self.every, &mut stop).await {
                return;
            }
            let found = on_streams!(self.bus.backend(), t => discover(t, &self.bus, &self.streams));
            let found = match found {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(error = %e, "looking for new tenants failed; trying again later");
                    continue;
                }
            };
            for tenant in found.difference(&self.known).cloned().collect::<Vec<_>>() {
                if stopped(&stop) {
                    return;
                }
                match self.start(&tenant).await {
                    Ok(tasks) => {
                        tracing::info!(tenant = %tenant, "found a new tenant; reading its streams");
                        // Only pushed to and taken whole: a panic elsewhere
                        // cannot leave it inconsistent.
                        self.more
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .extend(tasks);
                        self.known.insert(tenant);
                    }
                    Err(e) => tracing::warn!(tenant = %tenant, error = %e,
                        "starting to read a new tenant failed; trying again at the next scan"),
                }
            }
        }
    }

    async fn start(&self, tenant: &str) -> Result<Vec<GroupTask>, Error> {
        let bus = self.bus.tenant(tenant)?;
        let prepared = self
            .plan
            .prepare(&bus, Some(StartFrom::Beginning), Some(&self.delayed))?;
        launch(&self.bus, prepared, true).await
    }
}

/// `name` for as long as the process runs, as the group of a worker is
/// (`&'static str`, like the attribute's): each distinct name is allocated
/// once, however many consumers use it.
fn static_name(name: &str) -> &'static str {
    static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    // Only inserted into: a panic elsewhere cannot leave it inconsistent.
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    match names.get(name) {
        Some(kept) => kept,
        None => {
            let kept: &'static str = Box::leak(name.to_owned().into_boxed_str());
            names.insert(kept);
            kept
        }
    }
}

/// `<source>-<ulid>`, with every character a name may not hold (`source` is
/// free text, a URI reference in CloudEvents) replaced by `-`.
fn default_consumer_name(source: &str) -> String {
    let mut name = String::with_capacity(MAX_NAME_LEN);
    for c in source.chars() {
        let c = if forbidden_in_name(c) { '-' } else { c };
        // Room for `-` and a ULID's 26 characters.
        if name.len() + c.len_utf8() > MAX_NAME_LEN - 27 {
            break;
        }
        name.push(c);
    }
    format!("{name}-{}", ulid::Ulid::new())
}

/// What every reading loop of one (stream, group) in a worker shares.
struct SpecParts {
    bus: Bus,
    stream: &'static str,
    group: &'static str,
    consumer: String,
    dlq: String,
    handlers: Vec<HandlerSlot>,
    states: Arc<States>,
    options: ConsumerOptions,
    /// With priorities, the gate the group's levels take turns at.
    gate: Option<Arc<Gate>>,
    /// How long after the start the loops claim idle entries first.
    first_claim: std::time::Duration,
}

impl SpecParts {
    /// The reading loops of the stream or partition `base`: one per level
    /// (the stream itself without priorities), each moving its level's
    /// delayed events when `moves_delayed`; and with parked retries, one
    /// for the group's retry stream, which moves its own delayed set (no
    /// other group does) and reads it from its start (nothing but this
    /// group's retries is ever in it).
    fn specs(
        &self,
        base: &str,
        partition: Option<u32>,
        moves_delayed: bool,
        stop: &watch::Receiver<bool>,
    ) -> Vec<Arc<GroupSpec>> {
        let retry = self
            .options
            .park_after
            .map(|_| retry_stream_key(base, self.group));
        let place = Place {
            park: retry.as_deref().map(delayed_key),
            partition,
            stop,
        };
        let levels: Vec<Option<Priority>> = match self.gate {
            Some(_) => Priority::ALL.into_iter().map(Some).collect(),
            None => vec![None],
        };
        let mut specs: Vec<Arc<GroupSpec>> = levels
            .into_iter()
            .map(|level| {
                let priority = level.zip(self.gate.clone()).map(|(l, g)| (g, l));
                let key = level_key(base.to_owned(), level);
                self.spec(key, self.options.clone(), moves_delayed, priority, &place)
            })
            .collect();
        if let Some(retry) = retry {
            let options = self.options.clone().start_from(StartFrom::Beginning);
            // Retries come back at the normal level.
            let priority = self.gate.clone().map(|g| (g, Priority::Normal));
            specs.push(self.spec(retry, options, true, priority, &place));
        }
        specs
    }

    fn spec(
        &self,
        key: String,
        options: ConsumerOptions,
        moves_delayed: bool,
        priority: Option<(Arc<Gate>, Priority)>,
        place: &Place<'_>,
    ) -> Arc<GroupSpec> {
        let life = Arc::new(ReaderLife::new(
            key.clone(),
            self.group.to_owned(),
            self.consumer.clone(),
            options.block,
        ));
        self.bus.readers().register(&life);
        Arc::new(GroupSpec {
            key,
            stream: self.stream,
            system: self.bus.backend().system(),
            skipped_types: Mutex::new(HashSet::new()),
            dlq: self.dlq.clone(),
            group: self.group,
            consumer: self.consumer.clone(),
            // Every loop of the group shares the handlers' slots.
            handlers: self.handlers.iter().map(HandlerSlot::share).collect(),
            bus: self.bus.clone(),
            states: self.states.clone(),
            options,
            held: Mutex::new(HashSet::new()),
            unacked: Mutex::new(HashSet::new()),
            stop: place.stop.clone(),
            life,
            moves_delayed,
            first_claim: self.first_claim,
            priority,
            park: place.park.clone(),
            partition: place.partition,
        })
    }
}

/// What the reading loops of one stream or partition share: where retries
/// are parked, the partition, and the stop signal.
struct Place<'a> {
    park: Option<String>,
    partition: Option<u32>,
    stop: &'a watch::Receiver<bool>,
}

/// The task that holds the leases of a partitioned stream's partitions in
/// one group and runs the reading loops of each partition it holds: its
/// priority levels and retry stream, as on a stream without partitions,
/// each moving its own delayed events.
fn start_partitions(
    bus: &Bus,
    mut parts: SpecParts,
    count: u32,
    stop: &watch::Receiver<bool>,
) -> Result<JoinHandle<usize>, Error> {
    let (stream, group) = (parts.stream, parts.group);
    let mut keys = Vec::with_capacity(count as usize);
    for k in 0..count {
        keys.push(bus.partition_stream_key(stream, k)?);
    }
    let members_key = format!("{}:workers:{group}", bus.stream_key(stream)?);
    let leases: Vec<String> = keys.iter().map(|k| format!("{k}:lease:{group}")).collect();
    // A partition's owner holds every entry pending there: nobody else's
    // entries are to be claimed while it reads.
    parts.options.claim_idle = None;
    let ttl = parts.options.partition_lease;
    let consumer = parts.consumer.clone();
    let spec_of = move |k: u32, stop: watch::Receiver<bool>| {
        parts.specs(&keys[k as usize], Some(k), true, &stop)
    };
    fn spawn<T: StreamTransport>(p: Partitions<T>) -> JoinHandle<usize> {
        tokio::spawn(p.run())
    }
    let spec_of: SpecOf = Box::new(spec_of);
    Ok(match bus.backend() {
        Backend::Redis { streams, .. } => spawn(Partitions {
            transport: streams.clone(),
            spec_of,
            count,
            members_key,
            leases: leases.clone(),
            consumer,
            ttl,
            stop: stop.clone(),
        }),
        Backend::Memory(m) => spawn(Partitions {
            transport: m.clone(),
            spec_of,
            count,
            members_key,
            leases: leases.clone(),
            consumer,
            ttl,
            stop: stop.clone(),
        }),
    })
}
