#[tidings::event(stream = "contextual", version = 0)]
pub struct FileUploaded {
    pub filename: String,
}

fn main() {}
