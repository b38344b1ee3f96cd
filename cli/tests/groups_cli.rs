//! The built `tidings` binary against a private `redis-server`: `groups
//! list|create|delete|set-position|forget-idle` and `pending`, checked
//! against what Redis itself says (`XREADGROUP`, `XINFO`) on a connection
//! of the test's own.

mod support;

use std::time::Duration;

use serde_json::Value;
use tidings::{handler, Bus, ConsumerOptions, Context, HandlerResult, Published};
use tidings_testkit::RedisServer;

use support::{json, ok, run, stderr, stdout, tidings};

const KEY: &str = "tidings:{contextual}";

/// `file.uploaded` v2, as the services publish it.
#[tidings::event(stream = "contextual", version = 2)]
#[derive(Debug, Clone)]
pub struct FileUploaded {
    /// File id.
    pub file_id: String,
}

#[handler(group = "indexer")]
async fn index(_e: FileUploaded, _ctx: Context) -> HandlerResult {
    Ok(())
}

async fn bus(server: &RedisServer) -> Bus {
    Bus::builder()
        .source("groups-test")
        .connect(&server.url())
        .await
        .expect("connect to the test redis-server")
}

async fn publish(bus: &Bus, ids: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for id in ids {
        let p: Published = bus
            .publish(&FileUploaded {
                file_id: (*id).to_owned(),
            })
            .await
            .unwrap();
        out.push(p.entry_id.unwrap());
    }
    out
}

/// What a raw `XREADGROUP … >` of `group` as `consumer` delivers: the
/// entry ids, oldest first. Nothing is acknowledged.
async fn read_group(server: &RedisServer, group: &str, consumer: &str) -> Vec<String> {
    let mut conn = server.connection().await;
    let reply: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(group)
        .arg(consumer)
        .arg("COUNT")
        .arg(1000)
        .arg("STREAMS")
        .arg(KEY)
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    reply
        .keys
        .into_iter()
        .flat_map(|k| k.ids)
        .map(|e| e.id)
        .collect()
}

