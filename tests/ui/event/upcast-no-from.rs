#[tidings::event(stream = "contextual", version = 1)]
pub struct FileUploadedV1 {
    pub filename: String,
}

#[tidings::event(stream = "contextual", version = 2, upcast_from = FileUploadedV1)]
pub struct FileUploaded {
    pub filename: String,
}

fn main() {}
