#[tidings::event(stream = "contextual", version = 1, key = fileid)]
pub struct FileUploaded {
    pub file_id: String,
    pub filename: String,
}

fn main() {}
