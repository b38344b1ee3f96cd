//! A connection for the two commands that move entries in bulk: `XREADGROUP`
//! (its reply parsed by hand) and pipelined `XADD`s (encoded by hand).
//!
//! redis-rs parses replies with a generic combinator parser that costs about
//! 1,600 instructions per bulk string (callgrind), and an entry of the wire
//! format is 19 bulk strings: more than half of a consumer's CPU went there.
//! This parser walks the bytes once to see that the reply is complete, then
//! once more to read each entry where it lies, for well under a tenth of that.
//!
//! On the way out, a pipeline of `XADD`s built with redis-rs costs about
//! 5,500 instructions per event (each argument copied into a `Cmd`, the
//! pipeline packed, every reply parsed into a `Value` on the connection's
//! task); here each command is written straight into one buffer, RESP
//! framing and all, sent from the publishing task, and the replies are read
//! in place.
//!
//! RESP2 is spoken here over plain TCP or over TLS (rustls, with the same
//! CA and client certificate as redis-rs's connections), with `AUTH` and
//! `SELECT` when the client has them; a Unix socket, or TLS with
//! `insecure`, falls back to redis-rs. Behind Sentinel, each new
//! connection goes to the master the Sentinels name at that moment.
//!
//! The file is long (about 800 lines of code, as many again of tests) for
//! that measured reason: the reader, the encoder and the connection that
//! owns their buffers are one protocol state, and splitting them would put
//! the buffer handling of one round trip in several places.

use redis::{ConnectionAddr, ConnectionInfo, ErrorKind, RedisError, Value};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::endpoint::Endpoint;
use super::value::protocol;
use crate::envelope::Envelope;
use crate::transport::{Entry, Outgoing, ReadRequest, TransportError};

/// A connection made: its socket and its read buffer.
type Opened = Result<(Socket, Vec<u8>), TransportError>;

/// Nesting deeper than any reply of the commands sent here.
const MAX_DEPTH: usize = 8;
/// Read size: a reply of 100 entries of the wire format is about 60 KiB.
const READ_CHUNK: usize = 128 * 1024;
/// Connecting and authenticating, as long as redis-rs allows by default: a
/// server that does not answer must not hold the reading loop (and a
/// worker's shutdown, which waits for a read) for the system's TCP timeout.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Commands of a pipeline are written to the socket in pieces of about
/// this size, so that Redis starts on the first ones while the rest are
/// encoded, and a large batch never sits whole in a second buffer.
const WRITE_CHUNK: usize = 64 * 1024;

/// One plain TCP connection, opened on first use and dropped on any error
/// (the next command opens a new one).
pub(super) struct RespConnection {
    host: String,
    port: u16,
    username: Option<String>,
    password: Option<String>,
    db: i64,
    conn: Option<(Socket, Vec<u8>)>,
    /// Encoded commands on their way out, kept between batches.
    out: Vec<u8>,
    /// The payload being serialized, in a batch streamed out as it is
    /// serialized.
    payload: Vec<u8>,
    /// Whether a read was sent ahead on `conn` and its reply not read yet.
    ahead: bool,
    /// What the last reply said of the size of the entries read: whether
    /// a read may go ahead of the next, and how many entries one read asks
    /// for at most.
    size: ReplySize,
    /// Behind Sentinel: where to ask for the master's address before each
    /// new connection.
    follow: Option<Endpoint>,
    /// For `rediss://`: the TLS configuration of each new connection.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// On a Redis Cluster: where to ask for the master of the slot of the
    /// key read before each new connection.
    slot: Option<SlotFollow>,
}

/// A reading connection's way to the master of its key's slot: the
/// reader's cluster connection, asked with `CLUSTER SLOTS`, and the key.
pub(super) struct SlotFollow {
    cluster: super::shared::SharedConnection,
    key: String,
    /// Where the last `MOVED` said the slot is: the next connection goes
    /// there without asking for the map of slots.
    moved_to: Option<(String, u16)>,
    /// Until when no connection is tried after one could not be made (no
    /// master known for the slot, an address that does not answer), or the
    /// cluster said `CLUSTERDOWN`: reads go through redis-rs meanwhile.
    resting_until: Option<std::time::Instant>,
}

/// The address of `MOVED <slot> <host>:<port>`, unless the host is empty
/// or unknown (`?`), as a cluster that announces no endpoint says.
fn moved_address(reason: &str) -> Option<(String, u16)> {
    let mut words = reason.split_whitespace();
    if words.next() != Some("MOVED") {
        return None;
    }
    node_address(words.nth(1)?)
}

/// `<host>:<port>`, unless the host is empty or unknown (`?`).
fn node_address(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    if host.is_empty() || host == "?" {
        return None;
    }
    Some((host.to_owned(), port.parse().ok()?))
}

/// The code of a server's error (`MOVED`, `CLUSTERDOWN`, `NOGROUP`),
/// whether it came as redis-rs's error (whose text reads `Moved: …`) or
/// as the error line of a hand-written reply; `None` for anything else (a
/// lost connection).
pub(super) fn error_code(e: &TransportError) -> Option<&str> {
    match e {
        TransportError::Redis(e) => e.code(),
        TransportError::Protocol { reason, .. } if is_server_error(reason) => {
            reason.split_whitespace().next()
        }
        _ => None,
    }
}

/// Where a `MOVED` error says the slot is now, if it names an address.
pub(super) fn moved_to(e: &TransportError) -> Option<(String, u16)> {
    match e {
        TransportError::Redis(e) if e.code() == Some("MOVED") => node_address(e.redirect_node()?.0),
        TransportError::Protocol { reason, .. } => moved_address(reason),
        _ => None,
    }
}

/// How long a reading connection on a cluster rests after it could not be
/// made, before the next try.
const SLOT_REST: std::time::Duration = std::time::Duration::from_secs(1);

impl SlotFollow {
    /// Takes in what a failed read says about the slot: the new master of
    /// a `MOVED`, or a rest after `CLUSTERDOWN`.
    fn note(&mut self, e: &TransportError) {
        match error_code(e) {
            Some("MOVED") => self.moved_to = moved_to(e),
            Some("CLUSTERDOWN") => self.rest(),
            _ => {}
        }
    }

    fn rest(&mut self) {
        self.resting_until = Some(std::time::Instant::now() + SLOT_REST);
    }
}

/// The socket of a connection: TCP, or TLS over TCP.
pub(super) enum Socket {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Socket::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Socket::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_flush(cx),
            Socket::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Socket::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl RespConnection {
    /// A connection for `info`, if it is TCP, or TLS that checks the
    /// server's certificate; behind Sentinel, `endpoint` gives the address
    /// of each new connection.
    pub(super) fn for_info(info: &ConnectionInfo, endpoint: &Endpoint) -> Option<Self> {
        let (host, port, tls) = match info.addr() {
            ConnectionAddr::Tcp(host, port) => (host, port, None),
            ConnectionAddr::TcpTls {
                host,
                port,
                insecure: false,
                ..
            } => (host, port, Some(endpoint.rustls_config()?)),
            _ => return None,
        };
        let settings = info.redis_settings();
        Some(RespConnection {
            host: host.clone(),
            port: *port,
            username: settings.username().map(str::to_owned),
            password: settings.password().map(str::to_owned),
            db: settings.db(),
            conn: None,
            out: Vec::new(),
            payload: Vec::new(),
            ahead: false,
            size: ReplySize::UNKNOWN,
            follow: endpoint.follows_failover().then(|| endpoint.clone()),
            tls,
            slot: None,
        })
    }

    /// A reading connection on a Redis Cluster, made to the master of the
    /// slot of the key it reads, as `cluster` names it then: for a node's
    /// `info` (user, password, TLS), if it is TCP or TLS that checks
    /// certificates.
    pub(super) fn for_cluster(
        info: &ConnectionInfo,
        endpoint: &Endpoint,
        cluster: super::shared::SharedConnection,
    ) -> Option<Self> {
        let mut conn = Self::for_info(info, endpoint)?;
        conn.slot = Some(SlotFollow {
            cluster,
            key: String::new(),
            moved_to: None,
            resting_until: None,
        });
        Some(conn)
    }

    /// A connection to one node of a Redis Cluster, at `host:port`, with
    /// the user, password and TLS of `info` (a node of the same cluster),
    /// if it is TCP or TLS that checks certificates.
    pub(super) fn for_node(
        info: &ConnectionInfo,
        endpoint: &Endpoint,
        host: &str,
        port: u16,
    ) -> Option<Self> {
        let mut conn = Self::for_info(info, endpoint)?;
        conn.host = host.to_owned();
        conn.port = port;
        Some(conn)
    }

    /// Makes the connection unless it is up: an error here says nothing
    /// was sent on it.
    pub(super) async fn connected(&mut self) -> Result<(), TransportError> {
        if self.conn.is_none() {
            self.conn = Some(self.open().await?);
        }
        Ok(())
    }

    /// On a cluster, whether this connection is resting after it could not
    /// be made: the caller reads through redis-rs meanwhile.
    pub(super) fn resting(&self) -> bool {
        self.slot
            .as_ref()
            .and_then(|s| s.resting_until)
            .is_some_and(|until| std::time::Instant::now() < until)
    }

    /// Whether `e` says the connection is to a server that is no longer
    /// the master: a replica's `READONLY`, behind Sentinel, where the next
    /// connection goes to the master named then; on a cluster, a node that
    /// no longer serves the key's slot (`MOVED`, `CLUSTERDOWN`), where the
    /// next goes to the slot's master (`ASK` and `TRYAGAIN`, while a slot
    /// moves, keep the connection: the slot is still this node's).
    fn stale(&self, e: &TransportError) -> bool {
        (self.follow.is_some() && e.is_read_only())
            || (self.slot.is_some() && e.is_cluster_redirect() && !e.is_asked())
    }

    /// Connects, within [`CONNECT_TIMEOUT`]. Boxed: connecting (TCP, TLS,
    /// `AUTH` and `SELECT`, the master behind Sentinel) is rare and its
    /// future large;
    /// awaited in place, it made every command's future that may connect
    /// carry it (an `append` of one event: 3.8 KB, of which 3.6 KB was
    /// this), and every publish move it.
    fn open(&mut self) -> Pin<Box<dyn Future<Output = Opened> + Send + '_>> {
        Box::pin(self.open_now())
    }

    async fn open_now(&mut self) -> Opened {
        match tokio::time::timeout(CONNECT_TIMEOUT, self.connect()).await {
            Ok(result) => result,
            Err(_) => Err(super::timed_out(format!(
                "connecting to {}:{} timed out",
                self.host, self.port
            ))),
        }
    }

    async fn connect(&mut self) -> Result<(Socket, Vec<u8>), TransportError> {
        if let Some(slot) = &mut self.slot {
            let named = match slot.moved_to.take() {
                Some(addr) => Some(addr),
                None => slot.cluster.master_of(&slot.key).await?,
            };
            // An empty or unknown host (a cluster that announces none) is
            // no address to connect to: redis-rs reads instead.
            let Some((host, port)) = named.filter(|(h, _)| !h.is_empty() && h != "?") else {
                return Err(RedisError::from(io::Error::new(
                    io::ErrorKind::NotConnected,
                    format!("no address of the master of the slot of `{}`", slot.key),
                ))
                .into());
            };
            self.host = host;
            self.port = port;
        }
        if let Some(endpoint) = &self.follow {
            let client = endpoint.client().await?;
            let (host, port) = match client.get_connection_info().addr() {
                ConnectionAddr::Tcp(host, port) if self.tls.is_none() => (host, port),
                ConnectionAddr::TcpTls {
                    host,
                    port,
                    insecure: false,
                    ..
                } if self.tls.is_some() => (host, port),
                _ => {
                    return Err(RedisError::from((
                        ErrorKind::InvalidClientConfig,
                        "the master named by Sentinel is not reached as the URL says \
                         (plain TCP, or TLS that checks certificates)",
                    ))
                    .into())
                }
            };
            self.host = host.clone();
            self.port = *port;
        }
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(redis::RedisError::from)?;
        let _ = tcp.set_nodelay(true);
        let mut stream = match &self.tls {
            None => Socket::Tcp(tcp),
            Some(config) => {
                let name = ServerName::try_from(self.host.clone()).map_err(|e| {
                    RedisError::from((
                        ErrorKind::InvalidClientConfig,
                        "not a TLS server name",
                        format!("`{}`: {e}", self.host),
                    ))
                })?;
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(redis::RedisError::from)?;
                Socket::Tls(Box::new(tls))
            }
        };
        let mut buf = Vec::with_capacity(READ_CHUNK);
        if let Some(password) = &self.password {
            let mut auth = redis::cmd("AUTH");
            if let Some(user) = &self.username {
                auth.arg(user);
            }
            auth.arg(password);
            expect_ok(&mut stream, &mut buf, &auth, "AUTH").await?;
        }
        if self.db != 0 {
            let mut select = redis::cmd("SELECT");
            select.arg(self.db);
            expect_ok(&mut stream, &mut buf, &select, "SELECT").await?;
        }
        Ok((stream, buf))
    }

