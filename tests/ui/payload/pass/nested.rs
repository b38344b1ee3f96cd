use tidings::{event, payload, Event};

#[payload]
pub struct Checksum {
    pub hex: String,
}

#[payload]
pub enum Origin {
    Upload,
    Fetch { url: String },
}

#[event(stream = "artifacts", version = 1)]
pub struct ArtifactStored {
    pub checksum: Checksum,
    pub origin: Origin,
}

fn main() {
    let a = ArtifactStored::decode(1, br#"{"checksum":{"hex":"ab"},"origin":{"Fetch":{"url":"u"}}}"#).unwrap();
    assert_eq!(a.checksum.hex, "ab");
    assert!(matches!(a.origin, Origin::Fetch { .. }));
}
