// `checksum` is new and required: v1 payloads do not have it.
#[tidings::event(stream = "guarded", version = 1)]
pub struct FileUploadedV1 {
    pub filename: String,
    pub size: u64,
    pub mime_type: Option<String>,
    pub checksum: String,
}

fn main() {}
