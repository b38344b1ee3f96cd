#[tidings::event(steam = "contextual", version = 1)]
pub struct FileUploaded {
    pub filename: String,
}

fn main() {}
