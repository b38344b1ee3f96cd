// A minimal event written by hand, through `tidings` only, for the handler
// UI tests that need a valid event type.
#[derive(tidings::__private::serde::Serialize, tidings::__private::serde::Deserialize, tidings::__private::schemars::JsonSchema)]
#[serde(crate = "tidings::__private::serde")]
#[schemars(crate = "tidings::__private::schemars")]
pub struct FileUploaded {
    pub filename: String,
}

impl tidings::Event for FileUploaded {
    const STREAM: Option<&'static str> = Some("contextual");
    const CHANNEL: Option<&'static str> = None;
    const TYPE: &'static str = "file.uploaded";
    const VERSION: u32 = 1;
    const COMPAT: tidings::Compat = tidings::Compat::Backward;
    const SCHEMA_PATH: &'static str = "contextual/file.uploaded/v1.json"; const DATASCHEMA: &'static str = "https://tidings.invalid/schemas/contextual/file.uploaded/v1.json";
    fn decode(version: u32, data: &[u8]) -> Result<Self, tidings::DecodeError> {
        tidings::__private::decode_json(version, data)
    }
    fn versions() -> Vec<u32> {
        vec![1]
    }
}
