#[tidings::event(stream = "contextual", version = 1, key = "file_id")]
pub struct FileUploaded {
    pub file_id: String,
}

fn main() {}
