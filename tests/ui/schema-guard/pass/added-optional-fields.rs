// Optional additions keep v1 payloads decodable.
#[tidings::event(stream = "guarded", version = 1)]
pub struct FileUploadedV1 {
    pub filename: String,
    pub size: u64,
    pub mime_type: Option<String>,
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub retries: u32,
}

fn main() {}
