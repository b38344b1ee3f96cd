// The only error is the missing `version`: the struct, its serde attributes,
// the `From` impl and the `Event` items used below still resolve.
use tidings::Event;

#[tidings::event(stream = "contextual")]
pub struct FileUploaded {
    #[serde(rename = "fileName")]
    pub filename: String,
}

#[tidings::event(stream = "contextual", version = 3, upcast_from = FileUploaded)]
pub struct FileUploadedV3 {
    pub filename: String,
}

impl From<FileUploaded> for FileUploadedV3 {
    fn from(old: FileUploaded) -> Self {
        FileUploadedV3 { filename: old.filename }
    }
}

fn main() {
    let _ = FileUploaded::TYPE;
}