    /// Sends `XREADGROUP` and returns the entries of its reply; with
    /// [`ReadRequest::read_ahead`], the next read may already be on its way
    /// when this returns, and the next call starts with its reply.
    ///
    /// The connection is taken out while a read is on it, so that a read
    /// dropped half-way also drops the connection. A server error (`NOGROUP`)
    /// leaves it in step, and is returned.
    pub(super) async fn read_group(
        &mut self,
        r: &ReadRequest<'_>,
    ) -> Result<Vec<Entry>, TransportError> {
        if let Some(slot) = &mut self.slot {
            if slot.key != r.key {
                // Another key may live on another node: a new connection.
                slot.key = r.key.to_owned();
                self.conn = None;
                self.ahead = false;
            }
        }
        let (mut stream, mut buf, fresh) = match self.conn.take() {
            Some((stream, buf)) => (stream, buf, false),
            None => match self.open().await {
                Ok((stream, buf)) => (stream, buf, true),
                Err(e) => {
                    if let Some(slot) = &mut self.slot {
                        slot.rest();
                    }
                    return Err(e);
                }
            },
        };
        // A read cut short (cancelled at a stop, or past its deadline) took
        // its connection with it: a read it sent ahead is gone too.
        let sent_ahead = std::mem::take(&mut self.ahead) && !fresh;
        let mut keep = true;
        let mut result = Ok(Vec::new());
        if sent_ahead {
            result = receive_entries(
                &mut stream,
                &mut buf,
                r,
                &mut self.ahead,
                &mut self.size,
                &mut keep,
            )
            .await;
        }
        if matches!(&result, Ok(entries) if entries.is_empty()) {
            let cmd = super::xreadgroup(r, r.count.min(self.size.cap), Some(r.block));
            result = match write(&mut stream, &cmd.get_packed_command()).await {
                Ok(()) => {
                    receive_entries(
                        &mut stream,
                        &mut buf,
                        r,
                        &mut self.ahead,
                        &mut self.size,
                        &mut keep,
                    )
                    .await
                }
                Err(e) => Err(e),
            };
        }
        if let (Some(slot), Err(e)) = (&mut self.slot, &result) {
            slot.note(e);
        }
        let in_step = match &result {
            Ok(_) => keep,
            Err(e) if self.stale(e) => false,
            Err(TransportError::Protocol { reason, .. }) => is_server_error(reason),
            Err(_) => false,
        };
        if in_step {
            self.conn = Some((stream, buf));
        } else {
            // The stream may be anywhere in a reply: start afresh.
            self.ahead = false;
        }
        result
    }

    /// Sends the packed commands `cmds` in one write, and gives `each` the
    /// reply of each, in order, as soon as it is read: for a command marked
    /// as an `XREADGROUP` over several streams, the streams that had
    /// entries; for any other, nothing; or the command's own error
    /// (`NOGROUP`), after which the connection stays in step.
    ///
    /// A failure that leaves the connection out of step (or the write, or
    /// any one reply, taking longer than `within`) drops it and returns the
    /// index of the first command left unanswered, with the error. So does
    /// a reply saying the server is no longer the master (a replica's
    /// `READONLY` behind Sentinel), after every reply was read and given:
    /// the next call connects to the master named then. The connection is
    /// taken out meanwhile, so that a call dropped half-way drops it too.
    pub(super) async fn pipeline(
        &mut self,
        cmds: &[(Vec<u8>, bool)],
        within: std::time::Duration,
        mut each: impl FnMut(usize, Piped),
    ) -> Result<(), (usize, TransportError)> {
        let late = |what: &str| super::timed_out(format!("no {what} within {within:?}"));
        let (mut stream, mut buf) = match self.conn.take() {
            Some(conn) => conn,
            None => self.open().await.map_err(|e| (0, e))?,
        };
        self.ahead = false;
        self.out.clear();
        for (cmd, _) in cmds {
            self.out.extend_from_slice(cmd);
        }
        tokio::time::timeout(within, write(&mut stream, &self.out))
            .await
            .unwrap_or_else(|_| Err(late("write")))
            .map_err(|e| (0, e))?;
        if self.out.capacity() > 4 * WRITE_CHUNK {
            self.out = Vec::new();
        }
        let mut stale = false;
        for (i, (_, streams)) in cmds.iter().enumerate() {
            let read = async {
                match streams {
                    true => Ok(streams_reply(&mut stream, &mut buf).await?.map(Some)),
                    false => {
                        let len = whole_item(&mut stream, &mut buf, 0, "pipeline").await?;
                        let result = match buf[0] {
                            b'-' => {
                                Err(server_error(&buf[..len], "pipeline").unwrap_or_else(|e| e))
                            }
                            _ => Ok(None),
                        };
                        buf.drain(..len);
                        Ok(result)
                    }
                }
            };
            let result = tokio::time::timeout(within, read)
                .await
                .unwrap_or_else(|_| Err(late("reply")))
                .map_err(|e| (i, e))?;
            stale |= matches!(&result, Err(e) if self.stale(e));
            each(i, result);
        }
        if !stale {
            self.conn = Some((stream, buf));
        }
        Ok(())
    }

    /// Reads the reply of a read sent ahead, if one was: its entries were
    /// delivered to this consumer, and are to be handled.
    pub(super) async fn read_ahead_rest(&mut self) -> Result<Vec<Entry>, TransportError> {
        if !self.ahead {
            return Ok(Vec::new());
        }
        self.ahead = false;
        let Some((mut stream, mut buf)) = self.conn.take() else {
            return Ok(Vec::new());
        };
        let result = entries(&mut stream, &mut buf)
            .await
            .map(|(entries, _)| entries);
        if result.is_ok() {
            self.conn = Some((stream, buf));
        }
        result
    }

