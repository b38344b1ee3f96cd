#[tidings::event(stream = "contextual", version = 1)]
pub struct FileUploaded<T> {
    pub filename: String,
    pub meta: T,
}

fn main() {}
