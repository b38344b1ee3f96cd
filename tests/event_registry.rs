//! What `#[event]` puts in the registry, and the registry's conflict checks.

use tidings::registry::{self, EventInfo, RegistryError};
use tidings::{event, Compat, Event};

/// First version of an order.
#[event(stream = "test-orders", version = 1)]
#[derive(Debug)]
pub struct OrderPlacedV1 {
    /// Order id.
    pub id: String,
}

/// Second version.
#[event(stream = "test-orders", version = 2, upcast_from = OrderPlacedV1, compat = "full_transitive")]
#[derive(Debug)]
pub struct OrderPlacedV2 {
    /// Order id.
    pub id: String,
    /// Total in cents.
    pub total: Option<u64>,
}

/// Current version.
#[event(stream = "test-orders", version = 3, upcast_from = OrderPlacedV2, compat = "full_transitive")]
#[derive(Debug)]
pub struct OrderPlaced {
    /// Order id.
    pub id: String,
    /// Total in cents.
    pub total: u64,
}

impl From<OrderPlacedV1> for OrderPlacedV2 {
    fn from(old: OrderPlacedV1) -> Self {
        OrderPlacedV2 {
            id: old.id,
            total: None,
        }
    }
}

impl From<OrderPlacedV2> for OrderPlaced {
    fn from(old: OrderPlacedV2) -> Self {
        OrderPlaced {
            id: old.id,
            total: old.total.unwrap_or(0),
        }
    }
}

/// Published on both transports.
#[event(
    stream = "test-gates",
    channel = "gate-notifications",
    version = 1,
    name = "gate.opened"
)]
#[derive(Debug)]
pub struct GateWentUp {
    /// Gate number.
    pub gate: u32,
}

/// Pub/Sub only.
#[event(channel = "test-presence", version = 1)]
#[derive(Debug)]
pub struct UserSeen;

/// Events declared in a module.
pub mod nested {
    /// In a module, to show the Rust path.
    #[tidings::event(stream = "test-audit", version = 1)]
    #[derive(Debug)]
    pub struct HTTPRequestSent {
        /// Request URL.
        pub url: String,
    }
}

#[test]
fn registry_holds_every_event_of_the_binary() {
    let listed: Vec<(&str, u32)> = registry::sorted()
        .iter()
        .map(|i| (i.type_name, i.version))
        .collect();
    assert_eq!(
        listed,
        [
            ("gate.opened", 1),
            ("http.request.sent", 1),
            ("order.placed", 1),
            ("order.placed", 2),
            ("order.placed", 3),
            ("user.seen", 1),
        ]
    );
}

#[test]
fn registry_entry_carries_the_event_constants() {
    let info = registry::find("order.placed", 2).unwrap();
    assert_eq!(info.rust_name, "event_registry::OrderPlacedV2");
    assert_eq!(info.type_name, OrderPlacedV2::TYPE);
    assert_eq!(info.version, 2);
    assert_eq!(info.stream, Some("test-orders"));
    assert_eq!(info.channel, None);
    assert_eq!(info.compat, Compat::FullTransitive);
    assert_eq!(
        info.dataschema,
        "https://tidings.invalid/schemas/test-orders/order.placed/v2.json"
    );
    assert_eq!(
        info.dataschema,
        format!("{}{}", tidings::DEFAULT_SCHEMA_BASE, info.schema_path),
        "the macro's default base is the runtime's"
    );
    assert_eq!(info.schema_path, "test-orders/order.placed/v2.json");
    assert_eq!(info.upcast_from, Some(1));
    assert_eq!(info.topic(), "test-orders");

    let gate = registry::find("gate.opened", 1).unwrap();
    assert_eq!(gate.rust_name, "event_registry::GateWentUp");
    assert_eq!(gate.stream, Some("test-gates"));
    assert_eq!(gate.channel, Some("gate-notifications"));
    assert_eq!(gate.compat, Compat::Backward);
    assert_eq!(gate.schema_path, "test-gates/gate.opened/v1.json");

    let seen = registry::find("user.seen", 1).unwrap();
    assert_eq!(seen.stream, None);
    assert_eq!(seen.channel, Some("test-presence"));
    assert_eq!(seen.topic(), "test-presence");
    assert_eq!(seen.schema_path, "test-presence/user.seen/v1.json");

    let http = registry::find("http.request.sent", 1).unwrap();
    assert_eq!(http.rust_name, "event_registry::nested::HTTPRequestSent");
}

