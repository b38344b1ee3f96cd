#[tidings::event(stream = "contextual", version = 1, name = "File-Uploaded")]
pub struct FileUploaded {
    pub filename: String,
}

fn main() {}
