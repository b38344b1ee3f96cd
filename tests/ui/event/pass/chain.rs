use tidings::{event, Event};

#[event(stream = "contextual", version = 1)]
pub struct FileUploadedV1 {
    pub filename: String,
}

#[event(stream = "contextual", version = 2, upcast_from = FileUploadedV1)]
pub struct FileUploaded {
    pub filename: String,
    pub mime_type: Option<String>,
}

impl From<FileUploadedV1> for FileUploaded {
    fn from(old: FileUploadedV1) -> Self {
        FileUploaded { filename: old.filename, mime_type: None }
    }
}

fn main() {
    assert_eq!(FileUploaded::versions(), [1, 2]);
    let e = FileUploaded::decode(1, br#"{"filename":"a.pdf"}"#).unwrap();
    assert_eq!(e.filename, "a.pdf");
    tidings::registry::check().unwrap();
}
