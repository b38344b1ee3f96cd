//! Awaited publishes and batches to one stream on a Redis Cluster, each
//! over a hand-written connection to the master of its stream's slot.
//!
//! Through redis-rs's cluster connection, whose task routes every command,
//! an awaited publish on a 3-master cluster read 0.51x–0.64x the same on
//! one node with a replica (`cargo bench -p tidings-bench -- --quick --only
//! cluster`), where one node's publishes take the transport's own
//! connection. Here a publish of one event is written to its slot's master
//! and its reply read from the publishing task, as on one node; a batch to
//! one stream is streamed out in one `MULTI`/`EXEC` as its payloads are
//! serialized, as on one node.
//!
//! The map of slots comes from `CLUSTER SLOTS`, asked through redis-rs on
//! first use and after a node's connection was lost or could not be made,
//! at most once per [`ASK_EVERY`]. A node that refuses a command did not
//! run it, and redis-rs, which follows redirections, sends it instead:
//! after `MOVED` the slot's publishes go to the node it names; after `ASK`
//! or `TRYAGAIN` (the slot is moving) they go through redis-rs for
//! [`REST`]; after `CLUSTERDOWN` every publish does. A node whose
//! connection cannot be made rests as long.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::ConnectionInfo;

use super::endpoint::Endpoint;
use super::resp::{error_code, moved_to, RespConnection, Unwritable};
use super::shared::{key_slot, SharedConnection};
use super::within;
use crate::transport::{Outgoing, TransportError};

/// Each range of slots and its master's address.
type Slots = Vec<(RangeInclusive<u16>, (String, u16))>;

/// How long a node whose connection could not be made, a slot that is
/// moving, or a cluster that said `CLUSTERDOWN`, is left to redis-rs.
const REST: Duration = Duration::from_secs(1);

/// The map of slots is asked at most this often.
const ASK_EVERY: Duration = Duration::from_millis(100);

/// The transport's hand-written publishing connections on a cluster, one
/// per master, made as publishes need them.
pub(super) struct SlotWriters {
    cluster: SharedConnection,
    /// The user, password and TLS of every node's connection.
    info: ConnectionInfo,
    endpoint: Endpoint,
    state: Mutex<State>,
    /// Held while `CLUSTER SLOTS` is asked, so that it is asked once.
    asking: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    /// The map last had.
    slots: Option<Arc<Slots>>,
    /// Whether the map is to be asked again.
    stale: bool,
    /// When the map was last asked.
    asked_at: Option<Instant>,
    /// Slots a `MOVED` named a new master of since the map was had.
    moved: HashMap<u16, (String, u16)>,
    /// Slots moving (`ASK`, `TRYAGAIN`), until when.
    moving: HashMap<u16, Instant>,
    /// After `CLUSTERDOWN`, until when.
    down_until: Option<Instant>,
    nodes: HashMap<(String, u16), Node>,
}

struct Node {
    conn: Arc<tokio::sync::Mutex<RespConnection>>,
    resting_until: Option<Instant>,
}

/// What became of a publish offered to [`SlotWriters`].
pub(super) enum Sent<T> {
    /// Appended, with what the node replied (an entry id, or a batch's
    /// replies); or an error: the server's own (`OOM`, `NOPERM`), or that
    /// of a connection lost after the command may have been written.
    Done(Result<T, TransportError>),
    /// Nothing was appended: the caller publishes through redis-rs.
    NotSent,
}

/// The replies of a streamed batch (see [`RespConnection::append_streamed`]).
pub(super) type Streamed = Result<Vec<Result<String, TransportError>>, Unwritable>;

