//! The [`Bridge`]: what a request may see, the shared subscriptions, and
//! the Server-Sent Events responses.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use futures::StreamExt;
use tidings_runtime::Bus;

use crate::access::{Authorize, Grant, Hook};
use crate::client::{Client, Next};
use crate::error::WebError;
use crate::frame::{push_data, Frame, Rendered};
use crate::hub::{Hub, Membership, TopicKey};

/// Where the events of a live view come from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// Every type of `channel` whose name matches the glob `pattern`
    /// (`gate.*`), through Redis Pub/Sub: at most once, no resume.
    Pattern {
        /// The channel, as in `#[event(channel = "…")]`.
        channel: String,
        /// A glob over type names (`*`, `gate.*`, `file.[a-z]*`).
        pattern: String,
    },
    /// The entries of a stream, each with its entry id, resumable.
    Stream {
        /// The stream, as in `#[event(stream = "…")]`.
        stream: String,
    },
}

impl Source {
    /// Every type of `channel` matching `pattern`.
    pub fn pattern(channel: impl Into<String>, pattern: impl Into<String>) -> Self {
        Source::Pattern {
            channel: channel.into(),
            pattern: pattern.into(),
        }
    }

    /// The entries of `stream`.
    pub fn stream(stream: impl Into<String>) -> Self {
        Source::Stream {
            stream: stream.into(),
        }
    }
}

/// Tunables of a [`Bridge`].
#[derive(Debug, Clone)]
#[non_exhaustive]
#[must_use]
pub struct BridgeOptions {
    /// Events a client may fall behind by (default 1024): past it, the
    /// client is dropped (see [`Bridge`]).
    pub buffer: usize,
    /// How often an idle SSE connection gets a comment line (default
    /// 15 s), so proxies and browsers keep it open.
    pub keep_alive: Duration,
    /// The `retry:` an SSE client waits before it reconnects (default 1 s).
    pub retry: Duration,
}

impl Default for BridgeOptions {
    fn default() -> Self {
        BridgeOptions {
            buffer: 1024,
            keep_alive: Duration::from_secs(15),
            retry: Duration::from_secs(1),
        }
    }
}

impl BridgeOptions {
    /// Sets [`BridgeOptions::buffer`].
    pub fn buffer(mut self, events: usize) -> Self {
        self.buffer = events.max(1);
        self
    }

    /// Sets [`BridgeOptions::keep_alive`].
    pub fn keep_alive(mut self, every: Duration) -> Self {
        self.keep_alive = every;
        self
    }

    /// Sets [`BridgeOptions::retry`].
    pub fn retry(mut self, after: Duration) -> Self {
        self.retry = after;
        self
    }
}

/// Live views of a bus for browsers: Server-Sent Events and WebSocket
/// responses from a Pub/Sub pattern or a stream.
///
/// - **One subscription per source.** Every client of the same pattern
///   (or stream) in the same scope shares one Redis subscription (one
///   `XREAD` loop for a stream); each event is rendered once.
/// - **Slow clients are dropped.** Each client may fall
///   [`BridgeOptions::buffer`] events behind; past it, it is sent an
///   `overflow` event (`{"missed": n}`) and its response ends, and nobody
///   else waits for it. A browser's `EventSource` then reconnects: on a
///   stream, with `Last-Event-ID`, so it misses nothing; on a pattern, what
///   it missed is gone, as Pub/Sub is at most once.
/// - **Authorisation.** Every request goes through the hook first, which
///   says which tenant (and types) it may see; asking for another tenant is
///   a 403, and every name in the request is checked by the bus's rules, so
///   no channel or pattern reaches out of the granted scope.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use tidings_web::{Bridge, Grant};
/// let bus = tidings_runtime::Bus::connect("redis://127.0.0.1:6379").await?;
/// let bridge = Bridge::new(bus, |_: &axum::http::request::Parts| Ok(Grant::root()));
/// let app = axum::Router::new().nest("/live", bridge.router());
/// // GET /live/sse/channel/notifications?pattern=gate.*
/// // GET /live/sse/stream/contextual          (Last-Event-ID resumes)
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// axum::serve(listener, app).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Bridge {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    bus: Bus,
    hook: Hook,
    options: BridgeOptions,
    hub: Arc<Hub>,
}

