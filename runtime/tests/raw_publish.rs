//! `Bus::publish_raw`: events stored before they are published keep the id
//! and time they were given, on Redis and in memory, and one that can never
//! be published fails the call before anything is sent.

use std::sync::{Arc, Mutex};

use tidings::{
    event, handler, Bus, Context, Envelope, Error, HandlerResult, Meta, RawEvent, State, Ulid,
};
use tidings_testkit::RedisServer;

/// The event the tests publish raw and read back typed.
#[event(stream = "files", version = 2)]
#[derive(Debug)]
pub struct FileStored {
    /// The file.
    pub file_id: String,
}

type Seen = Arc<Mutex<Vec<Envelope>>>;

#[handler(group = "raw-tests")]
async fn collect(_e: FileStored, ctx: Context, State(seen): State<Seen>) -> HandlerResult {
    if let (Some(env), Ok(mut seen)) = (ctx.envelope(), seen.lock()) {
        seen.push(env.clone());
    }
    Ok(())
}

/// Every envelope in the stream `files`, oldest first.
async fn stream_of(bus: &Bus) -> Vec<Envelope> {
    let seen = Seen::default();
    bus.replay("files")
        .expect("stream name")
        .state(seen.clone())
        .handler(collect)
        .run()
        .await
        .expect("replay");
    let seen = seen.lock().expect("lock").clone();
    seen
}

fn stored(id: Ulid, at: time::OffsetDateTime) -> RawEvent {
    RawEvent::new("files", "file.stored", 2, br#"{"file_id":"f-1"}"#.to_vec())
        .id(id)
        .time(at)
        .partition_key("f-1")
        .meta(
            Meta::default()
                .correlation_id("import-7")
                .extension("region", "eu"),
        )
}

async fn keeps_id_time_and_attributes(bus: Bus) {
    let id = Ulid::new();
    let at = time::macros::datetime!(2024-05-06 07:08:09.123 UTC);
    let event = stored(id, at);
    // Published twice, as a relay that died before marking its row would.
    let first = bus
        .publish_raw(std::slice::from_ref(&event))
        .await
        .expect("publish");
    let second = bus.publish_raw(&[event]).await.expect("publish again");
    assert_eq!(first[0].event_id, id);
    assert_eq!(second[0].event_id, id);
    assert_ne!(first[0].entry_id, second[0].entry_id);

    let seen = stream_of(&bus).await;
    assert_eq!(seen.len(), 2);
    for env in &seen {
        assert_eq!(env.id, id.to_string());
        assert_eq!(env.time, Some(at));
        assert_eq!(env.type_name, "file.stored");
        assert_eq!(env.dataversion, 2);
        assert_eq!(env.source, bus.source());
        assert_eq!(
            env.dataschema.as_deref(),
            Some("https://tidings.invalid/schemas/files/file.stored/v2.json")
        );
        assert_eq!(env.correlation_id.as_deref(), Some("import-7"));
        let ext = |name: &str| {
            env.extensions
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(ext("region"), Some("eu"));
        assert_eq!(ext("partitionkey"), Some("f-1"));
        assert_eq!(env.data, br#"{"file_id":"f-1"}"#);
    }
}

async fn refuses_before_sending(bus: Bus) {
    let good = stored(Ulid::new(), time::OffsetDateTime::now_utc());
    let bad_data = RawEvent::new("files", "file.stored", 2, b"{not json".to_vec());
    let err = bus
        .publish_raw(&[good.clone(), bad_data])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidRawEvent { .. }), "{err}");
    assert!(err.to_string().contains("not JSON"), "{err}");
    for (bad, says) in [
        (
            RawEvent::new("a:b", "file.stored", 2, b"{}".to_vec()),
            "stream",
        ),
        (
            RawEvent::new("files", "file stored", 2, b"{}".to_vec()),
            "type",
        ),
        (
            RawEvent::new("files", "file.stored", 0, b"{}".to_vec()),
            "version is 0",
        ),
        (good.clone().partition_key(""), "partition key"),
        (good.clone().schema_path("/abs/v2.json"), "schema path"),
        (
            good.clone()
                .meta(Meta::default().extension("partitionkey", "x")),
            "extension",
        ),
        (
            good.clone()
                .time(time::macros::datetime!(-0001-01-01 0:00 UTC)),
            "years 0 to 9999",
        ),
    ] {
        let err = bus.publish_raw(&[bad]).await.unwrap_err();
        assert!(err.to_string().contains(says), "{says}: {err}");
    }
    assert!(stream_of(&bus).await.is_empty(), "nothing was sent");
}

#[tokio::test]
async fn raw_events_keep_their_id_time_and_attributes_in_memory() {
    keeps_id_time_and_attributes(Bus::in_memory()).await;
}

#[tokio::test]
async fn raw_events_keep_their_id_time_and_attributes_on_redis() {
    let server = RedisServer::start();
    keeps_id_time_and_attributes(Bus::connect(&server.url()).await.expect("bus")).await;
}

#[tokio::test]
async fn a_raw_event_that_cannot_be_published_fails_the_call_before_anything_is_sent() {
    refuses_before_sending(Bus::in_memory()).await;
    let server = RedisServer::start();
    refuses_before_sending(Bus::connect(&server.url()).await.expect("bus")).await;
}

#[tokio::test]
async fn a_raw_event_goes_to_the_keys_of_its_tenant() {
    let bus = Bus::in_memory();
    let event =
        stored(Ulid::new(), time::OffsetDateTime::now_utc()).meta(Meta::default().tenant("acme"));
    bus.publish_raw(std::slice::from_ref(&event))
        .await
        .expect("publish");
    assert!(stream_of(&bus).await.is_empty());
    let acme = bus.tenant("acme").expect("tenant");
    let seen = stream_of(&acme).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].tenant_id.as_deref(), Some("acme"));
    let other = bus.tenant("other").expect("tenant");
    let err = other.publish_raw(&[event]).await.unwrap_err();
    assert!(matches!(err, Error::OtherTenant { .. }), "{err}");
}
