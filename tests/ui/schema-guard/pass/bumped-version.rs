// The breaking change is a new version; v1 stays as committed.
#[tidings::event(stream = "guarded", version = 1)]
pub struct FileUploadedV1 {
    pub filename: String,
    pub size: u64,
    pub mime_type: Option<String>,
}

#[tidings::event(stream = "guarded", version = 2, upcast_from = FileUploadedV1)]
pub struct FileUploaded {
    pub filename: String,
    pub checksum: String,
}

impl From<FileUploadedV1> for FileUploaded {
    fn from(old: FileUploadedV1) -> Self {
        FileUploaded {
            filename: old.filename,
            checksum: String::new(),
        }
    }
}

fn main() {}