    /// Sends one `XADD` per event, pipelined, and returns the entry ids in
    /// order; the same commands, byte for byte, as [`super::xadd`] builds.
    ///
    /// The connection is taken out while the batch is on it, so that a
    /// batch dropped half-way (a timeout, a cancelled publish) also drops
    /// the connection, with whatever replies were still to come. A server
    /// error in one reply is returned after every reply was read, as
    /// redis-rs reports a pipeline: the connection stays usable, and the
    /// other entries of the batch were appended. Behind Sentinel, a
    /// replica's `READONLY` drops it instead: the next batch connects to
    /// the master the Sentinels name then.
    pub(super) async fn append(
        &mut self,
        batch: &[(&str, Outgoing<'_>)],
    ) -> Result<Vec<String>, TransportError> {
        let (mut stream, mut buf) = match self.conn.take() {
            Some(c) => c,
            None => self.open().await?,
        };
        self.out.clear();
        for (key, o) in batch {
            encode_xadd(&mut self.out, key, o);
            if self.out.len() >= WRITE_CHUNK {
                write(&mut stream, &self.out).await?;
                self.out.clear();
            }
        }
        write(&mut stream, &self.out).await?;
        if self.out.capacity() > 4 * WRITE_CHUNK {
            self.out = Vec::new();
        }
        let ids = read_xadd_replies(&mut stream, &mut buf, batch.len()).await?;
        let ids: Result<Vec<String>, TransportError> = ids.into_iter().collect();
        if !matches!(&ids, Err(e) if self.stale(e)) {
            self.conn = Some((stream, buf));
        }
        ids
    }
}

/// A streamed batch is written out in pieces of about this size: Redis
/// queues the first commands while the next payloads are serialized.
const STREAM_CHUNK: usize = 16 * 1024;
/// The first piece is smaller, so that Redis starts sooner. Measured on
/// batches of 100 entries of about 600 bytes (`--only publish_batch_100`,
/// three alternating rounds): 16 kB pieces throughout 302k–316k /s,
/// 8 kB 315k–322k, 32 kB 307k–309k, 4 kB then 16 kB 322k–324k.
const FIRST_STREAM_CHUNK: usize = 4 * 1024;

/// The event of a streamed batch whose payload could not be serialized
/// (its index), and serde's reason.
pub(crate) type Unwritable = (usize, serde_json::Error);

impl RespConnection {
    /// Appends one entry per element of `events` to `key`, in one
    /// `MULTI` … `EXEC`, each payload serialized by `payload` just before
    /// its command is encoded, and the commands sent in pieces as they are
    /// ready, so that Redis queues the first ones while the client is still
    /// serializing the rest. The `data` of `events` is not read.
    ///
    /// ```text
    /// MULTI
    /// XADD <key> * specversion 1.0 id <ulid> … data <json>     (one per event)
    /// EXEC
    /// ```
    ///
    /// A payload that cannot be serialized ends the call before `EXEC`,
    /// with the connection dropped: Redis discards the transaction of a
    /// client that goes away, so nothing of the batch is appended. Returns
    /// one reply per event otherwise, as [`RespConnection::append`] does;
    /// a command Redis refused to queue fails the whole batch with its
    /// error, as Redis then runs none of it.
    pub(super) async fn append_streamed(
        &mut self,
        key: &str,
        events: &[Outgoing<'_>],
        mut payload: impl FnMut(usize, &mut Vec<u8>) -> Result<(), serde_json::Error>,
    ) -> Result<Result<Vec<Result<String, TransportError>>, Unwritable>, TransportError> {
        let (mut stream, mut buf) = match self.conn.take() {
            Some(c) => c,
            None => self.open().await?,
        };
        self.out.clear();
        self.out.extend_from_slice(b"*1\r\n$5\r\nMULTI\r\n");
        let mut data = std::mem::take(&mut self.payload);
        let mut piece = FIRST_STREAM_CHUNK;
        for (i, attributes) in events.iter().enumerate() {
            data.clear();
            if let Err(e) = payload(i, &mut data) {
                // `stream` is dropped here, and the transaction with it.
                self.payload = data;
                return Ok(Err((i, e)));
            }
            let o = Outgoing {
                data: &data,
                ..*attributes
            };
            encode_xadd(&mut self.out, key, &o);
            if self.out.len() >= piece {
                write(&mut stream, &self.out).await?;
                self.out.clear();
                piece = STREAM_CHUNK;
            }
        }
        self.payload = data;
        self.out.extend_from_slice(b"*1\r\n$4\r\nEXEC\r\n");
        write(&mut stream, &self.out).await?;
        if self.out.capacity() > 4 * WRITE_CHUNK {
            self.out = Vec::new();
        }
        let replies = read_exec_replies(&mut stream, &mut buf, events.len()).await?;
        if !replies.iter().any(|r| matches!(r, Err(e) if self.stale(e))) {
            self.conn = Some((stream, buf));
        }
        Ok(Ok(replies))
    }
}

/// Reads the replies of `MULTI`, `n` queued commands and `EXEC`: `+OK`,
/// `+QUEUED` (or the error that refused a command) each, then `EXEC`'s
/// array of `n` replies, or its error when a command was refused.
async fn read_exec_replies(
    stream: &mut Socket,
    buf: &mut Vec<u8>,
    n: usize,
) -> Result<Vec<Result<String, TransportError>>, TransportError> {
    let mut start = 0;
    let mut refused = None;
    for _ in 0..=n {
        let end = whole_item(stream, buf, start, "MULTI").await?;
        let reply = &buf[start..end];
        if reply.first() == Some(&b'-') {
            if refused.is_none() {
                refused = Some(server_error(reply, "MULTI")?);
            }
        } else if reply != b"+OK\r\n" && reply != b"+QUEUED\r\n" {
            return Err(protocol("MULTI", "expected +OK or +QUEUED"));
        }
        start = end;
    }
    let (count, mut at) = loop {
        match buf.get(start) {
            Some(b'*') => {}
            // `EXEC`'s error, which may come in a later read than the
            // replies before it.
            Some(b'-') => {
                let end = whole_item(stream, buf, start, "EXEC").await?;
                let error = server_error(&buf[start..end], "EXEC")?;
                buf.drain(..end);
                // EXECABORT: the refusal of the command says more than the
                // abort.
                return Err(refused.unwrap_or(error));
            }
            Some(_) => return Err(protocol("EXEC", "expected an array")),
            None => {
                fill(stream, buf).await?;
                continue;
            }
        }
        match number(buf, start + 1).map_err(|r| protocol("EXEC", r))? {
            Some(header) => break header,
            None => fill(stream, buf).await?,
        }
    };
    if usize::try_from(count).ok() != Some(n) {
        return Err(protocol(
            "EXEC",
            format!("{count} replies for {n} queued commands"),
        ));
    }
    let mut replies = Vec::with_capacity(n);
    for _ in 0..n {
        let end = whole_item(stream, buf, at, "EXEC").await?;
        replies.push(xadd_reply(&buf[at..end])?);
        at = end;
    }
    buf.drain(..at);
    Ok(replies)
}

/// Reads until the RESP item at `start` of `buf` is whole; returns its end.
/// Each read is walked on from where the last one stopped.
async fn whole_item(
    stream: &mut Socket,
    buf: &mut Vec<u8>,
    start: usize,
    command: &'static str,
) -> Result<usize, TransportError> {
    let mut scan = Scan {
        pos: start,
        ..Scan::default()
    };
    loop {
        if let Some(end) = scan.advance(buf).map_err(|r| protocol(command, r))? {
            return Ok(end);
        }
        fill(stream, buf).await?;
    }
}

/// A server error reply (`-<CODE> <message>`), as redis-rs reports it.
fn server_error(reply: &[u8], command: &'static str) -> Result<TransportError, TransportError> {
    match redis::parse_redis_value(reply).and_then(Value::extract_error) {
        Err(e) => Ok(e.into()),
        Ok(_) => Err(protocol(command, "unreadable error reply")),
    }
}

/// Writes `bytes` out (through TLS too: flushed, not left in a record).
async fn write(stream: &mut Socket, bytes: &[u8]) -> Result<(), TransportError> {
    stream
        .write_all(bytes)
        .await
        .map_err(redis::RedisError::from)?;
    stream
        .flush()
        .await
        .map_err(|e| redis::RedisError::from(e).into())
}

/// Reads more of a reply into `buf`; the end of the stream is an error.
async fn fill(stream: &mut Socket, buf: &mut Vec<u8>) -> Result<(), TransportError> {
    if buf.capacity() - buf.len() < READ_CHUNK / 2 {
        buf.reserve(READ_CHUNK);
    }
    let n = stream
        .read_buf(buf)
        .await
        .map_err(redis::RedisError::from)?;
    if n == 0 {
        return Err(redis::RedisError::from(std::io::Error::from(
            std::io::ErrorKind::UnexpectedEof,
        ))
        .into());
    }
    Ok(())
}

/// Writes `XADD <key> * <attributes…> data <payload>` in RESP: the array
/// header, then each argument as a bulk string (`$<len>\r\n<bytes>\r\n`).
///
/// The field names and the values every entry shares are written as whole
/// runs of bytes, framing included, so that an entry is a dozen copies
/// rather than a hundred small writes; `xadd_is_encoded_byte_for_byte_as_redis_rs_packs_it`
/// holds these runs to the names of [`crate::envelope::field`].
fn encode_xadd(out: &mut Vec<u8>, key: &str, o: &Outgoing<'_>) {
    let optional = o.optional();
    let mut version = itoa::Buffer::new();
    let version = version.format(o.dataversion);
    let mut present = 0;
    let mut variable = key.len()
        + o.id.len()
        + o.source.len()
        + o.type_name.len()
        + o.time.len()
        + o.dataschema.len()
        + version.len()
        + o.data.len();
    for (name, value) in &optional {
        if let Some(v) = value {
            present += 1;
            variable += name.len() + v.len() + 2 * MAX_HEADER;
        }
    }
    for (name, value) in o.extensions {
        present += 1;
        variable += name.len() + value.len() + 2 * MAX_HEADER;
    }
    // The runs below, and a header of at most MAX_HEADER bytes per value.
    out.reserve(variable + 192 + 8 * MAX_HEADER);
    header(out, b'*', 3 + 2 * (9 + present));
    out.extend_from_slice(b"$4\r\nXADD\r\n");
    bulk_open(out, key.as_bytes());
    out.extend_from_slice(b"\r\n$1\r\n*\r\n$11\r\nspecversion\r\n$3\r\n1.0\r\n$2\r\nid\r\n");
    bulk_open(out, o.id.as_bytes());
    out.extend_from_slice(b"\r\n$6\r\nsource\r\n");
    bulk_open(out, o.source.as_bytes());
    out.extend_from_slice(b"\r\n$4\r\ntype\r\n");
    bulk_open(out, o.type_name.as_bytes());
    out.extend_from_slice(b"\r\n$4\r\ntime\r\n");
    bulk_open(out, o.time.as_bytes());
    out.extend_from_slice(
        b"\r\n$15\r\ndatacontenttype\r\n$16\r\napplication/json\r\n$10\r\ndataschema\r\n",
    );
    bulk_open(out, o.dataschema.as_bytes());
    out.extend_from_slice(b"\r\n$11\r\ndataversion\r\n");
    bulk_open(out, version.as_bytes());
    let extensions = o.extensions.iter().map(|(n, v)| (n.as_str(), v.as_str()));
    for (name, v) in optional
        .into_iter()
        .filter_map(|(n, v)| v.map(|v| (n, v)))
        .chain(extensions)
    {
        out.extend_from_slice(b"\r\n");
        bulk_open(out, name.as_bytes());
        out.extend_from_slice(b"\r\n");
        bulk_open(out, v.as_bytes());
    }
    out.extend_from_slice(b"\r\n$4\r\ndata\r\n");
    bulk_open(out, o.data);
    out.extend_from_slice(b"\r\n");
}

/// `$`, `*` or `:`, at most 20 digits and CRLF.
const MAX_HEADER: usize = 23;

/// `<kind><n>\r\n`, in one copy.
fn header(out: &mut Vec<u8>, kind: u8, n: usize) {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(n).as_bytes();
    let mut head = [0u8; MAX_HEADER];
    head[0] = kind;
    head[1..=digits.len()].copy_from_slice(digits);
    head[digits.len() + 1..digits.len() + 3].copy_from_slice(b"\r\n");
    out.extend_from_slice(&head[..digits.len() + 3]);
}

/// A bulk string without its closing CRLF, which the run after it carries.
fn bulk_open(out: &mut Vec<u8>, bytes: &[u8]) {
    header(out, b'$', bytes.len());
    out.extend_from_slice(bytes);
}

/// Reads the `n` replies of pipelined `XADD`s: an entry id each, or a
/// server error, which is kept in its place.
async fn read_xadd_replies(
    stream: &mut Socket,
    buf: &mut Vec<u8>,
    n: usize,
) -> Result<Vec<Result<String, TransportError>>, TransportError> {
    let mut replies = Vec::with_capacity(n);
    let mut start = 0;
    while replies.len() < n {
        // The reply of nearly every XADD: `$<len>\r\n<id>\r\n`.
        if let Some((id, end)) = entry_id_at(buf, start) {
            replies.push(Ok(id));
            start = end;
            continue;
        }
        let end = whole_item(stream, buf, start, "XADD").await?;
        replies.push(xadd_reply(&buf[start..end])?);
        start = end;
    }
    buf.drain(..start);
    Ok(replies)
}

/// The entry id of a whole `XADD` reply at `at` and where the next reply
/// starts; `None` for anything else (an error, a reply not whole yet),
/// which [`xadd_reply`] then reads.
#[inline]
fn entry_id_at(buf: &[u8], at: usize) -> Option<(String, usize)> {
    let mut c = Cursor::new(buf.get(at..)?, "XADD");
    let id = std::str::from_utf8(c.bulk("entry id").ok()?).ok()?;
    Some((id.to_owned(), at + c.pos))
}

/// One `XADD` reply, which [`Scan::advance`] found complete: the entry id,
/// or the server's error as redis-rs would report it.
fn xadd_reply(reply: &[u8]) -> Result<Result<String, TransportError>, TransportError> {
    if reply.first() == Some(&b'-') {
        return server_error(reply, "XADD").map(Err);
    }
    let mut c = Cursor::new(reply, "XADD");
    let id = c.bulk("entry id")?;
    let id = std::str::from_utf8(id).map_err(|_| protocol("XADD", "entry id is not UTF-8"))?;
    Ok(Ok(id.to_owned()))
}

/// Server errors are reported as `Protocol` errors whose reason is the
/// error line (`NOGROUP …`), which leave the connection usable.
fn is_server_error(reason: &str) -> bool {
    reason.starts_with(|c: char| c.is_ascii_uppercase())
        && !reason.starts_with("RESP")
        && !reason.starts_with("CONNECTION")
}

async fn expect_ok(
    stream: &mut Socket,
    buf: &mut Vec<u8>,
    cmd: &redis::Cmd,
    command: &'static str,
) -> Result<(), TransportError> {
    roundtrip(stream, buf, cmd, command, |frame| {
        let mut pos = 0;
        Ok(parse(frame, &mut pos))
    })
    .await
    .map(|_| ())
}

/// Sends `cmd`, waits for its whole reply and gives it to `decode`; a
/// server error is an `Err`.
async fn roundtrip<T>(
    stream: &mut Socket,
    buf: &mut Vec<u8>,
    cmd: &redis::Cmd,
    command: &'static str,
    decode: impl FnOnce(&[u8]) -> Result<T, TransportError>,
) -> Result<T, TransportError> {
    write(stream, &cmd.get_packed_command()).await?;
    let len = reply(stream, buf, command).await?;
    let result = decode(&buf[..len]);
    buf.drain(..len);
    result
}

/// Waits for the whole reply at the start of `buf` and returns its length;
/// a server error is consumed and returned as an `Err`.
async fn reply(
    stream: &mut Socket,
    buf: &mut Vec<u8>,
    command: &'static str,
) -> Result<usize, TransportError> {
    let len = whole_item(stream, buf, 0, command).await?;
    if buf[0] == b'-' {
        let text = String::from_utf8_lossy(&buf[1..len - 2]).into_owned();
        buf.drain(..len);
        return Err(protocol(command, text));
    }
    Ok(len)
}

/// Reads an `XREADGROUP` reply. Once it is whole, and before reading its
/// entries, sends the read ahead that `r` allows for that many entries
/// (setting `ahead`), so that the server works on it meanwhile. A read
/// ahead that cannot be sent clears `keep`: the entries are still returned,
/// and the connection is dropped after.
async fn receive_entries(
    stream: &mut Socket,
    buf: &mut Vec<u8>,
    r: &ReadRequest<'_>,
    ahead: &mut bool,
    size: &mut ReplySize,
    keep: &mut bool,
) -> Result<Vec<Entry>, TransportError> {
    // The head first: for a full batch the read ahead goes out at once,
    // while the rest of the reply may still be arriving.
    let got = loop {
        match reply_head(buf) {
            Some(n) => break n,
            None => fill(stream, buf).await?,
        }
    };
    if let (Some(gate), true, false) = (r.ahead, got > 0, size.large) {
        let more = (gate.0)(got, r.count.min(size.cap)).min(size.cap);
        if more > 0 {
            let cmd = super::xreadgroup(r, more, None);
            if write(stream, &cmd.get_packed_command()).await.is_ok() {
                *ahead = true;
            } else {
                *keep = false;
            }
        }
    }
    let (entries, len) = entries(stream, buf).await?;
    // An empty reply says nothing of the size of entries.
    if !entries.is_empty() {
        *size = ReplySize::of(len, entries.len());
    }
    Ok(entries)
}

/// What a reply said of the size of the entries read.
#[derive(Clone, Copy, Debug, PartialEq)]
struct ReplySize {
    /// No reply with entries read yet, or its entries were on average
    /// longer than [`AHEAD_MAX_REPLY`]: no read goes ahead of the next.
    large: bool,
    /// The most entries one read asks for: as many as make
    /// [`AHEAD_REPLY`] at the size of those of the last reply.
    cap: usize,
}

impl ReplySize {
    /// Before the first reply: the first read of a stream of large entries
    /// must not have a second large reply sent behind it.
    const UNKNOWN: ReplySize = ReplySize {
        large: true,
        cap: usize::MAX,
    };

    #[cfg(test)]
    const SMALL: ReplySize = ReplySize {
        large: false,
        cap: usize::MAX,
    };

    /// After a reply of `len` bytes holding `entries` (at least one).
    fn of(len: usize, entries: usize) -> ReplySize {
        let each = len / entries.max(1);
        ReplySize {
            large: each > AHEAD_MAX_REPLY,
            cap: AHEAD_REPLY
                .checked_div(each)
                .map_or(usize::MAX, |n| n.max(1)),
        }
    }
}

/// Entries longer than this on average are read in turn, none ahead of
/// the next. A second reply of many megabytes behind a long one makes the
/// server hold and write both at once: at 64 KiB payloads, reading 100
/// entries (6.4 MB replies) each ahead of the next cost the server 1.47x
/// the CPU per event of reading in turn, and the reader 0.74x the rate
/// (`--only payload`). A read ahead is sized by the last reply's entries:
/// when entries grow, one reply larger than [`AHEAD_REPLY`] may be in
/// flight behind another, before the size is taken in.
const AHEAD_MAX_REPLY: usize = 1024 * 1024;

/// The size of reply a read asks for, in entries the size of the last
/// reply's, when that is fewer than the consumer's count: large entries
/// are read a few at a time, each read going ahead of the next, so that
/// the server writes one reply while the consumer decodes the last. At 250
/// B and 4 KiB (25 KB and 400 KB replies of 100 entries) the count stands.
const AHEAD_REPLY: usize = 512 * 1024;

/// The entries of the `XREADGROUP` reply at the start of `buf`, read from
/// `stream` as far as needed, with the reply's length.
///
/// Each entry is read as soon as its last byte is in, and never again: a
/// reply of large entries arrives over many reads, and reading it whole
/// after a first try on what had come built the entries of that try twice
/// (at 64 KiB payloads, the copy of about half of a reply's payloads).
async fn entries(
    stream: &mut Socket,
    buf: &mut Vec<u8>,
) -> Result<(Vec<Entry>, usize), TransportError> {
    loop {
        match buf.first() {
            Some(b'*') => break,
            Some(_) => {
                // A server error (`NOGROUP`), or not a reply of this shape.
                let len = reply(stream, buf, "XREADGROUP").await?;
                let entries = read_group_reply(&buf[..len]);
                consume(buf, len);
                return Ok((entries?, len));
            }
            None => fill(stream, buf).await?,
        }
    }
    let mut reading = Reading::default();
    loop {
        if let Some(len) = reading.advance(buf)? {
            consume(buf, len);
            return Ok((reading.into_entries(), len));
        }
        fill(stream, buf).await?;
    }
}

/// The most a reading connection's buffer keeps between replies: a reply
/// of the size reads ask for ([`AHEAD_REPLY`]) and one read ahead behind
/// it, with the room the buffer doubles into. A larger reply (the first
/// read of a stream of large entries asks for a whole count of them: 6.6
/// MB at 64 KiB) leaves a buffer of that size, given back once read.
const KEEP_BUFFER: usize = 4 * AHEAD_REPLY;

/// Drops the reply of `len` bytes at the start of `buf`, and a buffer
/// grown past [`KEEP_BUFFER`] once nothing is left in it.
fn consume(buf: &mut Vec<u8>, len: usize) {
    buf.drain(..len);
    if buf.is_empty() && buf.capacity() > KEEP_BUFFER {
        *buf = Vec::with_capacity(READ_CHUNK);
    }
}

/// The number of entries in an `XREADGROUP` reply of one stream, from its
/// head alone (`*1 *2 $<key> *<n>`); 0 for any other reply; `None` until
/// the head has arrived.
fn reply_head(reply: &[u8]) -> Option<usize> {
    let mut c = Cursor::new(reply, "XREADGROUP");
    let n = (|| {
        if c.array("streams")? != Some(1) || c.array("[key, entries]")? != Some(2) {
            return Ok(None);
        }
        c.bulk("stream key")?;
        c.array("entries")
    })();
    match n {
        Ok(n) => Some(n.unwrap_or(0)),
        Err(_) if c.short => None,
        Err(_) => Some(0),
    }
}

/// The line at `at` (without its CRLF) and where the next item starts.
fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(at..)?;
    let end = rest.iter().position(|&b| b == b'\r')?;
    if *rest.get(end + 1)? != b'\n' {
        // A CR inside a simple string: keep looking after it.
        let (_, next) = line(buf, at + end + 1)?;
        return Some((&rest[..next - 2 - at], next));
    }
    Some((&rest[..end], at + end + 2))
}

/// A RESP length or integer: an optional `-` and at most 18 digits.
///
/// One pass over the digits: it runs for every header of a reply that is
/// checked whole before it is read, twice (the check, then the read).
#[inline]
fn integer(digits: &[u8]) -> Result<i64, String> {
    let (negative, body) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    if body.is_empty() || body.len() > 18 {
        return Err(bad_integer(digits));
    }
    let mut n = 0i64;
    for &d in body {
        let digit = d.wrapping_sub(b'0');
        if digit > 9 {
            return Err(bad_integer(digits));
        }
        n = n * 10 + i64::from(digit);
    }
    Ok(if negative { -n } else { n })
}

/// The number of the header whose digits start at `at` (`$19\r\n`, `*-1\r\n`,
/// `:7\r\n`) and where the next item starts; `None` if the line is not
/// whole yet. The same numbers as [`integer`] of the [`line`], read in one
/// pass: every header of a reply was read twice (the completeness check,
/// then the read), and the two passes were a fifth of a consumer's work.
#[inline]
fn number(buf: &[u8], at: usize) -> Result<Option<(i64, usize)>, String> {
    let negative = buf.get(at) == Some(&b'-');
    let first = at + usize::from(negative);
    let mut i = first;
    let mut n = 0i64;
    while let Some(&b) = buf.get(i) {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            break;
        }
        n = n * 10 + i64::from(digit);
        i += 1;
        if i - first > 18 {
            return Err(bad_header(buf, at));
        }
    }
    match buf.get(i..i + 2) {
        _ if i == buf.len() => Ok(None),
        Some(b"\r\n") if i > first => Ok(Some((if negative { -n } else { n }, i + 2))),
        None if buf[i] == b'\r' => Ok(None),
        _ => Err(bad_header(buf, at)),
    }
}

#[cold]
#[inline(never)]
fn bad_header(buf: &[u8], at: usize) -> String {
    let digits = line(buf, at).map_or(&buf[at.min(buf.len())..], |(head, _)| head);
    bad_integer(digits)
}

#[cold]
#[inline(never)]
fn bad_integer(digits: &[u8]) -> String {
    format!("RESP: bad length {:?}", String::from_utf8_lossy(digits))
}

/// How far a reply has been checked: a reply that arrives in several reads
/// is walked once, each read going on from where the last one stopped.
#[derive(Default)]
struct Scan {
    /// Where the next item starts.
    pos: usize,
    /// Items still expected by each array being walked, outermost first.
    open: Vec<i64>,
    /// Whether the first item (the reply itself) has been seen.
    started: bool,
}

impl Scan {
    /// The length of the complete reply at the start of `buf`, `None` if
    /// more bytes are needed; checks every header, so that [`parse`] and
    /// the in-place readers cannot fail on a complete reply.
    fn advance(&mut self, buf: &[u8]) -> Result<Option<usize>, String> {
        loop {
            while self.open.last() == Some(&0) {
                self.open.pop();
            }
            if self.started && self.open.is_empty() {
                return Ok(Some(self.pos));
            }
            let Some(&kind) = buf.get(self.pos) else {
                return Ok(None);
            };
            let (head, next) = match kind {
                b'-' if !self.open.is_empty() => {
                    return Err("RESP: error inside a reply".to_owned())
                }
                b'+' | b'-' => match line(buf, self.pos + 1) {
                    Some((_, next)) => (0, next),
                    None => return Ok(None),
                },
                b':' | b'$' | b'*' => match number(buf, self.pos + 1)? {
                    Some(header) => header,
                    None => return Ok(None),
                },
                other => return Err(format!("RESP: unexpected type byte {other:#04x}")),
            };
            let mut array = 0;
            let end = match kind {
                b'$' => {
                    let n = head;
                    if n < 0 {
                        next
                    } else {
                        let end = next + n as usize + 2;
                        if buf.len() < end {
                            return Ok(None);
                        }
                        if &buf[end - 2..end] != b"\r\n" {
                            return Err("RESP: bulk string without CRLF".to_owned());
                        }
                        end
                    }
                }
                b'*' => {
                    array = head;
                    next
                }
                _ => next,
            };
            self.pos = end;
            self.started = true;
            if let Some(left) = self.open.last_mut() {
                *left -= 1;
            }
            if array > 0 {
                if self.open.len() >= MAX_DEPTH {
                    return Err("RESP: reply nested too deep".to_owned());
                }
                self.open.push(array);
            }
        }
    }
}

/// [`Scan::advance`] from scratch.
#[cfg(test)]
fn complete(buf: &[u8]) -> Result<Option<usize>, String> {
    Scan::default().advance(buf)
}

/// The reply at `*pos`, which [`complete`] checked.
fn parse(buf: &[u8], pos: &mut usize) -> Value {
    let kind = buf[*pos];
    let (head, next) = line(buf, *pos + 1).unwrap_or((&[], buf.len()));
    *pos = next;
    let n = || integer(head).unwrap_or(-1);
    match kind {
        b'+' if head == b"OK" => Value::Okay,
        b'+' => Value::SimpleString(String::from_utf8_lossy(head).into_owned()),
        b':' => Value::Int(n()),
        b'$' => {
            let len = n();
            if len < 0 {
                return Value::Nil;
            }
            let len = len as usize;
            let v = buf[next..next + len].to_vec();
            *pos = next + len + 2;
            Value::BulkString(v)
        }
        _ => {
            let len = n();
            if len < 0 {
                return Value::Nil;
            }
            let mut items = Vec::with_capacity(len as usize);
            for _ in 0..len {
                items.push(parse(buf, pos));
            }
            Value::Array(items)
        }
    }
}

/// A reply walked in place: every header was checked by [`complete`].
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    command: &'static str,
    /// Whether the reply ended before the walk did: more bytes may make it
    /// whole, where any other error stays one.
    short: bool,
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8], command: &'static str) -> Self {
        Cursor {
            buf,
            pos: 0,
            command,
            short: false,
        }
    }
}

