#[tidings::event(stream = "contextual", version = 1, key = tags)]
pub struct FileTagged {
    pub file_id: String,
    pub tags: Vec<String>,
}

fn main() {}
