#[tidings::payload(crat = "::tidings")]
pub struct Checksum {
    pub hex: String,
}

fn main() {}