impl<'a> Cursor<'a> {
    #[inline]
    fn header(&mut self, kind: u8, what: &'static str) -> Result<i64, TransportError> {
        match self.buf.get(self.pos) {
            Some(&k) if k == kind => {}
            Some(_) => return Err(self.expected(what)),
            None => return Err(self.cut_short()),
        }
        match number(self.buf, self.pos + 1) {
            Ok(Some((n, next))) => {
                self.pos = next;
                Ok(n)
            }
            Ok(None) => Err(self.cut_short()),
            Err(reason) => Err(protocol(self.command, reason)),
        }
    }

    /// An array's length; `None` for a nil array.
    #[inline]
    fn array(&mut self, what: &'static str) -> Result<Option<usize>, TransportError> {
        let n = self.header(b'*', what)?;
        Ok(usize::try_from(n).ok())
    }

    #[inline]
    fn bulk(&mut self, what: &'static str) -> Result<&'a [u8], TransportError> {
        let n = self.header(b'$', what)?;
        let Ok(n) = usize::try_from(n) else {
            return Err(self.nil(what));
        };
        let end = self.pos + n;
        match self.buf.get(end..end + 2) {
            Some(b"\r\n") => {}
            Some(_) => return Err(protocol(self.command, "bulk string without CRLF")),
            None => return Err(self.cut_short()),
        }
        let s = &self.buf[self.pos..end];
        self.pos = end + 2;
        Ok(s)
    }

    #[cold]
    #[inline(never)]
    fn expected(&self, what: &str) -> TransportError {
        protocol(self.command, format!("expected {what}"))
    }

    #[cold]
    #[inline(never)]
    fn nil(&self, what: &str) -> TransportError {
        protocol(self.command, format!("nil {what}"))
    }

    #[cold]
    #[inline(never)]
    fn cut_short(&mut self) -> TransportError {
        self.short = true;
        protocol(self.command, "reply cut short")
    }
}

/// `XREADGROUP` reply (RESP2): nil on timeout, else
/// `[[key, [[id, [field, value, …]], …]], …]`, read without building a
/// [`Value`]: field names are compared where they lie, and only the
/// attributes the envelope keeps are copied out.
fn read_group_reply(frame: &[u8]) -> Result<Vec<Entry>, TransportError> {
    Ok(read_streams(frame)?
        .into_iter()
        .flat_map(|(_, e, _)| e)
        .collect())
}

/// Each stream of the whole `XREADGROUP` reply `frame`, as [`Reading`]
/// reads it.
fn read_streams(frame: &[u8]) -> Result<Vec<StreamRead>, TransportError> {
    let mut reading = Reading::default();
    match reading.advance(frame)? {
        Some(_) => Ok(reading.read),
        None => Err(protocol("XREADGROUP", "reply cut short")),
    }
}

/// [`read_group_reply`] of the reply at the start of `buf`, with its
/// length; `None` if `buf` ends before the reply does.
#[cfg(test)]
fn read_group_prefix(buf: &[u8]) -> Result<Option<(Vec<Entry>, usize)>, TransportError> {
    let mut reading = Reading::default();
    Ok(reading
        .advance(buf)?
        .map(|len| (reading.into_entries(), len)))
}

/// An `XREADGROUP` reply read as it arrives: each call to
/// [`Reading::advance`] reads on from where the last one stopped, taking
/// every entry whose bytes are all in. The bytes read stay in the buffer
/// until the reply is whole; only the entry (or the head of a stream) cut
/// short is walked again.
#[derive(Default)]
struct Reading {
    /// Where the next item to read starts.
    pos: usize,
    /// Whether the reply's array of streams has been read.
    started: bool,
    /// Streams of the reply still to read.
    streams: usize,
    /// The key of the stream being read, once its head is read.
    key: Option<String>,
    /// Entries of that stream still to read.
    left: usize,
    /// Its entries read so far.
    entries: Vec<Entry>,
    /// Its ids of entries deleted while pending (none in a read of `>`).
    deleted: Vec<String>,
    /// The streams read to their end.
    read: Vec<StreamRead>,
}

impl Reading {
    /// The length of the reply at the start of `buf` once it is whole,
    /// `None` while more bytes are needed; an error for a reply that no
    /// more bytes can make one of `XREADGROUP`.
    fn advance(&mut self, buf: &[u8]) -> Result<Option<usize>, TransportError> {
        let mut c = Cursor::new(buf, "XREADGROUP");
        c.pos = self.pos;
        let mut fields: Vec<(&[u8], &[u8])> = Vec::with_capacity(16);
        loop {
            let step = if !self.started {
                c.array("an array of streams").map(|n| {
                    self.started = true;
                    self.streams = n.unwrap_or(0);
                })
            } else if self.left > 0 {
                walk_entry(&mut c, &mut self.entries, &mut self.deleted, &mut fields)
                    .map(|()| self.left -= 1)
            } else {
                if let Some(key) = self.key.take() {
                    let entries = std::mem::take(&mut self.entries);
                    let deleted = std::mem::take(&mut self.deleted);
                    self.read.push((key, entries, deleted));
                }
                if self.streams == 0 {
                    return Ok(Some(self.pos));
                }
                stream_head(&mut c).map(|(key, n)| {
                    self.streams -= 1;
                    self.key = Some(key);
                    self.left = n;
                    // The count comes from the server: an entry takes 20
                    // bytes at least.
                    self.entries.reserve(n.min((buf.len() - c.pos) / 20));
                })
            };
            match step {
                Ok(()) => self.pos = c.pos,
                Err(_) if c.short => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// The entries of every stream read, in order.
    fn into_entries(self) -> Vec<Entry> {
        let mut streams = self.read.into_iter();
        let mut entries = streams.next().map(|(_, e, _)| e).unwrap_or_default();
        for (_, more, _) in streams {
            entries.extend(more);
        }
        entries
    }
}

/// The head of one stream of an `XREADGROUP` reply, `[key, entries]` up to
/// the count of its entries: the key and that count.
fn stream_head(c: &mut Cursor<'_>) -> Result<(String, usize), TransportError> {
    if c.array("[key, entries]")? != Some(2) {
        return Err(protocol("XREADGROUP", "stream is not [key, entries]"));
    }
    let key = std::str::from_utf8(c.bulk("stream key")?)
        .map_err(|_| protocol("XREADGROUP", "stream key is not UTF-8"))?
        .to_owned();
    Ok((key, c.array("an array of entries")?.unwrap_or(0)))
}

/// The entries an `XREADGROUP` reply gave one stream: its key, its
/// entries, and for a read of the consumer's own pending entries (an id
/// instead of `>`), the ids of those deleted from the stream meanwhile
/// (nil fields).
pub(super) type StreamRead = (String, Vec<Entry>, Vec<String>);

/// The reply of one command of a [`RespConnection::pipeline`]: for an
/// `XREADGROUP` over several streams, each stream the reply names; for
/// any other command, nothing.
pub(super) type Piped = Result<Option<Vec<StreamRead>>, TransportError>;

/// One entry, `[id, fields]`, added to `out` (or its id to `deleted`, for
/// nil fields, in a read of the consumer's own pending entries: those
/// deleted from the stream meanwhile); `fields` is room for the entry's
/// fields, kept between entries.
fn walk_entry<'a>(
    c: &mut Cursor<'a>,
    out: &mut Vec<Entry>,
    deleted: &mut Vec<String>,
    fields: &mut Vec<(&'a [u8], &'a [u8])>,
) -> Result<(), TransportError> {
    if c.array("[id, fields]")? != Some(2) {
        return Err(protocol("XREADGROUP", "entry is not [id, fields]"));
    }
    let id = c.bulk("entry id")?;
    // `>` only returns entries that exist; a read of the pending list
    // names those deleted since with nil fields.
    let Some(k) = c.array("an array of fields")? else {
        deleted.push(entry_id(id)?);
        return Ok(());
    };
    fields.clear();
    for _ in 0..k / 2 {
        let name = c.bulk("field name")?;
        let value = c.bulk("field value")?;
        fields.push((name, value));
    }
    if k % 2 == 1 {
        c.bulk("field name")?;
    }
    // Only a whole entry is built: one cut short is read again, whole.
    let id = entry_id(id)?;
    let envelope = Envelope::from_fields(&id, fields.iter().copied());
    out.push(Entry::new(id, envelope.map(Arc::new)));
    Ok(())
}

fn entry_id(id: &[u8]) -> Result<String, TransportError> {
    std::str::from_utf8(id)
        .map(str::to_owned)
        .map_err(|_| protocol("XREADGROUP", "entry id is not UTF-8"))
}

/// The `XREADGROUP` reply over several streams at the start of `buf`,
/// read from `stream` as far as needed, each entry as soon as its bytes
/// are in (as [`entries`] reads one). The outer error leaves the
/// connection out of step; the inner one (a server error such as
/// `NOGROUP`, an unreadable reply) is the command's, and the connection
/// stays in step.
async fn streams_reply(
    stream: &mut Socket,
    buf: &mut Vec<u8>,
) -> Result<Result<Vec<StreamRead>, TransportError>, TransportError> {
    let mut reading = Reading::default();
    loop {
        match buf.first() {
            None => fill(stream, buf).await?,
            Some(b'*') => match reading.advance(buf) {
                Ok(Some(len)) => {
                    consume(buf, len);
                    return Ok(Ok(reading.read));
                }
                Ok(None) => fill(stream, buf).await?,
                Err(_) => break,
            },
            Some(_) => break,
        }
    }
    // A server error, or not a reply of that shape: followed to its end,
    // so that the connection stays in step.
    let len = whole_item(stream, buf, 0, "XREADGROUP").await?;
    let result = match buf[0] {
        b'-' => Err(server_error(&buf[..len], "XREADGROUP").unwrap_or_else(|e| e)),
        _ => read_streams(&buf[..len]),
    };
    consume(buf, len);
    Ok(result)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn whole(bytes: &[u8]) -> Value {
        assert_eq!(complete(bytes).unwrap(), Some(bytes.len()));
        let mut pos = 0;
        let v = parse(bytes, &mut pos);
        assert_eq!(pos, bytes.len());
        v
    }

    #[test]
    fn parses_the_same_values_as_redis_rs() {
        let reply = b"*1\r\n*2\r\n$3\r\nkey\r\n*2\r\n*2\r\n$3\r\n1-0\r\n*4\r\n$4\r\ntype\r\n$1\r\nx\r\n$4\r\ndata\r\n$0\r\n\r\n*2\r\n$3\r\n2-0\r\n*-1\r\n";
        assert_eq!(whole(reply), redis::parse_redis_value(reply).unwrap());
        for r in [
            &b"*-1\r\n"[..],
            b"$-1\r\n",
            b":42\r\n",
            b"+OK\r\n",
            b"*0\r\n",
        ] {
            assert_eq!(whole(r), redis::parse_redis_value(r).unwrap());
        }
    }

    fn bulk(s: &[u8]) -> Vec<u8> {
        let mut out = format!("${}\r\n", s.len()).into_bytes();
        out.extend_from_slice(s);
        out.extend_from_slice(b"\r\n");
        out
    }

    #[test]
    fn entries_read_in_place_equal_those_read_through_redis_rs() {
        let fields: [(&str, &str); 9] = [
            ("specversion", "1.0"),
            ("id", "01JDGZ5V8N3M2X4Y6Z7A8B9C0D"),
            ("source", "tests"),
            ("type", "file.uploaded"),
            ("time", "2026-11-24T10:00:00.123Z"),
            ("datacontenttype", "application/json"),
            ("dataschema", "schemas/file.uploaded/v3.json"),
            ("dataversion", "3"),
            ("data", "{\"path\":\"/a\"}"),
        ];
        let mut reply = b"*1\r\n*2\r\n".to_vec();
        reply.extend(bulk(b"ns:{files}"));
        reply.extend_from_slice(b"*3\r\n");
        for id in ["1-0", "2-0"] {
            reply.extend_from_slice(b"*2\r\n");
            reply.extend(bulk(id.as_bytes()));
            reply.extend_from_slice(b"*18\r\n");
            for (k, v) in fields {
                reply.extend(bulk(k.as_bytes()));
                reply.extend(bulk(v.as_bytes()));
            }
        }
        // An entry that is not an envelope stays an entry, with its error.
        reply.extend_from_slice(b"*2\r\n");
        reply.extend(bulk(b"3-0"));
        reply.extend_from_slice(b"*2\r\n");
        reply.extend(bulk(b"type"));
        reply.extend(bulk(b"x"));
        assert_eq!(complete(&reply).unwrap(), Some(reply.len()));

        let here = read_group_reply(&reply).unwrap();
        let there =
            crate::streams::reply::read_group(redis::parse_redis_value(&reply).unwrap()).unwrap();
        assert_eq!(here.len(), 3);
        assert_eq!(here.len(), there.len());
        for (a, b) in here.iter().zip(&there) {
            assert_eq!(a.id, b.id);
            assert_eq!(a.deliveries, b.deliveries);
            match (&a.envelope, &b.envelope) {
                (Ok(x), Ok(y)) => assert_eq!(x, y),
                (Err(x), Err(y)) => assert_eq!(x.to_string(), y.to_string()),
                _ => panic!("entry {}: {:?} against {:?}", a.id, a.envelope, b.envelope),
            }
        }
        assert!(here[0].envelope.is_ok());
        assert!(here[2].envelope.is_err());
        assert!(read_group_reply(b"*-1\r\n").unwrap().is_empty());
    }

    /// Makes group `g` of `key` (and the stream), from its start.
    pub(in crate::streams) async fn create_group(
        conn: &mut impl redis::aio::ConnectionLike,
        key: &str,
    ) {
        let _: Value = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(key)
            .arg("g")
            .arg("0")
            .arg("MKSTREAM")
            .query_async(conn)
            .await
            .unwrap();
    }

    pub(in crate::streams) fn outgoing<'a>(
        data: &'a [u8],
        correlation_id: Option<&'a str>,
        extensions: &'a [(String, String)],
    ) -> Outgoing<'a> {
        Outgoing {
            id: "01JDGZ5V8N3M2X4Y6Z7A8B9C0D",
            source: "tests",
            type_name: "file.uploaded",
            time: "2026-11-24T10:00:00.123Z",
            dataschema: "schemas/file.uploaded/v3.json",
            dataversion: 3,
            correlation_id,
            causation_id: None,
            tenant_id: Some("acme"),
            traceparent: None,
            tracestate: Some("vendor=a"),
            subject: Some("a subject with \r\n inside"),
            reply_to: Some("tidings:{reply:01JD}"),
            partition_key: Some("file-7"),
            extensions,
            data,
        }
    }