/// A request that passed the hook: the bus of its scope, the scope's
/// tenant, and its grant.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub(crate) bus: Bus,
    pub(crate) tenant: Option<String>,
    pub(crate) grant: Grant,
}

impl Bridge {
    /// A bridge over `bus` (the root bus: tenants are reached through it),
    /// with `authorize` deciding what each request may see.
    pub fn new(bus: Bus, authorize: impl Authorize) -> Self {
        Bridge::with_options(bus, authorize, BridgeOptions::default())
    }

    /// [`Bridge::new`] with tunables.
    pub fn with_options(bus: Bus, authorize: impl Authorize, options: BridgeOptions) -> Self {
        let hub = Arc::new(Hub::new(options.buffer));
        Bridge {
            inner: Arc::new(Inner {
                bus,
                hook: Hook(Arc::new(authorize)),
                options,
                hub,
            }),
        }
    }

    /// Redis subscriptions (and stream readers) open now: one per source
    /// and scope that has clients.
    pub fn open_subscriptions(&self) -> usize {
        self.inner.hub.open_subscriptions()
    }

    pub(crate) fn options(&self) -> &BridgeOptions {
        &self.inner.options
    }

    /// Runs the hook and checks the tenant asked for (`None`: the grant's
    /// own tenant, or the root scope).
    pub(crate) fn admit(
        &self,
        request: &Parts,
        tenant: Option<&str>,
    ) -> Result<Admitted, WebError> {
        let grant = self
            .inner
            .hook
            .0
            .authorize(request)
            .map_err(WebError::Denied)?;
        let tenant = tenant.or(grant.default_tenant()).map(str::to_owned);
        if !grant.allows_tenant(tenant.as_deref()) {
            return Err(WebError::OtherTenant {
                requested: tenant.unwrap_or_else(|| "(root)".to_owned()),
            });
        }
        let bus = match &tenant {
            Some(t) => self.inner.bus.tenant(t).map_err(WebError::from_bus)?,
            None => self.inner.bus.clone(),
        };
        Ok(Admitted { bus, tenant, grant })
    }

    /// Joins the shared subscription of `source` in the admitted scope, and
    /// makes the client: resumed after `after` on a stream, live otherwise.
    pub(crate) async fn client(
        &self,
        admitted: Admitted,
        source: &Source,
        after: Option<&str>,
    ) -> Result<Client, WebError> {
        let Admitted { bus, tenant, grant } = admitted;
        match source {
            Source::Pattern { channel, pattern } => {
                // Checked before the hub is touched: a bad pattern opens nothing.
                bus.channel_pattern(channel, pattern)
                    .map_err(WebError::from_bus)?;
                let key = TopicKey::Pattern {
                    tenant,
                    channel: channel.clone(),
                    pattern: pattern.clone(),
                };
                let membership = self
                    .join(key, {
                        let bus = bus.clone();
                        let (channel, pattern) = (channel.clone(), pattern.clone());
                        move || async move {
                            let events = bus
                                .subscribe_pattern(&channel, &pattern)
                                .await
                                .map_err(WebError::from_bus)?;
                            Ok(events
                                .filter_map(|item| async move {
                                    match item {
                                        Ok(event) => {
                                            Some(Frame::Event(Rendered::from_pubsub(&event)))
                                        }
                                        Err(tidings_runtime::ReceiveError::Gap {
                                            down, ..
                                        }) => Some(Frame::Gap {
                                            down_ms: down.as_millis(),
                                        }),
                                        // Logged by the subscription; nothing to show.
                                        Err(_) => None,
                                    }
                                })
                                .boxed())
                        }
                    })
                    .await?;
                Ok(Client::live(membership, grant))
            }
            Source::Stream { stream } => {
                bus.stream_key(stream).map_err(WebError::from_bus)?;
                if let Some(id) = after {
                    check_entry_id(id)?;
                }
                let key = TopicKey::Stream {
                    tenant,
                    stream: stream.clone(),
                };
                let membership = self
                    .join(key, {
                        let bus = bus.clone();
                        let stream = stream.clone();
                        move || async move {
                            let entries = bus
                                .follow(&stream, None)
                                .await
                                .map_err(WebError::from_bus)?;
                            Ok(entries
                                .filter_map(|item| async move {
                                    match item {
                                        Ok(entry) => Rendered::from_entry(&entry).map(Frame::Event),
                                        Err(e) => {
                                            tracing::warn!(error = %e, "live view: reading a stream failed; reading again");
                                            None
                                        }
                                    }
                                })
                                .boxed())
                        }
                    })
                    .await?;
                Ok(match after {
                    Some(id) => Client::resumed(membership, grant, bus, stream.clone(), id),
                    None => Client::live(membership, grant),
                })
            }
        }
    }

