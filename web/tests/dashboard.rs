//! The dashboard: its API refuses what it must (no token, no CSRF token,
//! not JSON, a schema path from outside the folder), and in headless
//! Chromium the page loads, a published event appears in the live tail, and
//! its Retry button moves a dead letter back into the stream.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use support::events::FileUploaded;
use support::WITHIN;
use tidings::Bus;
use tidings_testkit::RedisServer;
use tidings_web::Dashboard;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const TOKEN: &str = "s3cret-token";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_owned()
}

/// Serves `dashboard` on a free port of 127.0.0.1.
async fn serve(dashboard: Dashboard) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = dashboard.router();
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, task)
}

/// Puts one dead letter on `contextual`, as a worker writes it (every
/// field of the original entry, then the `dlq_…` fields of DESIGN.md).
/// Returns its id.
async fn dead_letter(redis: &RedisServer, bus: &Bus) -> String {
    let published = bus.publish(&FileUploaded { n: 1 }).await.unwrap();
    let entry = published.entry_id.unwrap();
    // A group that has read nothing yet: the page shows its lag.
    bus.group("contextual", "indexer")
        .unwrap()
        .create(tidings::StartFrom::Beginning)
        .await
        .unwrap();
    let mut conn = redis.connection().await;
    let original = bus.range("contextual", &entry, 1).await.unwrap().remove(0);
    let mut cmd = redis::cmd("XADD");
    cmd.arg("tidings:{contextual}:dlq").arg("*");
    for (k, v) in &original.fields {
        cmd.arg(k).arg(v);
    }
    for (k, v) in [
        ("dlq_group", "indexer"),
        ("dlq_handler", "index_file"),
        // Markup in what Redis holds must reach the page as text.
        (
            "dlq_error",
            "the index is read-only <img src=x onerror=alert(1)>",
        ),
        ("dlq_attempts", "5"),
        ("dlq_first_failure", "2026-01-01T00:00:00.000Z"),
        ("dlq_last_failure", "2026-01-01T00:00:09.000Z"),
        ("dlq_entry_id", entry.as_str()),
        ("dlq_consumer", "worker-1"),
    ] {
        cmd.arg(k).arg(v);
    }
    let id: String = cmd.query_async(&mut conn).await.unwrap();
    let _: () = redis::cmd("HSET")
        .arg("tidings:{contextual}:dlq:idx")
        .arg(format!("{entry}:indexer"))
        .arg(&id)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        bus.dead_letters("contextual").unwrap().len().await.unwrap(),
        1
    );
    id
}

#[tokio::test]
async fn the_api_refuses_requests_without_token_csrf_token_or_json() {
    let redis = RedisServer::start();
    let bus = Bus::connect(&redis.url()).await.unwrap();
    let id = dead_letter(&redis, &bus).await;
    let dashboard = Dashboard::new(bus.clone())
        .schemas(root().join("../schemas"))
        .token(TOKEN);
    let csrf = dashboard.csrf_token().to_owned();
    let (url, _task) = serve(dashboard).await;
    let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    let bearer = format!("Bearer {TOKEN}");
    let auth = ("authorization", bearer.as_str());

    // No token, a wrong one: 401, the page included.
    for headers in [vec![], vec![("authorization", "Bearer nope")]] {
        for path in ["/", "/api/streams", "/api/tail/contextual"] {
            assert_eq!(
                support::get(addr, path, &headers).await.status,
                401,
                "{path}"
            );
        }
    }
    // The page carries its CSRF token; a wrong `?token=` sets no cookie.
    let page = support::get(addr, "/", &[auth]).await;
    assert_eq!(page.status, 200);
    assert!(page.text().await.contains(&csrf));
    assert_eq!(support::get(addr, "/?token=nope", &[]).await.status, 401);
    let answer = support::get(addr, &format!("/?token={TOKEN}"), &[]).await;
    assert_eq!(answer.status, 303);

    let streams = support::get(addr, "/api/streams", &[auth]).await;
    let streams: serde_json::Value = serde_json::from_str(&streams.text().await).unwrap();
    assert_eq!(streams[0]["stream"], "contextual");
    assert_eq!(streams[0]["dead_letters"], 1);

    // Actions: the CSRF token and JSON, or nothing happens.
    let body = format!("{{\"id\":\"{id}\"}}");
    let post = |headers: Vec<(&'static str, String)>, body: String| async move {
        post(addr, "/api/dlq/contextual/retry", &headers, &body).await
    };
    let json = ("content-type", "application/json".to_owned());
    let with_auth = ("authorization", bearer.clone());
    assert_eq!(
        post(vec![with_auth.clone(), json.clone()], body.clone()).await,
        403
    );
    assert_eq!(
        post(
            vec![
                with_auth.clone(),
                json.clone(),
                ("x-csrf-token", "x".repeat(52))
            ],
            body.clone()
        )
        .await,
        403
    );
    assert_eq!(
        post(
            vec![
                with_auth.clone(),
                ("content-type", "application/x-www-form-urlencoded".into()),
                ("x-csrf-token", csrf.clone())
            ],
            body.clone()
        )
        .await,
        415
    );
    assert_eq!(
        post(
            vec![
                with_auth.clone(),
                json.clone(),
                ("x-csrf-token", csrf.clone())
            ],
            "{\"id\":\"$\"}".into()
        )
        .await,
        400
    );
    assert_eq!(
        bus.dead_letters("contextual").unwrap().len().await.unwrap(),
        1
    );
    assert_eq!(
        post(
            vec![
                with_auth.clone(),
                json.clone(),
                ("x-csrf-token", csrf.clone())
            ],
            body.clone()
        )
        .await,
        200
    );
    assert_eq!(
        bus.dead_letters("contextual").unwrap().len().await.unwrap(),
        0
    );

    // Schemas: listed, diffed, and nothing outside the folder.
    let diff = support::get(
        addr,
        "/api/schemas/diff?subject=contextual/file.uploaded&old=1&new=2",
        &[auth],
    )
    .await;
    assert_eq!(diff.status, 200);
    let diff: serde_json::Value = serde_json::from_str(&diff.text().await).unwrap();
    assert_eq!(diff["compatible"], true);
    let outside = support::get(
        addr,
        "/api/schemas/diff?subject=..%2F..%2Fetc&old=1&new=2",
        &[auth],
    )
    .await;
    assert_eq!(outside.status, 404);
}