async fn xgroup_create(server: &RedisServer, group: &str, at: &str) {
    let mut conn = server.connection().await;
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(KEY)
        .arg(group)
        .arg(at)
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// The group of `groups list --format json` named `name`.
fn listed(server: &RedisServer, name: &str) -> Option<Value> {
    let groups = json(
        server,
        &["groups", "list", "contextual", "--format", "json"],
    );
    groups
        .as_array()
        .unwrap_or_else(|| panic!("an array: {groups}"))
        .iter()
        .find(|g| g["name"] == name)
        .cloned()
}

/// The cells of the text row of `groups list` for `name`.
fn row(text: &str, name: &str) -> Vec<String> {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row for `{name}`: {text}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_shows_a_group_of_a_worker_and_one_created_by_the_cli() {
    let server = RedisServer::start();
    let bus = bus(&server).await;
    let worker = bus
        .consumer()
        .options(ConsumerOptions::default().block(Duration::from_millis(100)))
        .handler(index)
        .start()
        .await
        .unwrap();
    let ids = publish(&bus, &["a", "b", "c"]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stats = bus.stream_stats("contextual").await.unwrap();
        let g = stats.group("indexer").unwrap();
        if g.lag == Some(0) && g.pending == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "indexer read: {g:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let out = ok(
        &server,
        &["groups", "create", "contextual", "audit", "--from", "start"],
    );
    assert_eq!(
        out,
        format!("created group `audit` on {KEY} at the start: last delivered 0-0, lag 3\n")
    );
    let text = ok(&server, &["groups", "list", "contextual"]);
    assert!(
        text.starts_with("GROUP    CONSUMERS  PENDING  LAG  LAST DELIVERED\n"),
        "{text}"
    );
    // GROUP CONSUMERS PENDING LAG LAST-DELIVERED
    assert_eq!(row(&text, "audit")[1..], ["0", "0", "3", "0-0"], "{text}");
    assert_eq!(row(&text, "indexer")[2..], ["0", "0", &ids[2]], "{text}");
    worker.shutdown().await.unwrap();

    let indexer = listed(&server, "indexer").unwrap();
    assert_eq!(indexer["lag"], 0);
    assert_eq!(indexer["pending"], 0);
    assert_eq!(indexer["last_delivered_id"], ids[2].as_str());
    assert!(indexer["consumers"].is_array(), "{indexer}");
    let audit = listed(&server, "audit").unwrap();
    assert_eq!(audit["lag"], 3);
    assert_eq!(audit["consumers"], Value::Array(vec![]));
    assert_eq!(read_group(&server, "audit", "c1").await, ids);

    // Created again: left where it is, and said so.
    let out = ok(
        &server,
        &["groups", "create", "contextual", "audit", "--from", "start"],
    );
    assert!(out.contains("already exists"), "{out}");
    assert_eq!(
        listed(&server, "audit").unwrap()["last_delivered_id"],
        ids[2].as_str()
    );

    // The default is the end, and JSON says what was done.
    let late = json(
        &server,
        &["groups", "create", "contextual", "late", "--format", "json"],
    );
    assert_eq!(late["created"], true);
    assert_eq!(late["key"], KEY);
    assert_eq!(late["last_delivered_id"], ids[2].as_str());
    assert_eq!(late["lag"], 0);
    let again = json(
        &server,
        &["groups", "create", "contextual", "late", "--format", "json"],
    );
    assert_eq!(again["created"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_of_a_stream_without_groups_says_so() {
    let server = RedisServer::start();
    let text = ok(&server, &["groups", "list", "contextual"]);
    assert_eq!(
        text,
        format!("no consumer group on {KEY} (the stream does not exist)\n")
    );
    let groups = json(
        &server,
        &["groups", "list", "contextual", "--format", "json"],
    );
    assert_eq!(groups, Value::Array(vec![]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_position_to_start_makes_the_group_read_everything_again() {
    let server = RedisServer::start();
    let bus = bus(&server).await;
    let ids = publish(&bus, &["a", "b", "c", "d"]).await;
    xgroup_create(&server, "indexer", "$").await;
    assert_eq!(listed(&server, "indexer").unwrap()["lag"], 0);

    let out = ok(
        &server,
        &[
            "groups",
            "set-position",
            "contextual",
            "indexer",
            "--to",
            "start",
        ],
    );
    assert_eq!(
        out,
        format!(
            "moved group `indexer` on {KEY} to the start: last delivered 0-0 (was {}), lag 4\n",
            ids[3]
        )
    );
    let text = ok(&server, &["groups", "list", "contextual"]);
    assert_eq!(row(&text, "indexer")[3..], ["4", "0-0"], "{text}");
    assert_eq!(read_group(&server, "indexer", "c1").await, ids);

    // After an entry: the ones after it, again.
    let moved = json(
        &server,
        &[
            "groups",
            "set-position",
            "contextual",
            "indexer",
            "--to",
            &ids[1],
            "--format",
            "json",
        ],
    );
    assert_eq!(moved["from"], ids[3].as_str());
    assert_eq!(moved["to"], ids[1].as_str());
    assert_eq!(moved["pending"], 4, "what was delivered stays pending");
    assert_eq!(read_group(&server, "indexer", "c1").await, ids[2..]);

    // The end: nothing left to read.
    ok(
        &server,
        &[
            "groups",
            "set-position",
            "contextual",
            "indexer",
            "--to",
            "end",
        ],
    );
    assert_eq!(listed(&server, "indexer").unwrap()["lag"], 0);
    assert!(read_group(&server, "indexer", "c1").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_position_to_a_time_or_an_age_replays_what_was_published_since() {
    let server = RedisServer::start();
    let bus = bus(&server).await;
    let old = publish(&bus, &["old-1", "old-2"]).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    // To the millisecond, as entry ids and the command's message have it.
    let now = time::OffsetDateTime::now_utc();
    let since = now
        .replace_nanosecond(u32::from(now.millisecond()) * 1_000_000)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let new = publish(&bus, &["new-1", "new-2", "new-3"]).await;
    xgroup_create(&server, "indexer", "$").await;

    let out = ok(
        &server,
        &[
            "groups",
            "set-position",
            "contextual",
            "indexer",
            "--to",
            &since,
        ],
    );
    assert!(out.contains(&format!("to {since}")), "{out}");
    assert_eq!(read_group(&server, "indexer", "c1").await, new);

    // Everything here was published less than an hour ago.
    ok(
        &server,
        &[
            "groups",
            "set-position",
            "contextual",
            "indexer",
            "--to",
            "1h",
        ],
    );
    let all: Vec<String> = old.iter().chain(&new).cloned().collect();
    assert_eq!(read_group(&server, "indexer", "c2").await, all);

    // And a group can be created at a time, too.
    ok(
        &server,
        &["groups", "create", "contextual", "since", "--from", &since],
    );
    assert_eq!(read_group(&server, "since", "c1").await, new);
}

/// Three entries in group `reader`: the first delivered to `c1` then
/// claimed by `c2` (two deliveries), the second delivered to `c1` (one),
/// the third not delivered.
async fn pending_three(server: &RedisServer) -> Vec<String> {
    let bus = bus(server).await;
    let ids = publish(&bus, &["a", "b", "c"]).await;
    xgroup_create(server, "reader", "0").await;
    let mut conn = server.connection().await;
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("reader")
        .arg("c1")
        .arg("COUNT")
        .arg(2)
        .arg("STREAMS")
        .arg(KEY)
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(KEY)
        .arg("reader")
        .arg("c2")
        .arg(0)
        .arg(&ids[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_lists_entries_delivered_and_not_acknowledged() {
    let server = RedisServer::start();
    let ids = pending_three(&server).await;

    let text = ok(&server, &["pending", "contextual", "reader"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "a header and 2 rows: {text}");
    assert!(
        lines[0]
            .split_whitespace()
            .eq(["ENTRY", "CONSUMER", "IDLE", "DELIVERIES"]),
        "{text}"
    );
    let cells = |l: &str| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    let (first, second) = (cells(lines[1]), cells(lines[2]));
    assert_eq!(
        (&first[0], &first[1], &first[3]),
        (&ids[0], &"c2".into(), &"2".into()),
        "{text}"
    );
    assert_eq!(
        (&second[0], &second[1], &second[3]),
        (&ids[1], &"c1".into(), &"1".into()),
        "{text}"
    );
    assert!(first[2].ends_with('s'), "an idle time: {text}");

    let entries = json(
        &server,
        &["pending", "contextual", "reader", "--format", "json"],
    );
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["id"], ids[0].as_str());
    assert_eq!(entries[0]["consumer"], "c2");
    assert_eq!(entries[0]["deliveries"], 2);
    assert!(entries[0]["idle_ms"].is_u64(), "{}", entries[0]);
    assert_eq!(entries[1]["id"], ids[1].as_str());
    assert_eq!(entries[1]["consumer"], "c1");
    assert_eq!(entries[1]["deliveries"], 1);

    let one = json(
        &server,
        &[
            "pending",
            "contextual",
            "reader",
            "--count",
            "1",
            "--format",
            "json",
        ],
    );
    assert_eq!(one.as_array().unwrap().len(), 1);
    assert_eq!(one[0]["id"], ids[0].as_str());

    // Acknowledged: no longer pending.
    let mut conn = server.connection().await;
    let _: i64 = redis::cmd("XACK")
        .arg(KEY)
        .arg("reader")
        .arg(&ids[0])
        .arg(&ids[1])
        .query_async(&mut conn)
        .await
        .unwrap();
    let text = ok(&server, &["pending", "contextual", "reader"]);
    assert_eq!(
        text,
        format!("no pending entries in group `reader` on {KEY}\n")
    );
    let entries = json(
        &server,
        &["pending", "contextual", "reader", "--format", "json"],
    );
    assert_eq!(entries, Value::Array(vec![]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_group_exits_1_naming_it() {
    let server = RedisServer::start();
    publish(&bus(&server).await, &["a"]).await;
    for args in [
        &["pending", "contextual", "nope"][..],
        &["pending", "nowhere", "nope"],
        &[
            "groups",
            "set-position",
            "contextual",
            "nope",
            "--to",
            "start",
        ],
        &[
            "groups",
            "forget-idle",
            "contextual",
            "nope",
            "--idle",
            "1m",
        ],
        &["groups", "delete", "contextual", "nope"],
    ] {
        let out = run(&server, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.starts_with("error: no group `nope` on tidings:{"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("NOGROUP"), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let groups = json(
        &server,
        &["groups", "list", "contextual", "--format", "json"],
    );
    assert_eq!(
        groups,
        Value::Array(vec![]),
        "nothing was created on the way"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_the_group_and_says_what_went_with_it() {
    let server = RedisServer::start();
    pending_three(&server).await;

    let out = ok(&server, &["groups", "delete", "contextual", "reader"]);
    assert_eq!(
        out,
        format!("deleted group `reader` from {KEY} with its 2 consumers and 2 pending entries\n")
    );
    assert!(listed(&server, "reader").is_none());
    let stats = bus(&server).await.stream_stats("contextual").await.unwrap();
    assert_eq!(stats.length, 3, "the entries stay");

    let again = run(&server, &["groups", "delete", "contextual", "reader"]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        stderr(&again),
        format!("error: no group `reader` on {KEY}: nothing deleted\n")
    );

    ok(&server, &["groups", "create", "contextual", "reader"]);
    let deleted = json(
        &server,
        &[
            "groups",
            "delete",
            "contextual",
            "reader",
            "--format",
            "json",
        ],
    );
    assert_eq!(deleted["deleted"], true);
    assert_eq!(deleted["consumers"], 0);
    assert_eq!(deleted["pending"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_idle_removes_idle_consumers_with_nothing_pending() {
    let server = RedisServer::start();
    pending_three(&server).await;
    let mut conn = server.connection().await;
    let _: i64 = redis::cmd("XGROUP")
        .arg("CREATECONSUMER")
        .arg(KEY)
        .arg("reader")
        .arg("gone")
        .query_async(&mut conn)
        .await
        .unwrap();

    let out = ok(
        &server,
        &[
            "groups",
            "forget-idle",
            "contextual",
            "reader",
            "--idle",
            "1d",
        ],
    );
    assert!(out.starts_with("no consumer of group `reader`"), "{out}");

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let removed = json(
        &server,
        &[
            "groups",
            "forget-idle",
            "contextual",
            "reader",
            "--idle",
            "1s",
            "--format",
            "json",
        ],
    );
    // `c1` and `c2` hold pending entries: they stay, to be claimed.
    assert_eq!(removed["removed"], serde_json::json!(["gone"]));
    let consumers: Vec<String> = listed(&server, "reader").unwrap()["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(consumers, ["c1", "c2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_and_namespace_flags_pick_the_key() {
    let server = RedisServer::start();
    let scoped = ["--namespace", "app", "--tenant", "acme"];
    let with = |args: &[&'static str]| -> Vec<&'static str> {
        args.iter().chain(&scoped).copied().collect()
    };
    let out = ok(
        &server,
        &with(&["groups", "create", "contextual", "audit", "--from", "start"]),
    );
    assert!(out.contains("on app:{acme:contextual}"), "{out}");
    let mut conn = server.connection().await;
    let groups: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg("app:{acme:contextual}")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(groups.len(), 1, "the group is on the tenant's key");

    let list = json(
        &server,
        &with(&["groups", "list", "contextual", "--format", "json"]),
    );
    assert_eq!(list[0]["name"], "audit");
    let plain = json(
        &server,
        &["groups", "list", "contextual", "--format", "json"],
    );
    assert_eq!(plain, Value::Array(vec![]));
    let pending = ok(&server, &with(&["pending", "contextual", "audit"]));
    assert!(pending.contains("app:{acme:contextual}"), "{pending}");
}

#[test]
fn usage_errors_exit_2_and_say_what_is_accepted() {
    // Nothing listens on port 1: every one of these is refused before
    // connecting, or it would exit 1.
    let url = "redis://127.0.0.1:1";
    let set = |to: &str| {
        tidings(&[
            "groups",
            "set-position",
            "contextual",
            "indexer",
            "--to",
            to,
            "--redis-url",
            url,
        ])
    };
    for bad in ["yesterday", "2026-12-06", "1-x", "2h30m", "START", "12345"] {
        let out = set(bad);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        let err = stderr(&out);
        for form in ["`start`", "`end`", "entry id", "RFC 3339", "`90m`"] {
            assert!(err.contains(form), "{bad}: {err}");
        }
    }
    let future = set("2999-01-01T00:00:00Z");
    assert_eq!(future.status.code(), Some(2));
    assert!(
        stderr(&future).contains("in the future"),
        "{}",
        stderr(&future)
    );

    let create = tidings(&[
        "groups",
        "create",
        "contextual",
        "indexer",
        "--from",
        "tomorrow",
        "--redis-url",
        url,
    ]);
    assert_eq!(create.status.code(), Some(2), "{}", stderr(&create));
    assert!(stderr(&create).contains("RFC 3339"), "{}", stderr(&create));

    for args in [
        &[
            "groups",
            "set-position",
            "contextual",
            "a:b",
            "--to",
            "start",
        ][..],
        &["groups", "create", "contextual", "a:b"],
        &["groups", "delete", "contextual", "a:b"],
        &["groups", "forget-idle", "contextual", "a:b", "--idle", "1h"],
        &["pending", "contextual", "a:b"],
    ] {
        let mut all = args.to_vec();
        all.extend(["--redis-url", url]);
        let out = tidings(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("invalid group `a:b`"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    for args in [
        &["groups", "list", "con{text}ual"][..],
        &["pending", "con:textual", "reader"],
    ] {
        let mut all = args.to_vec();
        all.extend(["--redis-url", url]);
        let out = tidings(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("invalid stream"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    for args in [
        &["groups", "set-position", "contextual", "indexer"][..],
        &[
            "groups",
            "forget-idle",
            "contextual",
            "indexer",
            "--idle",
            "soon",
        ],
        &["pending", "contextual", "indexer", "--count", "0"],
        &["groups", "list", "contextual", "--format", "yaml"],
    ] {
        let mut all = args.to_vec();
        all.extend(["--redis-url", url]);
        let out = tidings(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}: {}", stdout(&out));
    }
}

#[test]
fn unreachable_redis_exits_1() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    for args in [
        &["groups", "list", "contextual"][..],
        &[
            "groups",
            "set-position",
            "contextual",
            "indexer",
            "--to",
            "2h",
        ],
        &["pending", "contextual", "indexer"],
    ] {
        let mut all = args.to_vec();
        all.extend(["--redis-url", &url]);
        let out = tidings(&all);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("cannot reach Redis"),
            "{}",
            stderr(&out)
        );
    }
}

#[tokio::test]
async fn streams_trim_keeps_what_a_group_has_not_read() {
    let server = RedisServer::start();
    let bus = bus(&server).await;
    publish(&bus, &["a", "b", "c", "d"]).await;
    xgroup_create(&server, "lagging", "0").await;

    let dry = json(
        &server,
        &[
            "streams",
            "trim",
            "contextual",
            "--max-len",
            "1",
            "--exact",
            "--dry-run",
            "--format",
            "json",
        ],
    );
    assert_eq!(dry["trimmed"], 0, "{dry}");
    assert_eq!(dry["held_back_by"], serde_json::json!(["lagging"]));
    let text = ok(
        &server,
        &["streams", "trim", "contextual", "--max-len", "1", "--exact"],
    );
    assert!(text.contains("held back by group(s) lagging"), "{text}");
    assert_eq!(bus.stream_stats("contextual").await.unwrap().length, 4);

    ok(&server, &["groups", "delete", "contextual", "lagging"]);
    let text = ok(
        &server,
        &["streams", "trim", "contextual", "--max-len", "1", "--exact"],
    );
    assert!(
        text.starts_with("trimmed 3 entries of contextual"),
        "{text}"
    );
    assert_eq!(bus.stream_stats("contextual").await.unwrap().length, 1);

    let none = tidings(&[
        "streams",
        "trim",
        "contextual",
        "--redis-url",
        "redis://127.0.0.1:1",
    ]);
    assert_eq!(none.status.code(), Some(2), "{}", stderr(&none));
    assert!(stderr(&none).contains("--max-age"), "{}", stderr(&none));
}
