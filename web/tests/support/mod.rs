//! What the bridge tests share: a server on a free port, the grant hook the
//! tests use, and clients that read Server-Sent Events and WebSocket
//! messages as a browser gets them.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::request::Parts;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tidings::Bus;
use tidings_web::{Bridge, BridgeOptions, Denied, Grant};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// How long a test waits for one event or one answer.
pub const WITHIN: Duration = Duration::from_secs(5);

/// Events of the tests.
pub mod events {
    use tidings::event;

    /// On the `notifications` channel.
    #[event(channel = "notifications", version = 1)]
    pub struct GateOpened {
        /// The gate.
        pub gate: u32,
    }

    /// On the `notifications` channel too.
    #[event(channel = "notifications", version = 1)]
    pub struct DriftDetected {
        /// How far.
        pub drift: u32,
    }

    /// A large event on the `notifications` channel, type `bulk`.
    #[event(channel = "notifications", version = 1, name = "bulk")]
    pub struct Bulk {
        /// Its number.
        pub n: u32,
        /// Its weight.
        pub pad: String,
    }

    /// On the `contextual` stream.
    #[event(stream = "contextual", version = 1)]
    pub struct FileUploaded {
        /// The file.
        pub n: u32,
    }

    /// On the `contextual` stream too.
    #[event(stream = "contextual", version = 1)]
    pub struct FileDeleted {
        /// The file.
        pub n: u32,
    }
}

/// The grant of the tests: `x-tenant: <t>` sees tenant `t`,
/// `x-role: operator` sees every tenant, `x-types: a,b` limits the types,
/// `x-deny` is turned away, and anything else sees the root scope.
pub fn hook(req: &Parts) -> Result<Grant, Denied> {
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    if header("x-deny").is_some() {
        return Err(Denied::unauthorized("who are you?"));
    }
    let grant = match (header("x-role"), header("x-tenant")) {
        (Some("operator"), _) => Grant::any_tenant(),
        (_, Some(t)) => Grant::tenant(t),
        _ => Grant::root(),
    };
    Ok(match header("x-types") {
        Some(types) => grant.types(types.split(',').map(str::to_owned)),
        None => grant,
    })
}

/// A bridge served on a free port of 127.0.0.1, under `/live`.
pub struct Server {
    pub addr: SocketAddr,
    pub bridge: Bridge,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn serve(bus: Bus, options: BridgeOptions) -> Server {
    let bridge = Bridge::with_options(bus, hook, options);
    let app = axum::Router::new().nest("/live", bridge.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Server { addr, bridge, task }
}

/// One Server-Sent Event as a browser's `EventSource` parses it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

impl SseEvent {
    /// The data as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("data is not JSON ({e}): {}", self.data))
    }
}

/// An answer of the server: its status, and the event stream when it is one.
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    body: Incoming,
    buf: String,
    _conn: tokio::task::JoinHandle<()>,
    /// Comment lines seen (keep-alives).
    pub comments: usize,
    /// The `retry:` seen, in milliseconds.
    pub retry: Option<u64>,
}

/// `GET path` with `headers`, on a connection of its own.
pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    let stream = timeout(WITHIN, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .unwrap();
    get_on(stream, addr, path, headers).await
}

/// `GET path` on a connection made by the caller (with a small receive
/// buffer, say).
pub async fn get_on(
    stream: TcpStream,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = hyper::Request::get(path).header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .unwrap();
    let res = timeout(WITHIN, sender.send_request(req))
        .await
        .unwrap_or_else(|_| panic!("no answer to GET {path} within {WITHIN:?}"))
        .unwrap();
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    Answer {
        status,
        content_type,
        body: res.into_body(),
        buf: String::new(),
        _conn: conn,
        comments: 0,
        retry: None,
    }
}

impl Answer {
    /// The next event, or `None` when the response ended; fails the test
    /// when none comes within `within`.
    pub async fn next_within(&mut self, within: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(event) = self.parse_one() {
                return Some(event);
            }
            match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Err(_) => panic!("no event within {within:?}; read so far: {:?}", self.buf),
                Ok(None) => return None,
                Ok(Some(Err(e))) => panic!("the event stream broke: {e}"),
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.push_str(std::str::from_utf8(&data).unwrap());
                    }
                }
            }
        }
    }

    /// Reads until a comment line (a keep-alive) comes; fails the test when
    /// none comes within `within`.
    pub async fn comment_within(&mut self, within: Duration) {
        let before = self.comments;
        let deadline = tokio::time::Instant::now() + within;
        while self.comments == before {
            if self.parse_one().is_some() {
                continue;
            }
            match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Err(_) => panic!("no comment line within {within:?}; read: {:?}", self.buf),
                Ok(None) => panic!("the response ended before a comment line"),
                Ok(Some(frame)) => {
                    if let Ok(data) = frame.unwrap().into_data() {
                        self.buf.push_str(std::str::from_utf8(&data).unwrap());
                    }
                }
            }
        }
    }

    /// The next event within [`WITHIN`].
    pub async fn next(&mut self) -> Option<SseEvent> {
        self.next_within(WITHIN).await
    }

    /// The next event, which must come.
    pub async fn event(&mut self) -> SseEvent {
        self.next().await.expect("an event, not the end")
    }

    /// The whole body, as text (for error answers).
    pub async fn text(mut self) -> String {
        while let Some(frame) = timeout(WITHIN, self.body.frame()).await.unwrap() {
            if let Ok(data) = frame.unwrap().into_data() {
                self.buf.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
        self.buf
    }

    /// Takes one complete event off the buffer, as `EventSource` does:
    /// comment lines and `retry:` are noted, blocks with no data skipped.
    fn parse_one(&mut self) -> Option<SseEvent> {
        loop {
            let end = self.buf.find("\n\n")?;
            let block: String = self.buf.drain(..end + 2).collect();
            let mut event = SseEvent::default();
            let mut data = Vec::new();
            for line in block.lines() {
                if line.starts_with(':') {
                    self.comments += 1;
                } else if let Some(v) = line.strip_prefix("retry: ") {
                    self.retry = v.parse().ok();
                } else if let Some(v) = line.strip_prefix("id: ") {
                    event.id = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("event: ") {
                    event.event = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push(v);
                }
            }
            if !data.is_empty() {
                event.data = data.join("\n");
                return Some(event);
            }
        }
    }
}
