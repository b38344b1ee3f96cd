//! The server of `tidings dashboard`: one page (embedded in the binary),
//! the JSON it reads, the live feeds it follows, and the dead-letter
//! actions it posts.

mod schemas;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tidings_runtime::{Bus, DeadLetters, Envelope, Ulid};

use crate::access::Grant;
use crate::bridge::{Bridge, Source};
use crate::error::WebError;
use crate::frame::push_data;

/// The page: markup, style and script in one file, so the binary serves it
/// with no CDN and no file beside it.
const PAGE: &str = include_str!("page.html");

/// Where the page takes its CSRF token from.
const CSRF_MARK: &str = "__TIDINGS_CSRF__";

/// The cookie that carries the `--token` after `/?token=…`.
const COOKIE: &str = "tidings_dashboard";

/// How often the streams' figures are sent again.
const STATS_EVERY: Duration = Duration::from_secs(1);

/// Entries the tail shows before the live ones.
const TAIL: usize = 20;

/// Dead letters listed per stream.
const LETTERS: usize = 100;

/// The dashboard of a bus: every stream of its namespace with length,
/// groups, lag, pending entries and dead letters, updating live; a live tail
/// of a stream; dead letters with retry and purge; and the schema versions
/// of a `schemas/` folder with the difference between two versions.
///
/// Actions (retry, purge) are `POST`s that carry the page's CSRF token in a
/// header, which a page of another site can neither read nor send. With a
/// [`Dashboard::token`], every request must carry it: as
/// `Authorization: Bearer <token>`, or as the cookie set by opening
/// `/?token=<token>` once.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let bus = tidings_runtime::Bus::connect("redis://127.0.0.1:6379").await?;
/// let app = tidings_web::Dashboard::new(bus).schemas("schemas").router();
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// axum::serve(listener, app).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Dashboard {
    bus: Bus,
    schemas: Option<PathBuf>,
    token: Option<String>,
    csrf: String,
}

#[derive(Debug)]
struct Shared {
    bus: Bus,
    bridge: Bridge,
    schemas: Option<PathBuf>,
    token: Option<String>,
    csrf: String,
    page: String,
}

impl Dashboard {
    /// The dashboard of `bus`'s scope (its root, or its tenant).
    pub fn new(bus: Bus) -> Self {
        Dashboard {
            bus,
            schemas: None,
            token: None,
            // 160 random bits from the thread's CSPRNG (ULIDs' random parts).
            csrf: format!("{}{}", Ulid::new(), Ulid::new()),
        }
    }

    /// The `schemas/` folder whose versions the page shows.
    pub fn schemas(mut self, dir: impl Into<PathBuf>) -> Self {
        self.schemas = Some(dir.into());
        self
    }

    /// Requires this token of every request (see [`Dashboard`]).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The token the page sends with its actions; other sites cannot read it.
    pub fn csrf_token(&self) -> &str {
        &self.csrf
    }

    /// The dashboard's routes: the page at `/`, its API under `/api`.
    pub fn router(&self) -> Router {
        let shared = Arc::new(Shared {
            bus: self.bus.clone(),
            bridge: Bridge::new(self.bus.clone(), |_: &axum::http::request::Parts| {
                Ok(Grant::root())
            }),
            schemas: self.schemas.clone(),
            token: self.token.clone(),
            csrf: self.csrf.clone(),
            page: PAGE.replace(CSRF_MARK, &self.csrf),
        });
        Router::new()
            .route("/", get(page))
            .route("/api/streams", get(streams))
            .route("/api/streams/live", get(streams_live))
            .route("/api/entries/{stream}", get(entries))
            .route("/api/tail/{stream}", get(tail))
            .route("/api/dlq/{stream}", get(letters))
            .route("/api/dlq/{stream}/retry", post(retry))
            .route("/api/dlq/{stream}/purge", post(purge))
            .route("/api/schemas", get(schema_list))
            .route("/api/schemas/diff", get(schema_diff))
            .layer(axum::middleware::from_fn_with_state(
                shared.clone(),
                require_token,
            ))
            .with_state(shared)
    }
}

