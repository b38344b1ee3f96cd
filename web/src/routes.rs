//! The bridge's ready-made routes.

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use crate::bridge::{Bridge, Source};

/// Query of a pattern route.
#[derive(Debug, Deserialize)]
struct PatternQuery {
    /// Glob over type names; every type when absent.
    pattern: Option<String>,
    tenant: Option<String>,
}

/// Query of a stream route.
#[derive(Debug, Deserialize)]
struct StreamQuery {
    tenant: Option<String>,
    /// Resume after this entry id (SSE; `Last-Event-ID` wins).
    after: Option<String>,
}

impl Bridge {
    /// The bridge's routes, to nest where the application wants them:
    ///
    /// | route | what |
    /// |---|---|
    /// | `GET /sse/channel/{channel}?pattern=…&tenant=…` | SSE of a pattern (`*` when absent) |
    /// | `GET /sse/stream/{stream}?tenant=…&after=…` | SSE of a stream, resumable |
    /// | `GET /ws/channel/{channel}?pattern=…&tenant=…` | WebSocket of a pattern |
    /// | `GET /ws/stream/{stream}?tenant=…` | WebSocket of a stream, resume position first |
    ///
    /// See [`Bridge::sse`] and [`Bridge::websocket`] for what each sends.
    pub fn router<S>(&self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        Router::new()
            .route("/sse/channel/{channel}", get(sse_pattern))
            .route("/sse/stream/{stream}", get(sse_stream))
            .route("/ws/channel/{channel}", get(ws_pattern))
            .route("/ws/stream/{stream}", get(ws_stream))
            .with_state(self.clone())
    }
}

async fn sse_pattern(
    State(bridge): State<Bridge>,
    Path(channel): Path<String>,
    Query(q): Query<PatternQuery>,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let source = Source::pattern(channel, q.pattern.unwrap_or_else(|| "*".to_owned()));
    bridge
        .sse(&parts, &source, q.tenant.as_deref(), None)
        .await
        .into_response()
}

async fn sse_stream(
    State(bridge): State<Bridge>,
    Path(stream): Path<String>,
    Query(q): Query<StreamQuery>,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    bridge
        .sse(
            &parts,
            &Source::stream(stream),
            q.tenant.as_deref(),
            q.after.as_deref(),
        )
        .await
        .into_response()
}

async fn ws_pattern(
    State(bridge): State<Bridge>,
    Path(channel): Path<String>,
    Query(q): Query<PatternQuery>,
    upgrade: WebSocketUpgrade,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let source = Source::pattern(channel, q.pattern.unwrap_or_else(|| "*".to_owned()));
    bridge
        .websocket(&parts, upgrade, &source, q.tenant.as_deref())
        .await
        .into_response()
}

async fn ws_stream(
    State(bridge): State<Bridge>,
    Path(stream): Path<String>,
    Query(q): Query<StreamQuery>,
    upgrade: WebSocketUpgrade,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    bridge
        .websocket(
            &parts,
            upgrade,
            &Source::stream(stream),
            q.tenant.as_deref(),
        )
        .await
        .into_response()
}
