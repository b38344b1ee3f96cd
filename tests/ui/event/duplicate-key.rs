#[tidings::event(stream = "contextual", version = 1, version = 2)]
pub struct FileUploaded {
    pub filename: String,
}

fn main() {}
