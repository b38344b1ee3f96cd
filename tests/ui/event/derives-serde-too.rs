#[tidings::event(stream = "contextual", version = 1)]
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileUploaded {
    pub filename: String,
}

fn main() {}
