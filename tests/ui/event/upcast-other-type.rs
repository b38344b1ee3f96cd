#[tidings::event(stream = "contextual", version = 1)]
pub struct FileDeleted {
    pub filename: String,
}

#[tidings::event(stream = "contextual", version = 2, upcast_from = FileDeleted)]
pub struct FileUploaded {
    pub filename: String,
}

impl From<FileDeleted> for FileUploaded {
    fn from(old: FileDeleted) -> Self {
        FileUploaded { filename: old.filename }
    }
}

fn main() {}