    #[test]
    fn xadd_is_encoded_byte_for_byte_as_redis_rs_packs_it() {
        let data = "{\"path\":\"/a/\u{e9}\"}".as_bytes();
        let extensions = [
            ("region".to_owned(), "eu-west-1".to_owned()),
            ("tier".to_owned(), String::new()),
        ];
        for o in [
            outgoing(data, None, &[]),
            outgoing(b"", Some("corr-1"), &[]),
            outgoing(data, Some("corr-2"), &extensions),
        ] {
            let mut ours = Vec::new();
            encode_xadd(&mut ours, "tidings:{files}", &o);
            assert_eq!(
                ours,
                super::super::xadd("tidings:{files}", &o).get_packed_command()
            );
        }
    }

    #[test]
    fn xadd_replies_are_ids_or_the_servers_errors_in_place() {
        assert_eq!(
            xadd_reply(b"$15\r\n1732442400000-7\r\n").unwrap().unwrap(),
            "1732442400000-7"
        );
        let wrong = xadd_reply(b"-WRONGTYPE Operation against a key\r\n")
            .unwrap()
            .unwrap_err();
        assert!(matches!(&wrong, TransportError::Redis(e) if e.code() == Some("WRONGTYPE")));
        let loading = xadd_reply(b"-LOADING Redis is loading\r\n")
            .unwrap()
            .unwrap_err();
        assert!(loading.is_transient(), "{loading}");
        assert!(xadd_reply(b":1\r\n").is_err());
        assert!(xadd_reply(b"$-1\r\n").is_err());
        assert!(xadd_reply(b"$2\r\n\xff\xfe\r\n").is_err());
    }

