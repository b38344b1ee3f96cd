// `mime_type` was optional in v1.
#[tidings::event(stream = "guarded", version = 1)]
pub struct FileUploadedV1 {
    pub filename: String,
    pub size: u64,
    pub mime_type: String,
}

fn main() {}
