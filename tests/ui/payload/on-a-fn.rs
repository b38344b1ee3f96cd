#[tidings::payload]
fn checksum() {}

fn main() {}