#[test]
fn registry_entry_schema_is_the_payload_schema() {
    let schema = (registry::find("order.placed", 3).unwrap().schema)();
    assert_eq!(
        schema["$id"],
        "https://tidings.invalid/schemas/test-orders/order.placed/v3.json"
    );
    assert_eq!(schema["properties"]["total"]["type"], "integer");
    assert_eq!(schema["required"], serde_json::json!(["id", "total"]));
    assert_eq!(schema["additionalProperties"], false);
}

#[test]
fn history_of_a_chain_is_newest_first() {
    let current = registry::find("order.placed", 3).unwrap();
    let history: Vec<u32> = current.history().iter().map(|i| i.version).collect();
    assert_eq!(history, [3, 2, 1]);
    assert!(current.is_current());
    assert!(!registry::find("order.placed", 1).unwrap().is_current());
    let currents: Vec<(&str, u32)> = registry::current()
        .iter()
        .map(|i| (i.type_name, i.version))
        .collect();
    assert_eq!(
        currents,
        [
            ("gate.opened", 1),
            ("http.request.sent", 1),
            ("order.placed", 3),
            ("user.seen", 1),
        ]
    );
}

#[test]
fn registry_versions_follow_the_chain_like_the_trait() {
    for (version, expected) in [(1, vec![1]), (2, vec![1, 2]), (3, vec![1, 2, 3])] {
        assert_eq!(
            registry::find("order.placed", version).unwrap().versions(),
            expected
        );
    }
    assert_eq!(OrderPlaced::versions(), [1, 2, 3]);
    assert_eq!(OrderPlacedV2::versions(), [1, 2]);
}

#[test]
fn registry_decoder_is_present_in_a_test_build_of_the_declaring_crate() {
    // These events are declared in this test crate, compiled with `cfg(test)`.
    let decode = registry::find("order.placed", 3).unwrap().decode.unwrap();
    assert_eq!(decode(1, br#"{"id":"o-1"}"#), Ok(()));
    assert_eq!(decode(3, br#"{"id":"o-1","total":5}"#), Ok(()));
    let err = decode(3, br#"{"id":"o-1"}"#).unwrap_err();
    assert_eq!(err, OrderPlaced::decode(3, br#"{"id":"o-1"}"#).unwrap_err());
    assert!(decode(4, b"{}").is_err());
}

#[test]
fn events_of_this_binary_do_not_conflict() {
    assert_eq!(registry::check(), Ok(()));
}

fn no_schema() -> serde_json::Value {
    serde_json::Value::Null
}

const fn info(rust_name: &'static str, version: u32, upcast_from: Option<u32>) -> EventInfo {
    EventInfo {
        rust_name,
        type_name: "order.placed",
        version,
        stream: Some("test-orders"),
        channel: None,
        compat: Compat::Backward,
        dataschema: "https://tidings.invalid/schemas/test-orders/order.placed/v1.json",
        schema_path: "test-orders/order.placed/v1.json",
        upcast_from,
        reply: None,
        partition_key: None,
        schema: no_schema,
        decode: None,
    }
}

static FIRST: EventInfo = info("a::OrderPlaced", 1, None);
static SAME_VERSION: EventInfo = info("b::OrderPlaced", 1, None);
static UNLINKED_V2: EventInfo = info("c::OrderPlacedV2", 2, None);
static LINKED_V2: EventInfo = info("d::OrderPlacedV2", 2, Some(1));

#[test]
fn check_infos_reports_a_version_declared_twice() {
    let errors = registry::check_infos(&[&FIRST, &SAME_VERSION]).unwrap_err();
    assert_eq!(
        errors,
        [RegistryError::DuplicateVersion {
            type_name: "order.placed",
            version: 1,
            first: "a::OrderPlaced",
            second: "b::OrderPlaced",
        }]
    );
    assert_eq!(
        errors[0].to_string(),
        "`order.placed` v1 is declared twice: by `a::OrderPlaced` and by `b::OrderPlaced`"
    );
}

#[test]
fn check_infos_reports_two_current_versions() {
    let errors = registry::check_infos(&[&FIRST, &UNLINKED_V2]).unwrap_err();
    assert_eq!(
        errors,
        [RegistryError::TwoCurrentVersions {
            type_name: "order.placed",
            first: "a::OrderPlaced",
            first_version: 1,
            second: "c::OrderPlacedV2",
            second_version: 2,
        }]
    );
}

#[test]
fn check_infos_accepts_a_linked_chain_and_reports_every_conflict() {
    assert_eq!(registry::check_infos(&[&FIRST, &LINKED_V2]), Ok(()));
    let errors = registry::check_infos(&[&FIRST, &SAME_VERSION, &UNLINKED_V2]).unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
}