impl SlotWriters {
    /// Writers for the cluster of `cluster`, `None` when its nodes are not
    /// reached over TCP or TLS that checks certificates.
    pub(super) fn new(
        cluster: SharedConnection,
        info: ConnectionInfo,
        endpoint: Endpoint,
    ) -> Option<Self> {
        RespConnection::for_info(&info, &endpoint)?;
        Some(SlotWriters {
            cluster,
            info,
            endpoint,
            state: Mutex::default(),
            asking: tokio::sync::Mutex::new(()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update leaves the state whole: a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one event to `key` on its slot's master, within `limit`.
    pub(super) async fn append_one(
        &self,
        key: &str,
        event: Outgoing<'_>,
        limit: Option<Duration>,
    ) -> Sent<String> {
        let slot = key_slot(key);
        // A publish that finds the node's connection busy does not wait
        // for it: redis-rs takes this one alongside.
        let Some(mut conn) = self.master_connection(slot, false).await else {
            return Sent::NotSent;
        };
        let batch = [(key, event)];
        let result = within(limit, "XADD", conn.append(&batch)).await;
        drop(conn);
        match result {
            Ok(ids) => {
                Sent::Done(ids.into_iter().next().ok_or_else(|| {
                    super::value::protocol("XADD", "no reply to the one command sent")
                }))
            }
            Err(e) => self.refused(slot, e),
        }
    }

    /// Appends `events` to `key` in one `MULTI`/`EXEC` on its slot's
    /// master, each payload serialized by `payload` as the batch is written
    /// (see [`RespConnection::append_streamed`]), within `limit`. A batch
    /// that finds the node's connection busy waits for it if `wait`, and
    /// is not sent otherwise.
    ///
    /// A node that refuses a command of the batch (`MOVED`, `ASK`,
    /// `TRYAGAIN`, `CLUSTERDOWN`) runs none of it: the batch is not sent,
    /// as for one event.
    pub(super) async fn append_streamed(
        &self,
        key: &str,
        events: &[Outgoing<'_>],
        payload: impl FnMut(usize, &mut Vec<u8>) -> Result<(), serde_json::Error>,
        wait: bool,
        limit: Option<Duration>,
    ) -> Sent<Streamed> {
        let slot = key_slot(key);
        let Some(mut conn) = self.master_connection(slot, wait).await else {
            return Sent::NotSent;
        };
        let result = within(limit, "EXEC", conn.append_streamed(key, events, payload)).await;
        drop(conn);
        match result {
            Ok(replies) => Sent::Done(Ok(replies)),
            Err(e) => self.refused(slot, e),
        }
    }

    /// The connection to the master of `slot`, made if need be; `None`
    /// when the slot's publishes are left to redis-rs for now, or when the
    /// connection is busy and `wait` is false.
    async fn master_connection(
        &self,
        slot: u16,
        wait: bool,
    ) -> Option<tokio::sync::OwnedMutexGuard<RespConnection>> {
        let addr = self.master_of(slot).await?;
        let node = self.node(&addr)?;
        let mut conn = match node.clone().try_lock_owned() {
            Ok(conn) => conn,
            Err(_) if wait => node.lock_owned().await,
            Err(_) => return None,
        };
        if conn.connected().await.is_err() {
            drop(conn);
            self.rest(&addr);
            return None;
        }
        Some(conn)
    }

    /// What an error of a publish to `slot`'s master means: its own (the
    /// server's error, or a connection lost after the command may have
    /// been written), or a redirection, after which nothing was appended
    /// and redis-rs sends it.
    fn refused<T>(&self, slot: u16, e: TransportError) -> Sent<T> {
        // The server's own error (a code), or a connection lost.
        let Some(code) = error_code(&e) else {
            // Lost, or no answer: the node may have failed over.
            self.state().stale = true;
            return Sent::Done(Err(e));
        };
        let mut state = self.state();
        match code {
            "MOVED" => match moved_to(&e) {
                Some(to) => {
                    state.moved.insert(slot, to);
                }
                None => state.stale = true,
            },
            "ASK" | "TRYAGAIN" => {
                state.moving.insert(slot, Instant::now() + REST);
            }
            "CLUSTERDOWN" => state.down_until = Some(Instant::now() + REST),
            _ => return Sent::Done(Err(e)),
        }
        Sent::NotSent
    }

    /// The address of the master of `slot`, asking for the map of slots
    /// when it is not known or stale (and not asked within [`ASK_EVERY`]).
    async fn master_of(&self, slot: u16) -> Option<(String, u16)> {
        {
            let mut state = self.state();
            let now = Instant::now();
            if state.down_until.is_some_and(|until| now < until) {
                return None;
            }
            match state.moving.get(&slot) {
                Some(until) if now < *until => return None,
                Some(_) => {
                    state.moving.remove(&slot);
                }
                None => {}
            }
            if let Some(to) = state.moved.get(&slot) {
                return Some(to.clone());
            }
            let due = state.slots.is_none() || state.stale;
            let recent = state.asked_at.is_some_and(|at| at.elapsed() < ASK_EVERY);
            if !due || recent {
                return find(state.slots.as_deref()?, slot);
            }
        }
        // One publish asks; the others go on with the map they have.
        let Ok(_asking) = self.asking.try_lock() else {
            return find(self.state().slots.as_deref()?, slot);
        };
        self.state().asked_at = Some(Instant::now());
        let asked = self.cluster.slot_ranges().await;
        let mut state = self.state();
        state.asked_at = Some(Instant::now());
        if let Ok(Some(ranges)) = asked {
            // Connections to nodes no longer masters are closed.
            state
                .nodes
                .retain(|addr, _| ranges.iter().any(|(_, master)| master == addr));
            state.slots = Some(Arc::new(ranges));
            state.stale = false;
            state.moved.clear();
        }
        find(state.slots.as_deref()?, slot)
    }

    /// The connection to the node at `addr`, unless it rests.
    fn node(&self, addr: &(String, u16)) -> Option<Arc<tokio::sync::Mutex<RespConnection>>> {
        let mut state = self.state();
        if let Some(node) = state.nodes.get(addr) {
            if node
                .resting_until
                .is_some_and(|until| Instant::now() < until)
            {
                return None;
            }
            return Some(node.conn.clone());
        }
        let conn = RespConnection::for_node(&self.info, &self.endpoint, &addr.0, addr.1)?;
        let conn = Arc::new(tokio::sync::Mutex::new(conn));
        state.nodes.insert(
            addr.clone(),
            Node {
                conn: conn.clone(),
                resting_until: None,
            },
        );
        Some(conn)
    }

    /// After a node's connection could not be made: redis-rs publishes to
    /// it for a while, and the map is asked again (it may have failed
    /// over).
    fn rest(&self, addr: &(String, u16)) {
        let mut state = self.state();
        if let Some(node) = state.nodes.get_mut(addr) {
            node.resting_until = Some(Instant::now() + REST);
        }
        state.moved.retain(|_, to| to != addr);
        state.stale = true;
    }
}

fn find(slots: &Slots, slot: u16) -> Option<(String, u16)> {
    slots
        .iter()
        .find(|(range, _)| range.contains(&slot))
        .map(|(_, master)| master.clone())
        .filter(|(host, _)| !host.is_empty() && host != "?")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::StreamTransport;
    use redis::Value;
    use tidings_testkit::ClusterSet;

    fn event() -> Outgoing<'static> {
        super::super::resp::tests::outgoing(b"{}", None, &[])
    }

    /// A cluster, a transport on it, and the transport's writers.
    async fn connected() -> (ClusterSet, super::super::StreamsTransport, Arc<SlotWriters>) {
        let cluster = ClusterSet::start();
        let endpoint = Endpoint::parse(&cluster.url(), &Default::default()).unwrap();
        let transport =
            super::super::StreamsTransport::connect(endpoint, None, Duration::from_secs(5))
                .await
                .unwrap();
        let writers = transport.slots.clone().expect("writers on a cluster");
        (cluster, transport, writers)
    }

    fn another_master(cluster: &ClusterSet, than: u16) -> u16 {
        cluster
            .masters()
            .unwrap()
            .into_iter()
            .find(|m| *m != than)
            .unwrap()
    }

    async fn len_at(shared: &SharedConnection, key: &str, port: u16) -> i64 {
        let mut cmd = redis::cmd("XLEN");
        cmd.arg(key);
        match shared.query_node(cmd, "127.0.0.1", port).await.unwrap() {
            Value::Int(n) => n,
            other => panic!("XLEN said {other:?}"),
        }
    }

    /// A publish of one event goes to its slot's master over the own
    /// connection; after the slot moves, the first one is refused there
    /// (and left to redis-rs), and the next goes to the new master.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_publish_goes_to_the_slots_master_and_follows_a_move() {
        let (cluster, transport, writers) = connected().await;
        let shared = transport.conn.clone();
        let key = "t:{publish-moving}";
        let from = cluster.master_of(key).unwrap();
        for _ in 0..3 {
            assert!(matches!(
                writers.append_one(key, event(), None).await,
                Sent::Done(Ok(_))
            ));
        }
        assert_eq!(len_at(&shared, key, from).await, 3);
        assert_eq!(writers.state().nodes.len(), 1, "one node's connection");
        // A server's own error is the publish's, and leaves the map be.
        let text = "t:{publish-moving}:text";
        let mut set = redis::cmd("SET");
        set.arg(text).arg("v");
        shared.query_node(set, "127.0.0.1", from).await.unwrap();
        let refused = writers.append_one(text, event(), None).await;
        let Sent::Done(Err(e)) = refused else {
            panic!("a WRONGTYPE publish was not the writer's to answer");
        };
        assert!(e.to_string().contains("WRONGTYPE"), "{e}");
        assert!(!writers.state().stale);

        let to = another_master(&cluster, from);
        tokio::task::block_in_place(|| cluster.move_slot_of(key, to)).unwrap();
        assert!(matches!(
            writers.append_one(key, event(), None).await,
            Sent::NotSent
        ));
        assert_eq!(
            writers.state().moved.get(&key_slot(key)).map(|a| a.1),
            Some(to),
            "the slot's publishes go where MOVED said"
        );
        assert!(matches!(
            writers.append_one(key, event(), None).await,
            Sent::Done(Ok(_))
        ));
        assert_eq!(len_at(&shared, key, to).await, 4);
        // Through the transport, the refused one goes through redis-rs.
        tokio::task::block_in_place(|| cluster.move_slot_of(key, from)).unwrap();
        transport.append(&[(key, event())]).await.unwrap();
        transport.append(&[(key, event())]).await.unwrap();
        assert_eq!(len_at(&shared, key, from).await, 6);
    }

    /// Payloads of 8 KiB each (so that the commands before a payload
    /// that fails are written out before it), failing at `bad`.
    fn payloads(
        bad: Option<usize>,
    ) -> impl FnMut(usize, &mut Vec<u8>) -> Result<(), serde_json::Error> {
        move |i, buf| match bad == Some(i) {
            true => Err(serde_json::from_str::<u8>("no").unwrap_err()),
            false => serde_json::to_writer(buf, &format!("{i}{}", "x".repeat(8 * 1024))),
        }
    }

    fn streamed_ids(sent: Sent<Streamed>) -> Vec<String> {
        match sent {
            Sent::Done(Ok(Ok(replies))) => replies.into_iter().map(Result::unwrap).collect(),
            Sent::Done(Ok(Err((i, e)))) => panic!("payload {i} unwritable: {e}"),
            Sent::Done(Err(e)) => panic!("the batch failed: {e}"),
            Sent::NotSent => panic!("the batch was not sent"),
        }
    }

    /// A batch to one stream goes to its slot's master over the writer's
    /// connection, in one transaction; one with a payload that cannot be
    /// serialized appends nothing; after the slot moves, the first batch
    /// is refused whole, and the next goes to the new master. Through the
    /// transport, a batch that waits is appended through redis-rs when the
    /// slot's publishes are left to it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_goes_to_the_slots_master_whole_or_not_at_all() {
        let (cluster, transport, writers) = connected().await;
        let shared = transport.conn.clone();
        let key = "t:{batch-moving}";
        let events = [event(), event(), event()];
        let from = cluster.master_of(key).unwrap();
        // Through the transport, the writer takes it: its connection to
        // the master is made by this batch.
        assert!(writers.state().nodes.is_empty());
        let ids = transport
            .append_streamed(key, &events, payloads(None), false)
            .await
            .expect("sent by the writer")
            .unwrap()
            .unwrap();
        assert_eq!(ids.len(), 3);
        assert_eq!(len_at(&shared, key, from).await, 3);
        assert_eq!(writers.state().nodes.len(), 1, "one node's connection");

        // The first two commands are on the wire when the third payload
        // fails: the transaction is dropped before `EXEC`.
        let events = [event(), event(), event()];
        let unwritable = writers
            .append_streamed(key, &events, payloads(Some(2)), false, None)
            .await;
        assert!(matches!(unwritable, Sent::Done(Ok(Err((2, _))))));
        assert_eq!(len_at(&shared, key, from).await, 3, "nothing appended");

        let to = another_master(&cluster, from);
        tokio::task::block_in_place(|| cluster.move_slot_of(key, to)).unwrap();
        match writers
            .append_streamed(key, &events, payloads(None), false, None)
            .await
        {
            Sent::NotSent => {}
            Sent::Done(done) => panic!("a batch to a moved slot was answered {done:?}"),
        }
        assert_eq!(
            writers.state().moved.get(&key_slot(key)).map(|a| a.1),
            Some(to),
            "the slot's publishes go where MOVED said"
        );
        let ids = streamed_ids(
            writers
                .append_streamed(key, &events, payloads(None), false, None)
                .await,
        );
        assert_eq!(ids.len(), 3);
        assert_eq!(len_at(&shared, key, to).await, 6);

        // Moved back: the writer is refused, and the transport, told to
        // wait, appends the batch through redis-rs.
        tokio::task::block_in_place(|| cluster.move_slot_of(key, from)).unwrap();
        let ids = transport
            .append_streamed(key, &events, payloads(None), true)
            .await
            .expect("a batch that waits is always sent")
            .unwrap()
            .unwrap();
        assert_eq!(ids.len(), 3);
        assert_eq!(len_at(&shared, key, from).await, 9);
        // While the slot rests, the writer sends nothing: a batch that
        // waits goes through redis-rs, and one with an unwritable payload
        // appends nothing there either.
        writers
            .state()
            .moving
            .insert(key_slot(key), Instant::now() + Duration::from_secs(60));
        assert!(matches!(
            writers
                .append_streamed(key, &events, payloads(None), true, None)
                .await,
            Sent::NotSent
        ));
        let ids = transport
            .append_streamed(key, &events, payloads(None), true)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(ids.len(), 3);
        assert_eq!(len_at(&shared, key, from).await, 12);
        let unwritable = transport
            .append_streamed(key, &events, payloads(Some(2)), true)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(unwritable, Err((2, _))));
        assert!(
            transport
                .append_streamed(key, &events, payloads(None), false)
                .await
                .is_none(),
            "without waiting, left to the caller's other path"
        );
        assert_eq!(len_at(&shared, key, from).await, 12);
    }

    /// While a slot moves, a publish whose key went already is answered
    /// `ASK` by the old master: nothing appended there, the slot's
    /// publishes go through redis-rs (which follows `ASK`) for a while,
    /// and once the move ends, `MOVED` sends them to the new master.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_publish_during_a_slot_move_is_left_to_redis_rs_and_follows_its_end() {
        let (cluster, transport, writers) = connected().await;
        let shared = transport.conn.clone();
        let key = "t:{publish-asked}";
        let slot = key_slot(key);
        assert!(matches!(
            writers.append_one(key, event(), None).await,
            Sent::Done(Ok(_))
        ));
        let from = cluster.master_of(key).unwrap();
        let to = another_master(&cluster, from);
        tokio::task::block_in_place(|| cluster.start_moving_slot_of(key, to)).unwrap();
        assert!(matches!(
            writers.append_one(key, event(), None).await,
            Sent::NotSent
        ));
        assert!(writers.state().moving.contains_key(&slot), "the slot rests");
        assert!(!writers.state().stale, "the map is kept");
        // Through the transport: redis-rs sends it to the new master.
        transport.append(&[(key, event())]).await.unwrap();
        assert_eq!(len_at(&shared, key, to).await, 2);

        tokio::task::block_in_place(|| cluster.end_moving_slot_of(key, to)).unwrap();
        // The rest ends (set here rather than waited for).
        writers
            .state()
            .moving
            .insert(slot, Instant::now() - Duration::from_millis(1));
        assert!(matches!(
            writers.append_one(key, event(), None).await,
            Sent::NotSent
        ));
        assert!(matches!(
            writers.append_one(key, event(), None).await,
            Sent::Done(Ok(_))
        ));
        assert_eq!(len_at(&shared, key, to).await, 3);
    }

    /// A master whose connection cannot be made rests, its publishes going
    /// through redis-rs, and the map of slots is asked again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn publishes_go_through_redis_rs_while_a_masters_connection_cannot_be_made() {
        let (cluster, transport, writers) = connected().await;
        let key = "t:{publish-unreachable}";
        let slot = key_slot(key);
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let nowhere = ("127.0.0.1".to_owned(), closed);
        writers.state().slots = Some(Arc::new(vec![(slot..=slot, nowhere.clone())]));

        transport.append(&[(key, event())]).await.unwrap();
        {
            let state = writers.state();
            assert!(state.stale, "the map is asked again");
            let node = &state.nodes[&nowhere];
            assert!(node.resting_until.is_some_and(|u| u > Instant::now()));
        }
        transport.append(&[(key, event())]).await.unwrap();
        assert!(matches!(
            writers.append_one(key, event(), None).await,
            Sent::Done(Ok(_))
        ));
        let owner = cluster.master_of(key).unwrap();
        assert_eq!(len_at(&transport.conn, key, owner).await, 3);
        let state = writers.state();
        assert!(
            !state.nodes.contains_key(&nowhere),
            "a node no longer master is forgotten"
        );
    }
}