    /// An `XREADGROUP` reply over the stream `key` alone: each entry's id
    /// and its one field, or nil fields (deleted while pending).
    fn stream_bytes(key: &str, entries: &[(&str, Option<(&str, &str)>)]) -> Vec<u8> {
        let mut reply = b"*1\r\n*2\r\n".to_vec();
        reply.extend(bulk(key.as_bytes()));
        reply.extend(format!("*{}\r\n", entries.len()).into_bytes());
        for (id, field) in entries {
            reply.extend_from_slice(b"*2\r\n");
            reply.extend(bulk(id.as_bytes()));
            match field {
                Some((k, v)) => {
                    reply.extend_from_slice(b"*2\r\n");
                    reply.extend(bulk(k.as_bytes()));
                    reply.extend(bulk(v.as_bytes()));
                }
                None => reply.extend_from_slice(b"*-1\r\n"),
            }
        }
        reply
    }

    /// An `XREADGROUP` reply over the streams `keys`, two entries each.
    fn streams_bytes(keys: &[&str]) -> Vec<u8> {
        let mut reply = format!("*{}\r\n", keys.len()).into_bytes();
        for key in keys {
            reply.extend_from_slice(b"*2\r\n");
            reply.extend(bulk(key.as_bytes()));
            reply.extend_from_slice(b"*2\r\n");
            for id in ["1-0", "2-0"] {
                reply.extend_from_slice(b"*2\r\n");
                reply.extend(bulk(id.as_bytes()));
                reply.extend_from_slice(b"*4\r\n");
                for (k, v) in [("type", "file.uploaded"), ("data", "{}")] {
                    reply.extend(bulk(k.as_bytes()));
                    reply.extend(bulk(v.as_bytes()));
                }
            }
        }
        reply
    }

