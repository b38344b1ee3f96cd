#[tidings::event(stream = "uploads:eu", channel = "gate events", version = 1)]
pub struct FileUploaded {
    pub filename: String,
}

fn main() {}