    async fn join<F, Fut>(&self, key: TopicKey, open: F) -> Result<Membership, WebError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<
            Output = Result<futures::stream::BoxStream<'static, Frame>, WebError>,
        >,
    {
        self.inner.hub.join(key, open).await
    }

    /// A Server-Sent Events response for `source`, as the request may see
    /// it: `tenant` names the scope asked for (`None`: the grant's own).
    /// On a stream, the client resumes after the request's `Last-Event-ID`
    /// header, or else after `after` (for a first connection, which cannot
    /// set the header), or else from now on.
    ///
    /// Each event is `event: <type>` and `data: <CloudEvents JSON>`, with
    /// `id: <entry id>` from a stream. Also sent: `retry:` first, a comment
    /// line when idle ([`BridgeOptions::keep_alive`]), `event: gap` when the
    /// Pub/Sub connection dropped and was subscribed again, and
    /// `event: overflow` before the end of a slow client's response.
    ///
    /// Returns once the subscription is open: an event published after the
    /// client has the response headers reaches it.
    pub async fn sse(
        &self,
        request: &Parts,
        source: &Source,
        tenant: Option<&str>,
        after: Option<&str>,
    ) -> Result<Response, WebError> {
        let last_event_id = match request.headers.get("last-event-id") {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| WebError::BadParameter {
                what: "Last-Event-ID",
                reason: "not ASCII".to_owned(),
            })?),
        };
        let admitted = self.admit(request, tenant)?;
        let after = match source {
            Source::Stream { .. } => last_event_id.or(after),
            Source::Pattern { .. } => None,
        };
        let client = self.client(admitted, source, after).await?;
        Ok(sse_response(client, self.options()))
    }
}

/// Checks an entry id from a request before it reaches Redis.
pub(crate) fn check_entry_id(id: &str) -> Result<(), WebError> {
    let number = |s: &str| !s.is_empty() && s.len() <= 20 && s.parse::<u64>().is_ok();
    match id.split_once('-') {
        Some((ms, seq)) if number(ms) && number(seq) => Ok(()),
        _ => Err(WebError::BadParameter {
            what: "entry id",
            reason: format!(
                "`{}` is not a stream entry id (`<milliseconds>-<sequence>`)",
                id.escape_debug()
            ),
        }),
    }
}

/// The streaming response of one SSE client.
fn sse_response(client: Client, options: &BridgeOptions) -> Response {
    struct State {
        client: Client,
        keep_alive: tokio::time::Interval,
        done: bool,
    }
    let period = options.keep_alive.max(Duration::from_millis(10));
    let mut keep_alive = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let first = Bytes::from(format!("retry: {}\n\n", options.retry.as_millis()));
    let state = State {
        client,
        keep_alive,
        done: false,
    };
    let frames = futures::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        let chunk = tokio::select! {
            next = s.client.next() => match next {
                // The keep-alive is not pushed back by each event: moving a
                // timer for every event of every client costs more than an
                // extra comment line every 15 s.
                Next::Frames(frames) => {
                    if let [one] = &frames[..] {
                        one.sse()
                    } else {
                        let mut out = Vec::new();
                        for f in &frames {
                            out.extend_from_slice(&f.sse());
                        }
                        Bytes::from(out)
                    }
                }
                Next::Overflow { missed } => {
                    s.done = true;
                    Bytes::from(format!("event: overflow\ndata: {{\"missed\":{missed}}}\n\n"))
                }
                Next::Failed(reason) => {
                    s.done = true;
                    let mut out = String::from("event: error\n");
                    push_data(&mut out, &serde_json::json!({ "error": reason }).to_string());
                    Bytes::from(out)
                }
                Next::End => return None,
            },
            _ = s.keep_alive.tick() => Bytes::from_static(b": keep-alive\n\n"),
        };
        Some((Ok::<_, Infallible>(chunk), s))
    });
    let body = futures::stream::once(async move { Ok(first) }).chain(frames);
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies that buffer responses (nginx) would hold the events back.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}
