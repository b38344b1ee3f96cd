//! Deadlines a user can count on: connecting to a server that is not there,
//! refuses the credentials or does not answer fails within the connect
//! timeout, naming the address and the user.

use std::time::{Duration, Instant};

use tidings::{Bus, Error, TransportError};
use tidings_testkit::RedisServer;

const LIMIT: Duration = Duration::from_millis(500);

async fn connect(url: &str) -> (Result<Bus, Error>, Duration) {
    let started = Instant::now();
    let bus = Bus::builder().connect_timeout(LIMIT).connect(url).await;
    (bus, started.elapsed())
}

fn connect_error(bus: Result<Bus, Error>) -> (String, Option<String>, String) {
    match bus {
        Err(Error::Transport(TransportError::Connect {
            address,
            user,
            source,
        })) => (address, user, source.to_string()),
        other => panic!("expected a connect error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_closed_port_fails_at_once_naming_the_address() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (bus, took) = connect(&format!("redis://127.0.0.1:{port}")).await;
    let (address, user, _) = connect_error(bus);
    assert_eq!(address, format!("127.0.0.1:{port}"));
    assert_eq!(user, None);
    assert!(took < LIMIT * 3, "took {took:?}");
}

#[tokio::test]
async fn a_server_that_never_answers_fails_within_the_timeout() {
    // The kernel completes the handshake from the backlog; nothing answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (bus, took) = connect(&format!("redis://127.0.0.1:{port}")).await;
    let (address, _, reason) = connect_error(bus);
    assert_eq!(address, format!("127.0.0.1:{port}"));
    assert!(
        took >= LIMIT / 2 && took < LIMIT * 3,
        "took {took:?}: {reason}"
    );
    drop(listener);
}

#[tokio::test]
async fn a_wrong_password_fails_at_once_naming_the_user() {
    let server = RedisServer::start();
    let mut admin = server.connection().await;
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "reader", "on", ">right", "~*", "&*", "+@all"])
        .query_async(&mut admin)
        .await
        .unwrap();
    let url = format!("redis://reader:s3cret-pw@127.0.0.1:{}", server.port());
    let (bus, took) = connect(&url).await;
    let (address, user, reason) = connect_error(bus);
    assert_eq!(address, format!("127.0.0.1:{}", server.port()));
    assert_eq!(user.as_deref(), Some("reader"));
    assert!(
        !reason.contains("s3cret-pw"),
        "the password is shown: {reason}"
    );
    assert!(took < LIMIT * 3, "took {took:?}");
    // The message names both, never the password.
    let shown = Error::from(TransportError::Connect {
        address,
        user,
        source: redis::RedisError::from((redis::ErrorKind::AuthenticationFailed, "WRONGPASS")),
    })
    .to_string();
    assert!(shown.contains("as user `reader`"), "{shown}");
}
