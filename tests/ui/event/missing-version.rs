#[tidings::event(stream = "contextual")]
pub struct FileUploaded {
    pub filename: String,
}

fn main() {}
