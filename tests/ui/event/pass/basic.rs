use tidings::{event, Event};

/// A file landed in storage.
#[event(stream = "contextual", version = 1)]
#[derive(Debug, Clone, PartialEq)]
pub struct FileUploadedV1 {
    /// Name as uploaded.
    pub filename: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

#[event(channel = "notifications", version = 1, name = "gate.opened", compat = "full")]
pub struct GateOpened;

fn main() {
    assert_eq!(FileUploadedV1::TYPE, "file.uploaded");
    assert_eq!(FileUploadedV1::DATASCHEMA, "https://tidings.invalid/schemas/contextual/file.uploaded/v1.json");
    assert_eq!(GateOpened::TYPE, "gate.opened");
    assert_eq!(GateOpened::COMPAT, tidings::Compat::Full);
    let e = FileUploadedV1::decode(1, br#"{"filename":"a.pdf"}"#).unwrap();
    assert_eq!(e, FileUploadedV1 { filename: "a.pdf".into(), size: None });
}
