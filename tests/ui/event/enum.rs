#[tidings::event(stream = "contextual", version = 1)]
pub enum FileEvent {
    Uploaded { filename: String },
    Deleted { filename: String },
}

fn main() {}
