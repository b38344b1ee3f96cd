//! The built `tidings` binary against a private `redis-server`: `streams
//! stats`, `dlq list|retry|purge` and `tail`, their output and their exit
//! status (0 ok, 1 Redis failure, 2 usage).

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tidings::{fatal, handler, Bus, ConsumerOptions, Context, HandlerResult, Published, Worker};
use tidings_testkit::RedisServer;

use support::{json, ok, run, stderr, tidings};

/// `file.uploaded` v2, as the services publish it.
#[tidings::event(stream = "contextual", version = 2)]
#[derive(Debug, Clone)]
pub struct FileUploaded {
    /// File id.
    pub file_id: String,
}

#[handler(group = "doomed", retries = 0)]
async fn doomed(_e: FileUploaded, _ctx: Context) -> HandlerResult {
    Err(fatal("disk full"))
}

async fn bus(server: &RedisServer) -> Bus {
    Bus::builder()
        .source("inspect-test")
        .connect(&server.url())
        .await
        .expect("connect to the test redis-server")
}

async fn publish(bus: &Bus, ids: &[&str]) -> Vec<Published> {
    let mut out = Vec::new();
    for id in ids {
        out.push(
            bus.publish(&FileUploaded {
                file_id: (*id).to_owned(),
            })
            .await
            .unwrap(),
        );
    }
    out
}

/// A group `reader` that read `n` entries as consumer `c1` and acknowledged none.
async fn read_without_ack(server: &RedisServer, n: usize) {
    let mut conn = server.connection().await;
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("tidings:{contextual}")
        .arg("reader")
        .arg("0")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("reader")
        .arg("c1")
        .arg("COUNT")
        .arg(n)
        .arg("STREAMS")
        .arg("tidings:{contextual}")
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
}

async fn doomed_worker(bus: &Bus) -> Worker {
    bus.consumer()
        .options(
            ConsumerOptions::default()
                .block(Duration::from_millis(100))
                .claim_idle(None),
        )
        .handler(doomed)
        .start()
        .await
        .unwrap()
}

