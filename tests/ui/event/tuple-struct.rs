#[tidings::event(stream = "contextual", version = 1)]
pub struct FileUploaded(pub String, pub u64);

fn main() {}