/// A POST on a connection of its own; returns the status.
async fn post(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> u16 {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::post(path).header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let req = req
        .body(http_body_util::Full::new(hyper::body::Bytes::from(
            body.to_owned(),
        )))
        .unwrap();
    tokio::time::timeout(WITHIN, sender.send_request(req))
        .await
        .unwrap()
        .unwrap()
        .status()
        .as_u16()
}

/// Debian's Chromium: found on `PATH` (or `CHROMIUM`), else installed with
/// `apt-get` when the test runs as root, as CI does; the test fails, saying
/// what to do, when neither works.
fn chromium() -> PathBuf {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let find = || -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("CHROMIUM") {
            return Some(PathBuf::from(p));
        }
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .flat_map(|dir| ["chromium", "chromium-browser"].map(|n| dir.join(n)))
            .find(|p| p.is_file())
    };
    if let Some(found) = find() {
        return found;
    }
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let installed = apt(&["install", "-y", "-q", "chromium"])
        || (apt(&["update", "-q"]) && apt(&["install", "-y", "-q", "chromium"]));
    match (installed, find()) {
        (true, Some(found)) => found,
        _ => panic!(
            "this test drives the dashboard in headless Chromium and found none: \
             install Debian's package (`apt-get install -y chromium`, as root) \
             or set CHROMIUM to a Chromium binary; installing it here failed"
        ),
    }
}

/// `web/tests/js` with its locked npm packages (playwright-core, which
/// drives the system's Chromium and downloads no browser); installed once.
fn node_packages() -> PathBuf {
    tidings_testkit::node::packages(&root().join("tests/js"))
}

#[tokio::test]
async fn in_chromium_the_page_tails_a_published_event_and_retries_a_dead_letter() {
    let browser = tokio::task::spawn_blocking(chromium).await.unwrap();
    let js = tokio::task::spawn_blocking(node_packages).await.unwrap();
    let redis = RedisServer::start();
    let bus = Bus::connect(&redis.url()).await.unwrap();
    let letter = dead_letter(&redis, &bus).await;
    let dashboard = Dashboard::new(bus.clone())
        .schemas(root().join("../schemas"))
        .token(TOKEN);
    let (url, _task) = serve(dashboard).await;
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");

    let mut node = tokio::process::Command::new("node")
        .arg(js.join("dashboard.mjs"))
        .arg(&url)
        .arg(TOKEN)
        .arg(&browser)
        .arg(&shots)
        .current_dir(&js)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("this test needs `node` (Node.js) on PATH");
    let mut to_node = node.stdin.take().unwrap();
    let mut from_node = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut stderr = node.stderr.take().unwrap();
    // A step of the browser: its next line, or its error output.
    let step = Duration::from_secs(40);
    macro_rules! said {
        ($what:literal) => {
            match tokio::time::timeout(step, from_node.next_line()).await {
                Ok(Ok(Some(line))) if line == $what => {}
                other => {
                    let mut err = String::new();
                    let _ = tokio::time::timeout(
                        Duration::from_secs(5),
                        tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut err),
                    )
                    .await;
                    panic!("the browser did not say `{}` ({other:?}):\n{err}", $what);
                }
            }
        };
    }

    said!("ready");
    let published = bus.publish(&FileUploaded { n: 42 }).await.unwrap();
    let entry = published.entry_id.unwrap();
    to_node
        .write_all(format!("published {entry}\n").as_bytes())
        .await
        .unwrap();
    said!("tailed");
    said!("retried");
    // The dead letter is back in the stream, for the group that gave up.
    assert_eq!(
        bus.dead_letters("contextual").unwrap().len().await.unwrap(),
        0
    );
    let last = bus.last_entries("contextual", 1).await.unwrap().remove(0);
    let dlqgroup = last.fields.iter().find(|(k, _)| k == "dlqgroup");
    assert_eq!(
        dlqgroup.map(|(_, v)| &v[..]),
        Some(&b"indexer"[..]),
        "{letter}"
    );
    to_node.write_all(b"done\n").await.unwrap();
    drop(to_node);
    let status = tokio::time::timeout(step, node.wait())
        .await
        .unwrap()
        .unwrap();
    if !status.success() {
        let mut err = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut err).await;
        panic!("the browser script failed:\n{err}");
    }
    if std::env::var_os("TIDINGS_SCREENSHOTS").is_some_and(|v| v == "overwrite") {
        for name in ["dashboard.png", "dashboard-schemas.png"] {
            std::fs::copy(shots.join(name), root().join("../docs").join(name)).unwrap();
        }
    }
}
