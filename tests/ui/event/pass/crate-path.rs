// A crate that re-exports tidings under another path points the macro at it.
mod reexport {
    pub use ::tidings;
}

use reexport::tidings::Event;

#[reexport::tidings::event(stream = "contextual", version = 1, crate = "crate::reexport::tidings")]
pub struct FileUploaded {
    pub filename: String,
}

fn main() {
    assert_eq!(FileUploaded::TYPE, "file.uploaded");
    assert!(FileUploaded::decode(1, br#"{"filename":"a"}"#).is_ok());
}
