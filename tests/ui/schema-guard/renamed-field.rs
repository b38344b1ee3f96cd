// `size` became `byte_size` on the wire.
#[tidings::event(stream = "guarded", version = 1)]
pub struct FileUploadedV1 {
    pub filename: String,
    pub byte_size: u64,
    pub mime_type: Option<String>,
}

fn main() {}
