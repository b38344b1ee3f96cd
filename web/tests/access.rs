//! The authorisation hook and the names a client sends: another tenant is a
//! 403, a hostile name or pattern is refused before anything is opened, and
//! whatever pattern a client is allowed to send, it never receives another
//! tenant's events.

mod support;

use support::events::{DriftDetected, FileDeleted, FileUploaded, GateOpened};
use support::{get, serve};
use tidings::Bus;
use tidings_testkit::RedisServer;
use tidings_web::BridgeOptions;

/// Percent-encodes everything but unreserved characters, as a browser
/// would send a hostile name inside a path or a query.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn requests_are_refused_with_the_status_that_says_why() {
    let redis = RedisServer::start();
    let bus = Bus::connect(&redis.url()).await.unwrap();
    let server = serve(bus, BridgeOptions::default()).await;
    let globex = [("x-tenant", "globex")];
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, u16);
    let cases: Vec<Case> = vec![
        // The hook said no.
        (
            "/live/sse/channel/notifications".into(),
            vec![("x-deny", "1")],
            401,
        ),
        (
            "/live/sse/stream/contextual".into(),
            vec![("x-deny", "1")],
            401,
        ),
        // Another tenant than the granted one, however it is spelt.
        (
            "/live/sse/channel/notifications?tenant=acme".into(),
            globex.to_vec(),
            403,
        ),
        (
            "/live/sse/stream/contextual?tenant=acme".into(),
            globex.to_vec(),
            403,
        ),
        (
            format!("/live/sse/channel/notifications?tenant={}", enc("globex}")),
            globex.to_vec(),
            403,
        ),
        (
            format!("/live/sse/channel/notifications?tenant={}", enc("*")),
            globex.to_vec(),
            403,
        ),
        (
            "/live/sse/channel/notifications?tenant=".into(),
            globex.to_vec(),
            403,
        ),
        // The root scope may not name a tenant either.
        (
            "/live/sse/channel/notifications?tenant=acme".into(),
            vec![],
            403,
        ),
        // An operator may, but only with a valid tenant name.
        (
            format!("/live/sse/channel/notifications?tenant={}", enc("acme}:x")),
            vec![("x-role", "operator")],
            400,
        ),
        (
            format!("/live/sse/channel/notifications?tenant={}", enc("*")),
            vec![("x-role", "operator")],
            400,
        ),
        // Channels that would leave the scope.
        (
            format!("/live/sse/channel/{}", enc("{acme}:notifications")),
            globex.to_vec(),
            400,
        ),
        (
            format!("/live/sse/channel/{}", enc("*")),
            globex.to_vec(),
            400,
        ),
        (
            format!("/live/sse/channel/{}", enc("notifications:gate")),
            vec![],
            400,
        ),
        (format!("/live/sse/channel/{}", enc("a b")), vec![], 400),
        // Patterns that would leave the channel.
        (
            format!("/live/sse/channel/notifications?pattern={}", enc("*:*")),
            globex.to_vec(),
            400,
        ),
        (
            format!(
                "/live/sse/channel/notifications?pattern={}",
                enc("}:notifications:*")
            ),
            globex.to_vec(),
            400,
        ),
        (
            format!("/live/sse/channel/notifications?pattern={}", enc("\\*")),
            vec![],
            400,
        ),
        (
            format!(
                "/live/sse/channel/notifications?pattern={}",
                enc("gate.*\r\nevent: x")
            ),
            vec![],
            400,
        ),
        (
            format!(
                "/live/sse/channel/notifications?pattern={}",
                "x".repeat(300)
            ),
            vec![],
            400,
        ),
        (
            "/live/sse/channel/notifications?pattern=".into(),
            vec![],
            400,
        ),
        // Streams of another tenant, and ids that are not entry ids.
        (
            format!("/live/sse/stream/{}", enc("acme:contextual")),
            globex.to_vec(),
            400,
        ),
        (
            format!("/live/sse/stream/{}", enc("{acme:contextual}")),
            vec![],
            400,
        ),
        ("/live/sse/stream/contextual?after=%2B".into(), vec![], 400),
        (
            "/live/sse/stream/contextual".into(),
            vec![("last-event-id", "0-0 (")],
            400,
        ),
        (
            "/live/sse/stream/contextual".into(),
            vec![("last-event-id", "$")],
            400,
        ),
        // WebSocket routes refuse before the upgrade, with the same statuses.
        (
            "/live/ws/channel/notifications?tenant=acme".into(),
            globex.to_vec(),
            403,
        ),
        (
            format!("/live/ws/channel/notifications?pattern={}", enc("*:*")),
            vec![],
            400,
        ),
        (
            "/live/ws/stream/contextual".into(),
            vec![("x-deny", "1")],
            401,
        ),
    ];
    for (path, headers, status) in cases {
        let mut with = headers.clone();
        if path.starts_with("/live/ws/") {
            with.extend([
                ("connection", "upgrade"),
                ("upgrade", "websocket"),
                ("sec-websocket-version", "13"),
                ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ]);
        }
        let answer = get(server.addr, &path, &with).await;
        let got = answer.status;
        let text = answer.text().await;
        assert_eq!(got, status, "GET {path} with {headers:?}: {text}");
    }
    assert_eq!(server.bridge.open_subscriptions(), 0, "nothing was opened");
}

