#[tidings::event(version = 1)]
pub struct FileUploaded {
    pub filename: String,
}

fn main() {}
