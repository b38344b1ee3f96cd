//! The WebSocket bridge: the same sources and rules as Server-Sent Events,
//! with the resume position in the client's first message.

mod support;

use futures::{SinkExt, StreamExt};
use support::events::{FileUploaded, GateOpened};
use support::{serve, WITHIN};
use tidings::Bus;
use tidings_testkit::RedisServer;
use tidings_web::BridgeOptions;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn connect(addr: std::net::SocketAddr, path: &str) -> Socket {
    let req = format!("ws://{addr}{path}").into_client_request().unwrap();
    let (socket, response) = timeout(WITHIN, tokio_tungstenite::connect_async(req))
        .await
        .expect("upgraded in time")
        .unwrap();
    assert_eq!(response.status().as_u16(), 101);
    socket
}

/// The next message: JSON text, or the close frame's code and reason.
async fn next(socket: &mut Socket) -> Result<serde_json::Value, (CloseCode, String)> {
    loop {
        let msg = timeout(WITHIN, socket.next())
            .await
            .expect("a message in time")
            .expect("a message, not the end")
            .unwrap();
        match msg {
            Message::Text(t) => return Ok(serde_json::from_str(&t).unwrap()),
            Message::Close(Some(f)) => return Err((f.code, f.reason.to_string())),
            Message::Close(None) => return Err((CloseCode::Status, String::new())),
            _ => {}
        }
    }
}

async fn send(socket: &mut Socket, text: &str) {
    socket.send(Message::Text(text.into())).await.unwrap();
}

#[tokio::test]
async fn a_pattern_socket_gets_each_event_as_cloudevents_json() {
    let redis = RedisServer::start();
    let bus = Bus::connect(&redis.url()).await.unwrap();
    let server = serve(bus.clone(), BridgeOptions::default()).await;
    let mut a = connect(server.addr, "/live/ws/channel/notifications?pattern=gate.*").await;
    let mut b = connect(server.addr, "/live/ws/channel/notifications?pattern=gate.*").await;
    assert_eq!(
        server.bridge.open_subscriptions(),
        1,
        "shared with SSE clients' rule"
    );
    bus.publish(&GateOpened { gate: 4 }).await.unwrap();
    for s in [&mut a, &mut b] {
        let m = next(s).await.unwrap();
        assert_eq!(m["event"]["type"], "gate.opened");
        assert_eq!(m["event"]["data"]["gate"], 4);
        assert!(m.get("entry_id").is_none());
    }
}

#[tokio::test]
async fn a_stream_socket_resumes_from_the_position_in_its_first_message() {
    let redis = RedisServer::start();
    let bus = Bus::connect(&redis.url()).await.unwrap();
    let server = serve(bus.clone(), BridgeOptions::default()).await;
    let path = "/live/ws/stream/contextual";

    let mut live = connect(server.addr, path).await;
    send(&mut live, r#"{"after": null}"#).await;
    assert_eq!(
        next(&mut live).await.unwrap(),
        serde_json::json!({"ready": true})
    );
    let mut ids = Vec::new();
    for n in 0..2 {
        ids.push(
            bus.publish(&FileUploaded { n })
                .await
                .unwrap()
                .entry_id
                .unwrap(),
        );
    }
    let first = next(&mut live).await.unwrap();
    assert_eq!(first["entry_id"], ids[0].as_str());
    assert_eq!(first["event"]["data"]["n"], 0);
    // The connection drops after the first event; more come meanwhile.
    drop(live);
    ids.push(
        bus.publish(&FileUploaded { n: 2 })
            .await
            .unwrap()
            .entry_id
            .unwrap(),
    );

    let mut resumed = connect(server.addr, path).await;
    send(&mut resumed, &format!(r#"{{"after": "{}"}}"#, ids[0])).await;
    assert_eq!(next(&mut resumed).await.unwrap()["ready"], true);
    ids.push(
        bus.publish(&FileUploaded { n: 3 })
            .await
            .unwrap()
            .entry_id
            .unwrap(),
    );
    for (n, id) in ids.iter().enumerate().skip(1) {
        let m = next(&mut resumed).await.unwrap();
        assert_eq!(m["entry_id"], id.as_str());
        assert_eq!(
            m["event"]["data"]["n"], n,
            "in order, none missed, none twice"
        );
    }
}

#[tokio::test]
async fn a_bad_first_message_closes_the_socket_with_policy_violation() {
    let redis = RedisServer::start();
    let bus = Bus::connect(&redis.url()).await.unwrap();
    let server = serve(bus, BridgeOptions::default()).await;
    for first in [
        r#"{"after": "$"}"#,
        r#"{"after": "0-0 ("}"#,
        r#"{"after": 5}"#,
        r#"{"from": "0-0"}"#,
        "not json",
    ] {
        let mut s = connect(server.addr, "/live/ws/stream/contextual").await;
        send(&mut s, first).await;
        let (code, reason) = next(&mut s).await.unwrap_err();
        assert_eq!(code, CloseCode::Policy, "{first}: {reason}");
        assert!(!reason.is_empty());
    }
    assert_eq!(server.bridge.open_subscriptions(), 0);
}

#[tokio::test]
async fn a_slow_socket_is_closed_with_try_again_later() {
    use support::events::Bulk;
    let redis = RedisServer::start();
    let bus = Bus::connect(&redis.url()).await.unwrap();
    let server = serve(bus.clone(), BridgeOptions::default().buffer(8)).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.addr).await.unwrap();
    let req = format!(
        "ws://{}/live/ws/channel/notifications?pattern=bulk",
        server.addr
    )
    .into_client_request()
    .unwrap();
    let (mut slow, _) = tokio_tungstenite::client_async(req, MaybeTlsStream::Plain(stream))
        .await
        .unwrap();
    // 12 MiB, more than the socket buffers and the ring hold, read by nobody.
    let pad = "x".repeat(32 * 1024);
    for n in 0..384 {
        bus.publish(&Bulk {
            n,
            pad: pad.clone(),
        })
        .await
        .unwrap();
    }
    let mut got = 0;
    let (code, reason) = loop {
        match next(&mut slow).await {
            Ok(m) => {
                assert_eq!(m["event"]["data"]["n"], got, "no hole before the close");
                got += 1;
            }
            Err(close) => break close,
        }
    };
    assert_eq!(code, CloseCode::Again, "{reason}");
    assert!(reason.starts_with("overflow: missed "), "{reason}");
    assert!(got < 384);
}