type App = State<Arc<Shared>>;

/// An answer with a status and a message, for what the page cannot do.
fn failure(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn bus_failure(e: tidings_runtime::Error) -> Response {
    WebError::from_bus(e).into_response()
}

/// Compares without stopping at the first difference, so the time taken
/// does not tell how much of a guess was right.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

/// With `--token`: lets through a request that carries it; `/?token=…`
/// with it sets the cookie and sends the browser to `/`.
async fn require_token(State(shared): App, request: Request, next: Next) -> Response {
    let Some(token) = &shared.token else {
        return next.run(request).await;
    };
    let headers = request.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer.is_some_and(|t| same(t, token))
        || cookie_token(headers).is_some_and(|t| same(t, token))
    {
        return next.run(request).await;
    }
    let query = request.uri().query().unwrap_or("");
    let given = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| v);
    if request.uri().path() == "/" && given.is_some_and(|t| same(t, token)) {
        let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
        let mut response = StatusCode::SEE_OTHER.into_response();
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, v);
        }
        response
            .headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static("/"));
        return response;
    }
    failure(
        StatusCode::UNAUTHORIZED,
        "this dashboard needs its token: open /?token=<token>, or send Authorization: Bearer <token>",
    )
}

async fn page(State(shared): App) -> Response {
    let mut response = Response::new(Body::from(shared.page.clone()));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // Everything the page needs is inline; nothing else may run in it, and
    // no other site may frame it to click its buttons.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; frame-ancestors 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Every stream of the scope with its figures.
async fn all_stats(bus: &Bus) -> Result<Value, tidings_runtime::Error> {
    let mut out = Vec::new();
    for name in bus.streams().await? {
        let stats = bus.stream_stats(&name).await?;
        out.push(serde_json::to_value(&stats).unwrap_or(Value::Null));
    }
    Ok(Value::Array(out))
}

async fn streams(State(shared): App) -> Response {
    match all_stats(&shared.bus).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => bus_failure(e),
    }
}

