#[tidings::payload(version = 1)]
pub struct Checksum {
    pub hex: String,
}

fn main() {}
