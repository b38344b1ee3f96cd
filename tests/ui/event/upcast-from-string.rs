#[tidings::event(stream = "contextual", version = 2, upcast_from = "FileUploadedV1")]
pub struct FileUploaded {
    pub filename: String,
}

fn main() {}
