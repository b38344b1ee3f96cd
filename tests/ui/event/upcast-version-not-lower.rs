#[tidings::event(stream = "contextual", version = 2)]
pub struct FileUploadedV2 {
    pub filename: String,
}

#[tidings::event(stream = "contextual", version = 2, upcast_from = FileUploadedV2)]
pub struct FileUploaded {
    pub filename: String,
}

impl From<FileUploadedV2> for FileUploaded {
    fn from(old: FileUploadedV2) -> Self {
        FileUploaded { filename: old.filename }
    }
}

fn main() {}
