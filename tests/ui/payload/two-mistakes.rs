// Both mistakes are reported in one build.
#[tidings::payload(stream = "artifacts", crate = "not a path")]
pub struct Checksum {
    pub hex: String,
}

fn main() {}
