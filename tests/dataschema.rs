//! `dataschema` is an absolute URI: the bus's schema base and the type's
//! schema path, on stream entries and Pub/Sub messages alike.

mod support;

use std::time::Duration;

use futures::StreamExt;
use support::events::{AuditLogged, FileUploaded};
use tidings::{Bus, Envelope, Event};

fn dataschema_of(entry: &tidings::transport::RawEntry) -> String {
    let env = Envelope::from_fields(
        &entry.id,
        entry.fields.iter().map(|(k, v)| (k.as_bytes(), &v[..])),
    )
    .unwrap();
    env.dataschema.unwrap()
}

#[tokio::test]
async fn the_default_base_is_the_constant_of_the_type() {
    let bus = Bus::in_memory();
    bus.publish(&FileUploaded::new("a")).await.unwrap();
    let entries = bus.last_entries("contextual", 1).await.unwrap();
    assert_eq!(dataschema_of(&entries[0]), FileUploaded::DATASCHEMA);
    assert_eq!(
        FileUploaded::DATASCHEMA,
        format!(
            "{}{}",
            tidings::DEFAULT_SCHEMA_BASE,
            FileUploaded::SCHEMA_PATH
        )
    );
}

#[tokio::test]
async fn a_configured_base_goes_on_every_event() {
    let bus = Bus::builder()
        .schema_base("https://schemas.example.com/events")
        .in_memory()
        .unwrap();
    let want = format!(
        "https://schemas.example.com/events/{}",
        FileUploaded::SCHEMA_PATH
    );
    bus.publish(&FileUploaded::new("one")).await.unwrap();
    bus.publish_batch(&[FileUploaded::new("two"), FileUploaded::new("three")])
        .await
        .unwrap();
    for entry in bus.last_entries("contextual", 3).await.unwrap() {
        assert_eq!(dataschema_of(&entry), want);
    }

    // Structured mode on Pub/Sub, for an event with a stream and a channel.
    let mut audit = bus.subscribe::<AuditLogged>().await.unwrap();
    let mut any = bus
        .subscribe_pattern(AuditLogged::CHANNEL.unwrap(), "*")
        .await
        .unwrap();
    bus.publish(&AuditLogged { line: "l".into() })
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), audit.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let message = tokio::time::timeout(Duration::from_secs(5), any.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        message.envelope().dataschema.as_deref(),
        Some(
            format!(
                "https://schemas.example.com/events/{}",
                AuditLogged::SCHEMA_PATH
            )
            .as_str()
        )
    );
}

#[test]
fn a_base_that_is_not_an_absolute_uri_is_refused() {
    for bad in [
        "schemas/",
        "",
        "://x",
        "https:",
        "https://a b/",
        "https://x/#frag",
        "1http://x/",
    ] {
        assert!(
            matches!(
                Bus::builder().schema_base(bad).in_memory(),
                Err(tidings::Error::InvalidSchemaBase { .. })
            ),
            "{bad:?} was accepted"
        );
    }
    let bus = Bus::builder()
        .schema_base("urn:acme:schemas:")
        .in_memory()
        .unwrap();
    assert_eq!(bus.schema_base(), "urn:acme:schemas:");
}
