pub struct FileUploadedV1 {
    pub filename: String,
}

#[tidings::event(stream = "contextual", version = 2, upcast_from = FileUploadedV1)]
pub struct FileUploaded {
    pub filename: String,
}

impl From<FileUploadedV1> for FileUploaded {
    fn from(old: FileUploadedV1) -> Self {
        FileUploaded { filename: old.filename }
    }
}

fn main() {}
