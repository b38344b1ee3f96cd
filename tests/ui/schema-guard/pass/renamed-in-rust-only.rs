// The Rust name changed, the wire name did not.
#[tidings::event(stream = "guarded", version = 1)]
#[serde(rename_all = "snake_case")]
pub struct FileUploadedV1 {
    #[serde(rename = "filename")]
    pub name: String,
    #[serde(rename = "size")]
    pub byte_size: u64,
    pub mime_type: Option<String>,
    #[serde(skip)]
    pub cached: bool,
}

fn main() {}
