//! The built `tidings` binary takes the URLs the library takes: `rediss://`
//! with the TLS files in the query (and refuses a server another CA
//! signed), `redis+sentinel://` and `redis+cluster://`; and it needs no
//! more than the ACL rule of the library.

mod support;

use tidings::Bus;
use tidings_testkit::{ClusterSet, RedisOptions, RedisServer, SentinelSet, TestCa};

use support::{json, stderr, tidings};

/// `file.uploaded` v2, as the services publish it.
#[tidings::event(stream = "contextual", version = 2)]
#[derive(Debug, Clone)]
pub struct FileUploaded {
    /// File id.
    pub file_id: String,
}

async fn publish(url: &str, n: usize) {
    let bus = Bus::connect(url).await.expect("the bus connects");
    for i in 0..n {
        bus.publish(&FileUploaded {
            file_id: format!("f{i}"),
        })
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn the_command_line_speaks_tls_with_the_files_of_the_url() {
    let ca = TestCa::generate();
    let server = RedisServer::with_options(RedisOptions::default().tls(&ca));
    publish(&server.url(), 2).await;
    let stats = json(
        &server,
        &["streams", "stats", "contextual", "--format", "json"],
    );
    assert_eq!(stats["length"], 2);

    let other = TestCa::generate();
    let wrong = format!(
        "rediss://127.0.0.1:{}/?tls_ca={}&tls_cert={}&tls_key={}",
        server.port(),
        other.ca_cert().display(),
        ca.client_cert().display(),
        ca.client_key().display()
    );
    let out = tidings(&["streams", "stats", "contextual", "--redis-url", &wrong]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("invalid peer certificate"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn the_command_line_finds_the_master_through_the_sentinels() {
    let set = SentinelSet::start();
    publish(&set.url(), 3).await;
    let url = set.url();
    let out = tidings(&[
        "streams",
        "stats",
        "contextual",
        "--format",
        "json",
        "--redis-url",
        &url,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["length"], 3);
}

#[tokio::test]
async fn the_command_line_runs_as_a_user_limited_to_the_namespace() {
    let server = RedisServer::start();
    let mut admin = server.connection().await;
    let mut setuser = redis::cmd("ACL");
    setuser
        .arg("SETUSER")
        .arg("ops")
        .arg("on")
        .arg(">s3cret-pw");
    for word in tidings::streams::acl_rule("tidings").split_whitespace() {
        setuser.arg(word);
    }
    let _: () = setuser.query_async(&mut admin).await.unwrap();
    let url = format!("redis://ops:s3cret-pw@127.0.0.1:{}", server.port());
    publish(&url, 3).await;

    let commands: &[&[&str]] = &[
        &["streams", "list"],
        &["streams", "stats", "contextual"],
        &["groups", "create", "contextual", "audit", "--from", "start"],
        &["groups", "list", "contextual"],
        &["pending", "contextual", "audit"],
        &["dlq", "list", "contextual"],
        &["dlq", "purge", "contextual", "--all", "--yes"],
        &["tail", "contextual", "--from", "0", "--count", "3"],
        &["groups", "delete", "contextual", "audit", "--yes"],
        &[
            "streams",
            "trim",
            "contextual",
            "--max-len",
            "1",
            "--exact",
            "--yes",
        ],
    ];
    for args in commands {
        let mut all = args.to_vec();
        all.extend(["--redis-url", &url]);
        let out = support::asks(&all);
        assert_eq!(
            out.status.code(),
            Some(0),
            "tidings {args:?} as the limited user: {}",
            stderr(&out)
        );
        assert!(!stderr(&out).contains("s3cret-pw"));
    }
}

#[tokio::test]
async fn the_command_line_reads_a_cluster() {
    let cluster = ClusterSet::start();
    let url = cluster.url();
    publish(&url, 4).await;
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--redis-url", &url]);
        let out = tidings(&all);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        out
    };
    let out = run(&["streams", "stats", "contextual", "--format", "json"]);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["length"], 4);
    let out = run(&["streams", "list"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("contextual"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = run(&["dlq", "list", "contextual", "--format", "json"]);
    let letters: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(letters.as_array().map(Vec::len), Some(0), "{letters}");
}
