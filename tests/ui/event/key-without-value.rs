#[tidings::event(stream = "contextual", version)]
pub struct FileUploaded {
    pub filename: String,
}

fn main() {}
