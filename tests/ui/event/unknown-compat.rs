#[tidings::event(stream = "contextual", version = 1, compat = "backwards")]
pub struct FileUploaded {
    pub filename: String,
}

fn main() {}