    #[test]
    fn streams_read_in_place_equal_those_read_through_redis_rs() {
        let reply = streams_bytes(&["ns:{a:s}", "ns:{b:s}"]);
        let here = read_streams(&reply).unwrap();
        let there =
            crate::streams::reply::read_streams(redis::parse_redis_value(&reply).unwrap()).unwrap();
        assert_eq!(here.len(), 2);
        for ((k1, e1, d1), (k2, e2)) in here.iter().zip(&there) {
            assert!(d1.is_empty());
            assert_eq!(k1, k2);
            let ids = |e: &[Entry]| e.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
            assert_eq!(ids(e1), ids(e2));
            assert_eq!(ids(e1), ["1-0", "2-0"]);
        }
        assert!(read_streams(b"*-1\r\n").unwrap().is_empty());
        // A read of the pending list names an entry deleted since with nil
        // fields: its id is told apart, not taken for a bad entry.
        let reply = stream_bytes("k", &[("1-0", None), ("2-0", Some(("type", "t")))]);
        let here = read_streams(&reply).unwrap();
        let (key, entries, deleted) = &here[0];
        assert_eq!(
            (key.as_str(), deleted.as_slice()),
            ("k", &["1-0".to_owned()][..])
        );
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].id, "2-0");
        let there =
            crate::streams::reply::read_streams_history(redis::parse_redis_value(&reply).unwrap())
                .unwrap();
        assert_eq!(there[0].2, ["1-0"]);
    }

    #[tokio::test]
    async fn a_pipeline_answers_each_command_and_a_servers_error_only_its_own() {
        let mut replies = streams_bytes(&["k1"]);
        replies.extend_from_slice(b"-NOGROUP No such key 'k2' or consumer group 'g'\r\n");
        replies.extend_from_slice(b":2\r\n");
        replies.extend(streams_bytes(&["k3", "k4"]));
        let (port, server) = one_reply_server(Box::leak(replies.into_boxed_slice())).await;
        let mut conn = connection(port);
        let cmds = vec![
            (b"*1\r\n$4\r\nPING\r\n".to_vec(), true),
            (b"*1\r\n$4\r\nPING\r\n".to_vec(), true),
            (b"*1\r\n$4\r\nPING\r\n".to_vec(), false),
            (b"*1\r\n$4\r\nPING\r\n".to_vec(), true),
        ];
        let mut got = Vec::new();
        conn.pipeline(&cmds, std::time::Duration::from_secs(5), |i, r| {
            got.push((i, r))
        })
        .await
        .unwrap();
        assert_eq!(got.len(), 4);
        let keys = |r: &Piped| {
            r.as_ref()
                .unwrap()
                .as_ref()
                .unwrap()
                .iter()
                .map(|(k, ..)| k.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(&got[0].1), ["k1"]);
        let e = got[1].1.as_ref().unwrap_err();
        assert!(e.is_no_group(), "{e}");
        assert!(matches!(got[2].1, Ok(None)));
        assert_eq!(keys(&got[3].1), ["k3", "k4"]);
        // In step after the error: the connection is kept.
        assert!(conn.conn.is_some());
        drop(conn);
        assert_eq!(server.await.unwrap().len(), 4 * 14);
    }

    #[tokio::test]
    async fn a_pipeline_cut_short_answers_what_came_and_drops_the_connection() {
        let mut replies = streams_bytes(&["k1"]);
        replies.extend_from_slice(&streams_bytes(&["k2"])[..20]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // Answers the first command whole and the second in part, then
        // closes the connection.
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let _ = socket.read(&mut vec![0; 1 << 16]).await.unwrap();
            socket.write_all(&replies).await.unwrap();
        });
        let mut conn = connection(port);
        let ping = b"*1\r\n$4\r\nPING\r\n".to_vec();
        let cmds = vec![(ping.clone(), true), (ping.clone(), true), (ping, true)];
        let mut got = Vec::new();
        let (at, e) = conn
            .pipeline(&cmds, std::time::Duration::from_secs(5), |i, r| {
                got.push((i, r.is_ok()))
            })
            .await
            .unwrap_err();
        assert_eq!(got, [(0, true)]);
        assert_eq!(at, 1, "{e}");
        assert!(conn.conn.is_none());
        server.await.unwrap();
    }

    async fn one_reply_server(reply: &'static [u8]) -> (u16, tokio::task::JoinHandle<Vec<u8>>) {
        reply_server(vec![reply]).await
    }

    /// A server that reads one request and answers it in `pieces`, each
    /// written and flushed on its own, 20 ms apart, so that the client
    /// reads them apart.
    async fn reply_server(pieces: Vec<&'static [u8]>) -> (u16, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            socket.set_nodelay(true).unwrap();
            let mut got = vec![0; 1 << 16];
            let n = socket.read(&mut got).await.unwrap();
            got.truncate(n);
            for (i, piece) in pieces.iter().enumerate() {
                if i > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                socket.write_all(piece).await.unwrap();
                socket.flush().await.unwrap();
            }
            // Hold the socket until the client is done with it.
            let _ = socket.read(&mut [0; 16]).await;
            got
        });
        (port, server)
    }

    fn connection(port: u16) -> RespConnection {
        RespConnection {
            host: "127.0.0.1".to_owned(),
            port,
            username: None,
            password: None,
            db: 0,
            conn: None,
            out: Vec::new(),
            payload: Vec::new(),
            ahead: false,
            size: ReplySize::SMALL,
            follow: None,
            tls: None,
            slot: None,
        }
    }

    #[tokio::test]
    async fn rediss_takes_this_path_over_tls_unless_insecure() {
        use tidings_testkit::{RedisOptions, RedisServer, TestCa};
        let ca = TestCa::generate();
        let server = RedisServer::with_options(RedisOptions::default().tls(&ca));
        let endpoint = Endpoint::parse(&server.url(), &Default::default()).unwrap();
        let client = endpoint.client().await.unwrap();
        let mut conn = RespConnection::for_info(client.get_connection_info(), &endpoint)
            .expect("a rediss:// URL with its CA takes the hand-written path");
        let o = outgoing(b"{}", None, &[]);
        let ids = conn.append(&[("k", o), ("k", o)]).await.unwrap();
        assert_eq!(ids.len(), 2);
        assert!(matches!(conn.conn, Some((Socket::Tls(_), _))));
        let request = ReadRequest::new("k", "g", "c", 10, std::time::Duration::from_millis(10));
        let mut admin = server.connection().await;
        create_group(&mut admin, "k").await;
        let read = conn.read_group(&request).await.unwrap();
        assert_eq!(read.len(), 2);

        let insecure = format!("{}&insecure", server.url());
        let endpoint = Endpoint::parse(&insecure, &Default::default()).unwrap();
        let client = endpoint.client().await.unwrap();
        assert!(RespConnection::for_info(client.get_connection_info(), &endpoint).is_none());
    }

    /// Behind Sentinels over TLS, the hand-written path speaks TLS to the
    /// master they name, and finds the new one after a failover.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rediss_sentinel_takes_this_path_over_tls_and_follows_a_failover() {
        use tidings_testkit::{SentinelSet, TestCa};
        let ca = TestCa::generate();
        let mut set = SentinelSet::start_secured(&ca, "watch-pw");
        let endpoint = Endpoint::parse(&set.url(), &Default::default()).unwrap();
        let client = endpoint.client().await.unwrap();
        let mut conn = RespConnection::for_info(client.get_connection_info(), &endpoint).expect(
            "a rediss+sentinel:// URL that checks certificates takes the hand-written path",
        );
        let o = outgoing(b"{}", None, &[]);
        assert_eq!(conn.append(&[("k", o)]).await.unwrap().len(), 1);
        assert!(matches!(conn.conn, Some((Socket::Tls(_), _))));
        assert_eq!(conn.port, set.first_master().port());

        set.kill_master();
        let new =
            tokio::task::block_in_place(|| set.wait_failover(std::time::Duration::from_secs(20)))
                .unwrap();
        // The dead connection fails once; the next one goes to the master
        // named now, over TLS.
        let _ = conn.append(&[("k", o)]).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match conn.append(&[("k", o)]).await {
                Ok(ids) if ids.len() == 1 => break,
                other => assert!(
                    std::time::Instant::now() < deadline,
                    "no append after the failover: {other:?}"
                ),
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(conn.port, new);
        assert!(matches!(conn.conn, Some((Socket::Tls(_), _))));
    }

    /// On a cluster, the reading connection goes to the master of its
    /// key's slot, and after the slot moves, to its new master.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_a_cluster_a_read_goes_to_the_slots_master_and_follows_a_move() {
        use super::super::shared::SharedConnection;
        use std::time::Duration;
        use tidings_testkit::ClusterSet;
        let cluster = ClusterSet::start();
        let endpoint = Endpoint::parse(&cluster.url(), &Default::default()).unwrap();
        let conn = super::super::cluster_connection(&endpoint, None, Duration::from_secs(5))
            .await
            .unwrap();
        let mut shared = SharedConnection::cluster(endpoint.clone(), conn);
        let client = endpoint.first_client().await.unwrap();
        let mut reader =
            RespConnection::for_cluster(client.get_connection_info(), &endpoint, shared.clone())
                .expect("a plain cluster URL takes the hand-written reading path");
        let key = "t:{moving}";
        let add = |shared: &mut SharedConnection| {
            let mut shared = shared.clone();
            async move {
                let _: String = redis::cmd("XADD")
                    .arg(key)
                    .arg("*")
                    .arg("f")
                    .arg("v")
                    .query_async(&mut shared)
                    .await
                    .unwrap();
            }
        };
        create_group(&mut shared, key).await;
        add(&mut shared).await;
        add(&mut shared).await;
        let request = ReadRequest::new(key, "g", "c", 10, Duration::from_millis(10));
        assert_eq!(reader.read_group(&request).await.unwrap().len(), 2);
        let from = cluster.master_of(key).unwrap();
        assert_eq!(reader.port, from);

        let to = cluster
            .masters()
            .unwrap()
            .into_iter()
            .find(|m| *m != from)
            .unwrap();
        tokio::task::block_in_place(|| cluster.move_slot_of(key, to)).unwrap();
        add(&mut shared).await;
        let moved = reader.read_group(&request).await;
        assert!(
            matches!(&moved, Err(e) if e.is_cluster_redirect()),
            "{moved:?}"
        );
        // The next connection goes where `MOVED` said, without asking.
        assert_eq!(
            reader.slot.as_ref().unwrap().moved_to,
            Some(("127.0.0.1".to_owned(), to))
        );
        let got = reader.read_group(&request).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(reader.port, to);
    }

    /// Large entries are read a few at a time, each read going ahead of
    /// the next: the first read of a stream asks for the count and does
    /// not go ahead; the next ones ask for as many as make about
    /// [`AHEAD_REPLY`], and go ahead.
    #[tokio::test]
    async fn large_entries_are_read_a_few_at_a_time_each_read_ahead_of_the_next() {
        use std::time::Duration;
        use tidings_testkit::RedisServer;
        let server = RedisServer::start();
        let endpoint = Endpoint::parse(&server.url(), &Default::default()).unwrap();
        let client = endpoint.client().await.unwrap();
        let mut admin = client.get_multiplexed_async_connection().await.unwrap();
        let mut conn = RespConnection::for_info(client.get_connection_info(), &endpoint).unwrap();
        let large = vec![b'x'; 64 * 1024];
        let small = vec![b'x'; 200];
        for (key, data) in [("large", &large), ("small", &small)] {
            create_group(&mut admin, key).await;
            let o = outgoing(data, None, &[]);
            let batch: Vec<_> = (0..60).map(|_| (key, o)).collect();
            conn.append(&batch).await.unwrap();
        }
        let gate = |_got: usize, asked: usize| asked;
        let request =
            |key| ReadRequest::new(key, "g", "c", 20, Duration::from_millis(10)).read_ahead(&gate);

        let mut read = Vec::new();
        read.push(conn.read_group(&request("large")).await.unwrap().len());
        assert!(!conn.ahead, "the first read does not go ahead");
        let cap = conn.size.cap;
        // 64 KiB of data and the envelope's fields an entry.
        assert!(
            (4..=AHEAD_REPLY / (64 * 1024)).contains(&cap),
            "{:?}",
            conn.size
        );
        read.push(conn.read_group(&request("large")).await.unwrap().len());
        assert!(conn.ahead, "the next read went ahead");
        read.push(conn.read_group(&request("large")).await.unwrap().len());
        assert_eq!(read, [20, cap, cap]);
        assert_eq!(conn.read_ahead_rest().await.unwrap().len(), cap);

        // Small entries: as many as asked, each read ahead of the next.
        // A first read of all 60 (4 MB) leaves no buffer of that size.
        let _: Value = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg("large")
            .arg("all")
            .arg("0")
            .query_async(&mut admin)
            .await
            .unwrap();
        let mut conn = RespConnection::for_info(client.get_connection_info(), &endpoint).unwrap();
        let all = ReadRequest::new("large", "all", "c", 100, Duration::from_millis(10));
        assert_eq!(conn.read_group(&all).await.unwrap().len(), 60);
        let (_, buf) = conn.conn.as_ref().expect("the connection is kept");
        assert!(
            buf.capacity() <= KEEP_BUFFER,
            "{} bytes kept",
            buf.capacity()
        );

        let mut conn = RespConnection::for_info(client.get_connection_info(), &endpoint).unwrap();
        let mut read = Vec::new();
        for _ in 0..3 {
            read.push(conn.read_group(&request("small")).await.unwrap().len());
        }
        assert_eq!(read, [20, 20, 20]);
        assert!(conn.ahead);
    }

    #[test]
    fn moved_names_the_new_master_unless_it_has_no_host() {
        assert_eq!(
            moved_address("MOVED 3999 127.0.0.1:6381"),
            Some(("127.0.0.1".to_owned(), 6381))
        );
        assert_eq!(
            moved_address("MOVED 3999 redis-2.internal:7000"),
            Some(("redis-2.internal".to_owned(), 7000))
        );
        assert_eq!(moved_address("MOVED 3999 :6381"), None);
        assert_eq!(moved_address("MOVED 3999 ?:6381"), None);
        assert_eq!(moved_address("ASK 3999 127.0.0.1:6381"), None);
        assert_eq!(moved_address("MOVED 3999"), None);
    }

    /// On a cluster, a reading connection that cannot be made rests, and
    /// the transport reads through redis-rs meanwhile: nothing waits on an
    /// address that does not answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_a_cluster_reads_go_through_redis_rs_while_the_own_connection_cannot_be_made() {
        use super::super::{StreamsReader, StreamsTransport};
        use crate::transport::StreamTransport;
        use std::time::Duration;
        use tidings_testkit::ClusterSet;
        let cluster = ClusterSet::start();
        let endpoint = Endpoint::parse(&cluster.url(), &Default::default()).unwrap();
        let transport = StreamsTransport::connect(endpoint, None, Duration::from_secs(5))
            .await
            .unwrap();
        let mut reader: StreamsReader = transport.reader().await.unwrap();
        let key = "t:{unreachable}";
        transport
            .create_group(key, "g", &crate::StartFrom::Beginning)
            .await
            .unwrap();
        let o = outgoing(b"{}", None, &[]);
        transport.append(&[(key, o), (key, o)]).await.unwrap();
        // Where the slot's master is said to be, nothing listens.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let fast = reader.fast.as_mut().expect("the own reading connection");
        fast.slot.as_mut().unwrap().key = key.to_owned();
        fast.slot.as_mut().unwrap().moved_to = Some(("127.0.0.1".to_owned(), closed));
        let request = ReadRequest::new(key, "g", "c", 10, Duration::from_millis(10));
        let got = transport.read_group(&mut reader, request).await.unwrap();
        assert_eq!(got.len(), 2, "redis-rs read in its place");
        let fast = reader.fast.as_ref().unwrap();
        assert!(fast.resting());
        assert!(fast.conn.is_none());
        // While it rests, no connection is tried; redis-rs reads.
        transport.append(&[(key, o)]).await.unwrap();
        let got = transport.read_group(&mut reader, request).await.unwrap();
        assert_eq!(got.len(), 1);
        assert!(reader.fast.as_ref().unwrap().conn.is_none());
    }

    /// The hand-written connection of `url` (its own TLS configuration,
    /// not redis-rs's), and what its first command says.
    async fn first_append(url: &str) -> Result<Vec<String>, TransportError> {
        let endpoint = Endpoint::parse(url, &Default::default()).unwrap();
        let client = endpoint.client().await.unwrap();
        let mut conn = RespConnection::for_info(client.get_connection_info(), &endpoint)
            .expect("a rediss:// URL that checks certificates takes the hand-written path");
        assert!(conn.tls.is_some());
        conn.append(&[("k", outgoing(b"{}", None, &[]))]).await
    }

    /// `rediss://<host>:<port>/?tls_ca=<ca>&…` with the client certificate
    /// of `client`.
    fn tls_url(
        host: &str,
        port: u16,
        ca: &std::path::Path,
        client: &tidings_testkit::TestCa,
    ) -> String {
        format!(
            "rediss://{host}:{port}/?tls_ca={}&tls_cert={}&tls_key={}",
            ca.display(),
            client.client_cert().display(),
            client.client_key().display()
        )
    }

    #[tokio::test]
    async fn the_hand_written_path_refuses_a_server_of_another_ca() {
        use tidings_testkit::{RedisOptions, RedisServer, TestCa};
        let ca = TestCa::generate();
        let other = TestCa::generate();
        let server = RedisServer::with_options(RedisOptions::default().tls(&ca));
        let wrong = tls_url("127.0.0.1", server.port(), &other.ca_cert(), &ca);
        let e = first_append(&wrong).await.unwrap_err().to_string();
        assert!(e.contains("UnknownIssuer"), "{e}");
        let right = tls_url("127.0.0.1", server.port(), &ca.ca_cert(), &ca);
        assert_eq!(first_append(&right).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn the_hand_written_path_checks_the_name_it_connects_to() {
        use tidings_testkit::{RedisOptions, RedisServer, TestCa};
        let ca = TestCa::generate_for("DNS:localhost");
        let server = RedisServer::with_options(RedisOptions::default().tls(&ca));
        let by_ip = tls_url("127.0.0.1", server.port(), &ca.ca_cert(), &ca);
        let e = first_append(&by_ip).await.unwrap_err().to_string();
        assert!(
            e.contains(r#"certificate not valid for name "127.0.0.1""#),
            "{e}"
        );
        let by_name = tls_url("localhost", server.port(), &ca.ca_cert(), &ca);
        assert_eq!(first_append(&by_name).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_replica_refusal_drops_the_connection_only_behind_sentinel() {
        const READONLY: &[u8] = b"-READONLY You can't write against a read only replica.\r\n";
        let o = outgoing(b"{}", None, &[]);
        for behind_sentinel in [false, true] {
            let (port, _server) = one_reply_server(READONLY).await;
            let mut conn = connection(port);
            conn.conn = Some(conn.open().await.unwrap());
            if behind_sentinel {
                let endpoint =
                    Endpoint::parse("redis+sentinel://127.0.0.1:1/m", &Default::default()).unwrap();
                conn.follow = Some(endpoint);
            }
            let e = conn.append(&[("k", o)]).await.unwrap_err();
            assert!(e.is_read_only(), "{e}");
            assert!(!e.is_transient(), "{e}");
            assert_eq!(conn.conn.is_none(), behind_sentinel, "{e}");
        }
    }

    #[tokio::test]
    async fn a_replica_refusal_in_a_pipeline_drops_the_connection_behind_sentinel() {
        const READONLY: &[u8] = b":1\r\n-READONLY You can't write against a read only replica.\r\n";
        let ping = b"*1\r\n$4\r\nPING\r\n".to_vec();
        let cmds = vec![(ping.clone(), false), (ping, false)];
        for behind_sentinel in [false, true] {
            let (port, _server) = one_reply_server(READONLY).await;
            let mut conn = connection(port);
            if behind_sentinel {
                conn.conn = Some(conn.open().await.unwrap());
                let endpoint =
                    Endpoint::parse("redis+sentinel://127.0.0.1:1/m", &Default::default()).unwrap();
                conn.follow = Some(endpoint);
            }
            let mut got = Vec::new();
            conn.pipeline(&cmds, std::time::Duration::from_secs(5), |_, r| {
                got.push(r.map(|_| ()))
            })
            .await
            .unwrap();
            assert!(got[0].is_ok());
            let e = got[1].as_ref().unwrap_err();
            assert!(e.is_read_only(), "{e}");
            assert_eq!(conn.conn.is_none(), behind_sentinel, "{e}");
        }
    }

    #[tokio::test]
    async fn a_batch_returns_every_id_and_keeps_the_connection() {
        let (port, server) = one_reply_server(b"$3\r\n1-0\r\n$3\r\n1-1\r\n").await;
        let mut conn = connection(port);
        let o = outgoing(b"{}", None, &[]);
        let ids = conn.append(&[("k", o), ("k", o)]).await.unwrap();
        assert_eq!(ids, ["1-0", "1-1"]);
        assert!(conn.conn.is_some());
        drop(conn);
        let sent = server.await.unwrap();
        let mut expected = Vec::new();
        encode_xadd(&mut expected, "k", &o);
        encode_xadd(&mut expected, "k", &o);
        assert_eq!(sent, expected);
    }

    fn payloads(i: usize, buf: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        serde_json::to_writer(buf, &serde_json::json!({ "i": i }))
    }

    #[tokio::test]
    async fn a_streamed_batch_is_one_transaction_and_returns_every_id() {
        let (port, server) = one_reply_server(
            b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n$3\r\n1-0\r\n-WRONGTYPE not a stream\r\n",
        )
        .await;
        let mut conn = connection(port);
        let o = outgoing(b"", None, &[]);
        let replies = conn
            .append_streamed("k", &[o, o], payloads)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(replies.len(), 2);
        assert_eq!(replies[0].as_ref().unwrap(), "1-0");
        assert!(
            matches!(&replies[1], Err(TransportError::Redis(e)) if e.code() == Some("WRONGTYPE"))
        );
        assert!(conn.conn.is_some(), "every reply was read");
        drop(conn);
        let sent = server.await.unwrap();
        let mut expected = b"*1\r\n$5\r\nMULTI\r\n".to_vec();
        for i in 0..2 {
            let data = format!("{{\"i\":{i}}}");
            encode_xadd(&mut expected, "k", &outgoing(data.as_bytes(), None, &[]));
        }
        expected.extend_from_slice(b"*1\r\n$4\r\nEXEC\r\n");
        assert_eq!(sent, expected);
    }

    /// The error a streamed batch of two events fails with when the
    /// server answers it in `pieces`.
    async fn refusal(pieces: Vec<&'static [u8]>) -> TransportError {
        let (port, _server) = reply_server(pieces).await;
        let mut conn = connection(port);
        let o = outgoing(b"", None, &[]);
        conn.append_streamed("k", &[o, o], payloads)
            .await
            .unwrap_err()
    }

    /// A command refused at queue time fails the batch with its own
    /// error, not `EXECABORT`'s; also when `EXEC`'s error comes in a later
    /// read than the replies before it (as on a cluster node that answered
    /// `MOVED` to every command of a batch), not as a reply of the wrong
    /// shape.
    #[tokio::test]
    async fn a_command_refused_in_a_transaction_fails_the_batch_with_its_error() {
        let err = refusal(vec![
            b"+OK\r\n-OOM command not allowed\r\n+QUEUED\r\n-EXECABORT Transaction discarded\r\n",
        ])
        .await;
        assert!(
            matches!(&err, TransportError::Redis(e) if e.code() == Some("OOM")),
            "{err}"
        );
        let err = refusal(vec![
            b"+OK\r\n-MOVED 3999 127.0.0.1:7001\r\n-MOVED 3999 127.0.0.1:7001\r\n",
            b"-EXECABORT Transaction discarded because of previous errors.\r\n",
        ])
        .await;
        assert!(
            matches!(&err, TransportError::Redis(e) if e.code() == Some("MOVED")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_payload_that_cannot_be_written_drops_the_transaction() {
        let (port, _server) = one_reply_server(b"").await;
        let mut conn = connection(port);
        let o = outgoing(b"", None, &[]);
        let unwritable = conn
            .append_streamed("k", &[o, o, o], |i, buf| {
                if i == 1 {
                    return Err(serde::ser::Error::custom("cannot be written"));
                }
                payloads(i, buf)
            })
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(unwritable.0, 1);
        assert!(
            conn.conn.is_none(),
            "the connection, and the transaction on it, is dropped"
        );
    }

    #[tokio::test]
    async fn a_server_error_in_a_batch_is_returned_and_the_connection_kept() {
        let (port, _server) =
            one_reply_server(b"$3\r\n1-0\r\n-WRONGTYPE not a stream\r\n$3\r\n1-1\r\n").await;
        let mut conn = connection(port);
        let o = outgoing(b"{}", None, &[]);
        let err = conn
            .append(&[("k", o), ("x", o), ("k", o)])
            .await
            .unwrap_err();
        assert!(matches!(&err, TransportError::Redis(e) if e.code() == Some("WRONGTYPE")));
        assert!(
            conn.conn.is_some(),
            "every reply was read: the connection is in step"
        );
    }

    #[tokio::test]
    async fn a_batch_cut_short_drops_the_connection() {
        let (port, server) = one_reply_server(b"$3\r\n1-0\r\n$3\r\n1-").await;
        let mut conn = connection(port);
        let o = outgoing(b"{}", None, &[]);
        let batch = [("k", o), ("k", o)];
        // The server holds the socket open: the second reply never ends.
        let timed_out =
            tokio::time::timeout(std::time::Duration::from_millis(200), conn.append(&batch)).await;
        assert!(timed_out.is_err());
        assert!(
            conn.conn.is_none(),
            "a batch dropped half-way drops its connection"
        );
        server.abort();

        let (port, server) = one_reply_server(b":1\r\n").await;
        let mut conn = connection(port);
        let one = [("k", o)];
        let err = tokio::time::timeout(std::time::Duration::from_secs(5), conn.append(&one))
            .await
            .expect("an integer is a whole reply")
            .unwrap_err();
        assert!(
            matches!(
                err,
                TransportError::Protocol {
                    command: "XADD",
                    ..
                }
            ),
            "{err}"
        );
        assert!(conn.conn.is_none());
        server.abort();
    }

    #[test]
    fn entries_are_counted_from_the_head_of_a_reply() {
        let head = b"*1\r\n*2\r\n$1\r\nk\r\n*3\r\n";
        assert_eq!(reply_head(head), Some(3));
        for cut in 0..head.len() {
            assert_eq!(reply_head(&head[..cut]), None, "cut at {cut}");
        }
        assert_eq!(reply_head(b"*-1\r\n"), Some(0));
        assert_eq!(reply_head(b"*1\r\n*2\r\n$1\r\nk\r\n*0\r\n"), Some(0));
        assert_eq!(reply_head(b"*2\r\n*2\r\n$1\r\nk\r\n*3\r\n"), Some(0));
        assert_eq!(reply_head(b":1\r\n"), Some(0));
        assert_eq!(reply_head(b"-NOGROUP no such group\r\n"), Some(0));
    }

    #[test]
    fn a_reply_read_before_it_is_whole_asks_for_more_at_every_cut() {
        let reply = stream_bytes("k", &[("1-0", Some(("type", "x")))]);
        for cut in 0..reply.len() {
            assert!(
                read_group_prefix(&reply[..cut]).unwrap().is_none(),
                "cut at {cut}"
            );
        }
        let mut more = reply.clone();
        more.extend_from_slice(b"*-1\r\n");
        let (entries, len) = read_group_prefix(&more).unwrap().unwrap();
        assert_eq!((entries.len(), len), (1, reply.len()));
        // A bulk string must end where its length says.
        let mut bad = reply.clone();
        let at = bad.len() - 2;
        bad[at] = b'y';
        assert!(read_group_prefix(&bad).is_err());
        // A count no reply could hold reserves nothing up front.
        let huge = b"*1\r\n*2\r\n$1\r\nk\r\n*999999999999\r\n";
        assert!(read_group_prefix(huge).unwrap().is_none());
    }

    /// Entries (and ids of deleted ones) a reading has taken so far.
    fn taken(reading: &Reading) -> usize {
        let done: usize = reading.read.iter().map(|(_, e, d)| e.len() + d.len()).sum();
        done + reading.entries.len() + reading.deleted.len()
    }

    #[test]
    fn each_entry_is_taken_once_as_soon_as_its_last_byte_is_in() {
        let entries = [
            ("1-0", Some(("type", "x"))),
            ("2-0", None),
            ("3-0", Some(("type", "y"))),
        ];
        let reply = stream_bytes("k", &entries);
        // The count (`*1`, `*2`, `*3`) is one digit whatever the number of
        // entries: a reply of the first n entries ends where the nth does.
        let ends: Vec<usize> = (1..=3)
            .map(|n| stream_bytes("k", &entries[..n]).len())
            .collect();
        let mut reading = Reading::default();
        for cut in 0..reply.len() {
            assert_eq!(
                reading.advance(&reply[..cut]).unwrap(),
                None,
                "cut at {cut}"
            );
            let whole = ends.iter().filter(|&&end| end <= cut).count();
            assert_eq!(taken(&reading), whole, "cut at {cut}");
        }
        assert_eq!(reading.advance(&reply).unwrap(), Some(reply.len()));
        let (key, read, deleted) = &reading.read[0];
        let ids: Vec<&str> = read.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(
            (key.as_str(), ids, deleted.as_slice()),
            ("k", vec!["1-0", "3-0"], &["2-0".to_owned()][..])
        );
        // Read on from the same state, the whole reply gives no more.
        assert_eq!(reading.advance(&reply).unwrap(), Some(reply.len()));
        assert_eq!(taken(&reading), 3);
    }

    #[test]
    fn a_reply_over_several_streams_read_byte_by_byte_is_read_as_whole() {
        let reply = streams_bytes(&["ns:{a:s}", "ns:{b:s}"]);
        let mut reading = Reading::default();
        let mut last = 0;
        for cut in 0..reply.len() {
            assert_eq!(
                reading.advance(&reply[..cut]).unwrap(),
                None,
                "cut at {cut}"
            );
            assert!(taken(&reading) >= last, "cut at {cut}");
            last = taken(&reading);
        }
        assert_eq!(reading.advance(&reply).unwrap(), Some(reply.len()));
        let whole = read_streams(&reply).unwrap();
        let ids = |streams: &[StreamRead]| {
            streams
                .iter()
                .map(|(k, e, _)| {
                    (
                        k.clone(),
                        e.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&reading.read), ids(&whole));
        assert_eq!(ids(&whole).len(), 2);
    }

    #[test]
    fn a_reply_that_is_not_xreadgroup_shaped_is_an_error() {
        assert!(read_group_reply(b":1\r\n").is_err());
        assert!(read_group_reply(b"*1\r\n*1\r\n$1\r\nk\r\n").is_err());
        assert!(read_group_reply(b"*1\r\n*2\r\n$1\r\nk\r\n*1\r\n*2\r\n:1\r\n*0\r\n").is_err());
    }

    #[tokio::test]
    async fn a_server_that_never_answers_fails_the_read_after_the_connect_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let mut conn = RespConnection {
            host: "127.0.0.1".to_owned(),
            port,
            username: None,
            password: Some("secret".to_owned()),
            db: 0,
            conn: None,
            out: Vec::new(),
            payload: Vec::new(),
            ahead: false,
            size: ReplySize::SMALL,
            follow: None,
            tls: None,
            slot: None,
        };
        let started = std::time::Instant::now();
        let request = ReadRequest::new("k", "g", "c", 1, std::time::Duration::ZERO);
        let result = conn.read_group(&request).await;
        let took = started.elapsed();
        silent.abort();
        let err = result.expect_err("a silent server cannot answer");
        assert!(err.is_connection_error(), "{err}");
        assert!(
            took >= CONNECT_TIMEOUT && took < CONNECT_TIMEOUT * 3,
            "{took:?}"
        );
        assert!(conn.conn.is_none());
    }

    #[test]
    fn an_incomplete_reply_asks_for_more_at_every_cut() {
        let reply = b"*2\r\n$5\r\nhello\r\n*1\r\n:7\r\n";
        for cut in 0..reply.len() {
            assert_eq!(complete(&reply[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert_eq!(complete(reply).unwrap(), Some(reply.len()));
        for cut in 0..reply.len() {
            let mut scan = Scan::default();
            assert_eq!(scan.advance(&reply[..cut]).unwrap(), None);
            assert_eq!(
                scan.advance(reply).unwrap(),
                Some(reply.len()),
                "resumed at {cut}"
            );
        }
    }

    #[test]
    fn headers_read_in_one_pass_equal_the_line_read_then_parsed() {
        let heads: &[&[u8]] = &[
            b"0",
            b"7",
            b"-1",
            b"-17",
            b"19",
            b"123456789012345678",
            b"1234567890123456789",
            b"",
            b"-",
            b"+1",
            b"1a",
            b"a1",
            b"1 ",
            b"--1",
            b"1\r",
            b"99999",
        ];
        for head in heads {
            let mut whole = b"$".to_vec();
            whole.extend_from_slice(head);
            whole.extend_from_slice(b"\r\nrest");
            let expected = integer(head).map(|n| (n, head.len() + 3));
            let expected = match line(&whole, 1) {
                Some((h, _)) if h == *head => expected,
                // A CR inside the digits is no header at all.
                _ => Err(String::new()),
            };
            match (number(&whole, 1), expected) {
                (Ok(Some(got)), Ok(want)) => assert_eq!(got, want, "{head:?}"),
                (Err(_), Err(_)) => {}
                (got, want) => panic!("{head:?}: {got:?} against {want:?}"),
            }
            // Every cut short of the CRLF asks for more, or is already wrong.
            for cut in 1..head.len() + 3 {
                match number(&whole[..cut], 1) {
                    Ok(None) | Err(_) => {}
                    Ok(Some(h)) => panic!("{head:?} cut at {cut}: {h:?}"),
                }
            }
        }
    }

    #[test]
    fn malformed_replies_are_errors() {
        assert!(complete(b"!3\r\nabc\r\n").is_err());
        assert!(complete(b"$x\r\n").is_err());
        assert!(complete(b"$3\r\nabcde\r\n").is_err());
        assert!(complete(b"*1\r\n-ERR x\r\n").is_err());
        assert!(complete(b":\r\n").is_err());
        assert!(complete(b":1234567890123456789\r\n").is_err());
        assert!(complete(b"$1a\r\n").is_err());
        assert!(complete(b"$-\r\n").is_err());
        assert!(complete(b":1/\r\n").is_err());
        assert_eq!(integer(b"-17"), Ok(-17));
        assert_eq!(integer(b"123456789012345678"), Ok(123_456_789_012_345_678));
        assert_eq!(integer(b"0"), Ok(0));
        assert_eq!(integer(b"+1"), Err("RESP: bad length \"+1\"".to_owned()));
        let deep = "*1\r\n".repeat(MAX_DEPTH + 1) + ":1\r\n";
        assert!(complete(deep.as_bytes()).is_err());
    }
}
