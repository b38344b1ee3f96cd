//! The JSON Schema and the serde behaviour of `#[event]` structs: user serde
//! attributes keep working, doc comments become descriptions, and the schema
//! is closed while decoding stays open.

use serde_json::json;
use tidings::__private::payload_schema;
use tidings::{event, Event};

/// A user signed up.
///
/// Sent once per account.
#[event(stream = "test-accounts", version = 1)]
#[serde(rename_all = "camelCase")]
#[derive(Debug, PartialEq)]
pub struct UserSignedUp {
    /// Account id.
    pub user_id: String,
    /// Address the user gave, renamed on the wire.
    #[serde(rename = "email")]
    pub email_address: String,
    /// Marketing consent, false when absent.
    #[serde(default)]
    pub consent: bool,
    /// Referral code, left out when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral: Option<String>,
    /// Where the sign-up came from.
    #[serde(flatten)]
    pub origin: Origin,
}

/// Where a sign-up came from.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Origin {
    /// Client application.
    pub app: String,
}

/// Nothing but a name.
#[event(channel = "test-pings", version = 2)]
#[derive(Debug)]
pub struct Ping;

#[test]
fn schema_has_id_draft_and_is_closed() {
    let schema = payload_schema::<UserSignedUp>();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(schema["$id"], UserSignedUp::DATASCHEMA);
    assert_eq!(
        schema["$id"],
        "https://tidings.invalid/schemas/test-accounts/user.signed.up/v1.json"
    );
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["additionalProperties"], false);
    let keys: Vec<&String> = schema.as_object().unwrap().keys().take(2).collect();
    assert_eq!(keys, ["$schema", "$id"]);
}

#[test]
fn doc_comments_become_descriptions() {
    let schema = payload_schema::<UserSignedUp>();
    assert_eq!(
        schema["description"],
        "A user signed up.\n\nSent once per account."
    );
    assert_eq!(schema["properties"]["userId"]["description"], "Account id.");
    assert_eq!(
        schema["properties"]["email"]["description"],
        "Address the user gave, renamed on the wire."
    );
    assert_eq!(
        schema["properties"]["app"]["description"],
        "Client application."
    );
}

#[test]
fn serde_attributes_shape_the_schema() {
    let schema = payload_schema::<UserSignedUp>();
    let props: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
    assert_eq!(props, ["userId", "email", "consent", "referral", "app"]);
    assert_eq!(schema["required"], json!(["userId", "email", "app"]));
    assert_eq!(schema["properties"]["consent"]["default"], false);
}

#[test]
fn serde_attributes_shape_the_payload() {
    let e = UserSignedUp {
        user_id: "u1".into(),
        email_address: "a@b.c".into(),
        consent: false,
        referral: None,
        origin: Origin { app: "ios".into() },
    };
    assert_eq!(
        serde_json::to_value(&e).unwrap(),
        json!({"userId": "u1", "email": "a@b.c", "consent": false, "app": "ios"})
    );
    let decoded = UserSignedUp::decode(
        1,
        br#"{"userId":"u1","email":"a@b.c","app":"ios","unknown":1}"#,
    )
    .unwrap();
    assert_eq!(decoded, e);
}

#[test]
fn unit_event_schema_is_a_closed_empty_object_with_its_docs() {
    let schema = payload_schema::<Ping>();
    assert_eq!(
        schema,
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://tidings.invalid/schemas/test-pings/ping/v2.json",
            "title": "Ping",
            "description": "Nothing but a name.",
            "type": "object",
            "additionalProperties": false,
        })
    );
}
