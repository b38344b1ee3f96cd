// `size` is in the committed v1 schema but no longer in the struct.
#[tidings::event(stream = "guarded", version = 1)]
pub struct FileUploadedV1 {
    pub filename: String,
    pub mime_type: Option<String>,
}

fn main() {}
