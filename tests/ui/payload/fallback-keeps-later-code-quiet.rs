// The only error is the unknown key: the struct keeps its derives, so the
// event that holds it and the code that uses it still compile.
use tidings::Event;

#[tidings::payload(versoin = 1)]
pub struct Checksum {
    pub hex: String,
}

#[tidings::payload(version = 1)]
pub enum Origin {
    Upload,
}

#[tidings::event(stream = "artifacts", version = 1)]
pub struct ArtifactStored {
    pub checksum: Checksum,
    pub origin: Origin,
}

fn main() {
    let a = ArtifactStored::decode(1, br#"{"checksum":{"hex":"ab"},"origin":"Upload"}"#).unwrap();
    let _: &str = &a.checksum.hex;
    let Origin::Upload = a.origin;
}