async fn wait_dead_letters(bus: &Bus, n: usize) {
    let dlq = bus.dead_letters("contextual").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while dlq.len().await.unwrap() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} dead letters expected"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_show_length_lag_pending_and_dead_letters() {
    let server = RedisServer::start();
    let bus = bus(&server).await;
    let worker = doomed_worker(&bus).await;
    let published = publish(&bus, &["a", "b", "c", "d", "e"]).await;
    wait_dead_letters(&bus, 5).await;
    worker.shutdown().await.unwrap();
    read_without_ack(&server, 2).await;

    let stats = json(
        &server,
        &["streams", "stats", "contextual", "--format", "json"],
    );
    assert_eq!(stats["exists"], true);
    assert_eq!(stats["key"], "tidings:{contextual}");
    assert_eq!(stats["length"], 5);
    assert_eq!(
        stats["last_entry_id"],
        published[4].entry_id.clone().unwrap()
    );
    assert_eq!(stats["dead_letters"], 5);
    let groups = stats["groups"].as_array().unwrap();
    let reader = groups.iter().find(|g| g["name"] == "reader").unwrap();
    assert_eq!(reader["lag"], 3);
    assert_eq!(reader["pending"], 2);
    assert_eq!(reader["consumers"][0]["name"], "c1");
    assert_eq!(reader["consumers"][0]["pending"], 2);
    let gave_up = groups.iter().find(|g| g["name"] == "doomed").unwrap();
    assert_eq!(gave_up["lag"], 0);
    assert_eq!(gave_up["pending"], 0);

    let text = ok(&server, &["streams", "stats", "contextual"]);
    assert!(text.contains("length        5\n"), "{text}");
    assert!(
        text.contains("dead letters  5 (tidings:{contextual}:dlq)"),
        "{text}"
    );
    let reader_row = text
        .lines()
        .find(|l| l.starts_with("reader "))
        .unwrap_or_else(|| panic!("no row for `reader`: {text}"));
    let cells: Vec<&str> = reader_row.split_whitespace().collect();
    // GROUP CONSUMERS PENDING LAG ENTRIES-READ LAST-DELIVERED
    assert_eq!(cells[..5], ["reader", "1", "2", "3", "2"], "{text}");
    assert!(text.contains("CONSUMER"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_of_a_missing_stream_say_it_does_not_exist() {
    let server = RedisServer::start();
    let stats = json(
        &server,
        &["streams", "stats", "nowhere", "--format", "json"],
    );
    assert_eq!(stats["exists"], false);
    assert_eq!(stats["length"], 0);
    let text = ok(&server, &["streams", "stats", "nowhere"]);
    assert!(text.contains("exists        no"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_and_namespace_flags_pick_the_key() {
    let server = RedisServer::start();
    let acme = Bus::builder()
        .namespace("app")
        .connect(&server.url())
        .await
        .unwrap()
        .tenant("acme")
        .unwrap();
    publish(&acme, &["a", "b"]).await;
    let stats = json(
        &server,
        &[
            "streams",
            "stats",
            "contextual",
            "--namespace",
            "app",
            "--tenant",
            "acme",
            "--format",
            "json",
        ],
    );
    assert_eq!(stats["key"], "app:{acme:contextual}");
    assert_eq!(stats["tenant"], "acme");
    assert_eq!(stats["length"], 2);
    let plain = json(
        &server,
        &["streams", "stats", "contextual", "--format", "json"],
    );
    assert_eq!(plain["exists"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_retried_and_purged() {
    let server = RedisServer::start();
    let bus = bus(&server).await;
    let worker = doomed_worker(&bus).await;
    let published = publish(&bus, &["a", "b", "c"]).await;
    wait_dead_letters(&bus, 3).await;
    worker.shutdown().await.unwrap();

    let text = ok(&server, &["dlq", "list", "contextual"]);
    assert_eq!(text.lines().count(), 4, "a header and 3 rows: {text}");
    assert!(text.contains("file.uploaded v2"), "{text}");
    assert!(text.contains("disk full"), "{text}");

    let letters = json(&server, &["dlq", "list", "contextual", "--format", "json"]);
    let letters = letters.as_array().unwrap();
    assert_eq!(letters.len(), 3);
    assert_eq!(letters[0]["group"], "doomed");
    assert_eq!(letters[0]["attempts"], 1);
    let event_ids: Vec<String> = published.iter().map(|p| p.event_id.to_string()).collect();
    assert!(event_ids.contains(&letters[0]["event"]["id"].as_str().unwrap().to_owned()));
    let two = json(
        &server,
        &[
            "dlq",
            "list",
            "contextual",
            "--count",
            "2",
            "--format",
            "json",
        ],
    );
    assert_eq!(two.as_array().unwrap().len(), 2);

    let first = letters[0]["id"].as_str().unwrap();
    let out = ok(&server, &["dlq", "retry", "contextual", first]);
    assert!(
        out.starts_with(&format!("retried {first} as entry ")),
        "{out}"
    );
    assert_eq!(
        bus.dead_letters("contextual").unwrap().len().await.unwrap(),
        2
    );

    let url = server.url();
    let again = tidings(&["dlq", "retry", "contextual", first, "--redis-url", &url]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("is not a dead letter"),
        "{}",
        stderr(&again)
    );

    let out = ok(&server, &["dlq", "retry", "contextual", "--all"]);
    assert!(out.starts_with("retried 2 dead letters"), "{out}");
    assert_eq!(
        bus.dead_letters("contextual").unwrap().len().await.unwrap(),
        0
    );
    let stats = bus.stream_stats("contextual").await.unwrap();
    assert_eq!(stats.length, 6, "3 published and 3 retried");

    let worker = doomed_worker(&bus).await;
    wait_dead_letters(&bus, 3).await;
    worker.shutdown().await.unwrap();
    let out = ok(&server, &["dlq", "purge", "contextual", "--all"]);
    assert_eq!(out, "purged 3 dead letters from tidings:{contextual}:dlq\n");
    assert_eq!(
        bus.dead_letters("contextual").unwrap().len().await.unwrap(),
        0
    );
    let text = ok(&server, &["dlq", "list", "contextual"]);
    assert!(text.starts_with("no dead letters"), "{text}");
}

#[handler(group = "picky", retries = 0)]
async fn picky(_e: FileUploaded, _ctx: Context) -> HandlerResult {
    Err(fatal("not today"))
}

/// Dead letters of `doomed` and `picky`, one per event and group.
async fn letters_of_two_groups(server: &RedisServer, events: &[&str]) -> Vec<Value> {
    let bus = bus(server).await;
    let worker = bus
        .consumer()
        .options(
            ConsumerOptions::default()
                .block(Duration::from_millis(100))
                .claim_idle(None),
        )
        .handler(doomed)
        .handler(picky)
        .start()
        .await
        .unwrap();
    publish(&bus, events).await;
    wait_dead_letters(&bus, 2 * events.len()).await;
    worker.shutdown().await.unwrap();
    let letters = json(server, &["dlq", "list", "contextual", "--format", "json"]);
    letters.as_array().unwrap().clone()
}

fn ids_of<'a>(letters: &'a [Value], group: &str) -> Vec<&'a str> {
    letters
        .iter()
        .filter(|l| l["group"] == group)
        .map(|l| l["id"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_retried_and_purged_by_id_or_by_group() {
    let server = RedisServer::start();
    let letters = letters_of_two_groups(&server, &["a", "b", "c"]).await;
    assert_eq!(letters.len(), 6);
    let (of_doomed, of_picky) = (ids_of(&letters, "doomed"), ids_of(&letters, "picky"));

    let out = ok(
        &server,
        &["dlq", "purge", "contextual", of_doomed[0], of_picky[0]],
    );
    assert_eq!(out, "purged 2 dead letters from tidings:{contextual}:dlq\n");
    let out = ok(
        &server,
        &["dlq", "purge", "contextual", of_doomed[0], of_picky[1]],
    );
    assert_eq!(
        out,
        "purged 1 of the 2 dead letters given from tidings:{contextual}:dlq; the others were not there\n"
    );
    let out = ok(&server, &["dlq", "purge", "contextual", "--group", "picky"]);
    assert_eq!(
        out,
        "purged 1 dead letters of group `picky` from tidings:{contextual}:dlq\n"
    );
    let out = ok(&server, &["dlq", "retry", "contextual", "--group", "picky"]);
    assert_eq!(
        out,
        "retried 0 dead letters of group `picky` into tidings:{contextual}\n"
    );
    let out = ok(
        &server,
        &["dlq", "retry", "contextual", "--group", "doomed"],
    );
    assert_eq!(
        out,
        "retried 2 dead letters of group `doomed` into tidings:{contextual}\n"
    );
    let text = ok(&server, &["dlq", "list", "contextual"]);
    assert!(text.starts_with("no dead letters"), "{text}");

    // The retried entries are for `doomed` only.
    let mut conn = server.connection().await;
    let retried: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
        .arg("tidings:{contextual}")
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(2)
        .query_async(&mut conn)
        .await
        .unwrap();
    for (_, fields) in &retried {
        assert!(
            fields.contains(&("dlqgroup".to_owned(), "doomed".to_owned())),
            "{fields:?}"
        );
    }
}

#[test]
fn dlq_retry_and_purge_usage_names_the_stream_before_the_ids() {
    for command in ["retry", "purge"] {
        let help = tidings(&["dlq", command, "--help"]);
        assert_eq!(help.status.code(), Some(0));
        let help = String::from_utf8_lossy(&help.stdout).into_owned();
        // Nothing chosen: a usage error that shows the same usage.
        let none = tidings(&[
            "dlq",
            command,
            "contextual",
            "--redis-url",
            "redis://127.0.0.1:1",
        ]);
        assert_eq!(none.status.code(), Some(2), "{}", stderr(&none));
        for text in [help, stderr(&none)] {
            let usage: Vec<&str> = text
                .lines()
                .skip_while(|l| !l.starts_with("Usage:"))
                .take_while(|l| !l.is_empty())
                .collect();
            let choices = ["<ID>...", "--group <GROUP>", "--all"];
            assert_eq!(usage.len(), choices.len(), "{text}");
            for (line, choice) in usage.iter().zip(choices) {
                let line = line.trim_start_matches("Usage:").trim();
                assert_eq!(
                    line,
                    format!(
                        "tidings dlq {command} [OPTIONS] --redis-url <REDIS_URL> <STREAM> {choice}"
                    ),
                    "{text}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_retry_as_its_usage_says_works_and_swapped_arguments_are_a_usage_error() {
    let server = RedisServer::start();
    let letters = letters_of_two_groups(&server, &["a", "b"]).await;
    let of_doomed = ids_of(&letters, "doomed");
    let url = server.url();

    // `tidings dlq retry [OPTIONS] --redis-url <REDIS_URL> <STREAM> <ID>...`
    let out = tidings(&[
        "dlq",
        "retry",
        "--redis-url",
        &url,
        "contextual",
        of_doomed[0],
        of_doomed[1],
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(printed.lines().count(), 2, "{printed}");

    // The id first and the stream second, as the old usage line had them.
    let of_picky = ids_of(&letters, "picky");
    for command in ["retry", "purge"] {
        let swapped = tidings(&[
            "dlq",
            command,
            "--redis-url",
            &url,
            of_picky[0],
            "contextual",
        ]);
        assert_eq!(swapped.status.code(), Some(2), "{}", stderr(&swapped));
        let err = stderr(&swapped);
        assert!(
            err.contains("`contextual` is not a dead-letter id")
                && err.contains("the stream's name comes first"),
            "{err}"
        );
        assert!(!err.contains("ERR") && !err.contains("script"), "{err}");
    }
    // A group name that cannot be one is a usage error too, from the runtime.
    for command in ["retry", "purge"] {
        let bad = tidings(&[
            "dlq",
            command,
            "contextual",
            "--group",
            "a:b",
            "--redis-url",
            &url,
        ]);
        assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
        assert!(
            stderr(&bad).contains("invalid group `a:b`"),
            "{}",
            stderr(&bad)
        );
    }
    assert_eq!(
        json(&server, &["dlq", "list", "contextual", "--format", "json"])
            .as_array()
            .unwrap()
            .len(),
        2,
        "only the two retried dead letters left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_prints_the_newest_entries_or_those_since_a_time() {
    let server = RedisServer::start();
    let bus = bus(&server).await;
    let before = publish(&bus, &["old-1", "old-2"]).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let since = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let after = publish(&bus, &["new-1", "new-2", "new-3"]).await;

    let text = ok(&server, &["tail", "contextual", "--since", &since]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for (line, p) in lines.iter().zip(&after) {
        assert!(line.starts_with(p.entry_id.as_deref().unwrap()), "{line}");
        assert!(line.contains("file.uploaded v2"), "{line}");
        assert!(line.contains(&p.event_id.to_string()), "{line}");
    }
    assert!(lines[0].contains(r#"{"file_id":"new-1"}"#), "{text}");

    let text = ok(&server, &["tail", "contextual", "--count", "2"]);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.lines().last().unwrap().contains("new-3"), "{text}");

    let from = before[1].entry_id.clone().unwrap();
    let text = ok(
        &server,
        &[
            "tail",
            "contextual",
            "--from",
            &from,
            "--count",
            "2",
            "--format",
            "json",
        ],
    );
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["entry_id"], from.as_str());
    assert_eq!(rows[0]["data"]["file_id"], "old-2");
    assert_eq!(rows[1]["data"]["file_id"], "new-1");
    assert_eq!(rows[1]["type"], "file.uploaded");
    assert_eq!(rows[1]["dataversion"], 2);

    let stats = bus.stream_stats("contextual").await.unwrap();
    assert!(stats.groups.is_empty(), "tail reads without a group");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_url_comes_from_the_environment_when_not_given() {
    let server = RedisServer::start();
    publish(&bus(&server).await, &["a"]).await;
    let out = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["streams", "stats", "contextual", "--format", "json"])
        .env("REDIS_URL", server.url())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["length"], 1);
}

#[test]
fn unreachable_redis_exits_1_naming_the_url_without_its_password() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://:hunter2@127.0.0.1:{port}");
    let started = std::time::Instant::now();
    for args in [
        &["streams", "stats", "contextual"][..],
        &["dlq", "list", "contextual"],
        &["tail", "contextual"],
    ] {
        let mut all = args.to_vec();
        all.extend(["--redis-url", &url]);
        let out = tidings(&all);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("redis://***@127.0.0.1:{port}")),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        assert!(out.stdout.is_empty());
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn usage_errors_exit_2() {
    let no_url = tidings(&["streams", "stats", "contextual"]);
    assert_eq!(no_url.status.code(), Some(2));
    assert!(
        stderr(&no_url).contains("--redis-url"),
        "{}",
        stderr(&no_url)
    );

    let url = "redis://127.0.0.1:1";
    for args in [
        &[
            "tail",
            "contextual",
            "--since",
            "yesterday",
            "--redis-url",
            url,
        ][..],
        &["tail", "contextual", "--from", "x-1", "--redis-url", url],
        &[
            "tail",
            "contextual",
            "--from",
            "1-0",
            "--since",
            "2024-01-01T00:00:00Z",
            "--redis-url",
            url,
        ],
        &["dlq", "retry", "contextual", "--redis-url", url],
        &["dlq", "purge", "contextual", "--redis-url", url],
        &[
            "dlq",
            "retry",
            "contextual",
            "1-0",
            "--all",
            "--redis-url",
            url,
        ],
        &[
            "streams",
            "stats",
            "contextual",
            "--format",
            "yaml",
            "--redis-url",
            url,
        ],
    ] {
        let out = tidings(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    // Names are checked before connecting: nothing listens on port 1.
    let bad_tenant = tidings(&[
        "streams",
        "stats",
        "contextual",
        "--tenant",
        "a:b",
        "--redis-url",
        url,
    ]);
    assert_eq!(bad_tenant.status.code(), Some(2));
    assert!(
        stderr(&bad_tenant).contains("invalid tenant `a:b`"),
        "{}",
        stderr(&bad_tenant)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_name_that_cannot_be_a_key_exits_2_not_as_a_redis_failure() {
    let server = RedisServer::start();
    for args in [
        &["streams", "stats", "con:textual"][..],
        &["tail", "con:textual"],
        &["dlq", "list", "con:textual"],
    ] {
        let mut all = args.to_vec();
        let url = server.url();
        all.extend(["--redis-url", &url]);
        let out = tidings(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("invalid stream `con:textual`"), "{err}");
        assert!(!err.contains("on Redis at"), "not Redis's fault: {err}");
    }
}

#[test]
fn commands_that_delete_ask_first_and_refuse_without_a_terminal() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = RedisServer::start();
    let url = server.url();
    let bus = rt.block_on(bus(&server));
    rt.block_on(publish(&bus, &["a", "b"]));
    let _ = ok(&server, &["groups", "create", "contextual", "keep"]);
    for args in [
        vec!["dlq", "purge", "contextual", "--all"],
        vec!["groups", "delete", "contextual", "keep"],
        vec!["streams", "trim", "contextual", "--max-len", "0", "--exact"],
    ] {
        let mut with_url = args.clone();
        with_url.extend(["--redis-url", &url]);
        let out = support::asks(&with_url);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    }
    // Nothing was deleted, and a dry run needs no answer.
    let stats = rt.block_on(bus.stream_stats("contextual")).unwrap();
    assert_eq!(stats.length, 2);
    assert!(stats.group("keep").is_some());
    let dry = support::asks(&[
        "streams",
        "trim",
        "contextual",
        "--max-len",
        "0",
        "--dry-run",
        "--json",
        "--redis-url",
        &url,
    ]);
    assert_eq!(dry.status.code(), Some(0), "{}", stderr(&dry));
    let dry: Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(dry["dry_run"], true);
}

#[test]
fn every_command_speaks_json_with_json_and_completions_are_printed() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = RedisServer::start();
    let bus = rt.block_on(bus(&server));
    rt.block_on(publish(&bus, &["a"]));
    for args in [
        vec!["streams", "stats", "contextual", "--json"],
        vec!["groups", "list", "contextual", "--json"],
        vec!["dlq", "list", "contextual", "--json"],
        vec!["dlq", "retry", "contextual", "--all", "--json"],
        vec!["dlq", "purge", "contextual", "--all", "--json"],
        vec!["tail", "contextual", "--json"],
    ] {
        let out = run(&server, &args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            serde_json::from_str::<Value>(line)
                .or_else(|_| serde_json::from_str::<Value>(&text))
                .unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {text}"));
        }
    }
    // `--format` stays, and the two do not mix.
    let both = run(
        &server,
        &[
            "streams",
            "stats",
            "contextual",
            "--json",
            "--format",
            "text",
        ],
    );
    assert_eq!(both.status.code(), Some(2), "{}", stderr(&both));
    for shell in ["bash", "zsh", "fish"] {
        let out = tidings(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("tidings") && script.contains("purge"),
            "{shell}: {script}"
        );
    }
}

#[test]
fn streams_list_shows_every_stream_of_the_scope_in_one_table() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = RedisServer::start();
    let bus = rt.block_on(bus(&server));
    rt.block_on(publish(&bus, &["a", "b", "c"]));
    let acme = bus.tenant("acme").unwrap();
    rt.block_on(acme.publish(&FileUploaded {
        file_id: "t".into(),
    }))
    .unwrap();
    rt.block_on(read_without_ack(&server, 2));
    let text = ok(&server, &["streams", "list"]);
    let row = text
        .lines()
        .find(|l| l.starts_with("contextual"))
        .unwrap_or_else(|| panic!("{text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells, ["contextual", "3", "1", "1", "2", "0"], "{text}");
    // A tenant's stream is not the root's, and a dead-letter stream no stream.
    assert_eq!(text.lines().count(), 2, "{text}");
    let all = json(&server, &["streams", "list", "--json"]);
    assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
    assert_eq!(all[0]["length"], 3);
    let tenant = json(&server, &["streams", "list", "--tenant", "acme", "--json"]);
    assert_eq!(tenant[0]["length"], 1, "{tenant}");
}

/// `tidings tail --follow` running against `server` with `extra` arguments:
/// its stdout lines as they come, and the process to stop.
fn follow(
    server: &RedisServer,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args([
            "tail",
            "contextual",
            "--follow",
            "--redis-url",
            &server.url(),
        ])
        .args(extra)
        .envs(env.iter().copied())
        .env_remove("NO_COLOR")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

fn next_line(rx: &std::sync::mpsc::Receiver<String>) -> String {
    rx.recv_timeout(Duration::from_secs(10))
        .expect("tail --follow printed the entry within 10 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_follow_prints_entries_as_they_come_checked_against_the_schemas() {
    let server = RedisServer::start();
    let bus = bus(&server).await;
    publish(&bus, &["old"]).await;
    let schemas = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas");
    let (mut child, rx) = follow(&server, &["--count", "1", "--schemas", schemas], &[]);
    let first = next_line(&rx);
    assert!(first.contains(r#"{"file_id":"old"}"#), "{first}");
    // schemas/ has file.uploaded v2 with `filename` required: this one is not valid.
    assert!(first.contains("INVALID: /: "), "{first}");
    assert!(first.contains("filename"), "{first}");
    assert!(!first.contains('\u{1b}'), "colour when piped: {first:?}");

    publish(&bus, &["new"]).await;
    let line = next_line(&rx);
    assert!(line.contains(r#"{"file_id":"new"}"#), "{line}");

    // A valid entry, and one of a version schemas/ does not have, written
    // as another language writes them.
    let mut conn = server.connection().await;
    for (version, data) in [
        ("2", r#"{"file_id":"f","filename":"a.pdf"}"#),
        ("9", r#"{"file_id":"g"}"#),
    ] {
        let _: String = redis::cmd("XADD")
            .arg("tidings:{contextual}")
            .arg("*")
            .arg("specversion")
            .arg("1.0")
            .arg("id")
            .arg(ulid::Ulid::new().to_string())
            .arg("source")
            .arg("python")
            .arg("type")
            .arg("file.uploaded")
            .arg("dataversion")
            .arg(version)
            .arg("data")
            .arg(data)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let valid = next_line(&rx);
    assert!(
        valid.contains("a.pdf") && valid.ends_with("  ok"),
        "{valid}"
    );
    let unknown = next_line(&rx);
    assert!(unknown.ends_with("  no schema"), "{unknown}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_follow_from_a_time_prints_everything_after_it_in_json_or_in_colour() {
    let server = RedisServer::start();
    let bus = bus(&server).await;
    let before = publish(&bus, &["a", "b", "c"]).await;
    let from = before[1].entry_id.clone().unwrap();
    let (mut child, rx) = follow(&server, &["--from", &from, "--json"], &[]);
    for expected in ["b", "c"] {
        let row: Value = serde_json::from_str(&next_line(&rx)).unwrap();
        assert_eq!(row["data"]["file_id"], expected);
        assert!(row.get("schema").is_none(), "checked without --schemas");
    }
    publish(&bus, &["d"]).await;
    let row: Value = serde_json::from_str(&next_line(&rx)).unwrap();
    assert_eq!(row["data"]["file_id"], "d");
    child.kill().unwrap();
    child.wait().unwrap();

    // Colour where a terminal would get it (forced, as tests have none).
    let (mut child, rx) = follow(&server, &["--count", "1"], &[("CLICOLOR_FORCE", "1")]);
    let line = next_line(&rx);
    assert!(line.contains("\u{1b}["), "no colour: {line:?}");
    assert!(line.contains("file.uploaded v2"), "{line:?}");
    child.kill().unwrap();
    child.wait().unwrap();
}
