#[tidings::event(stream = "contextual", version = 2.5)]
pub struct FileUploaded {
    pub filename: String,
}

fn main() {}