#[tokio::test]
async fn no_pattern_a_client_may_send_reaches_another_tenants_events() {
    let redis = RedisServer::start();
    let bus = Bus::connect(&redis.url()).await.unwrap();
    let server = serve(bus.clone(), BridgeOptions::default()).await;
    let acme = bus.tenant("acme").unwrap();
    let globex = bus.tenant("globex").unwrap();

    // Every pattern the rules let through, from globex and from the root
    // scope, on the channel and on channels named like acme's pieces.
    let patterns = ["*", "?*", "[a-z]*", "gate.*", "*.*", "[^x]*", "**"];
    let mut hostile = Vec::new();
    for p in patterns {
        for channel in ["notifications", "acme", "acme}"] {
            for who in [vec![("x-tenant", "globex")], vec![]] {
                let path = format!("/live/sse/channel/{}?pattern={}", enc(channel), enc(p));
                let answer = get(server.addr, &path, &who).await;
                if answer.status == 200 {
                    hostile.push((path, who, answer));
                } else {
                    assert_eq!(answer.status, 400, "{path}");
                }
            }
        }
    }
    assert!(
        hostile.len() >= patterns.len() * 2,
        "most patterns are valid"
    );
    // And acme's own client, to show acme's events do go out.
    let mut own = get(
        server.addr,
        "/live/sse/channel/notifications",
        &[("x-tenant", "acme")],
    )
    .await;

    acme.publish(&GateOpened { gate: 1 }).await.unwrap();
    acme.publish(&DriftDetected { drift: 1 }).await.unwrap();
    // Then one event each scope may see, published after acme's on the same
    // connection: whoever gets it first has not been sent acme's.
    globex.publish(&GateOpened { gate: 2 }).await.unwrap();
    bus.publish(&GateOpened { gate: 3 }).await.unwrap();

    let e = own.event().await.json();
    assert_eq!(
        (e["tenantid"].as_str(), e["data"]["gate"].as_u64()),
        (Some("acme"), Some(1))
    );
    for (path, who, answer) in &mut hostile {
        if !path.starts_with("/live/sse/channel/notifications") {
            continue;
        }
        let e = answer.event().await.json();
        let (tenant, gate) = match who.first() {
            Some(_) => (Some("globex"), 2),
            None => (None, 3),
        };
        assert_eq!(e["tenantid"].as_str(), tenant, "{path} {who:?}: {e}");
        assert_eq!(e["data"]["gate"], gate, "{path} {who:?}: {e}");
    }
}

#[tokio::test]
async fn a_grant_of_some_types_hides_the_others() {
    let redis = RedisServer::start();
    let bus = Bus::connect(&redis.url()).await.unwrap();
    let server = serve(bus.clone(), BridgeOptions::default()).await;
    let mut gates = get(
        server.addr,
        "/live/sse/channel/notifications?pattern=*",
        &[("x-types", "gate.*")],
    )
    .await;
    let mut deletions = get(
        server.addr,
        "/live/sse/stream/contextual",
        &[("x-types", "file.deleted")],
    )
    .await;
    bus.publish(&DriftDetected { drift: 1 }).await.unwrap();
    bus.publish(&GateOpened { gate: 1 }).await.unwrap();
    assert_eq!(gates.event().await.event.as_deref(), Some("gate.opened"));

    bus.publish(&FileUploaded { n: 1 }).await.unwrap();
    bus.publish(&FileDeleted { n: 1 }).await.unwrap();
    let e = deletions.event().await;
    assert_eq!(
        e.event.as_deref(),
        Some("file.deleted"),
        "file.uploaded is not granted"
    );
}