/// `event: streams` with every stream's figures, now and every second.
async fn streams_live(State(shared): App) -> Response {
    let bus = shared.bus.clone();
    let mut every = tokio::time::interval(STATS_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let frames = futures::stream::unfold((bus, every), |(bus, mut every)| async move {
        every.tick().await;
        let mut out = String::new();
        match all_stats(&bus).await {
            Ok(v) => {
                out.push_str("event: streams\n");
                push_data(&mut out, &v.to_string());
            }
            Err(e) => {
                out.push_str("event: error\n");
                push_data(&mut out, &json!({ "error": e.to_string() }).to_string());
            }
        }
        Some((
            Ok::<_, std::convert::Infallible>(Bytes::from(out)),
            (bus, every),
        ))
    });
    let mut response = Response::new(Body::from_stream(frames));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The newest entries of a stream, as the tail shows them.
async fn entries(State(shared): App, Path(stream): Path<String>) -> Response {
    match shared.bus.last_entries(&stream, TAIL).await {
        Ok(entries) => {
            let out: Vec<Value> = entries
                .iter()
                .map(|e| {
                    let fields = e.fields.iter().map(|(k, v)| (k.as_bytes(), &v[..]));
                    match Envelope::from_fields(&e.id, fields) {
                        Ok(env) => json!({
                            "entry_id": e.id,
                            "event": serde_json::from_slice::<Value>(&env.to_json()).unwrap_or(Value::Null),
                        }),
                        Err(err) => json!({ "entry_id": e.id, "error": err.to_string() }),
                    }
                })
                .collect();
            Json(out).into_response()
        }
        Err(e) => bus_failure(e),
    }
}

#[derive(Debug, Deserialize)]
struct TailQuery {
    after: Option<String>,
}

/// The live tail: the stream bridge, resumable.
async fn tail(
    State(shared): App,
    Path(stream): Path<String>,
    Query(q): Query<TailQuery>,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    shared
        .bridge
        .sse(&parts, &Source::stream(stream), None, q.after.as_deref())
        .await
        .into_response()
}

async fn letters(State(shared): App, Path(stream): Path<String>) -> Response {
    let dlq = match shared.bus.dead_letters(&stream) {
        Ok(d) => d,
        Err(e) => return bus_failure(e),
    };
    match dlq.list(LETTERS).await {
        Ok(list) => {
            let out: Vec<Value> = list
                .iter()
                .map(|l| {
                    json!({
                        "id": l.id,
                        "entry_id": l.entry_id,
                        "group": l.group,
                        "handler": l.handler,
                        "error": l.error,
                        "attempts": l.attempts,
                        "type": l.envelope.as_ref().ok().map(|e| e.type_name.clone()),
                    })
                })
                .collect();
            Json(out).into_response()
        }
        Err(e) => bus_failure(e),
    }
}

/// What a dead-letter action applies to: one letter, or all of them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Action {
    id: Option<String>,
    #[serde(default)]
    all: bool,
}

/// Checks the CSRF token and reads the action. The token travels in a
/// header, which a form or a cross-site request cannot set without the
/// server's leave (none is given: no CORS), and JSON is required, which a
/// plain form cannot send.
fn action(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<Action, Response> {
    let token = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
    if !token.is_some_and(|t| same(t, &shared.csrf)) {
        return Err(failure(
            StatusCode::FORBIDDEN,
            "missing or wrong x-csrf-token: actions come from the dashboard's own page",
        ));
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Err(failure(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the action as application/json",
        ));
    }
    let action: Action = serde_json::from_slice(body)
        .map_err(|e| failure(StatusCode::BAD_REQUEST, format!("bad action: {e}")))?;
    match (&action.id, action.all) {
        (Some(_), false) | (None, true) => Ok(action),
        _ => Err(failure(
            StatusCode::BAD_REQUEST,
            "say {\"id\": \"<dead letter id>\"} or {\"all\": true}",
        )),
    }
}

/// The action of a request and the dead letters it acts on.
fn acting(
    shared: &Shared,
    stream: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Action, DeadLetters), Response> {
    let action = action(shared, headers, body)?;
    let dlq = shared.bus.dead_letters(stream).map_err(bus_failure)?;
    Ok((action, dlq))
}

async fn retry(
    State(shared): App,
    Path(stream): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (action, dlq) = match acting(&shared, &stream, &headers, &body) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let done = match &action.id {
        Some(id) => dlq
            .retry(id)
            .await
            .map(|new| json!({ "retried": usize::from(new.is_some()), "entry_id": new })),
        None => dlq.retry_all().await.map(|n| json!({ "retried": n })),
    };
    match done {
        Ok(v) => Json(v).into_response(),
        Err(e) => bus_failure(e),
    }
}

async fn purge(
    State(shared): App,
    Path(stream): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (action, dlq) = match acting(&shared, &stream, &headers, &body) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let done = match &action.id {
        Some(id) => dlq.purge_ids(&[id]).await,
        None => dlq.purge().await,
    };
    match done {
        Ok(n) => Json(json!({ "purged": n })).into_response(),
        Err(e) => bus_failure(e),
    }
}

async fn schema_list(State(shared): App) -> Response {
    let Some(dir) = &shared.schemas else {
        return Json(json!({ "folder": null, "subjects": [] })).into_response();
    };
    match schemas::subjects(dir) {
        Ok(list) => {
            Json(json!({ "folder": dir.display().to_string(), "subjects": list })).into_response()
        }
        Err(e) => failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read {}: {e}", dir.display()),
        ),
    }
}

#[derive(Debug, Deserialize)]
struct DiffQuery {
    subject: String,
    old: u32,
    new: u32,
}

async fn schema_diff(State(shared): App, Query(q): Query<DiffQuery>) -> Response {
    let Some(dir) = &shared.schemas else {
        return failure(
            StatusCode::NOT_FOUND,
            "no schemas folder was given (--schemas)",
        );
    };
    match schemas::diff(dir, &q.subject, q.old, q.new) {
        Ok(v) => Json(v).into_response(),
        Err(e @ schemas::DiffFailure::Unknown { .. }) => {
            failure(StatusCode::NOT_FOUND, e.to_string())
        }
        Err(e) => failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
