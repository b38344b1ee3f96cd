use tidings::Event;

#[tidings::event(stream = "guarded", version = 1)]
pub struct FileUploadedV1 {
    pub filename: String,
    pub size: u64,
    pub mime_type: Option<String>,
}

fn main() {
    assert_eq!(FileUploadedV1::VERSION, 1);
}
